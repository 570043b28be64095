"""Simulation: per-shard partial statistics over many small shards scale linearly, merging stays cheap.

    python benchmarks/bench_partials_scaling.py [--shards 200] [--rows-per-shard 10000]

Writes ``--shards`` small LAION-shaped shards (slices of the 1M demo rows of ``bench_stats.py``)
to ``benchmarks/.data/``, then computes the partials (``atlas.stages.stats.compute_partials``, the
203 names of ``content/artists.txt`` included) of the first 25, 50, 100 and all of them, each in
one scan, timing the scan, the merge of the partials (``merge_partials``) and the final figures
(``finish_stats``). Linear scaling shows as a constant time per shard; the merge, which touches
only aggregates, should stay a small fraction of the scan. The figures feed docs/SCALING.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import DATA, ROOT, load_average, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def small_shards(count: int, rows: int) -> list[Path]:
    import duckdb

    from bench_stats import prepare

    base = DATA / "demo-1m"  # the 1M demo rows bench_stats.py makes
    if not (base / "READY").exists():
        prepare(1_000_000, 1)
    folder = DATA / f"small-{count}x{rows}"
    if not (folder / "READY").exists():
        folder.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t AS SELECT *, row_number() OVER (ORDER BY hash, URL, TEXT) - 1 AS i "
                    f"FROM read_parquet('{base}/*.parquet')")
        for s in range(count):
            lo = (s * rows) % 1_000_000
            con.execute(f"COPY (SELECT * EXCLUDE (i) FROM t WHERE i >= {lo} AND i < {lo + rows}) "
                        f"TO '{folder}/part-{s:05d}.parquet' (FORMAT parquet)")
        (folder / "READY").write_text("ok\n")
    return sorted(folder.glob("part-*.parquet"))


def main() -> None:
    from atlas.core.config import DataConfig
    from atlas.data.policy import load_policy
    from atlas.data.rows import open_rows
    from atlas.data.sources import resolve_sources
    from atlas.stages.stats import compute_partials, finish_stats, merge_partials, read_artists

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    args = parser.parse_args()
    shards = small_shards(args.shards, args.rows_per_shard)
    names = read_artists(ROOT / "content" / "artists.txt")
    load_start = load_average()
    print(f"load average at start: {load_start}", flush=True)
    results = []
    for n in sorted({25, 50, 100, args.shards} & set(range(1, args.shards + 1))):
        rows = open_rows(resolve_sources([str(p) for p in shards[:n]], Path.cwd()), DataConfig(), policy=load_policy(DataConfig(), None))
        c0, t0 = cpu(), time.perf_counter()
        partials = compute_partials(rows, DataConfig(), names)
        scan_s, scan_cpu = time.perf_counter() - t0, cpu() - c0
        t0 = time.perf_counter()
        merged = merge_partials(list(partials.values()))
        merge_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        finish_stats(rows, DataConfig(), merged, names)
        finish_s = time.perf_counter() - t0
        size = sum(len(json.dumps(p)) for p in partials.values())
        rows.con.close()
        results.append({
            "shards": n, "rows": n * args.rows_per_shard, "scan_s": round(scan_s, 3), "scan_cpu_s": round(scan_cpu, 3),
            "scan_ms_per_shard": round(scan_s / n * 1000, 2), "merge_s": round(merge_s, 4),
            "finish_s": round(finish_s, 4), "partials_json_kb": round(size / 1024, 1),
        })
        print(f"  {n:4d} shards: scan {scan_s:6.2f}s ({scan_cpu:6.2f} CPU s), merge {merge_s * 1000:7.1f} ms, "
              f"finish {finish_s * 1000:7.1f} ms", flush=True)
    print()
    print(table(["shards", "rows", "scan s", "CPU s", "ms / shard", "merge ms", "finish ms", "partials KB"],
                [[r["shards"], f"{r['rows']:,}", r["scan_s"], r["scan_cpu_s"], r["scan_ms_per_shard"],
                  round(r["merge_s"] * 1000, 1), round(r["finish_s"] * 1000, 1), r["partials_json_kb"]] for r in results]))
    path = write_result("bench_partials_scaling", {"rows_per_shard": args.rows_per_shard, "artists": len(names),
                                                   "load_average_at_start": load_start, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
