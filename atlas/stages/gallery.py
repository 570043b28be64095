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
from atlas.commands.generate import GENERATED, read_manifest
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


def _stage_inputs(ctx) -> dict:
    from atlas.core.cache import file_digest

    return {
        "images": [[key, file_digest(path)] for key, path in generated_images(ctx.content_dir)],
        "embed": ctx.config.embed,
        "k": 5,
    }


def _stage_run(ctx, folder: Path) -> dict:
    from atlas.models.nearest import Nearest, nearest_captions, unavailable_reason
    from atlas.stages import project, sample

    images = generated_images(ctx.content_dir)
    embed_folder = ctx.outputs.get("embed")
    projection = project.read(ctx.outputs.get("project"))
    coords = projection.coords if projection is not None else None
    sample_folder = ctx.outputs.get("sample")
    if embed_folder is not None and sample_folder is not None:
        nearest = nearest_captions(
            [path for _, path in images],
            embed_folder,
            sample.read(sample_folder).path,
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
