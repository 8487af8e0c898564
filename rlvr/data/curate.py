"""The `data` stage: documents in, near-duplicates, benchmark leaks and junk out, on Ray Data.

Ray Data runs the per-document work (normalisation, quality measures, benchmark n-gram hits, MinHash signatures)
in batches on the cluster's workers; the decisions that need every document at once (exact duplicates, LSH
clusters) are made on the driver from the small per-document features, in input order, so one node and many
nodes keep the same documents. The kept documents are written by the driver as Parquet shards, in input order,
with a manifest (per step: documents in/out and examples removed), and the stage hands the shard folder on.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.config import ConfigError, CurateSection, DecontamSpec, MinHashSpec
from rlvr.data import dedup
from rlvr.data.records import open_source

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 3
"""Removed documents shown per step in the manifest."""


def resolve(path: str) -> str:
    """A path as given if it exists, else under $RLVR_DATA_DIR (default ../shared/data next to the repository)."""
    if Path(path).exists() or Path(path).is_absolute():
        return path
    base = Path(os.environ.get("RLVR_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    return str(base / path) if (base / path).exists() else path


def planted(docs: list[str], held_out: list[str], duplicates: int, leaks: int, seed: int) -> list[str]:
    """A generated corpus with planted cases: `duplicates` copies of its documents (every other one with a line
    added: a near-duplicate) and `leaks` held-out problems inside otherwise new documents."""
    rng = np.random.default_rng(seed)
    out = list(docs)
    for j, i in enumerate(rng.choice(len(docs), min(duplicates, len(docs)), replace=False)):
        lines = docs[i].split("\n")
        out.append(docs[i] if j % 2 == 0 else "\n".join(lines + ["1 + 1 = 2"]))
    for q in held_out[:leaks]:
        out.append(f"A practice problem.\n{q}\nWork it out step by step.")
    order = rng.permutation(len(out))  # planted cases anywhere in the corpus, not only at its end
    return [out[k] for k in order]


def _generated(generated: dict[str, list[str]] | None, name: str, key: str) -> list[str]:
    if not generated or name not in generated:
        raise ConfigError(f"{key}.generated={name!r} needs a pipeline run (rlvr train), which builds the generated "
                          "corpus")
    return generated[name]


def read_documents(cfg: CurateSection, generated: dict[str, list[str]] | None = None
                   ) -> tuple[list[str], list[str]]:
    """Texts and source names of every configured source, in order (sources one after another); `generated`:
    the run's generated corpora by name (`pretrain`), which the stage runner builds."""
    if not cfg.sources:
        raise ConfigError("curate.sources is empty: name at least one file, folder or dataset to curate")
    texts: list[str] = []
    names: list[str] = []
    for i, src in enumerate(cfg.sources):
        if src.generated:
            docs = _generated(generated, src.generated, f"curate.sources[{i}]")
            texts += docs
            names += [f"generated:{src.generated}"] * len(docs)
            continue
        rows = open_source(resolve(src.path), f"curate.sources[{i}].path", src.split, src.limit).located()
        for where, row in itertools.islice(rows, src.limit):
            keys = [src.text_key] + ([src.answer_key] if src.answer_key else [])
            missing = [k for k in keys if k not in row]
            if missing:
                raise ConfigError(f"{where}: needs the key(s) {missing} for curate.sources[{i}] (has "
                                  f"{sorted(row)[:8]})")
            texts.append("\n".join(str(row[k]) for k in keys))
            names.append(src.path)
    return texts, names


def eval_texts(spec: DecontamSpec, generated: dict[str, list[str]] | None = None) -> list[str]:
    out = []
    for i, ev in enumerate(spec.eval_sets):
        if ev.generated:
            out += _generated(generated, ev.generated, f"curate.decontaminate.eval_sets[{i}]")
            continue
        for where, row in open_source(resolve(ev.path), f"curate.decontaminate.eval_sets[{i}].path").located():
            if ev.key not in row:
                raise ConfigError(f"{where}: no key {ev.key!r} for curate.decontaminate.eval_sets[{i}]")
            out.append(str(row[ev.key]))
    return out


class Featurize:
    """Per-batch work on a Ray Data worker: normalised text and the features the driver decides on."""

    def __init__(self, minhash: MinHashSpec, index: dedup.NgramIndex | None):
        self.hasher = dedup.MinHasher(minhash.num_perm, minhash.shingle, minhash.seed) if minhash.enabled else None
        self.index = index

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [dedup.normalize(t) for t in batch["text"]]
        tokens = dedup.tokenize(texts) if self.index or self.hasher else None  # once, for both
        out = {"text": np.array(texts, dtype=object), "source": batch["source"], "row": batch["row"],
               "key": np.array([dedup.exact_key(t) for t in texts], dtype=object),
               "chars": np.array([len(t) for t in texts], dtype=np.int64),
               "non_text": np.array([dedup.non_text_share(t) for t in texts], dtype=np.float64),
               "hits": self.index.hits_batch(texts, tokens) if self.index else np.zeros(len(texts), np.int64)}
        if self.hasher is not None:
            out["sig"] = self.hasher.signatures(texts, tokens=tokens)
        import ray

        out["node"] = np.full(len(texts), ray.get_runtime_context().get_node_id(), dtype=object)
        return out


def featurize(texts: list[str], names: list[str], cfg: CurateSection, evals: list[str]) -> dict[str, np.ndarray]:
    """Features of every document through Ray Data, gathered on the driver in input order."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the driver's decisions depend on order, not on placement
    ctx.enable_progress_bars = False
    if cfg.workers:  # a fixed pool starts whole before work is handed out (else the first actor up takes it all)
        ctx.wait_for_min_actors_s = 600
    index = dedup.NgramIndex(evals, cfg.decontaminate.ngram) \
        if cfg.decontaminate.enabled else None
    items = [{"text": t, "source": s, "row": i} for i, (t, s) in enumerate(zip(texts, names))]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(cfg.shards * 4, len(items))))
    pool = ray.data.ActorPoolStrategy(size=cfg.workers) if cfg.workers else \
        ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, -(-len(items) // cfg.batch_size)))
    ds = ds.map_batches(Featurize, fn_constructor_args=(cfg.minhash, index), batch_size=cfg.batch_size,
                        batch_format="numpy", compute=pool)
    parts: dict[str, list[np.ndarray]] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    feats = {k: np.concatenate(v) for k, v in parts.items()}
    if not np.array_equal(feats["row"], np.arange(len(items))):
        raise RuntimeError("Ray Data returned the documents out of order")  # preserve_order is the contract
    return feats


def _step(manifest: list[dict], name: str, keep: np.ndarray, removed: np.ndarray, texts: np.ndarray,
          **counts: int) -> np.ndarray:
    """Record one step (`removed`: documents this step drops among those still kept) and return the new mask."""
    dropped = np.flatnonzero(keep & removed)
    manifest.append({"step": name, "in": int(keep.sum()), "out": int((keep & ~removed).sum()), **counts,
                     "removed_examples": [str(texts[i])[:200] for i in dropped[:EXAMPLES]]})
    return keep & ~removed


def decide(feats: dict[str, np.ndarray], cfg: CurateSection) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Which documents to keep, which are flagged as contaminated, and the manifest's steps."""
    texts, n = feats["text"], len(feats["text"])
    steps: list[dict] = []
    keep = np.ones(n, bool)
    short, long = feats["chars"] < cfg.min_chars, feats["chars"] > cfg.max_chars
    junk = feats["non_text"] > cfg.max_non_text
    keep = _step(steps, "quality", keep, short | long | junk, texts, too_short=int((keep & short).sum()),
                 too_long=int((keep & long).sum()), non_text=int((keep & junk & ~short & ~long).sum()))
    if cfg.exact_dedup:
        first: dict[str, int] = {}
        dup = np.zeros(n, bool)
        for i in np.flatnonzero(keep):
            dup[i] = first.setdefault(feats["key"][i], i) != i
        keep = _step(steps, "exact_dedup", keep, dup, texts)
    if cfg.minhash.enabled:
        idx = np.flatnonzero(keep)
        m = cfg.minhash
        cluster = dedup.lsh_clusters(feats["sig"][idx], m.bands, m.rows, m.threshold if m.verify else 0.0)
        near = np.zeros(n, bool)
        near[idx] = cluster != np.arange(len(idx))
        keep = _step(steps, "near_dedup", keep, near, texts, clusters=int(len(np.unique(cluster))))
    flagged = np.zeros(n, bool)
    if cfg.decontaminate.enabled:
        leaked = feats["hits"] > 0
        if cfg.decontaminate.action == "remove":
            keep = _step(steps, "decontaminate", keep, leaked, texts)
        else:
            flagged = keep & leaked
            steps.append({"step": "decontaminate", "in": int(keep.sum()), "out": int(keep.sum()),
                          "flagged": int(flagged.sum()),
                          "flagged_examples": [str(texts[i])[:200] for i in np.flatnonzero(flagged)[:EXAMPLES]]})
    return keep, flagged, steps


def write_output(out: Path, feats: dict[str, np.ndarray], keep: np.ndarray, flagged: np.ndarray,
                 shards: int) -> Path:
    """Kept documents as `part-NNNNN.parquet`, in input order, from the driver (which already holds them after
    the decisions; a Ray Data write would only send them back out: 9 s of 43 at 20k documents)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data_dir = out / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a rerun replaces the shards, never mixes them
    data_dir.mkdir(parents=True)
    table = pa.table({"text": feats["text"][keep].astype(str).tolist(),
                      "source": feats["source"][keep].astype(str).tolist(), "contaminated": flagged[keep]})
    n = max(1, min(shards, table.num_rows))
    bounds = np.linspace(0, table.num_rows, n + 1).astype(int)
    for i in range(n):
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), data_dir / f"part-{i:05d}.parquet")
    return data_dir


def run_curation(cfg: CurateSection, output_dir: str, generated: dict[str, list[str]] | None = None
                 ) -> tuple[Path, dict[str, Any]]:
    """The whole stage; returns the Parquet folder and the manifest (also written as manifest.json)."""
    t0 = time.perf_counter()
    marks = [t0]
    texts, names = read_documents(cfg, generated)
    evals = eval_texts(cfg.decontaminate, generated) if cfg.decontaminate.enabled else []
    marks.append(time.perf_counter())
    feats = featurize(texts, names, cfg, evals)
    marks.append(time.perf_counter())
    keep, flagged, steps = decide(feats, cfg)
    marks.append(time.perf_counter())
    out = Path(cfg.output or Path(output_dir) / "curated")
    out.mkdir(parents=True, exist_ok=True)
    data_dir = write_output(out, feats, keep, flagged, cfg.shards)
    marks.append(time.perf_counter())
    phases = dict(zip(("read", "ray_data_map", "decide", "write"), np.round(np.diff(marks), 2).tolist()))
    manifest = {"documents_in": len(texts), "documents_out": int(keep.sum()), "data": str(data_dir),
                "seconds": round(time.perf_counter() - t0, 2), "phase_seconds": phases,
                "nodes": len(set(feats["node"])), "steps": steps,
                "config": cfg.model_dump(mode="json")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return data_dir, manifest
