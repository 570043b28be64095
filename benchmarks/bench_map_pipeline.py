"""Benchmark the map back end on 100,000 captions with the offline embedder.

Steps: write shards -> sample (DuckDB) -> embed (TF-IDF + SVD) -> project (PCA + UMAP + clusters)
-> mapdata (when ``atlas.stages.mapdata`` exists). For each step: wall time, the peak resident
memory reached during the step (sampled from /proc every 20 ms) and the process's peak RSS so far
(``resource.getrusage``); ``--tracemalloc`` adds Python-heap peaks (slower).

The captions are the real 10k LAION sample (``../shared``) repeated with deterministic variation
(one word dropped, one word borrowed from another caption), or ``atlas.stages.demo`` captions when the
shared data is absent.

    python benchmarks/bench_map_pipeline.py [--rows 100000] [--name map_pipeline_100k]

Prints a table and writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "laion400m-sample-10k.parquet"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class Step:
    """Time a step and record the peak RSS reached while it ran."""

    def __init__(self, name: str, results: list, use_tracemalloc: bool):
        self.name, self.results, self.use_tracemalloc = name, results, use_tracemalloc

    def __enter__(self):
        self.peak = _rss_bytes()
        self.before = self.peak
        self.running = True

        def sample():
            while self.running:
                self.peak = max(self.peak, _rss_bytes())
                time.sleep(0.02)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        if self.use_tracemalloc:
            tracemalloc.start()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.started
        record = {"step": self.name, "seconds": round(seconds, 2)}
        if self.use_tracemalloc:
            record["python_heap_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            tracemalloc.stop()
        self.running = False
        self.thread.join()
        record["rss_before_mb"] = round(self.before / 2**20, 1)
        record["rss_peak_mb"] = round(max(self.peak, _rss_bytes()) / 2**20, 1)
        record["maxrss_so_far_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self.results.append(record)
        print(f"  {self.name:<10} {seconds:8.1f} s   peak RSS {record['rss_peak_mb']:8.1f} MB", flush=True)
        return False


def varied_captions(rows: int, seed: int = 0) -> tuple[list[str], list[str], str]:
    """``rows`` captions and URLs: the real sample with deterministic variation, or the demo."""
    if SHARED_SAMPLE.exists():
        table = pq.read_table(SHARED_SAMPLE, columns=["URL", "TEXT"])
        base = [t or "" for t in table.column("TEXT").to_pylist()]
        urls = table.column("URL").to_pylist()
        rng = np.random.default_rng(seed)
        captions, out_urls = [], []
        for copy in range(-(-rows // len(base))):
            donors = rng.integers(0, len(base), size=len(base))
            drops = rng.integers(0, 1 << 30, size=len(base))
            for i, text in enumerate(base):
                if len(captions) >= rows:
                    break
                if copy == 0:
                    captions.append(text)
                    out_urls.append(urls[i])
                    continue
                words = text.split()
                if len(words) > 1:
                    del words[drops[i] % len(words)]
                donor = base[donors[i]].split()
                if donor:
                    words.append(donor[drops[i] % len(donor)])
                captions.append(" ".join(words))
                out_urls.append(f"{urls[i]}#v{copy}")
        return captions, out_urls, f"real 10k LAION sample x{-(-rows // len(base))} with variation"
    from atlas.stages.demo import demo_table

    table = demo_table(rows, seed)
    names = table.column_names
    text_col = "TEXT" if "TEXT" in names else "caption"
    url_col = "URL" if "URL" in names else "url"
    return table.column(text_col).to_pylist(), table.column(url_col).to_pylist(), "atlas.stages.demo captions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--name", default=None, help="results file name (default map_pipeline_<rows>)")
    parser.add_argument("--fit-size", type=int, default=None, help="UMAP fit size (default: ProjectConfig's)")
    parser.add_argument("--tracemalloc", action="store_true", help="also record Python heap peaks (slower)")
    args = parser.parse_args()

    from atlas.core.config import DataConfig, EmbedConfig, ProjectConfig
    from atlas.data.policy import load_policy
    from atlas.data.rows import open_rows
    from atlas.data.sources import resolve_sources
    from atlas.stages.embed import embed_sample
    from atlas.stages.project import project, write_projection
    from atlas.stages.sample import draw_sample

    results: list[dict] = []
    name = args.name or f"map_pipeline_{args.rows // 1000}k"
    project_config = ProjectConfig() if args.fit_size is None else ProjectConfig(fit_size=args.fit_size)
    print(f"map pipeline benchmark: {args.rows:,} captions, {os.cpu_count()} CPU(s)", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        tmp = Path(tmp)
        with Step("captions", results, args.tracemalloc):
            captions, urls, origin = varied_captions(args.rows)
            shard = tmp / "part-00000.parquet"
            pq.write_table(pa.table({"URL": urls, "TEXT": captions,
                                     "punsafe": np.zeros(len(captions), dtype=np.float32)}), shard)
        with Step("sample", results, args.tracemalloc):
            rows = open_rows(resolve_sources([str(shard)], tmp), DataConfig(), policy=load_policy(DataConfig(), None))
            table = draw_sample(rows, args.rows, seed=42)
            rows.con.close()
            pq.write_table(table.replace_schema_metadata(None), tmp / "sample.parquet")
        with Step("embed", results, args.tracemalloc):
            vectors, info = embed_sample(table, EmbedConfig(method="tfidf"), seed=42)
            np.save(tmp / "embeddings.npy", vectors)
            (tmp / "info.json").write_text(json.dumps(info))
        with Step("project", results, args.tracemalloc):
            projection = project(vectors, table.column("caption").to_pylist(), project_config)
            (tmp / "project").mkdir()
            write_projection(projection, tmp / "project")
        mapdata_size = None
        try:
            from atlas.stages.mapdata import write_mapdata
        except ImportError:
            write_mapdata = None
        if write_mapdata is not None:
            with Step("mapdata", results, args.tracemalloc):
                write_mapdata(tmp / "sample.parquet", projection, info, tmp / "mapdata", source_rows=args.rows)
            mapdata_size = sum(p.stat().st_size for p in (tmp / "mapdata").rglob("*") if p.is_file())
    total = time.perf_counter() - started
    report = {
        "benchmark": "map_pipeline",
        "rows": args.rows,
        "sample_rows": int(table.num_rows),
        "captions": origin,
        "embedder": f"{info['method']} ({info['model']}, dim {info['dim']})",
        "projection": projection.method,
        "project_phases_seconds": projection.timings,
        "neighbours": projection.info,
        "clusters": {level.name: len(level.clusters) for level in projection.levels},
        "coarse_labels": [c["label"] for c in projection.levels[0].clusters],
        "mapdata_bytes": mapdata_size,
        "steps": results,
        "total_seconds": round(total, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_at_end": os.getloadavg()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"  {'total':<10} {total:8.1f} s   peak RSS {report['peak_rss_mb']:8.1f} MB")
    print(f"  {report['embedder']}; {report['projection']}; clusters {report['clusters']}")
    print(f"  project phases (s): {projection.timings}; neighbours: {projection.info}")
    print(f"  coarse labels: {report['coarse_labels']}")
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
