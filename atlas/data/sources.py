"""Where the shards are and what they hold: sources and their fingerprints, footer and column-type
checks, and the column aliases of the LAION releases."""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from atlas.core.config import CANONICAL_COLUMNS, content_path
from atlas.core.errors import DataError
from atlas.core.settings import Settings

log = logging.getLogger(__name__)

REMOTE_PREFIXES = ("http://", "https://", "hf://", "s3://", "gs://", "gcs://", "r2://", "az://", "abfss://")

#: Column names used by the LAION releases and their relatives, per canonical name, in order of
#: preference. Matching is exact first, then case-insensitive.
ALIASES: dict[str, tuple[str, ...]] = {
    "url": ("URL", "url", "image_url", "img_url", "link"),
    "caption": ("TEXT", "caption", "alt_text", "text", "alt", "title"),
    "width": ("WIDTH", "original_width", "width"),
    "height": ("HEIGHT", "original_height", "height"),
    "similarity": ("similarity", "clip_similarity", "score"),
    "punsafe": ("punsafe", "p_unsafe"),
    "pwatermark": ("pwatermark", "p_watermark"),
    "aesthetic": ("aesthetic", "AESTHETIC_SCORE", "aesthetic_score"),
    "hash": ("hash", "key", "SAMPLE_ID"),
    "license": ("LICENSE", "license"),
    "nsfw": ("NSFW", "nsfw"),
    "language": ("LANGUAGE", "language", "lang"),
}

#: SQL type each canonical column is read as (TRY_CAST, so a bad value becomes NULL = invalid).
TYPES = {
    "url": "VARCHAR",
    "caption": "VARCHAR",
    "width": "DOUBLE",
    "height": "DOUBLE",
    "similarity": "DOUBLE",
    "punsafe": "DOUBLE",
    "pwatermark": "DOUBLE",
    "aesthetic": "DOUBLE",
    "hash": "VARCHAR",
    "license": "VARCHAR",
    "nsfw": "VARCHAR",
    "language": "VARCHAR",
}


@dataclass(frozen=True)
class Source:
    """One shard (local file) or one remote glob handed to DuckDB as is."""

    location: str
    size: int | None = None
    mtime_ns: int | None = None

    @property
    def remote(self) -> bool:
        return self.location.startswith(REMOTE_PREFIXES)

    def fingerprint(self) -> dict:
        return {"location": self.location, "size": self.size, "mtime_ns": self.mtime_ns}


def is_glob(location: str) -> bool:
    return any(ch in location for ch in "*?[")


def remote_fingerprint(url: str, timeout: float = 20.0, *, settings: Settings | None = None) -> dict | None:
    """What identifies one remote shard now: ETag, Last-Modified and size from an HTTP HEAD.

    ``hf://datasets/OWNER/NAME/PATH`` is asked at its ``resolve/main`` address on huggingface.co
    (where DuckDB reads it), with ``settings.hf_token`` when there is one. None when the
    source cannot be asked (a glob, s3:// and other stores, a failed request) or the server
    gives none of the three: such a shard is scanned again on every build.
    """
    import urllib.request

    if is_glob(url):
        return None
    if url.startswith("hf://datasets/"):
        owner, name, *path = url[len("hf://datasets/"):].split("/")
        address = f"https://huggingface.co/datasets/{owner}/{name}/resolve/main/{'/'.join(path)}"
    elif url.startswith(("http://", "https://")):
        address = url
    else:
        return None
    request = urllib.request.Request(address, method="HEAD")
    token = settings.hf_token if settings is not None else None
    if token and url.startswith("hf://"):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = response.headers
    except (OSError, ValueError) as error:
        log.info("cannot fingerprint %s: %s", url, error)
        return None
    found = {
        "etag": headers.get("X-Linked-Etag") or headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
        "size": headers.get("X-Linked-Size") or headers.get("Content-Length"),
    }
    return {"location": url, **found} if any(found.values()) else None


def is_remote(pattern: str) -> bool:
    return pattern.startswith(REMOTE_PREFIXES)


def resolve_sources(patterns: list[str], base: Path) -> list[Source]:
    """Expand local globs (relative to ``base``) to files; keep remote patterns as they are."""
    sources: list[Source] = []
    for pattern in patterns:
        if is_remote(pattern):
            sources.append(Source(pattern))
            continue
        path = content_path(pattern, base)
        if path.is_dir():
            matches = sorted(str(p) for p in path.rglob("*.parquet"))
        else:
            matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise DataError(
                f"no parquet shards match {pattern!r} (looked for {path})",
                hint="Check the path in [data] sources or --data; globs like 'shards/*.parquet' work.",
            )
        for match in matches:
            if os.path.isdir(match):
                continue
            try:
                stat = os.stat(match)
            except OSError as error:
                raise DataError(
                    f"cannot read {match} (matched by {pattern!r}): {error.strerror or error}",
                    hint="It may be a broken symbolic link or unreadable; fix or remove it, or narrow the glob.",
                ) from None
            sources.append(Source(os.path.abspath(match), stat.st_size, stat.st_mtime_ns))
    # The same file named twice (two overlapping globs) is read once.
    unique = list(dict.fromkeys(sources))
    return unique


def shard_schema(source: Source) -> dict[str, str]:
    """Column name -> type name of a local shard, read from its footer.

    A file that fails is a DataError whose advice fits what the file is: one that is not parquet
    at all (a CSV, a README caught by a glob) is named as such with the bytes it starts with,
    since re-downloading it would not help; only one that starts like parquet (``PAR1``) but
    cannot be read is called truncated or damaged and worth downloading again.
    """
    import pyarrow.parquet as pq

    path = source.location
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
    except OSError as error:
        raise DataError(
            f"cannot read {path}: {error.strerror or error}",
            hint="Check that it exists and is readable, or remove it from [data] sources or --data.",
        ) from None
    magic = b"PAR1"
    if head and not (head[:4] == magic if len(head) >= 4 else magic.startswith(head)):
        text = head.decode("utf-8", errors="replace")
        readable = sum(ch.isprintable() and ch != "\ufffd" or ch in "\t\r\n" for ch in text)
        if readable >= 0.75 * len(text):
            shown = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:20]
            start = f"'{shown}'"
        else:
            start = "the bytes " + head[:4].hex(" ")
        raise DataError(
            f"{path} is not a parquet file (it starts with {start}): remove it from [data] sources "
            "or --data, or convert it to parquet."
        )
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # pyarrow raises several types for damaged files
        if size < 12 or tail != magic:
            problem = f"is a truncated parquet file: it starts like one but its end is missing ({size} bytes)"
        else:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            problem = f"is a damaged parquet file: its footer cannot be read ({reason})"
        raise DataError(
            f"{path} {problem}.",
            hint="Re-download it, or remove it from [data] sources or --data.",
        ) from None
    return {field.name: str(field.type) for field in schema}


def check_sources(sources: list[Source]) -> tuple[list[Source], list[str], list[str], list[tuple[str, dict]]]:
    """Drop empty (0-byte) files, check every footer, and return (usable, columns, notes, schemas).

    ``schemas`` has one ``(file, {column: type})`` per local shard, for :func:`check_types`.
    """
    usable, columns, notes, schemas = [], [], [], []
    for source in sources:
        if source.remote:
            usable.append(source)
            continue
        if source.size == 0:
            notes.append(f"skipped empty file {source.location}")
            continue
        schema = shard_schema(source)
        schemas.append((source.location, schema))
        for name in schema:
            if name not in columns:
                columns.append(name)
        usable.append(source)
    return usable, columns, notes, schemas


#: Canonical columns read as numbers, and as text (``hash`` may be either: LAION's is an int64).
NUMERIC = ("width", "height", "similarity", "punsafe", "pwatermark", "aesthetic")
TEXTUAL = ("url", "caption", "license", "nsfw", "language")


def _type_kind(type_name: str) -> str:
    """"number", "integer", "text" or "other", from a pyarrow or DuckDB type name."""
    name = type_name.lower().strip()
    if name.startswith("dictionary<values="):  # pyarrow dictionary: judge its values
        name = name[len("dictionary<values="):].split(",")[0]
    if name in ("null", '"null"'):
        return "null"
    if name.endswith("]"):  # DuckDB lists and arrays: VARCHAR[], DOUBLE[3]
        return "other"
    if name in ("string", "large_string", "string_view", "utf8", "large_utf8", "varchar") or name.startswith("varchar"):
        return "text"
    if name.startswith(("int", "uint", "bigint", "smallint", "tinyint", "hugeint", "ubigint", "usmallint", "utinyint",
                        "uhugeint")) and "[" not in name:
        return "integer"
    if name.startswith(("float", "double", "halffloat", "decimal", "real")) and "[" not in name:
        return "number"
    return "other"


def check_types(schemas: list[tuple[str, dict]], mapping: dict[str, str]) -> list[str]:
    """Check each canonical column's type in each shard; returns notes for safe casts.

    A type that cannot be read as the canonical one (``punsafe`` as text, a list, a struct or a
    boolean; ``TEXT`` as a list...) is a :class:`DataError` naming the file, the column, its type
    and the expected one. Integer scores are read as numbers, with a note. A shard with none of
    the known columns is an error listing what it has.
    """
    notes = []
    known = set(mapping.values())
    for location, schema in schemas:
        if schema and not known & set(schema):
            expected = ", ".join(ALIASES[c][0] for c in CANONICAL_COLUMNS)
            raise DataError(
                f"parquet shard {location} has none of the columns atlas knows: it has "
                f"{', '.join(schema)}; expected some of {expected} (or their usual aliases)",
                hint="Map yours in atlas.toml, e.g. [data.columns] url = \"image\", caption = \"alt\".",
            )
        for canonical, column in mapping.items():
            if column not in schema:
                continue
            actual = str(schema[column])
            kind = _type_kind(actual)
            if kind == "null":
                continue
            if canonical in NUMERIC:
                ok, expected = kind in ("number", "integer"), "a number (float or double)"
                if kind == "integer" and canonical not in ("width", "height"):
                    notes.append(f"{location}: column {column!r} ({canonical}) is {actual}; read as a number")
            elif canonical == "hash":
                ok, expected = kind in ("text", "integer"), "text or an integer"
            else:
                ok, expected = kind == "text", "text (string)"
            if not ok:
                raise DataError(
                    f"parquet shard {location}: column {column!r} (read as {canonical}) has type {actual}, "
                    f"expected {expected}",
                    hint=(f"Fix the shard's column type, or map {canonical} to another column with "
                          f"[data.columns] {canonical} = \"NAME\"."),
                )
    return list(dict.fromkeys(notes))


def map_columns(available: list[str], overrides: dict[str, str]) -> dict[str, str]:
    """Canonical name -> shard column, from ``[data.columns]`` and then the built-in aliases."""
    mapping: dict[str, str] = {}
    lower = {name.lower(): name for name in available}
    for canonical, actual in overrides.items():
        if actual not in available:
            raise DataError(
                f"[data.columns] maps {canonical!r} to column {actual!r}, which no shard has",
                hint=f"Available columns: {', '.join(available) or '(none)'}.",
            )
        mapping[canonical] = actual
    for canonical in CANONICAL_COLUMNS:
        if canonical in mapping:
            continue
        for alias in ALIASES[canonical]:
            if alias in available:
                mapping[canonical] = alias
                break
        else:
            for alias in ALIASES[canonical]:
                if alias.lower() in lower:
                    mapping[canonical] = lower[alias.lower()]
                    break
    return mapping


def select_sources(data: list[str] | None, configured: list[str], content_dir: Path) -> list[Source]:
    """``--data`` paths (relative to where the command runs) win over ``[data] sources``
    (relative to the content folder)."""
    if data:
        return resolve_sources(list(data), Path.cwd())
    return resolve_sources(configured, content_dir)
