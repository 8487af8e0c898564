"""Where records come from: the one reader every stage and `rlvr eval` use.

A record is a dict (one JSON line). A `RecordSource` yields records with where each came from, so a bad line or a
missing key is reported as `FILE:LINE: ...`. JSONL files are read here; a hub dataset goes through `datasets`
(imported only then). A `datasets`-backed source for local files (Parquet, CSV, `load_from_disk`) plugs in the same
way: a class with `located()`, chosen in `open_source`.

Stages turn source records into canonical records (`{"prompt", "answer"}` for prompts and eval items, `{"text"}`
for pretraining, `{"messages"}` for SFT) before `rlvr.data.filters` applies, so a filter sees one shape per kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rlvr.config import ConfigError

Record = dict[str, Any]


class RecordSource(Protocol):
    def located(self) -> Iterator[tuple[str, Record]]:
        """Every record with its location (`data.path file.jsonl:12`, `openai/gsm8k[test]:3`) for errors."""
        ...


@dataclass(frozen=True)
class JsonlSource:
    path: str
    what: str = "data.path"
    """The setting that named the file, so an error says which one (`sft.path`, `--data`)."""

    def located(self) -> Iterator[tuple[str, Record]]:
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{self.what} {self.path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{where}: expected a JSON object, got {type(row).__name__}")
                yield where, row


@dataclass(frozen=True)
class HubSource:
    """A hub dataset's split through `datasets` (`rlvr eval --data openai/gsm8k`); needs the hub reachable."""

    name: str
    config: str | None = None
    split: str = "test"

    def located(self) -> Iterator[tuple[str, Record]]:
        import datasets

        rows = datasets.load_dataset(self.name, self.config, split=self.split)
        for i, row in enumerate(rows):
            yield f"{self.name}[{self.split}]:{i}", dict(row)


def is_hub_name(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not source.endswith(".jsonl")


def open_source(path: str | None, what: str) -> RecordSource:
    """The source for a path the config (key `what`) names; a missing file is one line naming the key."""
    if path and Path(path).is_file():
        return JsonlSource(path, what)
    raise ConfigError(f"{what} {path!r} does not exist")


def take_keys(rows: list[tuple[str, Record]], keys: dict[str, str]) -> list[Record]:
    """Canonical records `{new: row[old]}` as strings; a row lacking a key is one line naming its location."""
    out = []
    for where, row in rows:
        missing = [old for old in keys.values() if old not in row]
        if missing:
            raise ConfigError(f"{where}: needs the key(s) {missing} (has {sorted(row)[:8]})")
        out.append({new: str(row[old]) for new, old in keys.items()})
    return out
