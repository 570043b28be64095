"""What every embedder is, and the registry the embed stage picks one from by ``[embed] method``.

An :class:`Embedder` turns texts into float32 vectors, ``[len(texts), dim]``, L2-normalised: CLIP's
text tower (:mod:`atlas.models.clip`, which also embeds images), the sentence-transformers caption
model (:mod:`atlas.models.captionmodel`), TF-IDF + SVD fitted on the sample's captions
(:mod:`atlas.models.tfidf`). Precomputed vectors (:mod:`atlas.models.precomputed`) are looked up
by sample row and embed no new text.

:func:`load_embedder` loads one by its method name (a ModelError when it cannot); ``auto`` is the
stage's rule, :data:`AUTO`, tried in order. Loading is cheap to import: each model's heavy
libraries are imported only when it loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from atlas.core.config import EmbedConfig

#: What ``method = "auto"`` tries, in order: CLIP when its weights load, else the caption model
#: when it loads, else TF-IDF (which always does).
AUTO = ("clip", "text", "tfidf")


class Embedder(Protocol):
    """Texts -> float32 ``[len(texts), dim]`` L2-normalised vectors (a non-string is an empty text)."""

    #: The ``[embed] method`` it implements, as ``info.json`` names it.
    method: str
    #: The model, in ``info.json``'s words.
    name: str
    dim: int

    def embed_texts(self, texts: Sequence[str], progress=None) -> np.ndarray:
        """``progress`` (a Reporter task, or None) advances by the texts embedded."""


#: What a loader is called with: the config, and by keyword ``base`` (the content folder),
#: ``models_dir`` (where packaged models are extracted), ``corpus`` (the texts a fitted
#: embedder learns from) and ``seed``.
Loader = Callable[..., Embedder]


def registry() -> dict[str, Loader]:
    """Method name -> loader, one per ``[embed] method`` but ``auto``."""
    from atlas.models import captionmodel, clip, precomputed, tfidf

    return {"clip": clip.load_embedder, "text": captionmodel.load_embedder, "tfidf": tfidf.load_embedder,
            "precomputed": precomputed.load_embedder}


def load_embedder(method: str, config: EmbedConfig, *, base: Path | None = None, models_dir: Path | None = None,
                  corpus: Sequence[str] = (), seed: int = 0) -> Embedder:
    """The embedder of ``method`` for ``config``; a ModelError (or ConfigError) when it cannot load."""
    loaders = registry()
    if method not in loaders:
        raise ValueError(f"no embedder {method!r} (known: {', '.join(loaders)})")
    return loaders[method](config, base=base, models_dir=models_dir, corpus=corpus, seed=seed)


def normalise(vectors) -> np.ndarray:
    """``vectors`` as float32 rows of unit length (a zero row stays zero)."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
