"""Render stage: content pages, the map page and the published data into one static site folder.

:func:`render_site` is the plain function; it writes a self-contained site (pages, static assets,
the statistics stage's downloads under ``data/``, ``map/``) into a folder. Every link is relative, so the
site works under a GitHub Pages project sub-path and from a local preview.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from atlas import __version__
from atlas.core.cache import BOOKKEEPING, tree_digests
from atlas.core.config import AtlasConfig
from atlas.core.errors import ContentError
from atlas.fetch.runner import reader_sentence
from atlas.core.paths import check_links_inside
from atlas.core.resources import default_theme_dir
from atlas.core.pipeline import BuildContext, Stage
from atlas.site.theme import theme_dirs

if TYPE_CHECKING:  # the Markdown, Jinja2 and numpy stack loads only when the site is rendered
    from atlas.site.content import Page
    from atlas.stages import mapdata
    from atlas.stages import stats as stats_stage


def _nav(pages: list[Page], current: str, root: str, has_map: bool) -> list[dict]:
    items = [
        {"title": p.nav or p.title, "href": p.href, "current": p.slug == current, "order": p.order}
        for p in pages
        if p.nav is not False and (p.nav or p.slug == "") and p.meta.get("nav", True) is not False
    ]
    if has_map:
        items.append({"title": "Map", "href": "map/", "current": current == "map", "order": 35})
    return sorted(items, key=lambda item: item["order"])


def template_context(common: dict, pages: list[Page], has_map: bool, current: str, root: str, title: str,
                     description: str, canonical: str | None, **extra) -> dict:
    """The arguments every site template gets: the site-wide values (``common``), the navigation
    with ``current`` marked (and ``has_map``), the page's title, description, canonical URL and
    relative ``root``; plus ``extra``."""
    return {**common, "page_title": title, "description": description, "canonical": canonical, "root": root,
            "nav": _nav(pages, current, root, has_map), "has_map": has_map, **extra}


def _canonical(config: AtlasConfig, path: str) -> str | None:
    base = config.base_url()
    if not base.startswith(("http://", "https://")):
        return None
    return base.rstrip("/") + "/" + path


def render_site(
    config: AtlasConfig,
    content_dir: Path,
    out: Path,
    published: stats_stage.Stats,
    outputs: dict[str, Path],
    build_info: dict,
) -> dict:
    """Write the whole site into ``out``; returns a summary (pages written).

    ``published`` is the statistics stage's output (:func:`atlas.stages.stats.read`); ``outputs``
    the stages' output folders, read through each stage's ``read``.
    """
    import jinja2

    from atlas.site import scores
    from atlas.site.content import load_pages, render_markdown
    from atlas.stages import mapdata
    from atlas.site.theme import make_env, render_template, static_dirs, theme_error
    from atlas.site.widgets import WidgetContext

    stats, examples = published.stats, published.examples
    env = make_env(content_dir, config.site.theme)
    pages = load_pages(content_dir)
    if not pages:
        raise ContentError(
            f"the content folder {content_dir} has no Markdown pages",
            hint="Add index.md (or run `atlas new DIR` for a starting point).",
        )
    map_data = mapdata.read(outputs.get("mapdata"))
    has_map = "mapdata" in outputs
    text_model = text_model_context(outputs)
    assets: dict[str, Path] = {}
    root_url = _absolute_root(config)
    og_image = None
    if write_social_image(config, outputs, out / SOCIAL_IMAGE) and root_url.startswith(("http://", "https://")):
        og_image = root_url + SOCIAL_IMAGE  # scrapers need an absolute URL
    common = {
        "og_image": og_image,
        "config": config,
        "version": __version__,
        "demo": build_info.get("demo", False),
        "built": build_info,
        "stats": stats,
    }
    # The map sample sorted by each score it has (atlas/site/scores.py); the sorted widget links them.
    sorted_lists = scores.collect(outputs, bool(build_info.get("demo")), config.data.unsafe_threshold)
    written = []
    for page in pages:
        ctx = WidgetContext(
            config=config,
            content_dir=content_dir,
            page=page.slug,
            source=page.source,
            root=page.root,
            stats=stats,
            outputs=outputs,
            assets=assets,
            extra={"examples": examples, "build": build_info, "sorted": sorted_lists},
            env=env,
        )
        body = render_markdown(page, ctx)
        try:
            env.get_template(page.template)
        except jinja2.TemplateNotFound as error:
            if error.name != page.template:
                raise theme_error(env, page.template, error) from None
            raise ContentError(
                f"the page's template {page.template!r} is not in the theme", where=str(page.source),
                hint="Name a template of the theme in the front matter's 'template' (e.g. page.html), "
                     "or add it to the fork's templates/ folder.") from None
        except jinja2.TemplateError as error:
            raise theme_error(env, page.template, error) from None
        context = template_context(common, pages, has_map, page.slug, page.root, page.title,
                                   page.description or config.site.description, _canonical(config, page.href),
                                   page=page, body=body)
        nav = context["nav"]
        here = next((i for i, item in enumerate(nav) if item["current"]), None)
        html = render_template(
            env, page.template,
            **context,
            prev_item=nav[here - 1] if here else None,
            next_item=nav[here + 1] if here is not None and here + 1 < len(nav) else None,
        )
        target = out / page.output
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        written.append(page.output)

    if has_map:
        shutil.copytree(outputs["mapdata"], out / "map" / "data", ignore=shutil.ignore_patterns(*BOOKKEEPING))
        if "search" in outputs:
            shutil.copytree(outputs["search"], out / "map" / "data" / "search", ignore=shutil.ignore_patterns(*BOOKKEEPING))
        html = render_template(env, "map.html", **template_context(
            common, pages, has_map, "map", "../", "Map",
            f"An interactive map of {config.site.title}: every point is an image-text pair.",
            _canonical(config, "map/"), map=map_page_context(map_data), text_model=text_model,
        ))
        (out / "map" / "index.html").write_text(html, encoding="utf-8")
        written.append("map/index.html")
    written += scores.write_pages(env, out, sorted_lists, lambda current, root, title, description, path, **extra:
                                  template_context(common, pages, has_map, current, root, title, description,
                                                   _canonical(config, path), **extra), bool(build_info.get("demo")))

    check_links_inside(content_dir / "static", content_dir, "content/static")
    # The in-browser model's runtime (megabytes of WebAssembly) ships only with a model to run.
    skip = None if text_model["available"] else shutil.ignore_patterns(VENDOR_RUNTIME)
    for folder in static_dirs(content_dir, config.site.theme) + [content_dir / "static"]:
        if folder.is_dir():
            shutil.copytree(folder, out / "static", dirs_exist_ok=True, ignore=skip)
    if text_model["available"]:
        shutil.copytree(outputs["textmodel"], out / "model", ignore=shutil.ignore_patterns(*BOOKKEEPING))
    for dest, source in assets.items():
        target = out / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, path in published.downloads.items():
        shutil.copy2(path, data_dir / name)
    written += write_extras(env, config, out, pages, has_map, common, [item.href for item in sorted_lists])
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve folders starting with _ as they are
    return {"pages": written}


def map_page_context(data: mapdata.MapData | None) -> dict:
    """What ``map.html`` needs: ``available`` plus the summary line's values."""
    if data is None:
        return {"available": False, "points": 0, "sample_rows": 0, "model": None, "method": None,
                "notice": None, "fetch": None, "colour_by": [], "colour_labels": {}, "data": "data/"}
    meta = data.meta
    return {
        "available": True,
        "points": data.count,
        "sample_rows": meta.get("sample_rows", data.count),
        "model": meta.get("model"),
        "method": meta.get("method"),
        "notice": meta.get("notice"),
        "fetch": reader_sentence(meta.get("fetch")),
        "colour_by": data.colour_by,
        "colour_labels": meta.get("colour_labels", {}),
        "data": "data/",
    }


#: The vendored WebAssembly runtime's folder in the theme (static/js/vendor/onnxruntime-web).
VENDOR_RUNTIME = "onnxruntime-web"
#: What the map page says when the atlas has no model to read a reader's words with (reader words).
NO_TEXT_MODEL = ("Search by meaning is not available for this atlas: its map places captions by the words they "
                 "share, so there is no model to read your words with.")
NO_BROWSER_MODEL = ("Search by meaning is not available for this atlas yet: the model its map was made with "
                    "does not run in the browser.")


def text_model_context(outputs: dict[str, Path]) -> dict:
    """What the pages need about the in-browser caption model (:mod:`atlas.stages.textmodel`):
    ``available``, its folder in the site (``model/``) or the reader's reason it is missing."""
    from atlas.stages import textmodel

    from atlas.stages import embed

    files = textmodel.read(outputs.get("textmodel"))
    if files is None:
        info = embed.read(outputs.get("embed"))
        return {"available": False, "reason": NO_TEXT_MODEL if info is None or info.method == "tfidf" else NO_BROWSER_MODEL}
    if not files.available:
        return {"available": False, "reason": files.manifest.get("reason") or NO_TEXT_MODEL}
    manifest = files.manifest
    shipped = sum(int(entry.get("bytes", 0)) for entry in (manifest.get("files") or {}).values())
    shipped += int((manifest.get("vectors") or {}).get("bytes", 0))
    runtime = default_theme_dir() / "static" / "js" / "vendor" / VENDOR_RUNTIME
    shipped += sum(f.stat().st_size for f in runtime.glob("*.wasm")) if runtime.is_dir() else 0
    return {"available": True, "reason": "", "folder": "model/", "size": f"{max(1, round(shipped / 1e6))} MB"}


SOCIAL_IMAGE = "og.png"


def write_social_image(config: AtlasConfig, outputs: dict[str, Path], target: Path) -> bool:
    """A 1200x630 preview for link cards: the title beside the map's points, coloured by cluster."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from atlas.stages import project

    width, height = 1200, 630
    image = Image.new("RGB", (width, height), (250, 248, 243))
    draw = ImageDraw.Draw(image)
    projection = project.read(outputs.get("project"))
    if projection is not None:
        coords = projection.coords[:50_000]
        coarse = next((level for level in projection.levels if level.name == "coarse"), None)
        clusters = coarse.assignments[: len(coords)] if coarse is not None else np.zeros(len(coords), int)
        if len(coords):
            low, high = np.nanpercentile(coords, 1, axis=0), np.nanpercentile(coords, 99, axis=0)
            span = np.where(high - low > 0, high - low, 1.0)
            xy = (coords - low) / span
            left, top, size = 600, 40, 550
            palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                       (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
            for (x, y), cluster in zip(xy, clusters):
                if 0 <= x <= 1 and 0 <= y <= 1:
                    px, py = left + x * size, top + (1 - y) * size
                    draw.ellipse((px - 1.5, py - 1.5, px + 1.5, py + 1.5), fill=palette[int(cluster) % len(palette)])
    try:
        title_font = ImageFont.load_default(size=54)
        text_font = ImageFont.load_default(size=26)
    except TypeError:  # Pillow < 10.1
        title_font = text_font = ImageFont.load_default()
    words, lines, line = config.site.title.split(), [], ""
    for word in words:
        if line and draw.textlength(f"{line} {word}", font=title_font) > 520:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    y = 180
    for text in lines[:4]:
        draw.text((50, y), text, fill=(20, 20, 20), font=title_font)
        y += 66
    draw.text((50, y + 20), "Explore the image-text pairs", fill=(90, 90, 90), font=text_font)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, optimize=True)
    return True


def _absolute_root(config: AtlasConfig) -> str:
    """The site root as an absolute URL or path when the base URL is known, else ""."""
    base = config.base_url()
    return base.rstrip("/") + "/" if base else ""


def write_extras(env, config: AtlasConfig, out: Path, pages: list[Page], has_map: bool, common: dict,
                 more: list[str] = ()) -> list[str]:
    """404.html (GitHub Pages serves it at any depth), robots.txt and, with a base URL, sitemap.xml
    (the pages, the map and ``more``: other pages' hrefs from the root)."""
    from xml.sax.saxutils import escape

    from atlas.site.theme import render_template

    root = _absolute_root(config)
    html = render_template(env, "404.html", **template_context(
        common, pages, has_map, "404", root, "Page not found", config.site.description, None,
    ))
    (out / "404.html").write_text(html, encoding="utf-8")
    written = ["404.html"]
    robots = "User-agent: *\nAllow: /\n"
    if root.startswith(("http://", "https://")):
        hrefs = [p.href for p in pages] + (["map/"] if has_map else []) + list(more)
        urls = "".join(f"  <url><loc>{escape(root + href)}</loc></url>\n" for href in hrefs)
        (out / "sitemap.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + urls + "</urlset>\n",
            encoding="utf-8",
        )
        written.append("sitemap.xml")
        robots += f"Sitemap: {root}sitemap.xml\n"
    (out / "robots.txt").write_text(robots, encoding="utf-8")
    return written + ["robots.txt"]


def _digest_tree(folder: Path, skip: tuple[str, ...] = ()) -> dict:
    """File digests under ``folder``; ``skip`` names top-level folders to leave out."""
    if not folder.is_dir():
        return {}
    return tree_digests(folder, lambda rel: "__pycache__" in rel.parts or rel.parts[0] in skip)


def _inputs(ctx: BuildContext) -> dict:
    # Checked on every build, cached or not: a link may change its target without changing a digest.
    check_links_inside(ctx.content_dir / "static", ctx.content_dir, "content/static")
    themes = [_digest_tree(d) for d in theme_dirs(ctx.content_dir, ctx.config.site.theme)]
    from atlas.core.plugins import versions

    plugins = versions()  # a plugin's new version may draw its widget differently
    return {
        **({"plugins": plugins} if plugins else {}),
        # Committed artifacts reach the site through the embed/project stages' keys, not as files.
        "content": _digest_tree(ctx.content_dir, skip=("artifacts",)),
        "themes": themes,
        "site": ctx.config.site,
        "base_url": ctx.config.base_url(),
        "demo": ctx.demo,
        "version": __version__,
    }


def _run(ctx: BuildContext, folder: Path) -> dict:
    from atlas.data.policy import safety_notice
    from atlas.stages import embed
    from atlas.stages import stats as stats_stage

    published = stats_stage.read(ctx.outputs.get("stats"))
    build_info = {
        "demo": ctx.demo,
        "source": "generated demo shards" if ctx.demo else _describe_sources(ctx.sources),
        "rows": published.stats.get("rows"),
        # The day this site was rendered (a cached render keeps its day: nothing on it changed).
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "embedder": embed.describe(embed.read(ctx.outputs.get("embed"))),
        "safety": safety_notice(published.stats.get("safety") or {}),
    }
    return render_site(ctx.config, ctx.content_dir, folder, published, dict(ctx.outputs), build_info)


def _describe_sources(sources: list) -> str:
    """E.g. "hf://datasets/laion/…/part-*.parquet" or "12 local shards"."""
    remote = [s.location for s in sources if s.remote]
    local = len(sources) - len(remote)
    parts = remote[:2] + ([f"{len(remote) - 2} more remote source(s)"] if len(remote) > 2 else [])
    if local:
        parts.append(f"{local} local shard{'s' if local != 1 else ''}")
    return ", ".join(parts) or "no shards"


STAGE = Stage(
    "render",
    "5",  # 4: <site>/model/ (the in-browser caption model) and the runtime only with it; 5: sorted/<score>/ lists
    _inputs,
    _run,
    after=("stats", "bias", "sample", "embed", "project", "mapdata", "search", "prompt_captions", "screen", "gallery", "textmodel"),
    description="Markdown + theme -> static HTML",
)
