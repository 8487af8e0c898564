"""learner.compile: the decoder layers run compiled (torch.compile) and the update is the eager one's,
with the same parameter names (checkpoints and weight sync see no `_orig_mod`)."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from rlvr.config import LearnerSection
from rlvr.learner import compiled as compiled_module
from rlvr.learner.compiled import decoder_layers
from tests.test_learner_dp import make_rollouts
from tests.test_learner_inprocess import build, process_group  # noqa: F401  (fixture)

PACKED = ("learner.max_tokens_per_micro_batch=24", "learner.logprob_chunk_tokens=5")


def test_compiled_layers_give_the_eager_update(process_group, tiny_model_dir, tmp_path, monkeypatch):  # noqa: F811
    """A packed update (the GPU benchmarks' layout; the padded one goes through the same layers). Compiled with
    the aot_eager backend: the same capture of each layer (dynamo, dynamic shapes, the attention left out) and the
    same forward/backward split (AOTAutograd) as inductor, without its code generation, whose CPU (C++) kernels are
    not what a GPU runs and cost the suite 30 s more on a fresh machine."""
    monkeypatch.setattr(compiled_module, "BACKEND", "aot_eager")
    rollouts = make_rollouts(16, vocab=60, seed=3)
    eager = build(tiny_model_dir, tmp_path / "eager", *PACKED)
    before = eager.completion_logprobs(rollouts)
    s_eager = eager.train_grpo(rollouts)
    torch._dynamo.reset()
    counters.clear()
    compiled = build(tiny_model_dir, tmp_path / "compiled", *PACKED, "learner.compile=true")
    s_compiled = compiled.train_grpo(rollouts)
    assert counters["stats"]["unique_graphs"] >= 1, "nothing was compiled"
    assert all(layer._compiled_call_impl is not None for layer in decoder_layers(compiled.engine.module))
    for key in ("tokens", "grad_norm", "pg_loss_sum", "entropy_sum"):
        assert s_compiled[key] == pytest.approx(s_eager[key], rel=1e-4, abs=1e-6), key
    assert list(compiled.state_dict()) == list(eager.state_dict())
    # the weights are compared through what they compute: Adam moves a weight whose gradient is near 0 by up to lr
    # on a rounding difference, so weight-by-weight differences are noise; the policy after the update is not
    after_eager, after_compiled = eager.completion_logprobs(rollouts), compiled.completion_logprobs(rollouts)
    moved = max(abs(a - b) for x, y in zip(before, after_eager) for a, b in zip(x, y))
    diff = max(abs(a - b) for x, y in zip(after_eager, after_compiled) for a, b in zip(x, y))
    print(f"largest logprob move of the update {moved:.3g}, compiled-eager difference {diff:.3g}")
    assert moved > 1e-2 and diff < 0.05 * moved


def test_compile_with_gradient_checkpointing_is_refused():
    with pytest.raises(ValueError, match="learner.compile does not work with learner.gradient_checkpointing"):
        LearnerSection(compile=True, gradient_checkpointing=True)
    assert LearnerSection(compile=True).compile
