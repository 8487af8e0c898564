"""A pass-rate map refreshed during GRPO (`data.passrate_filter.refresh`), or built by it (`data.online_band`).

Every group GRPO samples is a fresh pass-rate measurement of its prompt under the current policy: G samples, as
the map's K were under the start model. The sampler keeps each prompt's latest measurement; a prompt whose last
`patience` groups all fell outside the band (it became always solved, or it stayed never solved) is no longer
drawn, so the steps go to prompts that still carry signal. The refreshed map is written next to the run
(`passrate_refreshed.jsonl`: the original map's lines with the measured prompts' replaced; without a map, the
measured prompts only) for the next run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rlvr.data.passrate import in_band, passrate_record, prompt_id, read_records
from rlvr.data.prompts import Example, PromptSampler
from rlvr.utils.errors import DataExhausted

REFRESHED_MAP = "passrate_refreshed.jsonl"


class RefreshingSampler(PromptSampler):
    """The epoch sampler over the band's prompts, skipping those the refreshed map has dropped; its state (epoch,
    offset, latest measurements, streaks, dropped prompts) resumes exactly."""

    def __init__(self, items: list[Example], seed: int, map_path: str | Path | None, above: float, below: float,
                 patience: int, option: str = "data.passrate_filter.refresh", signal_patience: int | None = None):
        """`map_path`: the map the band came from (None: data.online_band, every prompt starts unmeasured);
        `option`: the config key named when every prompt has been dropped; `signal_patience`: the patience of a
        prompt once one of its groups fell in the band (None: `patience`)."""
        super().__init__(items, seed)
        self.map_path = Path(map_path) if map_path is not None else None
        self.above, self.below, self.patience, self.option = above, below, patience, option
        self.signal_patience = patience if signal_patience is None else signal_patience
        self.latest: dict[str, dict] = {}
        """prompt id -> its newest passrate_record"""
        self.streak: dict[str, int] = {}
        """prompt id -> how many of its latest groups in a row fell outside the band"""
        self.signalled: set[str] = set()
        """prompt ids with a group in the band at some point of the run"""
        self.dropped: set[str] = set()
        self.ids = {prompt_id(ex.prompt) for ex in items}

    def _skip(self, item: Example) -> bool:
        return prompt_id(item.prompt) in self.dropped

    def _exhausted(self) -> None:
        m = self.metrics()  # the CLI prints this one line; the GRPO loop checkpoints the steps trained first
        raise DataExhausted(f"{self.option} dropped every prompt of the band "
                            f"({m['data/dropped_solved']:.0f} became always solved, "
                            f"{m['data/dropped_unsolved']:.0f} stayed never solved): widen the band, raise its "
                            "patience or map a new band", self.option)

    def observe(self, prompt: str, rewards: Sequence[float]) -> None:
        record = passrate_record(prompt, rewards)
        key = record["id"]
        if key not in self.ids or key in self.dropped:
            return  # a prompt already dropped may still be in an overlapped batch drawn before
        self.latest[key] = record
        if in_band(record["pass_rate"], self.above, self.below):
            self.streak[key] = 0
            self.signalled.add(key)
        else:
            self.streak[key] = self.streak.get(key, 0) + 1
        if self.streak[key] >= (self.signal_patience if key in self.signalled else self.patience):
            self.dropped.add(key)

    def metrics(self) -> dict[str, float]:
        gone = [self.latest[k]["pass_rate"] for k in self.dropped]
        return {"data/band_prompts": float(len(self.ids) - len(self.dropped)),
                "data/dropped_solved": float(sum(p >= self.below for p in gone)),
                "data/dropped_unsolved": float(sum(p <= self.above for p in gone))}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "latest": self.latest, "streak": self.streak, "dropped": sorted(self.dropped),
                "signalled": sorted(self.signalled)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.latest, self.streak = dict(state["latest"]), dict(state["streak"])
        self.dropped = set(state["dropped"])
        self.signalled = set(state.get("signalled", ()))  # absent from checkpoints written before it existed

    def save(self, out_dir: str | Path) -> Path:
        """The original map (if any) with each measured prompt's line replaced by its newest measurement."""
        lines = read_records(self.map_path) if self.map_path is not None else []
        merged = [self.latest.get(row["id"], row) for row in lines]
        seen = {row["id"] for row in lines}
        merged += [rec for key, rec in sorted(self.latest.items()) if key not in seen]
        out = Path(out_dir) / REFRESHED_MAP
        out.write_text("".join(json.dumps(row) + "\n" for row in merged))
        return out
