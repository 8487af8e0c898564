"""The `rft` stage: rejection-sampling fine-tuning (expert iteration), read top to bottom:

    for each round: K samples per training prompt (rollout workers) -> rewards (reward workers)
    -> keep the verified-correct completions that stopped, no exact duplicates, at most max_per_prompt per prompt
    -> SFT on them as chats with the loss on the assistant's tokens (the learners of the SFT stage)
    -> the round's export samples the next round

It is RAFT/expert iteration (Xiong et al. 2025, Havrilla et al. 2024): a warm start for GRPO on prompts where the
model sometimes succeeds, and the baseline GRPO must beat. Each round writes OUTPUT_DIR/round_N/ (the last round
OUTPUT_DIR itself, whose export the pipeline hands on), OUTPUT_DIR/rft_rounds.json and the completions each round
kept (OUTPUT_DIR/rft_kept_round_N.jsonl); a finished round is not redone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlvr.config import ConfigError, RunConfig
from rlvr.data.prompts import Example
from rlvr.launch.passrate_cli import Scored

ROUNDS_FILE = "rft_rounds.json"


def select_correct(scored: list[Scored], correct_at: float, max_per_prompt: int) -> list[tuple[Example, str]]:
    """(example, completion text) pairs to fine-tune on: correct, stopped (the model must learn to end), the first
    of exact duplicates, at most max_per_prompt per prompt in sampling order."""
    kept: list[tuple[Example, str]] = []
    for s in scored:
        seen: set[str] = set()
        for c, r in zip(s.completions, s.results):
            text = c.text.strip()
            if r.score >= correct_at and c.finish_reason == "stop" and text and text not in seen:
                seen.add(text)
                kept.append((s.example, text))
                if len(seen) == max_per_prompt:
                    break
    return kept


def round_prompts(examples: list[Example], per_round: int | None, round_index: int) -> list[Example]:
    """Round r takes the next `per_round` prompts, cycling through the data."""
    if per_round is None or per_round >= len(examples):
        return examples
    start = (round_index * per_round) % len(examples)
    return (examples + examples)[start: start + per_round]


def round_config(cfg: RunConfig, out: Path, model_path: str) -> RunConfig:
    """The SFT of one round: from `model_path` (the previous round's export), rft.steps steps, into `out`."""
    from rlvr.config import ModelSection

    sft = cfg.sft.model_copy(update={"steps": cfg.rft.steps})
    run = cfg.run.model_copy(update={"output_dir": str(out)})
    model = ModelSection(path=model_path, dtype=cfg.model.dtype)
    return cfg.model_copy(update={"sft": sft, "run": run, "model": model})


def round_export(rcfg: RunConfig) -> str:
    from rlvr.utils.checkpoint import CheckpointDir

    found = CheckpointDir(Path(rcfg.run.output_dir), rcfg.checkpoint.keep_last).latest()
    if found is None or not (found[0] / "hf" / "config.json").is_file():
        raise RuntimeError(f"rft: the round's SFT left no hf/ export in {rcfg.run.output_dir}/checkpoints")
    return str(found[0] / "hf")


def sample_round(cfg: RunConfig, model_path: str, tokenizer, prompts: list[Example]) -> list[Scored]:
    from rlvr.launch.passrate_cli import ScoringWorkers, sample_scored

    with ScoringWorkers(cfg, model_path) as w:
        batches = sample_scored(cfg, w.rollout, w.rewards, tokenizer, prompts, cfg.rft.samples_per_prompt,
                                temperature=cfg.rft.temperature or cfg.rollout.temperature,
                                batch_prompts=cfg.passrate.batch_prompts, seed=cfg.run.seed)
        return [s for batch in batches for s in batch]


def run_rft_job(cfg: RunConfig) -> list[dict]:
    from rlvr.data.chat import assistant_masked
    from rlvr.launch.cluster import connect
    from rlvr.launch.grpo_job import training_examples
    from rlvr.launch.lm_job import run_lm_job
    from rlvr.model_io import load_tokenizer, resolve_model_path
    from rlvr.data.packing import pack

    if not cfg.data.chat_template:
        raise ConfigError("the rft stage fine-tunes on chats: set data.chat_template: true")
    out = Path(cfg.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model_path(cfg.model, out, cfg.run.seed)
    tokenizer = load_tokenizer(model_path)
    examples, _ = training_examples(cfg)
    connect(cfg)
    log_path = out / ROUNDS_FILE
    log: list[dict] = json.loads(log_path.read_text()) if log_path.is_file() else []
    for r in range(cfg.rft.rounds):
        if r < len(log):  # finished before an interruption: continue from its export
            model_path = log[r]["export"]
            continue
        rcfg = round_config(cfg, out if r == cfg.rft.rounds - 1 else out / f"round_{r}", model_path)
        t0 = time.perf_counter()
        scored = sample_round(cfg, model_path, tokenizer, round_prompts(examples, cfg.rft.prompts, r))
        kept = select_correct(scored, cfg.rft.correct_at, cfg.rft.max_per_prompt)
        samples = sum(len(s.results) for s in scored)
        correct = sum(res.score >= cfg.rft.correct_at for s in scored for res in s.results)
        stats = {"round": r, "prompts": len(scored), "samples": samples, "correct": correct,
                 "pass_rate": correct / samples, "kept": len(kept),
                 "prompts_with_kept": len({ex.prompt for ex, _ in kept}), "sample_s": round(time.perf_counter() - t0, 1)}
        print(f"[rlvr] rft round {r + 1}/{cfg.rft.rounds}: {correct}/{samples} samples correct; fine-tuning on "
              f"{len(kept)} completions of {stats['prompts_with_kept']} prompts", flush=True)
        if not kept:
            raise RuntimeError(f"rft round {r}: no sample of {len(scored)} prompts x {cfg.rft.samples_per_prompt} "
                               "was correct, so there is nothing to fine-tune on (start from a stronger model)")
        with (out / f"rft_kept_round_{r}.jsonl").open("w") as f:  # what the round trains on, to inspect
            for ex, text in kept:
                f.write(json.dumps({"prompt": ex.prompt, "reference": ex.reference, "completion": text}) + "\n")
        template = cfg.data.prompt_template
        docs = [assistant_masked(tokenizer, [{"role": "user", "content": template.format(prompt=ex.prompt)},
                                             {"role": "assistant", "content": text}]) for ex, text in kept]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rows = pack(docs, cfg.sft.seq_len, pad, split_documents=False) if cfg.sft.packing else \
            [row for d in docs for row in pack([d], cfg.sft.seq_len, pad, split_documents=False)]
        t1 = time.perf_counter()
        run_lm_job("sft", rcfg, rows=rows)
        model_path = round_export(rcfg)
        log.append({**stats, "sft_rows": len(rows), "sft_s": round(time.perf_counter() - t1, 1), "export": model_path})
        log_path.write_text(json.dumps(log, indent=2) + "\n")
    return log
