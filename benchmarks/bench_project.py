"""The project stage at 20k and 100k points: the previous settings against the current ones,
side by side in one run, with map-quality figures.

    python benchmarks/bench_project.py [--sizes 20000 100000] [--repeat 3] [--old-repeat 1] [--old-sizes 20000]

Data: the real 10k LAION captions (``../shared``) repeated with deterministic variation (as in
bench_map_pipeline.py), embedded once with the offline TF-IDF embedder (128 dims) and kept in
``benchmarks/.data/``; the 20k set is the first 20k rows of the 100k one.

Contenders, each in a fresh Python process (so numba's compiling, or loading its cache, counts):

- ``old``: the project stage as it was before this benchmark (commit ``OLD_COMMIT``): PCA, UMAP
  seeded on one thread with umap-learn's default epochs (200; 500 under 10k points), fitted on at
  most 50,000 points and ``transform`` for the rest, umap-learn's numba functions compiled in
  every process, clusters.
- ``new``: the current stage (``atlas.stages.project.project``) with the default config: one kNN
  graph (exact to 20k points, pynndescent on both cores above) shared by UMAP and the map's
  neighbours, fewer epochs, numba's cache warmed by one untimed run first.
- ``new-parallel``: the same with ``deterministic = false`` (UMAP on both cores, unseeded).

Quality, computed here from each run's coordinates against the embedding itself (not against
anything the stage computed): ``recall@10``, the share of a point's 10 nearest captions in the
TF-IDF space (cosine, exact) that are among its 10 nearest points on the map, over a fixed subsample
of 1,000 points; and ``trustworthiness`` (sklearn.manifold.trustworthiness, k=10) on a fixed
subsample of 2,000 points. Both 1.0 at best; a random layout gives recall ~0.

Timings are wall seconds and CPU seconds (user + system of the child, all threads) with medians
over ``--repeat`` runs; the 2 cores are shared with other work, so the load average is recorded
before and after. Writes ``benchmarks/results/bench_project.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from _util import DATA, ROOT, load_average, median, run_child, table, write_result  # noqa: E402

#: The last commit with the previous projection settings.
OLD_COMMIT = "cd0d388"

CHILD = r"""
import json, sys, time
started = time.perf_counter()
import numpy as np
import pyarrow.parquet as pq
sys.path.insert(0, sys.argv[1])
variant, vectors_path, captions_path, n, out = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
vectors = np.load(vectors_path, mmap_mode="r")[:n]
captions = pq.read_table(captions_path).column("caption").to_pylist()[:n]
from atlas.core.config import ProjectConfig
if variant == "old":
    import importlib.util
    spec = importlib.util.spec_from_file_location("project_old", sys.argv[7])
    module = importlib.util.module_from_spec(spec); sys.modules["project_old"] = module; spec.loader.exec_module(module)
    config = ProjectConfig(fit_size=50_000)
else:
    from atlas.stages import project as module
    config = ProjectConfig(deterministic=(variant != "new-parallel"))
projection = module.project(np.ascontiguousarray(vectors), captions, config)
np.save(out, projection.coords)
print(json.dumps({"method": projection.method, "timings": projection.timings,
                  "info": getattr(projection, "info", {}), "seconds_in_child": time.perf_counter() - started}))
"""


def dataset(rows: int) -> tuple[Path, Path]:
    """TF-IDF embeddings [rows, 128] and the captions, made once into benchmarks/.data/."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = DATA / f"project_{rows}"
    vectors, captions = folder / "embeddings.npy", folder / "captions.parquet"
    if vectors.exists() and captions.exists():
        return vectors, captions
    from bench_map_pipeline import varied_captions

    from atlas.models.tfidf import tfidf_embed

    folder.mkdir(parents=True, exist_ok=True)
    texts, _, _ = varied_captions(rows)
    pq.write_table(pa.table({"caption": texts}), captions)
    np.save(vectors, tfidf_embed(texts, seed=42))
    return vectors, captions


def quality(vectors: np.ndarray, coords: np.ndarray, k: int = 10) -> dict:
    """recall@k of the map against exact cosine neighbours in the embedding, and trustworthiness."""
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(0)
    n = len(vectors)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows = np.sort(rng.choice(n, size=min(1000, n), replace=False))
    hits = 0
    for start in range(0, len(rows), 200):
        chunk = rows[start:start + 200]
        sim = unit[chunk] @ unit.T
        sim[np.arange(len(chunk)), chunk] = -np.inf
        wanted = np.argpartition(-sim, k, axis=1)[:, :k]
        d = ((coords[chunk, None, :].astype(np.float64) - coords[None, :, :]) ** 2).sum(axis=2)
        d[np.arange(len(chunk)), chunk] = np.inf
        found = np.argpartition(d, k, axis=1)[:, :k]
        hits += sum(len(np.intersect1d(a, b)) for a, b in zip(wanted, found))
    sub = np.sort(rng.choice(n, size=min(2000, n), replace=False))
    trust = trustworthiness(vectors[sub], coords[sub], n_neighbors=k, metric="cosine")
    return {"recall@10": round(hits / (len(rows) * k), 4), "trustworthiness": round(float(trust), 4)}


def run_variant(variant: str, vectors: Path, captions: Path, n: int, old_module: Path, env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="atlas-bench-project-") as tmp:
        out = Path(tmp) / "coords.npy"
        args = [sys.executable, "-c", CHILD, str(ROOT), variant, str(vectors), str(captions), str(n), str(out),
                str(old_module)]
        result = run_child(args, cwd=ROOT, env=env)
        coords = np.load(out)
    child = json.loads(result["stdout"].strip().splitlines()[-1])
    return {"seconds": round(result["seconds"], 2), "cpu_seconds": round(result["cpu_seconds"], 2),
            "peak_rss_mb": round(result["peak_rss_mb"], 1), "phases": child["timings"], "method": child["method"],
            "neighbours": child["info"].get("neighbours"), "stage_recall": child["info"].get("neighbour_recall"),
            "coords_sha256": hashlib.sha256(coords.tobytes()).hexdigest()[:16], "coords": coords}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old-repeat", type=int, default=1, help="runs of the old settings (slow)")
    parser.add_argument("--old-sizes", type=int, nargs="*", default=[20_000],
                        help="sizes at which the old settings run (100k took 383 s on 22 Nov 2026)")
    parser.add_argument("--variants", nargs="+", default=["old", "new", "new-parallel"])
    args = parser.parse_args()

    old_module = DATA / f"project_{OLD_COMMIT}.py"
    if not old_module.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        old_module.write_text(subprocess.run(["git", "show", f"{OLD_COMMIT}:atlas/stages/project.py"], cwd=ROOT,
                                             check=True, capture_output=True, text=True).stdout)
    numba_cache = DATA / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), PYTHONPATH=str(ROOT))
    vectors_path, captions_path = dataset(max(args.sizes))
    all_vectors = np.load(vectors_path)
    load_before = load_average()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"project benchmark, {os.cpu_count()} CPUs; {uptime}", flush=True)
    runs: dict = {}
    warmed = False
    for n in args.sizes:
        for variant in args.variants:
            if variant == "old" and n not in args.old_sizes:
                continue
            repeat = args.old_repeat if variant == "old" else args.repeat
            if variant != "old" and not warmed:
                print("  warming numba's cache (untimed run)", flush=True)
                run_variant(variant, vectors_path, captions_path, 3_000, old_module, env)
                warmed = True
            for attempt in range(repeat):
                run = run_variant(variant, vectors_path, captions_path, n, old_module, env)
                run.update(quality(all_vectors[:n], run.pop("coords")))
                run["load_average"] = load_average()
                runs.setdefault(f"{n}/{variant}", []).append(run)
                print(f"  {n:>7,} {variant:<13} run {attempt + 1}: {run['seconds']:7.1f} s wall, "
                      f"{run['cpu_seconds']:7.1f} CPU-s, recall@10 {run['recall@10']:.3f}, "
                      f"trust {run['trustworthiness']:.3f}, phases {run['phases']}, load {run['load_average']}",
                      flush=True)
                save(runs, load_before, uptime, final=False)
    path = save(runs, load_before, uptime, final=True)
    print(f"wrote {path.relative_to(ROOT)}")


def save(runs: dict, load_before: list, uptime: str, final: bool) -> Path:
    """Write the results so far (after every run, so a long benchmark cut short keeps its figures)."""
    rows, summary = [], {}
    for key, group in runs.items():
        n, variant = key.split("/")
        entry = {
            "points": int(n), "variant": variant, "runs": len(group),
            "median_seconds": round(median([r["seconds"] for r in group]), 2),
            "median_cpu_seconds": round(median([r["cpu_seconds"] for r in group]), 2),
            "recall@10": round(median([r["recall@10"] for r in group]), 4),
            "trustworthiness": round(median([r["trustworthiness"] for r in group]), 4),
            "same_coords_every_run": len({r["coords_sha256"] for r in group}) == 1,
            "method": group[0]["method"],
        }
        summary[key] = entry
        rows.append([f"{int(n):,}", variant, len(group), entry["median_seconds"], entry["median_cpu_seconds"],
                     entry["recall@10"], entry["trustworthiness"], "yes" if entry["same_coords_every_run"] else "no"])
    if final:
        print(table(["points", "variant", "runs", "wall s", "CPU s", "recall@10", "trust", "same map"], rows))
    return write_result("bench_project", {
        "load_average_at_start": load_before, "uptime_at_start": uptime, "complete": final,
        "targets": {"100000": "< 60 s wall", "20000": "< 15 s wall"},
        "old_commit": OLD_COMMIT, "summary": summary, "runs": runs,
    })


if __name__ == "__main__":
    main()
