"""``atlas new DIR``: a fresh content folder copied from the default atlas, to fork.

The default content ships inside the wheel (pyproject's hatch ``force-include`` maps
``content`` to ``atlas/default_content``); in an editable install it is the repository's
``content/``. Committed ``artifacts/`` are not copied: they belong to the default atlas's data
subset, not to a new one (generated images are kept: they depend on the prompts, not the data).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from atlas.core.errors import AtlasError
from atlas.core.resources import default_content_dir

#: Folders of the default content that describe its own build, not a starting point.
_SKIP = ("artifacts", "__pycache__")


def new_content(directory: Path) -> list[Path]:
    """Copy the default content into ``directory`` (new or empty); returns the files written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise AtlasError(f"{directory} is a file", hint="Choose a new folder name for the content.")
    if directory.is_dir() and any(directory.iterdir()):
        raise AtlasError(
            f"{directory} already exists and is not empty; atlas new never overwrites files",
            hint="Choose a new folder name, or empty that folder first.",
        )
    for parent in directory.parents:
        if parent.exists() and not parent.is_dir():
            raise AtlasError(f"cannot create {directory}: {parent} is a file", hint="Choose a folder name whose parents are folders.")
    source = default_content_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AtlasError(f"cannot create {directory}: {error.strerror or error}",
                         hint="Choose a folder you may write to.") from None
    written = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.parts[0] in _SKIP or path.is_dir():
            continue
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    return written
