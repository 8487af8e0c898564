"""Run an engine over an eval set: prompts -> completions -> per-sample verdicts -> a JSONL of items and a summary.

Each JSONL line is one item: id, question, gold, and for the first sample `output`, `extracted` and `verdict` per
metric; `n_correct` per metric over the item's K samples; with K > 1 also every sample under `samples`. Lines are
written as chunks finish, so an interrupted run leaves its finished items behind. The summary is a pure function
of the lines (`summarize`), so it can be recomputed from a results file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlvr.eval import gsm8k
from rlvr.eval.passk import mean_pass_at_k, report_ks
from rlvr.eval.stats import wilson_interval
from rlvr.eval.tasks import Item, Task
from rlvr.rewards.types import Sample
from rlvr.rollout.base import Completion, RolloutEngine, SamplingParams


@dataclass(frozen=True)
class Judgement:
    extracted: str | None
    verdict: str
    """correct / incorrect / no_answer (and timeout / error from the reward service)."""

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


# Scores a batch of samples: for each sample, a Judgement per metric of the task.
Scorer = Callable[[list[Sample]], list[dict[str, Judgement]]]


def gsm8k_scorer(samples: list[Sample]) -> list[dict[str, Judgement]]:
    out = []
    for s in samples:
        scores = {m: gsm8k.score(s.completion, s.reference, m) for m in gsm8k.METRICS}
        out.append({m: Judgement(sc.extracted, sc.verdict) for m, sc in scores.items()})
    return out


@dataclass(frozen=True)
class EvalSettings:
    samples: int = 1
    """K completions per item; pass@k is reported for k up to K."""
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    chunk: int = 16
    """Items per engine call: bounds memory and sets how often progress is printed and lines are written."""

    def params(self, stop: tuple[str, ...], chunk_index: int) -> SamplingParams:
        # A distinct seed per chunk: the same seed everywhere would give every chunk the same random stream.
        return SamplingParams(
            n=self.samples, temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
            stop=stop, seed=self.seed + chunk_index,
        )


def item_record(task: Task, item: Item, completions: Sequence[Completion], verdicts: list[dict[str, Judgement]]):
    first, first_v = completions[0], verdicts[0]
    record: dict[str, Any] = {
        "task": task.name,
        "id": item.id,
        "question": item.question,
        "gold": gsm8k.gold_answer(item.gold) if task.name == "gsm8k" else item.gold,
        "output": first.text,
        "finish_reason": first.finish_reason,
        "extracted": {m: v.extracted for m, v in first_v.items()},
        "verdict": {m: v.verdict for m, v in first_v.items()},
        "n_samples": len(completions),
        "n_correct": {m: sum(v[m].correct for v in verdicts) for m in task.metrics},
    }
    if len(completions) > 1:
        record["samples"] = [
            {
                "output": c.text,
                "finish_reason": c.finish_reason,
                "extracted": {m: v.extracted for m, v in vs.items()},
                "verdict": {m: v.verdict for m, v in vs.items()},
            }
            for c, vs in zip(completions, verdicts)
        ]
    return record


def summarize(records: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Accuracy with a 95% CI, pass@k and the no-answer rate per metric, from item records.

    accuracy is the mean over items of (correct samples / K): greedy accuracy when K = 1, an estimate of pass@1 when
    K > 1. Its CI is Wilson's over items, with the per-item shares as fractional successes when K > 1 (items are
    the independent units: K samples of one question are not K independent trials).
    """
    if not records:
        raise ValueError("no items to summarise")
    k_total = {r["n_samples"] for r in records}
    if len(k_total) != 1:
        raise ValueError(f"items have different sample counts {sorted(k_total)}")
    (K,) = k_total
    out: dict[str, Any] = {"items": len(records), "samples": K}
    for m in metrics:
        counts = [r["n_correct"][m] for r in records]
        accuracy = sum(counts) / (K * len(records))
        ci = wilson_interval(sum(c / K for c in counts), len(records))
        out[m] = {
            "accuracy": accuracy,
            "ci95": list(ci),
            "correct": sum(counts) if K == 1 else None,
            "no_answer_rate": sum(r["verdict"][m] == "no_answer" for r in records) / len(records),
            "pass@k": {str(k): mean_pass_at_k(K, counts, k) for k in report_ks(K)},
            # With K = G at the training temperature: the share of prompts whose GRPO group would train.
            "mixed_fraction": sum(0 < c < K for c in counts) / len(records) if K > 1 else None,
        }
    out["truncated_rate"] = sum(r["finish_reason"] == "length" for r in records) / len(records)
    return out


def run_eval(
    engine: RolloutEngine,
    encode: Callable[[str], list[int]],
    task: Task,
    items: Sequence[Item],
    prompts: Sequence[str],
    scorer: Scorer,
    settings: EvalSettings,
    out_path: Path,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate, score and write every item; return the summary (also written to <out>.summary.json).

    `meta` (model, data, prompt settings) is copied into the summary so a results file says what produced it.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    start, K = time.monotonic(), settings.samples
    with open(out_path, "w", encoding="utf-8") as fh:
        for index, lo in enumerate(range(0, len(items), settings.chunk)):
            chunk_items, chunk_prompts = items[lo : lo + settings.chunk], prompts[lo : lo + settings.chunk]
            completions = engine.generate([encode(p) for p in chunk_prompts], settings.params(task.stop, index))
            if len(completions) != K * len(chunk_items):
                raise RuntimeError(f"engine returned {len(completions)} completions for {len(chunk_items)}x{K}")
            samples = [Sample(chunk_prompts[c.prompt_index], c.text, chunk_items[c.prompt_index].gold)
                       for c in completions]
            verdicts = scorer(samples)
            for j, item in enumerate(chunk_items):
                group = slice(j * K, (j + 1) * K)
                records.append(item_record(task, item, completions[group], verdicts[group]))
                fh.write(json.dumps(records[-1], ensure_ascii=False) + "\n")
            fh.flush()
            _progress(task, records, time.monotonic() - start, len(items))
    summary = {"task": task.name, **(meta or {}), **summarize(records, task.metrics),
               "settings": asdict(settings), "elapsed_s": round(time.monotonic() - start, 2)}
    summary_path(out_path).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summary_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name.removesuffix(".jsonl") + ".summary.json")


def _progress(task: Task, records: list[dict[str, Any]], elapsed: float, total: int) -> None:
    accs = " ".join(
        f"{m} {sum(r['n_correct'][m] for r in records) / (len(records) * records[0]['n_samples']):.3f}"
        for m in task.metrics
    )
    print(f"{task.name}: {len(records)}/{total} items, {accs}, {elapsed:.0f} s", file=sys.stderr, flush=True)


def read_results(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
