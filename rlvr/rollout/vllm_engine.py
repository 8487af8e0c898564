"""Rollouts with vLLM behind the `RolloutEngine` protocol: one `vllm.LLM` per rollout actor.

vLLM is imported inside the constructor only, so CPU installs and CI never need it. Supported: vLLM >=0.26,<0.27
(0.26.0 is the release built for the GPU image's torch 2.11 + CUDA 13; see pyproject.toml).

Logprobs: the engine is built with `logprobs_mode="processed_logprobs"`, which on 0.26 makes the sampler return
log_softmax of the logits after temperature and top-p (vllm/v1/sample/sampler.py, topk_topp_sampler.py), i.e. the
distribution the token was drawn from. With top_p == 1 that is log_softmax(logits / T), what the learner
recomputes; with top_p < 1 it is renormalised over the nucleus, so learner and rollout logprobs differ by design.

Weights reach the workers through `WeightSyncExtension` (vllm_worker_ext.py): `load_weights(state_dict)` stages
a CPU state dict on this process's GPU(s) and hands it over by CUDA IPC; a co-located learner calls
`load_ipc_bucket` with its own handles instead (weight_sync.send_ipc), and a learner on other GPUs broadcasts by
NCCL after `init_nccl`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rlvr.config import RolloutSection
from rlvr.rollout.base import Completion, SamplingParams
from rlvr.rollout.weight_sync import plan_for, send_ipc

EXTENSION = "rlvr.rollout.vllm_worker_ext.WeightSyncExtension"


class VLLMEngine:
    def __init__(
        self,
        model_path: str,
        rollout_cfg: RolloutSection,
        seed: int = 0,
        *,
        dtype: str = "bfloat16",
        enable_sleep_mode: bool = False,
        ignore_eos: bool = False,
        bucket_mb: float = 256,
        max_model_len: int | None = None,
        lora_rank: int | None = None,
        **engine_kwargs,
    ):
        """`ignore_eos`: for throughput benchmarks, where lengths must not depend on the weights.

        `lora_rank`: learner.lora.sync=adapter: LoRA enabled in vLLM, adapters of this rank applied per request.

        `engine_kwargs` go to `vllm.LLM` unchanged (e.g. enforce_eager for tests).
        """
        import vllm

        self.cfg = rollout_cfg
        self.ignore_eos = ignore_eos
        self.bucket_mb = bucket_mb
        self.lora_request = None  # the newest adapter (learner.lora.sync=adapter), sent with every request
        self._adapter_dirs: list = []
        if lora_rank is not None:
            engine_kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
        if rollout_cfg.kv_cache_gb:
            engine_kwargs.setdefault("kv_cache_memory_bytes", int(rollout_cfg.kv_cache_gb * 2**30))
        self.llm = vllm.LLM(
            model=model_path,
            tensor_parallel_size=rollout_cfg.tensor_parallel_size,
            gpu_memory_utilization=rollout_cfg.gpu_memory_utilization,
            dtype=dtype,
            # one seed per actor (the caller passes base seed + actor index): per-request seeds would make vLLM
            # draw each row's noise with its own generator, a Python loop per decoding step
            seed=seed,
            logprobs_mode="processed_logprobs",
            max_logprobs=0,
            enable_sleep_mode=enable_sleep_mode,
            worker_extension_cls=EXTENSION,
            max_model_len=max_model_len,
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.asleep = False

    # -- RolloutEngine ------------------------------------------------------------------------------------------

    def sampling_params(self, params: SamplingParams):
        """vLLM's SamplingParams for ours (params.seed is ignored: see the constructor's seed)."""
        import vllm

        return vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            ignore_eos=self.ignore_eos,
            logprobs=0 if params.logprobs else None,  # 0: the sampled token's logprob only
            flat_logprobs=True,  # primitive lists instead of a dict per token: less Python per token
            # vLLM detokenizes incrementally, token by token, also each logprob's token; we decode once in a batch
            # afterwards instead. Stop strings need vLLM's detokenizer, so keep it then.
            detokenize=bool(params.stop),
        )

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        if self.asleep:
            raise RuntimeError("VLLMEngine.generate while asleep: call wake_up() first")
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        sampling = self.sampling_params(params)
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False, lora_request=self.lora_request)
        completions: list[Completion] = []
        for i, request in enumerate(outputs):  # vLLM returns requests in submission order
            for sample in sorted(request.outputs, key=lambda o: o.index):
                completions.append(
                    Completion(
                        prompt_index=i,
                        token_ids=list(sample.token_ids),
                        logprobs=(sampled_logprobs(sample.logprobs, len(sample.token_ids))
                                  if params.logprobs else []),
                        text=sample.text,
                        finish_reason="stop" if sample.finish_reason == "stop" else "length",
                    )
                )
        if not sampling.detokenize:
            texts = self.tokenizer.batch_decode([c.token_ids for c in completions], skip_special_tokens=True)
            for c, text in zip(completions, texts):
                c.text = text
        return completions

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Weights from anywhere (e.g. CPU tensors from Ray's object store): staged on our GPU, then sent by IPC.

        This process shares GPUs with the engine's workers (same Ray allocation), so the hop from here into the
        worker process is GPU memory to GPU memory; only the Ray transfer into this process touches the host.
        """
        named = list(state_dict.items())
        devices = [torch.device("cuda", i) for i in range(self.cfg.tensor_parallel_size)]
        with torch.cuda.device(devices[0]):
            send_ipc(named, plan_for(named, self.bucket_mb), self.load_ipc_bucket, devices)

    def load_adapter(self, adapter) -> None:
        """learner.lora.sync=adapter (ran on an H100: docs/lora.md, "GPU figures"). The adapter tensors are written as
        a peft directory and every later request carries a LoRARequest for it. Each sync gets a new id, which makes
        vLLM load it afresh (it caches adapters by id); the directory before the previous one is removed."""
        import shutil
        import tempfile

        from vllm.lora.request import LoRARequest

        directory = Path(tempfile.mkdtemp(prefix="rlvr-adapter-"))
        write_adapter_dir(adapter, directory)
        lora_id = (self.lora_request.lora_int_id + 1) if self.lora_request is not None else 1
        self.lora_request = LoRARequest(f"rlvr-{lora_id}", lora_id, str(directory))
        self._adapter_dirs.append(directory)
        while len(self._adapter_dirs) > 2:  # the previous one may still be read by requests in flight
            shutil.rmtree(self._adapter_dirs.pop(0), ignore_errors=True)
        self._weights_changed()

    # -- weight sync and colocation -------------------------------------------------------------------------------

    def load_ipc_bucket(self, plan_wire: dict, handles: bytes) -> None:
        """One bucket exported by `weight_sync.export_ipc`; returns when every worker has loaded it."""
        self.llm.collective_rpc("rlvr_load_ipc_bucket", args=(plan_wire, handles))
        self._weights_changed()

    def init_nccl(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        """Join the learner's broadcast group; blocks until the learner (rank 0) joins too."""
        self.llm.collective_rpc("rlvr_init_nccl", args=(host, port, rank_offset, world_size))

    def receive_nccl(self, plans_wire: list[dict]) -> None:
        """Receive one sync's buckets; the learner broadcasts the same plans concurrently."""
        self.llm.collective_rpc("rlvr_receive_nccl", args=(plans_wire,))
        self._weights_changed()

    def _weights_changed(self) -> None:
        # prefix caching would otherwise serve prompt KV computed with the old weights (sleep clears it too,
        # but a sync without sleeping does not)
        if not self.asleep:
            self.llm.reset_prefix_cache()

    @property
    def num_workers(self) -> int:
        return self.cfg.tensor_parallel_size

    def sleep(self, level: int = 1) -> None:
        """Free the GPU for a co-located learner. Level 1 keeps weights in host memory; level 2 drops them
        (right when a full weight sync follows, as in RL: nothing is copied back and forth)."""
        self.llm.sleep(level=level)
        self.asleep = True

    def wake_up(self, tags: list[str] | None = None) -> None:
        """tags=["weights"] first, sync, then ["kv_cache"]: the KV cache is not allocated while weights move."""
        self.llm.wake_up(tags)
        if tags is None or "kv_cache" in tags:
            self.asleep = False


def sampled_logprobs(logprobs, n_tokens: int) -> list[float]:
    """The sampled token's logprob per position from vLLM's FlatLogprobs (logprobs=0 keeps one entry each)."""
    if logprobs is None:
        raise RuntimeError("vLLM returned no logprobs: the engine must be built with max_logprobs >= 0")
    starts = logprobs.start_indices
    if len(starts) != n_tokens:
        raise RuntimeError(f"vLLM returned logprobs for {len(starts)} positions, expected {n_tokens}")
    values = logprobs.logprobs
    # the sampled token comes first at each position (sampler.gather_logprobs puts it before any top-k)
    return values if len(values) == n_tokens else [values[s] for s in starts]


def write_adapter_dir(adapter, directory: Path) -> None:
    """A `rlvr.learner.lora.AdapterWeights` as a peft adapter directory (what vLLM's LoRARequest reads)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    adapter.config.save_pretrained(str(directory))
    save_file({k: v.contiguous() for k, v in adapter.tensors.items()}, str(directory / "adapter_model.safetensors"),
              metadata={"format": "pt"})
