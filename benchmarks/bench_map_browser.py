"""The map page with 1,000,000 synthetic points in headless Chromium.

Measures the time to the first drawn frame (``window.__atlasFirstFrame``, set by the page after
its first draw, in ms since navigation start), the bytes transferred until then, and for a
one-word search through the index (a common and a rare word, cold and then warm): the time from
Enter to the result list's first row, the index bytes and caption bytes fetched, and the longest
main-thread task meanwhile (PerformanceObserver "longtask"). Prints the figures and writes
benchmarks/results/bench_map_browser.json.

    python benchmarks/bench_map_browser.py [--points 1000000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from atlas.stages.mapdata import CHUNK_SIZE# noqa: E402
from helpers.browser import build_map_site, launch, serve, skip_reason, synthetic_inputs  # noqa: E402

SEARCH = """async (word) => {
  const tasks = [];
  const observer = new PerformanceObserver((list) => tasks.push(...list.getEntries().map((e) => e.duration)));
  observer.observe({ entryTypes: ['longtask'] });
  const input = document.querySelector('#map-search');
  input.value = word;
  const t0 = performance.now();
  input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
  const shown = () => document.querySelector('#map-search-count').dataset.done === '1'
    && document.querySelector('#map-results .map-result-meta:not(:empty)');
  while (!shown()) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 100));
  observer.disconnect();
  return { ms, matches: window.__atlasMap.matches(), longest_task_ms: Math.max(0, ...tasks) };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument("--workdir", type=Path, help="keep the generated site here and reuse it next time")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.workdir or Path(scratch)
        started = time.perf_counter()
        marker = tmp / f"built-{args.points}-{args.chunk_size}.json"
        if marker.exists():
            summary = json.loads(marker.read_text())
            import shutil  # the page's own files are always fresh

            shutil.copytree(REPO / "themes" / "default" / "static", tmp / "site" / "static", dirs_exist_ok=True)
            generated = written = time.perf_counter()
        else:
            inputs = synthetic_inputs(tmp / "inputs", args.points, seed=7)
            generated = time.perf_counter()
            summary = build_map_site(tmp / "site", inputs, chunk_size=args.chunk_size)
            written = time.perf_counter()
            if args.workdir:
                marker.write_text(json.dumps(summary))
        data = tmp / "site" / "map" / "data"
        on_disk = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        results: dict = {
            "points": args.points,
            "chunk_size": args.chunk_size,
            "mapdata_seconds": round(written - generated, 2) if written > generated else None,
            "points_bin_bytes": summary["bytes"],
            "bytes_per_point_first_load": round(summary["bytes"] / args.points, 2),
            "mapdata_bytes_on_disk": on_disk,
        }
        with serve(tmp / "site") as base, sync_playwright() as p:
            browser = launch(p)
            runs = []
            for run, suffix in enumerate(["", "", "", "?renderer=webgl"]):
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                fetched: list[tuple[str, int]] = []
                page.on("requestfinished",
                        lambda r, fetched=fetched: fetched.append((r.url, r.sizes()["responseBodySize"])))
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(base + "map/" + suffix)
                page.wait_for_function("window.__atlasFirstFrame > 0", timeout=120_000)
                first = page.evaluate("window.__atlasFirstFrame")
                page.wait_for_timeout(300)
                first_bytes = sum(size for _, size in fetched)
                renderer = page.evaluate("window.__atlasMap.renderer")
                # Redraw cost: zoom a few steps and time frames.
                frame_ms = page.evaluate("""async () => {
                  const canvas = document.querySelector('#map-canvas');
                  const times = [];
                  for (let i = 0; i < 10; i++) {
                    const t = performance.now();
                    canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: i < 5 ? -30 : 30, clientX: 500, clientY: 400, bubbles: true, cancelable: true}));
                    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                    times.push(performance.now() - t);
                  }
                  times.sort((a, b) => a - b);
                  return times[Math.floor(times.length / 2)];
                }""")
                entry = {"url": "map/" + suffix, "first_frame_ms": round(first, 1), "bytes_to_first_frame": first_bytes,
                         "median_frame_ms_while_zooming": round(frame_ms, 1), "renderer": renderer}
                if run == 0:
                    entry["search"] = []
                    for word in ("watercolor", "123457", "watercolor", "123457"):  # common, rare; cold, warm
                        done = len(fetched)
                        found = page.evaluate(SEARCH, word)
                        page.wait_for_timeout(300)
                        new = fetched[done:]
                        found.update(word=word, index_bytes=sum(b for u, b in new if "/search/" in u),
                                     caption_bytes=sum(b for u, b in new if "/text/" in u or "/detail/" in u))
                        entry["search"].append({k: round(v, 1) if isinstance(v, float) else v for k, v in found.items()})
                entry["errors"] = errors
                runs.append(entry)
                page.close()
            browser.close()
        results["runs"] = runs
        results["first_frame_ms_median"] = sorted(r["first_frame_ms"] for r in runs[:3])[1]
        results["bytes_to_first_frame"] = runs[0]["bytes_to_first_frame"]
        results["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                              "browser": "Debian Chromium, headless, --disable-gpu"}
        results["total_seconds"] = round(time.perf_counter() - started, 1)
    out = REPO / "benchmarks" / "results" / "bench_map_browser.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
