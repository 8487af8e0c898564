"""One data-parallel learner rank: a DeepSpeed engine around a Hugging Face causal LM.

Plain Python, no Ray: `rlvr.actors.learner_group` turns it into a Ray actor (tests/test_learner_inprocess.py
drives it directly). Every rank receives its own shard of the
batch; gradients are averaged by DeepSpeed across ranks, and the loss is scaled so that the result equals one
rank training on the whole batch (see `_loss_scale`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.distributed as dist

from rlvr.algo import grpo
from rlvr.algo.interpolate import interpolate_state_dicts
from rlvr.algo.grpo import AGGREGATIONS
from rlvr.algo.losses import LossInputs, add_stats, build_loss, stats_to_floats
from rlvr.algo.token_selection import build_selection
from rlvr.config import RunConfig
from rlvr.data.packing import PackedRow, collate_packed
from rlvr.learner.batch import MicroBatch, collate
from rlvr.learner.compiled import compile_layers
from rlvr.learner.deepspeed_setup import ds_config, init_process_group, lr_lambda, resolve_backend
from rlvr.learner import lora
from rlvr.learner.full_weights import iter_full_weights, weight_metas
from rlvr.learner.old_logprobs import EngineLogprobs, OldLogprobs, OnPolicy, PreviousWeights, Recomputed
from rlvr.learner.packed_learner import train_grpo_packed
from rlvr.learner.packed_rollouts import use_varlen_attention
from rlvr.learner.selective_head import scatter_kept, select_and_score, trunk_hidden
from rlvr.model_io import load_model
from rlvr.rollout.base import Rollout
from rlvr.rollout.weight_sync import NameFilter, WeightSender, plan_buckets
from rlvr.utils.batching import chunks
from rlvr.utils.checkpoint import load_rng, save_rng


PREV_POLICY = "prev_policy.pt"  # rollout.overlap_old_logprobs=learner: the previous weights, in a checkpoint


class Learner:
    def __init__(self, cfg: RunConfig, model_path: str, rank: int, world_size: int):
        self.cfg, self.model_path, self.rank, self.world_size = cfg, model_path, rank, world_size
        self.engine = None
        self.ref_model = None
        self.prev_model = None  # rollout.overlap_old_logprobs=learner: the weights from before the last update
        self.weight_sender: WeightSender | None = None  # weight_sync=cuda_ipc/nccl: opened once per run
        self._adapter_bytes = 0  # learner.lora.sync=adapter: the last adapter sync's size
        # entered around each mini-batch's micro-batch loop of the packed GRPO update; tests put a check there that
        # fails on a host sync (tests/test_host_sync.py): the loop keeps its statistics on the device. (The padded
        # loop syncs regardless: it copies each micro-batch to the device, and transformers tests its padding mask.)
        self.loop_guard = contextlib.nullcontext

    # -- setup -------------------------------------------------------------------------------------------------

    def setup(self, master_addr: str, master_port: int, grad_accum_steps: int, total_optim_steps: int) -> None:
        import deepspeed

        lc = self.cfg.learner
        torch.manual_seed(self.cfg.run.seed)
        if torch.cuda.is_available():
            torch.cuda.set_device(0)  # Ray exposes this actor's GPU as device 0
        init_process_group(self.rank, self.world_size, master_addr, master_port, resolve_backend(lc))
        model = self._build_model()
        # with LoRA only the adapters are trainable: the optimizer (and its state) holds nothing else
        fused = {"fused": True} if lc.fused_adamw and torch.cuda.is_available() else {}
        optimizer = torch.optim.AdamW(lora.trainable(model), lr=lc.lr, betas=lc.betas, weight_decay=lc.weight_decay,
                                      **fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(lc.lr_schedule, lc.warmup_steps, total_optim_steps)
        )
        self.grad_accum_steps = grad_accum_steps
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler,
            config=ds_config(lc, grad_accum_steps, self.world_size),
        )
        if self.cfg.algorithm.kl_coef > 0 and lc.lora is None:  # LoRA: the base with adapters disabled
            self.ref_model = self._load("float32").to(self.engine.device).eval()
            self.ref_model.requires_grad_(False)
        r = self.cfg.rollout
        if r.overlap and r.overlap_old_logprobs == "learner":
            # equal weights must give equal logprobs (a ratio of exactly 1), so the copy is made like the trained
            # module: parameters in its dtype, buffers as DeepSpeed leaves them. A plain .to(bf16) also rounds the
            # rotary inv_freq buffer, which DeepSpeed keeps in float32: |log ratio| 0.041 at step 0 on an H100.
            module = self.engine.module
            self.prev_model = self._load("float32").to(self.engine.device).eval()
            self.prev_model.requires_grad_(False)
            for kept, trained in zip(self.prev_model.parameters(), module.parameters(), strict=True):
                kept.data = kept.data.to(trained.dtype)
            for kept, trained in zip(self.prev_model.buffers(), module.buffers(), strict=True):
                kept.data = trained.detach().clone()
        self.loss = build_loss(self.cfg.algorithm)
        # the engine's logprobs travel with the batch when they are the old policy's or the mismatch is corrected
        self.rollout_logprobs = self.cfg.algorithm.rollout_is != "none"
        self.selection = build_selection(lc.token_selection, self.cfg.run.seed)
        if self.selection.active and self.loss.aggregation is not AGGREGATIONS["token_mean"]:
            raise ValueError(f"learner.token_selection: loss {self.cfg.algorithm.loss!r} does not average over "
                             "tokens; the selection's normaliser is a count of kept tokens")
        self.old_logprobs = self._old_logprob_source()
        self.pad_id = self.engine.module.config.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.engine.module.config.eos_token_id or 0

    def _load(self, dtype: str):
        model = load_model(self.model_path, dtype)
        if self.cfg.learner.max_tokens_per_micro_batch:
            use_varlen_attention(model)  # packed rows: attention within each sequence
        return model

    def _build_model(self):
        lc = self.cfg.learner
        if lc.lora is None:
            model = self._load("float32")
            if lc.gradient_checkpointing:
                model.gradient_checkpointing_enable()
        else:
            quantized = lc.lora.quantize == "nf4"
            base = lora.load_quantized_base(self.model_path) if quantized else load_model(self.model_path, "float32")
            model = lora.wrap(base, lc.lora, lc.gradient_checkpointing)
        if lc.compile:
            compile_layers(model)
        return model

    @property
    def is_lora(self) -> bool:
        return self.cfg.learner.lora is not None

    def _reference_logprobs(self, rollouts: list[Rollout]) -> list[torch.Tensor] | None:
        """The frozen reference policy's logprobs for the KL term (None without one)."""
        if self.cfg.algorithm.kl_coef == 0:
            return None
        if self.is_lora:
            with self.engine.module.disable_adapter():  # the base itself: no second copy of the weights
                return self._logprobs(self.engine.module, rollouts)
        return self._logprobs(self.ref_model, rollouts)

    def _old_logprob_source(self) -> OldLogprobs:
        """Chosen once (see rlvr/learner/old_logprobs.py for the four cases)."""
        if self.prev_model is not None:
            return PreviousWeights(self._logprobs, self.prev_model, self.engine.module)
        if self.cfg.rollout.overlap:
            return EngineLogprobs()
        if self.cfg.algorithm.mini_batches > 1:
            return Recomputed(self._logprobs, self.engine.module)
        return OnPolicy()

    # -- log-probabilities -------------------------------------------------------------------------------------

    def _window_logits(self, model, mb: MicroBatch) -> torch.Tensor:
        """Logits at positions [window_start, L-1), each predicting the next token; the LM head runs only there."""
        length = mb.input_ids_BL.shape[1]
        out = model(input_ids=mb.input_ids_BL, attention_mask=mb.attention_mask_BL, use_cache=False,
                    logits_to_keep=length - mb.window_start)
        return out.logits[:, :-1]

    @staticmethod
    def _window_targets(mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return mb.input_ids_BL[:, mb.window_start + 1 :], mb.completion_mask_BT[:, mb.window_start :]

    @torch.no_grad()
    def _logprobs(self, model, rollouts: list[Rollout]) -> list[torch.Tensor]:
        """Per micro-batch logprobs over its completion window (masked later), in the order of `rollouts`."""
        out = []
        for chunk in chunks(rollouts, self.cfg.learner.micro_batch_size):
            mb = collate(chunk, self.pad_id).to(self.engine.device)
            targets_BT, _ = self._window_targets(mb)
            out.append(grpo.token_logprobs(self._window_logits(model, mb), targets_BT, self.cfg.rollout.temperature))
        return out

    def completion_logprobs(self, rollouts: list[Rollout]) -> list[list[float]]:
        """The learner's logprobs of each rollout's completion tokens (compared with the rollout engine's)."""
        result = []
        for chunk, logp_BT in zip(chunks(rollouts, self.cfg.learner.micro_batch_size),
                                  self._logprobs(self.engine.module, rollouts)):
            window = min(len(r.prompt_ids) for r in chunk) - 1
            for row, r in enumerate(chunk):
                start = len(r.prompt_ids) - 1 - window
                result.append(logp_BT[row, start : start + len(r.completion_ids)].tolist())
        return result

    # -- training ----------------------------------------------------------------------------------------------

    def _loss_scale(self, rollouts: list[Rollout], micro_batch_tokens: list[int] | None = None) -> float:
        """Global normaliser of the loss (what the loss's aggregation counts, over all ranks), times the factors
        DeepSpeed divides by (ranks and accumulation steps). With token selection: the kept tokens, whose count
        per micro-batch depends only on its token count, so it is known before any forward pass.
        `micro_batch_tokens`: each micro-batch's completion tokens where they are not chunks of
        micro_batch_size rollouts (packed micro-batches)."""
        if self.selection.active:
            step = self.engine.global_steps
            if micro_batch_tokens is None:
                micro_batch_tokens = [sum(len(r.completion_ids) for r in c)
                                      for c in chunks(rollouts, self.cfg.learner.micro_batch_size)]
            local = self.loss.aggregation.count([self.selection.kept(n, step) for n in micro_batch_tokens])
        else:
            local = self.loss.aggregation.count([self._loss_length(r) for r in rollouts])
        total = torch.tensor([float(local)], device=self.engine.device)  # NCCL reduces only GPU tensors
        dist.all_reduce(total)  # every rank must divide by the same global count
        return max(total.item(), 1.0) / (self.world_size * self.grad_accum_steps)

    def _loss_length(self, r: Rollout) -> int:
        """Tokens of `r` in the loss: none for a truncated completion under algorithm.mask_truncated_completions."""
        return 0 if r.truncated and self.cfg.algorithm.mask_truncated_completions else len(r.completion_ids)

    def train_grpo(self, rollouts: list[Rollout]) -> dict[str, float]:
        """One or more optimizer steps (algorithm.mini_batches) on this rank's shard of the rollout batch."""
        if self.cfg.learner.max_tokens_per_micro_batch:
            return train_grpo_packed(self, rollouts)
        alg = self.cfg.algorithm
        self.engine.train()
        self.old_logprobs.start(rollouts)
        ref = self._reference_logprobs(rollouts)
        micro = self.cfg.learner.micro_batch_size
        per_mini = len(rollouts) // alg.mini_batches
        totals: dict[str, torch.Tensor] = {}  # 0-d device tensors until the update's end: no host sync per micro-batch
        for m in range(alg.mini_batches):
            mini = rollouts[m * per_mini : (m + 1) * per_mini]
            normalizer = self._loss_scale(mini)
            for i, chunk in enumerate(chunks(mini, micro)):
                k = m * (per_mini // micro) + i
                mb = collate(chunk, self.pad_id,
                             rollout_logprobs=self.old_logprobs.engine_logprobs or self.rollout_logprobs)
                mb = mb.to(self.engine.device)
                targets_BT, mask_BT = self._window_targets(mb)
                keep_B = torch.tensor([self._loss_length(r) > 0 for r in chunk], device=mask_BT.device)
                mask_BT = mask_BT & keep_B.unsqueeze(-1)  # algorithm.mask_truncated_completions
                # the global index of this micro-batch, the same whatever the number of ranks (random's draw)
                global_k = (m * self.world_size + self.rank) * (per_mini // micro) + i
                logp_BT, entropy_BT, mask_BT, select = self._policy_logprobs(mb, targets_BT, mask_BT, global_k)
                rollout_lp = mb.rollout_logprobs_BT[:, mb.window_start :] if self.rollout_logprobs else None
                inputs = LossInputs(logp_BT, self.old_logprobs.get(k, mb, logp_BT), mb.advantages_B, mask_BT,
                                    None if ref is None else ref[k], rollout_lp)
                loss, stats = self.loss(inputs, normalizer)
                stats["entropy_sum"] = (entropy_BT * mask_BT).sum()  # with selection: of the kept tokens
                stats.update(select)
                self.engine.backward(loss)
                self.engine.step()
                add_stats(totals, stats)
            totals["grad_norm"] = self._grad_norm()
        totals = stats_to_floats(totals)
        totals["lr"] = self.scheduler.get_last_lr()[0]
        if self.cfg.rollout.colocate and torch.cuda.is_available():
            # vLLM wakes on this GPU next: give back the blocks PyTorch's caching allocator keeps after the update
            # (activations of a 64-sequence micro-batch, ~30 GB for SmolLM2), or the wake-up runs out of memory
            torch.cuda.empty_cache()
        return totals

    def _grad_norm(self):
        """The last optimizer step's gradient norm as DeepSpeed keeps it: a device tensor under ZeRO, so it is left
        one (`or 0.0` would test its truth, a host sync) for `stats_to_floats` to convert with the statistics."""
        norm = self.engine.get_global_grad_norm()
        return 0.0 if norm is None else norm

    def _policy_logprobs(self, mb: MicroBatch, targets_BT: torch.Tensor, mask_BT: torch.Tensor, global_k: int):
        """(logp_BT with grad, entropy_BT, the loss mask, selection stats). With token selection the loss mask is
        the kept tokens and logp_BT is 0 (no graph) elsewhere."""
        temperature = self.cfg.rollout.temperature
        if not self.selection.active:
            logp_BT, entropy_BT = grpo.logprobs_and_entropy(self._window_logits(self.engine, mb), targets_BT,
                                                            temperature)
            return logp_BT, entropy_BT, mask_BT, {}
        hidden_BLH = trunk_hidden(self.engine, input_ids=mb.input_ids_BL, attention_mask=mb.attention_mask_BL)
        keep_BT, logp_N, entropy_BT, stats = self._select(hidden_BLH[:, mb.window_start : -1], targets_BT, mask_BT,
                                                          temperature, global_k)
        return scatter_kept(logp_N, keep_BT), entropy_BT, keep_BT, stats

    def _select(self, hidden_BTH: torch.Tensor, targets_BT: torch.Tensor, mask_BT: torch.Tensor,
                temperature: float, global_k: int):
        return select_and_score(self.selection, self.engine.module.get_output_embeddings(), hidden_BTH, targets_BT,
                                mask_BT, temperature, self.engine.global_steps, global_k)

    # -- causal-LM stages (pretraining, SFT) -------------------------------------------------------------------

    def train_lm(self, rows: list[PackedRow]) -> dict[str, float]:
        """One optimizer step on this rank's packed rows. The loss is the mean next-token NLL over the loss tokens
        of all ranks together (a global count, as in `_loss_scale`), so any split across ranks gives one result."""
        micro = [collate_packed(c) for c in chunks(rows, self.cfg.learner.micro_batch_size)]
        if len(micro) != self.grad_accum_steps:  # DeepSpeed steps the optimizer only at its accumulation boundary
            raise ValueError(f"rank {self.rank} got {len(micro)} micro-batches for {self.grad_accum_steps} steps")
        step = self.engine.global_steps
        local = sum(self.selection.kept(int(mb.loss_mask_BT.sum()), step) for mb in micro)
        total = torch.tensor([float(local)], device=self.engine.device)  # NCCL reduces only GPU tensors
        dist.all_reduce(total)
        normalizer = max(total.item(), 1.0) / (self.world_size * self.grad_accum_steps)
        dtype = next(self.engine.module.parameters()).dtype
        self.engine.train()
        totals = {"loss_sum": 0.0, "tokens": float(local)}  # device tensors until the end: no host sync per micro-batch
        for i, mb in enumerate(micro):
            mb = mb.to(self.engine.device)
            inputs = dict(input_ids=mb.input_ids_BL, position_ids=mb.position_ids_BL,
                          attention_mask=mb.attn_bias_B1LL.clamp(min=torch.finfo(dtype).min).to(dtype))
            # clamp: float32's min would round to -inf in bf16/fp16
            if self.selection.active:
                hidden_BTH = trunk_hidden(self.engine, **inputs)[:, :-1]
                _, logp_N, _, select = self._select(hidden_BTH, mb.targets_BT, mb.loss_mask_BT, 1.0,
                                                    self.rank * len(micro) + i)
                masked = -logp_N.sum()
                add_stats(totals, select)
            else:
                out = self.engine(**inputs, use_cache=False)
                nll_BT = torch.nn.functional.cross_entropy(out.logits[:, :-1].float().transpose(1, 2),
                                                           mb.targets_BT, reduction="none")
                masked = (nll_BT * mb.loss_mask_BT).sum()
            self.engine.backward(masked / normalizer)
            self.engine.step()
            add_stats(totals, {"loss_sum": masked})
        totals["grad_norm"] = self._grad_norm()
        return {**stats_to_floats(totals), "lr": self.scheduler.get_last_lr()[0]}

    def export_interpolated(self, directory: str, alpha: float) -> None:
        """Overwrite DIRECTORY/hf with (1−α)·θ_start + α·θ_end. θ_start is read back from the stage's starting
        model directory (it stays on disk for the whole stage) instead of holding a second copy in memory."""
        weights = self.state_dict()
        if self.rank == 0:
            start = load_model(self.model_path, "float32").state_dict()
            self._save_hf(Path(directory) / "hf", interpolate_state_dicts(start, weights, alpha))
        dist.barrier()

    # -- weights and checkpoints -------------------------------------------------------------------------------

    def state_dict(self, keep: NameFilter | None = None) -> dict[str, torch.Tensor] | None:
        """Full weights on CPU on rank 0 (ZeRO-3 parameters are gathered first; every rank must call this).
        `keep`: only the weights whose name it accepts."""
        import deepspeed

        module = self.engine.module
        if self.is_lora:  # ZeRO <= 2 (config): every rank holds the whole base and adapters
            return lora.merged_state_dict(module, keep) if self.rank == 0 else None
        params = list(module.parameters())
        enabled = self.cfg.learner.zero_stage == 3
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=enabled):
            if self.rank != 0:
                return None
            return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()
                    if keep is None or keep(k)}

    def _weights_to_sync(self, bucket_mb: float, keep: NameFilter | None = None):
        """Rank 0: (bucket plans, lazy (name, bf16 tensor) pairs) of the full weights `keep` accepts; other ranks:
        None, after following rank 0 through every ZeRO-3 gather. Parameters are gathered one at a time as the
        pairs are consumed, so every rank must call this for each sync and rank 0 must consume every pair."""
        module = self.engine.module
        if self.is_lora:
            if self.rank != 0:
                return None
            plans = plan_buckets(lora.merged_metas(module, torch.bfloat16, keep), bucket_mb)
            return plans, ((n, t.to(torch.bfloat16)) for n, t in lora.iter_merged(module, keep))
        named = iter_full_weights(module, keep)
        if self.rank != 0:
            for _ in named:  # follow rank 0 through every gather
                pass
            return None
        plans = plan_buckets(weight_metas(module, torch.bfloat16, keep), bucket_mb)
        return plans, ((n, t.to(torch.bfloat16)) for n, t in named)

    def adapter_weights(self) -> lora.AdapterWeights | None:
        """learner.lora.sync=adapter: rank 0's adapter tensors and peft config (None on other ranks)."""
        if self.rank != 0:
            return None
        adapter = lora.adapter_weights(self.engine.module)
        self._adapter_bytes = adapter.nbytes
        return adapter

    def last_adapter_bytes(self) -> int:
        """Bytes of the last `adapter_weights` (the driver logs them without fetching the tensors)."""
        return self._adapter_bytes

    def base_weights(self) -> dict[str, torch.Tensor] | None:
        """Rank 0's frozen base under its plain names, dequantised (QLoRA engines start from this, not from the
        bf16 checkpoint the 4-bit base was made from); None on other ranks."""
        return lora.merged_state_dict(self.engine.module, with_adapter=False) if self.rank == 0 else None

    def open_weight_sender(self, sender: WeightSender) -> None:
        """Once per run (weight_sync=cuda_ipc or nccl), on every rank: the transport `send_weights` hands rank 0's
        buckets to. With NCCL, rank 0 blocks here until every vLLM worker has joined: their joins must be under way."""
        self.weight_sender = sender
        if self.rank == 0:
            sender.open(self.engine.device)

    def send_weights(self, keep: NameFilter | None = None) -> int:
        """Every rank must call this (ZeRO-3 gathers are collectives, one parameter at a time, so the whole model is
        never held gathered); rank 0 sends bf16 buckets through the opened sender. Returns bytes (0 elsewhere)."""
        if self.weight_sender is None:
            raise RuntimeError("send_weights before open_weight_sender")
        weights = self._weights_to_sync(self.weight_sender.bucket_mb, keep)
        if weights is None:
            return 0
        return self.weight_sender.send(*weights)

    def save_checkpoint(self, directory: str, client_state: dict | None = None) -> None:
        """DeepSpeed state (weights, optimizer, scheduler) plus a Hugging Face export for the next stage."""
        # LoRA: the frozen base is not saved (it is the stage's starting model, reloaded on resume): adapters,
        # optimizer and scheduler only, megabytes
        self.engine.save_checkpoint(directory, tag="state", client_state=client_state or {},
                                    exclude_frozen_parameters=self.is_lora)
        save_rng(Path(directory) / f"rng_rank{self.rank}.pt")  # per rank: dropout or sampling draws differ by rank
        weights = self.state_dict()
        if self.rank == 0:
            hf_dir = Path(directory) / "hf"
            self._save_hf(hf_dir, weights)
            _copy_tokenizer(self.model_path, hf_dir)
            if self.is_lora:
                lora.save_adapter(self.engine.module, Path(directory) / "adapter")
            if self.prev_model is not None:  # the batch saved ahead was sampled by these, not the current weights
                torch.save({k: v.cpu() for k, v in self.prev_model.state_dict().items()},
                           Path(directory) / PREV_POLICY)
        dist.barrier()

    def load_checkpoint(self, directory: str) -> dict:
        _, client_state = self.engine.load_checkpoint(directory, tag="state", load_module_strict=not self.is_lora)
        load_rng(Path(directory) / f"rng_rank{self.rank}.pt")
        if self.prev_model is not None:
            path = Path(directory) / PREV_POLICY
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: the checkpoint was written without "
                                        "rollout.overlap_old_logprobs=learner; resume with the setting it was run with")
            self.prev_model.load_state_dict(torch.load(path, map_location=self.engine.device))
        return client_state or {}


    def _save_hf(self, hf_dir: Path, weights: dict[str, torch.Tensor]) -> None:
        """A plain Hugging Face export (LoRA: merged weights, loadable without peft)."""
        if self.is_lora:
            lora.save_merged_hf(self.engine.module, weights, hf_dir)
        else:
            self.engine.module.save_pretrained(hf_dir, state_dict=weights)


def _copy_tokenizer(src: str, dst: Path) -> None:
    import shutil

    for name in os.listdir(src):
        if "token" in name or name in ("special_tokens_map.json", "chat_template.jinja"):
            shutil.copy2(os.path.join(src, name), dst / name)

