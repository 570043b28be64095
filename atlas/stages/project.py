"""The ``project`` stage: embeddings -> 2-D map coordinates, nearest neighbours and labelled clusters.

PCA to ``[project] pca_dims``, then the k-nearest-neighbour graph of the reduced vectors (exact,
by FAISS's brute-force search, up to ``EXACT_KNN_MAX`` points, pynndescent above, on every core), then
UMAP (cuML's on a CUDA machine where it is installed, else umap-learn) on that same graph. The
graph is computed once: UMAP gets it as ``precomputed_knn`` and its first ``MAP_NEIGHBOURS``
columns are the map's nearest neighbours (``neighbours.bin``). UMAP starts from the PCA layout (a spectral
start cost more than the optimisation itself, for the same quality). Above ``fit_size`` points UMAP is
fitted on a seeded subset and applied to the rest with ``transform``. Very small samples (too few
points for UMAP's neighbour graph) are placed by PCA alone. Coordinates are scaled to [-1, 1]
along the longer side, keeping the aspect ratio.

Speed. umap-learn compiles its numba functions in every fresh process (20-40 CPU-s) unless they
are cached: :func:`import_umap` imports it with numba's on-disk cache switched on, in the folder
``NUMBA_CACHE_DIR`` names (the build points it at ``<cache>/numba``, see
:func:`use_numba_cache`), so only the first build on a machine pays for compiling.

Determinism. With ``[project] deterministic = true`` (the default) equal inputs and seeds give
equal maps: the neighbour graph is exact or seeded pynndescent (repeatable run to run, as the
tests check; whether it also agrees across machines with other core counts is not checked), and
UMAP's optimisation runs seeded on one thread. ``deterministic = false`` lets UMAP optimise on
every core without a seed: each run draws a different (equally good) map. On 2 cores it saved
little (bench_project.py), so the default keeps equal maps.

Clusters are k-means on the map coordinates (so they look like the islands a reader sees) at two
levels, ``coarse`` and ``fine``, and a third, ``finer``, for samples of ``FINER_MIN`` (100,000)
points or more; each is labelled with its most distinctive caption words
(class-based TF-IDF: a cluster's word counts against all clusters', English stop words skipped).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from atlas.core.config import ProjectConfig
from atlas.core.pipeline import Stage

log = logging.getLogger(__name__)

#: Below this many points UMAP's neighbour graph is meaningless; PCA places them.
MIN_UMAP_POINTS = 20
#: Nearest neighbours kept per point for the map page (``neighbours.bin``).
MAP_NEIGHBOURS = 10
#: Up to this many points the neighbour graph is exact: FAISS's brute-force search (blocked BLAS
#: products and a k-heap per point, on every core: 100k points of 50 dims in ~14 s on 2 cores,
#: where pynndescent spends ~33 s compiling in every fresh process before its ~3 s of work; see
#: benchmarks/bench_project.py). Above, pynndescent, whose compile is then the smaller part.
EXACT_KNN_MAX = 150_000
#: Without faiss-cpu, scikit-learn's brute force (1.6x slower than FAISS) is used up to this many points.
SKLEARN_EXACT_MAX = 20_000
NEIGHBOURS_FILE = "neighbours.bin"
#: ``neighbours.bin`` entry for "no neighbour" (samples with at most k points).
NO_NEIGHBOUR = 0xFFFFFFFF
#: Points of the fixed subsample on which map quality (neighbour recall) is measured.
QUALITY_SAMPLE = 2_000

#: Words too common in LAION captions/URLs to say anything about a cluster.
EXTRA_STOP_WORDS = frozenset(
    "jpg jpeg png gif webp com www http https html htm org net amp quot image images img pic "
    "pics picture pictures photo photos".split()
)


@dataclass
class Level:
    name: str
    assignments: np.ndarray  # int32 [N]
    clusters: list[dict] = field(default_factory=list)


def _no_neighbours() -> np.ndarray:
    import numpy as np

    return np.zeros((0, 0), np.uint32)


@dataclass
class Projection:
    coords: np.ndarray  # float32 [N, 2]
    levels: list[Level]
    method: str
    #: Seconds per phase (pca, knn, umap, clusters), for benchmarks and logs.
    timings: dict = field(default_factory=dict)
    #: uint32 [N, k]: each point's nearest other points (row ids), nearest first; NO_NEIGHBOUR pads.
    neighbours: np.ndarray = field(default_factory=_no_neighbours)
    #: How the neighbours were found and how well the map keeps them (see :func:`neighbour_recall`).
    info: dict = field(default_factory=dict)


def use_numba_cache(folder: Path) -> str:
    """Point numba's on-disk cache of compiled functions at ``folder``, unless ``NUMBA_CACHE_DIR``
    is set already (then that wins). Returns the folder in use.

    Call it before numba is imported (the build does, at its start); when numba is imported
    already, its configuration is updated too, which covers every function compiled from now on.
    """
    chosen = os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))
    if "numba" in sys.modules:
        from numba.core import config

        config.CACHE_DIR = chosen
    return chosen


def import_umap():
    """umap-learn (and pynndescent), with numba's on-disk cache on for the functions they compile.

    umap-learn decorates its functions with ``numba.njit`` without ``cache=True``, so every fresh
    process compiled them again (20-40 CPU-s). While umap is first imported, ``numba.njit`` adds
    ``cache=True``: the compiled code goes to ``NUMBA_CACHE_DIR`` (see :func:`use_numba_cache`)
    and later processes load it. It also drops explicit signatures, which made numba compile
    every listed variant of every distance function at import (15 s on a cold cache, for
    functions the map never calls); each function now compiles on its first call, for the types
    it is called with (a cold import and first projection went from 21 to 10 s). Functions umap
    creates at run time are left as they are.
    """
    if "umap" in sys.modules:
        return sys.modules["umap"]
    import numba

    original = numba.njit

    def njit_cached(*args, **kwargs):
        kwargs.setdefault("cache", True)
        if args and not callable(args[0]):  # a signature list or string: compile lazily instead
            args = args[1:]
        kwargs.pop("signature_or_function", None)
        return original(*args, **kwargs)

    numba.njit = njit_cached
    try:
        import umap
    finally:
        numba.njit = original
    return umap


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Samples of at least this many points get a third cluster level, ``finer``.
FINER_MIN = 100_000
LEVEL_NAMES = ("coarse", "fine", "finer")


def cluster_counts(n: int) -> tuple[int, ...]:
    """Cluster counts per level for n points: (coarse, fine) ~8-20 and ~40-150, fewer for tiny
    samples; from FINER_MIN points on a third, finer level of ~300-800 (0.6 per √n)."""
    import numpy as np

    root = math.sqrt(max(n, 1))
    coarse = int(np.clip(round(root / 6), 8, 20))
    fine = int(np.clip(round(root / 1.5), 40, 150))
    # Tiny samples: at least ~5 points per coarse and ~3 per fine cluster.
    coarse = max(1, min(coarse, n // 5))
    fine = max(1, min(fine, n // 3))
    if n < FINER_MIN:
        return coarse, max(fine, coarse)
    return coarse, fine, int(np.clip(round(root * 0.6), 300, 800))


def cluster_levels(coords: np.ndarray, captions: list[str], seed: int) -> list[Level]:
    """The labelled cluster levels (coarse → fine → finer, see :func:`cluster_counts`) of map
    coordinates [N, 2]: k-means per level, each cluster with its label, centre and size."""
    import numpy as np

    terms = caption_terms(captions)
    levels = []
    for name, k in zip(LEVEL_NAMES, cluster_counts(len(coords))):
        assignments = _kmeans(coords, k, seed)
        labels = label_clusters(captions, assignments, terms=terms)
        clusters = []
        for cluster, label in enumerate(labels):
            members = coords[assignments == cluster]
            if not len(members):
                continue
            centre = members.mean(axis=0)
            clusters.append({"id": cluster, "label": label, "x": round(float(centre[0]), 5),
                             "y": round(float(centre[1]), 5), "size": int(len(members))})
        levels.append(Level(name, assignments.astype(np.int32), clusters))
    return levels


def normalise_coords(coords: np.ndarray) -> np.ndarray:
    """Centre and scale to [-1, 1] along the longer side (aspect ratio kept)."""
    import numpy as np

    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    low, high = coords.min(axis=0), coords.max(axis=0)
    centre = (low + high) / 2
    half = float((high - low).max()) / 2
    out = (coords - centre) / (half if half > 0 else 1.0)
    return out.astype(np.float32)


def _pca(vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    import numpy as np

    from sklearn.decomposition import PCA

    n, d = vectors.shape
    k = min(dims, d, n)
    if k < 1:
        return np.zeros((n, 0), dtype=np.float32)
    # Embeddings have few dimensions next to their rows: the d x d covariance's eigenvectors are
    # exact, deterministic and ~15x faster here than a randomized SVD of the rows.
    if n > d and d <= 2048:
        solver = "covariance_eigh"
    else:
        solver = "randomized" if k < min(n, d) * 0.8 and n > 500 else "full"
    with warnings.catch_warnings():  # identical points: zero variance ratios, harmless here
        warnings.simplefilter("ignore", RuntimeWarning)
        return PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(vectors).astype(np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _faiss():
    """The faiss module (faiss-cpu), or None where it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def exact_knn(vectors: np.ndarray, k: int, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Each point's k nearest points by brute force (cosine or euclidean), itself first.

    Returns indices int32 [N, k] and distances float32 [N, k] (cosine: 1 - cos; euclidean: the
    distance), nearest first. FAISS's exact search where faiss-cpu is installed, else
    scikit-learn's (cosine as euclidean distance between unit vectors); both on every core.
    """
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    k = min(k, n)
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"exact neighbours support cosine and euclidean, not {metric!r}")
    points = np.ascontiguousarray(_unit_rows(vectors) if metric == "cosine" else vectors, dtype=np.float32)
    faiss = _faiss()
    if faiss is not None and n and k:
        faiss.omp_set_num_threads(_threads())
        index = (faiss.IndexFlatIP if metric == "cosine" else faiss.IndexFlatL2)(points.shape[1])
        index.add(points)
        found, indices = index.search(points, k)
        distances = 1.0 - found if metric == "cosine" else np.sqrt(np.clip(found, 0, None))
        distances[indices == np.arange(n)[:, None]] = 0  # not 1 - 1.0000001: a point is at 0 from itself
        return _self_first(indices.astype(np.int32), np.clip(distances, 0, None).astype(np.float32))
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean", n_jobs=_threads()).fit(points)
    distances, indices = search.kneighbors(points)
    if metric == "cosine":
        distances = distances.astype(np.float64) ** 2 / 2  # |a - b|^2 = 2 - 2 cos for unit vectors
    return _self_first(indices.astype(np.int32), np.clip(distances, 0, None).astype(np.float32))


def _self_first(indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Put each point first in its own row (at distance 0), keeping the others' order; where a
    duplicate point took its place, the farthest neighbour makes room."""
    import numpy as np

    n, k = indices.shape
    rows = np.arange(n)
    if k == 0 or np.array_equal(indices[:, 0], rows):
        return indices, distances
    is_self = indices == rows[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")[:, : k - 1]  # the others, in their order
    indices = np.hstack([rows[:, None].astype(indices.dtype), np.take_along_axis(indices, order, axis=1)])
    distances = np.hstack([np.zeros((n, 1), distances.dtype), np.take_along_axis(distances, order, axis=1)])
    return indices, distances


def knn_graph(vectors: np.ndarray, k: int, metric: str, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The k-nearest-neighbour graph (itself first): exact up to ``EXACT_KNN_MAX`` points
    (``SKLEARN_EXACT_MAX`` without faiss-cpu), else pynndescent with the seed on every core.
    Returns (indices int32, distances float32, how)."""
    import numpy as np

    n = len(vectors)
    k = min(k, n)
    exact_max = EXACT_KNN_MAX if _faiss() is not None else min(EXACT_KNN_MAX, SKLEARN_EXACT_MAX)
    if n <= exact_max and metric in ("cosine", "euclidean"):
        indices, distances = exact_knn(vectors, k, metric)
        return indices, distances, "exact"
    import_umap()  # imports pynndescent with numba's cache on
    import numba
    from pynndescent import NNDescent

    threads = _threads()
    numba.set_num_threads(threads)
    with warnings.catch_warnings():
        # Two of pynndescent's functions cannot go to numba's cache (they compile in each process);
        # numba says so once per process: nothing the user can act on.
        warnings.filterwarnings("ignore", message="Cannot cache compiled function")
        index = NNDescent(vectors, metric=metric, n_neighbors=k, random_state=seed, n_jobs=threads,
                          low_memory=True, compressed=False, verbose=False)
    indices, distances = _self_first(*index.neighbor_graph)
    return indices.astype(np.int32), distances.astype(np.float32), f"pynndescent ({threads} threads)"


def map_neighbours(indices: np.ndarray, k: int = MAP_NEIGHBOURS) -> np.ndarray:
    """The map's neighbours from the kNN graph: each point's k nearest *other* points, uint32
    [N, k], nearest first; ``NO_NEIGHBOUR`` where there are fewer (tiny samples, unfound)."""
    import numpy as np

    n = len(indices)
    out = np.full((n, k), NO_NEIGHBOUR, dtype=np.uint32)
    if n == 0:
        return out
    others = indices.astype(np.int64)
    others = np.where(others == np.arange(n)[:, None], -1, others)
    # Keep each row's order, moving the gaps (self, -1 padding) to the end.
    order = np.argsort(others < 0, axis=1, kind="stable")
    others = np.take_along_axis(others, order, axis=1)[:, :k]
    out[:, : others.shape[1]] = np.where(others < 0, NO_NEIGHBOUR, others).astype(np.uint32)
    return out


def neighbour_recall(coords: np.ndarray, neighbours: np.ndarray, sample: int = QUALITY_SAMPLE, seed: int = 0) -> float:
    """Map quality: the share of each point's embedding neighbours (``neighbours``, [N, k]) that
    are also among its k nearest points on the 2-D map, averaged over a fixed random subsample.

    1.0 means the map keeps every neighbourhood; a random layout scores about k / N.
    """
    import numpy as np

    n, k = neighbours.shape if neighbours.ndim == 2 else (0, 0)
    if n <= k + 1 or k == 0:
        return float("nan")
    from scipy.spatial import cKDTree

    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    _, found = cKDTree(np.asarray(coords, dtype=np.float64)).query(coords[rows], k=k + 1)
    hits, total = 0, 0
    for row, near in zip(rows, found):
        wanted = neighbours[row]
        wanted = wanted[wanted != NO_NEIGHBOUR]
        hits += len(np.intersect1d(wanted, near[near != row][:k]))
        total += len(wanted)
    return hits / total if total else float("nan")


def default_epochs(n: int) -> int:
    """UMAP optimisation epochs when ``[project] epochs`` is 0 (see benchmarks/bench_project.py)."""
    return 200 if n <= 10_000 else 150


def _umap(reduced: np.ndarray, config: ProjectConfig, knn: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, str]:
    import numpy as np

    n = len(reduced)
    rng = np.random.default_rng(config.seed)
    if n > config.fit_size:
        fit_index = np.sort(rng.choice(n, size=config.fit_size, replace=False))
    else:
        fit_index = np.arange(n)
    neighbors = max(2, min(config.n_neighbors, len(fit_index) - 1))
    epochs = config.epochs or default_epochs(len(fit_index))
    model, method = None, "umap"
    if importlib.util.find_spec("cuml") is not None:  # RAPIDS on a CUDA machine
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                from cuml.manifold import UMAP as CumlUMAP  # noqa: N811

                model = CumlUMAP(n_components=2, n_neighbors=neighbors, min_dist=config.min_dist,
                                 metric=config.metric, random_state=config.seed)
                method = "cuml-umap"
        except Exception as error:  # no device, driver mismatch...: the CPU path works everywhere
            log.info("cuML UMAP unavailable (%s); using umap-learn", error)
            model = None
    if model is None:
        umap = import_umap()
        # The graph computed once is UMAP's too, when UMAP sees every point (no subset to fit).
        precomputed = (None, None, None)
        if knn is not None and len(fit_index) == n and knn[0].shape[1] >= neighbors:
            # (umap-learn counts the point itself among its n_neighbors, as the graph does.)
            precomputed = (knn[0][:, :neighbors].copy(), knn[1][:, :neighbors].copy(), None)
        seeded = config.deterministic
        model = umap.UMAP(n_components=2, n_neighbors=neighbors, min_dist=config.min_dist, metric=config.metric,
                          random_state=config.seed if seeded else None, n_jobs=1 if seeded else _threads(),
                          low_memory=True, n_epochs=epochs, init="pca", precomputed_knn=precomputed)
        if not seeded:
            method += f" ({_threads()} threads, unseeded)"
    coords = np.zeros((n, 2), dtype=np.float32)
    with warnings.catch_warnings():
        # With a precomputed graph and no search index umap-learn warns that transform is off: we never call it then.
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
        coords[fit_index] = np.asarray(model.fit_transform(reduced[fit_index]), dtype=np.float32)
    rest = np.setdiff1d(np.arange(n), fit_index, assume_unique=True)
    if len(rest):
        # Transform in chunks so memory stays flat for millions of points.
        step = 50_000
        for start in range(0, len(rest), step):
            chunk = rest[start:start + step]
            coords[chunk] = np.asarray(model.transform(reduced[chunk]), dtype=np.float32)
        method += f" (fitted on {len(fit_index):,} of {n:,})"
    return coords, method


def _kmeans(coords: np.ndarray, k: int, seed: int) -> np.ndarray:
    import numpy as np

    from sklearn.cluster import KMeans

    n = len(coords)
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=np.int32)
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # duplicate points give fewer distinct clusters: fine
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=min(k, n), n_init=1, random_state=seed).fit_predict(coords.astype(np.float64))
    # Renumber by size (largest first), ties by first appearance, so ids are stable and meaningful.
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    remap = np.empty(ids.max() + 1, dtype=np.int32)
    remap[ids[order]] = np.arange(len(order), dtype=np.int32)
    return remap[labels]


def _analyzer():
    # Not models/tfidf's tokeniser: a label wants words of 3+ letters, pairs and more stop words.
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS
    word = re.compile(r"[^\W\d_]{3,}", re.UNICODE)

    def analyse(text: str) -> list[str]:
        words = [w for w in word.findall(text.lower()) if w not in stop]
        # A caption counts a term once: long product titles do not outweigh short captions.
        return list(dict.fromkeys(words + [f"{a} {b}" for a, b in zip(words, words[1:])]))

    return analyse


def caption_terms(captions: list[str]):
    """Which captions contain which terms (words and word pairs): (binary counts [N, V], vocabulary),
    or None when no caption has a usable word. Computed once, shared by the cluster levels."""
    import numpy as np

    from sklearn.feature_extraction.text import CountVectorizer

    texts = [c if isinstance(c, str) else "" for c in captions]
    try:
        vectorizer = CountVectorizer(analyzer=_analyzer(), min_df=2 if len(texts) >= 200 else 1, binary=True)
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no usable words at all
        return None
    return counts, np.array(vectorizer.get_feature_names_out())


def label_clusters(captions: list[str], assignments: np.ndarray, max_words: int = 3, terms=None) -> list[str]:
    """A 1-3 word label per cluster id: its most distinctive caption terms (class-based TF-IDF).

    ``terms``: :func:`caption_terms` of the captions, when already computed."""
    import numpy as np

    from scipy import sparse

    k = int(assignments.max()) + 1 if len(assignments) else 0
    if k == 0:
        return []
    terms = caption_terms(captions) if terms is None else terms
    if terms is None:
        return [""] * k
    counts, vocab = terms
    docs = counts.shape[0]
    member = sparse.csr_matrix((np.ones(docs), (assignments, np.arange(docs))), shape=(k, docs))
    per_cluster = (member @ counts).toarray().astype(np.float64)  # documents containing each term
    sizes = np.bincount(assignments, minlength=k).astype(np.float64)
    share = per_cluster / np.maximum(sizes, 1)[:, None]
    # Distinctive: frequent inside the cluster, rarer outside (c-TF-IDF style idf).
    overall = per_cluster.sum(axis=0)
    idf = np.log1p(docs / np.maximum(overall, 1))
    score = share * idf
    is_bigram = np.array([" " in term for term in vocab])
    labels = []
    for cluster in range(k):
        row = score[cluster]
        chosen: list[str] = []
        words = 0
        for index in np.argsort(-row, kind="stable")[:40]:
            if row[index] <= 0 or per_cluster[cluster, index] < min(2, sizes[cluster]):
                break
            term = vocab[index]
            term_words = term.split()
            if any(w in c.split() for c in chosen for w in term_words):
                continue  # "dress" after "wedding dress" adds nothing
            if words + len(term_words) > max_words:
                continue
            if is_bigram[index] and share[cluster, index] < 0.5 * share[cluster].max():
                continue  # a bigram must be nearly as common as the top term to earn two words
            chosen.append(term)
            words += len(term_words)
            if words >= max_words or len(chosen) >= 2:
                break
        labels.append(", ".join(chosen))
    return labels


def project(vectors: np.ndarray, captions: list[str], config: ProjectConfig, reporter=None) -> Projection:
    """Embeddings [N, D] -> coordinates [N, 2] in [-1, 1], nearest neighbours and two (three from
    FINER_MIN points) labelled cluster levels."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0:
        return Projection(np.zeros((0, 2), np.float32),
                          [Level("coarse", np.zeros(0, np.int32)), Level("fine", np.zeros(0, np.int32))], "empty",
                          neighbours=np.zeros((0, MAP_NEIGHBOURS), np.uint32))
    timings = {}
    started = time.perf_counter()
    reduced = _pca(vectors, config.pca_dims, config.seed)
    timings["pca"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    info = {"k": MAP_NEIGHBOURS, "space": f"PCA {reduced.shape[1]} dims, {config.metric} distance"}
    if reduced.shape[1] >= 1:
        indices, distances, how = knn_graph(reduced, max(config.n_neighbors, MAP_NEIGHBOURS + 1), config.metric, config.seed)
    else:  # no usable dimension: every point is as near as any other
        indices, distances, how = np.zeros((n, 0), np.int32), np.zeros((n, 0), np.float32), "none"
    neighbours = map_neighbours(indices)
    info["neighbours"] = how
    timings["knn"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    if n < MIN_UMAP_POINTS or reduced.shape[1] < 2:
        raw = np.zeros((n, 2), dtype=np.float32)
        raw[:, : min(2, reduced.shape[1])] = reduced[:, :2]
        method = "pca (too few points for UMAP)"
    else:
        raw, method = _umap(reduced, config, (indices, distances))
    coords = normalise_coords(raw)
    timings["umap"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    recall = neighbour_recall(coords, neighbours)
    info["neighbour_recall"] = None if math.isnan(recall) else round(recall, 4)
    levels = cluster_levels(coords, captions, config.seed)
    timings["clusters"] = round(time.perf_counter() - started, 2)
    log.info("projected %d points (%s): %s", n, method, timings)
    return Projection(coords, levels, method, timings, neighbours, info)


def write_projection(projection: Projection, folder: Path) -> None:
    """Write ``coords.npy``, ``clusters_<level>.npy``, ``clusters.json`` and ``neighbours.bin``."""
    import numpy as np

    folder = Path(folder)
    np.save(folder / "coords.npy", projection.coords.astype(np.float32))
    levels = []
    for level in projection.levels:
        name = f"clusters_{level.name}.npy"
        np.save(folder / name, level.assignments.astype(np.int32))
        levels.append({"name": level.name, "assignments": name, "clusters": level.clusters})
    neighbours = np.ascontiguousarray(projection.neighbours, dtype="<u4")
    (folder / NEIGHBOURS_FILE).write_bytes(neighbours.tobytes())
    meta = {"levels": levels, "method": projection.method,
            "neighbours": dict(projection.info, file=NEIGHBOURS_FILE, k=int(neighbours.shape[1]))}
    (folder / "clusters.json").write_text(json.dumps(meta, indent=1))


def read_neighbours(folder: Path) -> np.ndarray:
    """The project stage's ``neighbours.bin`` as uint32 [N, k] (row i = sample row_id i, nearest
    first, ``NO_NEIGHBOUR`` where a point has fewer than k others); N comes from ``coords.npy``."""
    import numpy as np

    folder = Path(folder)
    n = len(np.load(folder / "coords.npy", mmap_mode="r"))
    flat = np.fromfile(folder / NEIGHBOURS_FILE, dtype="<u4")
    if n == 0:
        return flat.reshape(0, MAP_NEIGHBOURS)
    if flat.size % n:
        raise ValueError(f"{folder / NEIGHBOURS_FILE} holds {flat.size} values, not a multiple of {n} points")
    return flat.reshape(n, flat.size // n).astype(np.uint32, copy=False)


def read(folder: Path | None) -> Projection | None:
    """The project stage's output in ``folder`` (coordinates, cluster levels, nearest
    neighbours where the output has them), or None."""
    import numpy as np

    if folder is None or not (Path(folder) / "coords.npy").exists():
        return None
    folder = Path(folder)
    coords = np.load(folder / "coords.npy")
    meta = json.loads((folder / "clusters.json").read_text()) if (folder / "clusters.json").exists() else {}
    levels = [Level(str(level["name"]), np.load(folder / level["assignments"]), level.get("clusters", []))
              for level in meta.get("levels", [])]
    projection = Projection(coords, levels, str(meta.get("method", "")), info=meta.get("neighbours", {}))
    if (folder / NEIGHBOURS_FILE).exists():
        projection.neighbours = read_neighbours(folder)
    return projection


def _inputs(ctx) -> dict:
    return {"project": ctx.config.project}


def _run(ctx, folder: Path) -> dict:
    from atlas.stages import embed, sample

    vectors = embed.read(ctx.output("embed")).embeddings()
    captions = sample.read(ctx.output("sample")).table(["caption"]).column("caption").to_pylist()
    if len(captions) != len(vectors):
        from atlas.core.errors import AtlasError

        raise AtlasError(f"embed output has {len(vectors)} rows but the sample has {len(captions)}",
                         hint="Clear the cache (--cache-dir) and build again.")
    projection = project(vectors, captions, ctx.config.project, ctx.reporter)
    write_projection(projection, folder)
    return {"rows": len(captions), "method": projection.method,
            "neighbour_recall": projection.info.get("neighbour_recall"),
            "clusters": {level.name: len(level.clusters) for level in projection.levels}}


STAGE = Stage(
    "project",
    "3",  # 3: a third cluster level, finer, for samples of FINER_MIN points or more
    inputs=_inputs,
    run=_run,
    after=("sample", "embed"),
    description="project the embeddings to 2-D with PCA + UMAP, find nearest neighbours and label clusters",
    artifact=True,
)
