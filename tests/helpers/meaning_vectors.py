"""Synthetic caption-like embeddings for the search-by-meaning layout (tests and
benchmarks/bench_meaning_search.py): unit vectors grouped in topics of very unequal size, each
topic in subtopics, each subtopic a cloud of points, so that a point's nearest neighbours are
mostly its subtopic's (cosine ~0.6, as all-MiniLM-L6-v2 puts close captions) and unrelated points
are near orthogonal. Queries are new points drawn the same way (a reader's words are not a caption
of the map)."""

from __future__ import annotations

import numpy as np

DIM = 384


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Topics:
    """The generator: ``points(n)`` and ``queries(n)``, both deterministic in ``seed``."""

    def __init__(self, count: int, dim: int = DIM, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dim, self.seed = dim, seed
        self.topics = max(2, round(count ** 0.5 / 2))
        self.subtopics = 24
        # topic sizes of Zipf-like shape: a few topics hold much of the map (as products, fashion do)
        weights = 1.0 / np.arange(1, self.topics + 1) ** 0.8
        self.weights = rng.permutation(weights / weights.sum())
        centres = _unit(rng.normal(size=(self.topics, dim)))
        spread = _unit(rng.normal(size=(self.topics, self.subtopics, dim)))
        self.centres = _unit(centres[:, None, :] + 0.9 * spread)  # [topics, subtopics, dim]

    def _draw(self, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
        topic = rng.choice(self.topics, size=n, p=self.weights)
        sub = rng.integers(0, self.subtopics, size=n)
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, 65536):  # chunks: 1M x 384 float64 noise at once is 3 GB
            end = min(n, start + 65536)
            base = self.centres[topic[start:end], sub[start:end]]
            out[start:end] = _unit(base + noise * rng.normal(size=(end - start, self.dim)).astype(np.float32))
        return out

    def points(self, n: int) -> np.ndarray:
        return self._draw(n, np.random.default_rng([self.seed, 1]), 0.045)

    def queries(self, n: int) -> np.ndarray:
        return self._draw(n, np.random.default_rng([self.seed, 2]), 0.045)


def exact_nearest(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """The exact k nearest rows by dot product per query, best first, ties by row [Q, k]."""
    out = []
    for q in queries:
        s = vectors @ q
        top = np.argpartition(-s, k)[:k]
        out.append(top[np.lexsort((top, -s[top]))])
    return np.asarray(out)
