"""Data widgets a page author places in Markdown with a one-line directive.

A fenced block whose info string starts with ``atlas`` names a widget and its arguments::

    ```atlas histogram column=similarity
    ```

Arguments are ``key=value`` (quote values with spaces: ``title="CLIP score"``); a bare word is
the widget's first positional argument. Widgets return HTML (``markupsafe.Markup``) built only
from escaped data, reading the stages' outputs through their readers (``atlas.stages.<stage>.read``).

One module per family registers its widgets with :func:`widget`: histogram, tables, captions,
stat, map, gallery, bias_grid, bias_captions, sorted_lists. A new widget goes into one of them (or a new module listed in
:func:`_load_builtin_widgets`), or, without editing atlas, into an installed package that names
its module in the ``atlas.site.widgets`` entry-point group (:mod:`atlas.core.plugins`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from atlas.core.config import AtlasConfig
from atlas.core.errors import ContentError, PluginError


@dataclass
class WidgetContext:
    """What a widget may read while a page renders."""

    config: AtlasConfig
    content_dir: Path
    #: The page being rendered: its slug ("" for the home page) and source file.
    page: str
    source: Path
    #: Relative prefix from this page to the site root, e.g. "../" (works under any sub-path).
    root: str
    #: The statistics stage's published statistics (``atlas.stages.stats.Stats.stats``; empty
    #: for a build without data).
    stats: dict
    #: Output folders of the stages that ran or were cached, by stage name.
    outputs: dict[str, Path]
    #: Files to copy into the site: site-relative destination -> source path.
    assets: dict[str, Path] = field(default_factory=dict)
    #: Extra data the render stage passes along (e.g. examples, map summary).
    extra: dict[str, Any] = field(default_factory=dict)
    #: Template environment (atlas.site.theme.make_env) for widgets that render templates.
    env: Any = None

    def render(self, template: str, **values) -> Markup:
        """``template`` of the theme as Markup; a template's failure is a ThemeError naming it."""
        from atlas.site.theme import render_template

        return Markup(render_template(self.env, template, root=self.root, config=self.config, **values))


WidgetFn = Callable[[dict[str, str], WidgetContext], Markup]
REGISTRY: dict[str, WidgetFn] = {}
#: Who registered each widget: "atlas" or the plugin (see atlas.core.plugins.describe).
OWNERS: dict[str, str] = {}
#: The plugin being loaded, while its module registers widgets; None for atlas's own.
_loading: str | None = None
_loaded = False


def widget(name: str) -> Callable[[WidgetFn], WidgetFn]:
    """Register ``fn`` as the widget ``name``; a name is one widget's, so a plugin cannot replace
    a built-in (or another plugin's) by accident: taking one is a PluginError naming both."""

    def register(fn: WidgetFn) -> WidgetFn:
        owner = _loading or "atlas"
        taken = REGISTRY.get(name)
        if taken is not None and (taken.__module__, taken.__qualname__) != (fn.__module__, fn.__qualname__):
            raise PluginError(f"{owner} registers the widget {name!r}, which {OWNERS[name]} already registers",
                              hint="A plugin's widget needs a name of its own; rename it in the plugin.")
        REGISTRY[name] = fn
        OWNERS[name] = owner
        return fn

    return register


def parse_directive(info: str, where: str) -> tuple[str, dict[str, str]]:
    """``atlas histogram column=x`` -> ("histogram", {"column": "x"})."""
    try:
        words = shlex.split(info)
    except ValueError as error:
        raise ContentError(f"cannot parse widget directive {info!r}: {error}", where=where) from None
    if len(words) < 2:
        raise ContentError(
            "widget directive names no widget",
            where=where,
            hint=f"Write e.g. ```atlas histogram column=similarity; widgets: {', '.join(sorted(REGISTRY))}.",
        )
    name, args = words[1], {}
    for position, word in enumerate(words[2:]):
        if "=" in word:
            key, value = word.split("=", 1)
            args[key.strip()] = value
        elif position == 0:
            args["_"] = word
        else:
            raise ContentError(f"widget argument {word!r} needs the form key=value", where=where)
    return name, args


def render_widget(info: str, ctx: WidgetContext, where: str) -> Markup:
    load_widgets()
    name, args = parse_directive(info, where)
    fn = REGISTRY.get(name)
    if fn is None:
        raise ContentError(
            f"unknown widget {name!r}",
            where=where,
            hint=f"Known widgets: {', '.join(sorted(REGISTRY))}.",
        )
    try:
        return fn(args, ctx)
    except ContentError as error:
        if error.where is None:
            error.where = where
        raise


def _load_builtin_widgets() -> None:
    """Import the modules that register the built-in widgets (on first use, so importing this
    package stays light)."""
    from atlas.site.widgets import bias_captions, bias_grid, captions, gallery, histogram, map, sorted_lists, stat, tables  # noqa: F401


def load_widgets() -> None:
    """The built-in widgets, then the installed plugins' (``atlas.site.widgets`` entry points), once:
    built-ins first, so a plugin taking a built-in's name is the one reported."""
    global _loaded
    if _loaded:
        return
    _load_builtin_widgets()
    from atlas.core.plugins import load_widget_plugins

    def owner(label: str | None) -> None:
        global _loading
        _loading = label

    load_widget_plugins(owner)
    _loaded = True


def needs_stats(ctx: WidgetContext, what: str) -> None:
    """Refuse a statistics widget on a build without statistics."""
    if not ctx.stats:
        raise ContentError(f"the {what} widget needs statistics, but this build has none")


def arg_int(args: dict[str, str], key: str, default: int, lo: int = 1, hi: int = 10_000) -> int:
    value = args.get(key)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ContentError(f"widget argument {key}={value!r} must be a whole number") from None
    if not lo <= number <= hi:
        raise ContentError(f"widget argument {key}={number} must be between {lo} and {hi}")
    return number
