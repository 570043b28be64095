"""The Jinja2 environment: a fork's ``themes/<name>/templates`` overrides single templates of the
built-in default theme, and ``{% extends "default:base.html" %}`` reaches the original.

Autoescaping is on for every template: captions and URLs from the data are never trusted.

Templates are rendered through :func:`render_template`: a template that does not compile or
raises while rendering (a syntax error, an undefined name, ``{{ 1/0 }}``, an ``extends`` that
reaches itself, a missing include) is a :class:`~atlas.core.errors.ThemeError` naming the template
file and line, so ``atlas build`` says what to fix (exit 2) instead of printing a traceback, and
the previous site stays as it was (the build publishes only a complete site).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from atlas.core.resources import default_theme_dir
from atlas.core.paths import check_links_inside, inside_content
from atlas.core.errors import ThemeError


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
    env.atlas_theme_dirs = dirs  # for ThemeError's file names (render_template)
    return env


def render_template(env: jinja2.Environment, name: str, **values) -> str:
    """``name`` rendered with ``values``; any failure inside a template is a ThemeError."""
    import jinja2

    try:
        return env.get_template(name).render(**values)
    except ThemeError:
        raise
    except jinja2.TemplateError as error:
        raise theme_error(env, name, error) from None
    except Exception as error:  # a template's own mistake ({{ 1/0 }}, extends itself): only inside one
        if _template_frames(env, error):
            raise theme_error(env, name, error) from None
        raise


def _display(env, filename: str | None) -> str | None:
    """A template file as the user knows it: ``themes/<name>/templates/page.html``, relative to
    the folder holding ``themes/`` (the content folder or the project)."""
    if not filename:
        return None
    path = Path(filename).resolve()
    for theme in getattr(env, "atlas_theme_dirs", []):
        theme = Path(theme).resolve()
        if path.is_relative_to(theme):
            shown = path.relative_to(theme.parent.parent).as_posix()
            return shown + (" (the built-in default theme)" if theme == default_theme_dir().resolve() else "")
    return None


def _template_frames(env, error: BaseException) -> list[tuple[str, int]]:
    """(file as shown, line) of each template frame in the error's traceback, outermost first;
    Jinja2 rewrites its tracebacks so that a template's frames carry the template's file and line."""
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        shown = _display(env, frame.filename)
        if shown:
            frames.append((shown, frame.lineno or 0))
    return frames


def theme_error(env, name: str, error: BaseException) -> ThemeError:
    """One paragraph for a template failure: which template file, which line, what, what to do."""
    import jinja2

    frames = _template_frames(env, error)
    where = f"{frames[-1][0]}, line {frames[-1][1]}" if frames else None
    fix = ("Fix the template, or delete a fork's copy to use the default theme's "
           "(a fork reaches the original as \"default:NAME\").")
    if isinstance(error, jinja2.TemplateSyntaxError):
        shown = _display(env, error.filename) or error.name or name
        return ThemeError(f"Jinja2 syntax error: {error.message}", where=f"{shown}, line {error.lineno}",
                          hint=fix)
    if isinstance(error, jinja2.TemplateNotFound):
        missing = ", ".join(getattr(error, "templates", None) or [error.name or name])
        return ThemeError(
            f"template {missing} not found in the theme (needed to render {name})", where=where,
            hint='Add it to the fork\'s templates/ folder, or name a template of the default theme '
                 '(e.g. "default:page.html").')
    if isinstance(error, RecursionError):
        return ThemeError(
            f"the template extends or includes itself without end (rendering {name})", where=where,
            hint='A fork\'s template that extends the original must name it as "default:NAME" '
                 '(e.g. {% extends "default:page.html" %}), not by its own name.')
    if isinstance(error, jinja2.UndefinedError):
        what = error.message or "an undefined name"
        return ThemeError(f"{what} (rendering {name})", where=where,
                          hint="A template gets only the names the default theme's templates use (page, body, "
                               "config, stats, nav, root, ...). " + fix)
    return ThemeError(f"{type(error).__name__}: {error} (rendering {name})", where=where, hint=fix)


def static_dirs(content_dir: Path, name: str = "default") -> list[Path]:
    """Static asset folders, default first so that a fork's files override."""
    return [d / "static" for d in reversed(theme_dirs(content_dir, name)) if (d / "static").is_dir()]
