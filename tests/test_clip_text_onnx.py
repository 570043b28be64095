"""CLIP's text tower as ONNX (atlas.models.cliptext.export), on the tiny random-weight
open_clip model the tests save: the same code path as real weights from a local path, so the
exported graph must give torch's vectors for real captions (within 1e-4, in Python onnxruntime)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pyarrow.parquet as pq
import pytest


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("open_clip", "onnx", "torch")),
                       reason="needs open_clip, torch and onnx (pip install torch==2.13.0 '.[ml,text]')"),
]


def test_the_tiny_clips_onnx_text_tower_gives_torchs_vectors(tmp_path, shared_data, tiny_clip):
    import onnxruntime as ort
    import torch

    from atlas.core.config import EmbedConfig
    from atlas.models.clip import clip_texts, load_clip
    from atlas.models.cliptext import export as export_clip_text

    saved = tiny_clip
    clip = load_clip(EmbedConfig(method="clip", model=str(saved["config"]), pretrained=str(saved["checkpoint"]), device="cpu"))
    captions = [c for c in pq.read_table(shared_data / "laion400m-sample-10k.parquet").column("TEXT").to_pylist()
                if isinstance(c, str)][:50]
    captions += ["", "🐶 " * 200, "שלום עולם", "<script>x</script>"]
    export_clip_text(clip.model, tmp_path / "clip-text.onnx")
    session = ort.InferenceSession(str(tmp_path / "clip-text.onnx"), providers=["CPUExecutionProvider"])
    tokens = clip.tokenizer(captions)
    got = session.run(None, {"input_ids": tokens.numpy().astype(np.int64)})[0]
    want = clip_texts(clip, captions, batch_size=16)
    with torch.no_grad():
        direct = clip.model.encode_text(tokens, normalize=True).float().numpy()
    assert got.shape == want.shape == (len(captions), clip.dim)
    assert np.abs(got - want).max() < 1e-4 and np.abs(got - direct).max() < 1e-4
