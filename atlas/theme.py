"""The Jinja2 environment: a fork's ``themes/<name>/templates`` overrides single templates of the
built-in default theme, and ``{% extends "default:base.html" %}`` reaches the original.

Autoescaping is on for every template: captions and URLs from the data are never trusted.
"""

from __future__ import annotations

from pathlib import Path

from atlas.core.resources import default_theme_dir
from atlas.core.paths import check_links_inside, inside_content


def theme_dirs(content_dir: Path, name: str) -> list[Path]:
    """Theme folders, most specific first: the content's own theme, then the default.

    A fork's theme is ``themes/<name>`` in the content folder or beside it (the project); it
    must stay there (no ``..``, no links leaving it): its templates and static files are
    published. A ConfigError names ``[site] theme`` otherwise.
    """
    dirs = []
    content_dir = Path(content_dir)
    for root in (content_dir, content_dir.parent):
        base = inside_content(root, f"themes/{name}", "[site] theme")
        if (base / "templates").is_dir() and base != default_theme_dir().resolve():
            check_links_inside(base, root, "[site] theme")
            dirs.append(base)
            break
    dirs.append(default_theme_dir())
    return dirs


def make_env(content_dir: Path, name: str = "default") -> jinja2.Environment:
    import jinja2

    dirs = theme_dirs(content_dir, name)
    default = jinja2.FileSystemLoader(str(default_theme_dir() / "templates"))
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({"default": default}, delimiter=":"),
            jinja2.FileSystemLoader([str(d / "templates") for d in dirs]),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n):,}" if n is not None else "–"
    env.filters["percent"] = lambda x, digits=1: "–" if x is None else f"{100 * x:.{digits}f}%"
    from atlas.data.urls import safe_http_url

    env.filters["safe_url"] = safe_http_url
    return env


def static_dirs(content_dir: Path, name: str = "default") -> list[Path]:
    """Static asset folders, default first so that a fork's files override."""
    return [d / "static" for d in reversed(theme_dirs(content_dir, name)) if (d / "static").is_dir()]
