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
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent


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
