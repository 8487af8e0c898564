"""The data stage (`rlvr data`): sources, quality gates, MinHash near-dedup, decontamination."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlvr.config.base import _Section


class CurateSourceSpec(_Section):
    """One input of the curation stage: a file, folder or hub name read through `rlvr.data.records`."""

    path: str | None = Field(None, min_length=1)
    generated: Literal["pretrain"] | None = None
    """Instead of a path: the run's generated pretraining corpus (`pretrain.source`), with planted cases below."""
    plant_duplicates: int = Field(0, ge=0)
    """Generated corpus only: this many of its documents again (half exact, half with a line added)."""
    plant_held_out: int = Field(0, ge=0)
    """Generated corpus only: this many held-out problems (stage_eval's) written into documents, as leaks."""
    text_key: str = "text"
    """Column holding the document text; with `answer_key`, the document is `text_key` + newline + `answer_key`."""
    answer_key: str | None = None
    split: str | None = None
    """Split of a `datasets` source (default: its only or first split)."""
    limit: int | None = Field(None, ge=1)
    """Read only the first `limit` records."""

    @model_validator(mode="after")
    def _one_input(self) -> CurateSourceSpec:
        if (self.path is None) == (self.generated is None):
            raise ValueError("set exactly one of path and generated for each curate source")
        if self.generated is None and (self.plant_duplicates or self.plant_held_out):
            raise ValueError("plant_duplicates/plant_held_out apply only to a generated source")
        return self


class EvalSetSpec(_Section):
    path: str | None = Field(None, min_length=1)
    """A file or dataset; a relative path that does not exist is looked up in $RLVR_DATA_DIR, else ../shared/data
    next to the repository."""
    generated: Literal["held_out"] | None = None
    """Instead of a path: the generated held-out problems stage_eval scores (word_problems)."""
    key: str = "question"

    @model_validator(mode="after")
    def _one_input(self) -> EvalSetSpec:
        if (self.path is None) == (self.generated is None):
            raise ValueError("set exactly one of path and generated for each evaluation set")
        return self


def _default_eval_sets() -> list[EvalSetSpec]:
    return [EvalSetSpec(path="gsm8k/test.jsonl", key="question"),
            EvalSetSpec(path="math500/test.jsonl", key="problem")]


class MinHashSpec(_Section):
    enabled: bool = True
    shingle: int = Field(5, ge=1, le=64)
    """Words per shingle."""
    num_perm: int = Field(128, ge=8, le=1024)
    bands: int = Field(16, ge=1)
    rows: int = Field(8, ge=1)
    threshold: float = Field(0.7, gt=0, le=1)
    """Estimated Jaccard similarity at or above which a candidate joins its bucket's first document's cluster."""
    verify: bool = True
    """False: every candidate (a shared band) joins, with no estimated-Jaccard check, as datasketch's MinHashLSH
    does; recall and precision are then the bands x rows S-curve's (docs/benchmarks.md compares both)."""
    seed: int = 1

    @model_validator(mode="after")
    def _fits(self) -> MinHashSpec:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class DecontamSpec(_Section):
    enabled: bool = True
    ngram: int = Field(13, ge=1, le=64)
    """Words per n-gram; an evaluation item shorter than this is matched whole."""
    eval_sets: list[EvalSetSpec] = Field(default_factory=_default_eval_sets)
    action: Literal["remove", "flag"] = "remove"
    """`flag`: keep the document with `contaminated: true`."""


class CurateSection(_Section):
    """The `data` stage (`rlvr data CONFIG`, rlvr.data.curate): normalise, gate, deduplicate, decontaminate on Ray
    Data; writes Parquet shards and manifest.json under OUTPUT_DIR/curated (or `output`)."""

    sources: list[CurateSourceSpec] = Field(default_factory=list)
    output: str | None = None
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(100_000, ge=1)
    max_non_text: float = Field(0.3, ge=0, le=1)
    """Largest share of characters that are not letters, digits, spaces or common punctuation."""
    exact_dedup: bool = True
    minhash: MinHashSpec = Field(default_factory=MinHashSpec)
    decontaminate: DecontamSpec = Field(default_factory=DecontamSpec)
    batch_size: int = Field(1024, ge=1)
    """Documents per Ray Data batch."""
    workers: int | None = Field(None, ge=1)
    """Ray Data map actors (each 1 CPU), all started before work is handed out (up to 10 min, then an error);
    None: from 1 up to one per batch, as the cluster has CPUs."""
    shards: int = Field(4, ge=1)
    """Parquet files written (and Ray Data blocks the work is split into)."""
