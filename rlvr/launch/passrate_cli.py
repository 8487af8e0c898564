"""`rlvr passrate CONFIG --k 16 --out FILE`: sample K completions for each training prompt with the config's model
on its rollout workers (transformers on CPU, vLLM on GPU), score them with its reward service, and append one line
per prompt to a pass-rate map (rlvr.data.passrate); print and save the histogram.

The map is appended batch by batch and prompts already in it are skipped, so an interrupted measurement continues
where it stopped (a GPU call of at most 10 minutes can be repeated). Stopped by SIGINT (a deadline), it still
writes the summary of the prompts measured so far, marked incomplete, and exits with 130. The training prompts are
those GRPO would see (data, less the learning curve's held-out slice), before any pass-rate filter.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rlvr.config import RunConfig, load_config
from rlvr.data.passrate import format_histogram, histogram, passrate_record, prompt_id, read_records
from rlvr.data.prompts import Example, render_prompt
from rlvr.rewards.types import RewardResult, Sample
from rlvr.rollout.base import Completion, SamplingParams


@dataclass
class Scored:
    """One prompt with its K completions and their reward results."""

    example: Example
    completions: list[Completion]
    results: list[RewardResult]


def sample_scored(cfg: RunConfig, rollout, rewards, tokenizer, examples: list[Example], k: int, *,
                  temperature: float, batch_prompts: int, seed: int) -> Iterator[list[Scored]]:
    """K samples per example on the rollout workers, scored by the reward workers; one list per batch of prompts."""
    for index, lo in enumerate(range(0, len(examples), batch_prompts)):
        chunk = examples[lo: lo + batch_prompts]
        params = SamplingParams(n=k, temperature=temperature, top_p=cfg.rollout.top_p,
                                max_new_tokens=cfg.rollout.max_new_tokens, stop=tuple(cfg.rollout.stop),
                                seed=seed * 1_000_003 + 500_000 + index, logprobs=False)
        completions = rollout.generate([render_prompt(tokenizer, cfg.data, ex.prompt) for ex in chunk], params)
        results = rewards.score([Sample(chunk[c.prompt_index].prompt, c.text, chunk[c.prompt_index].reference)
                                 for c in completions])
        yield [Scored(ex, completions[i * k:(i + 1) * k], results[i * k:(i + 1) * k]) for i, ex in enumerate(chunk)]


def measure(cfg: RunConfig, workers, tokenizer, examples: list[Example], k: int, out: Path,
            batch_prompts: int) -> list[dict]:
    """Append the pass rates of the examples not yet in `out`; return every record of the file."""
    done = {r["id"] for r in read_records(out)}
    todo = [ex for ex in examples if prompt_id(ex.prompt) not in done]
    if done:
        print(f"[rlvr] passrate: {len(done)} prompts already in {out}, {len(todo)} to go", flush=True)
    t0 = time.perf_counter()
    with out.open("a") as f:
        batches = sample_scored(cfg, workers.rollout, workers.rewards, tokenizer, todo, k,
                                temperature=cfg.rollout.temperature, batch_prompts=batch_prompts, seed=cfg.run.seed)
        for n, batch in enumerate(batches, 1):
            for s in batch:
                f.write(json.dumps(passrate_record(s.example.prompt, [r.score for r in s.results])) + "\n")
            f.flush()
            print(f"[rlvr] passrate: {min(n * batch_prompts, len(todo))}/{len(todo)} prompts, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return read_records(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rlvr passrate", description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="a GRPO preset (its model, data, rollout and rewards sections are used)")
    p.add_argument("--k", type=int, help="samples per prompt (default: passrate.k)")
    p.add_argument("--out", help="the map, JSONL (default: passrate.out or OUTPUT_DIR/passrate.jsonl)")
    p.add_argument("--prompts", type=int, help="measure only the first N training prompts")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    from rlvr.launch.grpo_job import training_examples

    args = parse_args(argv)
    extra = [f"passrate.{key}={value}" for key, value in (("k", args.k), ("out", args.out),
                                                          ("prompts", args.prompts)) if value is not None]
    cfg = load_config(args.config, args.overrides + extra)
    out = Path(cfg.passrate.out or Path(cfg.run.output_dir) / "passrate.jsonl")
    examples, _ = training_examples(cfg, filtered=False)
    examples = examples[: cfg.passrate.prompts]
    try:
        records, stopped = run_passrate_job(cfg, examples, out), False
    except KeyboardInterrupt:  # a deadline's SIGINT: every flushed line stays, and the summary covers them
        records, stopped = read_records(out), True
    if not records:
        print(f"rlvr passrate: stopped before any prompt was measured ({out} is empty)", flush=True)
        return 130
    summary = {**histogram(records), "requested": len(examples), "complete": not stopped}
    out.with_name(out.name.removesuffix(".jsonl") + ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_histogram(summary), flush=True)
    if stopped:
        print(f"rlvr passrate: stopped with {len(records)} of {len(examples)} prompts measured; the same command "
              "continues the map", flush=True)
        return 130
    return 0


def run_passrate_job(cfg: RunConfig, examples: list[Example], out: Path) -> list[dict]:
    """Start rollout and reward workers only (no learner), measure, shut them down."""
    from rlvr.launch.cluster import connect
    from rlvr.model_io import load_tokenizer, resolve_model_path
    from rlvr.rewards.loader import check_reward_paths

    check_reward_paths(cfg.rewards)
    out.parent.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model_path(cfg.model, Path(cfg.run.output_dir), cfg.run.seed)
    tokenizer = load_tokenizer(model_path)
    connect(cfg)
    with ScoringWorkers(cfg, model_path) as workers:
        return measure(cfg, workers, tokenizer, examples, cfg.passrate.k, out, cfg.passrate.batch_prompts)


class ScoringWorkers:
    """Rollout and reward workers of a run, without learners (pass-rate maps, RFT sampling)."""

    def __init__(self, cfg: RunConfig, model_path: str):
        self.cfg, self.model_path = cfg, model_path

    def __enter__(self):
        from rlvr.actors.reward_pool import RewardPool
        from rlvr.actors.rollout_group import RolloutGroup
        from rlvr.launch.cluster import Placement

        self.placement = Placement(self.cfg, only=("rollout", "reward"))
        self.rollout = self.rewards = None
        try:
            self.rollout = RolloutGroup(self.cfg, self.model_path, self.placement.scheduling("rollout"))
            self.rewards = RewardPool(self.cfg.rewards, self.placement.scheduling("reward"),
                                      service_kwargs={"stop": list(self.cfg.rollout.stop)})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.rollout is not None:
            self.rollout.shutdown()
        if self.rewards is not None:
            self.rewards.close()
        self.placement.remove()
