"""Shuffled epochs over a fixed list, resumable exactly: the state is (epoch, offset) and each epoch's order is a
pure function of (seed, epoch), so a restored sampler continues with the very next item. A subclass may skip items
(`_skip`); the skipped ones still advance the offset, so the order stays a function of (seed, epoch)."""

from __future__ import annotations

import random
from typing import Generic, TypeVar

from rlvr.config import ConfigError
from rlvr.utils.errors import DataExhausted

T = TypeVar("T")


class EpochSampler(Generic[T]):
    def __init__(self, items: list[T], seed: int):
        if not items:
            raise ConfigError("the dataset has no examples")
        self.items, self.seed = items, seed
        self.epoch, self.offset = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.items)))
        random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def next_batch(self, k: int) -> list[T]:
        batch, skipped = [], 0
        while len(batch) < k:
            if self.offset == len(self._order):
                self.epoch, self.offset = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            item = self.items[self._order[self.offset]]
            self.offset += 1
            if not self._skip(item):
                batch.append(item)
                skipped = 0
            elif (skipped := skipped + 1) > len(self.items):  # a whole epoch and more skipped: nothing is left
                self._exhausted()
        return batch

    def _skip(self, item: T) -> bool:
        """Subclasses drop items from sampling here (decided from their own, checkpointed state)."""
        return False

    def _exhausted(self) -> None:
        raise DataExhausted("every item of the sampler is skipped: nothing left to sample", "data")

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.offset / len(self.items)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = state["epoch"], state["offset"]
        self._order = self._shuffled(self.epoch)
