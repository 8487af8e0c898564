"""`rlvr eval`: score a model or checkpoint on GSM8K or MATH-500, or compare two result files.

    rlvr eval --model runs/x/checkpoints/final --task gsm8k --limit 200
    rlvr eval --model smollm2 --task math500 --samples 8 --temperature 0.8
    rlvr eval --compare base.jsonl trained.jsonl

Every argument is checked (model path, data file, sample counts) before a model is loaded, so a typo costs a
second and one error line (`ConfigError`), not a model load.
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from rlvr.config import ConfigError, FilterSpec, ModelSection, RewardsSection, RolloutSection
from rlvr.data.filters import build_filters
from rlvr.eval import tasks
from rlvr.eval.compare import compare_results
from rlvr.eval.runner import EvalSettings, Judgement, Scorer, gsm8k_scorer, run_eval, summary_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlvr eval", description="Evaluate a model on GSM8K or MATH-500.")
    p.add_argument("--model", help="model directory (a checkpoint), `smollm2`, or a hub name when the hub is reachable")
    p.add_argument("--gguf-file", help="with --model DIR: the GGUF file in it to load")
    p.add_argument("--task", choices=sorted(tasks.TASKS), default="gsm8k",
                   help="gsm8k: GSM8K test, 5-shot 'Question: ... Answer:' prompts and lm-eval's scoring (strict: the "
                        "'#### N' answer; flexible: the last number); math500: MATH-500, zero-shot, the \\boxed{} answer scored by "
                        "the math reward (default: %(default)s)")
    p.add_argument("--data", help="JSONL file (default: ../shared/data/<task>/test.jsonl) or a hub dataset name")
    p.add_argument("--limit", type=int, help="evaluate the first N items only (after --filter)")
    p.add_argument("--filter", dest="filters", action="append", default=[], metavar="YAML",
                   help="a record filter as in a config's data.filters, e.g. --filter '{name: exact_dedup}' "
                        "(repeatable, applied in order)")
    p.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                   help="hf: transformers generation on CPU or GPU (--device, --batch-size); vllm: vLLM on a GPU "
                        "(the vllm extra) (default: %(default)s)")
    p.add_argument("--samples", type=int, default=1, help="K samples per item; pass@k is reported for k <= K")
    p.add_argument("--temperature", type=float, help="default: 0 (greedy) with --samples 1, else 1.0")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--num-fewshot", type=int, help="GSM8K few-shot examples from the train file (default 5)")
    p.add_argument("--chat-template", action="store_true", help="wrap each prompt as a user message")
    p.add_argument("--batch-size", type=int, default=64, help="hf engine: sequences per forward pass")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: float32 (hf), bfloat16 (vllm)")
    p.add_argument("--device", help="hf engine: cpu or cuda (default: cuda when available)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.5,
                   help="vllm: share of the GPU's memory the engine may take (several evals can share one GPU)")
    p.add_argument("--kv-cache-gb", type=float,
                   help="vllm: a fixed KV cache size (skips the memory profiling run that engines starting together "
                        "on one GPU disturb)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="results JSONL (default runs/eval/<task>-<model>.jsonl); summary next to it")
    p.add_argument("--compare", nargs=2, metavar=("A.jsonl", "B.jsonl"), help="paired comparison of two results")
    p.add_argument("--resamples", type=int, default=10_000, help="--compare: bootstrap resamples")
    return p


@dataclass(frozen=True)
class Plan:
    """What to run, from arguments that passed every check that needs no model."""

    task: tasks.Task
    data: str
    settings: EvalSettings
    out: Path
    fewshot: int
    filters: list[FilterSpec]


def check_args(args: argparse.Namespace) -> Plan:
    """Every check that needs no model; raises ConfigError with one line."""
    if not args.model:
        raise ConfigError("rlvr eval needs --model PATH (or --compare A.jsonl B.jsonl)")
    task = tasks.TASKS[args.task]
    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {args.samples}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.max_new_tokens < 1 or args.batch_size < 1:
        raise ConfigError("--max-new-tokens and --batch-size must be >= 1")
    if not 0 < args.gpu_memory_utilization <= 1 or (args.kv_cache_gb is not None and args.kv_cache_gb <= 0):
        raise ConfigError("need 0 < --gpu-memory-utilization <= 1 and --kv-cache-gb > 0")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.samples == 1 else 1.0)
    if not 0.0 <= temperature <= 2.0 or not 0.0 < args.top_p <= 1.0:
        raise ConfigError(f"need 0 <= --temperature <= 2 and 0 < --top-p <= 1, got {temperature} and {args.top_p}")
    if args.samples > 1 and temperature == 0.0:
        raise ConfigError("--samples > 1 with --temperature 0 gives K identical greedy answers; set a temperature")
    fewshot = task.default_fewshot if args.num_fewshot is None else args.num_fewshot
    if fewshot < 0:
        raise ConfigError(f"--num-fewshot must be >= 0, got {fewshot}")
    data = args.data or str(tasks.default_data_path(task))
    tasks.check_data_source(data)
    filters = parse_filters(args.filters)
    _check_model_arg(args.model)
    out = Path(args.out or f"runs/eval/{task.name}-{Path(args.model.rstrip('/')).name}.jsonl")
    # HF: one engine call per forward batch (progress and lines written per batch); vLLM batches best when large.
    settings = EvalSettings(samples=args.samples, temperature=temperature, top_p=args.top_p,
                            max_new_tokens=args.max_new_tokens, seed=args.seed,
                            chunk=max(1, args.batch_size // args.samples) if args.engine == "hf" else 512)
    return Plan(task, data, settings, out, fewshot, filters)


def parse_filters(raw: list[str]) -> list[FilterSpec]:
    """`--filter` values (YAML mappings, never evaluated) as filter specs, built once to check names and keys."""
    specs = []
    for text in raw:
        try:
            specs.append(FilterSpec.model_validate(yaml.safe_load(text)))
        except (yaml.YAMLError, ValidationError):
            hint = "expected a mapping with a name, e.g. '{name: exact_dedup}'"
            raise ConfigError(f"--filter {text!r}: {hint}") from None
    build_filters(specs, key="--filter")
    return specs


def _check_model_arg(model: str) -> None:
    path = Path(model).expanduser()
    if model == "smollm2" or path.is_dir():
        return
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ConfigError(f"--model {model!r} does not exist (a model directory, `smollm2`, or a hub name)")


def build_engine(args: argparse.Namespace, model_path: str):
    """(engine, tokenizer); vLLM is imported only when asked for, so the CPU install never needs it."""
    rollout = RolloutSection(engine=args.engine, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                             gpu_memory_utilization=args.gpu_memory_utilization, kv_cache_gb=args.kv_cache_gb)
    if args.engine == "vllm":
        from rlvr.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine(model_path, rollout, args.seed, dtype=args.dtype or "bfloat16")
    else:
        from rlvr.rollout.hf_engine import HFEngine

        engine = HFEngine.from_path(model_path, rollout, dtype=args.dtype or "float32", device=args.device)
    return engine, engine.tokenizer


def make_encoder(tokenizer, chat_template: bool):
    if not chat_template:
        return lambda text: tokenizer(text)["input_ids"]
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("--chat-template: this model's tokenizer has no chat template")

    def encode(text: str) -> list[int]:
        # The template already holds the BOS token; adding special tokens again would double it.
        chat = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=False)
        return tokenizer(chat, add_special_tokens=False)["input_ids"]

    return encode


def make_scorer(task: tasks.Task, stack: ExitStack) -> Scorer:
    """GSM8K: lm-eval's strict/flexible definitions. MATH-500: the reward service, whose worker process puts a
    deadline on every math-verify check (a pathological answer costs one `timeout` verdict, never a hung eval)."""
    if task.name == "gsm8k":
        return gsm8k_scorer
    from rlvr.rewards.service import RewardService

    service = stack.enter_context(RewardService(RewardsSection(), stop=task.stop))

    def score(samples):
        return [{"math": Judgement(r.extracted, r.verdict.value)} for r in service.score(samples)]

    return score


def run(args: argparse.Namespace) -> int:
    plan = check_args(args)
    task, out = plan.task, plan.out
    items = tasks.load_items(task, plan.data, args.limit, plan.filters)
    shots = tasks.fewshot_items(task, plan.fewshot)
    prompts = [tasks.build_prompt(task, item, shots) for item in items]
    from rlvr.model_io import resolve_model_path

    model_cfg = ModelSection(path=args.model, gguf_file=args.gguf_file, dtype=args.dtype or "float32")
    model_path = resolve_model_path(model_cfg, out.parent / "model", seed=args.seed)
    engine, tokenizer = build_engine(args, model_path)
    meta = {"model": args.model, "model_path": model_path, "engine": args.engine, "data": plan.data,
            "num_fewshot": plan.fewshot, "chat_template": args.chat_template}
    with ExitStack() as stack:
        summary = run_eval(engine, make_encoder(tokenizer, args.chat_template), task, items, prompts,
                           make_scorer(task, stack), plan.settings, out, meta)
    print(format_summary(summary, task))
    print(f"items: {out}\nsummary: {summary_path(out)}")
    return 0


def format_summary(summary: dict, task: tasks.Task) -> str:
    lines = [f"{task.name}: {summary['items']} items x {summary['samples']} samples ({summary['model']})"]
    for m in task.metrics:
        s = summary[m]
        passk = ""
        if summary["samples"] > 1:
            passk = " ".join(f"pass@{k} {v:.3f}" for k, v in s["pass@k"].items())
            passk += f"  mixed groups {s['mixed_fraction']:.3f}"
        lines.append(f"  {m:9s} accuracy {s['accuracy']:.3f}  95% CI [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]"
                     f"  no answer {s['no_answer_rate']:.3f}  {passk}".rstrip())
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> int:
    if args.resamples < 1:
        raise ConfigError(f"--resamples must be >= 1, got {args.resamples}")
    result = compare_results(*args.compare, resamples=args.resamples, seed=args.seed)
    lines = [f"{result['task']}: {result['paired_items']} paired items (B = {result['b']} vs A = {result['a']})"]
    for m, r in result.items():
        if isinstance(r, dict) and "mcnemar" in r:
            lo, hi = r["bootstrap_ci95"]
            lines.append(f"  {m:9s} A {r['accuracy_a']:.3f}  B {r['accuracy_b']:.3f}  B-A {r['diff_b_minus_a']:+.3f}"
                         f" [{lo:+.3f}, {hi:+.3f}]  bootstrap p {r['bootstrap_p']:.4f}"
                         f"  McNemar {r['mcnemar']['a_only']}/{r['mcnemar']['b_only']} p {r['mcnemar']['p_value']:.4f}")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.compare:
        return compare(args)
    return run(args)
