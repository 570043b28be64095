"""One small demo build per test session, shared by the cache/pipeline/serve/artifact/link tests.

The first caller pays for the cold build (demo shards, statistics, a 300-row sample, TF-IDF +
UMAP with its numba JIT); later callers copy its content folder and reuse its stage cache,
which is content-addressed, so a test's own edits only add entries beside the shared ones.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from atlas.build import build
from atlas.report import Reporter

SAMPLE_SIZE = 300

_SHARED: dict[str, Path] = {}


def write_content(folder: Path, sample_size: int = SAMPLE_SIZE) -> Path:
    """A small content folder: config, two pages linking to each other and the map, artists."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "atlas.toml").write_text(
        textwrap.dedent(
            f"""\
            [site]
            title = "Test atlas"

            [data]
            artists = "artists.txt"

            [sample]
            size = {sample_size}
            seed = 7

            [project]
            n_neighbors = 15
            """
        ),
        encoding="utf-8",
    )
    (folder / "artists.txt").write_text("Greg Rutkowski\nAlphonse Mucha\n", encoding="utf-8")
    (folder / "index.md").write_text(
        "---\ntitle: Home\norder: 0\n---\n# Test atlas\n\nStart with [how it was made](making/) or the [map](map/).\n",
        encoding="utf-8",
    )
    (folder / "making.md").write_text(
        "---\ntitle: How it was made\nnav: Making\norder: 10\n---\n# How it was made\n\nBack [home](../).\n",
        encoding="utf-8",
    )
    return folder


def shared_build(tmp_path_factory) -> dict[str, Path]:
    """The session's cold build: ``content`` (do not edit), ``cache``, ``site``."""
    if not _SHARED:
        root = tmp_path_factory.mktemp("atlas-shared")
        content = write_content(root / "content")
        cache = root / "cache"
        report = build(content, root / "site", cache_dir=cache, reporter=Reporter(quiet=True))
        assert report.published
        _SHARED.update(root=root, content=content, cache=cache, site=root / "site")
    return _SHARED


def content_copy(shared: dict[str, Path], target: Path) -> Path:
    """A private copy of the shared content folder, to edit."""
    shutil.copytree(shared["content"], target)
    return target


def quiet_build(content: Path, out: Path, cache: Path, **options):
    return build(content, out, cache_dir=cache, reporter=Reporter(quiet=True), **options)


def statuses(report) -> dict[str, str]:
    return {result.name: result.status for result in report.results}


def ran(report) -> set[str]:
    return {result.name for result in report.results if result.status == "ran"}
