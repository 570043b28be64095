"""Shared helpers for browser tests: launch Debian's Chromium with Playwright, serve a folder.

Also builds a self-contained map site from synthetic stage outputs (Gaussian blobs with captions),
used by tests/test_map_browser.py and benchmarks/bench_map_browser.py.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # WebGL2 through SwiftShader (software), so the tests can force the map's WebGL2 renderer
    # (?renderer=webgl2). Chromium 156 gives it without this flag too (tried: with and without it,
    # and with --use-gl=angle --use-angle=swiftshader, the renderer is "ANGLE (Google, Vulkan 1.3.0
    # (SwiftShader Device (Subzero)))"), but Chromium is retiring the automatic SwiftShader fallback
    # and names this flag as the way to keep it; the tests assert the renderer, so a loss is loud.
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed (pip install playwright)"
    return None


def launch(playwright, extra_args: list[str] | None = None):
    """Chromium from /usr/bin (Playwright's own browser download is not used)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + (extra_args or []))


#: The map's background colour (themes/default/static/js/map/renderer.js BACKGROUND).
MAP_BACKGROUND = np.array([11, 14, 20])


def canvas_pixels(page, selector: str = "#map-canvas") -> np.ndarray:
    """What the renderer drew: the canvas's own pixels, RGB [height, width, 3] in device pixels
    (read with toDataURL, so the labels and panels over the map are not in it)."""
    import base64
    import io

    from PIL import Image

    url = page.eval_on_selector(selector, "c => c.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(int)


def drawn_at(page, client_points, radius: int = 2, selector: str = "#map-canvas") -> list[bool]:
    """For each position in client (CSS) pixels, whether the canvas has a pixel other than the
    background within ``radius`` device pixels of it: a point is drawn there."""
    pixels = canvas_pixels(page, selector)
    left, top, scale = page.eval_on_selector(
        selector, "c => { const r = c.getBoundingClientRect(); return [r.left, r.top, c.width / r.width]; }")
    painted = np.abs(pixels - MAP_BACKGROUND).sum(axis=2) > 40
    out = []
    for x, y in client_points:
        px, py = round((x - left) * scale), round((y - top) * scale)
        window = painted[max(py - radius, 0): py + radius + 1, max(px - radius, 0): px + radius + 1]
        out.append(bool(window.any()))
    return out


def empty_spot(coords: np.ndarray) -> tuple[float, float]:
    """A position inside the points' bounding box as far as possible from every point (data
    coordinates): where nothing may be drawn."""
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 41)[1:-1], np.linspace(lo[1], hi[1], 41)[1:-1])
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    nearest = np.concatenate([((part[:, None, :] - coords[None]) ** 2).sum(-1).min(axis=1)
                              for part in np.array_split(grid, 16)])
    x, y = grid[int(np.argmax(nearest))]
    return float(x), float(y)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".json": "application/json", ".bin": "application/octet-stream"}

    def log_message(self, *args):  # keep test output clean
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve a folder on 127.0.0.1 at a free port; yields the base URL (ending in '/')."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- synthetic inputs

WORDS = ("photo", "vintage", "poster", "watercolor", "portrait", "landscape", "sneaker", "sofa", "logo",
         "wedding", "recipe", "mountain", "beach", "cat", "dog", "t-shirt", "ring", "map", "car", "flower")
TOPICS = ("Fashion", "Home decor", "Travel", "Food", "Pets", "Art prints", "Jewellery", "Cars")
DOMAINS = ("pinterest.com", "etsy.com", "amazon.com", "flickr.com", "ebay.com", "shopify.com",
           "wikimedia.org", "alamy.com", "redbubble.com", "walmart.com")


def synthetic_inputs(folder: Path, n: int, seed: int = 0, extra_rows: list[dict] | None = None,
                     captions: list[str | None] | None = None, urls: list[str | None] | None = None,
                     finer: bool = False) -> dict:
    """Write sample.parquet, coords.npy, clusters.json + clusters_*.npy and info.json like the
    sample/embed/project stages would. ``extra_rows`` (dicts with x, y and any column) are
    appended after the blobs; ``captions`` and ``urls`` (e.g. the real sample's, ``n`` of each)
    replace the generated ones; ``finer`` adds a third cluster level (each fine cluster halved), as
    the project stage writes for samples of 100,000 points or more. Returns the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = len(TOPICS)
    centres = rng.uniform(-8, 8, size=(k, 2))
    blob = rng.integers(0, k, size=n)
    coords = centres[blob] + rng.normal(0, 1.0, size=(n, 2))
    words = rng.integers(0, len(WORDS), size=(n, 3))
    if captions is None:
        captions = [f"{TOPICS[b].lower()} {WORDS[a]} {WORDS[c]} {WORDS[d]} #{i}"
                    for i, (b, (a, c, d)) in enumerate(zip(blob, words))]
    domain_idx = np.minimum(rng.geometric(0.25, size=n) - 1, len(DOMAINS) + 5)
    domains = [DOMAINS[d] if d < len(DOMAINS) else f"site{d}.example" for d in domain_idx]
    real_urls = urls
    urls = [f"https://img.{d}/{i}.jpg" for i, d in enumerate(domains)] if urls is None else list(urls)
    columns = {
        "url": urls, "caption": list(captions), "domain": domains,
        "host": [f"img.{d}" for d in domains] if real_urls is None else [urlparse(u or "").hostname for u in urls],
        "similarity": np.clip(rng.normal(0.32, 0.03, n), 0.2, 0.5),
        "punsafe": rng.beta(1, 30, n), "pwatermark": rng.beta(1, 6, n),
        "aesthetic": np.clip(rng.normal(5 + blob * 0.2, 0.6), 1, 9),
        "width": rng.integers(200, 2000, n).astype(float), "height": rng.integers(200, 2000, n).astype(float),
    }
    columns = {key: list(value) for key, value in columns.items()}
    fine = blob * 3 + (coords[:, 0] > centres[blob, 0]).astype(int) + (coords[:, 1] > centres[blob, 1]).astype(int)
    for row in extra_rows or []:
        for key in columns:
            columns[key].append(row.get(key))
        coords = np.vstack([coords, [[row["x"], row["y"]]]])
        blob = np.append(blob, 0)
        fine = np.append(fine, 0)
    total = len(columns["url"])
    table = {"row_id": pa.array(np.arange(total, dtype=np.int64))}
    for key, values in columns.items():
        if key in ("url", "caption", "host", "domain"):
            table[key] = pa.array(values, type=pa.string())
        else:
            table[key] = pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    pq.write_table(pa.table(table), folder / "sample.parquet")
    np.save(folder / "coords.npy", coords.astype(np.float32))
    np.save(folder / "clusters_coarse.npy", blob.astype(np.int32))
    np.save(folder / "clusters_fine.npy", fine.astype(np.int32))

    def level(name, assign, labeller):
        out = []
        for cid in np.unique(assign):
            mask = assign == cid
            out.append({"id": int(cid), "label": labeller(int(cid)), "x": float(coords[mask, 0].mean()),
                        "y": float(coords[mask, 1].mean()), "size": int(mask.sum())})
        return {"name": name, "assignments": f"clusters_{name}.npy", "clusters": out}

    clusters = {"levels": [level("coarse", blob, lambda c: TOPICS[c]),
                           level("fine", fine, lambda c: f"{TOPICS[c // 3].lower()} · {WORDS[c % len(WORDS)]}")]}
    if finer:
        split = fine * 2 + (coords[:, 0] + coords[:, 1] > 0).astype(int)
        np.save(folder / "clusters_finer.npy", split.astype(np.int32))
        clusters["levels"].append(level("finer", split, lambda c: f"{TOPICS[c // 6].lower()} · part {c}"))
    (folder / "clusters.json").write_text(json.dumps(clusters))
    info = {"method": "tfidf", "model": "tfidf-hashing-512", "dim": 512,
            "notice": "CLIP weights were not available, so captions were embedded with TF-IDF.",
            "images": {"embedded": 0, "failed": 0, "reasons": {}}}
    (folder / "info.json").write_text(json.dumps(info))
    return {"sample": folder / "sample.parquet", "coords": folder / "coords.npy", "project": folder,
            "info": folder / "info.json"}


def build_map_site(site: Path, inputs: dict, chunk_size: int = 2000, source_rows: int | None = None) -> dict:
    """A self-contained site with map/index.html, map/data/ and static/ (as render would make it)."""
    from atlas.core.config import AtlasConfig
    from atlas.stages import embed, mapdata, project
    from atlas.stages.mapdata import write_mapdata
    from atlas.site.render import map_page_context
    from atlas.stages.search import write_index
    from atlas.site.theme import make_env

    if site.exists():
        shutil.rmtree(site)
    data = site / "map" / "data"
    summary = write_mapdata(inputs["sample"], project.read(inputs["project"]), embed.read(inputs["project"]), data,
                            chunk_size=chunk_size, source_rows=source_rows)
    write_index(mapdata.read(data).captions(), data / "search")
    shutil.copytree(REPO / "themes" / "default" / "static", site / "static")
    env = make_env(REPO / "content")
    html = env.get_template("map.html").render(
        config=AtlasConfig(), root="../", page_title="Map", description="The sample on a map",
        canonical="", demo=True, version="test", built={"source": "synthetic test data"},
        nav=[{"title": "Home", "href": "", "current": False}, {"title": "Map", "href": "map/", "current": True}],
        map=map_page_context(mapdata.read(data)),
    )
    (site / "map" / "index.html").write_text(html)
    return summary
