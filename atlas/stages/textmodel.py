"""The ``textmodel`` stage: the caption model the map was embedded with, for the reader's browser.

When the map was embedded with the caption model (``embed.read(...).method == "text"``), the
site can embed a reader's own words the same way, in the browser, and compare them with the
map's points. For that this stage writes (copied by render to ``<site>/model/``):

``model.onnx``
    The sentence-transformers model as one ONNX graph: the transformer, mean pooling over the
    attention mask and L2 normalisation are all inside, so the page only tokenises. Inputs
    ``input_ids`` and ``attention_mask`` (int64 [batch, tokens]), output ``embedding``
    (float32 [batch, dim], unit length). Quantised with onnxruntime's dynamic int8, **per
    channel** (per tensor moves vectors too far: cosine 0.96 mean against the build's), when
    the quantised graph still agrees with sentence-transformers on the sample's own captions
    (:data:`MIN_MEAN_COSINE`, :data:`MIN_COSINE`); else the exact fp32 export is kept.
``vocab.txt``
    The WordPiece vocabulary, one token a line, line i = token id i.
``vectors.bin`` (up to :data:`atlas.models.ivf.EXACT_MAX` points)
    The map's embeddings in the map's point order (point p = the p-th caption of the map data):
    int8 [count, dim] (each point's vector divided by its largest absolute component, times
    127), then, 4-byte aligned, float32 [count] per-point scales (largest component / 127), so
    ``dot(query, int8_p) * scale_p`` is the cosine up to the rounding. Fetched on first use and
    scanned exactly.
``ivf/index.bin``, ``ivf/<c>.bin`` (above that)
    The same vectors clustered (an inverted file): the centroids once, then per query only the
    clusters nearest to it, within a byte budget, so a map of 1M points stays searchable. The
    format and the probe rule: :mod:`atlas.models.ivf`.
``text-model.json``
    What the page needs: the files (bytes, SHA-256), the tokenizer's settings (lower-casing,
    accents, Chinese characters, special tokens, ``max_tokens``: what the build cut captions
    at), the dimension, the quantisation and its measured agreement, ``vectors`` (its layout:
    ``kind`` is ``"exact"`` or ``"clustered"``).

The JavaScript side (``themes/default/static/js/text/``) implements BERT's WordPiece itself, so
only tokenizers of that family (BertNormalizer, BertPreTokenizer, WordPiece) are exported; any
other caption model gets an unavailable manifest with a reader's reason, and the build a warning.

When the map was embedded with CLIP (``method == "clip"``: image embeddings, or caption ones
where images are missing), the same folder holds CLIP's text tower instead, so a reader's words
are compared with the points in CLIP space (:func:`write_clip_model`, the pieces in
:mod:`atlas.models.cliptext`): ``model.onnx`` takes ``input_ids`` only (int64 [batch,
context_length], zero padded as open_clip pads them) and gives the unit-length ``embedding``;
``clip-bpe.txt`` and ``clip-clean.json`` replace ``vocab.txt``; the manifest says ``"kind":
"clip"`` and its ``tokenizer`` is ``{"kind": "clip-bpe", "context_length", "specials", "sot",
"eot", "pad", "clean", "vocab_size"}``; the agreement is with open_clip in torch (plus its
``max_abs_difference``). Only open_clip's own BPE tokenizer is supported.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from atlas.core.cache import file_digest
from atlas.core.pipeline import Stage
from atlas.models import ivf

log = logging.getLogger(__name__)

#: The map's vectors up to ivf.EXACT_MAX points (one file, scanned exactly in the browser).
quantise_vectors = ivf.quantise_vectors
write_vectors = ivf.write_exact

MANIFEST = "text-model.json"
MODEL = "model.onnx"
VOCAB = "vocab.txt"
VECTORS = ivf.EXACT_FILE
FORMAT = 1
#: The quantised model must agree this well with sentence-transformers on the sample's captions
#: (cosine of the two vectors of each caption), else the fp32 export ships.
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.97
#: Captions of the sample that check the exported model (the first ones, in row order).
CHECK_CAPTIONS = 200
OPSET = 17
#: What the page says when the caption model cannot run in the browser (reader words).
UNAVAILABLE = "Search by meaning is not available for this atlas: its caption model could not be prepared for the browser."


def _file_entry(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": file_digest(path)}


def tokenizer_settings(tokenizer_json: dict, max_tokens: int) -> dict:
    """The BERT WordPiece settings the page's tokenizer needs, from a ``tokenizer.json``.

    A ValueError when the tokenizer is not of that family (the page implements only it).
    """
    normalizer = tokenizer_json.get("normalizer") or {}
    pre = tokenizer_json.get("pre_tokenizer") or {}
    model = tokenizer_json.get("model") or {}
    if normalizer.get("type") != "BertNormalizer" or pre.get("type") != "BertPreTokenizer" \
            or model.get("type") != "WordPiece":
        raise ValueError(f"tokenizer {normalizer.get('type')}/{pre.get('type')}/{model.get('type')} is not BERT WordPiece")
    vocab = model["vocab"]
    lowercase = bool(normalizer.get("lowercase", True))
    strip = normalizer.get("strip_accents")
    specials = [t["content"] for t in tokenizer_json.get("added_tokens") or [] if t.get("special")]
    return {
        "clean_text": bool(normalizer.get("clean_text", True)),
        "chinese_chars": bool(normalizer.get("handle_chinese_chars", True)),
        "strip_accents": lowercase if strip is None else bool(strip),  # the tokenizers library's rule
        "lowercase": lowercase,
        "unk": model.get("unk_token", "[UNK]"),
        "prefix": model.get("continuing_subword_prefix", "##"),
        "max_word_chars": int(model.get("max_input_chars_per_word", 100)),
        "cls": vocab["[CLS]"],
        "sep": vocab["[SEP]"],
        # Written literally in a text, these are matched before normalising (as the tokenizers library does).
        "specials": {token: vocab[token] for token in specials if token in vocab},
        "max_tokens": int(max_tokens),
    }


def _vocab_lines(tokenizer_json: dict) -> list[str]:
    vocab = tokenizer_json["model"]["vocab"]
    lines = [""] * len(vocab)
    for token, index in vocab.items():
        lines[index] = token
    if any("\n" in token for token in lines):
        raise ValueError("a vocabulary token holds a line break")
    return lines


def export_onnx(st_model, path: Path) -> None:
    """The transformer + mean pooling + L2 normalisation as one ONNX graph (fp32)."""
    import torch

    transformer = st_model[0].auto_model.eval()

    class Sentence(torch.nn.Module):
        """sentence-transformers' Transformer -> Pooling(mean) -> Normalize, as its modules do it."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102]], dtype=torch.int64)
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            Sentence(transformer).eval(), (ids, torch.ones_like(ids)), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )


def _quiet():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def quiet():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            previous = logging.getLogger().level
            logging.getLogger().setLevel(logging.ERROR)  # the quantiser's "consider pre-processing" line
            try:
                yield
            finally:
                logging.getLogger().setLevel(previous)

    return quiet()


def quantise(source: Path, target: Path) -> None:
    """onnxruntime's dynamic int8 quantisation, per channel (per tensor loses the ranking)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)


def onnx_embed(model_path: Path, tokenizer, texts: list[str], max_tokens: int) -> "np.ndarray":
    """Embed texts with the ONNX graph in Python onnxruntime (the tokenizer of sentence-transformers)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    out = []
    for text in texts:
        encoded = tokenizer([text], truncation=True, max_length=max_tokens, return_tensors="np")
        out.append(session.run(None, {"input_ids": encoded["input_ids"].astype(np.int64),
                                      "attention_mask": encoded["attention_mask"].astype(np.int64)})[0][0])
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def agreement(a: "np.ndarray", b: "np.ndarray") -> dict:
    import numpy as np

    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"captions": int(len(cos)), "mean_cosine": round(float(cos.mean()), 5) if len(cos) else None,
            "min_cosine": round(float(cos.min()), 5) if len(cos) else None}


def write_text_model(st_model, max_tokens: int, name: str, tokenizer_json: dict, vectors: "np.ndarray",
                     check_texts: list[str], folder: Path, exact_max: int = ivf.EXACT_MAX) -> dict:
    """Export, quantise, check and write the browser's caption model into ``folder``; the summary.

    ``st_model`` is the loaded SentenceTransformer; ``vectors`` the map's embeddings in the
    map's point order; ``check_texts`` captions to compare the ONNX vectors with the build's;
    above ``exact_max`` points the vectors are clustered (:func:`atlas.models.ivf.write_layout`).
    """
    import numpy as np

    folder = Path(folder)
    started = time.perf_counter()
    settings = tokenizer_settings(tokenizer_json, max_tokens)
    (folder / VOCAB).write_text("\n".join(_vocab_lines(tokenizer_json)) + "\n", encoding="utf-8")
    exact = folder / "model-fp32.onnx"
    export_onnx(st_model, exact)
    exported = time.perf_counter()
    quantised = folder / MODEL
    quantise(exact, quantised)
    done = time.perf_counter()
    texts = [t for t in check_texts if isinstance(t, str)][:CHECK_CAPTIONS]
    reference = st_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False) \
        if texts else np.zeros((0, 1), np.float32)
    measured = agreement(onnx_embed(quantised, st_model.tokenizer, texts, max_tokens), reference) if texts else agreement(reference, reference)
    quantisation = "int8 per channel"
    if texts and (measured["mean_cosine"] < MIN_MEAN_COSINE or measured["min_cosine"] < MIN_COSINE):
        log.warning("int8 caption model agrees too little (%s); shipping fp32", measured)
        exact.replace(quantised)
        measured = agreement(onnx_embed(quantised, st_model.tokenizer, texts, max_tokens), reference)
        quantisation = "none (fp32)"
    else:
        exact.unlink()
    laid_out = time.perf_counter()
    vector_entry = ivf.write_layout(folder, vectors, exact_max=exact_max)
    laid_out = time.perf_counter() - laid_out
    manifest = {
        "format": FORMAT,
        "available": True,
        "kind": "text",
        "model": name,
        "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "files": {"model": _file_entry(quantised), "vocab": _file_entry(folder / VOCAB)},
        "vectors": vector_entry,
        "tokenizer": settings,
        "inputs": ["input_ids", "attention_mask"],
        "output": "embedding",
        "quantisation": quantisation,
        "agreement": measured,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"model": name, "bytes": quantised.stat().st_size, "vectors_bytes": vector_entry["bytes"],
            "vectors_kind": vector_entry["kind"], "vectors_seconds": round(laid_out, 2),
            "quantisation": quantisation, "agreement": measured,
            "export_seconds": round(exported - started, 2), "quantise_seconds": round(done - exported, 2)}


def write_clip_model(clip, vectors: "np.ndarray", check_texts: list[str], folder: Path, batch_size: int = 64,
                     exact_max: int = ivf.EXACT_MAX) -> dict:
    """CLIP's text tower for the browser (:mod:`atlas.models.cliptext`): the ONNX graph (int8 per
    channel when it agrees with torch as well as the caption model must, else fp32), the BPE
    tokenizer's files and the map's vectors (laid out as for the caption model); the summary.
    ``clip`` is the build's loaded CLIP."""
    import numpy as np

    from atlas.models import cliptext
    from atlas.models.clip import clip_texts

    folder = Path(folder)
    started = time.perf_counter()
    settings = cliptext.write_tokenizer(clip.tokenizer, folder)
    exact = folder / "model-fp32.onnx"
    cliptext.export(clip.model, exact, settings["context_length"])
    exported = time.perf_counter()
    quantised = folder / MODEL
    quantise(exact, quantised)
    done = time.perf_counter()
    texts = [t for t in check_texts if isinstance(t, str)][:CHECK_CAPTIONS]
    reference = clip_texts(clip, texts, batch_size) if texts else np.zeros((0, 1), np.float32)

    def measure(path: Path) -> dict:
        if not texts:
            return agreement(reference, reference)
        got = cliptext.onnx_embed(path, clip.tokenizer, texts)
        return {**agreement(got, reference), "max_abs_difference": round(float(np.abs(got - reference).max()), 7)}

    measured, quantisation = measure(quantised), "int8 per channel"
    if texts and (measured["mean_cosine"] < MIN_MEAN_COSINE or measured["min_cosine"] < MIN_COSINE):
        log.warning("int8 CLIP text tower agrees too little (%s); shipping fp32", measured)
        exact.replace(quantised)
        measured, quantisation = measure(quantised), "none (fp32)"
    else:
        exact.unlink()
    laid_out = time.perf_counter()
    vector_entry = ivf.write_layout(folder, vectors, exact_max=exact_max)
    laid_out = time.perf_counter() - laid_out
    manifest = {
        "format": FORMAT,
        "available": True,
        "kind": "clip",
        "model": clip.name,
        "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "files": {"model": _file_entry(quantised), "bpe": _file_entry(folder / cliptext.BPE),
                  "clean": _file_entry(folder / cliptext.CLEAN)},
        "vectors": vector_entry,
        "tokenizer": settings,
        "inputs": ["input_ids"],
        "output": "embedding",
        "quantisation": quantisation,
        "agreement": measured,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"model": clip.name, "kind": "clip", "bytes": quantised.stat().st_size, "vectors_bytes": vector_entry["bytes"],
            "vectors_kind": vector_entry["kind"], "vectors_seconds": round(laid_out, 2),
            "tokenizer_bytes": manifest["files"]["bpe"]["bytes"] + manifest["files"]["clean"]["bytes"],
            "quantisation": quantisation, "agreement": measured,
            "export_seconds": round(exported - started, 2), "quantise_seconds": round(done - exported, 2)}


def write_unavailable(folder: Path, reason: str) -> dict:
    (Path(folder) / MANIFEST).write_text(json.dumps({"format": FORMAT, "available": False, "reason": UNAVAILABLE,
                                                     "why": reason}, indent=1))
    return {"available": False, "why": reason}


# ----------------------------------------------------------------------------- stage


def _enabled(ctx) -> bool:
    """Only for a map embedded with the caption model or CLIP that has points: a site whose map is
    empty (unscored data shows no row) has nothing to search, so ships no 37 MB model and runtime."""
    from atlas.stages import embed, mapdata

    info = embed.read(ctx.outputs.get("embed"))
    if info is None or info.method not in ("text", "clip") or "mapdata" not in ctx.outputs:
        return False
    points = mapdata.read(ctx.outputs["mapdata"])
    return points is not None and points.count > 0


def _inputs(ctx) -> dict:
    import importlib.metadata

    from atlas.models.captionmodel import text_model_identity

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    layout = {"exact_max": ivf.EXACT_MAX, "probe_bytes": ivf.PROBE_BYTES, "capacity": ivf.CAPACITY,
              "seed": ivf.SEED, "train": ivf.TRAIN_PER_CLUSTER, "iterations": ivf.ITERATIONS}
    if _method(ctx) == "clip":  # the weights, and the libraries whose tables the tokenizer's files copy
        from atlas.models.clip import model_identity

        return {"clip_model": model_identity(ctx.config.embed, ctx.content_dir),
                "libraries": {name: version(name) for name in ("torch", "onnx", "onnxruntime", "faiss-cpu",
                                                               "open_clip_torch", "ftfy")},
                "python": list(sys.version_info[:2]), "opset": OPSET,
                "check": [CHECK_CAPTIONS, MIN_MEAN_COSINE, MIN_COSINE], "vectors": layout}
    return {"text_model": text_model_identity(ctx.config.embed, ctx.content_dir),
            "libraries": {name: version(name) for name in ("torch", "onnx", "onnxruntime", "faiss-cpu")},
            "opset": OPSET, "check": [CHECK_CAPTIONS, MIN_MEAN_COSINE, MIN_COSINE], "vectors": layout}


def _method(ctx) -> str | None:
    from atlas.stages import embed

    info = embed.read(ctx.outputs.get("embed"))
    return None if info is None else info.method


def _run(ctx, folder: Path) -> dict:
    import numpy as np

    from atlas.core.errors import ModelError
    from atlas.models.captionmodel import load_text_model, text_model_source
    from atlas.stages import embed, mapdata

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        ctx.reporter.warn("textmodel", f"search by meaning in the browser needs onnx and onnxruntime ({error}); "
                          'pip install torch==2.13.0 ".[text]"')
        return write_unavailable(folder, str(error))
    if _method(ctx) == "clip":
        return _run_clip(ctx, folder)
    try:
        model = load_text_model(ctx.config.embed, ctx.content_dir, embed.models_dir(ctx))
        source = Path(text_model_source(ctx.config.embed, ctx.content_dir, embed.models_dir(ctx)))
        tokenizer_json = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
        tokenizer_settings(tokenizer_json, model.model.max_seq_length)  # a ValueError unless BERT WordPiece
    except (ModelError, OSError, ValueError, KeyError) as error:
        ctx.reporter.warn("textmodel", f"the caption model cannot be exported for the browser ({error}); "
                          "the site offers no search by meaning")
        return write_unavailable(folder, str(error))
    info = embed.read(ctx.output("embed"))
    data = mapdata.read(ctx.output("mapdata"))
    rows = data.row_ids()
    vectors = info.embeddings()[np.asarray(rows, dtype=np.int64)] if len(rows) else np.zeros((0, info.dim), np.float32)
    return write_text_model(model.model, int(model.model.max_seq_length), model.name, tokenizer_json, vectors,
                            data.captions()[:CHECK_CAPTIONS], folder)


def _run_clip(ctx, folder: Path) -> dict:
    import numpy as np

    from atlas.core.errors import ModelError
    from atlas.models import cliptext
    from atlas.models.clip import load_clip
    from atlas.stages import embed, mapdata

    try:
        clip = load_clip(ctx.config.embed, ctx.content_dir)
        cliptext.tokenizer_settings(clip.tokenizer)  # a ValueError unless open_clip's BPE
    except (ModelError, OSError, ValueError) as error:
        ctx.reporter.warn("textmodel", f"the CLIP text tower cannot be exported for the browser ({error}); "
                          "the site offers no search by meaning")
        return write_unavailable(folder, str(error))
    info = embed.read(ctx.output("embed"))
    data = mapdata.read(ctx.output("mapdata"))
    rows = data.row_ids()
    vectors = info.embeddings()[np.asarray(rows, dtype=np.int64)] if len(rows) else np.zeros((0, info.dim), np.float32)
    return write_clip_model(clip, vectors, data.captions()[:CHECK_CAPTIONS], folder, clip.batch_size(ctx.config.embed))


STAGE = Stage(
    "textmodel",
    "3",  # 2: vectors.kind, the clustered layout above ivf.EXACT_MAX points; 3: CLIP's text tower for a CLIP map
    inputs=_inputs,
    run=_run,
    after=("embed", "mapdata"),
    enabled=_enabled,
    description="the caption model or CLIP's text tower as ONNX (+ the map's vectors) for search by meaning in the browser",
)


# ----------------------------------------------------------------------------- reader


@dataclass
class TextModelFiles:
    """What the stage wrote: the folder render copies to ``<site>/model/`` and its manifest."""

    folder: Path
    manifest: dict

    @property
    def available(self) -> bool:
        return bool(self.manifest.get("available"))


def read(folder: Path | None) -> TextModelFiles | None:
    """The stage's output, or None (no folder or no readable manifest)."""
    from atlas.core.cache import read_json

    manifest = read_json(folder, MANIFEST)
    return None if manifest is None else TextModelFiles(Path(folder), manifest)
