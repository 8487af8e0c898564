"""learner.compile: torch.compile each decoder layer of the trained model.

Per layer rather than the whole model: the layers share one forward, so one compilation serves them all, and what
sits around them changes from call to call (the LM head swapped for the chunked log-prob head, the packed rows'
lengths, LoRA's adapters switched off for the reference) without recompiling. Shapes are dynamic: a packed
micro-batch's row length differs from the last one's. The packed rows' attention stays eager (one flash kernel on
a GPU; its per-sequence bounds are data). Values are the eager ones within float rounding
(tests/test_compiled_learner.py). Not with gradient checkpointing (refused at config load): torch.utils.checkpoint
runs what it wraps with torch.compile off, so the layers would silently stay eager."""

from __future__ import annotations

import torch


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder layers of a Hugging Face causal LM, wrapped by peft or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(base.get_decoder(), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"learner.compile: {type(base).__name__} has no decoder layer list to compile")
    return layers


BACKEND = "inductor"  # torch.compile's default: Triton kernels on a GPU, C++ on a CPU


def compile_layers(model: torch.nn.Module) -> int:
    """Compile every decoder layer in place (its parameters stay the same objects: the optimizer and DeepSpeed
    see no change). Returns how many were compiled."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(dynamic=True, backend=BACKEND)
    return len(layers)
