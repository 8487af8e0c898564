"""The packed learner (learner.max_tokens_per_micro_batch) in one process, no Ray: it reaches what the padded one
reaches, and it trains with whichever loss is registered (tests/test_learner_inprocess.py's pattern)."""

from __future__ import annotations

import warnings

import pytest

from rlvr.model_io import load_model
from tests.test_learner_dp import make_rollouts
from tests.test_learner_inprocess import SCALE, build, process_group, tripled_loss  # noqa: F401  (fixtures)

PACKED = ("learner.max_tokens_per_micro_batch=24", "learner.logprob_chunk_tokens=5")


def test_packed_equals_padded(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    """Two optimizer steps (two mini-batches): same weights, gradient norm and loss sums as padded micro-batches."""
    rollouts = make_rollouts(16, vocab=60, seed=1)
    padded = build(tiny_model_dir, tmp_path / "padded", "algorithm.mini_batches=2")
    packed = build(tiny_model_dir, tmp_path / "packed", "algorithm.mini_batches=2", *PACKED)
    s_pad = padded.train_grpo(rollouts)
    with warnings.catch_warnings():  # statistics carry no autograd graph from one micro-batch to the next
        warnings.filterwarnings("error", message=".*requires_grad=True to a scalar")
        s_pack = packed.train_grpo(rollouts)
    assert s_pack["tokens"] == s_pad["tokens"]
    assert s_pack["sequence_tokens"] == sum(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)
    for key in ("grad_norm", "pg_loss_sum", "entropy_sum", "log_ratio_abs_sum", "clip_fraction_sum"):
        assert s_pack[key] == pytest.approx(s_pad[key], rel=1e-4, abs=1e-6), key
    # Adam divides each step by sqrt(v): where a gradient entry is near 0, a float rounding difference moves that
    # weight by up to lr. So the weights are compared with the update's size, not absolutely: a packing that let
    # attention cross sequences or lost a token moves them by a whole step (about lr = 1e-2).
    w0, w_pad, w_pack = load_model(tiny_model_dir).state_dict(), padded.state_dict(), packed.state_dict()
    step = max((w_pad[k] - w0[k]).abs().max().item() for k in w0)
    diff = max((w_pad[k] - w_pack[k]).abs().max().item() for k in w_pad)
    print(f"largest update {step:.3g}, largest packed-padded difference {diff:.3g}")
    assert step > 1e-3 and diff < 1e-2 * step


def test_packed_learner_uses_the_registered_loss(process_group, tiny_model_dir, tmp_path, tripled_loss):  # noqa: F811
    rollouts = make_rollouts(16, vocab=60, seed=2)
    plain = build(tiny_model_dir, tmp_path / "plain", "learner.grad_clip=0", *PACKED).train_grpo(rollouts)
    tripled = build(tiny_model_dir, tmp_path / "tripled", "learner.grad_clip=0", *PACKED,
                    f"algorithm.loss={tripled_loss}").train_grpo(rollouts)
    assert plain["grad_norm"] > 0
    assert tripled["grad_norm"] == pytest.approx(SCALE * plain["grad_norm"], rel=1e-4)
    assert tripled["probe_sum"] == pytest.approx(7.0 * tripled["tokens"])
