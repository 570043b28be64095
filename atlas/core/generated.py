"""Where the committed Stable Diffusion images live and how their manifests are read: the one
format ``atlas generate`` writes (:mod:`atlas.commands.generate`) and the screen and gallery
stages and widgets read."""

from __future__ import annotations

import json
from pathlib import Path

#: The content folder's folder of generated images: ``generated/<prompt-id>/<seed>.{webp,json}``.
GENERATED = "generated"
#: Zoom level of the map link next to the nearest captions (``map/#x=..&y=..&z=..``).
MAP_ZOOM = 6


def manifest_path(content_dir: Path, prompt_id: str, seed: int) -> Path:
    return Path(content_dir) / GENERATED / prompt_id / f"{seed}.json"


def read_manifest(path: Path) -> dict | None:
    """A manifest, or None when missing or unreadable (then the image is regenerated/not shown)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("recipe"), dict) else None
