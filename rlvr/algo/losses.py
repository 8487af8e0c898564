"""Policy losses by name: `algorithm.loss` picks one from `LOSSES`, once, when the learner is set up.

A loss sees one micro-batch (`LossInputs`) and returns its share of the global batch's loss plus statistics summed
over the micro-batch's tokens, named `<metric>_sum` (logged as `learner/<metric>`, a per-token mean): detached 0-d
tensors, never Python floats, which would cost a host sync per statistic per micro-batch on a GPU (`add_stats`
adds them up on the device, `stats_to_floats` brings them over once per update). It owns its
`Aggregation`: what the global normaliser counts (tokens, sequences) and how the micro-batch's sum is divided by it,
so the learner never switches on `loss_agg`. Adding a loss is one registered function; most only write the
per-token objective and let `token_loss` add what every loss shares (the rollout importance weights of
`algorithm.rollout_is`, the KL penalty, the aggregation and the common statistics):

    @register_loss("my_loss")
    def my_loss(alg: AlgorithmSection) -> PolicyLoss:
        return token_loss(lambda x: (per_token_loss_BT, {"my_stat_sum": ...}), alg)

Registered: grpo (PPO-clipped), dual_clip, gspo, cispo (the pure maths: rlvr/algo/policy_losses.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rlvr.algo import grpo, policy_losses
from rlvr.algo.grpo import AGGREGATIONS, Aggregation

if TYPE_CHECKING:
    from rlvr.config import AlgorithmSection


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch, shapes B sequences x T positions (a position scores the next token)."""

    logp_BT: torch.Tensor
    """The policy's logprobs, with gradient."""
    old_logp_BT: torch.Tensor
    """The sampling (old) policy's logprobs, no gradient."""
    advantages_B: torch.Tensor
    mask_BT: torch.Tensor
    """1 on completion tokens."""
    ref_logp_BT: torch.Tensor | None = None
    """The reference model's logprobs (only when algorithm.kl_coef > 0)."""
    rollout_logp_BT: torch.Tensor | None = None
    """The rollout engine's logprobs of the sampled tokens (only when algorithm.rollout_is is not `none`)."""


@dataclass(frozen=True)
class PolicyLoss:
    fn: Callable[[LossInputs, float], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    """(micro-batch, global normaliser) -> (loss to backpropagate, summed statistics incl. `tokens`)."""
    aggregation: Aggregation

    def __call__(self, inputs: LossInputs, normalizer: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.fn(inputs, normalizer)


LOSSES: dict[str, Callable[[AlgorithmSection], PolicyLoss]] = {}


def register_loss(name: str):
    """Decorator: `factory(algorithm_section) -> PolicyLoss` becomes `algorithm.loss: NAME`."""

    def add(factory: Callable[[AlgorithmSection], PolicyLoss]):
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered")
        LOSSES[name] = factory
        return factory

    return add


def add_stats(totals: dict, stats: dict) -> None:
    """Statistics named `*_max` keep the largest value, all others add up (over micro-batches and ranks).

    Values are Python floats (across ranks) or 0-d tensors (across micro-batches): tensors stay on their device,
    so the loop needs no host sync, and are summed in float64, as the Python floats they replace were."""
    for key, v in stats.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().double()  # detached: no graph kept across micro-batches
        if key not in totals:
            totals[key] = v
        elif not key.endswith("_max"):
            totals[key] = totals[key] + v
        elif isinstance(v, torch.Tensor) and isinstance(totals[key], torch.Tensor):
            totals[key] = torch.maximum(totals[key], v)
        else:
            totals[key] = max(totals[key], v)


def stats_to_floats(totals: dict) -> dict[str, float]:
    """`totals` with every tensor a Python float, copied to the host in one transfer (one sync per update, where
    a float() each would wait for the device once per statistic)."""
    keys = [k for k, v in totals.items() if isinstance(v, torch.Tensor)]
    if not keys:
        return dict(totals)
    device = totals[keys[0]].device
    values = torch.stack([totals[k].to(device, torch.float64) for k in keys]).tolist()
    return {**totals, **dict(zip(keys, values))}


def build_loss(alg: AlgorithmSection) -> PolicyLoss:
    if alg.loss not in LOSSES:
        raise ValueError(f"algorithm.loss: unknown loss {alg.loss!r} (registered: {', '.join(sorted(LOSSES))})")
    return LOSSES[alg.loss](alg)


def aggregation(alg: AlgorithmSection) -> Aggregation:
    """`algorithm.loss_agg` as an object; seq_mean_token_sum_norm (Dr.GRPO's constant normaliser) divides every
    sequence's token sum by one fixed length, algorithm.norm_length, so no sequence weighs more for being short."""
    if alg.loss_agg == "seq_mean_token_sum_norm":
        if not alg.norm_length:
            raise ValueError("loss_agg=seq_mean_token_sum_norm needs algorithm.norm_length")
        length = float(alg.norm_length)
        return Aggregation(count=lambda lengths: sum(n > 0 for n in lengths) * length,
                           reduce=AGGREGATIONS["token_mean"].reduce)
    return AGGREGATIONS[alg.loss_agg]


Objective = Callable[[LossInputs], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""micro-batch -> (per-token loss B x T, unmasked; statistics summed over the mask's tokens)."""


def token_loss(objective: Objective, alg: AlgorithmSection) -> PolicyLoss:
    """A per-token objective made a loss: rollout importance weights, optional KL to the reference, aggregation,
    and the statistics every loss logs (pg_loss, |log ratio| to the old policy, approx KL to the sampling policy)."""
    agg = aggregation(alg)

    def loss(x: LossInputs, normalizer: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pg_BT, stats = objective(x)
        mask_f = x.mask_BT.to(pg_BT.dtype)
        if alg.rollout_is != "none":
            if x.rollout_logp_BT is None:
                raise ValueError("algorithm.rollout_is needs the rollout engine's logprobs in the micro-batch")
            weights_BT, is_stats = policy_losses.rollout_is_weights(
                x.old_logp_BT, x.rollout_logp_BT, x.mask_BT, alg.rollout_is_cap, alg.rollout_is)
            pg_BT = pg_BT * weights_BT
            stats.update(is_stats)
        # the sampling policy: the engine's logprobs when the batch carries them, else the old policy's
        behaviour_BT = x.old_logp_BT if x.rollout_logp_BT is None else x.rollout_logp_BT
        logp = x.logp_BT.detach()
        stats.update({
            "pg_loss_sum": (pg_BT.detach() * mask_f).sum(),
            # |log ratio| to the old policy: 0 on-policy, the policy's drift (and engine/learner numerics) off it
            "log_ratio_abs_sum": ((logp - x.old_logp_BT).abs() * mask_f).sum(),
            # k3 of KL(sampling || policy) from the sampled tokens: r - 1 - log r with r = pi / pi_sampling
            "approx_kl_sum": (grpo.kl_penalty(behaviour_BT, logp, "k3") * mask_f).sum(),
            "tokens": mask_f.sum(),
        })
        loss_BT = pg_BT
        if alg.kl_coef > 0:
            if x.ref_logp_BT is None:
                raise ValueError("kl_coef > 0 needs reference logprobs")
            kl_BT = grpo.kl_penalty(x.logp_BT, x.ref_logp_BT, alg.kl_estimator)
            loss_BT = loss_BT + alg.kl_coef * kl_BT
            stats["kl_sum"] = (kl_BT.detach() * mask_f).sum()
        return agg.reduce(loss_BT, mask_f, normalizer), stats

    return PolicyLoss(loss, agg)


def _clip_stats(ratio_BT, x: LossInputs, clip_low: float, clip_high: float) -> dict[str, torch.Tensor]:
    low_BT, high_BT = policy_losses.clip_sides(ratio_BT, x.advantages_B, clip_low, clip_high)
    return _clip_counts(low_BT, high_BT, x.mask_BT)


def _clip_counts(low_BT: torch.Tensor, high_BT: torch.Tensor, mask_BT: torch.Tensor) -> dict[str, torch.Tensor]:
    mask_b = mask_BT.bool()
    low, high = (low_BT & mask_b).sum(), (high_BT & mask_b).sum()
    return {"clip_fraction_sum": low + high, "clip_low_fraction_sum": low, "clip_high_fraction_sum": high}


@register_loss("grpo")
def clipped_grpo(alg: AlgorithmSection) -> PolicyLoss:
    """PPO-clipped surrogate (grpo.clipped_policy_loss); DAPO's clip-higher via the asymmetric clip."""
    clip = (alg.clip_eps_low, alg.clip_eps_high)

    def objective(x: LossInputs):
        pg_BT, _ = grpo.clipped_policy_loss(x.logp_BT, x.old_logp_BT, x.advantages_B, *clip)
        return pg_BT, _clip_stats(torch.exp(x.logp_BT.detach() - x.old_logp_BT), x, *clip)

    return token_loss(objective, alg)


@register_loss("dual_clip")
def dual_clip(alg: AlgorithmSection) -> PolicyLoss:
    """The clipped surrogate with the loss of negative-advantage tokens capped at -clip_ratio_c * A."""

    def objective(x: LossInputs):
        pg_BT, capped_BT = policy_losses.dual_clip_policy_loss(
            x.logp_BT, x.old_logp_BT, x.advantages_B, alg.clip_eps_low, alg.clip_eps_high, alg.clip_ratio_c)
        stats = _clip_stats(torch.exp(x.logp_BT.detach() - x.old_logp_BT), x, alg.clip_eps_low, alg.clip_eps_high)
        stats["dual_clip_fraction_sum"] = (capped_BT & x.mask_BT.bool()).sum()
        return pg_BT, stats

    return token_loss(objective, alg)


@register_loss("gspo")
def gspo(alg: AlgorithmSection) -> PolicyLoss:
    """Sequence-level ratio and clip; the paper aggregates with seq_mean and clips at ~3e-4/4e-4."""

    def objective(x: LossInputs):
        pg_BT, s_B = policy_losses.gspo_policy_loss(x.logp_BT, x.old_logp_BT, x.advantages_B, x.mask_BT,
                                                    alg.clip_eps_low, alg.clip_eps_high)
        # a sequence's clip counts for each of its tokens, so the fractions stay per-token means
        return pg_BT, _clip_stats(s_B.unsqueeze(-1).expand_as(pg_BT), x, alg.clip_eps_low, alg.clip_eps_high)

    return token_loss(objective, alg)


@register_loss("cispo")
def cispo(alg: AlgorithmSection) -> PolicyLoss:
    """REINFORCE with clipped stop-gradient IS weights; the paper bounds only the top (clip_eps_low=1)."""

    def objective(x: LossInputs):
        pg_BT, _ = policy_losses.cispo_policy_loss(x.logp_BT, x.old_logp_BT, x.advantages_B, alg.clip_eps_low,
                                                   alg.clip_eps_high)
        # the weight is clipped whatever the advantage's sign (unlike PPO's clip, which depends on it)
        ratio_BT = torch.exp(x.logp_BT.detach() - x.old_logp_BT)
        return pg_BT, _clip_counts(ratio_BT < 1 - alg.clip_eps_low, ratio_BT > 1 + alg.clip_eps_high, x.mask_BT)

    return token_loss(objective, alg)
