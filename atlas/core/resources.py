"""What ships inside atlas besides its code: the default content folder and the default theme.

Both are packaged inside ``atlas/`` in a wheel (pyproject's hatch ``force-include`` maps
``content`` to ``atlas/default_content`` and ``themes`` to ``atlas/themes``) and found at the
repository root in an editable install.
"""

from __future__ import annotations

from pathlib import Path

import atlas
from atlas.core.config import CONFIG_NAME
from atlas.core.errors import AtlasError


def default_content_dir() -> Path:
    """The default content folder (``atlas new`` copies it; its blocklist is the shipped one)."""
    here = Path(atlas.__file__).resolve().parent
    for candidate in (here / "default_content", here.parent / "content"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise AtlasError(
        "the default content is missing from this installation of atlas",
        hint="Reinstall atlas (pip install --force-reinstall atlas-laion) or copy a content folder by hand.",
    )


def default_theme_dir() -> Path:
    """The built-in theme."""
    here = Path(atlas.__file__).resolve().parent
    for candidate in (here / "themes" / "default", here.parent / "themes" / "default"):
        if (candidate / "templates").is_dir():
            return candidate
    raise FileNotFoundError("the default theme is missing from this installation of atlas")
