"""Benchmark the search index (atlas/stages/search.py): its size against the captions it
replaces, the time to build it, and the bytes a one-word query fetches.

For each row count: the captions (the real 10k LAION sample, repeated with deterministic variation
beyond 10k, see bench_map_pipeline.varied_captions; or ``--demo`` for atlas.stages.demo captions) are
indexed once (wall time, 1 run: a build step, not a hot loop), then

* size: the index on disk (terms shards + positions) vs the captions as the map publishes them
  (the JSON text chunks), which is what a page that searches without an index downloads; that
  page is the baseline (the map's own search before this index, and Embedding Atlas's FlexSearch,
  which loads the whole text column first);
* bytes per one-word query: the terms shard the page fetches (plus index.json once), for 100
  *common* words (tokens drawn at random from the captions, so weighted by frequency) and 100
  *rare* ones (drawn at random from the vocabulary); medians and 90th percentiles.

    python benchmarks/bench_search.py [--rows 10000 100000] [--demo]

Prints a table and writes ``benchmarks/results/bench_search.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _util import load_average, machine, table, write_result  # noqa: E402
from bench_map_pipeline import varied_captions  # noqa: E402

from atlas.stages.mapdata import CHUNK_SIZE, MAX_CAPTION# noqa: E402
from atlas.stages.search import SearchIndex, tokens, write_index# noqa: E402


def caption_bytes(captions: list[str]) -> int:
    """Bytes of the captions as the map's JSON text chunks."""
    total = 0
    for lo in range(0, len(captions), CHUNK_SIZE):
        chunk = [c[:MAX_CAPTION] for c in captions[lo:lo + CHUNK_SIZE]]
        total += len(json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(rows: int, demo: bool, seed: int = 0) -> dict:
    if demo:
        from atlas.stages.demo import demo_table

        t = demo_table(rows, seed)
        captions, source = [c or "" for c in t.column("caption" if "caption" in t.column_names else "TEXT").to_pylist()], "atlas.stages.demo captions"
    else:
        captions, _, source = varied_captions(rows, seed)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        summary = write_index(captions, folder)
        seconds = time.perf_counter() - started
        index = SearchIndex(folder)
        rng = np.random.default_rng(seed)
        common = []
        while len(common) < 100:
            found = tokens(captions[int(rng.integers(len(captions)))])
            if found:
                common.append(found[int(rng.integers(len(found)))])
        vocab = sorted({w for c in captions[: min(len(captions), 200_000)] for w in tokens(c)})
        rare = [vocab[int(i)] for i in rng.integers(0, len(vocab), size=100)]
        root = (folder / "index.json").stat().st_size

        def fetched(words):
            sizes = [index.bytes_for(w) + root for w in words]
            return {"median": float(np.median(sizes)), "p90": float(np.percentile(sizes, 90)), "max": int(max(sizes))}

        text = caption_bytes(captions)
        size = folder_bytes(folder)
        terms, positions = folder_bytes(folder / "terms"), folder_bytes(folder / "pos")
        return {
            "rows": rows, "source": source, "build_seconds": round(seconds, 2), "terms": summary.terms,
            "postings": summary.postings, "shards": summary.shards, "index_bytes": size, "terms_bytes": terms,
            "positions_bytes": positions, "caption_bytes": text, "index_share": round(size / text, 3),
            "terms_share": round(terms / text, 3),
            "one_word_query_bytes": {"common": fetched(common), "rare": fetched(rare)},
            "baseline_bytes_without_index": text,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--demo", action="store_true", help="atlas.stages.demo captions instead of the real sample")
    args = parser.parse_args()
    load_before = load_average()
    results = []
    for rows in args.rows:
        result = run(rows, args.demo)
        results.append(result)
        q = result["one_word_query_bytes"]
        print(f"{rows:>9,} rows: built in {result['build_seconds']} s, index {result['index_share']:.0%} of the captions "
              f"(terms {result['terms_share']:.0%}), one-word query median {q['common']['median'] / 1e3:.1f} kB common, "
              f"{q['rare']['median'] / 1e3:.1f} kB rare", flush=True)
    print(table(
        ["rows", "source", "build s", "captions MB", "index MB (terms + positions)", "index / captions",
         "1-word query kB common (median / p90)", "rare (median / p90)", "without an index"],
        [[f"{r['rows']:,}", r["source"], r["build_seconds"], f"{r['caption_bytes'] / 1e6:.2f}",
          f"{r['index_bytes'] / 1e6:.2f} ({r['terms_bytes'] / 1e6:.2f} + {r['positions_bytes'] / 1e6:.2f})",
          f"{r['index_share']:.0%}",
          f"{r['one_word_query_bytes']['common']['median'] / 1e3:.1f} / {r['one_word_query_bytes']['common']['p90'] / 1e3:.1f}",
          f"{r['one_word_query_bytes']['rare']['median'] / 1e3:.1f} / {r['one_word_query_bytes']['rare']['p90'] / 1e3:.1f}",
          f"{r['baseline_bytes_without_index'] / 1e6:.2f} MB"] for r in results]))
    path = write_result("bench_search", {"machine": machine(), "load_average": [load_before, load_average()],
                                         "runs": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
