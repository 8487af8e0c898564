"""Reward health in the loop: a reward function that keeps raising or timing out stops the run.

A function that always raises would otherwise train on all-zero rewards and exit 0. Each step, the loop hands the
step's results to `RewardHealth.check`; a function whose `error` + `timeout` share of the step's samples is above
`rewards.health.max_failure_share` for `rewards.health.steps` steps in a row stops the run with one line naming the
function and the first failure of that streak (exception, message, file and line, from `RewardResult.failures`).
The full traceback was logged once by the checker process (`worker.RepeatedLog`).

Samples whose input was unusable (over-long, NUL bytes) blame no function and do not count here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rlvr.config import RewardHealthSection
from rlvr.rewards.types import RewardResult
from rlvr.utils.errors import RunStopped


class RewardHealthError(RunStopped):
    """A reward function failed on too many samples for too many steps; `name` is the function."""


class RewardHealth:
    def __init__(self, cfg: RewardHealthSection):
        self.cfg = cfg
        self.streaks: Counter[str] = Counter()
        """Failed steps in a row, per function."""
        self.first: dict[str, str] = {}
        """The first failure of each function's current streak."""

    def check(self, step: int, results: Sequence[RewardResult]) -> dict[str, float]:
        """Count this step's failures per function; raise RewardHealthError when a streak reaches the limit.
        Returns each failing function's share of the step's samples (for logging)."""
        if not self.cfg.enabled or not results:
            return {}
        counts: Counter[str] = Counter()
        first: dict[str, str] = {}
        for result in results:
            for name, reason in result.failures.items():
                counts[name] += 1
                first.setdefault(name, reason)
        shares = {name: n / len(results) for name, n in counts.items()}
        for name in set(self.streaks) | set(shares):
            if shares.get(name, 0.0) > self.cfg.max_failure_share:
                self.streaks[name] += 1
                self.first.setdefault(name, first[name])
            else:
                self.streaks.pop(name, None)
                self.first.pop(name, None)
        for name, streak in sorted(self.streaks.items()):
            if streak >= self.cfg.steps:
                raise RewardHealthError(self._message(name, shares[name]), name)
            print(f"[rlvr] warning: reward function {name} failed on {shares[name]:.0%} of step {step}'s samples "
                  f"({streak} of {self.cfg.steps} such steps before the run stops)", flush=True)
        return shares

    def _message(self, name: str, share: float) -> str:
        first = " ".join(self.first[name].split())  # one line, whatever the function's message held
        return (f"reward function {name} failed (error or timeout) on more than "
                f"{self.cfg.max_failure_share:.0%} of the samples for {self.cfg.steps} steps in a row "
                f"({share:.0%} in the last); first failure: {first} (limits: rewards.health)")
