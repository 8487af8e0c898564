"""Errors that stop a run, shared by the layers that raise them (actors, rewards) and the CLI that reports them."""

from __future__ import annotations


class RunStopped(RuntimeError):
    """The run cannot go on; `name` is what stopped it (an actor, a reward function). The CLI prints one line and
    exits 3; checkpoints already written stay intact."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


class DataExhausted(RunStopped):
    """The prompt sampler has nothing left to draw (every prompt dropped). The GRPO loop first checkpoints the
    steps it trained, so a stop between two scheduled checkpoints loses none of them."""
