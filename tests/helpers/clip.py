"""The tiny CLIP: random weights, the real open_clip code paths and the real tokenizer, in seconds."""

from __future__ import annotations

import json
from pathlib import Path

#: A one-layer ViT on 32x32 images and a one-layer text transformer with the real 49,408-token vocabulary.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_clip(folder: Path, seed: int = 0) -> dict:
    """Create the tiny CLIP with random weights; save a config file, a checkpoint and a local-dir.
    (The ``tiny_clip`` fixture is one of these per session; call this for another seed.)"""
    from atlas.models._torch_compat import import_open_clip

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
