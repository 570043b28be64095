"""Shared fixtures: the real data in ../shared, small parquet shards and content folders written
in code, and one small demo build per test session."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("ATLAS_BASE_URL", None)
os.environ.pop("ATLAS_CACHE_DIR", None)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE_10K = SHARED / "data" / "laion400m-sample-10k.parquet"
ARTISTS = SHARED / "data" / "artists.txt"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SAMPLE_10K.exists():
        pytest.skip(f"the shared LAION sample is not at {SAMPLE_10K} (tests read ../shared beside the checkout)")
    return SHARED / "data"


def write_shard(path: Path, columns: dict[str, list], types: dict[str, pa.DataType] | None = None) -> Path:
    """Write a parquet shard from plain lists (types inferred unless given)."""
    types = types or {}
    table = pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_content(folder: Path, pages: dict[str, str] | None = None, toml: str = "", artists: str | None = None) -> Path:
    """A content folder with atlas.toml and the given pages (name -> Markdown)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "atlas.toml").write_text(textwrap.dedent(toml))
    pages = pages or {"index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas stat value=rows label=rows\n```\n"}
    for name, text in pages.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    if artists is not None:
        (folder / "artists.txt").write_text(artists)
    return folder


SMALL_MAP = """
[sample]
size = 300

[project]
fit_size = 300
"""


@pytest.fixture
def quiet():
    from atlas.report import Reporter

    return Reporter(quiet=True)


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory) -> dict:
    """One build of the embedded demo with the repo's content (small sample), shared by tests."""
    from atlas.build import build
    from atlas.report import Reporter

    root = tmp_path_factory.mktemp("demo")
    content = root / "content"
    shutil.copytree(REPO / "content", content)
    toml = (content / "atlas.toml").read_text()
    toml = toml.replace("size = 20000", "size = 400")
    (content / "atlas.toml").write_text(toml)
    out = root / "site"
    report = build(content, out, cache_dir=root / "cache", reporter=Reporter(quiet=True))
    return {"root": root, "content": content, "out": out, "cache": root / "cache", "report": report}


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
