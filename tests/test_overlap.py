"""rollout.overlap in the controller, with in-process workers (no Ray): batch k+1 is sampled while the learner
trains on batch k, every batch comes from exactly one set of weights (one update old), weights never change under
a running generation, and a resumed run trains on the batch saved with the checkpoint.

The workers stand in for Ray actors only to observe the controller's calls and their timing; the real actors run
the same loop in tests/test_e2e_tiny.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.data.prompts import Example
from rlvr.rewards.types import RewardResult, Verdict
from rlvr.rollout.base import Completion
from rlvr.trainer.grpo_loop import Workers, run_grpo


class Rollouts:
    """Completion token = the weights version it was sampled with; its reward depends on the sample index."""

    def __init__(self, step_of_seed: dict[int, int]):
        self.version = 0
        self.generating = threading.Event()
        self.step_of_seed = step_of_seed
        self.steps_started: set[int] = set()
        self.called = threading.Condition()

    def wait_for_step(self, step: int, timeout: float) -> bool:
        with self.called:
            return self.called.wait_for(lambda: step in self.steps_started, timeout)

    def generate(self, prompt_ids, params):
        self.generating.set()
        with self.called:
            self.steps_started.add(self.step_of_seed[params.seed])  # see grpo_loop.sampling_params
            self.called.notify_all()
        try:
            return [Completion(i, [self.version], [-0.5], str(k % 2)) for i, _ in enumerate(prompt_ids)
                    for k in range(params.n)]
        finally:
            self.generating.clear()

    def load_weights(self, version) -> None:
        assert not self.generating.is_set(), "weights changed during a generation"
        self.version = version


class Rewards:
    def score(self, samples):
        return [RewardResult(float(s.completion == "1"), Verdict.CORRECT) for s in samples]


class Learner:
    def __init__(self, rollouts: Rollouts, overlap_steps: int):
        self.rollouts, self.overlap_steps = rollouts, overlap_steps
        self.version = 0
        self.trained_on: list[set[int]] = []  # per train call: the weight versions its batch was sampled with
        self.old_logprobs: list[list[float]] = []

    def train_grpo(self, rollouts) -> dict[str, float]:
        if self.version + 1 < self.overlap_steps:  # update k (the version) of a run with a step after it
            assert self.rollouts.wait_for_step(self.version + 1, 10), "next batch not sampled during the update"
        self.trained_on.append({r.completion_ids[0] for r in rollouts})
        self.old_logprobs.append([lp for r in rollouts for lp in r.logprobs])
        self.version += 1
        return {"pg_loss_sum": 0.0, "clipped_sum": 0.0, "entropy_sum": 0.0, "tokens": 1.0, "grad_norm": 0.0,
                "lr": 0.1}

    def weights_ref(self):
        return self.version

    def save_checkpoint(self, directory: str, client_state: dict) -> None:
        (Path(directory) / "learner.json").write_text(json.dumps({"version": self.version, **client_state}))

    def load_checkpoint(self, directory: str) -> dict:
        state = json.loads((Path(directory) / "learner.json").read_text())
        self.version = state["version"]
        return state


class Sampler:
    def __init__(self):
        self.position = 0

    def next_batch(self, n: int) -> list[Example]:
        out = [Example(f"p{self.position + i}", "1") for i in range(n)]
        self.position += n
        return out

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]

    def observe(self, prompt: str, rewards) -> None:  # the PromptSampler interface: no pass-rate refresh here
        pass

    def metrics(self) -> dict:
        return {}

    def save(self, out_dir) -> None:
        pass


class Tokenizer:
    def __call__(self, text, **_):
        return {"input_ids": [ord(c) for c in text]}

    def encode(self, text, **_):
        return [ord(c) for c in text]


class Log:
    def __init__(self):
        self.rows: list[dict] = []

    def log(self, step, metrics):
        self.rows.append({"step": step, **metrics})


def setup(tmp_path: Path, overlap: bool, steps: int = 5, *extra: str):
    cfg = load_config(None, ["model.random_init.hidden_size=64", f"run.steps={steps}", f"rollout.overlap={overlap}",
                             "data.prompts_per_step=2", "rollout.samples_per_prompt=2", "data.source=copy_digits",
                             "learner.num_actors=1", "learner.micro_batch_size=4",
                             f"run.output_dir={tmp_path}", *extra])
    from rlvr.trainer.grpo_loop import sampling_params

    rollouts = Rollouts({sampling_params(cfg, s, d).seed: s for s in range(steps)
                         for d in range(cfg.algorithm.max_refill_draws + 1)})
    learner = Learner(rollouts, steps if overlap else 0)
    return cfg, Workers(rollouts, Rewards(), learner), learner


@pytest.mark.parametrize("overlap", [False, True])
def test_batches_come_from_one_weights_version_and_overlap_is_one_step_behind(tmp_path, overlap):
    cfg, workers, learner = setup(tmp_path, overlap)
    log = Log()
    run_grpo(cfg, workers, Tokenizer(), Sampler(), log)
    assert [r["step"] for r in log.rows] == list(range(5))
    # without overlap batch k is sampled by the weights after k updates; with it, by those after k-1
    want = [{k} for k in range(5)] if not overlap else [{0}] + [{k - 1} for k in range(1, 5)]
    assert learner.trained_on == want
    assert all("time/wait_rollout_s" in r and "time/learn_s" in r for r in log.rows)


def test_overlap_feeds_the_engines_logprobs_to_the_learner_and_asks_for_them(tmp_path):
    cfg, workers, learner = setup(tmp_path, True, 2)
    run_grpo(cfg, workers, Tokenizer(), Sampler(), Log())
    assert learner.old_logprobs == [[-0.5] * 4, [-0.5] * 4]


def test_overlap_resume_trains_on_the_batch_saved_with_the_checkpoint(tmp_path):
    steps = ["checkpoint.every=2", "checkpoint.keep_last=3"]
    cfg, workers, whole = setup(tmp_path / "whole", True, 5, *steps)
    run_grpo(cfg, workers, Tokenizer(), Sampler(), Log())

    class Interrupt(Log):
        def log(self, step, metrics):
            if step == 2:
                raise KeyboardInterrupt  # as a Ctrl-C after step 1's checkpoint (step 2's batch sampled ahead)
            super().log(step, metrics)

    cfg, workers, first = setup(tmp_path / "split", True, 5, *steps)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(cfg, workers, Tokenizer(), Sampler(), Interrupt())
    assert any((tmp_path / "split").glob("**/next_batch.pkl"))
    first.trained_on = first.trained_on[:2]  # step 2 trained but never checkpointed: redone after the resume
    cfg, workers, second = setup(tmp_path / "split", True, 5, *steps)
    from rlvr.trainer.grpo_loop import resume

    sampler = Sampler()
    start = resume(cfg, workers, sampler)
    assert start == 2
    run_grpo(cfg, workers, Tokenizer(), sampler, Log(), start)
    # the resumed run's step 2 batch is the one sampled (before update 2) by the first run: version 1, not 2
    assert first.trained_on + second.trained_on == whole.trained_on


def test_overlap_with_colocated_sleep_is_refused_before_anything_starts():
    with pytest.raises(ConfigError, match="rollout.overlap"):
        load_config(None, ["model.random_init.hidden_size=64", "rollout.engine=vllm", "rollout.colocate=true",
                           "rollout.overlap=true"])


@pytest.mark.parametrize("extra, match", [
    (["rollout.overlap=false"], "only applies with rollout.overlap=true"),
    (["rollout.overlap=true", "learner.zero_stage=3"], "ZeRO-3 shards"),
])
def test_learner_old_logprobs_refused_where_they_cannot_work(extra, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["model.random_init.hidden_size=64", "rollout.overlap_old_logprobs=learner", *extra])


def test_learner_old_logprobs_stop_asking_the_engine_for_them():
    from rlvr.trainer.grpo_loop import sampling_params

    base = ["model.random_init.hidden_size=64", "rollout.overlap=true"]
    assert sampling_params(load_config(None, base), 0).logprobs
    assert not sampling_params(load_config(None, [*base, "rollout.overlap_old_logprobs=learner"]), 0).logprobs


def test_collate_aligns_engine_logprobs_with_the_tokens_they_score():
    from rlvr.learner.batch import collate
    from rlvr.rollout.base import Rollout

    mb = collate([Rollout([1, 2, 3], [4, 5], [-1.0, -2.0]), Rollout([1], [6, 7, 8], [-3.0, -4.0, -5.0])], 0,
                 rollout_logprobs=True)
    mask_BT = mb.completion_mask_BT
    assert mb.rollout_logprobs_BT[mask_BT].tolist() == [-1.0, -2.0, -3.0, -4.0, -5.0]
    assert mb.rollout_logprobs_BT[~mask_BT].abs().sum() == 0
    with pytest.raises(ValueError, match="logprobs"):
        collate([Rollout([1], [2, 3], [])], 0, rollout_logprobs=True)
