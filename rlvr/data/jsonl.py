"""Reading a JSONL file whose every line must be a JSON object; a bad line is one ConfigError naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

from rlvr.config import ConfigError


def read_objects(path: str | Path, what: str) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; `what` names the setting the file came from (e.g. `data.path`)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{what} {path}:{lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{what} {path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows
