"""Embed-stage throughput on this machine's CPU: captions/s (and images/s) per core.

    python benchmarks/bench_embed.py [--captions 4000] [--images 256] [--ray]

Side by side, in one run, on real LAION captions (../shared) and the shared photos:

- CLIP text (a tiny random open_clip model -- the tests' one -- so the figure is the pipeline's
  overhead ceiling, not ViT-B/32's speed): atlas's ``clip_texts`` against the loop a skilled user
  writes (``tokenizer`` + ``model.encode_text`` in ``torch.inference_mode`` + normalise);
- CLIP images (same tiny model): atlas's ``embed_images_of`` (fetch from memory, decode + preprocess + encode) against
  the plain loop (PIL open + preprocess + encode_image);
- TF-IDF + SVD: atlas's ``tfidf_embed`` against scikit-learn's ``TfidfVectorizer`` +
  ``TruncatedSVD.fit_transform`` written directly;
- with ``--ray`` (needs ``pip install ".[ray]"``): the whole ``embed_sample`` with
  ``engine = "ray"`` on a local 2-CPU Ray, start-up included, against ``engine = "local"``.

Per-core figures divide by the torch / BLAS threads in use. Writes
``benchmarks/results/bench_embed.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import load_average, machine, table, write_result  # noqa: E402


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=4000)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from helpers.clip import save_tiny_clip
    from helpers.paths import IMAGES, SAMPLE_10K
    from PIL import Image

    from atlas.core.config import EmbedConfig
    from atlas.fetch.images import Fetched
    from atlas.models.clip import clip_texts, load_clip
    from atlas.models.tfidf import tfidf_embed
    from atlas.stages.embed import embed_images_of, embed_sample

    captions = pq.read_table(SAMPLE_10K, columns=["TEXT"]).column(0).to_pylist()
    captions = [c if isinstance(c, str) else "" for c in (captions * (args.captions // len(captions) + 1))[:args.captions]]
    photos = sorted(IMAGES.glob("*.jpg"))
    blobs = [photos[i % len(photos)].read_bytes() for i in range(args.images)]
    threads = torch.get_num_threads()
    load_before = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        tiny = save_tiny_clip(Path(tmp) / "clip")
        config = EmbedConfig(method="clip", model=str(tiny["config"]), pretrained=str(tiny["checkpoint"]))
        clip = load_clip(config)

        def plain_texts():
            out = []
            with torch.inference_mode():
                for start in range(0, len(captions), 128):
                    v = clip.model.encode_text(clip.tokenizer(captions[start:start + 128])).float()
                    out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
            return np.concatenate(out)

        def plain_images():
            with torch.inference_mode():
                for start in range(0, len(blobs), 32):
                    import io

                    pixels = torch.stack([clip.preprocess(Image.open(io.BytesIO(b)).convert("RGB"))
                                          for b in blobs[start:start + 32]])
                    torch.nn.functional.normalize(clip.model.encode_image(pixels).float(), dim=-1)

        class InMemory:  # an image source answering from the blobs (the stage drops bytes as it goes)
            def fetch(self, items):
                return [Fetched(row, data=blobs[row]) for row, _ in items]

        items = [(i, None) for i in range(len(blobs))]
        rows = []
        timings = {
            "clip_text_atlas": (_best(lambda: clip_texts(clip, captions, 128), args.repeat), len(captions), threads),
            "clip_text_plain": (_best(plain_texts, args.repeat), len(captions), threads),
            "clip_image_atlas": (_best(lambda: embed_images_of(clip, InMemory(), items, 32, 40_000_000), args.repeat),
                                 len(blobs), threads),
            "clip_image_plain": (_best(plain_images, args.repeat), len(blobs), threads),
            "tfidf_atlas": (_best(lambda: tfidf_embed(captions), args.repeat), len(captions), 1),
        }

        def plain_tfidf():
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer

            m = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32).fit_transform(captions)
            TruncatedSVD(128, algorithm="randomized", n_iter=5, random_state=0).fit_transform(m)

        timings["tfidf_plain"] = (_best(plain_tfidf, args.repeat), len(captions), 1)
        if args.ray:
            n = len(captions)
            sample = pa.table({"row_id": pa.array(range(n), pa.int64()), "url": [""] * n, "caption": captions,
                               "source_row": pa.array(range(n), pa.int64())})
            for method, extra in (("tfidf", {}), ("clip", {"model": config.model, "pretrained": config.pretrained})):
                for engine in ("local", "ray"):
                    cfg = EmbedConfig(method=method, engine=engine, **extra)
                    seconds = _best(lambda cfg=cfg: embed_sample(sample, cfg), 1)
                    timings[f"stage_{method}_{engine}"] = (seconds, n, 2 if engine == "ray" else threads)

    results = {}
    for name, (seconds, count, cores) in timings.items():
        rate = count / seconds
        results[name] = {"seconds": round(seconds, 3), "items": count, "per_s": round(rate, 1),
                         "cores": cores, "per_s_per_core": round(rate / cores, 1)}
        rows.append([name, count, f"{seconds:.2f}", f"{rate:,.0f}", cores, f"{rate / cores:,.0f}"])
    print(table(["what", "items", "s", "items/s", "cores", "items/s/core"], rows))
    load = load_average()
    print(f"load average before {load_before}, after {load} on {os.cpu_count()} cores; no GPU")
    write_result("bench_embed", {"machine": machine(), "load_before": load_before, "load_after": load,
                                 "torch_threads": threads, "results": results, "gpu": None})


if __name__ == "__main__":
    main()
