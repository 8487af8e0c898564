"""FLOPs and time of one LM training micro-step (forward + backward) per token-selection strategy, on CPU.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/token_selection_cpu.py [--keep 0.2] [--repeats 5]

1. A small Llama built in code (random weights; vocabulary large enough that the head matters), batch B x T
   with loss on every position: the learner's two paths (`all`: the model's logits and cross-entropy over every
   position; otherwise trunk -> chunked no-grad scoring -> head with grad on the kept rows,
   rlvr.learner.selective_head), FLOPs counted by torch.utils.flop_counter on the real pass, and the median
   wall time of `--repeats` passes.
2. The same count for SmolLM2-135M's shape (H 576, 30 layers, V 49152) on the meta device (no memory, no time):
   the trunk's forward+backward over all positions, the no-grad head over all positions, the head with grad
   over the kept positions, against the plain path. The kept count is fixed (keep * B * T), as selection is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from rlvr.algo.token_selection import TokenSelection
from rlvr.learner.selective_head import select_and_score, trunk_hidden

TINY = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=8192)
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)


def build(shape: dict) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(**shape, max_position_embeddings=2048, attn_implementation="sdpa"))


def step(model, selection: TokenSelection, ids_BL: torch.Tensor) -> None:
    """What Learner.train_lm does for one micro-batch (loss on every position), forward and backward."""
    targets_BT, mask_BT = ids_BL[:, 1:], torch.ones_like(ids_BL[:, 1:], dtype=torch.bool)
    if selection.active:
        hidden_BTH = trunk_hidden(model, input_ids=ids_BL)[:, :-1]
        _, logp_N, _, _ = select_and_score(selection, model.get_output_embeddings(), hidden_BTH, targets_BT,
                                           mask_BT, 1.0, 0, 0)
        loss = -logp_N.sum()
    else:
        logits_BTV = model(input_ids=ids_BL, use_cache=False).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits_BTV.float().transpose(1, 2), targets_BT, reduction="sum")
    loss.backward()
    model.zero_grad(set_to_none=True)


def measure_tiny(strategies: list[str], keep: float, B: int, T: int, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model = build(TINY)
    ids_BL = torch.randint(0, TINY["vocab_size"], (B, T + 1))
    rows = []
    for strategy in strategies:
        selection = TokenSelection(strategy, 1.0 if strategy == "all" else keep)
        with FlopCounterMode(display=False) as counter:
            step(model, selection, ids_BL)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step(model, selection, ids_BL)
            times.append(time.perf_counter() - t0)
        rows.append({"model": "tiny", "strategy": strategy, "keep": selection.keep_fraction,
                     "gflops": counter.get_total_flops() / 1e9, "step_s_median": statistics.median(times),
                     "step_s_min": min(times)})
    return rows


def count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def measure_meta(shape: dict, keep: float, B: int, T: int) -> dict:
    """GFLOPs per micro-step of SmolLM2's shape, piece by piece, on the meta device."""
    with torch.device("meta"):
        model = build(shape)
        ids_BL = torch.zeros((B, T), dtype=torch.long)
        # a ready 4-D additive mask (as the packed LM path passes): the 2-D path inspects values, which meta has not
        bias_B1LL = torch.zeros((B, 1, T, T))
    head, H, V = model.get_output_embeddings(), shape["hidden_size"], shape["vocab_size"]
    k = round(keep * B * T)

    def plain():
        model(input_ids=ids_BL, attention_mask=bias_B1LL, use_cache=False).logits.float().sum().backward()

    def trunk():
        trunk_hidden(model, input_ids=ids_BL, attention_mask=bias_B1LL).sum().backward()

    def head_no_grad():
        with torch.no_grad():
            head(torch.zeros((B, T, H), device="meta"))

    def head_kept():
        head(torch.zeros((k, H), device="meta", requires_grad=True)).float().sum().backward()

    parts = {"plain": count(plain), "trunk_fwd_bwd": count(trunk), "head_no_grad_all": count(head_no_grad),
             "head_fwd_bwd_kept": count(head_kept)}
    selected = parts["trunk_fwd_bwd"] + parts["head_no_grad_all"] + parts["head_fwd_bwd_kept"]
    return {"model": "smollm2-shape", "B": B, "T": T, "V": V, "keep": keep, **parts, "selected": selected,
            "saving": 1 - selected / parts["plain"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--keep", type=float, default=0.2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread, less noise from the neighbours
    for row in measure_tiny(["all", "confidence", "entropy", "random"], args.keep, args.batch, args.seq,
                            args.repeats):
        print(json.dumps(row))
    for keep in (args.keep, 0.5, 1.0):
        print(json.dumps(measure_meta(SMOLLM2, keep, 4, 512)))


if __name__ == "__main__":
    main()
