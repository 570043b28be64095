"""Shared helpers for the benchmark scripts: timing, peak RSS of a child process, machine
description, result tables and JSON written to ``benchmarks/results/``.

The scripts are plain programs (``python benchmarks/bench_stats.py``), not tests: they print a
table and write a JSON file. Nothing here needs more than the standard library.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DATA = HERE / ".data"  # generated benchmark data, git-ignored, reused between runs


def machine() -> dict:
    """CPU model, cores, memory and software versions, for the results table."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    try:
        import duckdb

        info["duckdb"] = duckdb.__version__
    except ImportError:
        pass
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    return info


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews the timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run_child(args: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """Run a command to completion: wall seconds and the child's peak RSS (MiB).

    ``os.wait4`` gives the resource usage of exactly this child (and its waited-for
    descendants), so the figure is not mixed up with other children of this process.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Read the pipes before waiting so a chatty child cannot block on a full pipe.
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    # ru_maxrss is in KiB on Linux. CPU seconds (user + system, all threads) are less exposed
    # than wall time to other work on a shared machine.
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stdout": out,
        "stderr": err,
    }


def python_child(code: str, *argv: str) -> list[str]:
    """Arguments running ``code`` in a fresh interpreter (so its memory is measured alone)."""
    return [sys.executable, "-c", code, *argv]


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list]) -> str:
    """A plain fixed-width text table (no dependency on rich, so output pastes anywhere)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_result(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/NAME.json`` with the machine description and a timestamp."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average_at_end": load_average(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
