"""The gallery: the committed Stable Diffusion images on the site, and what in LAION looks like them.

* :data:`STAGE` (``gallery``, part of ``atlas build``, CPU only) finds, for each committed image,
  the nearest captions of the sample in CLIP space ("what in LAION looks like this").
* The ``gallery`` and ``bias-grid`` widgets show the images, their recipes and neighbours. A
  prompt without images shows a "not generated yet" card; a build never needs a GPU.

The images themselves are made by :mod:`atlas.stages.generate` (``atlas generate``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from atlas.config import AtlasConfig
from atlas.errors import ContentError, ModelError
from atlas.pipeline import Stage
from atlas.prompts import Prompt, load_prompts
from atlas.stages.embed import read_info
from atlas.stages.generate import (
    GENERATED,
    MAP_ZOOM,
    manifest_path,
    read_manifest,
)
from atlas.widgets import WidgetContext, arg_int, widget

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# What in LAION looks like this (nearest captions in CLIP space)
# --------------------------------------------------------------------------------------------

TFIDF_REASON = (
    "This build used the offline TF-IDF embedder, which embeds captions only and cannot place "
    "images; build with CLIP weights ([embed] pretrained in atlas.toml) to see which LAION "
    "captions lie closest to each generated image."
)


def unavailable_reason(info: dict | None) -> str | None:
    """Why images cannot be placed among the captions (None when they can)."""
    if info is None:
        return "This build has no caption embeddings (the embed stage did not run), so generated images cannot be compared with LAION captions."
    method = info.get("method")
    if method == "clip":
        return None
    if method == "tfidf":
        return TFIDF_REASON
    return (
        f"This build's embeddings came from {method!r} ({info.get('model', 'unknown model')}), "
        "and atlas cannot embed images with that model; only a CLIP build places generated images."
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
    sample_parquet: Path,
    config: AtlasConfig,
    k: int = 5,
    *,
    base: Path | None = None,
    embedder=None,
    coords=None,
) -> Nearest:
    """The ``k`` sample captions nearest to each image by cosine similarity in CLIP space.

    Only when the embed stage used CLIP (``info.json`` method ``"clip"``): the images are embedded
    with the same model (``embedder(paths) -> vectors`` or ``(vectors, errors)``; default:
    ``atlas.stages.embed.embed_images`` with ``config.embed`` and ``base``, the content folder)
    and compared with ``embeddings.npy`` (L2-normalised, row i = sample ``row_id`` i). Each
    neighbour is ``{"row_id", "caption", "domain", "score"}``, plus ``"x"``, ``"y"`` when
    ``coords`` (the projection, [N, 2]) is given. An image that cannot be read gets no
    neighbours. Unsafe rows are never in the sample, so never here.
    """
    import numpy as np

    info = read_info(embed_folder)
    reason = unavailable_reason(info)
    if reason is not None:
        return Nearest(reason)
    model = str(info.get("model", ""))
    if not image_paths:
        return Nearest(None, [], model)
    matrix = np.load(Path(embed_folder) / "embeddings.npy")
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
    rows = _sample_rows(sample_parquet, sorted({int(i) for i in top.ravel()}))
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


def _sample_rows(sample_parquet: Path, row_ids: list[int]) -> dict[int, dict]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(sample_parquet, columns=["row_id", "caption", "domain"])
    table = table.filter(pc.is_in(table["row_id"], value_set=pa.array(row_ids, type=table["row_id"].type)))
    return {int(r["row_id"]): r for r in table.to_pylist()}


# --------------------------------------------------------------------------------------------
# The build stage: neighbours of the committed images (CPU, cached)
# --------------------------------------------------------------------------------------------

NEIGHBOURS = "neighbours.json"


def generated_images(content_dir: Path) -> list[tuple[str, Path]]:
    """(``<prompt-id>/<seed>``, image path) of every committed image that has a manifest."""
    root = Path(content_dir) / GENERATED
    if not root.is_dir():
        return []
    found = []
    for manifest in sorted(root.glob("*/*.json")):
        data = read_manifest(manifest)
        if data and data.get("image") and (manifest.parent / data["image"]).is_file():
            found.append((f"{manifest.parent.name}/{manifest.stem}", manifest.parent / data["image"]))
    return found


def _stage_inputs(ctx) -> dict:
    from atlas.cache import file_digest

    return {
        "images": [[key, file_digest(path)] for key, path in generated_images(ctx.content_dir)],
        "embed": ctx.config.embed,
        "k": 5,
    }


def _stage_run(ctx, folder: Path) -> dict:
    import numpy as np

    images = generated_images(ctx.content_dir)
    embed_folder = ctx.outputs.get("embed")
    coords = None
    project = ctx.outputs.get("project")
    if project is not None and (Path(project) / "coords.npy").exists():
        coords = np.load(Path(project) / "coords.npy")
    sample = ctx.outputs.get("sample")
    if embed_folder is not None and sample is not None:
        nearest = nearest_captions(
            [path for _, path in images],
            embed_folder,
            Path(sample) / "sample.parquet",
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


STAGE = Stage(
    name="gallery",
    version="1",
    inputs=_stage_inputs,
    run=_stage_run,
    after=("sample", "embed", "project"),
    enabled=lambda ctx: bool(generated_images(ctx.content_dir)),
    description="nearest LAION captions of the pre-generated Stable Diffusion images",
)


# --------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------


@dataclass
class Shot:
    """One prompt x seed as the gallery shows it."""

    seed: int
    state: str  # "ready", "missing", "stale", "withheld"
    src: str = ""
    width: int | None = None
    height: int | None = None
    manifest: dict | None = None
    recipe: dict | None = None
    neighbours: list[dict] = field(default_factory=list)
    map_href: str = ""


def recipe_view(manifest: dict) -> dict:
    """A manifest flattened for the templates, every key present (hand-edited files may lack some)."""
    recipe = manifest.get("recipe") or {}
    model = recipe.get("model") if isinstance(recipe.get("model"), dict) else {}
    versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
    scheduler = recipe.get("scheduler") if isinstance(recipe.get("scheduler"), dict) else {}
    ref = ""
    if model.get("revision"):
        ref = f"revision {str(model['revision'])[:12]}"
    elif model.get("weights_sha256"):
        ref = f"weights sha256 {str(model['weights_sha256'])[:12]}…"
    software = ", ".join(f"{name} {versions[name]}" for name in ("diffusers", "torch") if versions.get(name))
    device = manifest.get("device") or ""
    if device and manifest.get("dtype"):
        device = f"{device} ({manifest['dtype']})"
    return {
        "prompt": str(recipe.get("prompt", "")),
        "negative": str(recipe.get("negative_prompt") or ""),
        "seed": recipe.get("seed", ""),
        "model": str(model.get("id") or "unknown"),
        "model_ref": ref,
        "licence": str(manifest.get("model_licence") or "unknown"),
        "scheduler": str(scheduler.get("class") or "unknown"),
        "steps": recipe.get("steps", "?"),
        "guidance": recipe.get("guidance", "?"),
        "size": f"{recipe.get('width', '?')} × {recipe.get('height', '?')}",
        "software": software,
        "device": device,
        "hash": str(manifest.get("recipe_hash") or "")[:16],
    }


def _neighbours_data(ctx: WidgetContext) -> dict:
    folder = ctx.outputs.get("gallery")
    if folder is not None:
        try:
            return json.loads((Path(folder) / NEIGHBOURS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    reason = unavailable_reason(read_info(ctx.outputs.get("embed")))
    if reason is None:
        reason = "The gallery stage did not run in this build, so generated images were not compared with LAION captions."
    return {"reason": reason, "images": {}, "model": ""}


def _map_href(root: str, neighbour: dict) -> str:
    if "x" not in neighbour or "y" not in neighbour:
        return ""
    return f"{root}map/#x={neighbour['x']:.4f}&y={neighbour['y']:.4f}&z={MAP_ZOOM}"


def collect_shots(prompt: Prompt, ctx: WidgetContext, neighbours: dict | None = None) -> list[Shot]:
    """The images of one prompt, registered as site assets; placeholders for the missing ones."""
    shots = []
    for seed in prompt.seeds:
        manifest = read_manifest(manifest_path(ctx.content_dir, prompt.id, seed))
        if manifest is None:
            shots.append(Shot(seed, "missing"))
            continue
        recipe = manifest["recipe"]
        if recipe.get("prompt") != prompt.prompt or recipe.get("negative_prompt", "") != prompt.negative:
            shots.append(Shot(seed, "stale", manifest=manifest, recipe=recipe_view(manifest)))
            continue
        name = manifest.get("image")
        if not name:
            shots.append(Shot(seed, "withheld", manifest=manifest, recipe=recipe_view(manifest)))
            continue
        source = manifest_path(ctx.content_dir, prompt.id, seed).parent / str(name)
        if Path(str(name)).name != str(name) or str(name).startswith(".") or not source.is_file():
            shots.append(Shot(seed, "missing"))
            continue
        destination = f"{GENERATED}/{prompt.id}/{source.name}"
        ctx.assets[destination] = source
        size = manifest.get("image_size") or [None, None]
        found = (neighbours or {}).get(f"{prompt.id}/{seed}", [])
        shots.append(
            Shot(
                seed,
                "ready",
                src=ctx.root + destination,
                width=size[0],
                height=size[1],
                manifest=manifest,
                recipe=recipe_view(manifest),
                neighbours=found,
                map_href=_map_href(ctx.root, found[0]) if found else "",
            )
        )
    return shots


def _page_prompts(args: dict[str, str], ctx: WidgetContext, default_page: str) -> list[Prompt]:
    page = args.get("page", args.get("_", default_page))
    if page not in ("stable-diffusion", "bias"):
        raise ContentError(f"widget argument page={page!r} must be stable-diffusion or bias")
    prompts = [p for p in load_prompts(ctx.content_dir, missing_ok=True) if p.page == page]
    wanted = args.get("prompt")
    if wanted:
        ids = [w.strip() for w in wanted.split(",") if w.strip()]
        known = {p.id for p in prompts}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ContentError(
                f"no prompt with id {', '.join(unknown)} on page {page!r}",
                hint=f"Ids in prompts.toml for that page: {', '.join(sorted(known)) or '(none)'}.",
            )
        prompts = [p for p in prompts if p.id in ids]
    return prompts


def _models(shots: list[Shot]) -> list[dict]:
    """The distinct models (id, licence) behind the shown images."""
    seen = {}
    for shot in shots:
        if shot.recipe and shot.state == "ready":
            key = (shot.recipe["model"], shot.recipe["licence"])
            seen.setdefault(key, {"id": key[0], "licence": key[1]})
    return list(seen.values())


@widget("gallery")
def gallery_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """Each workshop prompt with its images, recipes and nearest LAION captions.

    ```atlas gallery``` (page=stable-diffusion by default; ``prompt=id1,id2`` to pick some).
    """
    prompts = _page_prompts(args, ctx, "stable-diffusion")
    neighbours = _neighbours_data(ctx)
    items = [{"prompt": p, "shots": collect_shots(p, ctx, neighbours.get("images"))} for p in prompts]
    all_shots = [s for item in items for s in item["shots"]]
    return ctx.render(
        "widgets/gallery.html",
        items=items,
        models=_models(all_shots),
        laion_reason=neighbours.get("reason"),
        has_prompts_file=(ctx.content_dir / "prompts.toml").exists(),
    )


@widget("bias-grid")
def bias_grid_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """Occupations x seeds, every row with the same seeds (DiffusionBiasExplorer style).

    ```atlas bias-grid``` (``seeds=N`` shows at most N columns).
    """
    prompts = _page_prompts(args, ctx, "bias")
    limit = arg_int(args, "seeds", 8, 1, 64)
    rows = []
    for prompt in prompts:
        shots = collect_shots(prompt, ctx)[:limit]
        rows.append({"prompt": prompt, "label": prompt.label or prompt.prompt, "shots": shots})
    seeds = sorted({s.seed for row in rows for s in row["shots"]})
    for row in rows:  # one cell per column seed, None where a row lacks that seed
        by_seed = {s.seed: s for s in row["shots"]}
        row["cells"] = [by_seed.get(seed) for seed in seeds]
    all_shots = [s for row in rows for s in row["shots"]]
    recipe = next((s.recipe for s in all_shots if s.state == "ready"), None)
    return ctx.render(
        "widgets/bias_grid.html",
        rows=rows,
        seeds=seeds,
        models=_models(all_shots),
        example=recipe,
        ready=sum(s.state == "ready" for s in all_shots),
        total=len(all_shots),
    )
