"""Markdown pages of the content folder: front matter, links that work under any sub-path, and
``atlas`` widget directives in fenced blocks.

Page authors are trusted (their Markdown may hold HTML); data never is: captions reach pages only
through widgets, which escape them, and are never parsed as Markdown or as templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markupsafe import Markup
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from atlas.core.errors import ContentError
from atlas.core.paths import inside_content
from atlas.site.widgets import WidgetContext, render_widget

FRONT_MATTER_KEYS = {"title", "nav", "order", "description", "template"}


@dataclass
class Page:
    source: Path
    slug: str  # "" for the home page, else "clip-filtering" (written to clip-filtering/index.html)
    title: str
    body: str  # Markdown without front matter
    nav: str | None = None
    order: float = 100.0
    description: str = ""
    template: str = "page.html"
    meta: dict = field(default_factory=dict)

    @property
    def href(self) -> str:
        return f"{self.slug}/" if self.slug else ""

    @property
    def output(self) -> str:
        return f"{self.slug}/index.html" if self.slug else "index.html"

    @property
    def root(self) -> str:
        return "../" * (self.slug.count("/") + 1) if self.slug else ""


def _split_front_matter(text: str, where: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines(keepends=True)
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            raw = "".join(lines[1:i])
            try:
                meta = yaml.safe_load(raw) or {}
            except yaml.YAMLError as error:
                raise ContentError(f"front matter is not valid YAML: {error}", where=where) from None
            if not isinstance(meta, dict):
                raise ContentError("front matter must be key: value pairs", where=where)
            unknown = sorted(set(meta) - FRONT_MATTER_KEYS)
            if unknown:
                raise ContentError(
                    f"unknown front matter key(s) {', '.join(unknown)}",
                    where=where,
                    hint=f"Known keys: {', '.join(sorted(FRONT_MATTER_KEYS))}.",
                )
            return meta, "".join(lines[i + 1 :])
    raise ContentError("front matter starts with --- but never ends", where=where, hint="Close it with a --- line.")


def load_pages(content_dir: Path) -> list[Page]:
    """Every ``*.md`` under the content folder (but not under generated/ or themes/)."""
    pages = []
    for path in sorted(Path(content_dir).rglob("*.md")):
        rel = path.relative_to(content_dir)
        if rel.parts[0] in ("generated", "themes", "static") or rel.name.lower() == "readme.md":
            continue
        where = str(path)
        inside_content(content_dir, rel.as_posix(), f"page {rel}")  # a link leaving the folder is refused
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ContentError("page is not UTF-8 text", where=where) from None
        meta, body = _split_front_matter(text, where)
        stem = rel.with_suffix("").as_posix()
        slug = "" if stem == "index" else stem.removesuffix("/index")
        title = meta.get("title") or _first_heading(body) or slug.replace("-", " ").title() or "Home"
        try:
            order = float(meta.get("order", 100))
        except (TypeError, ValueError):
            raise ContentError("front matter 'order' must be a number", where=where) from None
        pages.append(
            Page(
                source=path,
                slug=slug,
                title=str(title),
                body=body,
                nav=meta.get("nav"),
                order=order,
                description=str(meta.get("description", "")),
                template=str(meta.get("template", "page.html")),
                meta=meta,
            )
        )
    pages.sort(key=lambda p: (p.order, p.slug))
    return pages


def _first_heading(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def _rebase_links(md: MarkdownIt) -> None:
    """``/map/`` in an author's link means the site root, wherever the site is published."""

    def rule(state):
        root = state.env.get("root", "")
        for token in state.tokens:
            for child in token.children or []:
                for attr in ("href", "src"):
                    value = child.attrGet(attr)
                    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
                        child.attrSet(attr, root + value[1:])

    md.core.ruler.push("atlas_rebase_links", rule)


def markdown_renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(
        ["table", "strikethrough", "replacements", "smartquotes"]
    )
    md.use(front_matter_plugin).use(footnote_plugin).use(anchors_plugin, max_level=3, permalink=False)
    _rebase_links(md)
    default_fence = md.renderer.rules["fence"]

    def fence(self, tokens, idx, options, env):
        token = tokens[idx]
        info = token.info.strip()
        if info == "atlas" or info.startswith("atlas "):
            ctx: WidgetContext = env["widget_ctx"]
            where = f"{ctx.source}:{(token.map or [0])[0] + 1}"
            return str(render_widget(info, ctx, where)) + "\n"
        return default_fence(tokens, idx, options, env)

    md.add_render_rule("fence", fence)
    return md


def render_markdown(page: Page, ctx: WidgetContext) -> Markup:
    md = markdown_renderer()
    html = md.render(page.body, {"widget_ctx": ctx, "root": ctx.root})
    return Markup(html)
