"""Reading LAION shards with DuckDB: resolve sources, check shards, map columns, open a view.

Every stage reads the data through :func:`open_rows`, which registers a DuckDB view ``rows``
with the canonical column names of :data:`atlas.config.CANONICAL_COLUMNS` (absent ones are
NULL) plus ``host``. Nothing here loads a shard into Python.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb

from atlas.config import CANONICAL_COLUMNS, DataConfig, content_path
from atlas.errors import DataError
from atlas.settings import HTTP_RETRIES, Settings

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


def remote_fingerprint(url: str, timeout: float = 20.0) -> dict | None:
    """What identifies one remote shard now: ETag, Last-Modified and size from an HTTP HEAD.

    ``hf://datasets/OWNER/NAME/PATH`` is asked at its ``resolve/main`` address. None when the
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
    token = os.environ.get("HF_TOKEN")
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


def shard_columns(source: Source) -> list[str]:
    """The column names of a local shard, read from its footer; a damaged file is a DataError."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(source.location).names)
    except Exception as error:  # pyarrow raises several types for damaged files
        raise DataError(
            f"cannot read parquet shard {source.location}: {error}",
            hint="The file is truncated or not parquet. Re-download it or remove it from [data] sources.",
        ) from None


def check_sources(sources: list[Source]) -> tuple[list[Source], list[str], list[str]]:
    """Drop empty (0-byte) files, check every footer, and return (usable, columns, notes)."""
    usable, columns, notes = [], [], []
    for source in sources:
        if source.remote:
            usable.append(source)
            continue
        if source.size == 0:
            notes.append(f"skipped empty file {source.location}")
            continue
        for name in shard_columns(source):
            if name not in columns:
                columns.append(name)
        usable.append(source)
    return usable, columns, notes


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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: Lower-cased host of a URL: no scheme, user-info or port; a leading ``www.`` dropped.
HOST_SQL = (
    "nullif(regexp_replace(lower(regexp_extract({col}, "
    "'^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\\[[^\\]/]*\\]|[^:/?#@]*)', 1)), '^www\\.', ''), '')"
)


def connect(threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
    con.execute("SET preserve_insertion_order = false")
    # Parquet min/max statistics leave NaN out, and DuckDB 2.0's statistics propagation trusts
    # them: reading a shard alone, it decides ``isnan(x)`` is always false and counts NaN scores
    # as valid (the same shard read beside others is counted right). Full scans lose nothing.
    con.execute("SET disabled_optimizers = 'statistics_propagation'")
    return con


def _load_httpfs(con: duckdb.DuckDBPyConnection, sources: list[Source], settings: Settings) -> None:
    if not any(s.remote for s in sources):
        return
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error:
        try:
            con.execute("INSTALL httpfs; LOAD httpfs")
        except duckdb.Error as error:
            raise DataError(
                f"remote shards need DuckDB's httpfs extension, which could not be loaded: {error}",
                hint="Install it once with network (`duckdb -c 'INSTALL httpfs'`) or copy the shards locally.",
            ) from None
    _retry_transient_errors(con, settings.http_retries)
    token = settings.hf_token
    if token and any(s.location.startswith("hf://") for s in sources):
        con.execute(f"CREATE OR REPLACE SECRET hf_token (TYPE huggingface, TOKEN {quote_literal(token)})")
    if any(s.location.startswith("s3://") for s in sources):
        try:
            con.execute("CREATE OR REPLACE SECRET s3_auto (TYPE s3, PROVIDER credential_chain)")
        except duckdb.Error:
            log.info("no S3 credential chain found; reading s3:// anonymously")


#: Remote reads retry transient failures with exponential backoff (``Settings.http_retries`` times).
HTTP_RETRY_WAIT_MS = 500


def _retry_transient_errors(con: duckdb.DuckDBPyConnection, retries: int) -> None:
    """httpfs settings (they exist only once the extension is loaded)."""
    settings = {
        "http_retries": retries,
        "http_retry_wait_ms": HTTP_RETRY_WAIT_MS,
        "http_retry_backoff": 2,
    }
    for name, value in settings.items():
        try:
            con.execute(f"SET {name} = {int(value)}")
        except duckdb.Error as error:  # an older/newer httpfs without that setting
            log.debug("cannot SET %s: %s", name, error)


#: The name under which ``read_parquet`` reports each row's file (exposed as ``rows.shard``).
SHARD_COLUMN = "_atlas_shard"


def parquet_list_sql(sources: list[Source]) -> str:
    return "[" + ", ".join(quote_literal(s.location) for s in sources) + "]"


@dataclass
class Rows:
    """An open DuckDB connection with the view ``rows`` over the shards."""

    con: duckdb.DuckDBPyConnection
    columns: dict[str, str]  # canonical -> shard column, for the columns the shards have
    sources: list[Source]
    notes: list[str]
    #: The environment's settings the connection was opened with (retries, token, memory).
    settings: Settings = field(default_factory=Settings)

    def has(self, canonical: str) -> bool:
        return canonical in self.columns


def open_rows(sources: list[Source], config: DataConfig, threads: int | None = None,
              settings: Settings | None = None) -> Rows:
    """Check the shards and register the view ``rows`` (canonical columns, ``shard``, ``host``)."""
    settings = settings or Settings()
    usable, available, notes = check_sources(sources)
    con = connect(threads, settings.duckdb_memory)
    _load_httpfs(con, usable, settings)
    if any(s.remote for s in usable):
        try:
            described = con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({parquet_list_sql(usable)}, union_by_name = true)"
            ).fetchall()
        except duckdb.Error as error:
            raise _remote_error(error, settings.http_retries) from None
        for row in described:
            if row[0] not in available:
                available.append(row[0])
    mapping = map_columns(available, config.columns)
    if not usable:
        select = ", ".join(f"NULL::{TYPES[c]} AS {c}" for c in CANONICAL_COLUMNS)
        con.execute(f"CREATE VIEW rows AS SELECT {select}, NULL::VARCHAR AS shard, NULL::VARCHAR AS host WHERE false")
        return Rows(con, mapping, usable, notes, settings)
    _create_rows_view(con, usable, mapping)
    return Rows(con, mapping, usable, notes, settings)


def _create_rows_view(con: duckdb.DuckDBPyConnection, sources: list[Source], mapping: dict[str, str]) -> None:
    """The view ``rows`` over ``sources``: canonical names first (cast), then host computed from
    the cast url; ``shard`` is the file each row comes from (a filter on it makes DuckDB skip the
    other files)."""
    inner = f"read_parquet({parquet_list_sql(sources)}, union_by_name = true, filename = {quote_literal(SHARD_COLUMN)})"
    con.execute(
        f"CREATE VIEW rows AS SELECT *, {host_sql(mapping)} AS host "
        f"FROM (SELECT {canonical_select_sql(mapping)}, {quote_ident(SHARD_COLUMN)} AS shard FROM {inner})"
    )


def open_shard(source: Source, mapping: dict[str, str], settings: Settings | None = None,
               threads: int | None = None) -> Rows:
    """The view ``rows`` over one shard, read with the column ``mapping`` that :func:`open_rows`
    found over all the shards (``Rows.columns``): a mapped column this shard lacks is NULL, as it
    is in the union of all shards, so a query gives this shard's rows the same values here as
    there. For work on one shard in another process or on another machine (a Ray task); the
    shard was checked when all of them were opened.
    """
    settings = settings or Settings()
    con = connect(threads, settings.duckdb_memory)
    try:
        _load_httpfs(con, [source], settings)
        present = {row[0] for row in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({parquet_list_sql([source])}, union_by_name = true)"
        ).fetchall()}
    except duckdb.Error as error:
        con.close()
        if source.remote:
            raise _remote_error(error, settings.http_retries) from None
        raise DataError(
            f"cannot read shard {source.location} on this machine: {str(error).splitlines()[0]}",
            hint="On a Ray cluster every node reads the shards itself: use remote shards (s3://, https://, "
            "hf://) or a folder mounted at the same path on every node.",
        ) from None
    _create_rows_view(con, [source], {c: column for c, column in mapping.items() if column in present})
    return Rows(con, dict(mapping), [source], [], settings)


def indexed_rows_view(rows: Rows) -> str | None:
    """A view like ``rows`` plus ``source_row`` (global row index across the shards in order).

    Precomputed embeddings (LAION's ``.npy`` files) are aligned with the shards row by row, so the
    sample must remember where each row came from. Only possible for local shards.
    """
    if not rows.sources or any(s.remote for s in rows.sources) or "url" not in rows.columns:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets, start = [], 0
    for source in rows.sources:
        offsets.append((source.location, start))
        start += pq.ParquetFile(source.location).metadata.num_rows
    rows.con.register("_atlas_shard_offsets", pa.table({
        "filename": [o[0] for o in offsets], "row_offset": [o[1] for o in offsets]}))
    inner = (
        f"read_parquet({parquet_list_sql(rows.sources)}, union_by_name = true, "
        "filename = '_atlas_filename', file_row_number = true)"
    )
    rows.con.execute(
        f"CREATE OR REPLACE TEMP VIEW _atlas_rows_indexed AS SELECT *, {host_sql(rows.columns)} AS host "
        f"FROM (SELECT {canonical_select_sql(rows.columns)}, o.row_offset + file_row_number AS source_row "
        f"FROM {inner} AS r JOIN _atlas_shard_offsets AS o ON r._atlas_filename = o.filename)"
    )
    return "_atlas_rows_indexed"


def canonical_select_sql(mapping: dict[str, str]) -> str:
    """Every canonical column, cast from the shard column ``mapping`` names, or a typed NULL."""
    parts = []
    for canonical in CANONICAL_COLUMNS:
        if canonical in mapping:
            parts.append(f"TRY_CAST({quote_ident(mapping[canonical])} AS {TYPES[canonical]}) AS {canonical}")
        else:
            parts.append(f"NULL::{TYPES[canonical]} AS {canonical}")
    return ", ".join(parts)


def host_sql(mapping: dict[str, str]) -> str:
    """The host of the (canonical, already cast) ``url`` column, or NULL when there is none."""
    return HOST_SQL.format(col="url") if "url" in mapping else "NULL::VARCHAR"


def select_sources(data: list[str] | None, configured: list[str], content_dir: Path) -> list[Source]:
    """``--data`` paths (relative to where the command runs) win over ``[data] sources``
    (relative to the content folder)."""
    if data:
        return resolve_sources(list(data), Path.cwd())
    return resolve_sources(configured, content_dir)


def _remote_error(error: Exception, retries: int = HTTP_RETRIES) -> DataError:
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if re.search(r"\b(401|403)\b|unauthori[sz]ed|forbidden|auth|credential|permission|access denied", text, re.I):
        what = "the server refused access (authentication)"
        hint = (
            "Check the credentials: HF_TOKEN in the environment for hf:// (and accept a gated dataset's terms "
            "on huggingface.co), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE for s3://."
        )
    elif re.search(r"\b404\b|not found|no files found|does not exist", text, re.I):
        what = "nothing was found at that address"
        hint = "Check the URL or glob in [data] sources (or --data); hf:// paths look like hf://datasets/OWNER/NAME/path/*.parquet."
    elif re.search(r"resolve|connect|timed? ?out|timeout|network|unreachable|ssl|reset|\b5\d\d\b", text, re.I):
        what = f"a network error, still failing after {retries} retries"
        hint = "Check the network connection (and HTTP_PROXY if you use one), then build again; ATLAS_HTTP_RETRIES sets the retries."
    else:
        what = "the read failed"
        hint = "Check the network and the URL; remote globs need DuckDB's httpfs extension."
    return DataError(f"cannot read remote shards: {what}: {first.rstrip('.')}.", hint=hint)


def query_error(error: Exception, rows: Rows) -> DataError:
    """Turn a DuckDB failure during a scan into a DataError naming the damaged shard."""
    culprit = None
    for source in rows.sources:
        if source.remote:
            continue
        try:
            rows.con.execute(f"SELECT count(*) FROM read_parquet({quote_literal(source.location)})").fetchall()
            rows.con.execute(
                f"SELECT * FROM read_parquet({quote_literal(source.location)}) LIMIT 0"
            ).fetchall()
            # A damaged data page shows up only when every column is read.
            rows.con.execute(
                f"SELECT count(*) FROM (SELECT * FROM read_parquet({quote_literal(source.location)}))"
            ).fetchall()
            rows.con.execute(
                "SELECT max(length(CAST(COLUMNS(*) AS VARCHAR))) FROM read_parquet("
                + quote_literal(source.location)
                + ")"
            ).fetchall()
        except duckdb.Error as inner:
            culprit = (source.location, str(inner).splitlines()[0])
            break
    if culprit:
        return DataError(
            f"cannot read parquet shard {culprit[0]}: {culprit[1]}",
            hint="The file is damaged or truncated. Re-download it or remove it from [data] sources.",
        )
    if any(s.remote for s in rows.sources):
        return _remote_error(error, rows.settings.http_retries)
    return DataError(f"reading the shards failed: {str(error).splitlines()[0]}")


def safe_condition(rows: Rows, threshold: float) -> str:
    """SQL that is true for rows that may be shown on the site (never unsafe ones)."""
    conditions = []
    if rows.has("punsafe"):
        # Unknown safety (NULL/NaN) is not shown either where the data has the column.
        conditions.append(f"(punsafe IS NOT NULL AND NOT isnan(punsafe) AND punsafe < {float(threshold)!r})")
    if rows.has("nsfw"):
        conditions.append("coalesce(upper(nsfw) = 'UNLIKELY', false)")
    return " AND ".join(conditions) if conditions else "true"


_PSL = None


@lru_cache(maxsize=1 << 16)
def registrable_domain(host: str) -> str:
    """``i.pinimg.com`` -> ``pinimg.com``, ``foo.co.uk`` -> ``foo.co.uk``; IPs stay as they are."""
    global _PSL
    if _PSL is None:
        from publicsuffixlist import PublicSuffixList

        _PSL = PublicSuffixList(only_icann=True)  # bundled list: works offline; ICANN only so
        # that e.g. bucket.s3.amazonaws.com rolls up to amazonaws.com
    if not host:
        return host
    if re.fullmatch(r"[0-9.]+|\[.*\]", host):
        return host
    return _PSL.privatesuffix(host) or host


def safe_http_url(value: object) -> str | None:
    """The URL if it is a plain http(s) URL (the only kind ever linked), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.match(r"^https?://[^\s\"'<>\\`]+$", text, re.I) and len(text) < 4096:
        return text
    return None
