"""Fixtures and helpers for the whole suite (tests import the helpers: ``from conftest import ...``).

- The environment: model hubs offline, no deployment settings from the developer's shell
  (``pytest_configure``; ``.ci/run`` exports the same).
- ``shared_data`` / ``needs_shared``: the real LAION sample in ``../shared`` beside the checkout.
- ``write_shard`` / ``write_content``: parquet shards and content folders written in code.
- ``shared``: the session's one cold build of the repository's content (demo data, a small map
  sample), reused by every test that needs a built site. Tests that edit content take a
  ``content_copy`` and rebuild against the shared cache: it is content-addressed, so only what they
  change is recomputed. Tests using it are marked ``slow`` automatically.
- ``make_context`` / ``save_tiny_clip``: a real BuildContext over real shards and a tiny
  random-weight CLIP, for the stage tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE_10K = SHARED / "data" / "laion400m-sample-10k.parquet"
#: The real sample has no safety scores: tests that need its rows on the map opt in, as a user must.
UNSCORED_SHOWN = {"unscored": "keyword-filter"}
IMAGES = SHARED / "data" / "images"

#: Set for every test (model hubs are never reached; tiny models are built in the tests) ...
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
#: ... and unset: a developer's deployment settings must not change what the tests build.
UNSET = ("ATLAS_BASE_URL", "ATLAS_CACHE_DIR")

#: The map sample of the session build (the repository's content asks for 20,000).
SAMPLE_SIZE = 300
#: A page of the repository's content that tests edit in their own copy.
EDIT_PAGE = "common-crawl.md"

needs_shared = pytest.mark.skipif(
    not SAMPLE_10K.exists(), reason=f"the shared LAION sample is not at {SAMPLE_10K} (tests read ../shared beside the checkout)"
)


def pytest_configure(config):
    """Before any test module is imported (huggingface_hub reads HF_HUB_OFFLINE at import)."""
    os.environ.update(OFFLINE)
    for name in UNSET:
        os.environ.pop(name, None)


def pytest_collection_modifyitems(config, items):
    """A test that needs the session's cold build is slow when run on its own."""
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# ----------------------------------------------------------------------------- data and content


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SAMPLE_10K.exists():
        pytest.skip(f"the shared LAION sample is not at {SAMPLE_10K} (tests read ../shared beside the checkout)")
    return SHARED / "data"


def write_shard(path: Path, data: dict[str, list] | list[dict], types: dict[str, pa.DataType] | None = None) -> Path:
    """A parquet shard from columns (name -> values) or from rows (dicts; a key a row lacks is
    null there), with LAION's column names or any others; types are inferred unless given."""
    if isinstance(data, list):
        data = {name: [row.get(name) for row in data] for name in sorted({key for row in data for key in row})}
    types = types or {}
    table = pa.table({name: pa.array(values, types.get(name)) for name, values in data.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_content(folder: Path, pages: dict[str, str] | None = None, toml: str = "", artists: str | None = None) -> Path:
    """A content folder with atlas.toml and the given pages (name -> Markdown, dedented)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "atlas.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    pages = pages or {"index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas stat value=rows label=rows\n```\n"}
    for name, text in pages.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    if artists is not None:
        (folder / "artists.txt").write_text(artists, encoding="utf-8")
    return folder


def edit_config(content: Path, pattern: str, replacement: str) -> None:
    """Replace the one line of ``atlas.toml`` that matches ``pattern`` (a regular expression)."""
    config = content / "atlas.toml"
    text, count = re.subn(f"(?m)^{pattern}$", replacement, config.read_text(encoding="utf-8"))
    assert count == 1, f"{config}: {count} lines match {pattern!r}"
    config.write_text(text, encoding="utf-8")


#: A small map for content folders written in code.
SMALL_MAP = """
[sample]
size = 300

[project]
fit_size = 300
"""


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative POSIX path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- the session build


def quiet_build(content: Path, out: Path, cache: Path | None, **options):
    """``atlas build`` without output; returns the BuildReport."""
    from atlas.build import build
    from atlas.core.report import Reporter

    return build(content, out, cache_dir=cache, reporter=Reporter(quiet=True), **options)


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> dict:
    """The session's one cold build: the repository's content over the generated demo data, with
    a small map sample. Keys: ``content`` (do not edit: see ``content_copy``), ``cache``,
    ``site``, ``report``."""
    root = tmp_path_factory.mktemp("shared-build")
    content = root / "content"
    shutil.copytree(REPO / "content", content)
    edit_config(content, r"size = [\d_]+", f"size = {SAMPLE_SIZE}")
    report = quiet_build(content, root / "site", root / "cache")
    assert report.published
    return {"root": root, "content": content, "cache": root / "cache", "site": root / "site", "report": report}


def content_copy(shared: dict, target: Path) -> Path:
    """A private copy of the session build's content folder, to edit."""
    shutil.copytree(shared["content"], target)
    return target


def statuses(report) -> dict[str, str]:
    return {result.name: result.status for result in report.results}


def ran(report) -> set[str]:
    return {result.name for result in report.results if result.status == "ran"}


# ----------------------------------------------------------------------------- stages and models


def make_context(tmp_path: Path, sources: list[str] | None = None, **sections):
    """A real BuildContext over real shards, with a cache under tmp_path and a quiet reporter."""
    from atlas.core.cache import Cache
    from atlas.core.config import parse_config
    from atlas.data.sources import resolve_sources
    from atlas.core.pipeline import BuildContext
    from atlas.core.report import Reporter

    from atlas.data.policy import load_policy

    config = parse_config(sections)
    return BuildContext(
        config=config,
        content_dir=tmp_path,
        cache=Cache(tmp_path / "cache"),
        reporter=Reporter(quiet=True),
        sources=resolve_sources(sources or [], tmp_path),
        policy=load_policy(config.data, tmp_path),
    )


#: A tiny CLIP: a one-layer ViT on 32x32 images and a one-layer text transformer with the real
#: 49,408-token vocabulary, so the real tokenizer and the real open_clip code paths run in seconds.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_clip(folder: Path, seed: int = 0) -> dict:
    """Create the tiny CLIP with random weights; save a config file, a checkpoint and a local-dir."""
    from atlas.models._torch_compat import import_open_clip

    open_clip = import_open_clip()
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "atlas-tiny-clip.json"
    config_path.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model("atlas-tiny-clip")
    checkpoint = folder / "tiny-clip.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    local_dir = folder / "local"
    local_dir.mkdir(exist_ok=True)
    (local_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}}))
    torch.save(model.state_dict(), local_dir / "open_clip_pytorch_model.bin")
    return {"config": config_path, "checkpoint": checkpoint, "local_dir": local_dir}


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per browser test module (modules skip by marker without Chromium)."""
    from playwright.sync_api import sync_playwright

    from browser import launch

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()
