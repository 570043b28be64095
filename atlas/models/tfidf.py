"""TF-IDF of the captions: one word vectoriser (:func:`fit_words`: words of two or more letters,
English stop words dropped, sublinear term frequency), used twice --

- as an embedder (``[embed] method = "tfidf"``, and ``auto``'s fallback; no model needed): TF-IDF
  fitted on the sample's captions, reduced to :data:`TFIDF_DIM` dimensions by a TruncatedSVD fitted
  on at most :data:`TFIDF_FIT_ROWS` of them (:func:`tfidf_fit`); captions without a single usable
  word fall back to character n-grams;
- for the prompts' nearest captions when the map has no model of new text (:func:`nearest`).

scikit-learn is imported inside the functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from atlas.models.embedder import normalise

if TYPE_CHECKING:
    import numpy as np

    from atlas.core.config import EmbedConfig

#: Dimensions of the offline TF-IDF + SVD embedding.
TFIDF_DIM = 128
#: The SVD is fitted on at most this many captions (drawn with the seed) and applied to all.
TFIDF_FIT_ROWS = 20_000
#: A word: two or more letters (no digits, no underscore).
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


def _texts(texts: Sequence) -> list[str]:
    return [t if isinstance(t, str) else "" for t in texts]


def fit_words(texts: Sequence[str], *, min_df: int = 1, max_features: int | None = None):
    """TF-IDF of ``texts``' words: ``(vectoriser, float32 sparse matrix [len(texts), V])``; a
    ValueError when they have no usable word at all."""
    import numpy as np

    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", min_df=min_df, sublinear_tf=True, token_pattern=TOKEN_PATTERN,
                                 max_features=max_features, dtype=np.float32)
    return vectorizer, vectorizer.fit_transform(_texts(texts))


def nearest(queries: Sequence[str], texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` of ``texts`` nearest to each query by TF-IDF cosine (fitted on ``texts``): shared
    words, no model. ``(top [Q, k], scores [Q, k])`` as :func:`atlas.models.nearest.top_k`; no
    columns when the texts have no usable word."""
    import numpy as np

    from atlas.models.nearest import top_k

    try:
        vectorizer, matrix = fit_words(texts)
    except ValueError:  # no usable words at all
        return np.zeros((len(queries), 0), dtype=int), np.zeros((len(queries), 0))
    return top_k(vectorizer.transform(list(queries)), matrix, k)


@dataclass
class TfidfModel:
    """A fitted TF-IDF (+ SVD) embedder (an :class:`atlas.models.embedder.Embedder`);
    :meth:`transform` is row by row, so any split of the captions into batches gives the same bytes."""

    #: The fitted vectoriser, or None when the captions have no vocabulary at all.
    vectorizer: Any = None
    #: The fitted SVD, or None when there are too few rows or words to reduce.
    svd: Any = None
    method: ClassVar[str] = "tfidf"

    @property
    def dim(self) -> int:
        if self.svd is not None:
            return int(self.svd.n_components)
        return len(self.vectorizer.vocabulary_) if self.vectorizer is not None else 1

    @property
    def name(self) -> str:
        return f"tfidf+svd-{self.dim}"

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Captions -> float32 L2-normalised vectors (non-strings count as empty captions)."""
        import numpy as np

        texts = _texts(texts)
        if self.vectorizer is None:
            return np.zeros((len(texts), 1 if texts else TFIDF_DIM), dtype=np.float32)
        matrix = self.vectorizer.transform(texts)
        if self.svd is None:
            return normalise(matrix.toarray())
        return normalise(self.svd.transform(matrix))

    def embed_texts(self, texts: Sequence[str], progress=None) -> np.ndarray:
        vectors = self.transform(texts)
        if progress is not None:
            progress.advance(len(texts))
        return vectors


def tfidf_fit(texts: Sequence[str], dim: int = TFIDF_DIM, seed: int = 0) -> TfidfModel:
    """Fit TF-IDF on all captions and a TruncatedSVD to ``dim`` dimensions on at most
    :data:`TFIDF_FIT_ROWS` of them (drawn with ``seed``)."""
    import numpy as np

    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = _texts(texts)
    if not texts:
        return TfidfModel()
    try:
        vectorizer, matrix = fit_words(texts, min_df=2 if len(texts) >= 1000 else 1, max_features=200_000)
    except ValueError:  # an empty vocabulary (only stop words / digits): character n-grams
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True,
                                     dtype=np.float32)
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError:
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


def load_embedder(config: EmbedConfig, *, corpus: Sequence[str] = (), seed: int = 0, **_) -> TfidfModel:
    """The registry's loader (:func:`atlas.models.embedder.load_embedder`): fitted on ``corpus``."""
    return tfidf_fit(corpus, TFIDF_DIM, seed)
