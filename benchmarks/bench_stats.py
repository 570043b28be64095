"""Benchmark: the statistics stage over 10 million rows against one hand-written DuckDB query.

    python benchmarks/bench_stats.py [--rows 10000000] [--shards 10] [--repeat 3] [--no-artists]

Measures wall time and peak memory (RSS of the child process, from ``os.wait4``) of

- ``atlas stats --data 'DIR/*.parquet' --json OUT`` without an artist list (hosts, domains,
  every histogram, threshold shares, categories, example captions);
- the hand-written query a user would type for the same host counts and histograms
  (below, ``HAND_WRITTEN``), run by ``duckdb`` in a fresh Python process;
- ``atlas stats`` again with the artist list of ``content/artists.txt`` (203 names).

Each round runs the three in turn, rotating who goes first; the table gives medians.
Targets: atlas within 1.5x of the hand-written query (2.0x with the artists, which add at most
30 %), and under 2 GB peak memory. Results go to ``results/bench_stats_<rows in M>m.json``.

Data: 1 million LAION-shaped demo rows (``atlas.stages.demo``) are generated once and replicated into
``--rows`` rows over ``--shards`` shards with DuckDB: each replica gets its own URL paths and
renames the long tail of small sites (``shop123.com`` -> ``shop123-r4.com``), so the number
of distinct hosts grows with the data like in LAION while the big hosts stay big. The shards are
cached in ``benchmarks/.data/`` (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import DATA, ROOT, load_average, median, python_child, run_child, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))  # run from a checkout without installing

BASE_ROWS = 1_000_000
TARGET_RATIO = 1.5
TARGET_MB = 2048
TARGET_RATIO_ARTISTS = 2.0
TARGET_ARTISTS_ADDED = 0.30

#: The hand-written comparison, as a user would write it: one query, one pass over the shards:
#: hosts by ``regexp_extract`` of the URL and one ``histogram(floor(x * k) / k)`` per column.
#: {src} is the read_parquet(...) of the shards.
HAND_WRITTEN = """
SELECT
    histogram(regexp_extract(URL, '^[a-zA-Z]+://(?:www\\.)?([^/:?#]+)', 1)) AS hosts,
    histogram(floor(similarity * 100) / 100)  AS similarity,
    histogram(floor(punsafe * 50) / 50)       AS punsafe,
    histogram(floor(pwatermark * 50) / 50)    AS pwatermark,
    histogram(floor(aesthetic * 4) / 4)       AS aesthetic,
    histogram(floor(WIDTH / 64) * 64)         AS width,
    histogram(floor(HEIGHT / 64) * 64)        AS height,
    histogram(floor(length(TEXT) / 8) * 8)    AS caption_length
FROM {src}
"""

#: Runs HAND_WRITTEN in a child process and prints a JSON summary (for the agreement check).
HAND_CHILD = r"""
import json, sys, duckdb
sql, glob = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
src = "read_parquet('" + glob.replace("'", "''") + "')"
record = con.execute(sql.format(src=src)).fetchone()
names = [d[0] for d in con.description]
hosts = record[0]
print(json.dumps({
    "distinct_hosts": len([h for h in hosts if h]),
    "rows_with_host": sum(n for h, n in hosts.items() if h),
    "top_hosts": sorted(([h, n] for h, n in hosts.items() if h), key=lambda x: -x[1])[:5],
    "histograms": {name: [[k, v] for k, v in h.items() if k is not None] for name, h in zip(names[1:], record[1:])},
}))
"""


def prepare(rows: int, shards: int) -> Path:
    """The cached shards for (rows, shards): generate 1M demo rows once, replicate with DuckDB."""
    import duckdb

    folder = DATA / f"stats-{rows // 1_000_000}m-{shards}"
    marker = folder / "READY"
    if marker.exists():
        return folder
    base = DATA / "demo-1m"
    if not (base / "READY").exists():
        from atlas.stages.demo import write_demo_shards

        shutil.rmtree(base, ignore_errors=True)
        print(f"generating {BASE_ROWS:,} demo rows in {base} (about a minute) ...", flush=True)
        start = time.perf_counter()
        write_demo_shards(base, rows=BASE_ROWS, shards=4, seed=7)
        (base / "READY").write_text("ok\n")
        print(f"  done in {time.perf_counter() - start:.0f}s", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    per_shard = -(-rows // shards)
    print(f"replicating into {rows:,} rows over {shards} shards in {folder} ...", flush=True)
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    # Row i of the base (a fixed order) and replica r make global row r * BASE_ROWS + i; shard s
    # holds global rows [s * per_shard, (s + 1) * per_shard).
    con.execute(
        f"CREATE TABLE base AS SELECT *, row_number() OVER (ORDER BY hash, URL, TEXT) - 1 AS i "
        f"FROM read_parquet('{base}/*.parquet')"
    )
    for shard in range(shards):
        lo, hi = shard * per_shard, min(rows, (shard + 1) * per_shard)
        if lo >= hi:
            break
        reps = list(range(lo // BASE_ROWS, -(-hi // BASE_ROWS)))
        # Replica r: the big hosts stay as they are, small sites (a number before the dot, as the
        # demo's long tail has) are renamed per replica, and every URL path gets its own prefix.
        con.execute(
            f"""
            COPY (
                SELECT
                    replace(
                        regexp_replace(URL, '^(https?://[^/]*?[0-9]+)\\.', '\\1-r' || r || '.'),
                        '/images/', '/images/r' || r || '/'
                    ) AS URL,
                    TEXT, WIDTH, HEIGHT, similarity, xor(hash, r::BIGINT << 40) AS hash,
                    punsafe, pwatermark, aesthetic
                FROM base, (SELECT unnest({reps}) AS r)
                WHERE r * {BASE_ROWS} + i >= {lo} AND r * {BASE_ROWS} + i < {hi}
            ) TO '{folder}/part-{shard:05d}.parquet' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)
            """
        )
    con.close()
    marker.write_text(json.dumps({"rows": rows, "shards": shards}) + "\n")
    print(f"  done in {time.perf_counter() - start:.0f}s", flush=True)
    return folder


def atlas_stats(glob: str, content: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "atlas", "stats", "--data", glob, "--content", str(content), "--json", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-artists", dest="artists", action="store_false", help="skip the runs with content/artists.txt")
    args = parser.parse_args()

    folder = prepare(args.rows, args.shards)
    glob = f"{folder}/*.parquet"
    shards = sorted(folder.glob("*.parquet"))
    data_mb = sum(p.stat().st_size for p in shards) / 1e6
    load_start = load_average()
    print(f"load average at start: {load_start}", flush=True)
    print(f"data: {args.rows:,} rows, {len(shards)} shards, {data_mb:,.0f} MB ({folder})", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-stats-"))
    empty_content = work / "content"  # a content folder without an artist list
    empty_content.mkdir()
    # The same without the blocklist (shipped with atlas and on by default): what the safety
    # rule's whole-word test of every caption and URL costs.
    unblocked_content = work / "content-no-blocklist"
    unblocked_content.mkdir()
    (unblocked_content / "atlas.toml").write_text('[data]\nblocklist = ""\n', encoding="utf-8")
    out = work / "stats.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    hand_cmd = python_child(HAND_CHILD, HAND_WRITTEN, glob)
    artists_file = ROOT / "content" / "artists.txt"
    with_artists = artists_file.exists() and args.artists
    contenders = ["atlas", "hand"] + (["artists"] if with_artists else []) + ["noblock"]
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    hand_result = None
    for i in range(args.repeat):
        order = contenders[i % len(contenders):] + contenders[: i % len(contenders)]  # rotate who goes first
        for which in order:
            if which == "atlas":
                result = run_child(atlas_stats(glob, empty_content, out), cwd=ROOT, env=env)
            elif which == "artists":
                result = run_child(atlas_stats(glob, ROOT / "content", work / "stats-artists.json"), cwd=ROOT, env=env)
            elif which == "noblock":
                result = run_child(atlas_stats(glob, unblocked_content, work / "stats-noblock.json"), cwd=ROOT, env=env)
            else:
                result = run_child(hand_cmd, cwd=ROOT, env=env)
                hand_result = json.loads(result["stdout"])
            runs[which].append(
                {"seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"], "peak_rss_mb": result["peak_rss_mb"]}
            )
            print(f"  run {i + 1} {which:7s} {result['seconds']:7.2f}s  cpu {result['cpu_seconds']:7.2f}s  "
                  f"{result['peak_rss_mb']:7.0f} MB", flush=True)

    stats = json.loads(out.read_text())
    agreement = check(stats, hand_result)
    artists_runs = runs.get("artists", [])
    if with_artists:
        from atlas.stages.stats import read_artists

        n_names = len(read_artists(artists_file))
    shutil.rmtree(work, ignore_errors=True)

    def summary(items):
        return {
            "median_seconds": round(median([r["seconds"] for r in items]), 3),
            "median_cpu_seconds": round(median([r["cpu_seconds"] for r in items]), 3),
            "median_peak_rss_mb": round(median([r["peak_rss_mb"] for r in items]), 1),
            "max_peak_rss_mb": round(max(r["peak_rss_mb"] for r in items), 1),
            "runs": [{k: round(v, 3) for k, v in r.items()} for r in items],
        }

    atlas_s, hand_s = summary(runs["atlas"]), summary(runs["hand"])
    ratio = atlas_s["median_seconds"] / hand_s["median_seconds"]
    # Each round ran both back to back, so the ratio within a round is less exposed to other load.
    paired = [a["seconds"] / h["seconds"] for a, h in zip(runs["atlas"], runs["hand"])]
    cpu_ratio = atlas_s["median_cpu_seconds"] / hand_s["median_cpu_seconds"]

    def line(label, summary):
        return [label, f"{summary['median_seconds']:.2f}", f"{summary['median_cpu_seconds']:.2f}",
                f"{summary['max_peak_rss_mb']:.0f}", f"{args.rows / summary['median_seconds'] / 1e6:.2f}"]

    noblock_s = summary(runs["noblock"])
    rows_table = [line("atlas stats (no artists)", atlas_s), line("hand-written DuckDB query", hand_s),
                  line("atlas stats, blocklist off", noblock_s)]
    payload = {
        "rows": args.rows,
        "shards": len(shards),
        "data_mb": round(data_mb, 1),
        "repeat": args.repeat,
        "load_average_at_start": load_start,
        "atlas_stats": atlas_s,
        "hand_written": hand_s,
        "hand_written_sql": HAND_WRITTEN.strip(),
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "paired_ratios": [round(r, 3) for r in paired],
        "median_paired_ratio": round(median(paired), 3),
        "agreement": agreement,
        "atlas_stats_without_blocklist": {
            **noblock_s,
            "ratio_to_hand_written": round(noblock_s["median_seconds"] / hand_s["median_seconds"], 3),
            "cpu_ratio_to_hand_written": round(noblock_s["median_cpu_seconds"] / hand_s["median_cpu_seconds"], 3),
        },
        "targets": {
            "ratio_max": TARGET_RATIO,
            "peak_rss_mb_max": TARGET_MB,
            "ratio_met": ratio <= TARGET_RATIO,
            "memory_met": atlas_s["max_peak_rss_mb"] < TARGET_MB,
        },
    }
    if artists_runs:
        art = summary(artists_runs)
        art_ratio = art["median_seconds"] / hand_s["median_seconds"]
        overhead = art["median_seconds"] / atlas_s["median_seconds"] - 1
        cpu_overhead = art["median_cpu_seconds"] / atlas_s["median_cpu_seconds"] - 1
        payload["atlas_stats_with_artists"] = {
            **art, "artists": n_names, "list": "content/artists.txt",
            "ratio_to_hand_written": round(art_ratio, 3),
            "cpu_ratio_to_hand_written": round(art["median_cpu_seconds"] / hand_s["median_cpu_seconds"], 3),
            "added_to_stats": round(overhead, 3), "added_to_stats_cpu": round(cpu_overhead, 3),
            "targets": {"ratio_max": TARGET_RATIO_ARTISTS, "ratio_met": art_ratio <= TARGET_RATIO_ARTISTS,
                        "added_max": TARGET_ARTISTS_ADDED, "added_met": overhead <= TARGET_ARTISTS_ADDED},
        }
        rows_table.append(line(f"atlas stats + {n_names} artists", art))
    print()
    print(f"statistics over {args.rows:,} rows in {len(shards)} shards ({data_mb:,.0f} MB), "
          f"median of {args.repeat}, alternating order")
    print(table(["", "wall s", "CPU s", "peak RSS MB", "M rows/s"], rows_table))
    print()
    print(f"atlas / hand-written, within each round: {', '.join(f'{r:.2f}' for r in paired)} "
          f"(median {median(paired):.2f}x)")
    print(f"atlas / hand-written, CPU seconds (user + system): {cpu_ratio:.2f}x")
    print(f"atlas with the blocklist off / hand-written: {noblock_s['median_seconds'] / hand_s['median_seconds']:.2f}x wall, "
          f"{noblock_s['median_cpu_seconds'] / hand_s['median_cpu_seconds']:.2f}x CPU")
    print(f"atlas / hand-written, medians: {ratio:.2f}x (target <= {TARGET_RATIO}x: "
          f"{'met' if payload['targets']['ratio_met'] else 'NOT met'}); peak memory "
          f"{atlas_s['max_peak_rss_mb']:.0f} MB (target < {TARGET_MB} MB: "
          f"{'met' if payload['targets']['memory_met'] else 'NOT met'})")
    if artists_runs:
        a = payload["atlas_stats_with_artists"]
        print(f"atlas + {n_names} artists / hand-written: {a['ratio_to_hand_written']:.2f}x wall, "
              f"{a['cpu_ratio_to_hand_written']:.2f}x CPU (target <= {TARGET_RATIO_ARTISTS}x); the artists add "
              f"{a['added_to_stats']:.0%} wall, {a['added_to_stats_cpu']:.0%} CPU (target <= {TARGET_ARTISTS_ADDED:.0%})")
    print(f"agreement: {agreement['summary']}")
    path = write_result(f"bench_stats_{args.rows // 1_000_000}m", payload)
    print(f"wrote {path}")


def check(stats: dict, hand: dict) -> dict:
    """Do both give the same host counts and histogram bins?

    The hand-written query keys a bin by its lower edge (``floor(x * k) / k``, an exact multiple
    of the step, so ``round(key / step)`` is its bin) and has no notion of invalid values or of a
    last bin that holds everything over the top edge: NULLs drop out of ``histogram()``, NaN and
    infinities get keys of their own, values over the top edge get bins past it. So its keys are
    put into atlas's bins (clamped to the last; negative, NaN and infinite keys counted as
    invalid) and compared. Values sitting on a bin edge can land on either side: the hand-written
    query multiplies in the column's own type (float32 for the scores), atlas divides in double
    with a 1e-9 nudge; such moves to a neighbouring bin are counted and reported, and must stay
    under 0.01 % of the rows. Its host regex keeps a leading ``www.`` off and does not lower-case,
    so hosts are compared by count.
    """
    import math

    differences, explained = [], []
    if stats["distinct_hosts"] != hand["distinct_hosts"]:
        differences.append(f"distinct hosts {stats['distinct_hosts']} (atlas) vs {hand['distinct_hosts']} (hand-written)")
    # stats.json lists at most 10,000 hosts: rows with a host are all rows but those without a
    # (valid) URL; the demo data has no missing URLs.
    if stats["rows"] - stats["invalid_urls"] != hand["rows_with_host"]:
        differences.append("rows with a host differ")
    ours = {h["host"]: h["count"] for h in stats["hosts"][:5]}
    if ours != dict(hand["top_hosts"]):
        differences.append(f"top hosts differ: {ours} vs {dict(hand['top_hosts'])}")
    for column, h in stats["histograms"].items():
        n = len(h["counts"])
        step = h["edges"][1] - h["edges"][0]
        bins, invalid = [0] * n, stats["rows"]
        for key, count in hand["histograms"].get(column, []):
            if key is None or math.isnan(key) or math.isinf(key) or key < 0:
                continue
            bins[min(round(key / step), n - 1)] += count
            invalid -= count
        moved, running = 0, 0
        for theirs, ours in zip(bins, h["counts"]):
            running += theirs - ours
            moved += abs(running)  # values that crossed an edge between neighbouring bins
        if invalid != h["invalid"] or running != 0 or moved > stats["rows"] * 1e-4:
            differences.append(f"histogram {column} differs")
            continue
        if moved:
            explained.append(f"{column}: {moved:,} values on a bin edge in the neighbouring bin")
        if invalid:
            explained.append(f"{column}: {invalid:,} missing/NaN/infinite/negative values invalid in both")
    return {
        "same": not differences,
        "differences": differences,
        "explained": explained,
        "summary": ("distinct hosts, rows with a host and every histogram agree"
                    + (f" ({'; '.join(explained)})" if explained else ""))
        if not differences else "; ".join(differences),
    }


if __name__ == "__main__":
    main()
