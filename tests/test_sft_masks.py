"""Assistant-only loss masks from the chat template: our ChatML tokenizer and SmolLM2's real template."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from rlvr.config import ConfigError, LMStageSection
from rlvr.data.chat import assistant_masked

CHAT = [
    {"role": "system", "content": "Solve it."},
    {"role": "user", "content": "Tom has 3 pens and gets 4 more. How many pens does Tom have?"},
    {"role": "assistant", "content": "3 + 4 = 7\n#### 7"},
    {"role": "user", "content": "And if he gives away 2?"},
    {"role": "assistant", "content": "7 - 2 = 5\n#### 5"},
]


@functools.cache
def chatml_tokenizer():
    from rlvr.data.tokenizer_train import synthetic_math_tokenizer

    return synthetic_math_tokenizer(0)


@functools.cache
def smollm2_tokenizer():
    """The real SmolLM2-135M-Instruct tokenizer: from the converted cache if there, else from the GGUF itself."""
    from transformers import AutoTokenizer

    from rlvr.model_io import smollm2_gguf

    cached = Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr")) / "smollm2-135m-instruct-float32"
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached))
    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def masked_spans(tokenizer, messages) -> list[str]:
    """The text of each run of loss-masked tokens."""
    d = assistant_masked(tokenizer, messages)
    spans, current = [], []
    for tok, m in zip(d.token_ids, d.loss_mask):
        if m:
            current.append(tok)
        elif current:
            spans.append(tokenizer.decode(current)), current.clear()
    if current:
        spans.append(tokenizer.decode(current))
    return spans


@pytest.mark.parametrize("get_tokenizer", [chatml_tokenizer, pytest.param(smollm2_tokenizer,
                                                                           marks=pytest.mark.needs_smollm2)],
                         ids=["chatml", "smollm2"])
def test_loss_only_on_assistant_turns_and_their_eos(get_tokenizer):
    tok = get_tokenizer()
    assert tok.eos_token == "<|im_end|>"
    assert masked_spans(tok, CHAT) == ["3 + 4 = 7\n#### 7<|im_end|>", "7 - 2 = 5\n#### 5<|im_end|>"]
    doc = assistant_masked(tok, CHAT)
    assert doc.token_ids == list(tok.apply_chat_template(CHAT, tokenize=True, return_dict=False))


@pytest.mark.needs_smollm2
def test_smollm2_default_system_prompt_carries_no_loss():
    tok = smollm2_tokenizer()
    chat = CHAT[1:3]  # no system turn: SmolLM2's template inserts its own
    doc = assistant_masked(tok, chat)
    assert "You are a helpful AI assistant" in tok.decode(doc.token_ids)
    assert masked_spans(tok, chat) == ["3 + 4 = 7\n#### 7<|im_end|>"]


def test_tokenizer_without_chat_template_is_a_config_error():
    from rlvr.model_io import build_char_tokenizer

    with pytest.raises(ConfigError, match="chat template"):
        assistant_masked(build_char_tokenizer(), CHAT)


def test_sft_rows_train_on_answers_only():
    from rlvr.data.lm_data import build_rows
    from rlvr.data.packing import collate_packed

    tok = chatml_tokenizer()
    cfg = LMStageSection(source="word_problems", num_examples=6, seq_len=128)
    batch = collate_packed(build_rows("sft", cfg, tok, seed=0))
    targets = batch.targets_BT[batch.loss_mask_BT].tolist()
    text = tok.decode(targets)
    assert text.count("####") == 6 and text.count("<|im_end|>") == 6
    assert "How many" not in text and "user" not in text and "assistant" not in text
