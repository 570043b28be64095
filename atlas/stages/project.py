"""The ``project`` stage: embeddings -> 2-D map coordinates and labelled clusters.

PCA to ``[project] pca_dims``, then UMAP (cuML's on a CUDA machine where it is installed, else
umap-learn), fitted on at most ``fit_size`` points drawn with the seed and applied to the rest
with ``transform``. Very small samples (too few points for UMAP's neighbour graph) are placed by
PCA alone. Coordinates are scaled to [-1, 1] along the longer side, keeping the aspect ratio.

Clusters are k-means on the map coordinates (so they look like the islands a reader sees) at two
levels, ``coarse`` and ``fine``; each is labelled with its most distinctive caption words
(class-based TF-IDF: a cluster's word counts against all clusters', English stop words skipped).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas.config import ProjectConfig
from atlas.pipeline import Stage

log = logging.getLogger(__name__)

#: Below this many points UMAP's neighbour graph is meaningless; PCA places them.
MIN_UMAP_POINTS = 20

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


@dataclass
class Projection:
    coords: np.ndarray  # float32 [N, 2]
    levels: list[Level]
    method: str
    #: Seconds per phase (pca, umap, clusters), for benchmarks and logs.
    timings: dict = field(default_factory=dict)


def cluster_counts(n: int) -> tuple[int, int]:
    """(coarse, fine) cluster counts for n points: ~8-20 and ~40-150, fewer for tiny samples."""
    root = math.sqrt(max(n, 1))
    coarse = int(np.clip(round(root / 6), 8, 20))
    fine = int(np.clip(round(root / 1.5), 40, 150))
    # Tiny samples: at least ~5 points per coarse and ~3 per fine cluster.
    coarse = max(1, min(coarse, n // 5))
    fine = max(1, min(fine, n // 3))
    return coarse, max(fine, coarse)


def normalise_coords(coords: np.ndarray) -> np.ndarray:
    """Centre and scale to [-1, 1] along the longer side (aspect ratio kept)."""
    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    low, high = coords.min(axis=0), coords.max(axis=0)
    centre = (low + high) / 2
    half = float((high - low).max()) / 2
    out = (coords - centre) / (half if half > 0 else 1.0)
    return out.astype(np.float32)


def _pca(vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n, d = vectors.shape
    k = min(dims, d, n)
    if k < 1:
        return np.zeros((n, 0), dtype=np.float32)
    solver = "randomized" if k < min(n, d) * 0.8 and n > 500 else "full"
    with warnings.catch_warnings():  # identical points: zero variance ratios, harmless here
        warnings.simplefilter("ignore", RuntimeWarning)
        return PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(vectors).astype(np.float32)


def _umap(reduced: np.ndarray, config: ProjectConfig, reporter=None) -> tuple[np.ndarray, str]:
    n = len(reduced)
    rng = np.random.default_rng(config.seed)
    if n > config.fit_size:
        fit_index = np.sort(rng.choice(n, size=config.fit_size, replace=False))
    else:
        fit_index = np.arange(n)
    neighbors = max(2, min(config.n_neighbors, len(fit_index) - 1))
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
        import umap

        model = umap.UMAP(n_components=2, n_neighbors=neighbors, min_dist=config.min_dist,
                          metric=config.metric, random_state=config.seed, n_jobs=1, low_memory=True)
    coords = np.zeros((n, 2), dtype=np.float32)
    with warnings.catch_warnings():
        # Many identical captions (common in LAION, and in the demo) split the neighbour graph;
        # umap-learn then says, once per component, that it fell back from a spectral to a
        # (seeded, so still reproducible) random start. Harmless: keep it out of the user's terminal.
        warnings.filterwarnings("ignore", message="Spectral initialisation failed", category=UserWarning)
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
    from sklearn.cluster import KMeans

    n = len(coords)
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=np.int32)
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # duplicate points give fewer distinct clusters: fine
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=min(k, n), n_init=3, random_state=seed).fit_predict(coords.astype(np.float64))
    # Renumber by size (largest first), ties by first appearance, so ids are stable and meaningful.
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    remap = np.empty(ids.max() + 1, dtype=np.int32)
    remap[ids[order]] = np.arange(len(order), dtype=np.int32)
    return remap[labels]


def _analyzer():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS
    word = re.compile(r"[^\W\d_]{3,}", re.UNICODE)

    def analyse(text: str) -> list[str]:
        words = [w for w in word.findall(text.lower()) if w not in stop]
        # A caption counts a term once: long product titles do not outweigh short captions.
        return list(dict.fromkeys(words + [f"{a} {b}" for a, b in zip(words, words[1:])]))

    return analyse


def label_clusters(captions: list[str], assignments: np.ndarray, max_words: int = 3) -> list[str]:
    """A 1-3 word label per cluster id: its most distinctive caption terms (class-based TF-IDF)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    k = int(assignments.max()) + 1 if len(assignments) else 0
    if k == 0:
        return []
    texts = [c if isinstance(c, str) else "" for c in captions]
    try:
        vectorizer = CountVectorizer(analyzer=_analyzer(), min_df=2 if len(texts) >= 200 else 1, binary=True)
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no usable words at all
        return [""] * k
    vocab = np.array(vectorizer.get_feature_names_out())
    member = sparse.csr_matrix((np.ones(len(texts)), (assignments, np.arange(len(texts)))), shape=(k, len(texts)))
    per_cluster = (member @ counts).toarray().astype(np.float64)  # documents containing each term
    sizes = np.bincount(assignments, minlength=k).astype(np.float64)
    share = per_cluster / np.maximum(sizes, 1)[:, None]
    # Distinctive: frequent inside the cluster, rarer outside (c-TF-IDF style idf).
    overall = per_cluster.sum(axis=0)
    idf = np.log1p(len(texts) / np.maximum(overall, 1))
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
    """Embeddings [N, D] -> coordinates [N, 2] in [-1, 1] and two labelled cluster levels."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0:
        return Projection(np.zeros((0, 2), np.float32),
                          [Level("coarse", np.zeros(0, np.int32)), Level("fine", np.zeros(0, np.int32))], "empty")
    timings = {}
    started = time.perf_counter()
    reduced = _pca(vectors, config.pca_dims, config.seed)
    timings["pca"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    if n < MIN_UMAP_POINTS or reduced.shape[1] < 2:
        raw = np.zeros((n, 2), dtype=np.float32)
        raw[:, : min(2, reduced.shape[1])] = reduced[:, :2]
        method = "pca (too few points for UMAP)"
    else:
        raw, method = _umap(reduced, config, reporter)
    coords = normalise_coords(raw)
    timings["umap"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    coarse_k, fine_k = cluster_counts(n)
    levels = []
    for name, k in (("coarse", coarse_k), ("fine", fine_k)):
        assignments = _kmeans(coords, k, config.seed)
        labels = label_clusters(captions, assignments)
        clusters = []
        for cluster, label in enumerate(labels):
            members = coords[assignments == cluster]
            if not len(members):
                continue
            centre = members.mean(axis=0)
            clusters.append({"id": cluster, "label": label, "x": round(float(centre[0]), 5),
                             "y": round(float(centre[1]), 5), "size": int(len(members))})
        levels.append(Level(name, assignments.astype(np.int32), clusters))
    timings["clusters"] = round(time.perf_counter() - started, 2)
    log.info("projected %d points (%s): %s", n, method, timings)
    return Projection(coords, levels, method, timings)


def write_projection(projection: Projection, folder: Path) -> None:
    folder = Path(folder)
    np.save(folder / "coords.npy", projection.coords.astype(np.float32))
    levels = []
    for level in projection.levels:
        name = f"clusters_{level.name}.npy"
        np.save(folder / name, level.assignments.astype(np.int32))
        levels.append({"name": level.name, "assignments": name, "clusters": level.clusters})
    (folder / "clusters.json").write_text(json.dumps({"levels": levels, "method": projection.method}, indent=1))


def read(folder: Path | None) -> Projection | None:
    """The project stage's output in ``folder`` (coordinates, cluster levels), or None."""
    if folder is None or not (Path(folder) / "coords.npy").exists():
        return None
    folder = Path(folder)
    coords = np.load(folder / "coords.npy")
    meta = json.loads((folder / "clusters.json").read_text()) if (folder / "clusters.json").exists() else {}
    levels = [Level(str(level["name"]), np.load(folder / level["assignments"]), level.get("clusters", []))
              for level in meta.get("levels", [])]
    return Projection(coords, levels, str(meta.get("method", "")))


def _inputs(ctx) -> dict:
    return {"project": ctx.config.project}


def _run(ctx, folder: Path) -> dict:
    from atlas.stages import embed, sample

    vectors = embed.read(ctx.output("embed")).embeddings()
    captions = sample.read(ctx.output("sample")).table(["caption"]).column("caption").to_pylist()
    if len(captions) != len(vectors):
        from atlas.errors import AtlasError

        raise AtlasError(f"embed output has {len(vectors)} rows but the sample has {len(captions)}",
                         hint="Clear the cache (--cache-dir) and build again.")
    projection = project(vectors, captions, ctx.config.project, ctx.reporter)
    write_projection(projection, folder)
    return {"rows": len(captions), "method": projection.method,
            "clusters": {level.name: len(level.clusters) for level in projection.levels}}


STAGE = Stage(
    "project",
    "1",
    inputs=_inputs,
    run=_run,
    after=("sample", "embed"),
    description="project the embeddings to 2-D with PCA + UMAP and label clusters",
    artifact=True,
)
