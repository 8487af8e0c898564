"""Why |log ratio| was 0.041 at step 0 on the H100 with rollout.overlap_old_logprobs=learner (GRPO run 5).

At step 0 the learner's copy holds the same weights as the trained module, so the ratio should be 1. A plain
transformers model gives bit-equal logprobs with and without grad, in train and eval mode
(`probe_bf16_ratio.py`), so this looks inside rlvr's Learner (DeepSpeed ZeRO-2, bf16, micro-batch 64) on a
SmolLM2-shaped model with random weights: parameter dtypes and differences, then the logprobs of the copy, of the
module without grad, and of the DeepSpeed engine's forward with grad, as the update computes them.

    python3 benchmarks/gpu/probe_learner_ratio.py --out learner_ratio.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def diff(a: list[torch.Tensor], b: list[torch.Tensor], rollouts, micro: int) -> dict:
    from rlvr.utils.batching import chunks

    total, worst, n = 0.0, 0.0, 0
    for x, y, chunk in zip(a, b, chunks(rollouts, micro)):
        window = min(len(r.prompt_ids) for r in chunk) - 1
        for row, r in enumerate(chunk):
            s = len(r.prompt_ids) - 1 - window
            d = (x[row, s:s + len(r.completion_ids)] - y[row, s:s + len(r.completion_ids)]).abs()
            total, worst, n = total + float(d.sum()), max(worst, float(d.max())), n + d.numel()
    return {"mean_abs": total / n, "max_abs": worst, "tokens": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--rollouts", type=int, default=64)
    args = ap.parse_args()
    from bench_learner import synthetic_rollouts
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.algo import grpo
    from rlvr.config import load_config
    from rlvr.learner.batch import collate
    from rlvr.learner.deepspeed_setup import free_port
    from rlvr.learner.learner import Learner
    from rlvr.utils.batching import chunks

    model_dir = tempfile.mkdtemp(prefix="probe-model-")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
                                 num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                 tie_word_embeddings=True, initializer_range=0.08, pad_token_id=0,
                                 max_position_embeddings=2048)).save_pretrained(model_dir)
    micro = min(64, args.rollouts)
    cfg = load_config(None, [f"model.path={model_dir}", "learner.num_actors=1", "learner.precision=bf16",
                             "learner.lr=1e-6", "rollout.samples_per_prompt=8", f"data.prompts_per_step={args.rollouts // 8}",
                             f"learner.micro_batch_size={micro}", "rollout.overlap=true",
                             "rollout.overlap_old_logprobs=learner"])
    learner = Learner(cfg, model_dir, 0, 1)
    learner.setup("127.0.0.1", free_port(), cfg.grad_accum_steps, 100)
    rollouts = synthetic_rollouts(args.rollouts, 49152)
    module, prev = learner.engine.module, learner.prev_model
    params = list(zip(prev.named_parameters(), module.named_parameters(), strict=True))
    result: dict = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "module_dtype": str(next(module.parameters()).dtype), "copy_dtype": str(next(prev.parameters()).dtype),
        "module_attn": getattr(module.config, "_attn_implementation", None),
        "copy_attn": getattr(prev.config, "_attn_implementation", None),
        "max_param_diff": max(float((p.float() - q.float()).abs().max()) for (_, p), (_, q) in params),
        "param_names_differ": [a for (a, _), (b, _) in params if a != b][:5],
        "module_training": module.training,
    }
    lp_copy = learner._logprobs(prev, rollouts)
    lp_module = learner._logprobs(module, rollouts)
    lp_engine = []
    learner.engine.train()
    for chunk in chunks(rollouts, micro):  # as train_grpo computes logp: the engine's forward, with grad
        mb = collate(chunk, learner.pad_id).to(learner.engine.device)
        targets_BT, _ = learner._window_targets(mb)
        logp_BT, _ = grpo.logprobs_and_entropy(learner._window_logits(learner.engine, mb), targets_BT,
                                               cfg.rollout.temperature)
        lp_engine.append(logp_BT.detach())
    result["copy_vs_module_nograd"] = diff(lp_copy, lp_module, rollouts, micro)
    result["module_nograd_vs_engine_grad"] = diff(lp_module, lp_engine, rollouts, micro)
    result["copy_vs_engine_grad"] = diff(lp_copy, lp_engine, rollouts, micro)
    stats = learner.train_grpo(rollouts)  # step 0 as the run logs it
    result["train_grpo_log_ratio_abs"] = stats.get("log_ratio_abs_sum", float("nan")) / max(stats.get("tokens", 1), 1)
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
