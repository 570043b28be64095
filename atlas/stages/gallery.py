"""The gallery stage (``gallery``, part of ``atlas build``, CPU only): for each committed Stable
Diffusion image, the nearest captions of the sample in CLIP space ("what in LAION looks like this").

The images are made by :mod:`atlas.commands.generate` (``atlas generate``); the ``gallery`` and
``bias-grid`` widgets (:mod:`atlas.site.widgets.gallery`) show them with the neighbours this stage
found (:func:`read`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from atlas.core.cache import read_json
from atlas.core.generated import GENERATED, read_manifest
from atlas.core.paths import inside_content
from atlas.core.pipeline import Stage

NEIGHBOURS = "neighbours.json"


def generated_images(content_dir: Path) -> list[tuple[str, Path]]:
    """(``<prompt-id>/<seed>``, image path) of every committed image that has a manifest."""
    root = Path(content_dir) / GENERATED
    if not root.is_dir():
        return []
    found = []
    for manifest in sorted(root.glob("*/*.json")):
        data = read_manifest(manifest)
        if data and isinstance(data.get("image"), str):
            # The image is published: it must stay inside the content folder.
            rel = manifest.parent.relative_to(content_dir).as_posix() + "/" + data["image"]
            image = inside_content(content_dir, rel, f"{manifest} image")
            if image.is_file():
                found.append((f"{manifest.parent.name}/{manifest.stem}", image))
    return found


TFIDF_REASON = (
    "This site's map was made from the captions alone (by their shared words, without CLIP), so it "
    "cannot place a generated image among them."
)
TEXT_REASON = (
    "This site's map was made from the captions alone (by a sentence model, without CLIP), so it "
    "cannot place a generated image among them."
)


def unavailable_reason(info) -> str | None:
    """Why images cannot be placed among the captions (None when they can), in a reader's words
    (``info``: the embed stage's :class:`atlas.stages.embed.EmbedInfo`, or None)."""
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


def _clip_image_embedder(config, base: Path | None):
    """The embed stage's CLIP image embedder: the same model and weights as the captions."""
    from atlas.models.clip import embed_images

    def embed(paths: list[Path]):
        return embed_images([Path(p) for p in paths], config.embed, base)

    return embed


def nearest_captions(image_paths: list[Path], embed_folder: Path, sample_folder: Path, config, k: int = 5, *,
                     base: Path | None = None, embedder=None, coords=None) -> Nearest:
    """The ``k`` sample captions nearest to each image by cosine similarity in CLIP space.

    Only when the embed stage (its output folder ``embed_folder``) used CLIP: the images are embedded
    with the same model (``embedder(paths) -> vectors`` or ``(vectors, errors)``; default:
    :func:`atlas.models.clip.embed_images` with ``config.embed`` and ``base``, the content folder)
    and compared with its embeddings (L2-normalised, row i = sample ``row_id`` i) by
    :func:`atlas.models.nearest.top_k`; the neighbours are :func:`atlas.models.nearest.neighbour_lists`
    of the sample stage's rows (``sample_folder``). An image that cannot be read gets no
    neighbours. Unsafe rows are never in the sample, so never here.
    """
    import numpy as np

    from atlas.core.errors import ModelError
    from atlas.models.nearest import neighbour_lists, top_k, unit_rows
    from atlas.stages import embed as embed_stage
    from atlas.stages import sample

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
    queries, norms = unit_rows(queries)
    top, scores = top_k(queries, matrix.astype(np.float32, copy=False), k)
    lists = neighbour_lists(top, scores, sample.read(sample_folder).rows_by_id(np.ravel(top)), coords)
    return Nearest(None, [found if errors[i] is None and norms[i] > 0 else [] for i, found in enumerate(lists)], model)


def _stage_inputs(ctx) -> dict:
    from atlas.core.cache import file_digest

    return {
        "images": [[key, file_digest(path)] for key, path in generated_images(ctx.content_dir)],
        "embed": ctx.config.embed,
        "k": 5,
    }


def _stage_run(ctx, folder: Path) -> dict:
    from atlas.stages import project

    images = generated_images(ctx.content_dir)
    embed_folder = ctx.outputs.get("embed")
    projection = project.read(ctx.outputs.get("project"))
    coords = projection.coords if projection is not None else None
    sample_folder = ctx.outputs.get("sample")
    if embed_folder is not None and sample_folder is not None:
        nearest = nearest_captions(
            [path for _, path in images],
            embed_folder,
            sample_folder,
            ctx.config,
            k=5,
            base=ctx.content_dir,
            coords=coords,
        )
    else:
        nearest = Nearest(unavailable_reason(None))
    data = {
        "reason": nearest.reason,
        "model": nearest.model,
        "images": {key: found for (key, _), found in zip(images, nearest.neighbours)},
    }
    (folder / NEIGHBOURS).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return {"images": len(images), "placed": len(data["images"]), "reason": nearest.reason}


@dataclass
class Neighbours:
    """What the gallery stage wrote: per image (``<prompt-id>/<seed>``), its nearest sample rows;
    or why there are none."""

    reason: str | None
    model: str
    images: dict[str, list[dict]] = field(default_factory=dict)


def read(folder: Path | None) -> Neighbours | None:
    """The gallery stage's output in ``folder``, or None (no folder or no readable file)."""
    data = read_json(folder, NEIGHBOURS)
    if data is None:
        return None
    return Neighbours(data.get("reason"), data.get("model") or "", data.get("images") or {})


STAGE = Stage(
    name="gallery",
    version="1",
    inputs=_stage_inputs,
    run=_stage_run,
    after=("sample", "embed", "project"),
    enabled=lambda ctx: bool(generated_images(ctx.content_dir)),
    description="nearest LAION captions of the pre-generated Stable Diffusion images",
    artifact=True,
)
