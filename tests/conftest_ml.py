"""Shared helpers for the map back-end tests (sample, embed, project): real parquet, real models.

A plain module (imported by the tests), not a pytest conftest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE_10K = SHARED / "data" / "laion400m-sample-10k.parquet"
IMAGES = SHARED / "data" / "images"

needs_shared = pytest.mark.skipif(
    not SAMPLE_10K.exists(), reason=f"shared test data not found at {SHARED} (see shared/README.md)"
)

#: A tiny CLIP: a one-layer ViT on 32x32 images and a one-layer text transformer with the real
#: 49,408-token vocabulary, so the real tokenizer and the real open_clip code paths run in seconds.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_shard(path: Path, rows: list[dict]) -> Path:
    """A LAION-style parquet shard (LAION's column names) from a list of dicts."""
    columns = sorted({key for row in rows for key in row})
    table = pa.table({name: [row.get(name) for row in rows] for name in columns})
    pq.write_table(table, path)
    return path


def make_context(tmp_path: Path, sources: list[str] | None = None, **sections):
    """A real BuildContext over real shards, with a cache under tmp_path and a quiet reporter."""
    from atlas.cache import Cache
    from atlas.config import parse_config
    from atlas.data import resolve_sources
    from atlas.pipeline import BuildContext
    from atlas.report import Reporter

    config = parse_config(sections)
    return BuildContext(
        config=config,
        content_dir=tmp_path,
        cache=Cache(tmp_path / "cache"),
        reporter=Reporter(quiet=True),
        sources=resolve_sources(sources or [], tmp_path),
    )


def save_tiny_clip(folder: Path, seed: int = 0) -> dict:
    """Create the tiny CLIP with random weights; save a config file, a checkpoint and a local-dir."""
    from atlas._torch_compat import import_open_clip

    open_clip = import_open_clip()
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "atlas-tiny-clip.json"
    config_path.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model("atlas-tiny-clip")
    checkpoint = folder / "tiny-clip.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    local_dir = folder / "local"
    local_dir.mkdir(exist_ok=True)
    (local_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}}))
    torch.save(model.state_dict(), local_dir / "open_clip_pytorch_model.bin")
    return {"config": config_path, "checkpoint": checkpoint, "local_dir": local_dir}
