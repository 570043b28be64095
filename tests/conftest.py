"""The suite's fixtures and hooks; the helpers tests import are in ``tests/helpers/``.

- The environment: model hubs offline, no deployment settings from the developer's shell
  (``pytest_configure``; ``.ci/run`` exports the same).
- ``shared_data``: the real LAION sample in ``../shared`` beside the checkout.
- ``shared``: the session's one cold build of the repository's content (demo data, a small map
  sample), reused by every test that needs a built site. Tests that edit content take a
  ``helpers.builds.content_copy`` and rebuild against the shared cache: it is content-addressed, so
  only what they change is recomputed. Tests using it are marked ``slow`` automatically.
- ``tiny_clip``: the session's one tiny random-weight CLIP (``helpers.clip``).
- ``chromium``: one headless Chromium per browser test module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers.builds import quiet_build
from helpers.content import edit_config
from helpers.paths import OFFLINE, REPO, SAMPLE_10K, SAMPLE_SIZE, SHARED, UNSET


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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SAMPLE_10K.exists():
        pytest.skip(f"the shared LAION sample is not at {SAMPLE_10K} (tests read ../shared beside the checkout)")
    return SHARED / "data"


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


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> dict:
    """The tiny CLIP (``helpers.clip.save_tiny_clip``): ``config``, ``checkpoint``, ``local_dir``."""
    from helpers.clip import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per browser test module (modules skip by marker without Chromium)."""
    from playwright.sync_api import sync_playwright

    from helpers.browser import launch

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()
