"""Lasso selection on the map page with 100,000 synthetic points in headless Chromium.

Draws a lasso (the mouse on the selection overlay, a 60-vertex loop around most of the map) and
times, from the pointer's release, the selection (count shown) and the table's first page with
its captions; then a box; then the same point-in-polygon test as a skilled user's plain loop over
world coordinates (Path2D.isPointInPath per point, no bounding box, no quantised coordinates) on the
same page, for comparison. Median of 5 each. Prints the figures and writes
benchmarks/results/bench_map_selection.json.

    python benchmarks/bench_map_selection.py [--points 100000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers.browser import build_map_site, launch, serve, skip_reason, synthetic_inputs  # noqa: E402

ARM = """() => {
  // Time from the pointer's release (a capturing listener runs before the overlay's own).
  window.__benchT0 = 0;
  window.addEventListener('pointerup', () => { window.__benchT0 = performance.now(); }, { capture: true, once: true });
}"""

WAIT = """async () => {
  const counted = () => document.querySelector('#map-selection').dataset.count !== '0';
  const tabled = () => { const c = document.querySelector('#map-selection-table .map-sel-text'); return c && c.textContent !== '…'; };
  let selected = 0;
  const started = performance.now();
  while (!tabled() && performance.now() - started < 20000) {
    if (!selected && counted()) selected = performance.now();
    await new Promise((res) => setTimeout(res, 1));
  }
  const t0 = window.__benchT0;
  return { count: window.__atlasMap.selection().length, selection_ms: (selected || performance.now()) - t0, table_ms: performance.now() - t0 };
}"""


def trail(box: dict, kind: str, vertices: int = 60) -> list[tuple[float, float]]:
    """A wobbly loop (lasso) or two corners (box) around most of the map."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    r = min(box["width"], box["height"]) * 0.42
    if kind == "box":
        return [(cx - r, cy - r), (cx + r, cy + r)]
    return [(cx + r * math.cos(2 * math.pi * k / vertices) * (1 + 0.2 * math.sin(5 * k)),
             cy + r * math.sin(2 * math.pi * k / vertices)) for k in range(vertices)]


def select_once(page, kind: str) -> dict:
    page.click("#map-selection-clear") if page.is_visible("#map-selection-clear") else None
    if page.get_attribute(f"#map-tool-{kind}", "aria-pressed") != "true":
        page.click(f"#map-tool-{kind}")
    points = trail(page.locator("#map-canvas").bounding_box(), kind)
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p)
    page.evaluate(ARM)
    page.mouse.up()
    return page.evaluate(WAIT)


PLAIN = """() => {
  // What one would write first: the polygon as a Path2D, isPointInPath for every point in world units.
  const s = window.__atlasMap.state().selection;
  const path = new Path2D();
  s.polygon.forEach(([x, y], i) => (i ? path.lineTo(x * 1e4, y * 1e4) : path.moveTo(x * 1e4, y * 1e4)));
  path.closePath();
  const ctx = document.createElement('canvas').getContext('2d');
  const t0 = performance.now();
  const xy = window.__atlasBench.xy, max = window.__atlasBench.xyMax, out = [];
  for (let i = 0; i < xy.length / 2; i++) if (ctx.isPointInPath(path, (xy[2 * i] / max) * 1e4, (xy[2 * i + 1] / max) * 1e4)) out.push(i);
  return { count: out.length, ms: performance.now() - t0 };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        inputs = synthetic_inputs(Path(tmp) / "inputs", args.points, seed=7)
        build_map_site(Path(tmp) / "site", inputs)
        data = Path(tmp) / "site" / "map" / "data"
        meta = json.loads((data / "meta.json").read_text())
        xy_column = next(c for c in meta["points"]["columns"] if c["name"] == "xy")
        results: dict = {"points": args.points, "runs": args.runs}
        with serve(Path(tmp) / "site") as base, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "map/")
            page.evaluate("window.__atlasMap.ready")
            page.evaluate(f"""async () => {{
              const buf = await (await fetch('data/{meta["points"]["file"]}')).arrayBuffer();
              window.__atlasBench = {{ xy: new Uint16Array(buf, {xy_column["offset"]}, {xy_column["length"]}), xyMax: {meta["encoding"]["xy_max"]} }};
            }}""")
            for kind in ("lasso", "box"):
                runs = [select_once(page, kind) for _ in range(args.runs)]
                results[kind] = {
                    "selected": runs[0]["count"],
                    "selection_ms_median": round(statistics.median(r["selection_ms"] for r in runs), 1),
                    "table_ms_median": round(statistics.median(r["table_ms"] for r in runs), 1),
                    "table_ms_all": [round(r["table_ms"], 1) for r in runs],
                }
            select_once(page, "lasso")
            plain = [page.evaluate(PLAIN) for _ in range(args.runs)]
            results["plain_isPointInPath_ms_median"] = round(statistics.median(r["ms"] for r in plain), 1)
            results["plain_isPointInPath_selected"] = plain[0]["count"]
            results["errors"] = errors
            browser.close()
    results["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                          "load_average": [round(v, 2) for v in os.getloadavg()],
                          "browser": "Debian Chromium, headless, --disable-gpu"}
    out = REPO / "benchmarks" / "results" / "bench_map_selection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
