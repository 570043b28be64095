"""Benchmark: the statistics stage with per-shard partials: cold, one shard added, one removed.

    python benchmarks/bench_stats_incremental.py [--rows 10000000] [--shards 10] [--repeat 3]

Uses the shards of ``bench_stats.py`` (``--rows`` over ``--shards``, made there if missing) plus
one more shard (a copy of the first with its URLs and captions changed, so it is new data). Each
round, in a fresh cache: ``run_stats`` over the ``--shards`` shards (cold: every shard scanned),
then over those plus the new one (only the new one scanned), then without the first (nothing
scanned: the cached partials are merged again), and each result is compared with a cold run
without a cache over the same shards (the stats and the example captions must be identical).
Target: adding one shard to ten at least 5x faster than the cold stage.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import DATA, ROOT, load_average, median, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))

TARGET_SPEEDUP = 5.0


class _Quiet:
    def warn(self, *args):
        pass

    def progress(self, *args, **kwargs):
        import contextlib

        return contextlib.nullcontext()


def extra_shard(folder: Path) -> Path:
    """A new shard: the first one with other URLs and captions (cached in benchmarks/.data)."""
    import duckdb

    path = DATA / f"{folder.name}-extra.parquet"
    if not path.exists():
        first = sorted(folder.glob("*.parquet"))[0]
        duckdb.execute(
            f"COPY (SELECT * REPLACE (replace(URL, '/images/', '/images/extra/') AS URL, TEXT || ' (new)' AS TEXT) "
            f"FROM read_parquet('{first}')) TO '{path}' (FORMAT parquet, COMPRESSION snappy)"
        )
    return path


def main() -> None:
    from atlas.core.cache import Cache
    from atlas.core.config import DataConfig
    from atlas.data.policy import load_policy
    from atlas.data.sources import resolve_sources
    from atlas.stages.stats import run_stats
    from bench_stats import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = prepare(args.rows, args.shards)
    shards = sorted(folder.glob("*.parquet"))
    extra = extra_shard(folder)
    work = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    content = work / "content"
    content.mkdir()
    shutil.copy(ROOT / "content" / "artists.txt", content / "artists.txt")
    config = DataConfig(artists="artists.txt")
    load_start = load_average()
    print(f"load average at start: {load_start}; {len(shards)} shards of {folder} + 1 new", flush=True)

    def run(paths, cache):
        sources = resolve_sources([str(p) for p in paths], Path.cwd())
        start = time.perf_counter()
        stats, examples, _, scanned = run_stats(sources, config, content, _Quiet(), cache=cache,
                                                policy=load_policy(config, content))
        return time.perf_counter() - start, (stats, examples), len(scanned)

    steps = {"cold": [], "add one": [], "remove one": []}
    identical = True
    for i in range(args.repeat):
        cache = Cache(work / f"cache-{i}")
        for step, paths in (("cold", shards), ("add one", shards + [extra]), ("remove one", shards[1:] + [extra])):
            seconds, result, scanned = run(paths, cache)
            steps[step].append({"seconds": seconds, "scanned": scanned})
            print(f"  round {i + 1} {step:10s} {seconds:7.2f}s  {scanned} shard(s) scanned", flush=True)
            if i == 0:  # the same shards without a cache: one scan of everything
                _, full, _ = run(paths, None)
                identical &= result == full
                print(f"  round {i + 1} {step:10s} identical to a cold run without cache: {result == full}", flush=True)
        shutil.rmtree(work / f"cache-{i}", ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    import pyarrow.parquet as pq

    extra_rows = pq.ParquetFile(extra).metadata.num_rows
    med = {step: median([r["seconds"] for r in runs]) for step, runs in steps.items()}
    speedup = med["cold"] / med["add one"]
    print()
    print(table(["step", "median s", "shards scanned", "x faster than cold"],
                [[s, f"{med[s]:.2f}", steps[s][0]["scanned"], f"{med['cold'] / med[s]:.1f}"] for s in steps]))
    print(f"adding one shard to {len(shards)}: {speedup:.1f}x faster than cold (target >= {TARGET_SPEEDUP:.0f}x: "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}); results identical to a full recomputation: {identical}")
    path = write_result("bench_stats_incremental", {
        "rows": args.rows, "shards": len(shards), "extra_shard_rows": extra_rows,
        "artists": "content/artists.txt", "repeat": args.repeat, "load_average_at_start": load_start,
        "steps": {s: {"median_seconds": round(med[s], 3), "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs]}
                  for s, runs in steps.items()},
        "speedup_add_one": round(speedup, 2), "identical": identical,
        "target": {"speedup_min": TARGET_SPEEDUP, "met": speedup >= TARGET_SPEEDUP},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
