"""The LM head in two passes, for selective-token training (rlvr/algo/token_selection.py).

1. `score_pass`: no grad, over every position in chunks of ~SCORE_CHUNK_TOKENS positions, so the [B, T, V] logits
   are never held whole: each position's logprob of its target and entropy (what the selection scores are).
2. `kept_logprobs`: with grad, the head on the hidden states of the kept positions only (gathered to [N, H]).

What this saves: the head's forward with grad and its backward (and the [B, T, V] logits and their gradient in
memory) shrink to the kept share; the no-grad pass costs one head forward over all positions. What it does not
save: the trunk (embeddings, attention, MLPs) still runs forward with grad on every position, and its backward
still runs over every position (the dropped positions' hidden states get zero gradient from the loss, but causal
attention carries the kept positions' gradient back through all earlier ones, so no position can be skipped).
benchmarks/token_selection_cpu.py counts both.

The trunk is the model's decoder (`get_decoder()`) and the head its output embedding: right for Llama-style
models (all this repository builds or loads); a model that rescales or soft-caps its logits after the head would
need that step here too.
"""

from __future__ import annotations

import torch

from rlvr.algo.token_selection import TokenSelection, selection_stats

SCORE_CHUNK_TOKENS = 4096
"""Positions per chunk of the no-grad pass: a [4096, V] float32 block (0.8 GB at SmolLM2's V=49152)."""


def trunk_hidden(model: torch.nn.Module, **inputs) -> torch.Tensor:
    """The last hidden states [B, L, H] (after the final norm), through the model's own forward (the DeepSpeed
    engine's), with the head on the last position only."""
    return model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]


@torch.no_grad()
def score_pass(head: torch.nn.Module, hidden_BTH: torch.Tensor, targets_BT: torch.Tensor,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp_BT of the targets, entropy_BT) under softmax(head(h) / temperature), chunked over positions."""
    B, T, _ = hidden_BTH.shape
    step = max(1, SCORE_CHUNK_TOKENS // max(B, 1))
    logps, entropies = [], []
    for s in range(0, T, step):
        logp_BCV = torch.log_softmax(head(hidden_BTH[:, s : s + step]).float() / temperature, dim=-1)
        logps.append(logp_BCV.gather(-1, targets_BT[:, s : s + step].unsqueeze(-1)).squeeze(-1))
        entropies.append(-(logp_BCV.exp() * logp_BCV).sum(-1))
    return torch.cat(logps, dim=1), torch.cat(entropies, dim=1)


def kept_logprobs(head: torch.nn.Module, hidden_BTH: torch.Tensor, targets_BT: torch.Tensor, keep_BT: torch.Tensor,
                  temperature: float = 1.0) -> torch.Tensor:
    """logp_N (with grad) of the kept positions' targets, in row-major order of keep_BT (as masked_scatter and
    boolean indexing both use)."""
    logits_NV = head(hidden_BTH[keep_BT]).float() / temperature
    return torch.log_softmax(logits_NV, dim=-1).gather(-1, targets_BT[keep_BT].unsqueeze(-1)).squeeze(-1)


def scatter_kept(logp_N: torch.Tensor, keep_BT: torch.Tensor) -> torch.Tensor:
    """logp_N back at its positions of a [B, T] tensor, 0 elsewhere (the loss masks those out); keeps the grad."""
    return torch.zeros(keep_BT.shape, dtype=logp_N.dtype, device=logp_N.device).masked_scatter(keep_BT, logp_N)


def select_and_score(selection: TokenSelection, head: torch.nn.Module, hidden_BTH: torch.Tensor,
                     targets_BT: torch.Tensor, mask_BT: torch.Tensor, temperature: float, step: int,
                     micro_batch: int):
    """Score every position without grad, keep the selection's share, run the head with grad on those only.
    Returns (keep_BT, logp_N with grad, entropy_BT, summed statistics for `selection_metrics`)."""
    logp_all_BT, entropy_BT = score_pass(head, hidden_BTH.detach(), targets_BT, temperature)
    keep_BT = selection.select(logp_all_BT, entropy_BT, mask_BT, step, micro_batch)
    logp_N = kept_logprobs(head, hidden_BTH, targets_BT, keep_BT, temperature)
    stats = selection_stats(keep_BT, mask_BT, logp_all_BT, entropy_BT)
    stats["select_nll_all"] = -(logp_all_BT * mask_BT).sum()  # the plain loss, for comparison
    return keep_BT, logp_N, entropy_BT, stats
