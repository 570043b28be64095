"""Search by meaning in headless Chromium: the exact layout at 20k points, the clustered one at 1M.

Writes the map's vectors as the textmodel stage does (atlas/models/ivf.py: ``vectors.bin`` up to
100k points, ``ivf/`` above) from synthetic caption-like embeddings (tests/helpers/meaning_vectors.py:
unequal topics of subtopics, 384 dimensions, a close pair at cosine ~0.6), serves them from
127.0.0.1 with the text module on a bare page, and asks the worker for the 10 nearest points of
query vectors (``window.__atlasText.nearestVector``: the search alone; embedding the reader's
words is measured by tests/test_browser_model.py). Figures: query time from the page (median,
p95; the first query, which fetches the one-time files, apart; "warm": the last 20 asked again,
their clusters in the worker's memory), bytes fetched per query (mean,
max), the one-time files' bytes, recall@10 of the clustered answer against an exact scan of the
same int8 vectors and of the float vectors, the layout's build seconds, and the longest
main-thread task while the queries ran (PerformanceObserver "longtask"). Prints them and writes
benchmarks/results/bench_meaning_search.json.

    python benchmarks/bench_meaning_search.py [--points 1000000] [--exact-points 20000] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from _util import load_average, table, write_result  # noqa: E402
from helpers.browser import launch, serve, skip_reason  # noqa: E402
from helpers.meaning_vectors import Topics, exact_nearest  # noqa: E402

from atlas.models import ivf  # noqa: E402

#: Before the page's own scripts: every main-thread task over 50 ms, with its start.
LONGTASKS = """window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
}).observe({ type: 'longtask', buffered: true });"""

BUSY = "const t = performance.now(); while (performance.now() - t < 60);"

ASK = """async (a) => { const t0 = performance.now();
  const answer = await window.__atlasText.nearestVector(a.q, a.k);
  return { ms: performance.now() - t0, ids: answer.ids }; }"""


def write_site(site: Path, vectors: np.ndarray, exact_max: int) -> tuple[dict, float]:
    """A bare page with the text module, and the vectors' layout in model/; the entry, build seconds."""
    shutil.copytree(REPO / "themes" / "default" / "static" / "js" / "text", site / "static" / "js" / "text")
    (site / "model").mkdir(parents=True)
    started = time.perf_counter()
    entry = ivf.write_layout(site / "model", vectors, exact_max=exact_max)
    seconds = time.perf_counter() - started
    manifest = {"format": 1, "available": True, "kind": "text", "model": "synthetic", "dim": vectors.shape[1],
                "files": {}, "vectors": entry}
    (site / "model" / "text-model.json").write_text(json.dumps(manifest))
    (site / "index.html").write_text('<!doctype html><meta charset="utf-8"><title>bench</title>'
                                     '<script type="module" id="atlas-text" src="static/js/text/atlas-text.js" '
                                     'data-model="model/"></script>')
    return entry, seconds


def int8_exact(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The exact layout's answer: every int8 vector scored as the worker scores it."""
    q, scale = ivf.quantise_vectors(vectors)
    out = []
    for query in queries:
        query = query / np.linalg.norm(query)
        scores = np.empty(len(q))
        for start in range(0, len(q), 100_000):
            part = slice(start, start + 100_000)
            scores[part] = (q[part] @ query.astype(np.float32)) * scale[part]
        top = np.argpartition(-scores, k)[:k]
        out.append(top[np.lexsort((top, -scores[top]))])
    return np.asarray(out)


def run_queries(browser, site: Path, queries: np.ndarray, k: int) -> dict:
    """All queries one after another in one page, then the last 20 again (clusters in memory)."""
    sizes = {p.relative_to(site).as_posix(): p.stat().st_size for p in (site / "model").rglob("*") if p.is_file()}
    with serve(site) as base:
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url[len(base):]))
        page.add_init_script(LONGTASKS)
        page.goto(base)
        page.wait_for_function("window.__atlasText !== undefined")
        started = page.evaluate("performance.now()")
        times, fetched, answers = [], [], []
        for query in queries:
            before = len(requests)
            got = page.evaluate(ASK, {"q": query.tolist(), "k": k})
            times.append(got["ms"])
            answers.append(got["ids"])
            fetched.append(sum(sizes.get(u, 0) for u in requests[before:]))
        # the last 20 again: their clusters are in the worker's memory (64 MB of them are kept)
        before = len(requests)
        warm = [page.evaluate(ASK, {"q": query.tolist(), "k": k})["ms"] for query in queries[-20:]]
        warm_bytes = sum(sizes.get(u, 0) for u in requests[before:])
        page.wait_for_timeout(200)
        ended = page.evaluate("performance.now()")
        # the observer's own check: a 60 ms task of the page's must be seen (tasks run by the
        # test driver's evaluate calls are not reported, the page's own are)
        page.evaluate(f"() => new Promise((r) => setTimeout(() => {{ {BUSY}; r(); }}, 0))")
        page.wait_for_timeout(200)
        seen = page.evaluate("window.__longtasks")
        tasks = [d for s, d in seen if started <= s < ended]
        observer_works = any(s >= ended and d >= 60 for s, d in seen)
        page.close()
    one_time = fetched[0]
    first_files = {u for u in requests if u.endswith(("text-model.json", "index.bin", "vectors.bin"))}
    per_query = fetched[1:]
    return {
        "first_query_ms": round(times[0], 1),
        "first_query_bytes": one_time,
        "one_time_bytes": sum(sizes.get(u, 0) for u in first_files),
        "median_ms": round(statistics.median(times[1:]), 2),
        "p95_ms": round(float(np.percentile(times[1:], 95)), 2),
        "max_ms": round(max(times[1:]), 2),
        "warm_median_ms": round(statistics.median(warm), 2),
        "warm_p95_ms": round(float(np.percentile(warm, 95)), 2),
        "warm_bytes": warm_bytes,
        "bytes_per_query_mean": round(float(np.mean(per_query))),
        "bytes_per_query_max": int(max(per_query)),
        "longest_main_thread_task_ms": round(max(tasks), 1) if tasks else 0,
        "main_thread_tasks_over_50ms": len(tasks),
        "longtask_observer_checked": observer_works,
        "answers": answers,
    }


def recall(answers, truth) -> float:
    return float(np.mean([len(set(a[:10]) & set(t[:10].tolist())) / 10 for a, t in zip(answers, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--exact-points", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100,
                        help="timed queries (plus one that fetches the one-time files)")
    parser.add_argument("--name", default="bench_meaning_search")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    from playwright.sync_api import sync_playwright

    k = 10
    results: dict = {"points": args.points, "exact_points": args.exact_points, "queries": args.queries, "k": k,
                     "load_average_at_start": load_average(),
                     "targets": {"exact_20k_ms": 50, "clustered_1m_ms": 500, "bytes_per_query": 2_000_000,
                                 "main_thread_task_ms": 50}}
    data = REPO / "benchmarks" / ".data"
    with tempfile.TemporaryDirectory(dir=data if data.is_dir() else None) as scratch:
        scratch = Path(scratch)
        rows = []
        with sync_playwright() as p:
            browser = launch(p)
            for kind, n in (("exact", args.exact_points), ("clustered", args.points)):
                started = time.perf_counter()
                topics = Topics(n, seed=7)
                vectors, queries = topics.points(n), topics.queries(args.queries + 1)
                generated = time.perf_counter() - started
                entry, build_seconds = write_site(scratch / kind, vectors, ivf.EXACT_MAX if kind == "exact" else 0)
                assert entry["kind"] == kind, entry["kind"]
                print(f"{kind}: {n:,} points generated in {generated:.1f} s, layout written in {build_seconds:.1f} s",
                      flush=True)
                measured = run_queries(browser, scratch / kind, queries, k)
                answers = measured.pop("answers")
                figures = {"kind": kind, "count": n, "build_seconds": round(build_seconds, 2),
                           "layout_bytes": entry["bytes"], **measured}
                if kind == "clustered":
                    figures.update(clusters=entry["clusters"], capacity=entry["capacity"], largest=entry["largest"],
                                   kmeans=entry["kmeans"], probe_bytes=entry["probe_bytes"])
                    figures["recall_at_10_vs_int8_exact"] = round(recall(answers, int8_exact(vectors, queries, k)), 4)
                figures["recall_at_10_vs_float_exact"] = round(recall(answers, exact_nearest(vectors, queries, k)), 4)
                results[kind] = figures
                rows.append([kind, f"{n:,}", figures["median_ms"], figures["p95_ms"], figures["warm_median_ms"],
                             figures["first_query_ms"],
                             (f"{figures['bytes_per_query_mean'] / 1e3:.0f} / "
                              f"{figures['bytes_per_query_max'] / 1e3:.0f}"),
                             f"{figures['one_time_bytes'] / 1e6:.2f}", figures.get("recall_at_10_vs_int8_exact", "-"),
                             figures["recall_at_10_vs_float_exact"], figures["build_seconds"],
                             figures["longest_main_thread_task_ms"]])
                del vectors
                shutil.rmtree(scratch / kind)
            browser.close()
    print()
    print(table(["layout", "points", "median ms", "p95 ms", "warm median ms", "first ms", "kB/query mean/max",
                 "one-time MB",
                 "recall@10 vs int8 exact", "vs float exact", "build s", "longest task ms"], rows))
    print(f"load average: {load_average()}")
    print(f"wrote {write_result(args.name, results)}")


if __name__ == "__main__":
    main()
