"""The files the interactive map page loads: compact binary points, metadata and text chunks.

``write_mapdata`` turns the sample (captions, URLs, scores), its 2-D projection and clusters into:

``meta.json``
    Point count, quantisation ranges, the domain table, cluster levels (labels, centroids, sizes),
    the colour-by options the data supports, the embedding model/method and its notice.
``points.bin``
    The first load, little-endian, one column after another (structure of arrays), each column
    starting on a 4-byte boundary; ``meta["points"]["columns"]`` gives name, type, offset, length:

    =================  ========  ==========================================================
    ``xy``             uint16×2  x, y interleaved; world = q / xy_max in a square [0, 1] box
    ``domain``         uint16    index into ``meta["domains"]`` (top domains, last = "other")
    ``cluster_<lvl>``  uint16    index into ``meta["clusters"][i]`` (no_cluster = unclustered)
    ``scores``         uint8×4   aesthetic, similarity, punsafe, pwatermark as 0..score_max
                                 over the score's [min, max] (score_missing = missing)
    =================  ========  ==========================================================

    The numbers (``xy_max`` 65535, ``score_max`` 254, ``score_missing`` 255, ``no_cluster`` 65535)
    are in ``meta["encoding"]``; the page reads them from there.

    That is 14 bytes a point with two cluster levels. Points are stored in Morton (Z-curve) order
    of their position, so a text chunk holds captions that are near each other on the map.
``lengths.bin``
    Each point's caption length in characters, uint8, 0..score_max over [0, max] (max =
    ``meta["lengths"]["max"]``, the 99th percentile of the lengths; longer captions get score_max,
    so the histogram spreads over the common lengths), in point order. Not part of the first load:
    the page fetches it after the first frame for the crossfilter's caption-length histogram
    (``meta["encoding"]["lengths"]`` says so), so the first load stays 14-16 bytes a point.
``text/NNNNN.json``
    Captions of points ``N*chunk_size ..``, a JSON list of strings (hover, pin and the search
    result rows load them; search itself uses the search stage's index).
``detail/NNNNN.json``
    Per point ``[url, host, domain, row_id, aesthetic, similarity, punsafe, pwatermark]``; ``url``
    is ``null`` unless it is a plain http(s) URL (:func:`atlas.data.urls.safe_http_url`).
``neighbours.bin``
    Each point's k (``meta["neighbours"]["k"]``, 10) nearest points in embedding space, from the
    project stage: little-endian uint32 [count, k], row p = point p, values are point indices in
    the same (Morton) order as ``points.bin``, nearest first, 4294967295 = none. Loaded on demand
    (a pinned point), never in the first load.

Captions are data, never markup: they are written as JSON strings and the page inserts them
with ``textContent`` only.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from atlas.data.urls import safe_http_url
from atlas.core.pipeline import Stage
from atlas.text.published import CAPTION_CUT, cut_caption

log = logging.getLogger(__name__)

FORMAT = 1
#: Points per text/detail chunk: small enough that hovering a point or showing a screen of search
#: results fetches little (about 60 kB of captions a chunk at LAION caption lengths).
CHUNK_SIZE = 1_000
#: Domains with their own colour/category; the rest share "other".
TOP_DOMAINS = 19
#: The binary format's numbers, written into ``meta["encoding"]`` so the page never hard-codes them.
XY_MAX = 65535  # quantised coordinates 0..XY_MAX
SCORE_MAX = 254  # quantised scores 0..SCORE_MAX
MISSING_U8 = 255  # a missing score
NO_CLUSTER = 65535  # a point outside every cluster of a level
ENCODING = {"xy_max": XY_MAX, "score_max": SCORE_MAX, "score_missing": MISSING_U8, "no_cluster": NO_CLUSTER,
            "lengths": "lengths.bin: uint8 a point, caption length as 0..score_max over [0, lengths.max]; "
                       "loaded after the first frame"}
#: Score columns in the order of the ``scores`` bytes, with labels and fixed ranges where known.
SCORES = (
    ("aesthetic", "Aesthetic score", None),
    ("similarity", "CLIP similarity", None),
    ("punsafe", "P(unsafe)", (0.0, 1.0)),
    ("pwatermark", "P(watermark)", (0.0, 1.0)),
)
#: Captions are published cut (atlas.text.published.cut_caption); the lengths file counts at most this.
MAX_CAPTION = CAPTION_CUT
COLOUR_LABELS = {"cluster": "Cluster", "domain": "Domain"} | {name: label for name, label, _ in SCORES}


# ----------------------------------------------------------------------------- quantisation


def quantise_unit(values: np.ndarray, lo: float, hi: float, levels: int) -> np.ndarray:
    """Map [lo, hi] to integers 0..levels (clipped); NaN is not handled here."""
    import numpy as np

    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((values - lo) / span, 0.0, 1.0) * levels
    return np.rint(scaled)


def quantise_score(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float -> uint8 in 0..SCORE_MAX over [lo, hi]; NaN -> MISSING_U8."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, MISSING_U8, dtype=np.uint8)
    ok = np.isfinite(values)
    out[ok] = quantise_unit(values[ok], lo, hi, SCORE_MAX).astype(np.uint8)
    return out


def dequantise_score(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    import numpy as np

    q = np.asarray(q)
    span = hi - lo if hi > lo else 1.0
    out = lo + q.astype(np.float64) / SCORE_MAX * span
    out[q == MISSING_U8] = np.nan
    return out


def xy_bounds(coords: np.ndarray) -> dict:
    """A square box around the points (so the map keeps its aspect ratio), with a small margin."""
    import numpy as np

    finite = coords[np.isfinite(coords).all(axis=1)]
    if len(finite) == 0:
        return {"x0": 0.0, "y0": 0.0, "span": 1.0}
    lo, hi = finite.min(axis=0).astype(np.float64), finite.max(axis=0).astype(np.float64)
    span = float(max(hi[0] - lo[0], hi[1] - lo[1])) or 1.0
    span *= 1.02
    centre = (lo + hi) / 2
    return {"x0": float(centre[0] - span / 2), "y0": float(centre[1] - span / 2), "span": span}


def quantise_xy(coords: np.ndarray, bounds: dict) -> np.ndarray:
    """float [N, 2] -> uint16 [N, 2]; non-finite coordinates go to the box centre."""
    import numpy as np

    coords = np.asarray(coords, dtype=np.float64)
    coords = np.where(np.isfinite(coords), coords, np.nan)
    unit = (coords - [bounds["x0"], bounds["y0"]]) / bounds["span"]
    unit = np.nan_to_num(unit, nan=0.5)
    return quantise_unit(unit, 0.0, 1.0, XY_MAX).astype(np.uint16)


def dequantise_xy(q: np.ndarray, bounds: dict) -> np.ndarray:
    import numpy as np

    return np.asarray(q, dtype=np.float64) / XY_MAX * bounds["span"] + [bounds["x0"], bounds["y0"]]


def morton_order(qxy: np.ndarray) -> np.ndarray:
    """Indices that sort uint16 points along a Z-order curve (spatially coherent chunks)."""
    import numpy as np


    def spread(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.uint64)
        v = (v | (v << 8)) & 0x00FF00FF
        v = (v | (v << 4)) & 0x0F0F0F0F
        v = (v | (v << 2)) & 0x33333333
        v = (v | (v << 1)) & 0x55555555
        return v

    code = spread(qxy[:, 0]) | (spread(qxy[:, 1]) << np.uint64(1))
    return np.argsort(code, kind="stable")


# ----------------------------------------------------------------------------- inputs


def _read_sample(sample_path: Path) -> dict[str, np.ndarray]:
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(sample_path)
    names = set(table.column_names)
    n = table.num_rows
    if "row_id" in names:
        order = np.argsort(table.column("row_id").to_numpy(zero_copy_only=False), kind="stable")
    else:
        order = np.arange(n)
    out: dict[str, np.ndarray] = {"row_id": np.arange(n) if "row_id" not in names else None}
    if out["row_id"] is None:
        out["row_id"] = table.column("row_id").to_numpy(zero_copy_only=False)[order]
    for name in ("url", "caption", "host", "domain"):
        values = table.column(name).to_pylist() if name in names else [None] * n
        out[name] = np.array(values, dtype=object)[order]
    for name, _, _ in SCORES:
        if name in names:
            col = table.column(name).cast("double").to_numpy(zero_copy_only=False)
            out[name] = np.asarray(col, dtype=np.float64)[order]
        else:
            out[name] = np.full(n, np.nan)
    return out


def _levels(projection, n: int) -> list[dict]:
    """Cluster levels of a :class:`~atlas.stages.project.Projection` as dicts (checked against n)."""
    import numpy as np

    levels = []
    for level in getattr(projection, "levels", []):
        assignments = np.asarray(level.assignments, dtype=np.int64)
        if len(assignments) != n:
            raise ValueError(f"cluster level {level.name!r} has {len(assignments)} assignments for {n} points")
        levels.append({"name": str(level.name), "clusters": level.clusters, "assignments": assignments})
    return levels


def _clean_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


# ----------------------------------------------------------------------------- writer


def write_mapdata(
    sample_path: Path,
    projection,
    embed,
    out_folder: Path,
    chunk_size: int = CHUNK_SIZE,
    source_rows: int | None = None,
    demo: bool = False,
) -> dict:
    """Write the map's files into ``out_folder`` and return a small summary.

    ``demo`` marks generated demo rows: the page then loads no image and links nowhere for them.

    ``sample_path`` is the sample (:attr:`atlas.stages.sample.Sample.path`); ``projection``
    the project stage's :class:`~atlas.stages.project.Projection` (or just its float [N, 2]
    coordinates, without clusters), row i = sample row_id i; ``embed`` the embed stage's
    :class:`~atlas.stages.embed.EmbedInfo` (or a dict with ``method``, ``model``, ``notice``);
    ``source_rows`` how many rows the sample was drawn from (for the summary line). The
    projection's ``neighbours`` (when it has them) become ``neighbours.bin``.
    """
    import numpy as np

    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    coords = np.asarray(getattr(projection, "coords", projection), dtype=np.float64)
    if embed is None:
        embed = {}
    elif not isinstance(embed, dict):
        embed = {"method": embed.method, "model": embed.model, "notice": embed.notice, "images": embed.images}
    sample = _read_sample(Path(sample_path))
    n = len(sample["row_id"])
    if coords.shape != (n, 2):
        raise ValueError(f"coords has shape {coords.shape}, expected ({n}, 2) for the sample's rows")
    levels = _levels(projection, n)

    bounds = xy_bounds(coords)
    qxy = quantise_xy(coords, bounds)
    order = morton_order(qxy) if n else np.arange(0)
    qxy = qxy[order]

    # Domains: the most common ones get a category, the rest are "other".
    domain_values = np.array([d if isinstance(d, str) and d else "" for d in sample["domain"]], dtype=object)[order]
    names, inverse, counts = np.unique(domain_values.astype(str), return_inverse=True, return_counts=True)
    ranked = [i for i in np.argsort(-counts, kind="stable") if names[i] != ""][:TOP_DOMAINS]
    domain_table = [str(names[i]) for i in ranked] + ["other"]
    lookup = np.full(len(names), len(ranked), dtype=np.uint16)
    lookup[ranked] = np.arange(len(ranked), dtype=np.uint16)
    domain_ids = lookup[inverse] if n else np.zeros(0, np.uint16)
    domain_counts = np.bincount(domain_ids, minlength=len(domain_table)).tolist()

    # Scores.
    score_meta, score_bytes = [], np.full((n, 4), MISSING_U8, dtype=np.uint8)
    for column, (name, label, fixed) in enumerate(SCORES):
        values = sample[name][order]
        finite = values[np.isfinite(values)]
        if fixed:
            lo, hi = fixed
        elif len(finite):
            lo, hi = float(finite.min()), float(finite.max())
        else:
            lo, hi = 0.0, 1.0
        if hi <= lo:
            hi = lo + 1.0
        score_bytes[:, column] = quantise_score(values, lo, hi)
        score_meta.append({"name": name, "label": label, "min": lo, "max": hi, "present": int(len(finite)),
                           "index": column})

    # Cluster levels: ids are re-numbered as indices into the level's cluster list.
    cluster_meta, cluster_columns = [], []
    for level in levels:
        clusters_list = sorted(level["clusters"], key=lambda c: int(c["id"]))[: NO_CLUSTER - 1]
        assign = level["assignments"][order]
        ids = np.array([int(c["id"]) for c in clusters_list], dtype=np.int64)
        column = np.full(n, NO_CLUSTER, dtype=np.uint16)
        if len(ids):
            sorter = np.argsort(ids)
            pos = np.searchsorted(ids, assign, sorter=sorter)
            pos = np.clip(pos, 0, len(ids) - 1)
            hit = ids[sorter[pos]] == assign
            column[hit] = sorter[pos][hit].astype(np.uint16)
        sizes = np.bincount(column[column != NO_CLUSTER], minlength=len(clusters_list)).tolist()
        cx = [(float(c.get("x", 0.0)) - bounds["x0"]) / bounds["span"] for c in clusters_list]
        cy = [(float(c.get("y", 0.0)) - bounds["y0"]) / bounds["span"] for c in clusters_list]
        cluster_meta.append({
            "name": level["name"],
            "column": f"cluster_{level['name']}",
            "ids": [int(c["id"]) for c in clusters_list],
            "labels": [str(c.get("label", f"cluster {c['id']}")) for c in clusters_list],
            "x": [round(v, 6) for v in cx],
            "y": [round(v, 6) for v in cy],
            "size": [int(s) for s in sizes],
        })
        cluster_columns.append((f"cluster_{level['name']}", column))

    # points.bin: columns one after another, 4-byte aligned.
    columns = [("xy", "uint16", 2, qxy.reshape(-1)), ("domain", "uint16", 1, domain_ids.astype(np.uint16))]
    columns += [(name, "uint16", 1, col) for name, col in cluster_columns]
    columns.append(("scores", "uint8", 4, score_bytes.reshape(-1)))
    layout, offset = [], 0
    with open(out / "points.bin", "wb") as handle:
        for name, dtype, components, array in columns:
            data = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
            layout.append({"name": name, "type": dtype, "components": components, "offset": offset,
                           "length": int(array.size)})
            handle.write(data)
            offset += len(data)
            pad = (-offset) % 4
            if pad:
                handle.write(b"\0" * pad)
                offset += pad
    points_bytes = offset
    neighbours = getattr(projection, "neighbours", None)
    has_neighbours = neighbours is not None and len(neighbours) == n and (n == 0 or neighbours.shape[1] > 0)
    neighbour_meta = _write_neighbours(out, neighbours if has_neighbours else None, order, n)

    lengths_meta = _write_lengths(out, sample["caption"][order])

    # Text chunks.
    chunks = math.ceil(n / chunk_size) if n else 0
    for sub in ("text", "detail"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        (out / sub).mkdir()
    captions = sample["caption"][order]
    urls, hosts, raw_domains = sample["url"][order], sample["host"][order], sample["domain"][order]
    row_ids = np.asarray(sample["row_id"])[order]
    raw_scores = [sample[name][order] for name, _, _ in SCORES]
    unsafe_urls = 0
    for chunk in range(chunks):
        lo, hi = chunk * chunk_size, min(n, (chunk + 1) * chunk_size)
        text = [cut_caption(c) for c in captions[lo:hi]]
        detail = []
        for i in range(lo, hi):
            url = safe_http_url(urls[i])
            if url is None and urls[i]:
                unsafe_urls += 1
            detail.append([
                url,
                hosts[i] if isinstance(hosts[i], str) else None,
                raw_domains[i] if isinstance(raw_domains[i], str) else None,
                int(row_ids[i]),
                *[_clean_float(s[i]) for s in raw_scores],
            ])
        name = f"{chunk:05d}.json"
        (out / "text" / name).write_text(json.dumps(text, ensure_ascii=False, separators=(",", ":")))
        (out / "detail" / name).write_text(json.dumps(detail, ensure_ascii=False, separators=(",", ":")))

    colour_by = []
    if cluster_meta:
        colour_by.append("cluster")
    if n:
        colour_by.append("domain")
    colour_by += [s["name"] for s in score_meta if s["present"] > 0]

    meta = {
        "format": FORMAT,
        "encoding": ENCODING,
        "count": int(n),
        "sample_rows": int(source_rows) if source_rows else int(n),
        "bounds": bounds,
        "points": {"file": "points.bin", "bytes": points_bytes, "bytes_per_point": round(points_bytes / n, 3) if n else 0,
                   "columns": layout},
        "chunk_size": int(chunk_size),
        "chunks": int(chunks),
        "text": "text/{chunk}.json",
        "detail": "detail/{chunk}.json",
        "detail_fields": ["url", "host", "domain", "row_id"] + [name for name, _, _ in SCORES],
        "domains": domain_table,
        "domain_counts": domain_counts,
        "scores": score_meta,
        "clusters": cluster_meta,
        "colour_by": colour_by,
        "colour_labels": {key: COLOUR_LABELS[key] for key in colour_by},
        "neighbours": neighbour_meta,
        "lengths": lengths_meta,
        "method": embed.get("method"),
        "model": embed.get("model"),
        "notice": embed.get("notice"),
        "demo": bool(demo),
    }
    fetch = (embed.get("images") or {}).get("fetch")
    if fetch:  # how ``images = "download"`` went (atlas.fetch.runner.fetch_summary), for the map page
        meta["fetch"] = fetch
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, separators=(",", ":")))
    log.info("map data: %d points, %d bytes of points (%.1f B/point), %d text chunks", n, points_bytes,
             points_bytes / n if n else 0, chunks)
    return {"points": int(n), "bytes": points_bytes, "chunks": int(chunks), "colour_by": colour_by,
            "unsafe_urls": unsafe_urls}


def caption_lengths(captions: np.ndarray) -> np.ndarray:
    """Characters in each caption as shown on the map (cut at MAX_CAPTION; not a string -> 0)."""
    import numpy as np

    return np.array([min(len(c), MAX_CAPTION) if isinstance(c, str) else 0 for c in captions], dtype=np.float64)


def _write_lengths(out: Path, captions: np.ndarray) -> dict:
    """Write ``lengths.bin`` (caption lengths quantised like a score); its ``meta.json`` entry."""
    import numpy as np

    lengths = caption_lengths(captions)
    hi = float(max(1.0, np.ceil(np.percentile(lengths, 99)))) if len(lengths) else 1.0
    data = quantise_score(lengths, 0.0, hi)
    (out / "lengths.bin").write_bytes(data.tobytes())
    return {"file": "lengths.bin", "name": "caption_length", "label": "Caption length", "type": "uint8",
            "min": 0.0, "max": hi, "present": int(len(lengths)), "bytes": int(data.nbytes)}


def _write_neighbours(out: Path, neighbours: np.ndarray | None, order: np.ndarray, n: int) -> dict | None:
    """Write ``neighbours.bin`` renumbered into map (Morton) order; its ``meta.json`` entry."""
    import numpy as np

    from atlas.stages.project import NO_NEIGHBOUR

    path = out / "neighbours.bin"
    if neighbours is None:
        path.unlink(missing_ok=True)
        return None
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2 or len(neighbours) != n:
        raise ValueError(f"neighbours has shape {neighbours.shape}, expected ({n}, k) for the sample's rows")
    position = np.empty(n, dtype=np.int64)  # row id -> point index on the map
    position[order] = np.arange(n)
    rows = neighbours[order].astype(np.int64)
    missing = (rows < 0) | (rows >= n)
    mapped = np.where(missing, NO_NEIGHBOUR, position[np.where(missing, 0, rows)]).astype("<u4")
    path.write_bytes(np.ascontiguousarray(mapped).tobytes())
    return {"file": path.name, "k": int(neighbours.shape[1]), "type": "uint32", "missing": NO_NEIGHBOUR,
            "bytes": int(mapped.nbytes)}


# ----------------------------------------------------------------------------- stage


def _run(ctx, folder: Path) -> dict:
    from atlas.stages import embed, project, sample

    return write_mapdata(
        sample.read(ctx.output("sample")).path,
        project.read(ctx.output("project")),
        embed.read(ctx.output("embed")),
        folder,
        source_rows=(ctx.summary("sample") or {}).get("population"),
        demo=ctx.demo,
    )


STAGE = Stage(
    "mapdata",
    "5",  # 2: meta.json carries the binary format's numbers ("encoding"); 3: neighbours.bin; 4: lengths.bin;
    # 5: captions cut by atlas.text.published.cut_caption (with an ellipsis)
    inputs=lambda ctx: {"chunk_size": CHUNK_SIZE, "top_domains": TOP_DOMAINS, "format": FORMAT, "demo": ctx.demo},
    run=_run,
    after=("sample", "embed", "project"),
    description="Binary point arrays and text chunks for the interactive map",
)


# ----------------------------------------------------------------------------- reader


@dataclass
class MapData:
    """What the mapdata stage wrote: the folder the map page loads and its ``meta.json``."""

    folder: Path
    meta: dict

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def colour_by(self) -> list[str]:
        return list(self.meta.get("colour_by", []))

    def captions(self) -> list[str]:
        """Every point's caption in the map's point order (point i = the i-th caption)."""
        captions: list[str] = []
        for chunk in range(self.meta["chunks"]):
            name = self.meta["text"].replace("{chunk}", f"{chunk:05d}")
            captions += json.loads((self.folder / name).read_text(encoding="utf-8"))
        return captions

    def row_ids(self) -> list[int]:
        """Every point's sample ``row_id`` in the map's point order (point i = the i-th row id)."""
        field = self.meta["detail_fields"].index("row_id")
        rows: list[int] = []
        for chunk in range(self.meta["chunks"]):
            name = self.meta["detail"].replace("{chunk}", f"{chunk:05d}")
            rows += [int(detail[field]) for detail in json.loads((self.folder / name).read_text(encoding="utf-8"))]
        return rows


def read(folder: Path | None) -> MapData | None:
    """The mapdata stage's output in ``folder``, or None (no folder, or unreadable metadata)."""
    if folder is None:
        return None
    path = Path(folder) / "meta.json"
    if not path.exists():
        return None
    try:
        return MapData(Path(folder), json.loads(path.read_text()))
    except (OSError, ValueError):
        log.warning("unreadable map metadata at %s", path)
        return None

