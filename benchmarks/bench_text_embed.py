"""The caption model (all-MiniLM-L6-v2) on a CPU: embedding time, and its map's clusters vs TF-IDF's.

    python benchmarks/bench_text_embed.py speed [--captions 2000] [--threads 2] [--full]
    python benchmarks/bench_text_embed.py labels [--cache DIR]

``speed`` embeds real LAION captions (the 10k sample, cycled) with torch limited to ``--threads``
threads, side by side: atlas's ``text_embed`` (128-token cut, length-sorted chunks, batch 64) and
what a skilled user would write, ``SentenceTransformer(folder).encode(captions)`` with its
defaults. It times ``--captions`` captions and states the time for 20,000 and 100,000 at that
rate (``--full`` embeds 20,000 and 100,000 for real). The machine's load average is recorded:
other work on a shared machine slows every wall-clock figure, so CPU seconds divided by the
threads are given too, as an estimate of the same work on idle cores.

``labels`` embeds the whole 10k sample with the caption model and with TF-IDF (cached in
``--cache``), projects both with atlas's project stage and measures the coarse clusters:

- *label coverage*: the share of a cluster's captions that contain one of its label words;
- *coherence in meaning*: the mean cosine similarity of a cluster's captions to their centroid,
  measured with the caption model's vectors, for both maps;
- *coherence in words*: the same measured with the TF-IDF vectors, for both maps.

Each map is judged in both spaces, so neither wins by construction; the labels are printed to
read. Results go to benchmarks/results/bench_text_embed_{speed,labels}.json.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import load_average, table, write_result  # noqa: E402

from atlas.core.config import EmbedConfig, ProjectConfig# noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "laion400m-sample-10k.parquet"


def _captions(n: int) -> list[str]:
    import pyarrow.parquet as pq

    captions = [c or "" for c in pq.read_table(SAMPLE, columns=["TEXT"]).column("TEXT").to_pylist()]
    return [captions[i % len(captions)] for i in range(n)]


def _model(models_dir: Path):
    from atlas.models.captionmodel import load_text_model

    return load_text_model(EmbedConfig(device="cpu"), models_dir=models_dir)


def speed(args) -> None:
    import torch

    from atlas.models.captionmodel import text_embed
    from atlas.models._torch_compat import import_sentence_transformers

    torch.set_num_threads(args.threads)
    models_dir = Path(args.cache) / "models"
    load_before = load_average()
    started = time.perf_counter()
    model = _model(models_dir)
    load_seconds = time.perf_counter() - started
    plain = import_sentence_transformers().SentenceTransformer(
        str(next(models_dir.glob("all-MiniLM-L6-v2-*"))), device="cpu")
    sizes = [20_000, 100_000] if args.full else [args.captions]
    rows, results = [], {}
    for n in sizes:
        captions = _captions(n)
        text_embed(model, captions[:64], 64)  # warm-up
        timings = {}
        for name, run in (("atlas text_embed", lambda: text_embed(model, captions, 64)),
                          ("SentenceTransformer.encode defaults", lambda: plain.encode(captions, normalize_embeddings=True))):
            started, cpu = time.perf_counter(), time.process_time()
            run()
            timings[name] = (time.perf_counter() - started, time.process_time() - cpu)
        for name, (seconds, cpu) in timings.items():
            rate = n / seconds
            # On a busy machine wall time mostly measures the queue; CPU seconds / threads estimates
            # the wall time the same work takes on 2 idle cores.
            quiet = n / (cpu / args.threads)
            rows.append([name, f"{n:,}", f"{seconds:.1f}", f"{cpu:.1f}", f"{rate:.1f}", f"{quiet:.1f}",
                         f"{20_000 / rate:.0f} / {20_000 / quiet:.0f}", f"{100_000 / rate:.0f} / {100_000 / quiet:.0f}"])
            results.setdefault(name, []).append({"captions": n, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                                                 "captions_per_second": round(rate, 1),
                                                 "captions_per_second_idle_estimate": round(quiet, 1),
                                                 "seconds_for_20k": round(20_000 / rate, 1),
                                                 "seconds_for_100k": round(100_000 / rate, 1),
                                                 "seconds_for_20k_idle_estimate": round(20_000 / quiet, 1),
                                                 "seconds_for_100k_idle_estimate": round(100_000 / quiet, 1)})
    print(f"torch threads: {args.threads}; model load {load_seconds:.1f}s; load average before {load_before}, "
          f"after {load_average()}")
    print(table(["embedder", "captions", "wall s", "CPU s", "captions/s", "idle est. /s",
                 "s for 20k (wall / idle est.)", "s for 100k (wall / idle est.)"], rows))
    path = write_result("bench_text_embed_speed", {"threads": args.threads, "model_load_seconds": round(load_seconds, 1),
                                                   "load_average_before": load_before, "results": results,
                                                   "extrapolated": not args.full})
    print(f"wrote {path}")


def _coherence(vectors: np.ndarray, assignments: np.ndarray) -> float:
    """Size-weighted mean cosine similarity of members to their cluster's centroid."""
    total = 0.0
    for cluster in np.unique(assignments):
        members = vectors[assignments == cluster]
        centre = members.mean(axis=0)
        norm = np.linalg.norm(centre)
        if norm > 0:
            total += float((members @ (centre / norm)).sum())
    return total / len(vectors)


def _coverage(captions: list[str], assignments: np.ndarray, clusters: list[dict]) -> float:
    """Size-weighted share of captions containing one of their cluster label's words."""
    hit = 0
    for cluster in clusters:
        words = [w for w in re.findall(r"[a-z]+", cluster["label"].lower()) if len(w) > 1]
        if not words:
            continue
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I)
        members = np.flatnonzero(assignments == cluster["id"])
        hit += sum(1 for i in members if pattern.search(captions[i]))
    return hit / len(captions)


def labels(args) -> None:
    from atlas.models.captionmodel import text_embed
    from atlas.models.tfidf import tfidf_embed
    from atlas.stages.project import project

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    captions = _captions(10_000)
    vectors = {}
    for name in ("text", "tfidf"):
        path = cache / f"sample10k-{name}.npy"
        if not path.exists():
            started = time.perf_counter()
            array = text_embed(_model(cache / "models"), captions, 64) if name == "text" else tfidf_embed(captions, seed=42)
            np.save(path, array)
            print(f"embedded 10k captions with {name} in {time.perf_counter() - started:.0f}s")
        vectors[name] = np.load(path)
    projections = {name: project(v, captions, ProjectConfig()) for name, v in vectors.items()}
    rows, result = [], {}
    for name, projection in projections.items():
        coarse = projection.levels[0]
        entry = {
            "clusters": len(coarse.clusters),
            "label_coverage": round(_coverage(captions, coarse.assignments, coarse.clusters), 3),
            "coherence_in_meaning": round(_coherence(vectors["text"], coarse.assignments), 3),
            "coherence_in_words": round(_coherence(vectors["tfidf"], coarse.assignments), 3),
            "labels": [c["label"] for c in sorted(coarse.clusters, key=lambda c: -c["size"])],
        }
        result[name] = entry
        rows.append([name, entry["clusters"], entry["label_coverage"], entry["coherence_in_meaning"],
                     entry["coherence_in_words"]])
    print(table(["map", "coarse clusters", "label coverage", "coherence in meaning", "coherence in words"], rows))
    for name, entry in result.items():
        print(f"\n{name} labels (largest first): " + " · ".join(entry["labels"]))
    path = write_result("bench_text_embed_labels", {"sample": SAMPLE.name, "results": result})
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fast = sub.add_parser("speed")
    fast.add_argument("--captions", type=int, default=2000)
    fast.add_argument("--threads", type=int, default=2)
    fast.add_argument("--full", action="store_true")
    fast.add_argument("--cache", default="/tmp/atlas-bench-text")
    lab = sub.add_parser("labels")
    lab.add_argument("--cache", default="/tmp/atlas-bench-text")
    args = parser.parse_args()
    {"speed": speed, "labels": labels}[args.command](args)


if __name__ == "__main__":
    main()
