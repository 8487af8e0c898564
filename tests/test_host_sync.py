"""No host sync inside the learner's micro-batch loop: the loss statistics stay 0-d device tensors until the update
ends and come over in one transfer (rlvr/algo/losses.py `add_stats`, `stats_to_floats`), where a float() each cost
a device->host sync per statistic per micro-batch.

The packed learner enters `learner.loop_guard()` around each mini-batch's micro-batch loop. On CPU, `NoHostReads`
fails on every read of a tensor's value into Python there (each one a sync on a GPU); on a GPU (marked gpu),
torch.cuda.set_sync_debug_mode("error") fails on any sync there."""

from __future__ import annotations

import random
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode

from rlvr.model_io import load_model
from tests.test_learner_dp import make_rollouts
from tests.test_learner_inprocess import build, process_group  # noqa: F401  (fixture)

PACKED = ("learner.max_tokens_per_micro_batch=24", "learner.logprob_chunk_tokens=5")
# every statistic: the KL term and the rollout correction (whose `_max` statistic is kept across micro-batches)
ALL_STATS = ("algorithm.kl_coef=0.1", "algorithm.rollout_is=truncate", "algorithm.rollout_is_cap=1.5")


class NoHostReads(TorchFunctionMode):
    """Raises on a tensor's value read into Python (item, float(), tolist, a truth test, ...)."""

    READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__float__,
             torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.__bool__}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # the packed row's CPU attention reads its sequence bounds from a CPU tensor; on a GPU in 16-bit the varlen
        # flash kernel takes them on the device instead
        if func in self.READS and sys._getframe(1).f_code.co_name != "_varlen_attention":
            raise AssertionError(f"a host read inside the micro-batch loop: Tensor.{func.__name__}")
        return func(*args, **(kwargs or {}))


def with_rollout_logprobs(n: int, seed: int):
    rollouts, rng = make_rollouts(n, vocab=60, seed=seed), random.Random(seed)
    for r in rollouts:
        r.logprobs = [-2 - 4 * rng.random() for _ in r.completion_ids]  # the policy: about log(1/60)
    return rollouts


def test_the_packed_micro_batch_loop_reads_nothing_back(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    learner = build(tiny_model_dir, tmp_path, "algorithm.mini_batches=2", *ALL_STATS, *PACKED)
    learner.loop_guard = NoHostReads
    stats = learner.train_grpo(with_rollout_logprobs(16, seed=3))
    assert {"kl_sum", "rollout_log_ratio_abs_max", "entropy_sum", "grad_norm"} <= set(stats)
    assert all(type(v) is float for v in stats.values()), stats


def direct_stats(model_dir: str, rollouts) -> dict[str, float]:
    """A packed on-policy update's statistics from one plain forward per rollout (no packing, no learner)."""
    model = load_model(model_dir)
    out = dict(tokens=0.0, pg_loss_sum=0.0, entropy_sum=0.0, approx_kl_sum=0.0, rollout_log_ratio_abs_sum=0.0,
               rollout_log_ratio_abs_max=0.0, rollout_is_over_cap_sum=0.0)
    with torch.no_grad():
        for r in rollouts:
            p, c = len(r.prompt_ids), len(r.completion_ids)
            logits_TV = model(torch.tensor([r.prompt_ids + r.completion_ids])).logits[0, p - 1 : p + c - 1]
            logp_TV = torch.log_softmax(logits_TV.double(), -1)
            logp_T = logp_TV.gather(-1, torch.tensor(r.completion_ids)[:, None])[:, 0]
            log_ratio_T = logp_T - torch.tensor(r.logprobs, dtype=torch.float64)  # policy / rollout engine
            out["tokens"] += c
            out["pg_loss_sum"] += -r.advantage * c  # on-policy: ratio 1, weight 1 (rollout_is=log)
            out["entropy_sum"] += float(-(logp_TV.exp() * logp_TV).sum())
            out["approx_kl_sum"] += float((log_ratio_T.exp() - 1 - log_ratio_T).sum())  # k3 to the engine
            out["rollout_log_ratio_abs_sum"] += float(log_ratio_T.abs().sum())
            out["rollout_log_ratio_abs_max"] = max(out["rollout_log_ratio_abs_max"], float(log_ratio_T.abs().max()))
            out["rollout_is_over_cap_sum"] += float((log_ratio_T.exp() > 1.5).sum())
    return out


def test_packed_statistics_equal_a_direct_computation(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    """What comes out of the device tensors after the loop: sums over micro-batches, the `_max` kept."""
    rollouts = with_rollout_logprobs(16, seed=4)
    learner = build(tiny_model_dir, tmp_path, "algorithm.rollout_is=log", "algorithm.rollout_is_cap=1.5", *PACKED)
    stats = learner.train_grpo(rollouts)
    expected = direct_stats(tiny_model_dir, rollouts)
    assert 0 < expected["rollout_is_over_cap_sum"] < expected["tokens"]
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert stats["rollout_is_weight_sum"] == stats["tokens"]  # rollout_is=log: weight 1
    assert stats["log_ratio_abs_sum"] == stats["clip_fraction_sum"] == 0.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.set_sync_debug_mode)")
def test_a_packed_update_on_a_gpu_does_not_sync_in_the_loop(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    """bf16: the varlen flash kernel, the production path. Any sync in the loop (a float() of a statistic, an
    .item(), a blocking copy) raises there."""

    class SyncIsAnError:
        def __enter__(self):
            self.previous = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")

        def __exit__(self, *exc):
            torch.cuda.set_sync_debug_mode(self.previous)

    # NCCL, as on a GPU run: gloo's all_reduce of DeepSpeed's CUDA gradients (at the last micro-batch's backward)
    # copies them to the host, a sync NCCL does not make (seen on an H100, 2026-12-07)
    if torch.distributed.is_initialized() and torch.distributed.get_backend() != "nccl":
        pytest.skip("needs a fresh process for its NCCL group: run it with -m gpu (run_on_device.sh's pytest stage)")
    learner = build(tiny_model_dir, tmp_path, "learner.precision=bf16", "algorithm.mini_batches=2", *ALL_STATS,
                    *PACKED, "learner.backend=nccl")
    learner.loop_guard = SyncIsAnError
    stats = learner.train_grpo(with_rollout_logprobs(16, seed=3))
    assert stats["tokens"] > 0 and stats["grad_norm"] > 0
