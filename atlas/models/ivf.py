"""The map's vectors for search by meaning, laid out so that one query reads a bounded part.

Up to :data:`EXACT_MAX` points the browser scans every vector (``vectors.bin``, one file, fetched
once: 20k points are 7.8 MB). Above it the vectors are **clustered** (an inverted file, IVF):
k-means centroids in one small index, the points in one file per cluster, and a query reads the
index once, then only the clusters nearest to it, as many as fit in :data:`PROBE_BYTES`. At 1M
points that is 2,000 clusters of at most 750 points, ~10 of them a query, 2 MB of 392 MB.

Files, in the model folder (``<site>/model/``; int8 vectors are each row over its largest absolute
component times 127, with a float32 per-row scale, so ``dot(query, int8_row) * scale_row`` is the
cosine up to the rounding -- :func:`quantise_vectors`):

``vectors.bin`` (exact)
    int8 [count, dim] in the map's point order, then, 4-byte aligned, float32 [count] scales.
``ivf/index.bin`` (clustered)
    int8 [clusters, dim] centroids (unit length before quantising), 4-byte aligned, float32
    [clusters] their scales, uint32 [clusters] each cluster's point count, uint8 [clusters, 32]
    each cluster file's SHA-256 (all little-endian; the offsets are in the manifest).
``ivf/<c>.bin`` (clustered; none for an empty cluster)
    cluster c's points, in id order: int8 [n, dim], 4-byte aligned, float32 [n] scales, uint32
    [n] map point ids. Its size follows from n and dim (:func:`cluster_bytes`).

The probe (the browser's, ``text-worker.js``, and :func:`probe` here, which reads the same files):
rank the centroids by ``dot(query, centroid)``, take clusters in that order while their bytes add
up to at most ``probe_bytes`` (always the first, and more while fewer than k points are taken),
scan them exactly, best k by score. Which clusters a query reads does not depend on what an earlier
query fetched, so the answer is the same in every session.

The clusters: spherical k-means (faiss; scikit-learn's MiniBatchKMeans where faiss is missing)
with ``round(2 * sqrt(count))`` centroids, fitted on a seeded subsample; then every point goes to
its nearest centroid that has room, at most :data:`CAPACITY` times the mean cluster size (the
points closest to a centroid first, so a crowded centroid keeps its own and sheds the marginal ones
to their next-nearest), so no probe reads more than a bounded number of bytes. The same vectors
and seed give the same files (checked in fresh processes, on one thread and two; another BLAS
could round a near tie differently).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Above this many points the layout is clustered; up to it the browser scans every vector.
EXACT_MAX = 100_000
#: What one query may fetch (cluster files), beyond the one-time files.
PROBE_BYTES = 2_000_000
#: A cluster holds at most this many times the mean cluster size.
CAPACITY = 1.5
SEED = 0
#: k-means is fitted on at most this many points per centroid (a seeded subsample).
TRAIN_PER_CLUSTER = 40
ITERATIONS = 12
#: Nearest centroids a point may go to before the overflow's last resort (any with room).
CHOICES = 8
FOLDER = "ivf"
INDEX = f"{FOLDER}/index.bin"
CLUSTER_FILE = FOLDER + "/{c}.bin"
EXACT_FILE = "vectors.bin"


def quantise_vectors(vectors: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """float [N, D] -> (int8 [N, D], float32 [N] scales): each row over its own largest component."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _pad(n: int) -> int:
    return (-n) % 4


def cluster_count(count: int) -> int:
    """How many clusters for ``count`` points: about 2 * sqrt(count)."""
    return max(1, min(count, round(2 * math.sqrt(count))))


def cluster_bytes(n: int, dim: int) -> int:
    """The size of a cluster file of ``n`` points."""
    return n * dim + _pad(n * dim) + 8 * n


def _file_entry(folder: Path, name: str) -> dict:
    from atlas.core.cache import file_digest

    path = folder / name
    return {"file": name, "bytes": path.stat().st_size, "sha256": file_digest(path)}


# ----------------------------------------------------------------------------- exact


def write_exact(path: Path, vectors: "np.ndarray") -> dict:
    """``vectors.bin`` at ``path`` (the module docstring); its manifest entry."""
    path = Path(path)
    q, scale = quantise_vectors(vectors)
    body = q.tobytes()
    with open(path, "wb") as handle:
        handle.write(body)
        handle.write(b"\0" * _pad(len(body)))
        handle.write(scale.astype("<f4").tobytes())
    n, dim = (int(q.shape[0]), int(q.shape[1])) if q.ndim == 2 else (0, 0)
    return {"kind": "exact", **_file_entry(path.parent, path.name), "count": n, "dim": dim, "int8_offset": 0,
            "scales_offset": len(body) + _pad(len(body)),
            "layout": "int8 [count, dim] row-major, then float32 [count] per-point scales"}


# ----------------------------------------------------------------------------- clustering


def _unit(x: "np.ndarray") -> "np.ndarray":
    import numpy as np

    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def kmeans(vectors: "np.ndarray", clusters: int, seed: int = SEED, engine: str = "auto") -> tuple["np.ndarray", str]:
    """Unit-length centroids [clusters, dim] of a seeded subsample, and which library fitted them."""
    import numpy as np

    n, dim = vectors.shape
    rng = np.random.default_rng(seed)
    take = min(n, clusters * TRAIN_PER_CLUSTER)
    sample = np.ascontiguousarray(_unit(vectors[np.sort(rng.choice(n, take, replace=False))]))
    if engine in ("auto", "faiss"):
        try:
            import faiss
        except ImportError:
            if engine == "faiss":
                raise
        else:
            fit = faiss.Kmeans(dim, clusters, niter=ITERATIONS, seed=seed, spherical=True, verbose=False,
                               min_points_per_centroid=1, max_points_per_centroid=TRAIN_PER_CLUSTER)
            fit.train(sample)
            return _unit(fit.centroids), "faiss"
    from sklearn.cluster import MiniBatchKMeans

    fit = MiniBatchKMeans(n_clusters=clusters, random_state=seed, n_init=1, max_iter=ITERATIONS * 4,
                          batch_size=max(1024, 4 * clusters), init="random").fit(sample)
    return _unit(fit.cluster_centers_), "scikit-learn"


def _nearest_centroids(vectors: "np.ndarray", centroids: "np.ndarray", m: int, chunk: int = 8192):
    """The m nearest centroids of each row (by dot product), nearest first, and their scores."""
    import numpy as np

    n = len(vectors)
    m = min(m, len(centroids))
    cand = np.empty((n, m), np.int32)
    score = np.empty((n, m), np.float32)
    for start in range(0, n, chunk):
        s = vectors[start:start + chunk] @ centroids.T
        top = np.argpartition(-s, m - 1, axis=1)[:, :m] if m < s.shape[1] else np.tile(np.arange(m), (len(s), 1))
        top_s = np.take_along_axis(s, top, axis=1)
        order = np.lexsort((top, -top_s), axis=1)  # best first, ties by centroid number
        cand[start:start + chunk] = np.take_along_axis(top, order, axis=1)
        score[start:start + chunk] = np.take_along_axis(top_s, order, axis=1)
    return cand, score


def assign(vectors: "np.ndarray", centroids: "np.ndarray", capacity: int) -> "np.ndarray":
    """Each row's cluster: its nearest centroid with room (at most ``capacity`` rows each).

    Round r offers every unplaced row its r-th nearest centroid; a centroid takes the closest of
    its candidates while it has room. Rows still unplaced after :data:`CHOICES` rounds go, in row
    order, to the nearest centroid with room.
    """
    import numpy as np

    n, k = len(vectors), len(centroids)
    if capacity * k < n:
        raise ValueError(f"{k} clusters of {capacity} cannot hold {n} points")
    cand, score = _nearest_centroids(vectors, centroids, CHOICES)
    labels = np.full(n, -1, np.int64)
    room = np.full(k, capacity, np.int64)
    for r in range(cand.shape[1]):
        todo = np.flatnonzero(labels < 0)
        if not len(todo):
            break
        c, s = cand[todo, r], score[todo, r]
        order = np.lexsort((todo, -s, c))  # by centroid, closest first, ties by row
        c_sorted = c[order]
        first = np.searchsorted(c_sorted, c_sorted, side="left")
        rank = np.arange(len(order)) - first
        take = rank < room[c_sorted]
        labels[todo[order[take]]] = c_sorted[take]
        room -= np.bincount(c_sorted[take], minlength=k)
    for row in np.flatnonzero(labels < 0):  # the rare last resort: every one of its CHOICES is full
        s = centroids @ vectors[row]
        s[room <= 0] = -np.inf
        best = int(np.argmax(s))
        labels[row] = best
        room[best] -= 1
    return labels


# ----------------------------------------------------------------------------- clustered


def write_clustered(folder: Path, vectors: "np.ndarray", seed: int = SEED, clusters: int | None = None,
                    probe_bytes: int = PROBE_BYTES, engine: str = "auto") -> dict:
    """``ivf/index.bin`` and ``ivf/<c>.bin`` (the module docstring); the manifest entry."""
    import numpy as np

    folder = Path(folder)
    vectors = np.asarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    k = clusters or cluster_count(n)
    capacity = max(1, math.floor(CAPACITY * n / k))
    while capacity * k < n:
        capacity += 1
    centroids, fitted_by = kmeans(vectors, k, seed, engine)
    labels = assign(_unit(vectors), centroids, capacity)
    (folder / FOLDER).mkdir(parents=True, exist_ok=True)
    q, scale = quantise_vectors(vectors)
    order = np.argsort(labels, kind="stable")  # by cluster, ids ascending within one
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    sizes = np.diff(bounds).astype("<u4")
    digests = np.zeros((k, 32), np.uint8)
    for c in range(k):
        if not sizes[c]:
            continue
        ids = order[bounds[c]:bounds[c + 1]]
        body = q[ids].tobytes()
        blob = body + b"\0" * _pad(len(body)) + scale[ids].astype("<f4").tobytes() + ids.astype("<u4").tobytes()
        (folder / CLUSTER_FILE.format(c=c)).write_bytes(blob)
        digests[c] = np.frombuffer(hashlib.sha256(blob).digest(), np.uint8)
    cq, cscale = quantise_vectors(centroids)
    body = cq.tobytes()
    scales_offset = len(body) + _pad(len(body))
    with open(folder / INDEX, "wb") as handle:
        handle.write(body)
        handle.write(b"\0" * _pad(len(body)))
        handle.write(cscale.astype("<f4").tobytes())
        handle.write(sizes.tobytes())
        handle.write(digests.tobytes())
    return {
        "kind": "clustered", "count": int(n), "dim": int(dim), "clusters": int(k), "capacity": int(capacity),
        "largest": int(sizes.max()) if k else 0, "empty": int((sizes == 0).sum()),
        "probe_bytes": int(probe_bytes), "seed": int(seed), "kmeans": fitted_by,
        "index": {**_file_entry(folder, INDEX), "centroids_offset": 0, "scales_offset": scales_offset,
                  "sizes_offset": scales_offset + 4 * k, "digests_offset": scales_offset + 8 * k},
        "cluster_file": CLUSTER_FILE,
        "bytes": int(sum(cluster_bytes(int(s), dim) for s in sizes)) + (folder / INDEX).stat().st_size,
        "layout": "ivf/index.bin: int8 [clusters, dim] centroids, float32 [clusters] scales, uint32 [clusters] "
                  "sizes, uint8 [clusters, 32] SHA-256 of each cluster file; ivf/<c>.bin: int8 [n, dim], "
                  "float32 [n] scales, uint32 [n] point ids",
    }


def write_layout(folder: Path, vectors: "np.ndarray", exact_max: int = EXACT_MAX, **clustered) -> dict:
    """The exact layout up to ``exact_max`` points, the clustered one above; the manifest entry."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) <= exact_max:
        return write_exact(Path(folder) / EXACT_FILE, vectors)
    return write_clustered(folder, vectors, **clustered)


# ----------------------------------------------------------------------------- reading (tests, tools)


class Clustered:
    """A clustered layout read back from its files, probed as the browser probes it."""

    def __init__(self, folder: Path, entry: dict):
        import numpy as np

        self.folder, self.entry = Path(folder), entry
        self.dim, self.k = entry["dim"], entry["clusters"]
        index = entry["index"]
        raw = (self.folder / index["file"]).read_bytes()
        self.centroids = np.frombuffer(raw, np.int8, self.k * self.dim,
                                       index["centroids_offset"]).reshape(self.k, self.dim)
        self.scales = np.frombuffer(raw, "<f4", self.k, index["scales_offset"])
        self.sizes = np.frombuffer(raw, "<u4", self.k, index["sizes_offset"])
        self.digests = np.frombuffer(raw, np.uint8, self.k * 32, index["digests_offset"]).reshape(self.k, 32)

    def cluster(self, c: int) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """int8 [n, dim], scales [n], ids [n] of cluster c."""
        import numpy as np

        n = int(self.sizes[c])
        if not n:
            return np.zeros((0, self.dim), np.int8), np.zeros(0, np.float32), np.zeros(0, np.uint32)
        raw = (self.folder / self.entry["cluster_file"].format(c=c)).read_bytes()
        values = np.frombuffer(raw, np.int8, n * self.dim).reshape(n, self.dim)
        at = n * self.dim + _pad(n * self.dim)
        return values, np.frombuffer(raw, "<f4", n, at), np.frombuffer(raw, "<u4", n, at + 4 * n)

    def probes(self, query: "np.ndarray", k: int = 10, probe_bytes: int | None = None) -> list[int]:
        """The clusters a query reads, nearest first (the rule in the module docstring)."""
        import numpy as np

        budget = self.entry["probe_bytes"] if probe_bytes is None else probe_bytes
        score = (self.centroids.astype(np.float64) @ np.asarray(query, np.float64)) * self.scales.astype(np.float64)
        chosen, spent, points = [], 0, 0
        for c in np.lexsort((np.arange(self.k), -score)):
            n = int(self.sizes[c])
            if not n:
                continue
            size = cluster_bytes(n, self.dim)
            if chosen and spent + size > budget and points >= k:
                break
            chosen.append(int(c))
            spent += size
            points += n
        return chosen

    def nearest(self, query: "np.ndarray", k: int = 10,
                probe_bytes: int | None = None) -> tuple[list[int], list[float]]:
        """The k best point ids among the probed clusters and their scores, best first."""
        import numpy as np

        ids, scores = [], []
        query = np.asarray(query, np.float64)
        for c in self.probes(query, k, probe_bytes):
            values, scales, point_ids = self.cluster(c)
            ids.append(point_ids.astype(np.int64))
            scores.append((values.astype(np.float64) @ query) * scales)
        if not ids:
            return [], []
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        best = np.lexsort((ids, -scores))[:k]
        return ids[best].tolist(), scores[best].tolist()
