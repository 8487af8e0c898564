"""Reward service benchmark: checks per second per worker (GSM8K-style, MATH-style) and per-check latency with a
fraction of adversarial inputs mixed in.

    .venv/bin/python benchmarks/bench_rewards.py                      # defaults as in docs/benchmarks.md
    .venv/bin/python benchmarks/bench_rewards.py --latency-n 2000 --adversarial 0.01 --timeout 5

Reads ../shared/data relative to the repository root; falls back to generated GSM8K-style samples without it.
Latency is `RewardResult.elapsed_s`: from the moment the worker could start a check to its answer, as the service
measures it (a worker replaced after a kill adds its start-up to the batch's wall time, reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

from rlvr.config import RewardsSection
from rlvr.rewards.extract import extract_gsm8k_gold
from rlvr.rewards.math import math_reward
from rlvr.rewards.service import RewardService, verdict_fractions
from rlvr.rewards.types import Sample

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

GSM8K_FORMATS = [
    "Adding it up gives \\boxed{{{n}}}.",
    "Let me compute. 3 + 4 = 7. The answer is {n}.",
    "2 * 3 = 6\n#### {n}",
    "First 2 + 2 = 4, then it comes to ${n:,} in total.",
    "{n}\nQuestion: Tom has 5 apples. How many?",
]

ADVERSARIAL = [
    Sample("q", "\\boxed{9^{9^{9^{9}}}}", "5"),
    Sample("q", "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", "\\frac{1}{2}"),
    Sample("q", "\\boxed{\\int_0^1 e^{x^{x^{x}}} \\, dx}", "1"),
    Sample("q", "x" * 1_000_000, "5"),
    Sample("q", "The answer is 7\x002.", "#### 72"),
    Sample("q", "\\boxed{" * 140_000, "\\sqrt{2}"),
]


def gsm8k_samples(n: int, rng: random.Random, wrong_fraction: float = 0.3) -> list[Sample]:
    path = DATA / "gsm8k" / "test.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        golds = [(r["question"], r["answer"], int(extract_gsm8k_gold(r["answer"]))) for r in rows]
    else:
        golds = [("q", f"#### {k}", k) for k in (rng.randrange(1, 100_000) for _ in range(1000))]
    out = []
    for i in range(n):
        question, answer, gold = golds[i % len(golds)]
        value = gold + 1 if rng.random() < wrong_fraction else gold
        out.append(Sample(question, "Step by step: 12 + 30 = 42. " + GSM8K_FORMATS[i % len(GSM8K_FORMATS)].format(n=value), answer))
    return out


def math_samples(n: int) -> list[Sample]:
    rows = [json.loads(line) for line in (DATA / "math500" / "test.jsonl").read_text().splitlines()]
    return [Sample(r["problem"], r["solution"], r["answer"]) for r in (rows * (n // len(rows) + 1))[:n]]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def throughput(svc: RewardService, samples: list[Sample], batch: int) -> dict:
    """Checks per second through one worker; CPU seconds of the worker and of this (parent) process, so the
    figure can be read per core."""
    pid = svc.worker_pid()
    worker0, parent0 = _cpu_s(pid), time.process_time()
    start = time.perf_counter()
    results = []
    for i in range(0, len(samples), batch):
        results.extend(svc.score(samples[i : i + batch]))
    wall = time.perf_counter() - start
    assert svc.worker_pid() == pid, "the worker was replaced: CPU figures would be wrong"
    worker_cpu, parent_cpu = _cpu_s(pid) - worker0, time.process_time() - parent0
    return {"checks": len(samples), "wall_s": round(wall, 2), "checks_per_s": round(len(samples) / wall),
            "worker_cpu_s": round(worker_cpu, 2), "parent_cpu_s": round(parent_cpu, 2),
            "checks_per_cpu_s": round(len(samples) / (worker_cpu + parent_cpu)),
            "verdicts": {k.removeprefix("reward/verdict_"): round(v, 3) for k, v in verdict_fractions(results).items()}}


def in_process(samples: list[Sample]) -> float:
    start = time.perf_counter()
    for s in samples:
        math_reward(s.prompt, s.completion, s.reference)
    return round(len(samples) / (time.perf_counter() - start))


def latency(svc: RewardService, n: int, fraction: float, batch: int, rng: random.Random) -> dict:
    samples = gsm8k_samples(n, rng)
    for i in rng.sample(range(n), round(n * fraction)):
        samples[i] = ADVERSARIAL[i % len(ADVERSARIAL)]
    restarts0, start = svc.restarts, time.perf_counter()
    results = []
    for i in range(0, n, batch):
        results.extend(svc.score(samples[i : i + batch]))
    wall = time.perf_counter() - start
    elapsed = sorted(r.elapsed_s for r in results)
    q = statistics.quantiles(elapsed, n=100, method="inclusive")
    return {"checks": n, "adversarial": round(n * fraction), "timeout_s": svc.timeout_s, "wall_s": round(wall, 2),
            "p50_ms": round(q[49] * 1e3, 2), "p99_ms": round(q[98] * 1e3, 1), "max_ms": round(elapsed[-1] * 1e3, 1),
            "worker_restarts": svc.restarts - restarts0,
            "verdicts": {k.removeprefix("reward/verdict_"): round(v, 3) for k, v in verdict_fractions(results).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsm8k-n", type=int, default=20_000)
    parser.add_argument("--math-n", type=int, default=1_000)
    parser.add_argument("--latency-n", type=int, default=2_000)
    parser.add_argument("--adversarial", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    report = {"cpus": os.cpu_count()}
    start = time.perf_counter()
    with RewardService(RewardsSection(timeout_s=args.timeout)) as svc:
        # what replacing a killed worker costs: a fresh interpreter importing math-verify and sympy
        report["worker_start_s"] = round(time.perf_counter() - start, 2)
        gsm = gsm8k_samples(args.gsm8k_n, rng)
        svc.score(gsm[:100])  # warm-up: first parses load math-verify's grammar
        report["gsm8k_in_process_checks_per_s"] = in_process(gsm[:5000])
        report["gsm8k_service"] = throughput(svc, gsm, args.batch)
        if (DATA / "math500" / "test.jsonl").is_file():
            maths = math_samples(args.math_n)
            svc.score(maths[:20])
            report["math_service"] = throughput(svc, maths, args.batch)
        report["latency_mixed"] = latency(svc, args.latency_n, args.adversarial, args.batch, rng)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
