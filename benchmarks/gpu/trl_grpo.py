"""The peer side of the GRPO step benchmark: TRL's GRPOTrainer with vLLM colocated, on what rlvr's
configs/gpu_smollm2_grpo_bench.yaml runs (same model, GSM8K prompt template, G, lengths, batch, reward function).

One optimizer step = one generation of prompts_per_step x G completions: per_device_train_batch_size=micro and
gradient_accumulation_steps=(prompts x G)/micro, so TRL's generation batch is exactly one step's samples, trained in
the same micro-batches as rlvr's learner. Step time: wall clock between consecutive `on_step_end` callbacks (the
first from `on_train_begin`), i.e. generation + reward + update + TRL's weight load into vLLM.

    python benchmarks/gpu/trl_grpo.py --model /root/models/smollm2 --data .gpudata/gsm8k/train.jsonl --out trl.json
    python benchmarks/gpu/trl_grpo.py ... --no-vllm --steps 1   # CPU dry run of the arguments (no vLLM)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

TEMPLATE = "Question: {prompt}\nGive the final answer after ####.\nAnswer:"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="GSM8K train JSONL (question, answer)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    ap.add_argument("--template", default=TEMPLATE)
    ap.add_argument("--gradient-checkpointing", action="store_true", help="TRL's own default (off here)")
    ap.add_argument("--plain-prompts", action="store_true", help="prompts as text, not chat messages (a model "
                    "without a chat template: the W3 random-weight model)")
    ap.add_argument("--ignore-eos", action="store_true", help="every completion runs to --max-new-tokens")
    ap.add_argument("--vllm-max-model-len", type=int, default=None)
    ap.add_argument("--no-vllm", action="store_true", help="generate with transformers (CPU dry run)")
    ap.add_argument("--workdir", default="/tmp/trl_grpo")
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def load_dataset(path: str, template: str, seed: int = 0, plain: bool = False):
    from datasets import Dataset

    with open(path, encoding="utf-8") as f:  # not str.splitlines: questions hold U+2028, which it splits on
        rows = [json.loads(line) for line in f if line.strip()]
    random.Random(seed).shuffle(rows)

    def prompt(q: str):
        text = template.format(prompt=q)
        return text if plain else [{"role": "user", "content": text}]

    return Dataset.from_list([{"prompt": prompt(r["question"]), "answer": r["answer"]} for r in rows])


def time_generation(trainer) -> list[dict]:
    """Wrap TRL's generation+scoring call: its seconds and the prompt/completion tokens it produced, per call (one
    call per optimizer step here), so that the step splits into rollout and learner time like rlvr's."""
    import torch

    calls: list[dict] = []
    inner = trainer._generate_and_score_completions

    def timed(inputs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = inner(inputs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        calls.append({"s": time.perf_counter() - t,
                      "prompt_tokens": int(out["prompt_mask"].sum()) if "prompt_mask" in out else None,
                      "completion_tokens": int(out["completion_mask"].sum()) if "completion_mask" in out else None})
        return out

    trainer._generate_and_score_completions = timed
    return calls


def correctness(prompts, completions, answer, **_) -> list[float]:
    """rlvr's own reward function, so both sides score alike (TRL passes chat completions as message lists)."""
    from rlvr.rewards.math import math_reward

    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(math_reward("", t, a).score) for t, a in zip(texts, answer)]


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.marks: list[float] = []
            self.logs: list[dict] = []

        def on_train_begin(self, args, state, control, **kw):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            self.marks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs or {}, step=state.global_step))

    return StepTimer()


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    from trl import GRPOConfig, GRPOTrainer

    samples = args.prompts_per_step * args.G
    if samples % args.micro:
        sys.exit(f"prompts x G = {samples} is not divisible by --micro {args.micro}")
    config = GRPOConfig(
        output_dir=args.workdir,
        max_steps=args.steps,
        per_device_train_batch_size=args.micro,
        gradient_accumulation_steps=samples // args.micro,
        num_generations=args.G,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        learning_rate=args.lr,
        beta=0.0,
        # TRL defaults to activation checkpointing; rlvr's preset has none (135M fits easily): off on both sides
        gradient_checkpointing=args.gradient_checkpointing,
        bf16=not args.no_vllm,
        use_cpu=args.no_vllm,
        use_vllm=not args.no_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=args.gpu_memory_utilization,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
        generation_kwargs={"ignore_eos": True} if args.ignore_eos else None,
        **({"vllm_max_model_length": args.vllm_max_model_len} if args.vllm_max_model_len else {}),
    )
    timer = step_timer()
    trainer = GRPOTrainer(model=args.model, reward_funcs=correctness, args=config,
                          train_dataset=load_dataset(args.data, args.template, plain=args.plain_prompts),
                          callbacks=[timer])
    generation = time_generation(trainer)
    t_ready = time.perf_counter()
    trainer.train()
    steps = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    logs = [l for l in timer.logs if "reward" in l]
    result = {
        "side": "trl", "steps": len(steps), "step_s": [round(s, 4) for s in steps],
        "samples_per_step": samples, "setup_s": round(t_ready - t_start, 1),
        "gradient_checkpointing": args.gradient_checkpointing,
        "reward_mean": [l.get("reward") for l in logs],
        "completion_length_mean": [l.get("completions/mean_length") for l in logs],
        "generation": generation,
        "trl_logs": logs,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"trl: {len(steps)} steps, step_s {[round(s, 2) for s in steps]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
