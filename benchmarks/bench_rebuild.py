"""Cold build vs no-change rebuild vs one-page-edit rebuild of the demo site, as a user runs them.

    python benchmarks/bench_rebuild.py [--content content] [--sample N] [--repeat 5]

Every build is ``python -m atlas -q build`` in a fresh process (Python start-up and imports
count), with a fresh temporary cache and output folder and a temporary copy of the content
folder (the page edit never touches the real one). ``NUMBA_CACHE_DIR`` is removed from the
environment, so the cold build also starts with an empty numba cache (``<cache>/numba``) and
pays for compiling umap-learn, as a first build on a new machine does. The no-change rebuild and
the page edit run ``--repeat`` times; medians are reported. With ``--baseline DIR`` (a checkout of
other atlas code, e.g. ``git worktree add /tmp/before main``) the no-change rebuild of that code
runs too, interleaved with this one's, on the same cache (equal cache keys: it must not rebuild).
Compiled bytecode is kept in a temporary ``PYTHONPYCACHEPREFIX`` (``PYTHONDONTWRITEBYTECODE`` is
removed), as an installed atlas has its ``.pyc`` files. Wall and CPU seconds (user + system of
the child) and the per-stage seconds of the cold build (from the site's ``data/build.json``) are
written to benchmarks/results/bench_rebuild.json with the load average: the 2 cores of the
benchmark machine are shared, so wall times stretch with the load; CPU seconds much less.

Targets: cold build < 45 s, no-change rebuild < 1 s (both wall, on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _util import ROOT, load_average, median, run_child, write_result  # noqa: E402

TARGETS = {"cold_seconds": 45.0, "no_change_seconds": 1.0}


def _cli(content: Path, out: Path, cache: Path, env: dict) -> dict:
    """One ``atlas build`` in a fresh process, run in the folder of the atlas code it times
    (``python -m`` puts the working folder first on ``sys.path``)."""
    command = [sys.executable, "-m", "atlas", "-q", "build", "--content", str(content), "--out", str(out),
               "--cache-dir", str(cache)]
    result = run_child(command, cwd=env["PYTHONPATH"], env=env)
    return {"seconds": round(result["seconds"], 3), "cpu_seconds": round(result["cpu_seconds"], 3),
            "peak_rss_mb": round(result["peak_rss_mb"], 1), "load_average": load_average()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=ROOT / "content")
    parser.add_argument("--sample", type=int, default=None, help="Override [sample] size (default: the content's).")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the no-change and page-edit rebuilds")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another atlas checkout whose no-change rebuild is timed alongside")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "ATLAS_CACHE_DIR", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("HF_HUB_OFFLINE", "1")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"rebuild benchmark; {uptime}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    try:
        content = tmp / "content"
        shutil.copytree(args.content, content, ignore=shutil.ignore_patterns("artifacts"))
        if args.sample:
            config = content / "atlas.toml"
            text = config.read_text()
            text, count = re.subn(r"(?m)^size\s*=\s*\d+", f"size = {args.sample}", text)
            if not count:
                text += f"\n[sample]\nsize = {args.sample}\n"
            config.write_text(text)
        out, cache = tmp / "site", tmp / "cache"
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        baseline_env = dict(env, PYTHONPATH=str(args.baseline.resolve())) if args.baseline else None

        cold = _cli(content, out, cache, env)
        stages = json.loads((out / "data" / "build.json").read_text())["stages"]
        ran = ", ".join(f"{name} {state['seconds']:.1f}s" for name, state in stages.items() if state["seconds"])
        print(f"cold build:        {cold['seconds']:8.2f} s wall, {cold['cpu_seconds']:7.2f} CPU-s (stages: {ran})",
              flush=True)
        same, before = [], []
        for _ in range(args.repeat):
            same.append(_cli(content, out, cache, env))
            if baseline_env:
                before.append(_cli(content, out, cache, baseline_env))
        print(f"no-change rebuild: {median([r['seconds'] for r in same]):8.2f} s wall (median of {len(same)}), "
              f"{median([r['cpu_seconds'] for r in same]):.2f} CPU-s", flush=True)
        if before:
            print(f"  baseline {args.baseline}: {median([r['seconds'] for r in before]):8.2f} s wall, "
                  f"{median([r['cpu_seconds'] for r in before]):.2f} CPU-s", flush=True)
        page = next(p for p in sorted(content.glob("*.md")) if p.name != "index.md")
        edits = []
        for attempt in range(args.repeat):
            page.write_text(page.read_text(encoding="utf-8") + f"\n\nEdit {attempt} for the benchmark.\n",
                            encoding="utf-8")
            edits.append(_cli(content, out, cache, env))
        print(f"one-page edit:     {median([r['seconds'] for r in edits]):8.2f} s wall (median of {len(edits)}), "
              f"{median([r['cpu_seconds'] for r in edits]):.2f} CPU-s; edited {page.name}", flush=True)
        figures = {
            "cold_seconds": cold["seconds"],
            "no_change_seconds": median([r["seconds"] for r in same]),
            "page_edit_seconds": median([r["seconds"] for r in edits]),
        }
        result = {
            "uptime_at_start": uptime,
            "sample_size": args.sample,
            "cold": dict(cold, stages=stages),
            "no_change": same,
            "baseline": {"path": str(args.baseline), "no_change": before,
                         "no_change_seconds": median([r["seconds"] for r in before]),
                         "no_change_cpu_seconds": median([r["cpu_seconds"] for r in before])} if before else None,
            "page_edit": edits,
            "medians": figures,
            "median_cpu_seconds": {"cold": cold["cpu_seconds"],
                                   "no_change": median([r["cpu_seconds"] for r in same]),
                                   "page_edit": median([r["cpu_seconds"] for r in edits])},
            "speedup": {"no_change": round(cold["seconds"] / figures["no_change_seconds"], 1),
                        "page_edit": round(cold["seconds"] / figures["page_edit_seconds"], 1)},
            "targets": TARGETS,
            "meets_targets": {k: figures[k] < v for k, v in TARGETS.items()},
        }
        path = write_result("bench_rebuild", result)
        print(f"wrote {path.relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
