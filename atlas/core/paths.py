"""Paths of files that the site publishes or renders must stay inside the content folder.

A pull request to a fork's content folder must not be able to publish files of the build
machine: ``artists = "../../../../etc/passwd"`` would put that file's lines in
``data/artists.csv``, a symlink in ``content/static`` would copy its target into the site, a
theme named ``../..`` would load templates from anywhere. Every such path goes through
:func:`inside_content` (one key) or :func:`check_links_inside` (a folder whose files are
copied). Data sources and model weights may point anywhere (they go through
:func:`atlas.core.config.content_path`): their bytes are never published, only figures computed
from them.
"""

from __future__ import annotations

import os
from pathlib import Path

from atlas.core.errors import ConfigError


def inside_content(content_dir: Path, value: str, key: str, root: Path | None = None) -> Path:
    """``value`` (a path relative to ``content_dir``) as a resolved path that stays inside ``root``.

    ``root`` defaults to the content folder. An absolute path (``/etc/passwd``, ``~/x``), ``..``
    that climbs out of ``root``, or a symlink whose target lies outside it is a ConfigError
    naming ``key`` (e.g. ``[data] artists``). The path need not exist.
    """
    text = str(value)
    base = Path(content_dir)
    outer = Path(root if root is not None else base).resolve()
    if text.startswith("~") or Path(text).is_absolute() or (os.sep != "/" and Path(text).drive):
        raise ConfigError(
            f"{text!r} is an absolute path; files the site publishes must be inside the content folder",
            where=key,
            hint=f"Move the file into {base} and give its path relative to that folder.",
        )
    resolved = (base / text).resolve()
    if not resolved.is_relative_to(outer):
        raise ConfigError(
            f"{text!r} leads outside {outer} (to {resolved}); files the site publishes must stay inside it",
            where=key,
            hint=f"Move the file into {outer} and give its path relative to {base}, without '..' or links "
            "that leave it.",
        )
    return resolved


def check_links_inside(folder: Path, root: Path, key: str) -> None:
    """Refuse a folder whose files will be copied into the site when a symlink in it (file or
    folder, at any depth) points outside ``root``; ConfigError naming ``key`` and the link."""
    folder = Path(folder)
    outer = Path(root).resolve()
    if folder.is_symlink() and not folder.resolve().is_relative_to(outer):
        raise ConfigError(
            f"{folder} is a symbolic link to {folder.resolve()}, outside {outer}",
            where=key,
            hint="Copy the files into the folder instead of linking to them; linked files outside it are never published.",
        )
    seen = {folder.resolve()}
    for parent, dirs, files in os.walk(folder, followlinks=True):
        for name in dirs + files:
            path = Path(parent) / name
            if path.is_symlink() and not path.resolve().is_relative_to(outer):
                raise ConfigError(
                    f"{path} is a symbolic link to {path.resolve()}, outside {outer}",
                    where=key,
                    hint="Copy the file into the folder instead of linking to it; linked files outside it "
                    "are never published.",
                )
        # Links to folders inside ``root`` are followed (their files are copied too), once each.
        dirs[:] = [d for d in dirs if (Path(parent) / d).resolve() not in seen]
        seen.update((Path(parent) / d).resolve() for d in dirs)
