"""Packed GRPO micro-batches (no padding) and chunked logprobs give what the padded, unchunked path gives."""

from __future__ import annotations

import random

import pytest
import torch

from rlvr.rollout.base import Rollout
from rlvr.algo import grpo
from rlvr.learner.batch import collate
from rlvr.learner.packed_rollouts import (chunked_logprobs, collate_packed_rollouts, pack_indices, packed_logprobs,
                                          packed_micro_batches, use_varlen_attention)


def gqa_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).float()


def rollouts(n: int, seed: int = 0) -> list[Rollout]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = [rng.randrange(1, 50) for _ in range(rng.randint(2, 7))]
        completion = [rng.randrange(1, 50) for _ in range(rng.randint(1, 9))]
        out.append(Rollout(prompt, completion, [0.0] * len(completion), advantage=rng.uniform(-1.5, 1.5)))
    return out


def test_pack_indices_budget_and_order():
    assert pack_indices([3, 4, 2, 9, 1, 1], 7) == [[0, 1], [2], [3], [4, 5]]  # 9 > budget: a bin of its own
    assert pack_indices([], 5) == []


def test_chunked_logprobs_equal_unchunked_values_and_grads():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 40, bias=False)
    h_MH = torch.randn(23, 16, requires_grad=True)
    targets_M = torch.randint(0, 40, (23,))
    ref_lp, ref_ent = grpo.logprobs_and_entropy(head(h_MH)[None], targets_M[None], temperature=0.7)
    (ref_lp * torch.linspace(-1, 1, 23)).sum().backward()
    ref_h, ref_w = h_MH.grad.clone(), head.weight.grad.clone()
    h_MH.grad, head.weight.grad = None, None
    lp, ent = chunked_logprobs(h_MH, targets_M, head, temperature=0.7, chunk=5, entropy=True)
    (lp * torch.linspace(-1, 1, 23)).sum().backward()
    torch.testing.assert_close(lp, ref_lp[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(ent, ref_ent[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(h_MH.grad, ref_h, rtol=0, atol=1e-6)
    torch.testing.assert_close(head.weight.grad, ref_w, rtol=0, atol=1e-6)


def padded_loss(model, batch, cfg, normalizer):
    mb = collate(batch, pad_id=0)
    length = mb.input_ids_BL.shape[1]
    logits = model(input_ids=mb.input_ids_BL, attention_mask=mb.attention_mask_BL, use_cache=False,
                   logits_to_keep=length - mb.window_start).logits[:, :-1]
    targets, mask = mb.input_ids_BL[:, mb.window_start + 1 :], mb.completion_mask_BT[:, mb.window_start :]
    logp = grpo.token_logprobs(logits, targets)
    loss, _ = grpo.grpo_loss(logp, logp.detach(), mb.advantages_B, mask, cfg, normalizer)
    return loss, logp[mask]


@pytest.mark.parametrize("loss_agg,checkpointing", [("token_mean", False), ("seq_mean", False),
                                                    ("token_mean", True)])
def test_packed_loss_and_grads_equal_padded(loss_agg, checkpointing):
    batch = rollouts(7)
    cfg = grpo.LossConfig(loss_agg=loss_agg)
    normalizer = float(sum(len(r.completion_ids) for r in batch)) if loss_agg == "token_mean" else 7.0
    padded_model, packed_model = gqa_llama(), gqa_llama()
    use_varlen_attention(packed_model)
    if checkpointing:  # learner.gradient_checkpointing: activations recomputed, same gradients
        packed_model.gradient_checkpointing_enable()
        packed_model.train()
    loss_pad, logp_pad = padded_loss(padded_model, batch, cfg, normalizer)
    loss_pad.backward()
    losses, logps = [], []
    for mb in packed_micro_batches(batch, max_tokens=20):  # several rows, several sequences each
        logp_M, _ = packed_logprobs(packed_model, packed_model, mb, 1.0, chunk=4)
        loss, _ = grpo.grpo_loss(mb.rows(logp_M), mb.rows(logp_M.detach()), mb.adv_S,
                                 mb.rows(torch.ones_like(logp_M)).bool(), cfg, normalizer)
        loss.backward()
        losses.append(loss.detach())
        logps.append(logp_M.detach())
    assert len(losses) > 1
    torch.testing.assert_close(torch.cat(logps), logp_pad.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(sum(losses), loss_pad.detach(), rtol=0, atol=1e-6)
    for (name, a), b in zip(padded_model.named_parameters(), packed_model.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_packed_rows_keep_sequences_apart():
    """A sequence's logprobs do not depend on what it is packed with (positions restart, attention stays inside)."""
    model = gqa_llama()
    use_varlen_attention(model)
    batch = rollouts(4, seed=3)
    with torch.no_grad():
        together, _ = packed_logprobs(model, model, collate_packed_rollouts(batch), 1.0, None)
        alone = torch.cat([packed_logprobs(model, model, collate_packed_rollouts([r]), 1.0, None)[0] for r in batch])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_fillers_bring_a_rank_to_the_common_count():
    mbs = packed_micro_batches(rollouts(3), max_tokens=1000, count=3)
    assert [mb.weight for mb in mbs] == [1.0, 0.0, 0.0]


def test_positions_restart_and_only_completion_positions_are_scored():
    a = Rollout([5, 6, 7], [8, 9], [-0.1, -0.2], advantage=1.0)
    b = Rollout([4, 4], [3], [-0.3], advantage=-2.0)
    mb = collate_packed_rollouts([a, b], rollout_logprobs=True)
    assert mb.input_ids_1N.tolist() == [[5, 6, 7, 8, 9, 4, 4, 3]]
    assert mb.position_ids_1N.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]  # absolute-position models need the restart
    assert mb.cu_seqlens_S1.tolist() == [0, 5, 8]
    assert mb.select_M.tolist() == [2, 3, 6]  # the positions whose logits score 8, 9 and 3
    assert mb.targets_M.tolist() == [8, 9, 3] and mb.seq_M.tolist() == [0, 0, 1]
    assert mb.adv_S.tolist() == [1.0, -2.0] and mb.index_M.tolist() == [0, 1, 0]
    torch.testing.assert_close(mb.rows(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    torch.testing.assert_close(mb.rollout_logprobs_M, torch.tensor([-0.1, -0.2, -0.3]))


@pytest.mark.parametrize("overrides,message", [
    (["learner.zero_stage=3", "learner.max_tokens_per_micro_batch=64", "learner.logprob_chunk_tokens=8"],
     "needs learner.zero_stage 0-2"),
    (["learner.logprob_chunk_tokens=8"], "needs learner.max_tokens_per_micro_batch")])
def test_chunk_settings_that_cannot_work_are_config_errors(overrides, message):
    from rlvr.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, ["model.path=smollm2", *overrides])
