"""The one nearest-neighbour search of the site's captions: top-k by dot product (cosine for unit
vectors, dense or sparse), and the neighbour lists the gallery and the prompts publish.

The stages that need it (:mod:`atlas.stages.gallery` for generated images, :mod:`atlas.stages.prompt_captions`
for the workshop's prompts) embed their queries and read the sample; this module knows neither.
"""

from __future__ import annotations

from collections.abc import Callable


def top_k(queries, matrix, k: int):
    """Indices and scores of the ``k`` rows of ``matrix`` with the highest dot product, per query
    (``queries`` [Q, D], ``matrix`` [N, D], dense or scipy-sparse): ``(top [Q, k], scores [Q, k])``,
    best first, ties in row order."""
    import numpy as np

    product = queries @ matrix.T
    scores = np.asarray(product.todense() if hasattr(product, "todense") else product)
    k = max(1, min(k, scores.shape[1]))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(scores, top, axis=1)


def unit_rows(vectors):
    """``vectors`` scaled to unit length (a zero row stays zero), and the original lengths."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12), norms[:, 0]


def neighbour_lists(top, scores, rows: dict[int, dict], coords=None,
                    keep: Callable[[dict, float], bool] = lambda row, score: True) -> list[list[dict]]:
    """Per query, ``{"row_id", "caption", "domain", "score"}`` (plus ``"x"``, ``"y"`` with
    ``coords``, the projection [N, 2]) for each of its ``top`` rows found in ``rows`` (row id ->
    sample row) that ``keep`` accepts, best first."""
    out = []
    for row_ids, row_scores in zip(top, scores):
        items = []
        for row_id, score in zip(row_ids, row_scores):
            row = rows.get(int(row_id))
            if row is None or not keep(row, float(score)):
                continue
            item = {"row_id": int(row_id), "caption": str(row["caption"] or ""), "domain": str(row["domain"] or ""),
                    "score": round(float(score), 4)}
            if coords is not None and int(row_id) < len(coords):
                item["x"], item["y"] = round(float(coords[row_id][0]), 4), round(float(coords[row_id][1]), 4)
            items.append(item)
        out.append(items)
    return out
