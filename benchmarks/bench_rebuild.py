"""Cold build vs no-change rebuild vs one-page-edit rebuild of the demo site, in one run.

    python benchmarks/bench_rebuild.py [--content content] [--sample N]

Uses a fresh temporary cache and output folder and a temporary copy of the content folder (the
page edit never touches the real one). Prints the wall times and writes them as JSON to
benchmarks/results/bench_rebuild.json. Targets: no-change rebuild >= 20x faster than the cold
build, one-page edit >= 10x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from atlas import __version__  # noqa: E402
from atlas.build import build  # noqa: E402
from atlas.report import Reporter  # noqa: E402

TARGETS = {"no_change": 20.0, "page_edit": 10.0}


def _timed(content: Path, out: Path, cache: Path) -> tuple[float, list[str]]:
    started = time.perf_counter()
    report = build(content, out, cache_dir=cache, reporter=Reporter(quiet=True))
    seconds = time.perf_counter() - started
    return seconds, [r.name for r in report.results if r.status == "ran"]


def _timed_cli(content: Path, out: Path, cache: Path) -> float:
    """The same build through the command line: adds Python start-up and imports."""
    command = [sys.executable, "-m", "atlas", "-q", "build", "--content", str(content), "--out", str(out),
               "--cache-dir", str(cache)]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=REPO / "content")
    parser.add_argument("--sample", type=int, default=None, help="Override [sample] size (default: the content's).")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_rebuild.json")
    args = parser.parse_args()

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

        cold, cold_ran = _timed(content, out, cache)
        print(f"cold build:         {cold:8.2f} s  (ran: {', '.join(cold_ran)})", flush=True)
        same, same_ran = _timed(content, out, cache)
        print(f"no-change rebuild:  {same:8.2f} s  (ran: {', '.join(same_ran) or 'nothing'})", flush=True)
        page = next(p for p in sorted(content.glob("*.md")) if p.name != "index.md")
        page.write_text(page.read_text(encoding="utf-8") + "\n\nAn edit for the benchmark.\n", encoding="utf-8")
        edit, edit_ran = _timed(content, out, cache)
        print(f"one-page edit:      {edit:8.2f} s  (ran: {', '.join(edit_ran) or 'nothing'}; edited {page.name})")

        cli_same = _timed_cli(content, out, cache)
        page.write_text(page.read_text(encoding="utf-8") + "\nA second edit.\n", encoding="utf-8")
        cli_edit = _timed_cli(content, out, cache)
        print(f"through the CLI (with Python start-up): no-change {cli_same:.2f} s, one-page edit {cli_edit:.2f} s")

        speedups = {"no_change": cold / same, "page_edit": cold / edit}
        cli_speedups = {"no_change": cold / cli_same, "page_edit": cold / cli_edit}
        for name, value in speedups.items():
            worst = min(value, cli_speedups[name])
            verdict = "meets" if worst >= TARGETS[name] else "MISSES"
            print(f"{name:10s} speed-up: {value:7.1f}x in-process, {cli_speedups[name]:6.1f}x via the CLI "
                  f"({verdict} the {TARGETS[name]:.0f}x target)")
        result = {
            "benchmark": "bench_rebuild",
            "atlas": __version__,
            "python": platform.python_version(),
            "machine": {"cpus": os.cpu_count(), "system": platform.system()},
            "sample_size": args.sample,
            "seconds": {"cold": round(cold, 3), "no_change": round(same, 3), "page_edit": round(edit, 3)},
            "stages_ran": {"cold": cold_ran, "no_change": same_ran, "page_edit": edit_ran},
            "cli_seconds": {"no_change": round(cli_same, 3), "page_edit": round(cli_edit, 3)},
            "speedup": {k: round(v, 1) for k, v in speedups.items()},
            "cli_speedup": {k: round(v, 1) for k, v in cli_speedups.items()},
            "targets": TARGETS,
            "meets_targets": all(min(speedups[k], cli_speedups[k]) >= TARGETS[k] for k in TARGETS),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
        return 0 if result["meets_targets"] else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
