"""Builds without output, copies of the session build's content, and a real BuildContext."""

from __future__ import annotations

import shutil
from pathlib import Path


def quiet_build(content: Path, out: Path, cache: Path | None, **options):
    """``atlas build`` without output; returns the BuildReport."""
    from atlas.build import build
    from atlas.core.report import Reporter

    return build(content, out, cache_dir=cache, reporter=Reporter(quiet=True), **options)


def content_copy(shared: dict, target: Path) -> Path:
    """A private copy of the session build's content folder (the ``shared`` fixture), to edit."""
    shutil.copytree(shared["content"], target)
    return target


def statuses(report) -> dict[str, str]:
    return {result.name: result.status for result in report.results}


def ran(report) -> set[str]:
    return {result.name for result in report.results if result.status == "ran"}


def make_context(tmp_path: Path, sources: list[str] | None = None, **sections):
    """A real BuildContext over real shards, with a cache under tmp_path and a quiet reporter."""
    from atlas.core.cache import Cache
    from atlas.core.config import parse_config
    from atlas.core.pipeline import BuildContext
    from atlas.core.report import Reporter
    from atlas.data.policy import load_policy
    from atlas.data.sources import resolve_sources

    config = parse_config(sections)
    return BuildContext(
        config=config,
        content_dir=tmp_path,
        cache=Cache(tmp_path / "cache"),
        reporter=Reporter(quiet=True),
        sources=resolve_sources(sources or [], tmp_path),
        policy=load_policy(config.data, tmp_path),
    )
