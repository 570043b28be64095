"""Render stage: content pages, the map page and the published data into one static site folder.

:func:`render_site` is the plain function; it writes a self-contained site (pages, static assets,
``data/stats.json`` and CSV downloads, ``map/``) into a folder. Every link is relative, so the
site works under a GitHub Pages project sub-path and from a local preview.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from atlas import __version__
from atlas.cache import file_digest
from atlas.config import AtlasConfig
from atlas.content import Page, load_pages, render_markdown
from atlas.errors import ContentError
from atlas.pipeline import BuildContext, Stage
from atlas.theme import make_env, static_dirs, theme_dirs
from atlas.widgets import WidgetContext

PUBLISHED_DATA = ("stats.json", "domains.csv", "hosts.csv", "artists.csv", "histograms.csv")


def _nav(pages: list[Page], current: str, root: str, has_map: bool) -> list[dict]:
    items = [
        {"title": p.nav or p.title, "href": p.href, "current": p.slug == current, "order": p.order}
        for p in pages
        if p.nav is not False and (p.nav or p.slug == "") and p.meta.get("nav", True) is not False
    ]
    if has_map:
        items.append({"title": "Map", "href": "map/", "current": current == "map", "order": 35})
    return sorted(items, key=lambda item: item["order"])


def _canonical(config: AtlasConfig, path: str) -> str | None:
    base = config.base_url()
    if not base.startswith(("http://", "https://")):
        return None
    return base.rstrip("/") + "/" + path


def render_site(
    config: AtlasConfig,
    content_dir: Path,
    out: Path,
    stats: dict,
    examples: dict,
    outputs: dict[str, Path],
    build_info: dict,
) -> dict:
    """Write the whole site into ``out``; returns a summary (pages written)."""
    env = make_env(content_dir, config.site.theme)
    pages = load_pages(content_dir)
    if not pages:
        raise ContentError(
            f"the content folder {content_dir} has no Markdown pages",
            hint="Add index.md (or run `atlas new DIR` for a starting point).",
        )
    has_map = "mapdata" in outputs
    assets: dict[str, Path] = {}
    common = {
        "config": config,
        "version": __version__,
        "demo": build_info.get("demo", False),
        "built": build_info,
        "stats": stats,
    }
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
            extra={"examples": examples, "build": build_info},
            env=env,
        )
        body = render_markdown(page, ctx)
        try:
            template = env.get_template(page.template)
        except Exception as error:
            raise ContentError(f"template {page.template!r} not found: {error}", where=str(page.source)) from None
        nav = _nav(pages, page.slug, page.root, has_map)
        here = next((i for i, item in enumerate(nav) if item["current"]), None)
        html = template.render(
            **common,
            page=page,
            prev_item=nav[here - 1] if here else None,
            next_item=nav[here + 1] if here is not None and here + 1 < len(nav) else None,
            page_title=page.title,
            description=page.description or config.site.description,
            canonical=_canonical(config, page.href),
            root=page.root,
            nav=nav,
            body=body,
        )
        target = out / page.output
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        written.append(page.output)

    if has_map:
        from atlas.stages.mapdata import page_context

        shutil.copytree(outputs["mapdata"], out / "map" / "data", ignore=shutil.ignore_patterns("_*.json"))
        html = env.get_template("map.html").render(
            **common,
            page_title="Map",
            description=f"An interactive map of {config.site.title}: every point is an image-text pair.",
            canonical=_canonical(config, "map/"),
            root="../",
            nav=_nav(pages, "map", "../", has_map),
            map=page_context(outputs["mapdata"]),
        )
        (out / "map" / "index.html").write_text(html, encoding="utf-8")
        written.append("map/index.html")

    for folder in static_dirs(content_dir, config.site.theme) + [content_dir / "static"]:
        if folder.is_dir():
            shutil.copytree(folder, out / "static", dirs_exist_ok=True)
    for dest, source in assets.items():
        target = out / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    if "stats" in outputs:
        for name in PUBLISHED_DATA:
            if (outputs["stats"] / name).exists():
                shutil.copy2(outputs["stats"] / name, data_dir / name)
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve folders starting with _ as they are
    return {"pages": written}


def _digest_tree(folder: Path) -> dict:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): file_digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _inputs(ctx: BuildContext) -> dict:
    themes = [_digest_tree(d) for d in theme_dirs(ctx.content_dir, ctx.config.site.theme)]
    return {
        "content": _digest_tree(ctx.content_dir),
        "themes": themes,
        "site": ctx.config.site,
        "base_url": ctx.config.base_url(),
        "demo": ctx.demo,
        "version": __version__,
    }


def _run(ctx: BuildContext, folder: Path) -> dict:
    stats, examples = {}, {}
    if "stats" in ctx.outputs:
        stats = json.loads((ctx.output("stats") / "stats.json").read_text(encoding="utf-8"))
        examples = json.loads((ctx.output("stats") / "examples.json").read_text(encoding="utf-8"))
    build_info = {
        "demo": ctx.demo,
        "source": "generated demo shards" if ctx.demo else f"{len(ctx.sources)} shard source(s)",
        "rows": stats.get("rows"),
    }
    return render_site(ctx.config, ctx.content_dir, folder, stats, examples, dict(ctx.outputs), build_info)


STAGE = Stage(
    "render",
    "1",
    _inputs,
    _run,
    after=("stats", "sample", "embed", "project", "mapdata"),
    description="Markdown + theme -> static HTML",
)
