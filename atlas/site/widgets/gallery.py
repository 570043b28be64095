"""The ``gallery`` widget: each workshop prompt with its committed images, recipes and the
nearest LAION captions the gallery stage found; placeholders where images are missing. The
bias grid (:mod:`atlas.site.widgets.bias_grid`) shares the shots and prompts below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from atlas.models import nsfw as screen
from atlas.stages import screen as screen_stage
from atlas.core.errors import ContentError
from atlas.core.generated import GENERATED, manifest_path, read_manifest
from atlas.stages.gallery import unavailable_reason
from atlas.core.prompts import Prompt, load_prompts
from atlas.text.published import cut_caption
from atlas.stages import embed, gallery
from atlas.site.maplinks import map_positions, point_href
from atlas.site.widgets import WidgetContext, widget


@dataclass
class Shot:
    """One prompt x seed as the gallery shows it."""

    seed: int
    #: "ready", "missing", "stale", "withheld" (by the model's safety checker), "flagged" (by the
    #: nudity classifier) or "unscreened" (could not be screened, so not published either).
    state: str
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


def withheld_by(manifest: dict) -> str:
    """The state of an image ``atlas generate`` did not write: "flagged" when only the nudity
    classifier flagged it, else "withheld" (the model's safety checker; also every manifest from
    before the classifier)."""
    nsfw = manifest.get("nsfw") if isinstance(manifest.get("nsfw"), dict) else {}
    return "flagged" if nsfw.get("verdict") == screen.FLAGGED and not manifest.get("safety_checker") else "withheld"


def _neighbours(ctx: WidgetContext) -> gallery.Neighbours:
    found = gallery.read(ctx.outputs.get("gallery"))
    if found is not None:
        return found
    reason = unavailable_reason(embed.read(ctx.outputs.get("embed")))
    if reason is None:
        reason = "The generated images were not compared with the captions in this build."
    return gallery.Neighbours(reason, "")


def _map_href(ctx: WidgetContext, neighbour: dict) -> str:
    """The nearest caption's point on the map (its world position and index, as the map reads them)."""
    if "row_id" not in neighbour:
        return ""
    row_id = int(neighbour["row_id"])
    return point_href(ctx.root, map_positions(ctx.outputs, [row_id]).get(row_id))


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
        if not name:  # never written: flagged when it was generated (by the model's checker or by ours)
            shots.append(Shot(seed, withheld_by(manifest), manifest=manifest, recipe=recipe_view(manifest)))
            continue
        source = manifest_path(ctx.content_dir, prompt.id, seed).parent / str(name)
        if Path(str(name)).name != str(name) or str(name).startswith(".") or not source.is_file():
            shots.append(Shot(seed, "missing"))
            continue
        # Published only when this build's nudity screening passed this very file (atlas/stages/screen.py).
        checked = screen_stage.check(ctx, f"{prompt.id}/{seed}", source, manifest)
        if checked.state != screen.PASSED:
            shots.append(Shot(seed, checked.state, manifest=manifest, recipe=recipe_view(manifest)))
            continue
        destination = f"{GENERATED}/{prompt.id}/{source.name}"
        ctx.assets[destination] = source
        size = manifest.get("image_size") or [None, None]
        found = _cut((neighbours or {}).get(f"{prompt.id}/{seed}", []))
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
                map_href=_map_href(ctx, found[0]) if found else "",
            )
        )
    return shots


def page_prompts(args: dict[str, str], ctx: WidgetContext, default_page: str) -> list[Prompt]:
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


def models(shots: list[Shot]) -> list[dict]:
    """The distinct models (id, licence) behind the shown images."""
    seen = {}
    for shot in shots:
        if shot.recipe and shot.state == "ready":
            key = (shot.recipe["model"], shot.recipe["licence"])
            seen.setdefault(key, {"id": key[0], "licence": key[1]})
    return list(seen.values())


def _cut(found: list[dict]) -> list[dict]:
    """Nearest captions as the page shows them: each caption cut (:func:`atlas.text.published.cut_caption`)."""
    return [dict(item, caption=cut_caption(item.get("caption"))) for item in found]


@widget("gallery")
def gallery_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """Each workshop prompt with its images, recipes and nearest LAION captions.

    ```atlas gallery``` (page=stable-diffusion by default; ``prompt=id1,id2`` to pick some).
    """
    from atlas.stages import prompt_captions

    prompts = page_prompts(args, ctx, "stable-diffusion")
    neighbours = _neighbours(ctx)
    nearest = prompt_captions.read(ctx.outputs.get("prompt_captions"))
    items = []
    for p in prompts:
        found = _cut(nearest.prompts.get(p.id, []) if nearest else [])
        items.append({"prompt": p, "shots": collect_shots(p, ctx, neighbours.images), "nearest": found,
                      "map_href": _map_href(ctx, found[0]) if found else ""})
    all_shots = [s for item in items for s in item["shots"]]
    published = sum(s.state == "ready" for s in all_shots)
    return ctx.render(
        "widgets/gallery.html",
        items=items,
        models=models(all_shots),
        laion_reason=neighbours.reason if published else None,
        published=published,
        nearest_by=nearest.describe() if nearest else "",
        screening=screening(all_shots),
    )


def screening(shots: list[Shot]) -> dict:
    """What the page tells readers about the nudity screening of its images: how many were
    checked and how many are not shown because of it (or because they could not be checked)."""
    states = [s.state for s in shots]
    counts = {state: states.count(state) for state in ("ready", "flagged", "unscreened", "withheld")}
    return {
        "checked": counts["ready"] + counts["flagged"],
        "flagged": counts["flagged"],
        "unscreened": counts["unscreened"],
        "safety_checker": counts["withheld"],
        "withheld": counts["flagged"] + counts["unscreened"] + counts["withheld"],
        "classifier": screen.CLASSIFIER,
    }
