"""Greedy accuracy of a stage's exported model on a held-out set, scored by the math reward, on the driver.

The same engine and reward as the GRPO stage (`HFEngine`, `math_reward`), so a stage's number means the same thing
whichever stage produced the model. References are numbers, so the reward takes its exact numeric path (no sympy
and hence no timeout needed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rlvr.config import DataSection, FilterSpec, RolloutSection, StageEvalSection
from rlvr.data.prompts import Example, filter_examples, read_jsonl, render_prompt
from rlvr.rewards.math import math_reward
from rlvr.rollout.base import SamplingParams


def held_out_examples(cfg: StageEvalSection, seed: int, filters: Sequence[FilterSpec] = ()) -> list[Example]:
    if cfg.source == "word_problems":
        from rlvr.data.synthetic import word_problems

        examples = [Example(p.question, str(p.answer)) for p in word_problems(cfg.num_examples, seed, "held_out")]
    else:
        examples = read_jsonl(cfg.path, cfg.prompt_key, cfg.answer_key, what="stage_eval.path")
    return filter_examples(examples, filters, "the held-out set")[: cfg.num_examples]


def evaluate(model_path: str, cfg: StageEvalSection, examples: list[Example]) -> dict:
    import torch

    t0 = time.perf_counter()
    # One thread: a tiny model's ops are too small to gain from two, and on a busy machine OpenMP threads waiting
    # for each other at every op made this 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _evaluate(model_path, cfg, examples, t0)
    finally:
        torch.set_num_threads(threads)


def _evaluate(model_path: str, cfg: StageEvalSection, examples: list[Example], t0: float) -> dict:
    import torch

    from rlvr.rollout.hf_engine import HFEngine

    engine = HFEngine.from_path(model_path, RolloutSection(batch_size=cfg.batch_size), device="cpu")
    data = DataSection(chat_template=cfg.chat_template)
    prompt_ids = [render_prompt(engine.tokenizer, data, ex.prompt) for ex in examples]
    with torch.no_grad():
        completions = engine.generate(prompt_ids, SamplingParams(n=1, temperature=0.0,
                                                                 max_new_tokens=cfg.max_new_tokens))
    correct = [math_reward(examples[c.prompt_index].prompt, c.text, examples[c.prompt_index].reference).score
               for c in completions]
    return {"accuracy": sum(correct) / len(correct), "correct": int(sum(correct)), "n": len(correct),
            "example_output": completions[0].text, "eval_s": round(time.perf_counter() - t0, 1)}
