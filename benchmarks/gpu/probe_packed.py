"""On the GPU: the packed learner path (flash-attention varlen, chunked logprobs) against the padded one, bf16.

A 2-layer Qwen2 (GQA, random weights), 12 rollouts of uneven lengths: completion logprobs of the packed rows vs the
padded batch, and the loss gradients of both. Prints one JSON line (max |difference|; bf16, so ~1e-2 is rounding).

    python benchmarks/gpu/probe_packed.py
"""

from __future__ import annotations

import json
import random

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlvr.rollout.base import Rollout
from rlvr.algo import grpo
from rlvr.learner.batch import collate
from rlvr.learner.packed_rollouts import _has_varlen, packed_logprobs, packed_micro_batches, use_varlen_attention


def main() -> None:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = Qwen2Config(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    torch.manual_seed(0)
    padded_model = Qwen2ForCausalLM(cfg).to(dev, torch.bfloat16)
    packed_model = Qwen2ForCausalLM(cfg).to(dev, torch.bfloat16)
    packed_model.load_state_dict(padded_model.state_dict())
    use_varlen_attention(packed_model)
    rng = random.Random(0)
    batch = [Rollout([rng.randrange(1000) for _ in range(rng.randint(5, 40))],
                     [rng.randrange(1000) for _ in range(rng.randint(1, 90))], [], advantage=rng.uniform(-1, 1))
             for _ in range(12)]
    loss_cfg = grpo.LossConfig()
    norm = float(sum(len(r.completion_ids) for r in batch))
    mb = collate(batch, 0).to(dev)
    logits = padded_model(input_ids=mb.input_ids_BL, attention_mask=mb.attention_mask_BL, use_cache=False).logits
    mask = mb.completion_mask_BT
    logp = grpo.token_logprobs(logits[:, :-1], mb.input_ids_BL[:, 1:])
    grpo.grpo_loss(logp, logp.detach(), mb.advantages_B, mask, loss_cfg, norm)[0].backward()
    packed = []
    for p in packed_micro_batches(batch, 256):
        p = p.to(dev)
        lp, _ = packed_logprobs(packed_model, packed_model, p, 1.0, chunk=64)
        loss, _ = grpo.grpo_loss(p.rows(lp), p.rows(lp.detach()), p.adv_S, p.rows(torch.ones_like(lp)).bool(),
                                 loss_cfg, norm)
        loss.backward()
        packed.append(lp.detach())
    grad_diff = max((a.grad.float() - b.grad.float()).abs().max().item()
                    for a, b in zip(padded_model.parameters(), packed_model.parameters()))
    grad_max = max(a.grad.float().abs().max().item() for a in padded_model.parameters())
    print(json.dumps({"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "varlen": _has_varlen(),
                      "logp_max_abs_diff": (torch.cat(packed) - logp.detach()[mask]).abs().max().item(),
                      "grad_max_abs_diff": grad_diff, "grad_max_abs": grad_max}))


if __name__ == "__main__":
    main()
