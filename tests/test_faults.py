"""Actor faults: a rollout worker and a reward worker killed mid-run are created again and their work redone; the
run finishes with every step logged once and the same numbers as a run without faults. A hung actor is named."""

from __future__ import annotations

import logging
import threading

import pytest
import ray

from rlvr.actors.calls import ActorTimeout, gather
from tests import rl_runs

pytestmark = pytest.mark.slow


def test_killed_rollout_and_reward_workers_are_replaced(ray_cluster, tiny_model_dir, tmp_path, capsys):
    want = rl_runs.baseline(tiny_model_dir)
    seen: dict[int, list[str]] = {}

    def chaos(step: int) -> None:
        seen[step] = sorted(ray.util.list_named_actors())
        if step == 1:
            ray.kill(rl_runs.actor("/rollout-0"))
            ray.kill(rl_runs.actor("/reward-0"))

    rl_runs.run(rl_runs.config(tiny_model_dir, tmp_path, "checkpoint.every=0", "checkpoint.save_final=false"),
                on_step=chaos)
    rl_runs.assert_same_metrics(rl_runs.rows(tmp_path), want)
    # the replacements were created (and are the ones that served the last steps)
    assert any(n.endswith("/rollout-0-r1") for n in seen[3]), seen[3]
    assert any(n.endswith("/reward-0") for n in seen[3]), seen[3]
    assert "rollout worker 0 died during generate" in capsys.readouterr().out


@ray.remote(num_cpus=0)
class Stuck:
    def __init__(self):
        self.release = threading.Event()

    def hang(self) -> None:
        self.release.wait()  # answers only when told to: a stand-in for a deadlocked worker

    def ping(self) -> str:
        return "ok"


def test_watchdog_names_the_actor_that_stopped_answering(ray_cluster, caplog):
    stuck, fine = Stuck.remote(), Stuck.remote()
    try:
        ray.get([stuck.ping.remote(), fine.ping.remote()], timeout=120)  # both started: only `hang` is slow
        refs = [fine.ping.remote(), stuck.hang.remote()]
        with caplog.at_level(logging.WARNING, logger="rlvr"):
            with pytest.raises(ActorTimeout, match=r"^reward worker 7 did not answer within 3 s \(score\)$"):
                gather(refs, ["rollout worker 0", "reward worker 7"], timeout_s=3.0, what="score")
        barks = [r.getMessage() for r in caplog.records if "watchdog" in r.getMessage()]
        assert barks and all("reward worker 7" in b and "rollout worker 0" not in b for b in barks), barks
    finally:
        ray.kill(stuck)
        ray.kill(fine)
