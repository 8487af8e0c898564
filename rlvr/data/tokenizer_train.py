"""A byte-level BPE tokenizer trained in-process with `tokenizers` on the generated corpus, saved with ChatML.

Digits are split one per token before BPE (as Llama does): a merged "17" would hide the digits a small model must
learn to add. ChatML's `<|im_end|>` is the EOS, so generation stops at the end of an assistant turn.
"""

from __future__ import annotations

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_bpe_tokenizer(texts: list[str], vocab_size: int = 512):
    """A `PreTrainedTokenizerFast` with the ChatML template set (saved by `save_pretrained`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    out.chat_template = CHATML_TEMPLATE
    return out


def synthetic_math_tokenizer(seed: int):
    from rlvr.data.synthetic import tokenizer_corpus

    return train_bpe_tokenizer(tokenizer_corpus(seed))
