"""LoRA on the learner (peft): a step moves only the adapters, the reference policy is the base with adapters off,
merged weights and the exports reproduce the adapted model, a checkpoint resumes exactly, QLoRA is refused on
CPU. One in-process learner rank (gloo), as tests/test_learner_inprocess.py."""

from __future__ import annotations

import pytest
import torch

from rlvr.config import ConfigError
from rlvr.learner.deepspeed_setup import free_port
from rlvr.learner.learner import Learner
from rlvr.learner.lora import check_lora
from rlvr.model_io import load_model
from tests.conftest import tiny_config
from tests.test_learner_dp import make_rollouts
from tests.test_learner_inprocess import process_group  # noqa: F401  (fixture: one process group per session)

LORA = ("learner.lora.r=4", "learner.lora.alpha=8", "learner.lora.target_modules=[q_proj,v_proj,up_proj]")
COMMON = ("data.prompts_per_step=4", "rollout.samples_per_prompt=4", "learner.micro_batch_size=4",
          "learner.num_actors=1", "learner.backend=gloo", "learner.lr=2e-2", *LORA)


def build(model_dir: str, tmp_path, *overrides: str, total_steps: int = 4) -> Learner:
    cfg = tiny_config(model_dir, tmp_path, *COMMON, *overrides)
    learner = Learner(cfg, model_dir, rank=0, world_size=1)
    learner.setup("127.0.0.1", free_port(), cfg.grad_accum_steps, total_optim_steps=total_steps)
    return learner


def lp(model, learner: Learner, rollouts) -> torch.Tensor:
    return torch.cat([t.flatten() for t in learner._logprobs(model, rollouts)])


def test_a_lora_step_moves_only_the_adapters(process_group, tiny_model_dir, tmp_path):
    # ZeRO-0: the optimizer is the torch one itself (ZeRO-1/2 would also drop frozen parameters on their own)
    learner = build(tiny_model_dir, tmp_path, "algorithm.kl_coef=0.1", "learner.zero_stage=0")
    peft_model = learner.engine.module
    adapters = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n}
    assert adapters and all(p.requires_grad == ("lora_" in n) for n, p in peft_model.named_parameters())
    optimized = [p for g in learner.optimizer.param_groups for p in g["params"]]
    assert sum(p.numel() for p in optimized) == sum(t.numel() for t in adapters.values())
    assert learner.ref_model is None  # the reference is the base with adapters disabled, not a copy
    rollouts = make_rollouts(16, vocab=60)
    learner.train_grpo(rollouts)
    learner.train_grpo(make_rollouts(16, vocab=60, seed=1))  # B starts at 0, so A gets no gradient until step 2

    base = load_model(tiny_model_dir)
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            assert not torch.equal(p, adapters[name]), f"{name} did not move"
            continue
        plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        assert torch.equal(p, base.get_parameter(plain)), f"frozen {plain} changed"
    # KL's reference: exactly the base model; the trained policy has moved away from it
    ref = torch.cat([t.flatten() for t in learner._reference_logprobs(rollouts)])
    assert torch.allclose(ref, lp(base, learner, rollouts), atol=1e-6)
    assert (lp(peft_model, learner, rollouts) - ref).abs().max() > 1e-3

    merged = learner.state_dict()  # base names, B·A·scale added to the target modules only
    assert list(merged) == list(base.state_dict())
    moved = {k for k in merged if not torch.equal(merged[k], base.state_dict()[k])}
    assert moved and all(k.endswith(("q_proj.weight", "v_proj.weight", "up_proj.weight")) for k in moved)
    base.load_state_dict(merged)
    assert (lp(base, learner, rollouts) - lp(peft_model, learner, rollouts)).abs().max() < 1e-5


def test_packed_micro_batches_train_lora_as_padded_ones(process_group, tiny_model_dir, tmp_path):
    """learner.max_tokens_per_micro_batch with LoRA: the packed path swaps the head inside the peft wrapper and takes
    KL's reference from the base with adapters disabled, so two steps equal the padded path's."""
    kl = ("algorithm.kl_coef=0.1", "learner.zero_stage=0", "learner.grad_clip=0")
    padded = build(tiny_model_dir, tmp_path / "padded", *kl)
    packed = build(tiny_model_dir, tmp_path / "packed", *kl, "learner.max_tokens_per_micro_batch=48")
    for seed in (0, 1):  # B starts at 0: the KL term and A's gradient only show from the second step
        batch = make_rollouts(16, vocab=60, seed=seed)
        a, b = padded.train_grpo(batch), packed.train_grpo(batch)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
        assert b["pg_loss_sum"] == pytest.approx(a["pg_loss_sum"], abs=1e-5)
    assert a["kl_sum"] > 0 and b["kl_sum"] == pytest.approx(a["kl_sum"], rel=1e-4)
    ours, theirs = padded.state_dict(), packed.state_dict()
    assert max((ours[k] - theirs[k]).abs().max().item() for k in ours) < 1e-5


def test_checkpoint_exports_and_exact_resume(process_group, tiny_model_dir, tmp_path):
    from peft import PeftModel

    sched = ("learner.lr_schedule=linear",)  # a decaying LR: a wrongly restored scheduler shows in the weights
    batches = [make_rollouts(16, vocab=60, seed=s) for s in range(3)]
    learner = build(tiny_model_dir, tmp_path / "a", *sched)
    for b in batches[:2]:
        learner.train_grpo(b)
    ckpt = tmp_path / "ckpt"
    learner.save_checkpoint(str(ckpt))
    want_stats = learner.train_grpo(batches[2])
    want = {n: p.detach().clone() for n, p in learner.engine.module.named_parameters() if "lora_" in n}

    # the exports: a plain HF model (merged) and a peft adapter, each reproducing the checkpoint's policy
    rollouts = batches[0]
    resumed = build(tiny_model_dir, tmp_path / "b", *sched)
    resumed.load_checkpoint(str(ckpt))
    at_ckpt = lp(resumed.engine.module, resumed, rollouts)
    hf = load_model(str(ckpt / "hf"))
    assert (lp(hf, resumed, rollouts) - at_ckpt).abs().max() < 1e-5
    adapter = PeftModel.from_pretrained(load_model(tiny_model_dir), str(ckpt / "adapter")).eval()
    assert (lp(adapter, resumed, rollouts) - at_ckpt).abs().max() < 1e-6
    state_bytes = sum(f.stat().st_size for f in (ckpt / "state").rglob("*") if f.is_file())
    model_bytes = sum(p.numel() * 4 for p in hf.parameters())
    assert state_bytes < model_bytes, "the checkpoint holds the frozen base: it should hold adapters only"

    got_stats = resumed.train_grpo(batches[2])
    for name, p in resumed.engine.module.named_parameters():
        if "lora_" in name:
            assert torch.equal(p, want[name]), f"{name} differs after resuming"
    assert got_stats["pg_loss_sum"] == want_stats["pg_loss_sum"] and got_stats["lr"] == want_stats["lr"]


def test_qlora_is_refused_on_cpu_before_any_actor(tiny_model_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, tmp_path, *LORA, "learner.lora.quantize=nf4", "learner.precision=bf16")
    with pytest.raises(ConfigError, match="quantize=nf4 \\(QLoRA\\) needs GPU learners"):
        check_lora(cfg)
    with pytest.raises(ConfigError, match="learner.precision=bf16"):
        tiny_config(tiny_model_dir, tmp_path, *LORA, "learner.lora.quantize=nf4")
    with pytest.raises(ConfigError, match="lora.sync=adapter sends adapters through the object store"):
        tiny_config(tiny_model_dir, tmp_path, *LORA, "learner.lora.sync=adapter", "rollout.engine=vllm",
                    "rollout.weight_sync=nccl", "learner.resources.num_gpus=1", "rollout.resources.num_gpus=1")


def test_qlora_on_cpu_is_one_error_line_from_the_cli(tmp_path):
    from tests.test_cli_errors import run_train

    proc = run_train(tmp_path, *LORA, "learner.lora.quantize=nf4", "learner.precision=bf16")
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rlvr: error: learner.lora.quantize=nf4 (QLoRA) needs GPU learners"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "metrics.jsonl").exists()


def test_an_sft_step_with_lora_moves_only_the_adapters(process_group, tiny_model_dir, tmp_path):
    from tests.test_lm_learner import make_rows

    rows = make_rows(40, vocab=60, seq_len=24)[:8]
    cfg = tiny_config(tiny_model_dir, tmp_path, *COMMON)
    learner = Learner(cfg, tiny_model_dir, rank=0, world_size=1)
    learner.setup("127.0.0.1", free_port(), len(rows) // cfg.learner.micro_batch_size, total_optim_steps=2)
    for _ in range(2):
        stats = learner.train_lm(rows)
    assert stats["tokens"] > 0
    base = load_model(tiny_model_dir).state_dict()
    for name, p in learner.engine.module.named_parameters():
        if "lora_" not in name:
            assert torch.equal(p, base[name.removeprefix("base_model.model.").replace(".base_layer.", ".")])
    learner.export_interpolated(str(tmp_path), 0.5)  # the LM stages' export: (start + merged) / 2, a plain model
    merged, exported = learner.state_dict(), load_model(str(tmp_path / "hf")).state_dict()
    assert any(not torch.equal(merged[k], base[k]) for k in base)
    for k in base:
        assert torch.allclose(exported[k], (base[k] + merged[k]) / 2, atol=1e-7), k


def test_the_adapter_directory_vllm_reads_is_a_peft_adapter(tiny_model_dir, tmp_path):
    """vLLM's LoRARequest reads the directory `write_adapter_dir` makes (vLLM itself is not run here): loaded back
    by peft it must compute what the adapter it came from computes."""
    from peft import PeftModel, get_peft_model

    from rlvr.config import LoraSection
    from rlvr.learner.lora import adapter_weights, lora_config
    from rlvr.rollout.vllm_engine import write_adapter_dir

    torch.manual_seed(0)
    source = get_peft_model(load_model(tiny_model_dir), lora_config(LoraSection(r=4, target_modules=["q_proj"])))
    for name, p in source.named_parameters():
        if "lora_B" in name:
            p.data.normal_()  # B = 0 at init would make any adapter look right
    write_adapter_dir(adapter_weights(source), tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(load_model(tiny_model_dir), str(tmp_path / "adapter")).eval()
    ids = torch.tensor([[5, 9, 13, 7, 21]])
    plain = load_model(tiny_model_dir)(ids).logits
    want = source.eval()(ids).logits
    assert (want - plain).abs().max() > 1e-2
    assert torch.allclose(loaded(ids).logits, want, atol=1e-6)
