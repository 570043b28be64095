"""The environment atlas reads, in one object, read once at the edge (the CLI, or ``build()``).

Everything below the edge receives a :class:`Settings` (on :class:`atlas.core.pipeline.BuildContext`
as ``ctx.settings``) instead of reading ``os.environ`` itself, so a build's behaviour depends on
what it was given, and tests pass the settings they mean.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Remote reads retry transient failures (timeouts, resets, 5xx) this many times by default.
HTTP_RETRIES = 5
#: The Hugging Face hub, unless ``HF_ENDPOINT`` names another.
HF_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class Settings:
    #: ``ATLAS_CACHE_DIR``: the stage cache, when ``--cache-dir`` is not given.
    cache_dir: Path | None = None
    #: ``ATLAS_BASE_URL``: the site's public URL, winning over ``[site] base_url``.
    base_url: str = ""
    #: ``ATLAS_HTTP_RETRIES``: retries of transient remote-read failures.
    http_retries: int = HTTP_RETRIES
    #: ``ATLAS_DUCKDB_MEMORY``: DuckDB's memory limit (e.g. "4GB"), or None for its default.
    duckdb_memory: str | None = None
    #: ``HF_TOKEN``: a Hugging Face token for ``hf://`` shards of gated datasets (and hub downloads).
    hf_token: str | None = None
    #: ``HF_HUB_OFFLINE`` set (1, true, yes, on): nothing is fetched from the Hugging Face hub.
    hf_offline: bool = False
    #: ``HF_ENDPOINT``: the Hugging Face hub that ``atlas generate`` downloads a model id from.
    hf_endpoint: str = HF_ENDPOINT
    #: ``CI`` set: no progress bars.
    ci: bool = False
    #: ``GITHUB_ACTIONS=true``: the build runs on GitHub Actions (named in build.json).
    github_actions: bool = False
    #: ``GITHUB_SHA``: the commit being built (named in build.json).
    commit: str | None = None
    #: ``RAY_ADDRESS``: the Ray cluster of ``engine = "ray"`` stages; None starts a local Ray per build.
    ray_address: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        try:
            retries = max(0, int(env.get("ATLAS_HTTP_RETRIES", HTTP_RETRIES)))
        except ValueError:
            retries = HTTP_RETRIES
        return cls(
            cache_dir=Path(env["ATLAS_CACHE_DIR"]) if env.get("ATLAS_CACHE_DIR") else None,
            base_url=env.get("ATLAS_BASE_URL", "").strip(),
            http_retries=retries,
            duckdb_memory=env.get("ATLAS_DUCKDB_MEMORY") or None,
            hf_token=env.get("HF_TOKEN") or None,
            hf_offline=env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"),
            hf_endpoint=env.get("HF_ENDPOINT", "").strip().rstrip("/") or HF_ENDPOINT,
            ci=bool(env.get("CI")),
            github_actions=env.get("GITHUB_ACTIONS") == "true",
            commit=env.get("GITHUB_SHA") or None,
            ray_address=env.get("RAY_ADDRESS", "").strip() or None,
        )
