"""Links from a page to a row's point on the map: ``map/#x=..&y=..&z=..&p=..``, in the map's own
world coordinates (``(coord - x0) / span`` of ``meta.json``'s bounds, clipped to the unit box as its
quantising does) and the point's index in the map's order, so the map flies there and pins it.
Every page that links a row to the map (score lists, the gallery's nearest captions) goes through here."""

from __future__ import annotations

import functools
from pathlib import Path

from atlas.core.generated import MAP_ZOOM


def map_positions(outputs: dict[str, Path], row_ids) -> dict[int, tuple[int, float, float]]:
    """row_id -> (point index, world x, world y) as the map page reads them, for ``row_ids``."""
    placed = _placed(outputs.get("mapdata"), outputs.get("project"))
    if placed is None:
        return {}
    points, world = placed
    out = {}
    for row_id in {int(r) for r in row_ids}:
        point = points.get(row_id)
        if point is not None:
            out[row_id] = (point, round(float(world[point][0]), 5), round(float(world[point][1]), 5))
    return out


@functools.lru_cache(maxsize=4)
def _placed(mapdata_folder: Path | None, project_folder: Path | None):
    """(row_id -> point index, world [N, 2] in point order) of one build's map; read once per render
    (every page's widgets ask, and reading the map's row ids reads all its detail chunks)."""
    import numpy as np

    from atlas.stages import mapdata, project

    data = mapdata.read(mapdata_folder)
    projection = project.read(project_folder)
    if data is None or projection is None or not data.count:
        return None
    bounds = data.meta.get("bounds") or {}
    x0, y0, span = float(bounds.get("x0", 0.0)), float(bounds.get("y0", 0.0)), float(bounds.get("span", 1.0)) or 1.0
    coords = np.asarray(projection.coords, dtype=np.float64)
    row_ids = np.asarray(data.row_ids(), dtype=np.int64)
    inside = row_ids < len(coords)
    world = np.full((len(row_ids), 2), 0.5)
    world[inside] = (coords[row_ids[inside]] - [x0, y0]) / span
    world = np.clip(np.where(np.isfinite(world), world, 0.5), 0.0, 1.0)  # as the map's quantising does
    points = {int(r): i for i, r in enumerate(row_ids) if inside[i]}
    return points, world


def point_href(root: str, place: tuple[int, float, float] | None, zoom: float = MAP_ZOOM) -> str:
    """The map link for one of :func:`map_positions`' places ("" for none)."""
    if place is None:
        return ""
    point, x, y = place
    return f"{root}map/#x={x}&y={y}&z={zoom}&p={point}"
