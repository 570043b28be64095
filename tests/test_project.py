"""The project stage: real PCA + umap-learn on embeddings of real LAION captions."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.builds import make_context
from helpers.paths import SAMPLE_10K, UNSCORED_SHOWN, needs_shared

from atlas.core.config import ProjectConfig
from atlas.core.pipeline import run_stages
from atlas.stages import embed as embed_stage
from atlas.stages import project as project_stage
from atlas.stages import sample as sample_stage
from atlas.models.tfidf import tfidf_embed
from atlas.stages.project import FINER_MIN, cluster_counts, cluster_levels, label_clusters, project, write_projection


def _themed_captions(n_per_theme: int = 60) -> list[str]:
    """Captions about four clearly different things, with varied wording, deterministic."""
    rng = np.random.default_rng(0)
    themes = {
        "dress": ["wedding dress", "summer dress", "lace dress", "evening gown dress", "red dress"],
        "car": ["sports car", "vintage car engine", "electric car", "car dashboard", "racing car"],
        "kitchen": ["kitchen cabinet", "modern kitchen", "kitchen sink", "kitchen island", "kitchen tiles"],
        "guitar": ["acoustic guitar", "electric guitar strings", "bass guitar", "guitar amp", "guitar lesson"],
    }
    extras = ["for sale", "photo", "design ideas", "best price", "high quality", "online", "2019"]
    captions = []
    for phrases in themes.values():
        for _ in range(n_per_theme):
            captions.append(f"{rng.choice(phrases)} {rng.choice(extras)}")
    return captions


@pytest.fixture(scope="module")
def themed():
    captions = _themed_captions()
    return captions, tfidf_embed(captions, seed=0)


@pytest.mark.slow
def test_projection_is_deterministic_and_uses_fit_subsample(themed):
    captions, vectors = themed
    config = ProjectConfig(fit_size=100, n_neighbors=10, seed=3)  # 240 points: fit 100, transform 140
    first = project(vectors, captions, config)
    again = project(vectors, captions, config)
    assert "fitted on 100 of 240" in first.method
    assert first.coords.shape == (240, 2) and first.coords.dtype == np.float32
    assert np.array_equal(first.coords, again.coords)
    for a, b in zip(first.levels, again.levels):
        assert np.array_equal(a.assignments, b.assignments) and a.clusters == b.clusters
    # Normalised: centred, the longer side spans exactly [-1, 1].
    extent = first.coords.max(axis=0) - first.coords.min(axis=0)
    assert np.isclose(extent.max(), 2.0) and np.abs(first.coords).max() <= 1.0 + 1e-6
    # A reader sees four islands: points of a theme are nearer each other than to other themes
    # (transformed points included, not just the fitted ones).
    theme = np.repeat(np.arange(4), 60)
    distances = np.linalg.norm(first.coords[:, None] - first.coords[None], axis=2)
    same = distances[theme[:, None] == theme[None]].mean()
    other = distances[theme[:, None] != theme[None]].mean()
    assert same < other / 2, (same, other)


@pytest.mark.slow
def test_another_seed_gives_another_layout(themed):
    captions, vectors = themed
    a = project(vectors, captions, ProjectConfig(fit_size=1000, seed=1))
    b = project(vectors, captions, ProjectConfig(fit_size=1000, seed=2))
    # Both are real layouts (finite, normalised to [-1, 1]) ...
    for layout in (a.coords, b.coords):
        assert layout.shape == (240, 2) and np.isfinite(layout).all()
        assert np.isclose(np.ptp(layout, axis=0).max(), 2.0)
    # ... that a reader sees as different: points move by a visible share of the map, not by
    # float noise (the longer side spans 2, so 0.05 is 2.5% of it).
    moved = np.linalg.norm(a.coords - b.coords, axis=1)
    assert np.median(moved) > 0.05, np.median(moved)


@pytest.mark.slow
def test_cluster_labels_are_words_from_their_captions(themed, tmp_path):
    captions, vectors = themed
    projection = project(vectors, captions, ProjectConfig(fit_size=1000, seed=0))
    coarse = projection.levels[0]
    labels = " ".join(c["label"] for c in coarse.clusters)
    for cluster in coarse.clusters:
        words = [w for w in re.split(r"[ ,]+", cluster["label"]) if w]
        assert 1 <= len(words) <= 3, cluster
        member_text = " ".join(c for c, a in zip(captions, coarse.assignments) if a == cluster["id"]).lower()
        assert all(w in member_text.split() for w in words), (cluster, words)
        assert not {"for", "the", "photo"} & set(words)  # stop words are skipped
    for theme in ("dress", "car", "kitchen", "guitar"):
        assert theme in labels, labels
    # The written files follow the contract in ARCHITECTURE.md.
    write_projection(projection, tmp_path)
    meta = json.loads((tmp_path / "clusters.json").read_text())
    assert [level["name"] for level in meta["levels"]] == ["coarse", "fine"]
    for level in meta["levels"]:
        assignments = np.load(tmp_path / level["assignments"])
        assert assignments.dtype == np.int32 and assignments.shape == (240,)
        assert sum(c["size"] for c in level["clusters"]) == 240
        assert sorted(c["id"] for c in level["clusters"]) == sorted(set(assignments.tolist()))
        for c in level["clusters"]:
            members = projection.coords[assignments == c["id"]]
            assert np.allclose([c["x"], c["y"]], members.mean(axis=0), atol=1e-4)
    assert np.load(tmp_path / "coords.npy").shape == (240, 2)


def test_cluster_counts_follow_the_sample_size():
    assert cluster_counts(20_000) == (20, 94)
    coarse, fine = cluster_counts(1_000)
    assert 8 <= coarse <= 20 and 40 <= fine <= 150
    assert cluster_counts(1_000_000)[1] == 150
    assert cluster_counts(5) == (1, 1)


def test_a_third_finer_level_from_100k_points():
    """From FINER_MIN points on: coarse → fine → finer, each finer cluster mostly inside one
    fine cluster, labelled with words of its own captions; one point fewer keeps two levels."""
    assert len(cluster_counts(FINER_MIN - 1)) == 2
    coarse, fine, finer = cluster_counts(FINER_MIN)
    assert coarse < fine < finer and cluster_counts(1_000_000)[2] > finer
    rng = np.random.default_rng(3)
    topics = [f"topic{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    centres = rng.uniform(-1, 1, (len(topics), 2))
    which = rng.integers(0, len(topics), FINER_MIN)
    coords = (centres[which] + rng.normal(0, 0.04, (FINER_MIN, 2))).astype(np.float32)
    captions = [f"{topics[t]} photo {rng.integers(0, 50)}" for t in which]
    levels = cluster_levels(coords, captions, seed=0)
    assert [level.name for level in levels] == ["coarse", "fine", "finer"]
    assert [len(level.clusters) for level in levels] == [coarse, fine, finer]
    finest = levels[2]
    assert sum(c["size"] for c in finest.clusters) == FINER_MIN and finest.assignments.min() >= 0
    # Nesting: most points of a finer cluster share one fine cluster (k-means per level, no forced
    # tree: about 3 in 4 here).
    pairs = finest.assignments.astype(np.int64) * 1000 + levels[1].assignments
    major = sum(np.bincount(pairs[finest.assignments == c] % 1000).max() for c in range(finer))
    assert major / FINER_MIN > 0.6
    # A finer label names its points' topic.
    for c in finest.clusters[:20]:
        members = np.flatnonzero(finest.assignments == c["id"])
        top = topics[np.bincount(which[members]).argmax()]
        assert top in c["label"]


def test_tiny_samples_do_not_crash():
    for n in (1, 2, 5, 19):
        captions = [f"small caption number {i} about cats" for i in range(n)]
        projection = project(tfidf_embed(captions), captions, ProjectConfig())
        assert projection.coords.shape == (n, 2) and np.isfinite(projection.coords).all()
        assert all(len(level.assignments) == n for level in projection.levels)
    empty = project(np.zeros((0, 8), np.float32), [], ProjectConfig())
    assert empty.coords.shape == (0, 2)


def test_labels_skip_words_shared_by_every_cluster():
    captions = ["stock red dress"] * 5 + ["stock old car"] * 5
    labels = label_clusters(captions, np.array([0] * 5 + [1] * 5))
    assert labels[0].startswith(("red", "dress")) and "car" in labels[1]


@pytest.mark.slow
@needs_shared
def test_sample_embed_project_stages_end_to_end(tmp_path):
    ctx = make_context(tmp_path, [str(SAMPLE_10K)], data=UNSCORED_SHOWN, sample={"size": 400, "seed": 1}, project={"fit_size": 200})
    stages = [sample_stage.STAGE, embed_stage.STAGE, project_stage.STAGE]
    results = run_stages(stages, ctx)
    assert [r.status for r in results] == ["ran", "ran", "ran"]
    info = json.loads((ctx.output("embed") / "info.json").read_text())
    assert info["method"] in ("text", "tfidf") and info["notice"]  # no CLIP: the caption model, else TF-IDF
    coords = np.load(ctx.output("project") / "coords.npy")
    sample = pq.read_table(ctx.output("sample") / "sample.parquet")
    assert coords.shape == (sample.num_rows, 2) == (400, 2)
    assert results[2].summary["clusters"]["coarse"] >= 8
    # Changing only the projection re-runs only the projection.
    ctx = make_context(tmp_path, [str(SAMPLE_10K)], data=UNSCORED_SHOWN, sample={"size": 400, "seed": 1},
                       project={"fit_size": 200, "min_dist": 0.3})
    assert [r.status for r in run_stages(stages, ctx)] == ["cached", "cached", "ran"]


# ----------------------------------------------------------------------------- neighbours, determinism, quality


def _brute_force(points: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other points by cosine distance, by a full sort (the reference)."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1, kind="stable")[:, :k]


def test_exact_neighbours_match_brute_force():
    points = np.random.default_rng(5).normal(size=(700, 12)).astype(np.float32)
    indices, distances, how = project_stage.knn_graph(points, 11, "cosine", seed=0)
    assert how == "exact" and indices.dtype == np.int32 and indices.shape == (700, 11)
    assert np.array_equal(indices[:, 0], np.arange(700)) and np.all(distances[:, 0] == 0)
    assert np.array_equal(project_stage.map_neighbours(indices), _brute_force(points, 10))
    assert np.all(np.diff(distances, axis=1) >= -1e-6)  # nearest first
    # Euclidean too, against the same full sort.
    eu, _ = project_stage.exact_knn(points, 6, "euclidean")
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(eu[:, 1:], np.argsort(d, axis=1, kind="stable")[:, :5])


@pytest.mark.slow
def test_approximate_neighbours_find_nearly_all_true_ones(monkeypatch):
    points = np.random.default_rng(6).normal(size=(3000, 16)).astype(np.float32)
    monkeypatch.setattr(project_stage, "EXACT_KNN_MAX", 100)  # force pynndescent
    indices, _, how = project_stage.knn_graph(points, 11, "cosine", seed=0)
    assert how.startswith("pynndescent")
    found = project_stage.map_neighbours(indices)
    truth = _brute_force(points, 10)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, truth)])
    assert recall > 0.9, recall  # 16 random dimensions: a hard case for NN-descent (real embeddings do better)
    assert not np.any(found == np.arange(3000)[:, None])  # never a point's own neighbour
    # Seeded and multi-threaded, yet the same graph every time.
    again, _, _ = project_stage.knn_graph(points, 11, "cosine", seed=0)
    assert np.array_equal(indices, again)


@pytest.mark.slow
def test_neighbours_are_written_and_read_back(themed, tmp_path):
    captions, vectors = themed
    projection = project(vectors, captions, ProjectConfig(seed=0))
    write_projection(projection, tmp_path)
    neighbours = project_stage.read_neighbours(tmp_path)
    assert neighbours.dtype == np.uint32 and neighbours.shape == (240, project_stage.MAP_NEIGHBOURS)
    assert (tmp_path / "neighbours.bin").stat().st_size == 240 * 10 * 4
    # The captions repeat (ties): compare distances, nearest first, with a full sort's.
    reduced = project_stage._pca(vectors, ProjectConfig().pca_dims, 0)
    unit = reduced / np.linalg.norm(reduced, axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    np.fill_diagonal(distance, np.inf)
    found = np.take_along_axis(distance, neighbours.astype(np.int64), axis=1)
    assert np.allclose(found, np.sort(distance, axis=1)[:, :10], atol=1e-5)
    assert not np.any(neighbours == np.arange(240)[:, None])
    meta = json.loads((tmp_path / "clusters.json").read_text())["neighbours"]
    assert meta["k"] == 10 and meta["neighbours"] == "exact" and 0 < meta["neighbour_recall"] <= 1
    # Neighbours in embedding space share their theme (the reader walks within an island).
    theme = np.repeat(np.arange(4), 60)
    assert np.mean(theme[neighbours.astype(np.int64)] == theme[:, None]) > 0.95


def test_tiny_samples_pad_missing_neighbours(tmp_path):
    captions = [f"caption {i} about red cats" for i in range(4)]
    projection = project(tfidf_embed(captions), captions, ProjectConfig())
    write_projection(projection, tmp_path)
    neighbours = project_stage.read_neighbours(tmp_path)
    assert neighbours.shape == (4, 10)
    assert np.all(neighbours[:, 3:] == project_stage.NO_NEIGHBOUR)
    assert [sorted(row[:3].tolist()) for row in neighbours] == [sorted(set(range(4)) - {i}) for i in range(4)]
    empty = project(np.zeros((0, 8), np.float32), [], ProjectConfig())
    write_projection(empty, tmp_path)
    assert project_stage.read_neighbours(tmp_path).shape == (0, 10)


CHILD = """
import hashlib, sys
import numpy as np
from atlas.core.config import ProjectConfig
from atlas.stages import project as stage
from atlas.models.tfidf import tfidf_embed
stage.EXACT_KNN_MAX = int(sys.argv[1])  # 0: the approximate, multi-threaded neighbour graph
rng = np.random.default_rng(0)
words = "red blue green dress car kitchen guitar lamp chair cat dog tree house boat".split()
captions = [" ".join(rng.choice(words, size=4)) + f" {i % 97}" for i in range(int(sys.argv[2]))]
p = stage.project(tfidf_embed(captions, seed=0), captions, ProjectConfig(seed=7))
print(hashlib.sha256(p.coords.tobytes() + p.neighbours.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_same_seed_same_map_in_fresh_processes():
    """Equal seeds give equal maps and neighbours across processes (numba's cache loaded or not)."""
    exact_max, points = 20_000, 300
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    runs = [subprocess.run([sys.executable, "-c", CHILD, str(exact_max), str(points)], env=env, check=True,
                           capture_output=True, text=True).stdout.strip() for _ in range(2)]
    assert len(runs[0]) == 64 and runs[0] == runs[1]


def test_numba_cache_folder_is_set_unless_the_user_chose_one(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert project_stage.use_numba_cache(tmp_path / "numba") == str(tmp_path / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    assert project_stage.use_numba_cache(tmp_path / "numba") == "/somewhere/else"


@pytest.mark.parametrize("section", [{"epochs": -1}, {"epochs": "many"}, {"deterministic": "perhaps"},
                                     {"fit_size": 10}, {"epoch": 100}])
def test_bad_project_settings_are_refused(section):
    from atlas.core.config import parse_config
    from atlas.core.errors import AtlasError

    with pytest.raises(AtlasError):
        parse_config({"project": section})


@pytest.mark.slow
@needs_shared
def test_map_of_the_real_sample_keeps_neighbourhoods():
    """On the 10k real captions (offline TF-IDF embedder) the default map keeps neighbourhoods:
    trustworthiness and neighbour recall well above a shuffled map's."""
    from sklearn.manifold import trustworthiness

    captions = pq.read_table(SAMPLE_10K, columns=["TEXT"]).column("TEXT").to_pylist()
    captions = [c or "" for c in captions]
    vectors = tfidf_embed(captions, seed=0)
    projection = project(vectors, captions, ProjectConfig())
    sub = np.sort(np.random.default_rng(0).choice(len(vectors), size=2000, replace=False))
    trust = trustworthiness(vectors[sub], projection.coords[sub], n_neighbors=10, metric="cosine")
    shuffled = projection.coords[np.random.default_rng(1).permutation(len(vectors))]
    recall = project_stage.neighbour_recall(projection.coords, projection.neighbours)
    assert projection.info["neighbour_recall"] == round(recall, 4)
    assert trust > 0.85, trust
    assert recall > 0.25, recall
    assert project_stage.neighbour_recall(shuffled, projection.neighbours) < 0.01
    assert trustworthiness(vectors[sub], shuffled[sub], n_neighbors=10, metric="cosine") < 0.6
