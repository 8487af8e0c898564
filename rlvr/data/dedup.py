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
import itertools
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

_HSPACE = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_MASK32 = np.uint64(0xFFFFFFFF)


_LINE_EDGE = re.compile(r" ?\n ?")
_ODD_SPACE = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "  ")
"""ASCII whitespace other than a single space or "\n" (str.isspace); text without any needs no substitution."""


def normalize(text: str) -> str:
    """Unicode NFKC, runs of spaces/tabs to one space, lines stripped, blank-line runs to one (what is stored and
    exact-deduplicated); line breaks stay, since a pretraining document's lines are part of its text. Each
    substitution runs only where a cheap substring test says it can change something (most text is clean)."""
    if not text.isascii():
        text = _HSPACE.sub(" ", "\n".join(unicodedata.normalize("NFKC", text).splitlines()))
    elif any(s in text for s in _ODD_SPACE):  # NFKC leaves ASCII as it is
        text = _HSPACE.sub(" ", "\n".join(text.splitlines()))  # every line break "\n", blank runs one space
    if " \n" in text or "\n " in text:
        text = _LINE_EDGE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANKS.sub("\n\n", text)
    return text.strip()


def exact_key(text: str) -> str:
    """Hash of the normalised text; equal keys are exact duplicates."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def words(text: str) -> list[str]:
    """Lower-cased word tokens with thousands separators removed (`1,000` == `1000`), punctuation dropped: the
    unit of shingles and n-grams, so case, spacing and number formatting do not hide a duplicate."""
    return _WORD.findall(_THOUSANDS.sub("", text.lower()) if "," in text else text.lower())


@dataclass(frozen=True)
class Tokens:
    """A batch's words as one flat array of uint64 hashes (crc32 of the word), documents one after another."""

    flat_W: np.ndarray
    lengths_D: np.ndarray

    @cached_property
    def starts_D(self) -> np.ndarray:
        return np.cumsum(self.lengths_D) - self.lengths_D

    def doc(self, d: int) -> np.ndarray:
        start = int(self.starts_D[d])
        return self.flat_W[start:start + int(self.lengths_D[d])]

    def docs(self) -> list[np.ndarray]:
        """Each document's word hashes (views of the flat array)."""
        return np.split(self.flat_W, np.cumsum(self.lengths_D)[:-1]) if len(self.lengths_D) else []


def tokenize(texts: Sequence[str]) -> Tokens:
    """`words` of every text, hashed once per distinct word of the batch (MinHash and decontamination share it)."""
    import pandas as pd

    docs = [words(t) for t in texts]
    flat = list(itertools.chain.from_iterable(docs))
    codes_W, vocab = pd.factorize(np.array(flat, dtype=object))  # hashing in C: 3x a dict lookup per word
    crc_V = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in vocab), np.uint64, len(vocab))
    return Tokens(crc_V[codes_W] if len(flat) else np.zeros(0, np.uint64),
                  np.fromiter(map(len, docs), np.int64, len(docs)))


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


def window_hashes(tokens: Tokens, sizes: Sequence[int], whole_short: bool = False):
    """For each n in `sizes` (ascending): `(hashes_G, doc_G)`, the `ngram_hashes` of every document of the batch
    at once, grouped by document in order. The n-word windows come from one pass over the flat array (window n
    extends window n - 1 by a word), keeping those inside one document. `whole_short`: a non-empty document
    shorter than n gives one hash of all of it (MinHash shingles); otherwise none (n-gram lookups)."""
    flat_W, lengths_D = tokens.flat_W, tokens.lengths_D
    ends_D = np.cumsum(lengths_D)
    doc_W = np.repeat(np.arange(len(lengths_D)), lengths_D)
    h = np.zeros(len(flat_W), np.uint64)
    wanted = sorted(set(sizes))
    for n in range(1, wanted[-1] + 1):
        m = max(0, len(flat_W) - n + 1)
        with np.errstate(over="ignore"):
            h = h[:m] * _MIX + flat_W[n - 1:n - 1 + m]
        if n not in wanted:
            continue
        inside = np.arange(m) + n <= ends_D[doc_W[:m]]
        hashes, docs = h[inside], doc_W[:m][inside]
        short = np.flatnonzero((lengths_D > 0) & (lengths_D < n)) if whole_short else []
        if len(short):  # one hash of the whole document each (few: documents shorter than a shingle)
            extra = np.array([ngram_hashes(tokens.doc(d), n)[0] for d in short], np.uint64)
            order = np.argsort(np.r_[docs, short], kind="stable")
            hashes, docs = np.r_[hashes, extra][order], np.r_[docs, short][order]
        yield n, hashes, docs


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

    def signatures(self, texts: Sequence[str], chunk: int = 1 << 12, tokens: Tokens | None = None) -> np.ndarray:
        """`(docs_D, perms_P)` uint32 signatures; an empty document's signature is all 0xFFFFFFFF. `tokens`:
        the texts already tokenized."""
        a, b = self.params()
        tokens = tokenize(texts) if tokens is None else tokens
        _, flat_S, doc_S = next(window_hashes(tokens, [self.shingle], whole_short=True))
        sig_DP = np.full((len(tokens.lengths_D), self.num_perm), 0xFFFFFFFF, np.uint32)
        # products of at most ~chunk shingles (whole documents): chunk * P * 8 bytes, 4 MB at the default
        # (cache-sized; 16x larger ran 2x slower)
        start = 0
        while start < len(flat_S):
            stop = min(len(flat_S), start + chunk)
            if stop < len(flat_S):  # end on a document boundary (a document longer than chunk goes whole)
                back = np.searchsorted(doc_S, doc_S[stop], side="left")
                stop = back if back > start else np.searchsorted(doc_S, doc_S[stop], side="right")
            with np.errstate(over="ignore"):
                perm_SP = (flat_S[start:stop, None] * a[None, :] + b[None, :]) >> np.uint64(32)
            docs = doc_S[start:stop]
            firsts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            sig_DP[docs[firsts]] = np.minimum.reduceat(perm_SP, firsts, axis=0).astype(np.uint32)
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
    sa, sb = (set(ngram_hashes(h, shingle).tolist()) for h in tokenize([a, b]).docs())
    return len(sa & sb) / max(1, len(sa | sb))


class NgramIndex:
    """Word n-grams of evaluation sets; `hits_batch(texts)` counts each document's n-grams found there. An
    evaluation item shorter than n words (but at least `min_short`) is indexed whole and matched as a run of its
    own length; shorter ones ("Compute 8 choose 4.") would match ordinary text and are skipped."""

    def __init__(self, texts: Sequence[str], n: int = 13, min_short: int = 8):
        self.n = n
        grams: dict[int, list[np.ndarray]] = {}
        for wh in tokenize(texts).docs():
            if len(wh) >= min(n, min_short):
                grams.setdefault(min(n, len(wh)), []).append(ngram_hashes(wh, n))
        self.tables = {k: np.unique(np.concatenate(v)) for k, v in sorted(grams.items())}

    def hits_batch(self, texts: Sequence[str], tokens: Tokens | None = None) -> np.ndarray:
        """`(docs_D,)` number of a batch's n-grams (of every indexed length) found in the evaluation sets; one
        sorted-array lookup per length over the whole batch. `tokens`: the texts already tokenized."""
        tokens = tokenize(texts) if tokens is None else tokens
        hits_D = np.zeros(len(tokens.lengths_D), np.int64)
        if not self.tables:
            return hits_D
        for k, flat, doc_of in window_hashes(tokens, list(self.tables)):
            table = self.tables[k]
            if not len(flat):
                continue
            pos = np.searchsorted(table, flat).clip(max=len(table) - 1)
            hits_D += np.bincount(doc_of[table[pos] == flat], minlength=len(hits_D))
        return hits_D

    def hits(self, text: str) -> int:
        return int(self.hits_batch([text])[0])


_NON_TEXT = re.compile(r"[^\w\s.,;:!?'\"()\-$%/+=*]|_")
"""A character that is not a letter, digit, whitespace or common punctuation (\\w is str.isalnum() plus `_`, \\s
is str.isspace(): checked over every code point)."""


_TEXT_ASCII = bytes(c for c in range(128) if not _NON_TEXT.match(chr(c)))


def non_text_share(text: str) -> float:
    """Share of characters that are neither letters, digits, whitespace nor common punctuation."""
    if not text:
        return 0.0
    if text.isascii():  # one C pass: delete the text bytes, count what is left
        return len(text.encode("ascii").translate(None, _TEXT_ASCII)) / len(text)
    return len(_NON_TEXT.findall(text)) / len(text)
