"""What in LAION looks like this: the sample captions nearest to images in CLIP space.

The gallery stage (:mod:`atlas.stages.gallery`) calls :func:`nearest_captions` for the committed
Stable Diffusion images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atlas.core.config import AtlasConfig
from atlas.core.errors import ModelError
from atlas.stages import embed as embed_stage

TFIDF_REASON = (
    "This site's map was made from the captions alone (by their shared words, without CLIP), so it "
    "cannot place a generated image among them."
)
TEXT_REASON = (
    "This site's map was made from the captions alone (by a sentence model, without CLIP), so it "
    "cannot place a generated image among them."
)


def unavailable_reason(info: embed_stage.EmbedInfo | None) -> str | None:
    """Why images cannot be placed among the captions (None when they can), in a reader's words."""
    if info is None:
        return "This site has no map of the captions, so generated images cannot be compared with them."
    method = info.method
    if method == "clip":
        return None
    if method == "tfidf":
        return TFIDF_REASON
    if method == "text":
        return TEXT_REASON
    return (
        f"This site's map was made from precomputed embeddings ({info.model or 'unknown model'}), "
        "which cannot place a generated image among the captions."
    )


@dataclass
class Nearest:
    """Per image, the nearest sample rows, best first; or why there are none."""

    reason: str | None
    neighbours: list[list[dict]] = field(default_factory=list)
    model: str = ""


def _clip_image_embedder(config: AtlasConfig, base: Path | None):
    """The embed stage's CLIP image embedder: the same model and weights as the captions."""
    from atlas.stages.embed import embed_images

    def embed(paths: list[Path]):
        return embed_images([Path(p) for p in paths], config.embed, base)

    return embed


def nearest_captions(
    image_paths: list[Path],
    embed_folder: Path,
    sample_path: Path,
    config: AtlasConfig,
    k: int = 5,
    *,
    base: Path | None = None,
    embedder=None,
    coords=None,
) -> Nearest:
    """The ``k`` sample captions nearest to each image by cosine similarity in CLIP space.

    Only when the embed stage (its output folder ``embed_folder``) used CLIP: the images are embedded
    with the same model (``embedder(paths) -> vectors`` or ``(vectors, errors)``; default:
    ``atlas.stages.embed.embed_images`` with ``config.embed`` and ``base``, the content folder)
    and compared with its embeddings (L2-normalised, row i = sample ``row_id`` i). Each
    neighbour is ``{"row_id", "caption", "domain", "score"}``, plus ``"x"``, ``"y"`` when
    ``coords`` (the projection, [N, 2]) is given. An image that cannot be read gets no
    neighbours. Unsafe rows are never in the sample, so never here.
    """
    import numpy as np

    info = embed_stage.read(embed_folder)
    reason = unavailable_reason(info)
    if reason is not None:
        return Nearest(reason)
    model = str(info.model if info.model is not None else "")
    if not image_paths:
        return Nearest(None, [], model)
    matrix = info.embeddings()
    embed = embedder or _clip_image_embedder(config, base)
    try:
        output = embed(list(image_paths))
    except ModelError as error:
        return Nearest(f"The CLIP model of this build could not embed the images ({error.message}).", model=model)
    vectors, errors = output if isinstance(output, tuple) else (output, [None] * len(image_paths))
    queries = np.asarray(vectors, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[0] != len(image_paths) or queries.shape[1] != matrix.shape[1]:
        return Nearest(
            f"The image embeddings ({tuple(queries.shape)}) do not match the caption embeddings "
            f"({matrix.shape[1]} dimensions); the CLIP model must be the same for both.",
            model=model,
        )
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    queries = queries / np.maximum(norms, 1e-12)
    k = max(1, min(k, matrix.shape[0]))
    scores = queries @ matrix.astype(np.float32, copy=False).T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = _sample_rows(sample_path, sorted({int(i) for i in top.ravel()}))
    result = []
    for qi in range(len(image_paths)):
        found = []
        if errors[qi] is None and norms[qi, 0] > 0:
            for index in top[qi]:
                row = rows.get(int(index))
                if row is None:
                    continue
                item = {
                    "row_id": int(index),
                    "caption": str(row["caption"] or ""),
                    "domain": str(row["domain"] or ""),
                    "score": round(float(scores[qi, index]), 4),
                }
                if coords is not None and int(index) < len(coords):
                    item["x"], item["y"] = round(float(coords[index][0]), 4), round(float(coords[index][1]), 4)
                found.append(item)
        result.append(found)
    return Nearest(None, result, model)


def _sample_rows(sample_path: Path, row_ids: list[int]) -> dict[int, dict]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(sample_path, columns=["row_id", "caption", "domain"])
    table = table.filter(pc.is_in(table["row_id"], value_set=pa.array(row_ids, type=table["row_id"].type)))
    return {int(r["row_id"]): r for r in table.to_pylist()}
