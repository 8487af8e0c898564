"""Rollouts with plain transformers: a KV-cached sampling loop that runs on CPU (and GPU).

We sample ourselves rather than call `model.generate` because we need the exact per-token logprobs of the
distribution we sampled from (logits / temperature, no hidden top-k from a generation_config), which is also
what the learner recomputes, so rollout and learner logprobs agree.
"""

from __future__ import annotations

import torch

from rlvr.config import RolloutSection
from rlvr.rollout.base import Completion, SamplingParams


def sample_next(logits_BV: torch.Tensor, params: SamplingParams, generator: torch.Generator | None):
    """Next token per row and its logprob under log_softmax(logits / T). temperature == 0 is greedy."""
    if params.temperature == 0:
        logp_BV = torch.log_softmax(logits_BV.float(), dim=-1)
        token_B = logp_BV.argmax(dim=-1)
        return token_B, logp_BV.gather(-1, token_B[:, None]).squeeze(-1)
    logp_BV = torch.log_softmax(logits_BV.float() / params.temperature, dim=-1)
    probs_BV = logp_BV.exp()
    if params.top_p < 1.0:
        sorted_p, order = probs_BV.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = sorted_p.cumsum(-1) - sorted_p >= params.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs_BV = torch.zeros_like(probs_BV).scatter(-1, order, sorted_p)
    token_B = torch.multinomial(probs_BV, 1, generator=generator).squeeze(-1)
    return token_B, logp_BV.gather(-1, token_B[:, None]).squeeze(-1)


def cut_at_stop(tokenizer, token_ids: list[int], stop: tuple[str, ...]) -> tuple[list[int], str, bool]:
    """Shortest token prefix whose text contains a stop string; the text is returned without the stop string."""
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if not hits:
        return token_ids, text, False
    pos, _ = min(hits)
    for k in range(1, len(token_ids) + 1):
        if any(s in tokenizer.decode(token_ids[:k], skip_special_tokens=True) for _, s in hits):
            return token_ids[:k], text[:pos], True
    return token_ids, text[:pos], True


class HFEngine:
    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device

    @classmethod
    def from_path(cls, model_path: str, rollout: RolloutSection, dtype: str = "float32", device: str | None = None):
        from rlvr.model_io import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(model_path, dtype)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device), tokenizer, rollout.batch_size)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        if hasattr(self.model, "peft_config"):  # its names are peft's now: strict=False would load nothing
            raise RuntimeError("HFEngine.load_weights after load_adapter: full weights go to a plain model only")
        self.model.load_state_dict(state_dict, strict=False)

    def load_adapter(self, adapter) -> None:
        """learner.lora.sync=adapter: `adapter` is a `rlvr.learner.lora.AdapterWeights`. The model is wrapped
        with the learner's peft config once and takes each new adapter's tensors; the base weights never change,
        so it computes what the learner's adapted model computes, by the same operations."""
        import copy

        from peft import get_peft_model, set_peft_model_state_dict

        if not hasattr(self.model, "peft_config"):
            self.model = get_peft_model(self.model, copy.deepcopy(adapter.config))
        loaded = set_peft_model_state_dict(self.model, adapter.tensors)
        missing = [k for k in loaded.missing_keys if "lora_" in k]
        if loaded.unexpected_keys or missing:
            raise RuntimeError(f"adapter does not fit the engine's model: unexpected {loaded.unexpected_keys[:3]}, "
                               f"missing {missing[:3]}")
        self.model.eval()  # the new LoRA dropout modules start in training mode

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        expanded = [(i, p) for i, p in enumerate(prompt_ids) for _ in range(params.n)]
        out: list[Completion] = []
        for start in range(0, len(expanded), self.batch_size):
            chunk = expanded[start : start + self.batch_size]
            out.extend(self._generate_chunk(chunk, params, generator))
        return out

    def _generate_chunk(self, chunk, params: SamplingParams, generator) -> list[Completion]:
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        B, L = len(chunk), max(len(p) for _, p in chunk)
        ids_BL = torch.full((B, L), pad, dtype=torch.long)
        mask_BL = torch.zeros((B, L), dtype=torch.long)
        for row, (_, prompt) in enumerate(chunk):  # left padding keeps every prompt's last token at column L-1
            ids_BL[row, L - len(prompt) :] = torch.tensor(prompt)
            mask_BL[row, L - len(prompt) :] = 1
        ids_BL, mask_BL = ids_BL.to(self.device), mask_BL.to(self.device)
        pos_BL = (mask_BL.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids_BL, attention_mask=mask_BL, position_ids=pos_BL, use_cache=True)
        done_B = torch.zeros(B, dtype=torch.bool, device=self.device)
        tokens, logps = [], []
        pos_B1 = pos_BL[:, -1:]
        for _ in range(params.max_new_tokens):
            token_B, logp_B = sample_next(out.logits[:, -1], params, generator)
            token_B = token_B.masked_fill(done_B, pad)
            tokens.append(token_B)
            logps.append(logp_B)
            done_B |= token_B == eos
            if bool(done_B.all()):
                break
            mask_BL = torch.cat([mask_BL, torch.ones((B, 1), dtype=mask_BL.dtype, device=self.device)], dim=1)
            pos_B1 = pos_B1 + 1
            out = self.model(
                input_ids=token_B[:, None],
                attention_mask=mask_BL,
                position_ids=pos_B1,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        tokens_BT, logps_BT = torch.stack(tokens, 1).tolist(), torch.stack(logps, 1).tolist()
        return [self._finish(i, toks, lps, eos, params) for (i, _), toks, lps in zip(chunk, tokens_BT, logps_BT)]

    def _finish(self, prompt_index: int, toks: list[int], lps: list[float], eos: int, params) -> Completion:
        finish = "length"
        if eos in toks:
            toks = toks[: toks.index(eos) + 1]  # keep EOS: the policy must learn to stop
            finish = "stop"
        toks, text, stopped = cut_at_stop(self.tokenizer, toks, params.stop)
        return Completion(prompt_index, toks, lps[: len(toks)], text, "stop" if stopped else finish)
