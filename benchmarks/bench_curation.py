"""Curation throughput and quality: documents/s for exact dedup, MinHash+LSH and decontamination (rlvr.data.dedup,
one process), the whole `data` stage on Ray Data with 1 and 2 map workers, and `datasketch` MinHashLSH beside our
implementation at datatrove's settings (5-word shingles, 14 bands x 8 rows), with clusters checked against exact
Jaccard on planted pairs.

    PYTHONPATH=. python benchmarks/bench_curation.py --docs 100000 --sketch-docs 10000
(`pip install datasketch` for the comparison; the shared data directory for decontamination's GSM8K/MATH-500.)
Prints one JSON object per measurement, then markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rlvr.config import CurateSection
from rlvr.data import dedup
from rlvr.data.curate import eval_texts

WORDS = 170  # ~1 KB of text per document


def make_corpus(n: int, seed: int = 0, dup_share: float = 0.1) -> list[str]:
    """Random-word documents; `dup_share` of them are copies of an earlier one with ~2% of words changed."""
    rng = random.Random(seed)
    vocab = [f"w{i:05d}" for i in range(50000)]
    docs: list[str] = []
    for i in range(n):
        if docs and rng.random() < dup_share:
            src = docs[rng.randrange(len(docs))].split()
            docs.append(" ".join(rng.choice(vocab) if rng.random() < 0.02 else w for w in src))
        else:
            docs.append(" ".join(rng.choices(vocab, k=WORDS)))
    return docs


def planted_pairs(n: int, seed: int = 1) -> tuple[list[str], np.ndarray]:
    rng = random.Random(seed)
    vocab = [f"v{i}" for i in range(20000)]
    docs, sims = [], []
    for _ in range(n):
        base = rng.choices(vocab, k=120)
        rate = rng.uniform(0.0, 0.15)
        other = [rng.choice(vocab) if rng.random() < rate else w for w in base]
        docs += [" ".join(base), " ".join(other)]
        sims.append(dedup.jaccard(docs[-2], docs[-1], 5))
    return docs, np.array(sims)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def ours(docs: list[str], bands: int, rows: int, threshold: float) -> np.ndarray:
    sig = dedup.MinHasher(bands * rows, 5, 1).signatures(docs)
    return dedup.lsh_clusters(sig, bands, rows, threshold)


def datasketch_lsh(docs: list[str], bands: int, rows: int, threshold: float) -> np.ndarray:
    """datasketch's usual use: one MinHash per document fed its shingles, insert into MinHashLSH, query each."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=bands * rows, params=(bands, rows))
    cluster = np.arange(len(docs))
    for i, d in enumerate(docs):
        ws = dedup.words(d)
        m = MinHash(num_perm=bands * rows, seed=1)
        m.update_batch([" ".join(ws[j:j + 5]).encode() for j in range(max(1, len(ws) - 4))])
        hits = [int(k) for k in lsh.query(m)]
        if hits:
            cluster[i] = min(cluster[h] for h in hits)
        lsh.insert(str(i), m)
    return cluster


def pair_quality(cluster: np.ndarray, sims: np.ndarray, threshold: float) -> dict[str, float]:
    merged = np.array([cluster[2 * i + 1] == cluster[2 * i] for i in range(len(sims))])
    above, below = sims >= threshold, sims < threshold
    return {"recall_above": round(float(merged[above].mean()), 3),
            "precision_below": round(float((~merged[below]).mean()), 3),
            "pairs_above": int(above.sum()), "pairs_below": int(below.sum())}


def bin_table(cluster: np.ndarray, sims: np.ndarray) -> list[dict]:
    merged = np.array([cluster[2 * i + 1] == cluster[2 * i] for i in range(len(sims))])
    rows = []
    for lo in np.arange(0.3, 1.0, 0.1):
        m = (sims >= lo) & (sims < lo + 0.1 + (1e-9 if lo >= 0.9 else 0))
        if m.any():
            rows.append({"jaccard": f"{lo:.1f}-{lo + 0.1:.1f}", "pairs": int(m.sum()),
                         "merged": round(float(merged[m].mean()), 3)})
    return rows


def emit(rows: list[dict], row: dict) -> None:
    rows.append(row)
    print(json.dumps(row), flush=True)


def bench_functions(docs: list[str], rows: list[dict]) -> None:
    n = len(docs)
    normed, t = timed(lambda: [dedup.normalize(d) for d in docs])
    keys, t2 = timed(lambda: {dedup.exact_key(d) for d in normed})
    emit(rows, {"step": "normalise + exact dedup", "docs": n, "s": round(t + t2, 2), "docs_per_s": round(n / (t + t2))})
    m = CurateSection().minhash
    sig, t = timed(dedup.MinHasher(m.num_perm, m.shingle, m.seed).signatures, normed)
    cl, t2 = timed(dedup.lsh_clusters, sig, m.bands, m.rows, m.threshold)
    emit(rows, {"step": f"MinHash ({m.num_perm} perms) + LSH ({m.bands}x{m.rows})", "docs": n,
                "s": round(t + t2, 2), "signatures_s": round(t, 2), "lsh_s": round(t2, 2),
                "docs_per_s": round(n / (t + t2)), "removed": int((cl != np.arange(n)).sum())})
    try:
        index, t0 = timed(dedup.NgramIndex, eval_texts(CurateSection().decontaminate), 13)
    except Exception as exc:  # noqa: BLE001 - a benchmark without the shared data skips this step
        print(f"decontamination skipped: {exc}", file=sys.stderr)
        return
    hits, t = timed(lambda: np.concatenate([index.hits_batch(normed[i:i + 2048]) for i in range(0, n, 2048)]))
    emit(rows, {"step": "decontamination (13-grams vs GSM8K test + MATH-500)", "docs": n, "s": round(t, 2),
                "index_s": round(t0, 2), "docs_per_s": round(n / t), "removed": int(sum(h > 0 for h in hits))})


def bench_stage(docs: list[str], workers: int, rows: list[dict]) -> None:
    import ray

    from rlvr.data.curate import run_curation

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        cfg = CurateSection.model_validate({"sources": [{"path": str(path)}], "workers": workers,
                                            "batch_size": 2048, "shards": 4})
        _, manifest = run_curation(cfg, tmp)
    emit(rows, {"step": f"whole data stage, Ray Data, {workers} map worker(s)", "docs": len(docs),
                "s": manifest["seconds"], "docs_per_s": round(len(docs) / manifest["seconds"]),
                "out": manifest["documents_out"], "cpus": ray.cluster_resources().get("CPU"),
                "load_after": os.getloadavg()[0],
                "phase_seconds": manifest["phase_seconds"]})


def bench_vs_datasketch(n_docs: int, n_pairs: int, rows: list[dict]) -> list[dict]:
    docs = make_corpus(n_docs, seed=2)
    pairs, sims = planted_pairs(n_pairs)
    table = []
    def ours_lsh_only(d, b, r, _t):  # every band collision merges, as datasketch's MinHashLSH does
        return ours(d, b, r, 0.0)

    for name, fn in (("rlvr (numpy)", ours), ("rlvr (numpy), LSH only", ours_lsh_only),
                     ("datasketch MinHashLSH", datasketch_lsh)):
        try:
            _, t = timed(fn, docs, 14, 8, 0.7)
        except ImportError:
            print("datasketch not installed: pip install datasketch", file=sys.stderr)
            continue
        q = pair_quality(fn(pairs, 14, 8, 0.7), sims, 0.7)
        emit(rows, {"step": f"{name}, 5-grams, 14x8", "docs": n_docs, "s": round(t, 2),
                    "docs_per_s": round(n_docs / t), **q})
        table.append({"impl": name, "bins": bin_table(fn(pairs, 14, 8, 0.7), sims)})
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--sketch-docs", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=4000, help="planted pairs of known Jaccard for recall/precision")
    p.add_argument("--stage-workers", type=int, nargs="*", default=[1, 2])
    p.add_argument("--sketch-only", action="store_true", help="only the datasketch comparison")
    p.add_argument("--stage-only", action="store_true", help="only the whole data stage on Ray Data")
    args = p.parse_args()
    rows: list[dict] = []
    if args.sketch_only:
        args.docs, args.stage_workers = 0, []
    docs = make_corpus(args.docs)
    mean_chars = np.mean([len(d) for d in docs[:1000]] or [0])
    print(f"# {args.docs} docs, mean {mean_chars:.0f} chars; {os.cpu_count()} cores; load {os.getloadavg()}",
          flush=True)
    if docs and not args.stage_only:
        bench_functions(docs, rows)
    table = [] if args.stage_only else bench_vs_datasketch(args.sketch_docs, args.pairs, rows)
    if args.stage_workers:
        import ray

        ray.init(address="local", num_cpus=max(args.stage_workers) + 1, include_dashboard=False, log_to_driver=False)
        for w in args.stage_workers:
            bench_stage(docs, w, rows)
        ray.shutdown()
    print("\n| step | docs | s | docs/s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['docs']} | {r['s']} | {r['docs_per_s']} |")
    for t in table:
        print(f"\n{t['impl']}: share of planted pairs merged, by exact Jaccard (5-word shingles, threshold 0.7)")
        print("| Jaccard | pairs | merged |\n|---|---|---|")
        for b in t["bins"]:
            print(f"| {b['jaccard']} | {b['pairs']} | {b['merged']} |")


if __name__ == "__main__":
    main()
