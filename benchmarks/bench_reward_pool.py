"""Reward checker pool benchmark: wall time of one batch whose every check hangs, by pool size.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_reward_pool.py                  # as in docs/benchmarks.md
    PYTHONPATH=. .venv/bin/python benchmarks/bench_reward_pool.py --n 8 --timeout 2 --processes 1 4 8

Two hanging functions: `sleeps` (time.sleep: the checker's own soft deadline ends it at 0.8 x limit) and
`ignores_alarm` (ignores SIGALRM: only the service's hard kill at the limit ends it, then the process is replaced).
`processes=1` is the service before the pool: one checker, so the timeouts run one after another.
"cold": a fresh service (one process; more start while the first checks hang); "warm": after `start_all()`, as a
later step finds the pool. Reported: wall seconds for the batch, the most checks in flight at once, restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rlvr.config import RewardFunction, RewardsSection
from rlvr.rewards.service import RewardService
from rlvr.rewards.types import Sample, Verdict

HANGING = '''
import signal, time

def sleeps(prompt, completion, reference):
    time.sleep(600)
    return 1.0

def ignores_alarm(prompt, completion, reference):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(600)
    return 1.0
'''


def one_batch(fn: str, n: int, timeout_s: float, processes: int, warm: bool) -> dict:
    cfg = RewardsSection(functions=[RewardFunction(path=f"bench_hanging:{fn}")], timeout_s=timeout_s,
                         processes=processes)
    with RewardService(cfg) as svc:
        if warm:
            svc.start_all()
        start = time.perf_counter()
        results = svc.score([Sample("q", f"The answer is {i}.", f"#### {i}") for i in range(n)])
        wall = time.perf_counter() - start
        assert all(r.verdict == Verdict.TIMEOUT for r in results), [r.reason for r in results]
        return {"fn": fn, "n": n, "timeout_s": timeout_s, "processes": processes, "pool": "warm" if warm else "cold",
                "wall_s": round(wall, 2), "wall_in_limits": round(wall / timeout_s, 2),
                "peak_in_flight": svc.peak_in_flight, "restarts": svc.restarts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="hanging checks in the batch")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench_hanging.py").write_text(textwrap.dedent(HANGING))
        sys.path.insert(0, tmp)  # the checker processes inherit sys.path
        rows = []
        for fn in ("sleeps", "ignores_alarm"):
            for processes in args.processes:
                for warm in ((False,) if processes == 1 else (False, True)):
                    rows.append(one_batch(fn, args.n, args.timeout, processes, warm))
                    print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"cpus": os.cpu_count(), "load_avg": os.getloadavg()}))


if __name__ == "__main__":
    main()
