"""The project stage: real PCA + umap-learn on embeddings of real LAION captions."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_10K, make_context, needs_shared

from atlas.config import ProjectConfig
from atlas.pipeline import run_stages
from atlas.stages import embed as embed_stage
from atlas.stages import project as project_stage
from atlas.stages import sample as sample_stage
from atlas.stages.embed import tfidf_embed
from atlas.stages.project import cluster_counts, label_clusters, project, write_projection


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
    assert not np.allclose(a.coords, b.coords)


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
    ctx = make_context(tmp_path, [str(SAMPLE_10K)], sample={"size": 400, "seed": 1}, project={"fit_size": 200})
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
    ctx = make_context(tmp_path, [str(SAMPLE_10K)], sample={"size": 400, "seed": 1},
                       project={"fit_size": 200, "min_dist": 0.3})
    assert [r.status for r in run_stages(stages, ctx)] == ["cached", "cached", "ran"]
