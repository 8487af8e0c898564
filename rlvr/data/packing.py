"""Packing tokenised documents into fixed-length rows, and the tensors that keep documents apart.

A row holds several documents back to back. Attention is block-diagonal (a token sees only earlier tokens of its own
document), positions restart at 0 for every document, and no loss is taken on predicting a document's first token
from the previous document. Padding forms its own "document" (id -1) so no attention row is empty (an all-masked row
gives NaN in softmax), and it never carries loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD_DOC = -1


@dataclass
class Document:
    token_ids: list[int]
    loss_mask: list[bool]
    """Per token: is this token a training target (all for pretraining, the assistant's tokens for SFT)."""


@dataclass
class PackedRow:
    input_ids_L: torch.Tensor
    doc_ids_L: torch.Tensor
    """Index of the document each token belongs to within the row; PAD_DOC for padding."""
    loss_mask_L: torch.Tensor


@dataclass
class PackedBatch:
    input_ids_BL: torch.Tensor
    position_ids_BL: torch.Tensor
    attn_bias_B1LL: torch.Tensor
    """Additive attention mask: 0 where query may attend to key, a large negative number elsewhere."""
    targets_BT: torch.Tensor
    """T = L - 1: the token that logits at t predict (input_ids at t+1)."""
    loss_mask_BT: torch.Tensor

    def to(self, device) -> PackedBatch:
        return PackedBatch(*(t.to(device) for t in (self.input_ids_BL, self.position_ids_BL, self.attn_bias_B1LL,
                                                   self.targets_BT, self.loss_mask_BT)))


def pack(docs: list[Document], seq_len: int, pad_id: int, split_documents: bool) -> list[PackedRow]:
    """Greedy packing in order. `split_documents`: a document that does not fit continues in the next row
    (pretraining); otherwise it starts a new row and one longer than seq_len is truncated (SFT: a conversation cut
    in two loses its question)."""
    rows: list[PackedRow] = []
    ids: list[int] = []
    doc_ids: list[int] = []
    mask: list[bool] = []

    def flush() -> None:
        pad = seq_len - len(ids)
        rows.append(PackedRow(torch.tensor(ids + [pad_id] * pad, dtype=torch.long),
                              torch.tensor(doc_ids + [PAD_DOC] * pad, dtype=torch.long),
                              torch.tensor(mask + [False] * pad, dtype=torch.bool)))
        ids.clear(), doc_ids.clear(), mask.clear()

    for doc in docs:
        toks, lm = doc.token_ids, doc.loss_mask
        if not split_documents:
            toks, lm = toks[:seq_len], lm[:seq_len]
            if len(ids) + len(toks) > seq_len:
                flush()
        while toks:
            take = min(len(toks), seq_len - len(ids))
            doc_index = doc_ids[-1] + 1 if doc_ids else 0
            ids.extend(toks[:take]), doc_ids.extend([doc_index] * take), mask.extend(lm[:take])
            toks, lm = toks[take:], lm[take:]
            if len(ids) == seq_len:
                flush()
    if ids:
        flush()
    return rows


def position_ids(doc_ids_BL: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... restarting wherever the document id changes."""
    B, L = doc_ids_BL.shape
    idx_BL = torch.arange(L).expand(B, L)
    starts_BL = torch.ones_like(doc_ids_BL, dtype=torch.bool)
    starts_BL[:, 1:] = doc_ids_BL[:, 1:] != doc_ids_BL[:, :-1]
    # index of the most recent document start at or before each position
    start_idx_BL = torch.where(starts_BL, idx_BL, torch.zeros_like(idx_BL)).cummax(dim=1).values
    return idx_BL - start_idx_BL


def document_attention_bias(doc_ids_BL: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 1, L, L) additive mask: causal and within the same document."""
    L = doc_ids_BL.shape[1]
    causal_LL = torch.ones(L, L, dtype=torch.bool).tril()
    same_doc_BLL = doc_ids_BL[:, :, None] == doc_ids_BL[:, None, :]
    allowed_BLL = causal_LL & same_doc_BLL
    bias = torch.zeros(allowed_BLL.shape, dtype=dtype)
    return bias.masked_fill(~allowed_BLL, torch.finfo(dtype).min)[:, None]


def collate_packed(rows: list[PackedRow]) -> PackedBatch:
    ids_BL = torch.stack([r.input_ids_L for r in rows])
    doc_BL = torch.stack([r.doc_ids_L for r in rows])
    mask_BL = torch.stack([r.loss_mask_L for r in rows])
    # target t+1 counts only if it is a target token of the same (real) document as position t
    same_doc_BT = (doc_BL[:, 1:] == doc_BL[:, :-1]) & (doc_BL[:, 1:] != PAD_DOC)
    return PackedBatch(ids_BL, position_ids(doc_BL), document_attention_bias(doc_BL), ids_BL[:, 1:],
                       mask_BL[:, 1:] & same_doc_BT)
