"""Every check of a run's inputs that needs no actor, run by `rlvr train` (and, where it can, `rlvr submit`) before
Ray starts. Each problem is one `ConfigError` line naming the file and line or the config key, so a bad input costs
seconds instead of a cluster start-up (or, in a pipeline, the stages before the one it breaks).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from rlvr.config import ConfigError, DataSection, RunConfig
from rlvr.data.prompts import Example, load_examples
from rlvr.rewards.loader import check_reward_paths


def check_output_dir(cfg: RunConfig) -> None:
    out = Path(cfg.run.output_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            which = "is" if p == out else f"lies under {str(p)!r}, which is"
            raise ConfigError(f"run.output_dir {str(out)!r} {which} an existing file, not a directory")


def check_prompt_template(data: DataSection) -> None:
    """`{prompt}` is the only field; `{{`/`}}` are literal braces."""
    template = data.prompt_template
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"data.prompt_template {template!r} is not a format string: {exc}") from None
    unknown = [f for f in fields if f != "prompt"]
    if unknown:
        raise ConfigError(f"data.prompt_template {template!r} has an unknown field {{{unknown[0]}}}: the only field "
                          "is {prompt} (write {{ and }} for literal braces)")
    if "prompt" not in fields:
        raise ConfigError(f"data.prompt_template {template!r} has no {{prompt}} field: every prompt would be the same")


def check_examples(cfg: RunConfig) -> list[Example]:
    """The GRPO prompts, loaded (a malformed JSONL line names file and line) and non-empty."""
    examples = load_examples(cfg.data, cfg.run.seed)
    if not examples:
        raise ConfigError(f"data.path {cfg.data.path!r} has no examples (data.source={cfg.data.source!r})")
    return examples


def check_grpo_inputs(cfg: RunConfig) -> list[Example]:
    """Everything about a GRPO run that needs no model; returns its prompts."""
    check_output_dir(cfg)
    check_reward_paths(cfg.rewards)
    check_prompt_template(cfg.data)
    return check_examples(cfg)


def max_positions(model_path: str | Path) -> int | None:
    """The model's position limit from its config.json (None where it states none)."""
    config = json.loads((Path(model_path) / "config.json").read_text())
    return config.get("max_position_embeddings") or config.get("n_positions")


def longest_prompt(tokenizer, data: DataSection, prompts: list[str], candidates: int = 32) -> tuple[int, int]:
    """(index, token count) of the longest prompt as the rollout encodes it (render_prompt). Rendering the chat
    template for every prompt takes seconds on a large set, so the templated texts are tokenized in one batch and
    only the longest `candidates` are rendered exactly: the chat wrapper adds the same tokens to every prompt."""
    from rlvr.data.prompts import render_prompt

    texts = [data.prompt_template.format(prompt=p) for p in prompts]
    rough = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    top = sorted(range(len(prompts)), key=rough.__getitem__, reverse=True)[:candidates]
    return max(((i, len(render_prompt(tokenizer, data, prompts[i]))) for i in top), key=lambda il: (il[1], -il[0]))


def check_positions(cfg: RunConfig, limit: int | None, longest_prompt: int = 0, where: str = "") -> None:
    """Prompt plus `rollout.max_new_tokens` must fit the model's positions: past them a rotary model does not fail,
    it generates from positions it was never trained on (completions of 514 tokens on a 256-position model)."""
    if cfg.rollout.max_model_len is not None:
        limit = min(limit or cfg.rollout.max_model_len, cfg.rollout.max_model_len)
    if limit is None or longest_prompt + cfg.rollout.max_new_tokens <= limit:
        return
    prompt = f" plus the longest prompt ({longest_prompt} tokens{where})" if longest_prompt else ""
    raise ConfigError(f"rollout.max_new_tokens={cfg.rollout.max_new_tokens}{prompt} is "
                      f"{longest_prompt + cfg.rollout.max_new_tokens} tokens, beyond the model's {limit} positions")


def check_model_fits(cfg: RunConfig, model_path: str, tokenizer, examples: list[Example]) -> None:
    """With the model materialised (still before any actor): the longest prompt plus max_new_tokens fits."""
    i, length = longest_prompt(tokenizer, cfg.data, [ex.prompt for ex in examples])
    where = f", example {i}" + (f" of {cfg.data.path}" if cfg.data.path else "")
    check_positions(cfg, max_positions(model_path), length, where)


def check_pipeline_inputs(stages, first_model: str | None = None) -> None:
    """Before the first stage: each stage's output directory, and for GRPO stages everything above that needs no
    model. Later stages start from an export not yet made; their model's position limit is the first model's
    (`model.random_init.max_position_embeddings`), checked here against max_new_tokens alone and in full (with
    the prompts) when the stage starts, still before its actors. `first_model`: the export the first stage
    starts from (`--from`, or a previous stage's), None for the config's own model."""
    limit = max_positions(first_model) if first_model else _first_model_positions(stages[0].cfg)
    from rlvr.learner.lora import check_lora

    for stage in stages:
        check_output_dir(stage.cfg)
        try:
            check_lora(stage.cfg)  # every stage kind trains on the learners
        except ConfigError as exc:
            raise ConfigError(f"stage {stage.name!r}: {exc}") from None
        if stage.kind != "grpo":
            continue
        try:
            check_grpo_inputs(stage.cfg)
            check_positions(stage.cfg, limit)
        except ConfigError as exc:
            raise ConfigError(f"stage {stage.name!r}: {exc}") from None


def _first_model_positions(cfg: RunConfig) -> int | None:
    if cfg.model.random_init is not None:
        return cfg.model.random_init.max_position_embeddings
    path = Path(cfg.model.path or "")
    return max_positions(path) if (path / "config.json").is_file() else None
