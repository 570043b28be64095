"""CLIP image and text embedding throughput on CUDA with fp16 (random weights, no download).

    python benchmarks/bench_clip_gpu.py [--model ViT-B-32] [--images 4096] [--texts 16384]

Uses atlas's own code path (``atlas.models.clip.clip_texts`` / ``clip_images``) on a model
created by open_clip with random weights, so it measures the throughput a build would get with
real weights of the same architecture. Prints "no CUDA device; skipped" without a GPU.
Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--texts", type=int, default=16384)
    parser.add_argument("--image-batch", type=int, default=256)
    parser.add_argument("--text-batch", type=int, default=1024)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device; skipped")
        return

    import numpy as np
    from PIL import Image

    from atlas.models._torch_compat import import_open_clip
    from atlas.models.clip import Clip, clip_images, clip_texts

    open_clip = import_open_clip()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model, device="cuda", precision="fp16")
    model.eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    clip = Clip(model, preprocess, tokenizer, "cuda", torch.float16, f"{args.model} (random weights)",
                int(model.embed_dim) if hasattr(model, "embed_dim") else 512)

    rng = np.random.default_rng(0)
    words = "a photo of red blue dress car house dog cat tree city night beach vintage modern art".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(4, 20))) for _ in range(args.texts)]
    # Images of a typical LAION size, decoded once; preprocessing (resize + crop) is part of the timing.
    pool = [Image.fromarray(rng.integers(0, 255, size=(384, 512, 3), dtype=np.uint8)) for _ in range(64)]
    images = [pool[i % len(pool)] for i in range(args.images)]

    # Warm-up: kernels, cuDNN autotuning, allocator.
    clip_texts(clip, texts[: args.text_batch], args.text_batch)
    clip_images(clip, images[: args.image_batch], args.image_batch)

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    text_vectors = clip_texts(clip, texts, args.text_batch)
    torch.cuda.synchronize()
    text_seconds = time.perf_counter() - started

    started = time.perf_counter()
    image_vectors = clip_images(clip, images, args.image_batch)
    torch.cuda.synchronize()
    image_seconds = time.perf_counter() - started

    # Model-only image throughput (preprocessed tensors already on the GPU), the upper bound.
    pixels = torch.stack([preprocess(image) for image in pool]).to("cuda", torch.float16)
    batch = pixels.repeat(-(-args.image_batch // len(pool)), 1, 1, 1)[: args.image_batch]
    steps = max(1, args.images // args.image_batch)
    torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        for _ in range(steps):
            model.encode_image(batch)
    torch.cuda.synchronize()
    model_seconds = time.perf_counter() - started

    assert text_vectors.shape[0] == args.texts and image_vectors.shape[0] == args.images
    report = {
        "benchmark": "clip_gpu",
        "model": args.model,
        "precision": "fp16",
        "device": torch.cuda.get_device_name(0),
        "texts_per_s": round(args.texts / text_seconds, 1),
        "images_per_s_with_preprocess": round(args.images / image_seconds, 1),
        "images_per_s_model_only": round(steps * args.image_batch / model_seconds, 1),
        "text_batch": args.text_batch,
        "image_batch": args.image_batch,
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for key, value in report.items():
        print(f"{key:>30}: {value}")
    out = ROOT / "benchmarks" / "results" / f"{args.name or 'clip_gpu_' + args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
