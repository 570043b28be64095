"""Search by meaning from a clustered layout in headless Chromium: the text worker
(static/js/text/text-worker.js) reads the index once, probes the nearest clusters within the
manifest's byte budget, and gives the answer Python gives from the same files
(atlas.models.ivf.Clustered) -- which is also, nearly always, the exact nearest. The vectors are
synthetic (tests/helpers/meaning_vectors.py) and asked for through ``__atlasText.nearestVector``, so no
model is built; the exact layout answers through the same call."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.browser import serve, skip_reason
from helpers.meaning_vectors import Topics, exact_nearest

from atlas.models import ivf

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

POINTS, BUDGET = 4000, 100_000  # ~250 points a query: a sixteenth of the map


def write_site(site: Path, vectors: np.ndarray, exact_max: int) -> dict:
    """A page with the text module and a model folder holding only the vectors' layout."""
    shutil.copytree(REPO / "themes" / "default" / "static" / "js" / "text", site / "static" / "js" / "text")
    (site / "model").mkdir(parents=True)
    entry = ivf.write_layout(site / "model", vectors, exact_max=exact_max, probe_bytes=BUDGET)
    # No model file: nearestVector never loads one (a text search would say the model is missing).
    manifest = {"format": 1, "available": True, "kind": "text", "model": "synthetic", "dim": vectors.shape[1],
                "files": {"model": {"file": "model.onnx", "bytes": 1, "sha256": ""}}, "vectors": entry}
    (site / "model" / "text-model.json").write_text(json.dumps(manifest))
    (site / "index.html").write_text('<!doctype html><meta charset="utf-8"><title>t</title>'
                                     '<script type="module" id="atlas-text" src="static/js/text/atlas-text.js" '
                                     'data-model="model/"></script>')
    return entry


@pytest.fixture(scope="module")
def topics():
    generator = Topics(POINTS, seed=5)
    return {"points": generator.points(POINTS), "queries": generator.queries(20)}


def open_page(chromium, base):
    page = chromium.new_page()
    page.errors, page.requests = [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(base)
    page.wait_for_function("window.__atlasText !== undefined")
    return page


ASK = "(a) => Promise.all(a.qs.map((q) => window.__atlasText.nearestVector(q, a.k)))"


def test_the_worker_answers_from_a_clustered_layout_as_python_does_and_finds_the_exact_nearest(chromium, tmp_path,
                                                                                              topics):
    vectors, queries = topics["points"], topics["queries"]
    entry = write_site(tmp_path, vectors, exact_max=POINTS - 1)
    assert entry["kind"] == "clustered"
    layout = ivf.Clustered(tmp_path / "model", entry)
    with serve(tmp_path) as base:
        page = open_page(chromium, base)
        assert not [u for u in page.requests if "/model/" in u]  # nothing before the first question
        answers, fetched = [], []
        for query in queries:  # one at a time, to count what each one fetched
            before = len(page.requests)
            answers.append(page.evaluate("(a) => window.__atlasText.nearestVector(a.q, 10)", {"q": query.tolist()}))
            clusters = [u for u in page.requests[before:] if "/model/ivf/" in u and not u.endswith("index.bin")]
            fetched.append(sum(ivf.cluster_bytes(int(layout.sizes[int(u.rsplit("/", 1)[1][:-4])]), entry["dim"])
                               for u in clusters))
        exact = exact_nearest(vectors, queries, 10)
        recall = []
        for query, answer, truth in zip(queries, answers, exact):
            ids, scores = layout.nearest(query / np.linalg.norm(query), 10)
            assert answer["ids"] == ids  # the same probe, the same scan, the same ties
            assert np.allclose(answer["scores"], scores, atol=2e-6)
            recall.append(len(set(answer["ids"]) & set(truth.tolist())) / 10)
        print(f"\nChromium, clustered ({entry['clusters']} clusters, {POINTS} points): recall@10 against the exact "
              f"nearest {np.mean(recall):.3f}, {np.mean(fetched) / 1e3:.0f} kB fetched a query "
              f"(max {max(fetched) / 1e3:.0f})")
        assert np.mean(recall) >= 0.85
        assert max(fetched) <= BUDGET
        assert sum(u.endswith("/model/ivf/index.bin") for u in page.requests) == 1
        assert not [u for u in page.requests if u.endswith(("vectors.bin", "model.onnx"))]
        # asked again, the clusters are in the worker's memory: nothing more is fetched
        before = len(page.requests)
        again = page.evaluate(ASK, {"qs": [q.tolist() for q in queries[:5]], "k": 10})
        assert again == answers[:5] and len(page.requests) == before
        # k larger than the budget's points: the probe takes clusters until it has them
        many = page.evaluate("(q) => window.__atlasText.nearestVector(q, 600)", queries[0].tolist())
        assert len(many["ids"]) == 600 == len(set(many["ids"])) and many["ids"] == layout.nearest(queries[0], 600)[0]
        error = page.evaluate("window.__atlasText.nearestVector([1, 2, 3], 5).then(() => null, (e) => e.code)")
        assert error == "vector" and not page.errors
        page.close()


def test_the_exact_layout_answers_through_the_same_call(chromium, tmp_path, topics):
    vectors, queries = topics["points"][:1000], topics["queries"][:5]
    entry = write_site(tmp_path, vectors, exact_max=1000)
    assert entry["kind"] == "exact"
    q, scale = ivf.quantise_vectors(vectors)
    with serve(tmp_path) as base:
        page = open_page(chromium, base)
        answers = page.evaluate(ASK, {"qs": [x.tolist() for x in queries], "k": 10})
        for query, answer in zip(queries, answers):
            scores = (q.astype(np.float64) @ (query / np.linalg.norm(query))) * scale
            assert answer["ids"] == np.lexsort((np.arange(len(scores)), -scores))[:10].tolist()
        assert sum(u.endswith("/model/vectors.bin") for u in page.requests) == 1 and not page.errors
        page.close()


def test_a_damaged_cluster_file_is_a_clear_error_and_the_next_query_still_answers(chromium, tmp_path, topics):
    vectors, queries = topics["points"], topics["queries"]
    entry = write_site(tmp_path, vectors, exact_max=POINTS - 1)
    layout = ivf.Clustered(tmp_path / "model", entry)
    first = layout.probes(queries[0], 10)[0]
    damaged = tmp_path / "model" / "ivf" / f"{first}.bin"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")  # same size, one byte changed
    with serve(tmp_path) as base:
        page = open_page(chromium, base)
        error = page.evaluate("(q) => window.__atlasText.nearestVector(q, 10)"
                              ".then(() => null, (e) => ({code: e.code, message: e.message}))", queries[0].tolist())
        assert error["code"] == "damaged" and "map's vectors" in error["message"]
        other = next(q for q in queries if first not in layout.probes(q, 10))
        answer = page.evaluate("(q) => window.__atlasText.nearestVector(q, 10)", other.tolist())
        assert answer["ids"] == layout.nearest(other, 10)[0]
        assert not page.errors
        page.close()
