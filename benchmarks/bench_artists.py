"""Benchmark: counting artist mentions, 5,000 names over 1 million captions, against SQLite FTS5.

    python benchmarks/bench_artists.py [--names 5000] [--captions 1000000] [--repeat 3]

Side by side in the same run:

- **atlas**: ``atlas.stages.stats.count_artists`` (one DuckDB pass: folded caption words
  hash-joined with each name's longest word, then the whole name checked), run in a
  fresh Python process (``open_rows`` on the caption shard + the count), timed end to end and
  with its peak RSS;
- **FTS5**: the way the Datasette explorer of LAION-Aesthetics counted them: an SQLite FTS5
  table of the captions (``CREATE VIRTUAL TABLE c USING fts5(text, tokenize = 'unicode61
  remove_diacritics 2')``) and one phrase query per name (``SELECT count(*) FROM c WHERE c MATCH '"name"'``).
  The index build (insert + ``optimize``) is timed separately from the queries: their tool had
  the index prebuilt, but it had to be built once: the target compares our total with both.

Names: the first ``--names`` of ``/work/shared/data/artists.txt`` (5,265 names, one a line).
Captions: the 10,000 real captions of ``/work/shared/data/laion400m-sample-10k.parquet``
replicated to ``--captions`` rows; replica r is cased as is / lower / upper (r mod 3) and ends
with the first word of another caption, so the replicas are not byte-identical. Cached in
``benchmarks/.data/``.

Agreement: every name's count from both sides is compared; differences are classified
(both fold case and diacritics, so ``"Dürer"`` also matches ``Durer``).
Target: atlas at least 5x faster than FTS5's index build + queries. Both sides are timed from the
moment their libraries are imported (atlas: opening the shard and counting; FTS5: reading the
captions, building the index, querying); the child's imports and process wall are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import DATA, ROOT, load_average, median, python_child, run_child, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SHARED = Path(os.environ.get("ATLAS_SHARED", "/work/shared")) / "data"
ARTISTS = SHARED / "artists.txt"
SAMPLE = SHARED / "laion400m-sample-10k.parquet"
TARGET_SPEEDUP = 5.0  # against FTS5's index build + queries

#: Runs atlas's count_artists in a fresh process; prints timings and counts as JSON.
ATLAS_CHILD = r"""
import json, sys, time
launched = time.perf_counter()
from atlas.core.config import DataConfig
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.data.sources import resolve_sources
from atlas.stages.stats import count_artists
from pathlib import Path
import ahocorasick_rs, duckdb, numpy, pyarrow  # what count_artists imports when called
start = time.perf_counter()  # like the FTS5 side, timed once its libraries are imported
shard, names_file = sys.argv[1], sys.argv[2]
names = json.loads(Path(names_file).read_text())
rows = open_rows(resolve_sources([shard], Path.cwd()), DataConfig(), policy=load_policy(DataConfig(), None))
opened = time.perf_counter()
per_shard = count_artists(rows, names)
done = time.perf_counter()
counts = {n: sum(c.get(n, 0) for c in per_shard.values()) for n in names}
print(json.dumps({"import_s": start - launched, "open_s": opened - start, "count_s": done - opened,
                  "total_s": done - start, "counts": counts}))
"""


def load_names(n: int) -> list[str]:
    """The first n names of the shared list (blank lines and # comments skipped, no duplicates)."""
    from atlas.stages.stats import read_artists

    names = read_artists(ARTISTS)
    if len(names) < n:
        raise SystemExit(f"{ARTISTS} has only {len(names)} names")
    return names[:n]


def prepare(captions: int) -> Path:
    """One parquet shard with ``captions`` rows (column TEXT) made from the 10k real captions."""
    import duckdb

    path = DATA / f"captions-{captions}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"writing {captions:,} captions to {path} ...", flush=True)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE base AS SELECT row_number() OVER () - 1 AS i, TEXT AS t FROM read_parquet('{SAMPLE}')")
    n = con.execute("SELECT count(*) FROM base").fetchone()[0]
    replicas = -(-captions // n)
    tmp = path.with_suffix(".tmp")
    con.execute(
        f"""
        COPY (
            SELECT CASE
                WHEN r = 0 THEN a.t
                ELSE (CASE r % 3 WHEN 0 THEN a.t WHEN 1 THEN lower(a.t) ELSE upper(a.t) END)
                     || ' ' || coalesce(split_part(b.t, ' ', 1), '')
                END AS TEXT
            FROM base a, range({replicas}) AS rr(r)
            JOIN base b ON b.i = (a.i * 7919 + r) % {n}
            ORDER BY r, a.i
            LIMIT {captions}
        ) TO '{tmp}' (FORMAT parquet)
        """
    )
    os.replace(tmp, path)
    return path


def fts_phrase(name: str) -> str:
    """An FTS5 phrase for the name: double quotes inside the phrase are doubled."""
    return '"' + name.replace('"', '""') + '"'


def run_fts(shard: Path, names: list[str], folder: Path) -> dict:
    """Build the FTS5 table from the shard's captions, then one phrase query per name."""
    import pyarrow.parquet as pq

    db = folder / "captions.db"
    start = time.perf_counter()
    texts = pq.read_table(shard, columns=["TEXT"]).column("TEXT").to_pylist()
    con = sqlite3.connect(db)
    con.execute("CREATE VIRTUAL TABLE c USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')")
    with con:
        con.executemany("INSERT INTO c(text) VALUES (?)", ((t,) for t in texts if t is not None))
    insert_s = time.perf_counter() - start
    with con:
        con.execute("INSERT INTO c(c) VALUES ('optimize')")
    build_s = time.perf_counter() - start
    del texts
    counts: dict[str, int] = {}
    errors: dict[str, str] = {}
    start = time.perf_counter()
    for name in names:
        try:
            counts[name] = con.execute("SELECT count(*) FROM c WHERE c MATCH ?", (fts_phrase(name),)).fetchone()[0]
        except sqlite3.OperationalError as error:  # a name FTS5 cannot parse as a phrase
            counts[name] = 0
            errors[name] = str(error)
    query_s = time.perf_counter() - start
    con.close()
    return {
        "insert_s": insert_s,
        "build_s": build_s,
        "query_s": query_s,
        "db_mb": db.stat().st_size / 1e6,
        "counts": counts,
        "errors": errors,
    }


def _strip_marks(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def compare(names: list[str], ours: dict[str, int], fts: dict[str, int], errors: dict[str, str]) -> dict:
    same = [n for n in names if ours.get(n, 0) == fts.get(n, 0)]
    differ = [n for n in names if n not in set(same)]
    reasons: dict[str, list[str]] = {}
    for name in differ:
        if name in errors:
            why = "FTS5 cannot parse the name as a phrase"
        elif _strip_marks(name) != name or fts[name] > ours.get(name, 0):
            why = "FTS5 unicode61 removes diacritics / folds characters (matches more spellings)"
        else:
            why = "other"
        reasons.setdefault(why, []).append(name)
    return {
        "names_compared": len(names),
        "names_same": len(same),
        "names_different": len(differ),
        "names_mentioned_atlas": sum(1 for n in names if ours.get(n, 0)),
        "names_mentioned_fts": sum(1 for n in names if fts.get(n, 0)),
        "total_mentions_atlas": sum(ours.values()),
        "total_mentions_fts": sum(fts.values()),
        "differences": {
            why: {
                "names": len(items),
                "examples": [{"name": n, "atlas": ours.get(n, 0), "fts5": fts.get(n, 0)} for n in items[:15]],
            }
            for why, items in reasons.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=5000)
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="atlas runs (the FTS5 side runs once: it is slow)")
    args = parser.parse_args()

    names = load_names(args.names)
    shard = prepare(args.captions)
    work = Path(tempfile.mkdtemp(prefix="bench-artists-", dir=DATA))
    names_file = work / "names.json"
    names_file.write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load_start = load_average()
    print(f"{len(names):,} names x {args.captions:,} captions ({shard}); load average {load_start}", flush=True)

    atlas_runs = []
    fts = None
    for i in range(args.repeat):
        result = run_child(python_child(ATLAS_CHILD, str(shard), str(names_file)), cwd=ROOT, env=env)
        report = json.loads(result["stdout"])
        report.update(wall_s=result["seconds"], cpu_s=result["cpu_seconds"], peak_rss_mb=result["peak_rss_mb"])
        atlas_runs.append(report)
        print(f"  atlas run {i + 1}: {result['seconds']:.2f}s wall (count_artists {report['count_s']:.2f}s), "
              f"{result['peak_rss_mb']:.0f} MB", flush=True)
        if fts is None:  # the FTS5 side once, after the first atlas run
            print("  FTS5: building the index and querying every name ...", flush=True)
            fts = run_fts(shard, names, work)
            print(f"  FTS5: build {fts['build_s']:.1f}s, {len(names):,} queries {fts['query_s']:.1f}s", flush=True)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()

    ours = atlas_runs[0]["counts"]
    for run in atlas_runs[1:]:
        assert run["counts"] == ours, "atlas counts differ between runs"
    agreement = compare(names, ours, fts["counts"], fts["errors"])

    wall = median([r["wall_s"] for r in atlas_runs])
    total = median([r["total_s"] for r in atlas_runs])
    count_s = median([r["count_s"] for r in atlas_runs])
    imports = median([r["import_s"] for r in atlas_runs])
    # Both sides from the moment their libraries are imported to the counts: atlas opens the
    # shard and counts; FTS5 reads the captions, builds its index and queries every name.
    speedup = fts["query_s"] / total
    speedup_build = (fts["query_s"] + fts["build_s"]) / total
    rows = [
        ["atlas: open the shard + count_artists()", f"{total:.2f}", "1.0x"],
        ["  of which count_artists()", f"{count_s:.2f}", ""],
        ["  (process wall, with interpreter start and imports)", f"{wall:.2f}", f"imports {imports:.2f} s"],
        ["FTS5: 1 phrase query per name (index prebuilt)", f"{fts['query_s']:.2f}", f"{speedup:.2f}x"],
        ["FTS5: index build (insert + optimize)", f"{fts['build_s']:.2f}", ""],
        ["FTS5: build + queries", f"{fts['build_s'] + fts['query_s']:.2f}", f"{speedup_build:.2f}x"],
    ]
    print()
    print(f"artist mentions: {len(names):,} names over {args.captions:,} captions "
          f"(real LAION-400M captions x{-(-args.captions // 10000)}), atlas median of {args.repeat}")
    print(table(["", "seconds", "atlas speedup (their s / ours)"], rows))
    print()
    met = speedup_build >= TARGET_SPEEDUP
    def faster(x):
        return f"{x:.2f}x faster" if x >= 1 else f"{1 / x:.1f}x slower"

    print(f"atlas vs FTS5 index build + queries: {faster(speedup_build)} (target >= {TARGET_SPEEDUP:.0f}x faster: "
          f"{'met' if met else 'NOT met'}); vs the queries alone (index prebuilt): {faster(speedup)}")
    print(f"agreement: {agreement['names_same']:,} of {agreement['names_compared']:,} names give the same count; "
          f"{agreement['names_mentioned_atlas']:,} names mentioned (atlas), {agreement['names_mentioned_fts']:,} (FTS5)")
    for why, d in agreement["differences"].items():
        print(f"  {d['names']} differ: {why}; e.g. " + ", ".join(
            f"{e['name']} {e['atlas']} vs {e['fts5']}" for e in d["examples"][:4]))
    payload = {
        "load_average_at_start": load_start,
        "names": len(names),
        "names_source": f"first {len(names)} of {ARTISTS}",
        "captions": args.captions,
        "captions_source": f"{SAMPLE} (10,000 real captions) replicated: case varied, one word appended",
        "atlas": {
            "median_wall_s": round(wall, 3),
            "median_open_and_count_s": round(total, 3),
            "median_import_s": round(imports, 3),
            "median_count_artists_s": round(count_s, 3),
            "max_peak_rss_mb": round(max(r["peak_rss_mb"] for r in atlas_runs), 1),
            "runs": [{k: round(v, 3) for k, v in r.items() if k != "counts"} for r in atlas_runs],
        },
        "fts5": {
            "build_s": round(fts["build_s"], 3),
            "insert_s": round(fts["insert_s"], 3),
            "query_s": round(fts["query_s"], 3),
            "per_query_ms": round(fts["query_s"] / len(names) * 1000, 3),
            "db_mb": round(fts["db_mb"], 1),
            "query_errors": fts["errors"],
        },
        "speedup_vs_queries": round(speedup, 2),
        "speedup_vs_build_and_queries": round(speedup_build, 2),
        "target": {"speedup_min": TARGET_SPEEDUP, "met": met},
        "agreement": agreement,
    }
    path = write_result("bench_artists", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
