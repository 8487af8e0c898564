"""The GRPO update of a `Learner` on packed micro-batches (learner.max_tokens_per_micro_batch; see
rlvr/learner/packed_rollouts.py): no padding, logprobs from hidden states in chunks.

The number of micro-batches now depends on the rollouts' lengths, so it differs between updates and ranks: every
rank runs the largest count (the short ones add fillers of weight 0, so DeepSpeed's gradient reductions still meet
on every rank) and marks the accumulation boundary itself. The loss keeps its global normaliser (tokens or
sequences of all ranks), so two ranks still equal one rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from rlvr.algo.losses import LossInputs, add_stats, stats_to_floats
from rlvr.algo.token_selection import selection_stats
from rlvr.learner.old_logprobs import PreviousWeights, Recomputed
from rlvr.learner.packed_rollouts import PackedRollouts, packed_logprobs, packed_micro_batches, packed_selected_logprobs
from rlvr.rollout.base import Rollout


def _pack_all_ranks(learner, rollouts: list[Rollout], rollout_logprobs: bool) -> list[PackedRollouts]:
    budget = learner.cfg.learner.max_tokens_per_micro_batch
    local = packed_micro_batches(rollouts, budget, rollout_logprobs=rollout_logprobs)
    count = torch.tensor([len(local)], device=learner.engine.device)
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    count = int(count.item())
    if count > len(local):
        local = packed_micro_batches(rollouts, budget, count, rollout_logprobs)
    return [mb.to(learner.engine.device) for mb in local]


@torch.no_grad()
def _logprobs(learner, model, batch: list[PackedRollouts]) -> list[torch.Tensor]:
    lc, temperature = learner.cfg.learner, learner.cfg.rollout.temperature
    return [packed_logprobs(model, model, mb, temperature, lc.logprob_chunk_tokens)[0] for mb in batch]


def _reference(learner, batches: list[list[PackedRollouts]]) -> list[list[torch.Tensor]] | None:
    """The frozen reference policy's logprobs for the KL term (None without one); with LoRA the base model
    itself, adapters disabled, as in `Learner._reference_logprobs`."""
    if learner.cfg.algorithm.kl_coef == 0:
        return None
    if learner.is_lora:
        with learner.engine.module.disable_adapter():
            return [_logprobs(learner, learner.engine.module, b) for b in batches]
    return [_logprobs(learner, learner.ref_model, b) for b in batches]


def train_grpo_packed(learner, rollouts: list[Rollout]) -> dict[str, float]:
    """`Learner.train_grpo` on packed micro-batches, with the learner's loss and old-logprob source (the source's
    packed counterpart: recomputed ones are recomputed on the packed rows)."""
    alg, engine, source = learner.cfg.algorithm, learner.engine, learner.old_logprobs
    engine.train()
    per_mini = len(rollouts) // alg.mini_batches
    minis = [rollouts[m * per_mini : (m + 1) * per_mini] for m in range(alg.mini_batches)]
    batches = [_pack_all_ranks(learner, mini, source.engine_logprobs or learner.rollout_logprobs) for mini in minis]
    old = None
    if isinstance(source, Recomputed):  # and PreviousWeights: its model is the copy from before the last update
        old = [_logprobs(learner, source.model, b) for b in batches]
        if isinstance(source, PreviousWeights):
            source._keep_current_weights()
    ref = _reference(learner, batches)
    totals: dict[str, torch.Tensor] = {}  # 0-d device tensors until the update's end: no host sync per micro-batch
    sequence_tokens = 0.0  # prompt + completion tokens trained on (a Python number: no device tensor, no sync)
    for m, (mini, batch) in enumerate(zip(minis, batches)):
        # DeepSpeed does not divide by its accumulation steps here (scale_wrt_gas=False): only by the ranks.
        # With token selection each packed micro-batch keeps its share of its own tokens (fillers have none).
        token_counts = [mb.targets_M.numel() for mb in batch if mb.weight > 0]
        normalizer = learner._loss_scale(mini, token_counts) * learner.grad_accum_steps
        with learner.loop_guard():
            for k, mb in enumerate(batch):
                engine.set_gradient_accumulation_boundary(k == len(batch) - 1)
                global_k = (m * learner.world_size + learner.rank) * len(batch) + k  # random's draw, as padded
                stats = _micro_step(learner, mb, normalizer, None if old is None else old[m][k],
                                    None if ref is None else ref[m][k], global_k)
                add_stats(totals, stats)
                sequence_tokens += mb.input_ids_1N.shape[1] * mb.weight
        engine.step()
        totals["grad_norm"] = learner._grad_norm()  # the last optimizer step's is reported, as the padded path
    out = stats_to_floats(totals)
    out["sequence_tokens"] = sequence_tokens
    out["lr"] = learner.scheduler.get_last_lr()[0]
    if learner.cfg.rollout.colocate and torch.cuda.is_available():
        torch.cuda.empty_cache()  # see Learner.train_grpo
    return out


def _micro_step(learner, mb: PackedRollouts, normalizer: float, old_M: torch.Tensor | None,
                ref_M: torch.Tensor | None, global_k: int) -> dict:
    lc, engine = learner.cfg.learner, learner.engine
    mask_ST = mb.rows(torch.ones_like(mb.targets_M, dtype=torch.float32)).bool()
    if learner.selection.active:
        logp_M, entropy_M, loss_mask_ST, select = _selected(learner, mb, mask_ST, global_k)
    else:
        logp_M, entropy_M = packed_logprobs(engine, engine.module, mb, learner.cfg.rollout.temperature,
                                            lc.logprob_chunk_tokens, entropy=True)
        loss_mask_ST, select = mask_ST, {}
    if learner.old_logprobs.engine_logprobs:
        old_M = mb.rollout_logprobs_M
    elif old_M is None:
        old_M = logp_M.detach()  # on-policy, one step per batch: ratio 1 with the same gradient
    # the loss sees the padded micro-batch layout (sequences x completion tokens), so any registered loss works
    rollout_lp = mb.rows(mb.rollout_logprobs_M) if learner.rollout_logprobs else None  # algorithm.rollout_is
    inputs = LossInputs(mb.rows(logp_M), mb.rows(old_M), mb.adv_S, loss_mask_ST,
                        None if ref_M is None else mb.rows(ref_M), rollout_lp)
    loss, stats = learner.loss(inputs, normalizer)
    stats["entropy_sum"] = entropy_M.detach().sum()  # a statistic: no graph kept across micro-batches
    stats.update(select)
    engine.backward(loss * mb.weight, scale_wrt_gas=False)
    return {k: v * mb.weight for k, v in stats.items()}


def _selected(learner, mb: PackedRollouts, mask_ST: torch.Tensor, global_k: int):
    """Token selection on a packed micro-batch: (logp_M with grad on the kept tokens, entropy_M of the kept
    tokens, the loss mask of the kept tokens, the selection's statistics)."""
    engine = learner.engine

    def selector(logp_all_M: torch.Tensor, entropy_M: torch.Tensor) -> torch.Tensor:
        # the padded layout's selection; M is (sequence, token) in row-major order, as mask_ST's True cells
        return learner.selection.select(mb.rows(logp_all_M), mb.rows(entropy_M), mask_ST, engine.global_steps,
                                        global_k)[mask_ST]

    logp_M, entropy_M, keep_M, logp_all_M = packed_selected_logprobs(
        engine, engine.module, mb, learner.cfg.rollout.temperature, learner.cfg.learner.logprob_chunk_tokens,
        selector)
    keep_ST = mb.rows(keep_M.float())
    stats = selection_stats(keep_ST, mask_ST, mb.rows(logp_all_M), mb.rows(entropy_M))
    return logp_M, entropy_M * keep_M, keep_ST.bool(), stats  # entropy over the kept tokens, as the padded path
