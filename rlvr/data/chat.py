"""Chat conversations to token ids with a loss mask over the assistant's tokens only, from the tokenizer's own
chat template.

Few templates mark assistant spans (`{% generation %}`), SmolLM2's included, so the spans are found by rendering
prefixes: the tokens an assistant turn adds are those between the conversation up to it (with the generation prompt,
e.g. `<|im_start|>assistant\\n`) and the conversation including it. They are trimmed after the turn's EOS, which the
model must learn to emit, so the template's trailing newline carries no loss.
"""

from __future__ import annotations

from rlvr.config import ConfigError
from rlvr.data.packing import Document


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                              return_dict=False))


def assistant_masked(tokenizer, messages: list[dict]) -> Document:
    """Token ids of the whole conversation and a mask that is True on every assistant turn's tokens."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError("SFT needs a tokenizer with a chat template (none is saved with this tokenizer)")
    ids = _render(tokenizer, messages, add_generation_prompt=False)
    mask = [False] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True) if i else []
        upto = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if ids[: len(upto)] != upto or upto[: len(prompt)] != prompt:
            raise ConfigError("the chat template renders a conversation's prefix differently from the whole")
        start, end = len(prompt), len(upto)
        span = ids[start:end]
        if tokenizer.eos_token_id in span:
            end = start + len(span) - span[::-1].index(tokenizer.eos_token_id)
        mask[start:end] = [True] * (end - start)
    return Document(ids, mask)
