"""Packing documents into rows: placement, positions, loss masks, and attention that never crosses documents."""

from __future__ import annotations

import torch

from rlvr.data.packing import (
    PAD_DOC,
    Document,
    collate_packed,
    document_attention_bias,
    pack,
    position_ids,
)

PAD = 0


def doc(ids: list[int], mask: list[bool] | None = None) -> Document:
    return Document(ids, mask if mask is not None else [True] * len(ids))


def test_pack_in_order_split_and_pad():
    rows = pack([doc([1, 2, 3]), doc([4, 5, 6, 7]), doc([8])], seq_len=5, pad_id=PAD, split_documents=True)
    assert [r.input_ids_L.tolist() for r in rows] == [[1, 2, 3, 4, 5], [6, 7, 8, PAD, PAD]]
    assert [r.doc_ids_L.tolist() for r in rows] == [[0, 0, 0, 1, 1], [0, 0, 1, PAD_DOC, PAD_DOC]]
    assert rows[1].loss_mask_L.tolist() == [True, True, True, False, False]


def test_pack_without_split_starts_new_row_and_truncates():
    rows = pack([doc([1, 2, 3]), doc([4, 5, 6]), doc(list(range(10, 18)))], seq_len=5, pad_id=PAD,
                split_documents=False)
    assert [r.input_ids_L.tolist() for r in rows] == [[1, 2, 3, PAD, PAD], [4, 5, 6, PAD, PAD], [10, 11, 12, 13, 14]]


def test_positions_restart_per_document():
    doc_BL = torch.tensor([[0, 0, 0, 1, 1, 2, PAD_DOC, PAD_DOC]])
    assert position_ids(doc_BL).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]


def test_attention_bias_is_block_diagonal_and_causal():
    allowed = document_attention_bias(torch.tensor([[0, 0, 1, 1, PAD_DOC]]))[0, 0] == 0
    expected = torch.tensor([
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],  # padding attends to itself only: no all-masked softmax row
    ], dtype=torch.bool)
    assert torch.equal(allowed, expected)


def test_loss_mask_skips_document_boundaries_padding_and_unmasked_tokens():
    rows = pack([doc([1, 2, 3], [False, True, True]), doc([4, 5])], seq_len=7, pad_id=PAD, split_documents=True)
    batch = collate_packed(rows)
    # targets: 2 3 4 5 pad pad; 2 and 3 are targets of doc 0, 4 starts doc 1 (no loss), 5 is doc 1's, pads not
    assert batch.targets_BT.tolist() == [[2, 3, 4, 5, PAD, PAD]]
    assert batch.loss_mask_BT.tolist() == [[True, True, False, True, False, False]]


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=64, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def _logits(model, rows):
    b = collate_packed(rows)
    with torch.no_grad():
        return model(input_ids=b.input_ids_BL, position_ids=b.position_ids_BL, attention_mask=b.attn_bias_B1LL,
                     use_cache=False).logits


def test_document_b_does_not_see_document_a():
    model = _tiny_llama()
    doc_b = doc([7, 8, 9, 10, 11])
    a1 = pack([doc([1, 2, 3, 4]), doc_b], seq_len=12, pad_id=PAD, split_documents=True)
    a2 = pack([doc([20, 21, 22, 23]), doc_b], seq_len=12, pad_id=PAD, split_documents=True)
    alone = pack([doc_b], seq_len=12, pad_id=PAD, split_documents=True)
    b1, b2 = _logits(model, a1)[0, 4:9], _logits(model, a2)[0, 4:9]
    assert torch.allclose(b1, b2, atol=1e-5), "changing document A changed document B's logits"
    # positions restart too: B packed after A computes exactly what B computes alone
    assert torch.allclose(b1, _logits(model, alone)[0, 0:5], atol=1e-5)
    # the check has teeth: with a plain causal mask (one document per row), B does see A
    with torch.no_grad():
        plain1 = model(input_ids=torch.stack([a1[0].input_ids_L])).logits[0, 4:9]
        plain2 = model(input_ids=torch.stack([a2[0].input_ids_L])).logits[0, 4:9]
    assert not torch.allclose(plain1, plain2, atol=1e-3)
