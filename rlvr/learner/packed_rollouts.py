"""GRPO micro-batches without padding: rollouts packed back to back into one row by a token budget.

A packed row holds whole sequences (prompt + completion; never split). Positions restart at 0 for every
sequence and attention stays within it, through the `rlvr_varlen` attention registered with transformers
(`use_varlen_attention`): flash-attention's varlen kernel on a GPU in 16-bit, one causal attention per sequence
otherwise. The log-probabilities are taken only where a position scores a completion token (M of the row's N
positions), and in chunks of those (`chunked_logprobs`), so neither the prompts nor a whole (M x vocabulary)
float32 tensor pass through the LM head's softmax.

Shape suffixes: N tokens of the packed row, M completion tokens of the row, S sequences of the row, H hidden.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from rlvr.rollout.base import Rollout

VARLEN = "rlvr_varlen"


def pack_indices(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Greedy in order: a bin takes sequences while their total length fits `max_tokens`; a sequence longer than
    the budget gets a bin of its own (sequences are never split)."""
    bins: list[list[int]] = []
    used = max_tokens + 1
    for i, n in enumerate(lengths):
        if used + n > max_tokens:
            bins.append([])
            used = 0
        bins[-1].append(i)
        used += n
    return bins


@dataclass
class PackedRollouts:
    input_ids_1N: torch.Tensor
    position_ids_1N: torch.Tensor
    cu_seqlens_S1: torch.Tensor
    """int32 offsets of each sequence in the row, 0 first and N last (flash-attention's varlen form)."""
    select_M: torch.Tensor
    """Positions of the row whose logits score a completion token (position t scores token t+1)."""
    targets_M: torch.Tensor
    seq_M: torch.Tensor
    """Which sequence of the row (0..S-1) each completion token belongs to."""
    index_M: torch.Tensor
    """Each completion token's index within its completion (0..T-1)."""
    adv_S: torch.Tensor
    rollout_logprobs_M: torch.Tensor | None
    max_len: int
    num_seqs: int
    max_completion: int
    weight: float = 1.0
    """0 for a filler micro-batch (a rank with fewer micro-batches than another runs it for DeepSpeed's
    collectives; it contributes nothing)."""

    def to(self, device) -> PackedRollouts:
        return PackedRollouts(**{f.name: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                                 for f in fields(self) for v in [getattr(self, f.name)]})

    def rows(self, x_M: torch.Tensor) -> torch.Tensor:
        """x_M laid out as (S sequences, T completion tokens), zeros after each completion's end: the layout of a
        padded micro-batch, so the loss functions see packed and padded micro-batches alike. Differentiable."""
        return x_M.new_zeros(self.num_seqs, self.max_completion).index_put((self.seq_M, self.index_M), x_M)

    def model_kwargs(self) -> dict:
        """Inputs of the model's forward: flash-attention's varlen keyword arguments reach every attention call."""
        return dict(input_ids=self.input_ids_1N, position_ids=self.position_ids_1N, use_cache=False,
                    cu_seq_lens_q=self.cu_seqlens_S1, cu_seq_lens_k=self.cu_seqlens_S1,
                    max_length_q=self.max_len, max_length_k=self.max_len)


def collate_packed_rollouts(rollouts: list[Rollout], rollout_logprobs: bool = False,
                            weight: float = 1.0) -> PackedRollouts:
    ids, pos, cu, select, targets, seq, index, lps = [], [], [0], [], [], [], [], []
    for s, r in enumerate(rollouts):
        offset, p, c = cu[-1], len(r.prompt_ids), len(r.completion_ids)
        ids += r.prompt_ids + r.completion_ids
        pos += range(p + c)
        cu.append(offset + p + c)
        select += range(offset + p - 1, offset + p + c - 1)
        targets += r.completion_ids
        seq += [s] * c
        index += range(c)
        if rollout_logprobs:
            if len(r.logprobs) != c:
                raise ValueError(f"rollout {s} has {len(r.logprobs)} logprobs for {c} tokens "
                                 "(the engine was not asked for logprobs?)")
            lps += r.logprobs
    long = dict(dtype=torch.long)
    return PackedRollouts(
        torch.tensor([ids], **long), torch.tensor([pos], **long), torch.tensor(cu, dtype=torch.int32),
        torch.tensor(select, **long), torch.tensor(targets, **long),
        torch.tensor(seq, **long), torch.tensor(index, **long),
        torch.tensor([r.advantage for r in rollouts], dtype=torch.float32),
        torch.tensor(lps, dtype=torch.float32) if rollout_logprobs else None,
        max(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts), len(rollouts),
        max(len(r.completion_ids) for r in rollouts), weight)


def packed_micro_batches(rollouts: list[Rollout], max_tokens: int, count: int | None = None,
                         rollout_logprobs: bool = False) -> list[PackedRollouts]:
    """This rank's rollouts as packed micro-batches, topped up with fillers to `count` (the largest number of
    micro-batches of any rank: DeepSpeed's gradient reductions need every rank in every micro-step)."""
    bins = pack_indices([len(r.prompt_ids) + len(r.completion_ids) for r in rollouts], max_tokens)
    out = [collate_packed_rollouts([rollouts[i] for i in b], rollout_logprobs) for b in bins]
    while count is not None and len(out) < count:
        out.append(collate_packed_rollouts(rollouts[:1], rollout_logprobs, weight=0.0))
    return out


# -- log-probabilities from hidden states, in chunks --------------------------------------------------------------


def _chunk_logprobs(h_MH: torch.Tensor, targets_M: torch.Tensor, head: torch.nn.Module, temperature: float,
                    entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    logits_MV = head(h_MH).float() / temperature
    logz_M = torch.logsumexp(logits_MV, dim=-1)
    logp_M = logits_MV.gather(-1, targets_M.unsqueeze(-1)).squeeze(-1) - logz_M
    if not entropy:
        return logp_M, None
    with torch.no_grad():  # a metric: no gradient
        entropy_M = logz_M - (torch.softmax(logits_MV, dim=-1) * logits_MV).sum(-1)
    return logp_M, entropy_M


def chunked_logprobs(h_MH: torch.Tensor, targets_M: torch.Tensor, head: torch.nn.Module, temperature: float = 1.0,
                     chunk: int | None = None, entropy: bool = False):
    """log p(target) (and the entropy) under softmax(head(h) / temperature), `chunk` rows at a time. With grad,
    each chunk is checkpointed: its logits are recomputed in the backward pass instead of all being kept."""
    chunk = chunk or max(1, h_MH.shape[0])
    grad = torch.is_grad_enabled() and h_MH.requires_grad
    logps, ents = [], []
    for s in range(0, h_MH.shape[0], chunk):
        args = (h_MH[s : s + chunk], targets_M[s : s + chunk], head, temperature, entropy)
        lp, ent = checkpoint(_chunk_logprobs, *args, use_reentrant=False) if grad else _chunk_logprobs(*args)
        logps.append(lp)
        ents.append(ent)
    logp_M = torch.cat(logps) if logps else h_MH.new_zeros(0, dtype=torch.float32)
    return logp_M, (torch.cat(ents) if entropy and ents else None)


class _LogprobHead(torch.nn.Module):
    """Stands in for the model's LM head during one forward: returns (1, M, 2) [logp, entropy] at the selected
    positions instead of (1, N, V) logits, so the model's own forward (and DeepSpeed's hooks) run unchanged.

    With a `selector` (token selection): every position is scored without grad, `selector(logp_M, entropy_M)`
    picks the kept ones, and only those go through the head with grad; logp is 0 (no graph) elsewhere and
    `self.selected` holds (keep_M, the no-grad logp_M) for the caller."""

    def __init__(self, head, mb: PackedRollouts, temperature: float, chunk: int | None, entropy: bool,
                 selector=None):
        super().__init__()
        self.head, self.mb, self.temperature, self.chunk, self.entropy = head, mb, temperature, chunk, entropy
        self.selector, self.selected = selector, None

    def forward(self, hidden_1NH: torch.Tensor) -> torch.Tensor:
        h_MH = hidden_1NH[0].index_select(0, self.mb.select_M)
        if self.selector is None:
            logp_M, ent_M = chunked_logprobs(h_MH, self.mb.targets_M, self.head, self.temperature, self.chunk,
                                             self.entropy)
            return torch.stack([logp_M, ent_M if ent_M is not None else torch.zeros_like(logp_M)], -1)[None]
        with torch.no_grad():
            logp_all_M, ent_M = chunked_logprobs(h_MH, self.mb.targets_M, self.head, self.temperature, self.chunk,
                                                 entropy=True)
        keep_M = self.selector(logp_all_M, ent_M)
        kept_N, _ = chunked_logprobs(h_MH[keep_M], self.mb.targets_M[keep_M], self.head, self.temperature,
                                     self.chunk)
        self.selected = (keep_M, logp_all_M)
        return torch.stack([torch.zeros_like(logp_all_M).masked_scatter(keep_M, kept_N), ent_M], -1)[None]


@contextmanager
def _head_swapped(model, wrapper_args):
    head = model.get_output_embeddings()
    # the module that holds the head: the model itself, or the causal LM inside a peft wrapper (LoRA)
    owner, name = next((m, n) for m in model.modules() for n, child in m.named_children() if child is head)
    wrapper = _LogprobHead(head, *wrapper_args)
    setattr(owner, name, wrapper)
    try:
        yield wrapper
    finally:
        setattr(owner, name, head)


def packed_logprobs(model, module, mb: PackedRollouts, temperature: float, chunk: int | None,
                    entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp_M, entropy_M) of one packed micro-batch. `model` is what is called (the DeepSpeed engine, or a plain
    module), `module` the Hugging Face model inside it whose LM head is swapped for the call."""
    with _head_swapped(module, (mb, temperature, chunk, entropy)):
        out_1M2 = model(**mb.model_kwargs(), logits_to_keep=0).logits
    return out_1M2[0, :, 0], out_1M2[0, :, 1]


def packed_selected_logprobs(model, module, mb: PackedRollouts, temperature: float, chunk: int | None, selector
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token selection on a packed micro-batch: (logp_M with grad at the kept positions and 0 elsewhere,
    entropy_M, keep_M, logp_M of every position without grad). `selector(logp_M, entropy_M) -> keep_M`."""
    with _head_swapped(module, (mb, temperature, chunk, True, selector)) as head:
        out_1M2 = model(**mb.model_kwargs(), logits_to_keep=0).logits
        keep_M, logp_all_M = head.selected
    return out_1M2[0, :, 0], out_1M2[0, :, 1], keep_M, logp_all_M


# -- attention within each sequence of a packed row ---------------------------------------------------------------


@torch.compiler.disable  # learner.compile: left eager, one kernel on a GPU; its per-sequence bounds are data
def _varlen_attention(module, query_1HND, key_1HND, value_1HND, attention_mask, scaling=None, dropout=0.0,
                      **kwargs):
    """transformers attention function: causal attention within each sequence of the packed row."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:  # a padded batch (right padding): plain causal attention is exact for its real tokens
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query_1HND, key_1HND, value_1HND, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    q_NHD, k_NHD, v_NHD = (t[0].transpose(0, 1) for t in (query_1HND, key_1HND, value_1HND))
    rep = q_NHD.shape[1] // k_NHD.shape[1]
    if rep > 1:  # grouped-query attention: each key/value head serves `rep` query heads
        k_NHD, v_NHD = k_NHD.repeat_interleave(rep, dim=1), v_NHD.repeat_interleave(rep, dim=1)
    if q_NHD.is_cuda and q_NHD.dtype in (torch.bfloat16, torch.float16) and _has_varlen():
        out_NHD = _flash_varlen(q_NHD, k_NHD, v_NHD, cu, int(kwargs["max_length_q"]), scaling)
    else:
        bounds = cu.tolist()
        out_NHD = torch.cat([
            F.scaled_dot_product_attention(q_NHD[a:b].transpose(0, 1), k_NHD[a:b].transpose(0, 1),
                                           v_NHD[a:b].transpose(0, 1), is_causal=True, scale=scaling).transpose(0, 1)
            for a, b in zip(bounds[:-1], bounds[1:])])
    return out_NHD[None], None


def _has_varlen() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401  (torch >= 2.9)
    except ImportError:
        return False
    return True


def _flash_varlen(q_NHD, k_NHD, v_NHD, cu_S1, max_len: int, scaling):
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    # torch 2.9 has is_causal; later releases express causality as a window of (-1 left, 0 right)
    kw = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
    if scaling is not None and "scale" in params:
        kw["scale"] = scaling
    return varlen_attn(q_NHD, k_NHD, v_NHD, cu_S1, cu_S1, max_len, max_len, **kw)


def use_varlen_attention(model) -> None:
    """Switch a Hugging Face model to the packed-row attention (padded inputs keep plain causal attention)."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, _varlen_attention)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(VARLEN)
    else:
        model.config._attn_implementation = VARLEN
