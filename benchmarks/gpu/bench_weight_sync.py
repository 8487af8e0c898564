"""Weight sync learner -> vLLM: seconds per sync, effective GB/s, and whether vLLM's logprobs match afterwards.

The "learner" is a transformers model on the GPU in this process; the engine is rlvr's `VLLMEngine` (its worker
runs in vLLM's engine-core subprocess, so every sync crosses a process boundary, as between Ray actors).

Phases (each in its own process, see phase.py):
- ipc: colocated mode on one GPU. Sleep (level 2) / wake timings, then syncs by CUDA IPC for several bucket
  sizes, and the object-store path (`load_weights` of a CPU state dict) for comparison.
- nccl: separate GPUs (needs 2): learner on one GPU, engine on the other, bucketed NCCL broadcast.
- logprobs: after perturbing the learner's weights and syncing (colocated cycle: sleep, wake weights, IPC sync,
  wake KV cache), vLLM's sampled-token logprobs versus a transformers forward in bf16 on the same tokens.
  Also before the sync (stale weights: must differ) and after the object-store path.

    python benchmarks/gpu/bench_weight_sync.py --phases ipc,logprobs --out results/sync.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from phase import emit, run_phase  # noqa: E402

QUESTIONS = [
    "A farmer has 12 cows and buys 7 more. Then 4 cows are sold. How many cows does the farmer have?",
    "Tom reads 15 pages a day. How many pages does he read in 3 weeks?",
    "A shirt costs $24 and is on sale for 25% off. What is the sale price?",
    "Sara has 3 boxes with 18 pencils each. She gives away 20 pencils. How many are left?",
    "A train travels 60 miles per hour for 2.5 hours. How far does it go?",
    "There are 28 students and each needs 3 notebooks. Notebooks come in packs of 12. How many packs are needed?",
    "Liam saves $8 a week. How many weeks until he can buy a $100 bike if he already has $36?",
    "A rectangle is 9 cm long and 4 cm wide. What is its perimeter?",
]


def learner_model(path: str, device: torch.device):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(device).eval()


def named_params(model):
    # named_parameters, not state_dict: a tied lm_head is listed once (vLLM skips lm_head when tied anyway)
    return ((n, p.detach()) for n, p in model.named_parameters())


def param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def sync_stats(times: list[float], nbytes: int) -> dict:
    med = statistics.median(times)
    return {"seconds": [round(t, 4) for t in times], "median_s": round(med, 4), "GB_per_s": round(nbytes / med / 1e9, 2)}


def rollout_cfg(gpu_mem: float):
    from rlvr.config import RolloutSection

    return RolloutSection(engine="vllm", gpu_memory_utilization=gpu_mem)


@torch.no_grad()
def perturb(model, scale: float, seed: int) -> None:
    """A stand-in for a training step: every parameter moves by `scale` of its own std."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for p in model.parameters():
        std = p.float().std() if p.numel() > 1 else p.float().abs()
        p.add_((torch.randn(p.shape, generator=g, device=p.device) * std * scale).to(p.dtype))


@torch.no_grad()
def logprob_diff(engine, model, prompt_ids: list[list[int]], n: int, temperature: float, new_tokens: int) -> dict:
    """Max/mean |vLLM logprob - transformers logprob| over every sampled token, both at logits / temperature."""
    from rlvr.rollout.base import SamplingParams

    comps = engine.generate(prompt_ids, SamplingParams(n=n, temperature=temperature, max_new_tokens=new_tokens))
    device = next(model.parameters()).device
    diffs, ref_abs = [], []
    for start in range(0, len(comps), 32):
        chunk = comps[start : start + 32]
        seqs = [prompt_ids[c.prompt_index] + c.token_ids for c in chunk]
        width = max(map(len, seqs))
        ids = torch.zeros(len(seqs), width, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):  # right padding: causal attention keeps real positions unaffected
            ids[i, : len(s)] = torch.tensor(s, device=device)
            mask[i, : len(s)] = 1
        logp_BTV = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float() / temperature, dim=-1)
        for i, c in enumerate(chunk):
            p = len(prompt_ids[c.prompt_index])
            tok = torch.tensor(c.token_ids, device=device)
            hf = logp_BTV[i, p - 1 : p - 1 + len(tok)].gather(-1, tok[:, None]).squeeze(-1)
            vl = torch.tensor(c.logprobs, device=device)
            diffs.append((hf - vl).abs())
            ref_abs.append(hf.abs())
    d = torch.cat(diffs)
    return {"tokens": d.numel(), "max_abs_diff": round(d.max().item(), 4), "mean_abs_diff": round(d.mean().item(), 5),
            "mean_abs_logprob": round(torch.cat(ref_abs).mean().item(), 3)}


def colocated_sync(engine, model, bucket_mb: float) -> dict:
    """sleep(2) -> wake weights -> IPC sync -> wake KV cache, each timed; memory freed by sleeping."""
    from rlvr.rollout.weight_sync import plan_for, send_ipc

    torch.cuda.synchronize()
    free0 = torch.cuda.mem_get_info()[0]
    t0 = time.perf_counter()
    engine.sleep(level=2)
    t1 = time.perf_counter()
    free1 = torch.cuda.mem_get_info()[0]
    engine.wake_up(["weights"])
    t2 = time.perf_counter()
    send_ipc(named_params(model), plan_for(named_params(model), bucket_mb), engine.load_ipc_bucket)
    t3 = time.perf_counter()
    engine.wake_up(["kv_cache"])
    t4 = time.perf_counter()
    return {"sleep_s": round(t1 - t0, 3), "freed_GiB": round((free1 - free0) / 2**30, 2),
            "wake_weights_s": round(t2 - t1, 3), "sync_s": round(t3 - t2, 3), "wake_kv_s": round(t4 - t3, 3),
            "cycle_s": round(t4 - t0, 3)}


def phase_ipc(args) -> dict:
    from rlvr.rollout.vllm_engine import VLLMEngine
    from rlvr.rollout.weight_sync import plan_for, send_ipc

    device = torch.device("cuda", 0)
    model = learner_model(args.model, device)
    nbytes = param_bytes(model)
    t = time.perf_counter()
    engine = VLLMEngine(args.model, rollout_cfg(args.gpu_mem), 0, enable_sleep_mode=True)
    out: dict = {"model": args.model, "param_bytes": nbytes, "engine_init_s": round(time.perf_counter() - t, 1)}
    out["colocated_cycle"] = [colocated_sync(engine, model, 256) for _ in range(3)]
    for mb in args.bucket_mb:
        plans = plan_for(named_params(model), mb)
        times = []
        for _ in range(args.repeats + 1):
            t = time.perf_counter()
            send_ipc(named_params(model), plans, engine.load_ipc_bucket)
            times.append(time.perf_counter() - t)
        out[f"ipc_bucket_{mb}MB"] = {"buckets": len(plans), **sync_stats(times[1:], nbytes)}
    cpu_sd = {n: p.cpu() for n, p in named_params(model)}
    times = []
    for _ in range(3):
        t = time.perf_counter()
        engine.load_weights(cpu_sd)
        times.append(time.perf_counter() - t)
    out["object_store_path_cpu_state_dict"] = sync_stats(times, nbytes)
    perturb(model, 0.05, seed=1)
    send_ipc(named_params(model), plan_for(named_params(model), 256), engine.load_ipc_bucket)
    out["logprobs_after_ipc_sync"] = logprob_diff(engine, model, synthetic_prompts(model), 1, 1.0, 64)
    return out


def synthetic_prompts(model, n: int = 16, length: int = 64) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, model.config.vocab_size - 1, (n, length), generator=g).tolist()


def chat_prompts(path: str) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    return [list(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
                                        return_dict=False)) for q in QUESTIONS]


def phase_logprobs(args) -> dict:
    from rlvr.rollout.vllm_engine import VLLMEngine

    device = torch.device("cuda", 0)
    model = learner_model(args.model, device)
    engine = VLLMEngine(args.model, rollout_cfg(args.gpu_mem), 0, enable_sleep_mode=True)
    prompts = chat_prompts(args.model)
    check = dict(n=8, temperature=args.temperature, new_tokens=128)
    out: dict = {"model": args.model, "temperature": args.temperature, "dtype": "bfloat16"}
    out["same_weights_no_sync"] = logprob_diff(engine, model, prompts, **check)
    perturb(model, 0.05, seed=1)
    out["stale_after_update_no_sync"] = logprob_diff(engine, model, prompts, **check)
    out["colocated_cycle"] = colocated_sync(engine, model, 256)
    out["after_ipc_sync"] = logprob_diff(engine, model, prompts, **check)
    perturb(model, 0.05, seed=2)
    engine.load_weights({n: p.cpu() for n, p in named_params(model)})
    out["after_object_store_sync"] = logprob_diff(engine, model, prompts, **check)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def phase_nccl(args) -> dict:
    """Learner on cuda:1, engine on cuda:0 (the orchestrator sets CUDA_VISIBLE_DEVICES so they differ)."""
    from rlvr.rollout.vllm_engine import VLLMEngine
    from rlvr.rollout.weight_sync import NcclBroadcaster, plan_for

    device = torch.device("cuda", 1)
    torch.cuda.set_device(device)
    model = learner_model(args.model, device)
    nbytes = param_bytes(model)
    engine = VLLMEngine(args.model, rollout_cfg(args.gpu_mem), 0)
    port = free_port()
    join = threading.Thread(target=engine.init_nccl, args=("127.0.0.1", port, 1, 1 + engine.num_workers))
    join.start()
    t = time.perf_counter()
    sender = NcclBroadcaster("127.0.0.1", port, 1 + engine.num_workers, device)
    join.join()
    out: dict = {"model": args.model, "param_bytes": nbytes, "group_init_s": round(time.perf_counter() - t, 2)}
    for mb in args.bucket_mb:
        plans = plan_for(named_params(model), mb)
        wire = [p.to_wire() for p in plans]
        times = []
        for _ in range(args.repeats + 1):
            t = time.perf_counter()
            recv = threading.Thread(target=engine.receive_nccl, args=(wire,))
            recv.start()
            sender.broadcast(named_params(model), plans)
            recv.join()
            times.append(time.perf_counter() - t)
        out[f"nccl_bucket_{mb}MB"] = {"buckets": len(plans), **sync_stats(times[1:], nbytes)}
    perturb(model, 0.05, seed=1)
    plans = plan_for(named_params(model), 256)
    recv = threading.Thread(target=engine.receive_nccl, args=([p.to_wire() for p in plans],))
    recv.start()
    sender.broadcast(named_params(model), plans)
    recv.join()
    out["logprobs_after_nccl_sync"] = logprob_diff(engine, model, synthetic_prompts(model), 1, 1.0, 64)
    return out


PHASES = {"ipc": phase_ipc, "nccl": phase_nccl, "logprobs": phase_logprobs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/root/models/qwen05b", help="ipc and nccl phases")
    ap.add_argument("--logprob-model", default="/root/models/smollm2", help="logprobs phase")
    ap.add_argument("--phases", default="ipc,logprobs")
    ap.add_argument("--bucket-mb", type=float, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--gpu-mem", type=float, default=0.3)
    ap.add_argument("--phase", choices=sorted(PHASES), default=None, help="internal: run one phase, print JSON")
    ap.add_argument("--phase-timeout", type=float, default=300)
    ap.add_argument("--out", default="weight_sync.json")
    args = ap.parse_args()

    if args.phase:
        if args.phase == "logprobs":
            args.model = args.logprob_model
        emit(PHASES[args.phase](args))
        return
    report = {"config": {k: v for k, v in vars(args).items() if k not in ("phase", "out")}}
    for name in args.phases.split(","):
        if name == "nccl" and torch.cuda.device_count() < 2:
            report[name] = {"skipped": f"needs 2 GPUs, this machine has {torch.cuda.device_count()}"}
            continue
        if name == "nccl":
            os.environ["CUDA_VISIBLE_DEVICES"] = "1,0"  # engine's worker takes visible 0 = GPU 1; learner GPU 0
        report[name] = run_phase([sys.executable, __file__, *sys.argv[1:], "--phase", name], args.phase_timeout)
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        with open(args.out, "w") as f:  # after every phase: a later hang must not lose what was measured
            json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
