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


DATASETS_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}


@dataclass(frozen=True)
class DatasetsSource:
    """A local file or folder through `datasets`: Parquet / CSV / JSON(L) files, a folder of them, or a
    `save_to_disk` folder (`load_from_disk`); `split` picks a split of a DatasetDict (default: the only or first),
    `limit` the first records."""

    path: str
    split: str | None = None
    limit: int | None = None

    def load(self):
        import datasets

        p = Path(self.path)
        if (p / "dataset_info.json").is_file() or (p / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(str(p))
        else:
            files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix in DATASETS_SUFFIXES)
            kinds = {DATASETS_SUFFIXES.get(f.suffix) for f in files}
            if not files or None in kinds or len(kinds) > 1:
                raise ConfigError(f"{self.path}: expected Parquet, CSV or JSON(L) files of one kind, or a "
                                  f"save_to_disk folder (found {sorted(f.suffix for f in files)[:5]})")
            ds = datasets.load_dataset(kinds.pop(), data_files=[str(f) for f in files])
        if isinstance(ds, datasets.DatasetDict):
            split = self.split or next(iter(ds))
            if split not in ds:
                raise ConfigError(f"{self.path}: no split {split!r} (has {list(ds)})")
            ds = ds[split]
        return ds.select(range(min(self.limit, len(ds)))) if self.limit else ds

    def located(self) -> Iterator[tuple[str, Record]]:
        for i, row in enumerate(self.load()):
            yield f"{self.path}:{i + 1}", dict(row)


def hub_source(name: str, config: str | None, split: str) -> HubSource:
    """A hub dataset, checked reachable now: offline, one line naming it (not a stack of HTTP retries)."""
    import os

    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise ConfigError(f"dataset {name!r}: not a local path, and the Hugging Face hub is offline (HF_HUB_OFFLINE)")
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise ConfigError(f"dataset {name!r}: not a local path, and hub datasets need `pip install datasets`") from None
    # the hub client's transport errors (httpx's, requests' in older versions) share no base class but these
    transport = tuple(_transport_errors())
    try:
        HfApi().dataset_info(name, timeout=10)
    except (OSError, HfHubHTTPError, *transport) as exc:
        raise ConfigError(f"dataset {name!r}: not a local path, and the hub cannot serve it (offline or unknown: "
                          f"{type(exc).__name__})") from None
    return HubSource(name, config, split)


def _transport_errors() -> list[type[BaseException]]:
    out: list[type[BaseException]] = []
    for module in ("httpx", "httpx2", "requests"):
        try:
            out.append(__import__(module).RequestError if module != "requests"
                       else __import__(module).exceptions.RequestException)
        except (ImportError, AttributeError):
            continue
    return out


def is_hub_name(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not source.endswith(".jsonl")


def open_source(path: str | None, what: str, split: str | None = None, limit: int | None = None) -> RecordSource:
    """The source for a path the config (key `what`) names: a `.jsonl` file is read here (errors name the line);
    other files and folders go through `datasets` (`DatasetsSource`); `owner/name` that is no path is a hub
    dataset. A missing path is one line naming the key."""
    if path and Path(path).is_file() and path.endswith(".jsonl") and split is None and limit is None:
        return JsonlSource(path, what)
    if path and Path(path).exists():
        return DatasetsSource(path, split, limit)
    if path and is_hub_name(path):
        return hub_source(path, None, split or "train")  # limit: the caller slices
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
