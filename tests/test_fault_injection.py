"""Fault injection: ``atlas build`` killed with SIGKILL at random moments, in every stage and
while publishing, never damages the published site or the cache.

Each trial starts a real ``atlas build`` in a child process on a small LAION-shaped data set,
waits until the chosen stage announces itself (``[stage] running``), waits a random (seeded)
moment more and sends SIGKILL. Then:

- the output folder is byte-identical to the site published before (or, when the kill came
  after the swap, byte-identical to the new site: never a mixture, never missing);
- the next build with the same cache succeeds and its site equals a clean build of the same
  content made with an empty cache.

To keep it to a few minutes, the two content variants' clean builds are made once, one cache
holds both variants' entries, and before a trial only the chosen stage's entry and those after
it are removed from it (so the child runs exactly those stages). The figures are printed for the report.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from atlas.build import build
from atlas.core.cache import Cache, tree_digests
from atlas.stages.demo import write_demo_shards
from atlas.core.report import Reporter

pytestmark = pytest.mark.slow

TRIALS = 21
SEED = 20261202
STAGES = ("stats", "sample", "embed", "project", "mapdata", "render")
#: Seconds after a stage announces itself within which the kill falls (roughly the stage's
#: length here); "publish" kills after render announced itself, around the swap.
WINDOWS = {"stats": 1.0, "sample": 0.5, "embed": 1.5, "project": 4.0, "mapdata": 0.3, "render": 0.6,
           "publish": 3.0}
#: Fields of data/build.json that differ between two builds of the same site: the time, the
#: stages' statuses, and the warnings raised while stages ran (a cached stage raises none).
VOLATILE = ("built_at", "stages", "warnings")


def _variant(content: Path, name: str) -> None:
    """Content variant ``a`` or ``b``: every stage's inputs differ between the two."""
    seed = {"a": 1, "b": 2}[name]
    (content / "atlas.toml").write_text(
        f'[site]\ntitle = "Kill test {name}"\n\n[data]\nsources = ["shards/*.parquet"]\nartists = "artists.txt"\n'
        f"seed = {seed}\n\n[sample]\nsize = 200\nseed = {seed}\n\n[project]\nn_neighbors = 10\n",
        encoding="utf-8",
    )
    (content / "index.md").write_text(f"---\ntitle: Home\n---\n# Variant {name}\n\nThe [map](map/).\n", encoding="utf-8")


def _site_digest(site: Path) -> dict:
    """Every file's SHA-256, with data/build.json reduced to its non-volatile fields."""
    digests = tree_digests(site)
    info = json.loads((site / "data" / "build.json").read_text())
    digests["data/build.json"] = {k: v for k, v in info.items() if k not in VOLATILE}
    return digests


def _quiet_build(content: Path, out: Path, cache: Path):
    return build(content, out, cache_dir=cache, reporter=Reporter(quiet=True))


def _kill_during(command: list[str], env: dict, stage: str, delay: float, cwd: Path) -> tuple[str, bool]:
    """Run ``command``, SIGKILL it ``delay`` s after ``[stage] running`` (``publish``: after
    render's line). Returns (the last stage it announced, whether it finished before the kill)."""
    wanted = "render" if stage == "publish" else stage
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    timer = None
    try:
        for line in process.stderr:
            if line.startswith("[") and "] running" in line:
                seen.append(line[1:line.index("]")])
                if seen[-1] == wanted and timer is None:
                    timer = threading.Timer(delay, lambda: process.poll() is None and process.send_signal(signal.SIGKILL))
                    timer.start()
        process.wait(timeout=300)
    finally:
        if timer is not None:
            timer.join()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert timer is not None, f"the build never reached {stage}: {seen}"
    return (seen[-1] if seen else "startup"), process.returncode == 0


def test_sigkill_at_random_moments_never_damages_the_site_or_the_cache(tmp_path):
    content = tmp_path / "content"
    write_demo_shards(content / "shards", rows=1000, shards=2, seed=0)
    (content / "artists.txt").write_text("Greg Rutkowski\nAlphonse Mucha\n", encoding="utf-8")

    # The clean builds each trial is compared with (empty caches).
    clean = {}
    for name in ("a", "b"):
        _variant(content, name)
        report = _quiet_build(content, tmp_path / f"clean-{name}", tmp_path / f"clean-cache-{name}")
        clean[name] = _site_digest(report.out)
    assert clean["a"] != clean["b"]

    # One cache holding both variants' entries; each stage's key per variant.
    cache, out = tmp_path / "cache", tmp_path / "site"
    keys = {}
    for name in ("a", "b"):
        shutil.copytree(tmp_path / f"clean-cache-{name}", cache, dirs_exist_ok=True)
        _variant(content, name)
        keys[name] = {r.name: r.key for r in _quiet_build(content, out, cache).results if r.key}
    current = "b"

    rng = random.Random(SEED)
    env = dict(os.environ)
    command = [sys.executable, "-m", "atlas", "build", "--content", str(content), "--out", str(out),
               "--cache-dir", str(cache)]
    targets = [(STAGES + ("publish",))[i % (len(STAGES) + 1)] for i in range(TRIALS)]
    interrupted, finished, started = Counter(), 0, time.perf_counter()
    for trial, target in enumerate(targets):
        before = tree_digests(out)
        following = "b" if current == "a" else "a"
        _variant(content, following)
        first = STAGES.index("render" if target == "publish" else target)
        for stage in STAGES[first:]:  # the child must run the chosen stage and those after it
            shutil.rmtree(Cache(cache).entry(stage, keys[following][stage]))
        delay = rng.uniform(0, WINDOWS[target]) + (0.3 if target == "publish" else 0.0)
        last, completed = _kill_during(command, env, target, delay, tmp_path)
        after = tree_digests(out)
        if after == before:
            outcome = last
        else:  # the kill came after the swap: the whole new site, nothing else
            assert _site_digest(out) == clean[following], f"trial {trial}: a mixed site after a kill in {last}"
            finished += 1
            outcome = "after publishing" if completed else "publish (after the swap)"
        interrupted[outcome] += 1
        # The next build succeeds with the same cache and equals a clean build.
        _quiet_build(content, out, cache)
        assert _site_digest(out) == clean[following], f"trial {trial}: the rebuild after a kill in {last} differs"
        assert not list(out.parent.glob(f".{out.name}.*")), "a killed build's temporary site was left behind"
        current = following
        print(f"trial {trial}: kill aimed at {target} (+{delay:.2f}s) landed in {outcome}; "
              f"{time.perf_counter() - started:.0f}s so far", flush=True)
    seconds = time.perf_counter() - started
    print(f"\nkill trials: {TRIALS} in {seconds:.0f}s, seed {SEED}; interrupted in: {dict(interrupted)}; "
          f"site replaced by the finished build in {finished}")
    assert sum(interrupted.values()) == TRIALS
    assert len({stage for stage in interrupted if stage in STAGES}) >= 4, interrupted
