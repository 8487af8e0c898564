"""Record filters: list-to-list functions, registered by name, configured once in `data.filters` and applied to
every stage's data (GRPO prompts, pretraining text, SFT chats, the held-out set) and to `rlvr eval` items.

    data:
      filters:
        - {name: exact_dedup}
        - {name: my_pkg.filters:short_only, max_chars: 400}   # a factory by dotted path

A filter is built once from its spec (the keys besides `name` are the factory's keyword arguments) and then sees
the whole list, so it can deduplicate or select by a band (pass rate, length) as well as drop single records.
Records arrive in their canonical shape (`rlvr.data.records`); `record_text` gives the text of any of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from rlvr.config import ConfigError, FilterSpec
from rlvr.data.records import Record

RecordFilter = Callable[[list[Record]], list[Record]]
FilterFactory = Callable[..., RecordFilter]

FILTERS: dict[str, FilterFactory] = {}


def register_filter(name: str) -> Callable[[FilterFactory], FilterFactory]:
    """`@register_filter("name")` on a factory `(**kwargs) -> RecordFilter`."""

    def add(factory: FilterFactory) -> FilterFactory:
        FILTERS[name] = factory
        return factory

    return add


def record_text(record: Record) -> str:
    """The text of a canonical record: a chat's turns, a document, or a prompt and its answer."""
    if "messages" in record:
        return "\n".join(str(m.get("content", "")) for m in record["messages"])
    return "\n".join(str(record[k]) for k in ("prompt", "answer", "text") if k in record)


def _factory(name: str, where: str) -> FilterFactory:
    if name in FILTERS:
        return FILTERS[name]
    if ":" not in name:
        raise ConfigError(f"{where}: unknown filter {name!r} (registered: {sorted(FILTERS)}; or a dotted "
                          "path module:factory)")
    module, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: filter {name!r} does not import ({exc})") from None


def build_filters(specs: Sequence[FilterSpec], key: str = "data.filters") -> list[tuple[str, RecordFilter]]:
    """Every filter built from its spec (a bad name or argument fails here, naming `key`, the config key or
    option that set it)."""
    built = []
    for i, spec in enumerate(specs):
        where = f"{key}[{i}]"
        factory = _factory(spec.name, where)
        try:
            built.append((spec.name, factory(**spec.kwargs)))
        except TypeError as exc:
            raise ConfigError(f"{where} ({spec.name}): bad arguments {spec.kwargs} ({exc})") from None
    return built


def apply_filters(records: list[Record], specs: Sequence[FilterSpec], what: str) -> list[Record]:
    """The one place filters run. `what` names the dataset in the log line and the empty-result error."""
    for name, keep in build_filters(specs):
        before = len(records)
        records = keep(records)
        print(f"[rlvr] filter {name} on {what}: {before} -> {len(records)} records", flush=True)
    if specs and not records:
        raise ConfigError(f"data.filters removed every record of {what}")
    return records


@register_filter("exact_dedup")
def exact_dedup() -> RecordFilter:
    """Keep the first of records whose text is identical (after stripping whitespace at the ends)."""

    def keep(records: list[Record]) -> list[Record]:
        seen: set[str] = set()
        out = []
        for r in records:
            key = record_text(r).strip()
            if key not in seen:
                seen.add(key)
                out.append(r)
        return out

    return keep


@register_filter("passrate_band")
def passrate_band(path: str, above: float = 0.0, below: float = 1.0, mode: str = "band", edge_repeats: int = 3,
                  unmeasured: str = "drop") -> RecordFilter:
    """Prompt records whose pass rate in a `rlvr passrate` map lies in (above, below); `mode: edge` repeats them
    toward p = 0.5 (rlvr.data.passrate). Records without a prompt (chats, documents) pass unchanged."""
    from pydantic import ValidationError

    from rlvr.config import PassRateFilter, format_validation_error
    from rlvr.data.passrate import build_filter

    try:
        spec = PassRateFilter(path=path, above=above, below=below, mode=mode, edge_repeats=edge_repeats,
                              unmeasured=unmeasured)
    except ValidationError as exc:
        raise ConfigError(f"passrate_band: {format_validation_error(exc)}") from None
    return build_filter(spec)
