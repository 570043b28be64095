"""The map's vectors for search by meaning (atlas/models/ivf.py): the exact file up to the limit,
the clustered layout above it -- its files, the bound on a cluster's size, the same bytes from the
same vectors, and a probe within the byte budget that finds what an exact scan finds, read back in
Python from the files the browser reads (the browser's own answer: test_meaning_ivf_browser.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from helpers.meaning_vectors import Topics, exact_nearest

from atlas.models import ivf


@pytest.fixture(scope="module")
def topics():
    generator = Topics(6000, seed=3)
    return {"points": generator.points(6000), "queries": generator.queries(40)}


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_up_to_the_limit_the_layout_is_todays_single_exact_file(tmp_path, topics):
    vectors = topics["points"][:900]
    entry = ivf.write_layout(tmp_path, vectors, exact_max=900)
    assert entry["kind"] == "exact" and set(files(tmp_path)) == {"vectors.bin"}
    q, scale = ivf.quantise_vectors(vectors)
    # 900 * 384 bytes is 4-byte aligned: no padding
    assert (tmp_path / "vectors.bin").read_bytes() == q.tobytes() + scale.astype("<f4").tobytes()
    assert entry["count"] == 900 and entry["scales_offset"] == 900 * 384 and entry["bytes"] == 900 * 388
    (tmp_path / "odd").mkdir()
    odd = ivf.write_layout(tmp_path / "odd", np.ones((3, 5), np.float32))
    assert odd["scales_offset"] == 16 and (tmp_path / "odd" / "vectors.bin").stat().st_size == 16 + 12  # 15, padded


def test_above_the_limit_the_vectors_are_clustered_in_bounded_files(tmp_path, topics):
    vectors = topics["points"]
    entry = ivf.write_layout(tmp_path, vectors, exact_max=5000)
    json.dumps(entry)  # the manifest's entry is plain JSON
    n, dim = vectors.shape
    assert entry["kind"] == "clustered" and entry["count"] == n and entry["dim"] == dim
    assert entry["clusters"] == ivf.cluster_count(n) == round(2 * n ** 0.5) and entry["kmeans"] == "faiss"
    mean = n / entry["clusters"]
    assert entry["capacity"] <= ivf.CAPACITY * mean and entry["largest"] <= entry["capacity"]
    layout = ivf.Clustered(tmp_path, entry)
    assert int(layout.sizes.sum()) == n and int(layout.sizes.max()) == entry["largest"]
    written = files(tmp_path)
    index = written.pop("ivf/index.bin")
    assert len(index) == entry["index"]["bytes"] and hashlib.sha256(index).hexdigest() == entry["index"]["sha256"]
    assert set(written) == {f"ivf/{c}.bin" for c in range(entry["clusters"]) if layout.sizes[c]}
    seen = []
    q, scale = ivf.quantise_vectors(vectors)
    for c in range(entry["clusters"]):
        if not layout.sizes[c]:
            continue
        blob = written[f"ivf/{c}.bin"]
        assert len(blob) == ivf.cluster_bytes(int(layout.sizes[c]), dim)
        assert hashlib.sha256(blob).digest() == layout.digests[c].tobytes()  # what the browser checks
        values, scales, ids = layout.cluster(c)
        assert list(ids) == sorted(ids)
        assert np.array_equal(values, q[ids]) and np.array_equal(scales, scale[ids])
        seen.extend(ids.tolist())
    assert sorted(seen) == list(range(n))  # every point exactly once
    assert entry["bytes"] == sum(len(b) for b in written.values()) + len(index)


def test_a_crowded_region_is_shared_out_and_no_cluster_exceeds_its_capacity(tmp_path):
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(3000, 64)).astype(np.float32)
    crowd = np.ones((3000, 64), np.float32) + 0.01 * rng.normal(size=(3000, 64)).astype(np.float32)  # near duplicates
    vectors = np.vstack([spread, crowd])
    entry = ivf.write_clustered(tmp_path, vectors)
    sizes = ivf.Clustered(tmp_path, entry).sizes
    assert sizes.max() <= entry["capacity"] <= ivf.CAPACITY * len(vectors) / entry["clusters"]
    assert sizes.sum() == len(vectors)


def test_the_same_vectors_give_the_same_files(tmp_path, topics):
    one = ivf.write_layout(tmp_path / "one", topics["points"], exact_max=1000)
    two = ivf.write_layout(tmp_path / "two", topics["points"], exact_max=1000)
    assert one == two and files(tmp_path / "one") == files(tmp_path / "two")
    other = ivf.write_clustered(tmp_path / "seed", topics["points"], seed=1)
    assert other["index"]["sha256"] != one["index"]["sha256"]  # the seed is the only chance in it


@pytest.mark.parametrize("engine", ["faiss", "scikit-learn"])
def test_a_probe_reads_at_most_its_budget_and_finds_what_an_exact_scan_finds(tmp_path, topics, engine):
    vectors, queries = topics["points"], topics["queries"]
    budget = 120_000  # ~300 of 6,000 points: a twentieth, as 2 MB is a 200th of 1M points
    entry = ivf.write_clustered(tmp_path, vectors, probe_bytes=budget, engine=engine)
    assert entry["kmeans"] == engine
    layout = ivf.Clustered(tmp_path, entry)
    exact = exact_nearest(vectors, queries, 10)
    recall, probed = [], []
    for query, truth in zip(queries, exact):
        chosen = layout.probes(query, 10)
        spent = sum(ivf.cluster_bytes(int(layout.sizes[c]), entry["dim"]) for c in chosen)
        assert spent <= budget or len(chosen) == 1
        ids, scores = layout.nearest(query, 10)
        assert len(ids) == 10 and scores == sorted(scores, reverse=True)
        recall.append(len(set(ids) & set(truth.tolist())) / 10)
        probed.append(len(chosen))
    print(f"\n{engine}: recall@10 {np.mean(recall):.3f} (min {min(recall):.1f}) with {np.mean(probed):.1f} "
          f"of {entry['clusters']} clusters a query")
    assert np.mean(recall) >= 0.85


def test_a_probe_takes_more_clusters_when_its_budget_holds_fewer_than_k_points(tmp_path, topics):
    entry = ivf.write_clustered(tmp_path, topics["points"], probe_bytes=1)
    layout = ivf.Clustered(tmp_path, entry)
    chosen = layout.probes(topics["queries"][0], 200)
    assert sum(int(layout.sizes[c]) for c in chosen) >= 200 > sum(int(layout.sizes[c]) for c in chosen[:-1])
    assert len(layout.probes(topics["queries"][0], 1)) == 1


def test_the_textmodel_stage_writes_the_layout_and_says_which(tmp_path):
    from atlas.stages import textmodel

    assert textmodel.STAGE.version == "3"  # 2: the layouts; 3: CLIP's text tower
    assert textmodel.write_vectors is ivf.write_exact and textmodel.VECTORS == ivf.EXACT_FILE
