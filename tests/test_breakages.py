"""Breakages of the core that no other test saw (issue 19), checked in-process against hand-computed values:
the LR schedule's values, top-p sampling, EOS trimming and stop strings of the transformers engine, the reward
worker's soft deadline, the driver's RNG on resume, drop-and-refill and the preflight as the loop calls them.

The loop tests use plain in-process workers that only record the controller's calls (as tests/test_overlap.py
does); the real actors are covered by the end-to-end tests.
"""

from __future__ import annotations

import json
import math
import random
import textwrap
from pathlib import Path

import pytest
import torch

from rlvr.config import load_config
from rlvr.data.prompts import Example
from rlvr.rewards.types import RewardResult, Sample, Verdict
from rlvr.rollout.base import Completion, SamplingParams
from tests.test_overlap import Sampler  # the prompt sampler fake the overlap tests use


# -- LR schedule -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule,expected", [
    # warm-up 4 steps (1/4 .. 4/4), then over the 8 remaining steps of 12: constant, linear or cosine to 0
    ("constant", [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.25, 0.5, 0.75, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0]),
    ("cosine", [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)] + [0.0]),
])
def test_lr_schedule_values(schedule, expected):
    from rlvr.learner.deepspeed_setup import lr_lambda

    f = lr_lambda(schedule, warmup=4, total=12)
    assert [f(s) for s in range(14)] == pytest.approx(expected, abs=1e-12)


def test_lr_schedule_without_warmup_or_decay_room():
    from rlvr.learner.deepspeed_setup import lr_lambda

    assert [lr_lambda("linear", 0, 4)(s) for s in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert [lr_lambda("cosine", 3, 3)(s) for s in range(5)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0])
    assert [lr_lambda("linear", 0, 1)(s) for s in range(2)] == pytest.approx([1.0, 0.0])


# -- transformers engine ---------------------------------------------------------------------------------------

def test_top_p_samples_only_inside_the_nucleus():
    """p = (.5, .3, .15, .05), top_p .7: tokens 0 and 1 hold the smallest prefix reaching .7, so only they are
    drawn, in ratio .5 : .3; the logprob returned is under the full distribution (what the learner recomputes)."""
    from rlvr.rollout.hf_engine import sample_next

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits_BV = probs.log().expand(4000, 4)
    gen = torch.Generator().manual_seed(0)
    tokens, logp = sample_next(logits_BV, SamplingParams(top_p=0.7), gen)
    counts = torch.bincount(tokens, minlength=4)
    assert counts[2] == counts[3] == 0 and counts[0] > 0 and counts[1] > 0
    assert float(counts[0] / (counts[0] + counts[1])) == pytest.approx(0.5 / 0.8, abs=0.03)
    assert torch.allclose(logp, probs.log()[tokens], atol=1e-6)
    # top_p = 1 keeps everything: the tail is drawn too
    tokens, _ = sample_next(logits_BV, SamplingParams(top_p=1.0), gen)
    assert (torch.bincount(tokens, minlength=4) > 0).all()


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from rlvr.config import RolloutSection
    from rlvr.rollout.hf_engine import HFEngine

    return HFEngine.from_path(tiny_model_dir, RolloutSection(), device="cpu")


def seeded(engine, prompts, max_new_tokens=12, stop=()):
    """Sampling with a fixed seed: the same tokens on every call up to where a completion is ended."""
    return engine.generate(prompts, SamplingParams(n=1, max_new_tokens=max_new_tokens, stop=stop, seed=19))


def test_eos_ends_a_completion_and_is_kept_rows_after_it_trimmed(engine):
    """Seeded sampling is deterministic, so the EOS can be chosen among the tokens it emits: the row that emits it
    first must end right after it (with it, finish 'stop', one logprob per token), while the other row goes on."""
    tok = engine.tokenizer
    prompts = [[5, 9, 13], [7, 21, 8, 30]]
    free = seeded(engine, prompts)
    # a token the first row emits at position k that the second row does not emit before k + 2
    a, b = free[0].token_ids, free[1].token_ids
    k = next(i for i in range(1, len(a)) if a[i] not in b[: i + 2] and a[i] not in a[:i])
    eos_before = tok.eos_token_id
    tok.eos_token_id = a[k]
    try:
        first, second = seeded(engine, prompts)
    finally:
        tok.eos_token_id = eos_before
    assert first.token_ids == a[: k + 1] and first.finish_reason == "stop"
    assert len(first.logprobs) == k + 1
    assert first.logprobs == pytest.approx(free[0].logprobs[: k + 1], abs=1e-5)
    assert len(second.token_ids) > k + 1


def test_stop_string_cuts_tokens_and_text(engine):
    """The completion ends at the shortest token prefix containing the stop string; its text ends before it."""
    tok = engine.tokenizer
    prompt = [[6, 11, 17]]
    (free,) = seeded(engine, prompt)
    ids = free.token_ids
    stop = tok.decode(ids[3:5], skip_special_tokens=True)
    assert stop and stop not in tok.decode(ids[:4], skip_special_tokens=True), "pick another prompt"
    (cut,) = seeded(engine, prompt, stop=(stop,))
    assert cut.token_ids == ids[:5] and cut.finish_reason == "stop"
    assert cut.text == tok.decode(ids[:3], skip_special_tokens=True)
    assert len(cut.logprobs) == 5


# -- reward worker soft deadline ------------------------------------------------------------------------------

SLOW_MODULE = '''
import time

def slow(prompt, completion, reference):
    if "slow" in completion:
        time.sleep(60)
    return 1.0
'''


def test_soft_deadline_ends_a_slow_check_inside_the_worker(tmp_path, monkeypatch):
    """The worker's own deadline (a fraction of timeout_s) ends the slow check: the verdict says so, and the
    components finished before it keep their scores. Without it the parent's hard kill answers instead, losing
    them (its reason says 'killed')."""
    from rlvr.config import RewardFunction, RewardsSection
    from rlvr.rewards.service import RewardService

    (tmp_path / "slow_rewards_19.py").write_text(textwrap.dedent(SLOW_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    math_fn = "rlvr.rewards.math:math_reward"
    section = RewardsSection(functions=[RewardFunction(path=math_fn), RewardFunction(path="slow_rewards_19:slow")],
                             timeout_s=2.0)
    with RewardService(section) as svc:
        (result,) = svc.score([Sample("q", "slow <think>x</think> The answer is 18.", "#### 18")])
    assert result.verdict == Verdict.TIMEOUT
    assert "slow: ran past the" in result.reason and "killed" not in result.reason, result.reason
    assert result.components[math_fn] == 1.0


# -- the loop: resume, refill, preflight --------------------------------------------------------------------------

class Tokenizer:
    def encode(self, text, **_):
        return [ord(c) for c in text]


class SeededRollouts:
    """Completion text '0' or '1' from the request's seed: which groups have mixed rewards depends on the draw."""

    def __init__(self):
        self.seeds: list[int] = []
        self.weights = None

    def generate(self, prompt_ids, params):
        self.seeds.append(params.seed)
        rng = random.Random(params.seed)
        mixed = rng.random() < 0.5 and len(self.seeds) > 1  # the first draw of a step is all zero variance
        return [Completion(i, [1], [-0.5], str(k % 2 if mixed else 1)) for i, _ in enumerate(prompt_ids)
                for k in range(params.n)]

    def load_weights(self, weights) -> None:
        self.weights = weights


class ExactRewards:
    def score(self, samples):
        return [RewardResult(float(s.completion == s.reference), Verdict.CORRECT) for s in samples]


class StateLearners:
    def save_checkpoint(self, directory: str, client_state: dict) -> None:
        (Path(directory) / "learner.json").write_text(json.dumps(client_state))

    def load_checkpoint(self, directory: str) -> dict:
        return json.loads((Path(directory) / "learner.json").read_text())

    def weights_ref(self):
        return "weights"


def loop_config(tmp_path, *extra: str):
    return load_config(None, ["model.random_init.hidden_size=64", "data.prompts_per_step=2",
                              "rollout.samples_per_prompt=2", "learner.num_actors=1", "learner.micro_batch_size=4",
                              f"run.output_dir={tmp_path}", *extra])


def test_resume_restores_the_driver_rng(tmp_path):
    """Draws after a resume repeat those after the save (Python, NumPy and torch generators)."""
    import numpy as np

    from rlvr.utils.checkpoint import CheckpointDir
    from rlvr.trainer.grpo_loop import Workers, resume, save_checkpoint

    cfg = loop_config(tmp_path)
    workers = Workers(SeededRollouts(), ExactRewards(), StateLearners())
    save_checkpoint(cfg, workers, CheckpointDir(tmp_path, 2), Sampler(), 3)
    after_save = (random.random(), float(np.random.rand()), torch.rand(3).tolist())
    assert resume(cfg, workers, Sampler()) == 3
    assert (random.random(), float(np.random.rand()), torch.rand(3).tolist()) == after_save


def test_drop_zero_variance_groups_refills_the_batch_in_collect_batch(tmp_path):
    """Switched on, a step whose first draw has no mixed group draws again (with its own seeds) until the batch is
    informative; the on-policy rewards are the first draw's only."""
    from rlvr.trainer.grpo_loop import Workers, collect_batch, zero_variance_fraction

    cfg = loop_config(tmp_path, "algorithm.drop_zero_variance_groups=true", "algorithm.max_refill_draws=8")
    rollouts = SeededRollouts()
    batch = collect_batch(cfg, Workers(rollouts, ExactRewards(), StateLearners()), Tokenizer(), Sampler(), 0)
    assert batch.zero_var == 1.0 and batch.on_policy == [1.0] * 4
    assert batch.draws >= 1 and len(rollouts.seeds) == batch.draws + 1
    assert len(set(rollouts.seeds)) == len(rollouts.seeds)
    assert len(batch.groups) == 2 and zero_variance_fraction(batch.groups) == 0.0
    off = collect_batch(loop_config(tmp_path), Workers(SeededRollouts(), ExactRewards(), StateLearners()),
                        Tokenizer(), Sampler(), 0)
    assert off.draws == 0 and zero_variance_fraction(off.groups) == 1.0


def test_refill_prompts_sizes_each_refill_draw(tmp_path):
    """algorithm.refill_prompts: the first draw keeps data.prompts_per_step prompts (the on-policy sample), each
    refill draws refill_prompts; the batch still trains on prompts_per_step groups, and rollouts/sampled counts
    every completion drawn. Without the filter the option is refused at load."""
    from rlvr.config import ConfigError
    from rlvr.trainer.grpo_loop import Workers, collect_batch, zero_variance_fraction

    sizes: list[int] = []

    class Sizes(SeededRollouts):
        def generate(self, prompt_ids, params):
            sizes.append(len(prompt_ids))
            return super().generate(prompt_ids, params)

    cfg = loop_config(tmp_path, "algorithm.drop_zero_variance_groups=true", "algorithm.max_refill_draws=8",
                      "algorithm.refill_prompts=5")
    sampler = Sampler()
    batch = collect_batch(cfg, Workers(Sizes(), ExactRewards(), StateLearners()), Tokenizer(), sampler, 0)
    assert batch.draws >= 1 and sizes == [2] + [5] * batch.draws and sampler.position == 2 + 5 * batch.draws
    assert len(batch.groups) == 2 and zero_variance_fraction(batch.groups) == 0.0 and batch.on_policy == [1.0] * 4
    assert batch.sampled == 2 * (2 + 5 * batch.draws)  # G = 2
    with pytest.raises(ConfigError, match="refill_prompts"):
        loop_config(tmp_path, "algorithm.refill_prompts=5")


def test_preflight_reports_pass_rate_and_mixed_groups(tmp_path):
    """algorithm.preflight_prompts: G samples of each chosen prompt scored before training, written to
    preflight.json; here every group is (1, 0): pass@G 1, pass@1 .5, all groups mixed."""
    from rlvr.launch.grpo_job import run_preflight
    from rlvr.trainer.grpo_loop import Workers

    class Alternating(SeededRollouts):
        def generate(self, prompt_ids, params):
            return [Completion(i, [1], [-0.5], str(1 - k % 2)) for i, _ in enumerate(prompt_ids)
                    for k in range(params.n)]

    cfg = loop_config(tmp_path, "algorithm.preflight_prompts=3")
    examples = [Example(f"p{i}", "1") for i in range(5)]
    report = run_preflight(cfg, Workers(Alternating(), ExactRewards(), StateLearners()), Tokenizer(), examples)
    assert (report["prompts"], report["G"], report["pass_at_G"], report["pass_at_1"]) == (3, 2, 1.0, 0.5)
    assert report["mixed_fraction"] == 1.0
    assert json.loads((tmp_path / "preflight.json").read_text()) == json.loads(json.dumps(report))


# -- metrics on resume ------------------------------------------------------------------------------------------

def test_tensorboard_resume_hides_what_the_interrupted_run_wrote_after_the_checkpoint(tmp_path):
    """A run logged steps 0-4 (and an occasional tag at step 4) and is resumed from its step-2 checkpoint: the
    reader must see steps 0-1 of the first run and 2-3 of the resumed one, and nothing of the lost step 4. The
    occasional tag is the case TensorBoard's own out-of-order purge misses (no later event of that tag)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlvr.trainer.metrics import TensorBoardSink

    first = TensorBoardSink(tmp_path, 0)
    for step in range(5):
        first(step, {"loss": float(step)})
    first(4, {"eval/accuracy": 0.5})
    first.close()
    resumed = TensorBoardSink(tmp_path, 2)
    for step in (2, 3):
        resumed(step, {"loss": 10.0 + step})
    resumed.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(0, 0.0), (1, 1.0), (2, 12.0), (3, 13.0)]
    assert "eval/accuracy" not in events.Tags()["scalars"] or events.Scalars("eval/accuracy") == []
