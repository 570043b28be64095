"""Widgets and stages from other installed packages, found through entry points.

A fork or a separate package adds a widget without editing atlas (as Datasette and MkDocs find
their plugins): its ``pyproject.toml`` names a module in the ``atlas.widgets`` entry-point group,

    [project.entry-points."atlas.widgets"]
    sparkline = "atlas_sparkline.widgets"

and importing that module registers its widgets with :func:`atlas.site.widgets.widget`, like the
built-in ones. An entry point may also name a callable (``"pkg.mod:register"``), which is called
once after loading. The ``atlas.stages`` group names :class:`atlas.core.pipeline.Stage` objects (or
callables returning one or a list), placed after the stages they read (``after``) and before
render, which reads every plugin stage's output and is rebuilt when one changes.

A plugin that fails to import, or takes a name already taken (a built-in's or another
plugin's), is a :class:`~atlas.core.errors.PluginError` naming it, not a traceback from inside atlas.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable
from typing import Any

from atlas.core.errors import AtlasError, PluginError

WIDGET_GROUP = "atlas.widgets"
STAGE_GROUP = "atlas.stages"


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The group's entry points, in a stable order (by name), one per name and distribution."""
    seen, out = set(), []
    for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            out.append(ep)
    return out


def describe(ep: importlib.metadata.EntryPoint) -> str:
    """``the atlas.widgets plugin 'sparkline' (atlas-sparkline 0.1, atlas_sparkline.widgets)``."""
    dist = getattr(ep, "dist", None)
    package = f"{dist.metadata['Name']} {dist.version}, " if dist is not None else ""
    return f"the {ep.group} plugin {ep.name!r} ({package}{ep.value})"


def _uninstall_hint(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None else "its package"
    return f"Fix or update {name}, or uninstall it (pip uninstall {name})."


def load(ep: importlib.metadata.EntryPoint) -> Any:
    """Import what the entry point names; any failure becomes a PluginError naming the plugin."""
    try:
        return ep.load()
    except AtlasError:
        raise
    except Exception as error:  # noqa: BLE001 - a plugin's bug, whatever it is, is reported as the plugin's
        raise PluginError(f"{describe(ep)} failed to load: {type(error).__name__}: {error}",
                          hint=_uninstall_hint(ep)) from None


def call(ep: importlib.metadata.EntryPoint, fn: Callable) -> Any:
    """Call a plugin's registration callable, its failures reported as the plugin's."""
    try:
        return fn()
    except AtlasError:
        raise
    except Exception as error:  # noqa: BLE001 - as in load()
        raise PluginError(f"{describe(ep)} failed: {type(error).__name__}: {error}", hint=_uninstall_hint(ep)) from None


def load_widget_plugins(register_owner: Callable[[str | None], None]) -> list[str]:
    """Load every ``atlas.widgets`` entry point; ``register_owner(label)`` tells the registry who
    is registering (so a taken name is blamed on the plugin), ``None`` when done. Returns the
    plugins loaded, described."""
    loaded = []
    for ep in entry_points(WIDGET_GROUP):
        register_owner(describe(ep))
        try:
            target = load(ep)
            if callable(target) and not inspect.ismodule(target):
                call(ep, target)
        except PluginError as error:
            if error.hint is None:
                error.hint = _uninstall_hint(ep)
            raise
        finally:
            register_owner(None)
        loaded.append(describe(ep))
    return loaded


def load_stage_plugins(builtin: list) -> list:
    """The built-in stages with every ``atlas.stages`` plugin's stages placed after the last
    stage each reads, before render; render is made to depend on them all."""
    import dataclasses

    from atlas.core.pipeline import Stage

    stages = list(builtin)
    render = stages.pop() if stages and stages[-1].name == "render" else None
    added = []
    for ep in entry_points(STAGE_GROUP):
        target = load(ep)
        if callable(target) and not isinstance(target, Stage):
            target = call(ep, target)
        found = target if isinstance(target, (list, tuple)) else [target]
        for stage in found:
            if not isinstance(stage, Stage):
                raise PluginError(f"{describe(ep)} gives {type(stage).__name__}, not an atlas.core.pipeline.Stage",
                                  hint=_uninstall_hint(ep))
            names = [s.name for s in stages] + ([render.name] if render else [])
            if stage.name in names:
                raise PluginError(f"{describe(ep)} names its stage {stage.name!r}, which is already taken",
                                  hint="A plugin stage needs a name of its own; " + _uninstall_hint(ep))
            unknown = [n for n in stage.after if n not in names or n == "render"]
            if unknown:
                raise PluginError(
                    f"{describe(ep)}: stage {stage.name!r} reads {', '.join(map(repr, unknown))}, which "
                    f"{'is not a stage' if len(unknown) == 1 else 'are not stages'} it can run after",
                    hint=f"The stages before render are {', '.join(s.name for s in stages)}.")
            at = max((i for i, s in enumerate(stages) if s.name in stage.after), default=len(stages) - 1) + 1
            stages.insert(at, stage)
            added.append(stage.name)
    if render is not None:
        if added:
            render = dataclasses.replace(render, after=tuple(render.after) + tuple(added))
        stages.append(render)
    return stages


def versions() -> dict[str, str]:
    """Installed plugins' distributions and versions, for the render stage's key: upgrading a
    plugin's widget re-renders the site."""
    out = {}
    for group in (WIDGET_GROUP, STAGE_GROUP):
        for ep in entry_points(group):
            dist = getattr(ep, "dist", None)
            out[f"{group}:{ep.name}"] = f"{dist.metadata['Name']} {dist.version}" if dist is not None else ep.value
    return out
