"""Pure functions of the curation stage (`rlvr.data.curate`): normalisation, exact hashes, MinHash signatures,
LSH bands and clusters, benchmark n-gram overlap and quality gates. Batches are numpy arrays; nothing here knows
about Ray, so every step is testable on a list of strings.

MinHash: a document's word shingles (`shingle` consecutive words) are hashed to 64 bits; permutation i maps a
shingle hash h to `(a_i * h + b_i) mod 2^64 >> 32` (multiply-shift, a universal family), and the signature keeps
the minimum per permutation. A batch is one `(shingles_S, perms_P)` product and a `minimum.reduceat` over the
documents' offsets, so the inner loop is numpy, not Python. LSH cuts the signature into `bands` x `rows`; two
documents sharing any band's hash are candidates, and a candidate joins a cluster only when its estimated
Jaccard similarity (share of equal signature entries) with the cluster's first document reaches the threshold.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_HSPACE = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_MASK32 = np.uint64(0xFFFFFFFF)


def normalize(text: str) -> str:
    """Unicode NFKC, runs of spaces/tabs to one space, lines stripped, blank-line runs to one (what is stored and
    exact-deduplicated); line breaks stay, since a pretraining document's lines are part of its text."""
    lines = (_HSPACE.sub(" ", line).strip() for line in unicodedata.normalize("NFKC", text).splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def exact_key(text: str) -> str:
    """Hash of the normalised text; equal keys are exact duplicates."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def words(text: str) -> list[str]:
    """Lower-cased word tokens with thousands separators removed (`1,000` == `1000`), punctuation dropped: the
    unit of shingles and n-grams, so case, spacing and number formatting do not hide a duplicate."""
    return _WORD.findall(_THOUSANDS.sub("", text.lower()))


def _word_hashes(docs: Sequence[list[str]]) -> list[np.ndarray]:
    """Each document's words as uint64 hashes (crc32 of each distinct word in the batch, computed once)."""
    vocab: dict[str, int] = {}
    for ws in docs:
        for w in ws:
            if w not in vocab:
                vocab[w] = zlib.crc32(w.encode("utf-8"))
    return [np.fromiter((vocab[w] for w in ws), dtype=np.uint64, count=len(ws)) for ws in docs]


_MIX = np.uint64(0x9E3779B97F4A7C15)


def ngram_hashes(word_h: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every window of `n` consecutive word hashes (a polynomial over the window, wrapping in 64 bits);
    a document shorter than `n` words gives one hash of all of it."""
    n = max(1, min(n, len(word_h)))
    if len(word_h) == 0:
        return np.zeros(0, np.uint64)
    h = np.zeros(len(word_h) - n + 1, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _MIX + word_h[j:len(word_h) - n + 1 + j]
    return h


@dataclass(frozen=True)
class MinHasher:
    num_perm: int = 128
    shingle: int = 5
    seed: int = 1

    def params(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(1, 2**63, self.num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
        b = rng.integers(0, 2**63, self.num_perm, dtype=np.uint64)
        return a, b

    def signatures(self, texts: Sequence[str], chunk: int = 1 << 12) -> np.ndarray:
        """`(docs_D, perms_P)` uint32 signatures; an empty document's signature is all 0xFFFFFFFF."""
        a, b = self.params()
        shingles = [ngram_hashes(h, self.shingle) for h in _word_hashes([words(t) for t in texts])]
        sig_DP = np.full((len(texts), self.num_perm), 0xFFFFFFFF, np.uint32)
        # documents grouped so one product has at most ~chunk shingles: chunk * P * 8 bytes, 4 MB at the
        # default (cache-sized; 16x larger ran 2x slower)
        start = 0
        while start < len(texts):
            stop, total = start, 0
            while stop < len(texts) and (total == 0 or total + len(shingles[stop]) <= chunk):
                total += len(shingles[stop])
                stop += 1
            part = [s for s in shingles[start:stop]]
            lengths = np.array([len(s) for s in part])
            nonempty = lengths > 0
            if nonempty.any():
                flat_S = np.concatenate(part)
                with np.errstate(over="ignore"):
                    perm_SP = ((flat_S[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)) & _MASK32
                offsets = np.concatenate([[0], np.cumsum(lengths[nonempty])[:-1]])
                mins = np.minimum.reduceat(perm_SP, offsets, axis=0).astype(np.uint32)
                sig_DP[start:stop][nonempty] = mins
            start = stop
        return sig_DP


def band_keys(sig_DP: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """`(docs_D, bands_B)` uint64 hash of each band's rows of the signature."""
    if bands * rows > sig_DP.shape[1]:
        raise ValueError(f"bands*rows = {bands * rows} exceeds num_perm = {sig_DP.shape[1]}")
    sig = sig_DP[:, :bands * rows].astype(np.uint64).reshape(len(sig_DP), bands, rows)
    h = np.zeros((len(sig_DP), bands), np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            h = h * _MIX + sig[:, :, r]
    return h


def lsh_clusters(sig_DP: np.ndarray, bands: int, rows: int, threshold: float) -> np.ndarray:
    """Cluster id of each document (the index of the document kept for it: the first in input order).

    Candidates share a band hash; document j joins i's cluster when its estimated Jaccard with i (i < j, the
    first document of the bucket) is at least `threshold`, so a cluster is a set of near-copies of its first
    document rather than a chain of drifting ones."""
    n = len(sig_DP)
    parent = np.arange(n)
    keys_DB = band_keys(sig_DP, bands, rows)
    for band in range(bands):
        col = keys_DB[:, band]
        order = np.argsort(col, kind="stable")
        sorted_keys = col[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for s, size in zip(starts[sizes > 1], sizes[sizes > 1]):
            members = order[s:s + size]  # ascending document order (stable sort)
            head = members[0]
            est = (sig_DP[members[1:]] == sig_DP[head]).mean(axis=1)
            for j in members[1:][est >= threshold]:
                parent[j] = min(parent[j], parent[head])
    # a document's cluster is its smallest linked representative; resolve chains to the root
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def jaccard(a: str, b: str, shingle: int) -> float:
    """Exact Jaccard similarity of two documents' shingle sets (the reference the estimates are checked against)."""
    sa, sb = (set(ngram_hashes(h, shingle).tolist()) for h in _word_hashes([words(a), words(b)]))
    return len(sa & sb) / max(1, len(sa | sb))


class NgramIndex:
    """Word n-grams of evaluation sets; `hits_batch(texts)` counts each document's n-grams found there. An
    evaluation item shorter than n words (but at least `min_short`) is indexed whole and matched as a run of its
    own length; shorter ones ("Compute 8 choose 4.") would match ordinary text and are skipped."""

    def __init__(self, texts: Sequence[str], n: int = 13, min_short: int = 8):
        self.n = n
        grams: dict[int, list[np.ndarray]] = {}
        for wh in _word_hashes([words(t) for t in texts]):
            if len(wh) >= min(n, min_short):
                grams.setdefault(min(n, len(wh)), []).append(ngram_hashes(wh, n))
        self.tables = {k: np.unique(np.concatenate(v)) for k, v in sorted(grams.items())}

    def hits_batch(self, texts: Sequence[str]) -> np.ndarray:
        """`(docs_D,)` number of a batch's n-grams (of every indexed length) found in the evaluation sets; one
        sorted-array lookup per length over the whole batch."""
        doc_h = _word_hashes([words(t) for t in texts])
        hits_D = np.zeros(len(texts), np.int64)
        for k, table in self.tables.items():
            grams = [ngram_hashes(h, k) if len(h) >= k else np.zeros(0, np.uint64) for h in doc_h]
            lengths = np.array([len(g) for g in grams])
            if not lengths.sum():
                continue
            flat = np.concatenate(grams)
            pos = np.searchsorted(table, flat).clip(max=len(table) - 1)
            found = (table[pos] == flat).astype(np.int64)
            doc_of = np.repeat(np.arange(len(texts)), lengths)
            hits_D += np.bincount(doc_of, weights=found, minlength=len(texts)).astype(np.int64)
        return hits_D

    def hits(self, text: str) -> int:
        return int(self.hits_batch([text])[0])


def non_text_share(text: str) -> float:
    """Share of characters that are neither letters, digits, whitespace nor common punctuation."""
    if not text:
        return 0.0
    plain = sum(1 for c in text if c.isalnum() or c.isspace() or c in ".,;:!?'\"()-$%/+=*")
    return 1.0 - plain / len(text)
