"""Selective-token training: the mask on hand-built batches, the random control's reproducibility, the config's
bounds, and through the learner (one rank, in process): keep_fraction 1 gives the plain loss and gradient, a smaller
fraction trains on the kept tokens only."""

from __future__ import annotations

import pytest
import torch

from rlvr.algo.token_selection import (TokenSelection, draw_seed, kept_count, select_tokens, selection_metrics,
                                       selection_stats)
from rlvr.config import ConfigError
from rlvr.data.packing import collate_packed
from rlvr.learner.deepspeed_setup import free_port
from rlvr.learner.learner import Learner
from rlvr.trainer.metrics import learner_metrics
from tests.conftest import tiny_config
from tests.test_learner_dp import make_rollouts
from tests.test_learner_inprocess import process_group  # noqa: F401  (the fixture: one process group per session)
from tests.test_lm_learner import make_rows

T = torch.tensor
LOGP_BT = T([[-0.1, -2.0, -0.5, -3.0], [-1.0, -0.2, -4.0, -0.3]])
ENTROPY_BT = T([[3.0, 0.1, 0.2, 9.0], [9.0, 1.0, 0.5, 2.0]])
MASK_BT = T([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)  # 6 loss tokens; the 9.0s and -3.0 are masked out


def positions(keep_BT: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(p) for p in keep_BT.nonzero().tolist()}


def test_kept_count_is_the_ceiling_with_floor_and_cap():
    assert [kept_count(n, 0.5, 1) for n in (0, 1, 5, 6)] == [0, 1, 3, 3]
    assert kept_count(10, 0.7, 1) == 7  # not 8: 0.7 * 10 is 7.000000000000001 in floats
    assert kept_count(10, 0.2, 5) == 5 and kept_count(3, 0.2, 5) == 3


def test_confidence_keeps_the_least_likely_targets_among_the_loss_tokens():
    keep = TokenSelection("confidence", 0.5).select(LOGP_BT, ENTROPY_BT, MASK_BT, step=0, micro_batch=0)
    assert positions(keep) == {(1, 2), (0, 1), (0, 2)}  # -4.0, -2.0, -0.5; (0, 3) = -3.0 is not a loss token


def test_entropy_keeps_the_highest_entropy_loss_tokens():
    keep = TokenSelection("entropy", 0.5).select(LOGP_BT, ENTROPY_BT, MASK_BT, step=0, micro_batch=0)
    assert positions(keep) == {(0, 0), (1, 3), (1, 1)}  # 3.0, 2.0, 1.0; the 9.0s are masked out


def test_ties_min_tokens_and_keep_all():
    scores = torch.zeros(2, 4)
    assert positions(select_tokens(scores, MASK_BT, 0.5, 1)) == {(0, 0), (0, 1), (0, 2)}  # row-major first
    # ceil(4.8) = 5: row-major, past the masked-out (0, 3) and (1, 0) though they tie
    assert positions(select_tokens(scores, MASK_BT, 0.8, 1)) == {(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)}
    assert positions(select_tokens(-LOGP_BT, MASK_BT, 0.1, 2)) == {(1, 2), (0, 1)}  # ceil(0.6)=1, floor 2
    assert torch.equal(select_tokens(-LOGP_BT, MASK_BT, 1.0, 1), MASK_BT)


def test_warmup_keeps_every_token_then_selects():
    sel = TokenSelection("confidence", 0.5, warmup_steps=2)
    assert torch.equal(sel.select(LOGP_BT, ENTROPY_BT, MASK_BT, step=1, micro_batch=0), MASK_BT)
    assert int(sel.select(LOGP_BT, ENTROPY_BT, MASK_BT, step=2, micro_batch=0).sum()) == 3
    assert (sel.kept(6, 1), sel.kept(6, 2)) == (6, 3)


def test_random_is_reproducible_under_the_seed_and_varies_with_seed_step_and_micro_batch():
    mask = torch.ones(8, 32, dtype=torch.bool)
    zeros = torch.zeros(8, 32)

    def draw(seed, step, mb):
        return TokenSelection("random", 0.25, seed=seed).select(zeros, zeros, mask, step, mb)

    first = draw(7, 3, 1)
    assert int(first.sum()) == 64 and torch.equal(first, draw(7, 3, 1))
    for other in (draw(8, 3, 1), draw(7, 4, 1), draw(7, 3, 2)):
        assert int(other.sum()) == 64 and not torch.equal(first, other)
    assert len({draw_seed(0, s, m) for s in range(20) for m in range(20)}) == 400


def test_selection_metrics_are_means_over_kept_and_dropped():
    keep = TokenSelection("confidence", 0.5).select(LOGP_BT, ENTROPY_BT, MASK_BT, 0, 0)
    m = selection_metrics(selection_stats(keep, MASK_BT, LOGP_BT, ENTROPY_BT))
    assert m["select/kept_fraction"] == 0.5
    assert m["select/entropy_kept"] == pytest.approx((0.5 + 0.1 + 0.2) / 3)
    assert m["select/entropy_dropped"] == pytest.approx((3.0 + 1.0 + 2.0) / 3)
    assert m["select/confidence_kept"] == pytest.approx(sum(torch.exp(T([-4.0, -2.0, -0.5]))).item() / 3)
    all_kept = selection_metrics(selection_stats(MASK_BT, MASK_BT, LOGP_BT, ENTROPY_BT))
    assert all_kept["select/kept_fraction"] == 1.0 and "select/entropy_dropped" not in all_kept


@pytest.mark.parametrize("override, message", [
    ("learner.token_selection.keep_fraction=0", "keep_fraction"),
    ("learner.token_selection.keep_fraction=1.5", "keep_fraction"),
    ("learner.token_selection.strategy=hardest", "strategy"),
    ("learner.token_selection.keep=0.2", "keep"),
])
def test_bad_selection_config_names_the_key(tiny_model_dir, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tiny_model_dir, tmp_path, override)


def test_selection_with_a_per_sequence_mean_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="token_selection needs algorithm.loss_agg=token_mean"):
        tiny_config(tiny_model_dir, tmp_path, "learner.token_selection.strategy=entropy", "algorithm.loss_agg=seq_mean")


# -- through the learner, one rank in this process -----------------------------------------------------------------

COMMON = ("data.prompts_per_step=4", "rollout.samples_per_prompt=4", "learner.micro_batch_size=4",
          "learner.num_actors=1", "learner.backend=gloo", "learner.lr=1e-2", "learner.grad_clip=0")


def build(model_dir: str, tmp_path, *overrides: str, accum: int | None = None) -> Learner:
    cfg = tiny_config(model_dir, tmp_path, *COMMON, *overrides)
    learner = Learner(cfg, model_dir, rank=0, world_size=1)
    learner.setup("127.0.0.1", free_port(), accum or cfg.grad_accum_steps, total_optim_steps=2)
    return learner


def select(strategy: str, fraction: float) -> tuple[str, str]:
    return (f"learner.token_selection.strategy={strategy}", f"learner.token_selection.keep_fraction={fraction}")


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_grpo_keep_all_equals_the_plain_loss_and_gradient(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    rollouts = make_rollouts(16, vocab=60, seed=2)
    plain_l = build(tiny_model_dir, tmp_path / "plain")
    plain = plain_l.train_grpo(rollouts)
    kept_l = build(tiny_model_dir, tmp_path / "kept", *select("confidence", 1.0))
    kept = kept_l.train_grpo(rollouts)
    half_l = build(tiny_model_dir, tmp_path / "half", *select("confidence", 0.5))
    half = half_l.train_grpo(rollouts)
    assert plain["grad_norm"] > 0
    assert kept["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-5)
    assert kept["pg_loss_sum"] == pytest.approx(plain["pg_loss_sum"], abs=1e-5)
    assert kept["tokens"] == plain["tokens"] == sum(len(r.completion_ids) for r in rollouts)
    assert max_diff(plain_l.state_dict(), kept_l.state_dict()) < 1e-6
    metrics = learner_metrics(kept)
    assert metrics["select/kept_fraction"] == 1.0 and "select/entropy_kept" in metrics
    # half the tokens of each micro-batch (ceil), normalised over those: another gradient
    assert half["tokens"] == sum(-(-sum(len(r.completion_ids) for r in rollouts[i:i + 4]) // 2)
                                 for i in range(0, 16, 4))
    assert abs(half["grad_norm"] - plain["grad_norm"]) > 1e-3 * plain["grad_norm"]
    assert half_l._loss_scale(rollouts) * half_l.grad_accum_steps == half["tokens"]  # normalised by the kept
    assert learner_metrics(half)["select/entropy_kept"] > 0


def test_lm_keep_all_equals_the_plain_loss_and_gradient(process_group, tiny_model_dir, tmp_path):  # noqa: F811
    rows = make_rows(40, vocab=60, seq_len=24)[:8]
    accum = len(rows) // 4
    plain_l = build(tiny_model_dir, tmp_path / "plain", accum=accum)
    plain = plain_l.train_lm(rows)
    kept_l = build(tiny_model_dir, tmp_path / "kept", *select("entropy", 1.0), accum=accum)
    kept = kept_l.train_lm(rows)
    random = build(tiny_model_dir, tmp_path / "random", *select("random", 0.25), accum=accum).train_lm(rows)
    assert plain["grad_norm"] > 0
    assert kept["loss_sum"] == pytest.approx(plain["loss_sum"], rel=1e-6)
    assert kept["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-5)
    # Adam's first step is ~lr * sign(g): coordinates with |g| near its eps turn float rounding (the head on gathered
    # rows vs on the whole [B, T, H] block) into ~1e-5 of a 1e-2 step, hence 1e-4 here
    assert max_diff(plain_l.state_dict(), kept_l.state_dict()) < 1e-4
    assert kept["select_nll_all"] == pytest.approx(plain["loss_sum"], rel=1e-6)  # the score pass's plain loss
    per_mb = [int(collate_packed(rows[i:i + 4]).loss_mask_BT.sum()) for i in range(0, 8, 4)]
    assert random["tokens"] == random["select_kept"] == sum(-(-n // 4) for n in per_mb)
    assert random["select_dropped"] == sum(per_mb) - random["tokens"]


@pytest.mark.parametrize("extra", [("learner.zero_stage=3",), ("learner.precision=bf16",), ("learner.lora={r: 4}",)])
def test_keep_all_equals_the_plain_step_under_zero3_bf16_and_lora(process_group, tiny_model_dir, tmp_path, extra):  # noqa: F811
    """The selective path runs the trunk through the DeepSpeed engine's own forward: calling the decoder module
    directly gave ZeRO-3 other gradients (grad norm 0.34 against 0.90, every weight off) with an equal loss."""
    rollouts = make_rollouts(16, vocab=60, seed=2)
    plain_l = build(tiny_model_dir, tmp_path / "plain", *extra)
    plain = plain_l.train_grpo(rollouts)
    kept_l = build(tiny_model_dir, tmp_path / "kept", *extra, *select("entropy", 1.0))
    kept = kept_l.train_grpo(rollouts)
    assert kept["pg_loss_sum"] == pytest.approx(plain["pg_loss_sum"], abs=1e-5)
    assert kept["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-5)
    assert max_diff(plain_l.state_dict(), kept_l.state_dict()) < 1e-6
    rows = make_rows(40, vocab=60, seq_len=24)[:8]
    plain_lm = build(tiny_model_dir, tmp_path / "plain_lm", *extra, accum=2).train_lm(rows)
    kept_lm = build(tiny_model_dir, tmp_path / "kept_lm", *extra, *select("entropy", 1.0), accum=2).train_lm(rows)
    assert kept_lm["grad_norm"] == pytest.approx(plain_lm["grad_norm"], rel=1e-4)


PACKED = "learner.max_tokens_per_micro_batch=48"


def test_packed_grpo_selection_keeps_its_share_of_each_packed_micro_batch(process_group, tiny_model_dir,  # noqa: F811
                                                                         tmp_path):
    """Selection on packed micro-batches (cut by token budget): keep 1.0 equals the plain packed step; keep 0.5
    keeps ceil(half) of each packed micro-batch's tokens, normalised over those, and `confidence` keeps the
    least likely ones (so the packed rows' tokens and the selection's padded layout line up)."""
    from rlvr.learner.packed_rollouts import packed_micro_batches

    rollouts = make_rollouts(16, vocab=60, seed=2)
    plain_l = build(tiny_model_dir, tmp_path / "plain", PACKED)
    plain = plain_l.train_grpo(rollouts)
    kept_l = build(tiny_model_dir, tmp_path / "kept", PACKED, *select("entropy", 1.0))
    kept = kept_l.train_grpo(rollouts)
    assert plain["grad_norm"] > 0 and kept["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-5)
    assert kept["pg_loss_sum"] == pytest.approx(plain["pg_loss_sum"], abs=1e-5)
    assert max_diff(plain_l.state_dict(), kept_l.state_dict()) < 1e-6
    half_l = build(tiny_model_dir, tmp_path / "half", PACKED, *select("confidence", 0.5))
    half = half_l.train_grpo(rollouts)
    per_mb = [len(mb.targets_M) for mb in packed_micro_batches(rollouts, 48)]
    assert len(per_mb) > 2 and half["tokens"] == half["select_kept"] == sum(-(-n // 2) for n in per_mb)
    assert half["select_dropped"] == sum(per_mb) - half["tokens"]
    assert half["select_confidence_kept"] / half["select_kept"] < \
        half["select_confidence_dropped"] / half["select_dropped"]
    assert abs(half["grad_norm"] - plain["grad_norm"]) > 1e-3 * plain["grad_norm"]


@pytest.mark.slow
def test_lm_random_selection_two_ranks_equal_one_rank(ray_cluster, tiny_model_dir, tmp_path):
    """The kept count is known per micro-batch before the forward pass and random draws by global micro-batch
    index: so 2 ranks x 1 micro-batch select, normalise and step exactly as 1 rank x 2 micro-batches."""
    from tests.test_lm_learner import train_once

    common = ["learner.micro_batch_size=2", "learner.lr=1e-2", "learner.resources.num_cpus=1", *select("random", 0.4)]
    one = tiny_config(tiny_model_dir, tmp_path / "one", "learner.num_actors=1", *common)
    two = tiny_config(tiny_model_dir, tmp_path / "two", "learner.num_actors=2", *common)
    rows = make_rows(40, vocab=60, seq_len=24)[:4]
    s1, w1 = train_once(one, tiny_model_dir, rows)
    s2, w2 = train_once(two, tiny_model_dir, rows)
    assert s1["tokens"] == s2["tokens"] == s1["select_kept"] < s1["select_kept"] + s1["select_dropped"]
    assert s1["loss_sum"] == pytest.approx(s2["loss_sum"], abs=1e-4)
    assert max_diff(w1, w2) < 1e-5
