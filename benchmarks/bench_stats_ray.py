"""Benchmark: the statistics stage with ``[data] engine = "ray"`` against the local engine.

    python benchmarks/bench_stats_ray.py [--rows 1000000] [--shards 10] [--repeat 3]

Uses the shards of ``bench_stats.py`` (``--rows`` over ``--shards``, made there if missing) and
the artist list of ``content/artists.txt``. Each round runs, without a cache (every shard
scanned), rotating who goes first:

- ``local``: ``run_stats`` with ``engine = "local"`` (one DuckDB pass, all cores);
- ``ray``: ``engine = "ray"`` as a build runs it: a local Ray with 2 CPUs started, one task per
  shard (one DuckDB thread each), Ray shut down;
- ``ray, warm``: the same tasks on a Ray started beforehand (as on a running cluster); the
  start and shutdown of that Ray are timed on their own.

Every result is compared with the local one (stats and example captions must be identical).
Results go to ``results/bench_stats_ray_<rows in M>m.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, load_average, median, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))


class _Quiet:
    def warn(self, *args):
        pass

    def progress(self, *args, **kwargs):
        import contextlib

        return contextlib.nullcontext()


def main() -> None:
    import ray

    from atlas.core.config import DataConfig
    from atlas.data.policy import load_policy
    from atlas.data.sources import resolve_sources
    from atlas.core.raycluster import LOCAL_CPUS
    from atlas.stages.stats import run_stats
    from bench_stats import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = prepare(args.rows, args.shards)
    sources = resolve_sources([str(p) for p in sorted(folder.glob("*.parquet"))], Path.cwd())
    work = Path(tempfile.mkdtemp(prefix="bench-stats-ray-"))
    content = work / "content"
    content.mkdir()
    shutil.copy(ROOT / "content" / "artists.txt", content / "artists.txt")
    load_start = load_average()
    print(f"load average at start: {load_start}; {len(sources)} shards of {folder}", flush=True)

    def run(engine: str):
        start = time.perf_counter()
        config = DataConfig(artists="artists.txt", engine=engine)
        stats, examples, _, scanned = run_stats(sources, config, content, _Quiet(), policy=load_policy(config, content))
        return time.perf_counter() - start, (stats, examples), len(scanned)

    def warm():
        start = time.perf_counter()
        ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = time.perf_counter() - start
        try:
            result = run("ray")
        finally:
            start = time.perf_counter()
            ray.shutdown()
            stopped = time.perf_counter() - start
        starts.append(started)
        stops.append(stopped)
        return result

    contenders = {"local": lambda: run("local"), "ray": lambda: run("ray"), "ray, warm": warm}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    starts: list[float] = []
    stops: list[float] = []
    reference = None
    identical = True
    names = list(contenders)
    for i in range(args.repeat):
        for name in names[i % len(names):] + names[: i % len(names)]:
            took, result, scanned = contenders[name]()
            seconds[name].append(took)
            if name == "local" and reference is None:
                reference = result
            elif reference is not None:
                identical &= result == reference
            print(f"  round {i + 1} {name:10s} {took:7.2f}s  {scanned} shard(s) scanned", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    med = {name: median(runs) for name, runs in seconds.items()}
    load_end = load_average()
    print()
    print(table(["engine", "median s", "x local"], [[n, f"{med[n]:.2f}", f"{med[n] / med['local']:.1f}"] for n in med]))
    print(f"local Ray start {median(starts):.2f}s, shutdown {median(stops):.2f}s (medians); "
          f"results identical to the local engine: {identical}; load average at end: {load_end}")
    path = write_result(f"bench_stats_ray_{args.rows // 1_000_000}m", {
        "rows": args.rows, "shards": len(sources), "artists": "content/artists.txt", "repeat": args.repeat,
        "ray": ray.__version__, "ray_cpus": LOCAL_CPUS,
        "load_average_at_start": load_start, "load_average_at_end": load_end,
        "median_seconds": {n: round(v, 3) for n, v in med.items()},
        "runs": {n: [round(v, 3) for v in runs] for n, runs in seconds.items()},
        "ray_start_seconds": round(median(starts), 3), "ray_shutdown_seconds": round(median(stops), 3),
        "identical": identical,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
