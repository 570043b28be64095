"""Lasso selection on the map page with 100,000 synthetic points in headless Chromium.

Draws a lasso (pointer events on the selection overlay, a 60-vertex loop around most of the map)
and times, from the pointer's release, the selection (count shown) and the table's first page with
its captions; then a box; then the same point-in-polygon test as a skilled user's plain loop over
world coordinates (Path2D.isPointInPath per point, no bounding box, no quantised coordinates) on the
same page, for comparison. Median of 5 each. Prints the figures and writes
benchmarks/results/bench_map_selection.json.

    python benchmarks/bench_map_selection.py [--points 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser import build_map_site, launch, serve, skip_reason, synthetic_inputs  # noqa: E402

LASSO = """async ([kind, vertices]) => {
  const overlay = document.querySelector('#map-select-overlay');
  document.querySelector(kind === 'box' ? '#map-tool-box' : '#map-tool-lasso').click();
  const r = overlay.getBoundingClientRect();
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2, R = Math.min(r.width, r.height) * 0.42;
  const at = (k) => [cx + R * Math.cos((2 * Math.PI * k) / vertices) * (1 + 0.2 * Math.sin(5 * k)),
                     cy + R * Math.sin((2 * Math.PI * k) / vertices)];
  const fire = (type, [x, y]) => overlay.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, pointerId: 1, bubbles: true, isPrimary: true }));
  document.querySelector('#map-selection-clear').click();
  await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 50)));
  const trail = kind === 'box' ? [[cx - R, cy - R], [cx + R, cy + R]] : Array.from({ length: vertices }, (_, k) => at(k));
  fire('pointerdown', trail[0]);
  for (const p of trail.slice(1)) fire('pointermove', p);
  const t0 = performance.now();
  fire('pointerup', trail[trail.length - 1]);
  const counted = () => document.querySelector('#map-selection').dataset.count !== '0';
  const tabled = () => { const c = document.querySelector('#map-selection-table .map-sel-text'); return c && c.textContent !== '…'; };
  let selected = 0;
  while (!tabled()) { if (!selected && counted()) selected = performance.now() - t0; await new Promise((res) => setTimeout(res, 1)); }
  const table = performance.now() - t0;
  return { count: window.__atlasMap.selection().length, selection_ms: selected || table, table_ms: table };
}"""

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
                runs = [page.evaluate(LASSO, [kind, 60]) for _ in range(args.runs)]
                results[kind] = {
                    "selected": runs[0]["count"],
                    "selection_ms_median": round(statistics.median(r["selection_ms"] for r in runs), 1),
                    "table_ms_median": round(statistics.median(r["table_ms"] for r in runs), 1),
                    "table_ms_all": [round(r["table_ms"], 1) for r in runs],
                }
            page.evaluate(LASSO, ["lasso", 60])
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
