"""LoRA and QLoRA on the learner (peft): wrapping, merged weights under the base model's names, adapter payloads,
and the Hugging Face export.

The frozen base is the reference policy for the KL term (peft's `disable_adapter()`), so no second copy of the
weights is kept. Merged weights W + (alpha/r)·B·A are computed per target module on the fly, never written into
the model: the trained module keeps its adapters and the base stays bit-equal to what was loaded.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvr.config import ConfigError, LoraSection, RunConfig

NameFilter = Callable[[str], bool]


@dataclass
class AdapterWeights:
    """What an adapter-only sync moves: the peft config and the adapter tensors (peft's state-dict names, as
    `save_pretrained` writes them), on CPU."""

    config: object  # peft.LoraConfig
    tensors: dict[str, torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def check_lora(cfg: RunConfig) -> None:
    """Before any actor starts: QLoRA needs GPU learners and bitsandbytes; LoRA needs peft."""
    lora = cfg.learner.lora
    if lora is None:
        return
    if importlib.util.find_spec("peft") is None:
        raise ConfigError("learner.lora needs the peft package: pip install peft")
    if lora.quantize == "none":
        return
    if cfg.learner.resources.num_gpus == 0:
        raise ConfigError("learner.lora.quantize=nf4 (QLoRA) needs GPU learners, but learner.resources.num_gpus is 0 "
                          "(bitsandbytes 4-bit has no CPU path here): use learner.lora.quantize=none on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("learner.lora.quantize=nf4 (QLoRA) needs the bitsandbytes package: pip install bitsandbytes")


def lora_config(lora: LoraSection):
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM", bias="none")


def load_quantized_base(model_path: str):
    """QLoRA's base: every linear layer but the LM head in 4-bit NF4, computing in bf16 (GPU only; not run in CI)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if not torch.cuda.is_available():  # check_lora refuses this before any actor; this guards direct callers
        raise RuntimeError("learner.lora.quantize=nf4 needs a CUDA GPU on the learner")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_use_double_quant=True)
    return AutoModelForCausalLM.from_pretrained(model_path, quantization_config=quant, dtype=torch.bfloat16,
                                                device_map={"": torch.cuda.current_device()})


def wrap(model, lora: LoraSection, gradient_checkpointing: bool):
    """The base frozen, adapters trainable. With nf4, peft's k-bit preparation (norms in fp32, input grads for
    checkpointing), then the adapters cast to bf16 as the issue asks (DeepSpeed bf16 keeps fp32 master copies)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if lora.quantize == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad-carrying input
    peft_model = get_peft_model(model, lora_config(lora))
    if lora.quantize == "nf4":
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.data = p.data.to(torch.bfloat16)
    return peft_model


def trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _dequantized(weight: torch.Tensor) -> torch.Tensor:
    """A bitsandbytes 4-bit weight in its compute dtype; any other weight as it is."""
    if getattr(weight, "quant_state", None) is None:
        return weight.detach()
    from peft.utils.integrations import dequantize_bnb_weight

    return dequantize_bnb_weight(weight, state=weight.quant_state)


def _merged_entries(peft_model, with_adapter: bool):
    """(base name, full shape, thunk giving the tensor) in the base model's state-dict order. A LoRA layer's entries
    `X.base_layer.weight` become `X.weight` (plus B·A·scale when `with_adapter`); adapter tensors and 4-bit
    quantisation state (`*.weight.absmax`, ...: no plain parameter name has `.weight.` inside) are left out."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    adapter = peft_model.active_adapter
    for name, t in base.state_dict(keep_vars=True).items():
        if "lora_" in name or ".weight." in name:
            continue
        owner, _, leaf = name.partition(".base_layer.")
        if leaf == "weight":
            layer = layers[owner]

            def merged(t=t, layer=layer):
                w = _dequantized(t)
                return w + layer.get_delta_weight(adapter).to(w.dtype) if with_adapter else w

            yield owner + ".weight", _full_shape(t), merged
        else:
            yield (owner + "." + leaf if leaf else name), _full_shape(t), (lambda t=t: _dequantized(t))


def _full_shape(t: torch.Tensor) -> tuple[int, ...]:
    state = getattr(t, "quant_state", None)
    return tuple(state.shape) if state is not None else tuple(t.shape)


def merged_metas(peft_model, dtype: torch.dtype, keep: NameFilter | None = None):
    """(name, shape, dtype) of `iter_merged`'s tensors, from metadata alone (plans buckets before any compute)."""
    return [(n, shape, dtype) for n, shape, _ in _merged_entries(peft_model, True) if keep is None or keep(n)]


@torch.no_grad()
def iter_merged(peft_model, keep: NameFilter | None = None, with_adapter: bool = True
                ) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights a plain (unwrapped) base model would need to compute what the adapted model computes, under
    its names, one at a time. `with_adapter=False`: the base itself (dequantised if 4-bit)."""
    for name, _, tensor in _merged_entries(peft_model, with_adapter):
        if keep is None or keep(name):
            yield name, tensor()


def merged_state_dict(peft_model, keep: NameFilter | None = None, with_adapter: bool = True
                      ) -> dict[str, torch.Tensor]:
    return {n: t.to("cpu", copy=True) for n, t in iter_merged(peft_model, keep, with_adapter)}


def adapter_weights(peft_model) -> AdapterWeights:
    from peft import get_peft_model_state_dict

    tensors = get_peft_model_state_dict(peft_model)
    config = copy.deepcopy(peft_model.peft_config[peft_model.active_adapter])
    return AdapterWeights(config, {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()})


def save_merged_hf(peft_model, weights: dict[str, torch.Tensor], hf_dir: Path) -> None:
    """A plain Hugging Face model directory from merged weights (no peft, no quantisation config), so the next
    stage, eval and vLLM load it as any other export."""
    from safetensors.torch import save_file

    base = peft_model.get_base_model()
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = next(iter(weights.values())).dtype
    hf_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(hf_dir)
    if getattr(base, "generation_config", None) is not None:
        base.generation_config.save_pretrained(hf_dir)
    tied = getattr(config, "tie_word_embeddings", False)
    # a tied head is the embedding under a second name: written once, as transformers does
    out = {k: v.contiguous() for k, v in weights.items() if not (tied and k == "lm_head.weight")}
    save_file(out, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})


def save_adapter(peft_model, directory: Path) -> None:
    """The adapter in peft's format (adapter_config.json + adapter_model.safetensors)."""
    peft_model.save_pretrained(str(directory))
