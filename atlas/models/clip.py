"""CLIP through open_clip: loading the weights ``[embed] model`` / ``pretrained`` name, and
embedding texts (:func:`clip_texts`) and images (:func:`clip_images`, :func:`clip_pixels`) into
L2-normalised float32 vectors.

Weights: an open_clip tag (downloaded once by open_clip), a checkpoint file, or
``local-dir:/path`` (an open_clip model folder). A loaded model is kept per process. torch and
open_clip are imported inside the functions (through :mod:`atlas.models._torch_compat`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from atlas.core.cache import file_stamp
from atlas.core.config import EmbedConfig, content_path
from atlas.core.errors import ConfigError, ModelError
from atlas.models.device import resolve_device
from atlas.models.embedder import normalise

if TYPE_CHECKING:
    import numpy as np

LOCAL_DIR = "local-dir:"


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
    return normalise(out)


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
        return normalise(clip.model.encode_image(batch).float().cpu().numpy())



@dataclass
class ClipEmbedder:
    """CLIP as an :class:`atlas.models.embedder.Embedder`: the loaded model and the batch sizes of
    the config it was loaded for."""

    clip: Clip
    config: EmbedConfig
    method: ClassVar[str] = "clip"

    @property
    def name(self) -> str:
        return self.clip.name

    @property
    def dim(self) -> int:
        return self.clip.dim

    def embed_texts(self, texts: Sequence[str], progress=None) -> np.ndarray:
        return clip_texts(self.clip, list(texts), self.clip.batch_size(self.config), progress)

    def embed_images(self, images: Sequence) -> tuple[np.ndarray, list]:
        """CLIP image embeddings of PIL images, file paths or bytes.

        Returns ``(vectors, errors)``: float32 [len(images), D], L2-normalised, and one entry per
        input, None or a short reason (``not an image``, ``unreadable file``); a failed input's
        row is all zeros.
        """
        import numpy as np

        from atlas.fetch.images import decode_image

        clip, config = self.clip, self.config
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


def load_embedder(config: EmbedConfig, *, base: Path | None = None, **_) -> ClipEmbedder:
    """The registry's loader (:func:`atlas.models.embedder.load_embedder`)."""
    return ClipEmbedder(load_clip(config, base), config)


def embed_texts(texts: Sequence[str], config: EmbedConfig, base: Path | None = None) -> np.ndarray:
    """CLIP text embeddings, float32 [len(texts), D], L2-normalised (ModelError without weights)."""
    return load_embedder(config, base=base).embed_texts(texts)


def embed_images(images: Sequence, config: EmbedConfig, base: Path | None = None) -> tuple[np.ndarray, list]:
    """:meth:`ClipEmbedder.embed_images` with the model of ``config``."""
    return load_embedder(config, base=base).embed_images(images)


def image_size(clip: Clip) -> int:
    """The side of the square CLIP sees (224 for ViT-B/32): what downloaded images are resized to."""
    size = getattr(getattr(clip.model, "visual", None), "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)
