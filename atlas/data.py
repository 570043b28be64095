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

from atlas.config import CANONICAL_COLUMNS, DataConfig, content_path
from atlas.errors import ConfigError, ContentError, DataError
from atlas.paths import inside_content
from atlas import urls
from atlas.settings import HTTP_RETRIES, Settings
from atlas.text.fold import words_many
from atlas.text.sql import UDF as WORDS_UDF
from atlas.text.sql import mismatch_class
from atlas.text.sql import register as register_words_udf

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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect(threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    import duckdb

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
    urls.register(con)  # the canonical URL form, for the URLs SQL leaves to Python
    # The words of non-ASCII text for the blocklist (WORDS_SQL): every connection that opens
    # rows (stats, bias, sample, a Ray task's shard) defines ``rows.blocked`` with it.
    register_words_udf(con)
    return con


def _load_httpfs(con: duckdb.DuckDBPyConnection, sources: list[Source], settings: Settings) -> None:
    import duckdb

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
    import duckdb

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
    """An open DuckDB connection with the view ``rows`` over the shards.

    ``rows`` has the canonical columns, with ``url`` in its canonical form (:mod:`atlas.urls`:
    the link a browser would follow, NULL where it is not an http(s) URL) and ``url_raw`` as the
    shard wrote it, ``host`` (the canonical host, also for URLs that are not linked), ``blocked``
    (the caption or URL has a word of the blocklist) and ``shown`` (the row may be published:
    :func:`shown_sql`); rows of the opt-out lists are not in it at all. ``rows_all`` is the same
    before the opt-outs. The policy has no default: whoever opens rows says what may be shown.
    """

    con: duckdb.DuckDBPyConnection
    columns: dict[str, str]  # canonical -> shard column, for the columns the shards have
    sources: list[Source]
    notes: list[str]
    #: The environment's settings the connection was opened with (retries, token, memory).
    settings: Settings
    #: What may be shown and which rows are opted out.
    policy: "Policy"

    def __post_init__(self) -> None:
        if not isinstance(self.policy, Policy):
            raise TypeError(f"Rows needs a Policy (atlas.data.load_policy), not {type(self.policy).__name__}")

    def has(self, canonical: str) -> bool:
        return canonical in self.columns

    @property
    def scored(self) -> bool:
        """True when the data has a safety score (``punsafe``) or tag (``NSFW``)."""
        return self.has("punsafe") or self.has("nsfw")

    def define_view(self, name: str, rows_from: str, extra: str = "", present: dict[str, str] | None = None) -> None:
        """Register ``name`` (and ``name_all``) like ``rows`` over another FROM clause.

        ``extra`` adds columns of that clause (e.g. ``, o.row_offset AS source_row``). Every
        relation rows are published from is made here, so opt-outs and :func:`shown_sql` hold.
        ``present``: the part of ``columns`` that clause has (one shard of several); the others
        read as NULL, while the predicate still follows all of ``columns``.
        """
        present = self.columns if present is None else present
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name}_all AS SELECT * EXCLUDE (_fast), {host_sql(present)} AS host "
            f"FROM (SELECT *, {link_sql(present)} AS url FROM ("
            f"SELECT *, {urls.FAST_SQL.format(col='url_raw')} AS _fast FROM ("
            f"SELECT {canonical_select_sql(present)}{extra} FROM {rows_from})))"
        )
        where = f" WHERE NOT {excluded_sql(self.policy)}" if self.policy.exclusions else ""
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT *, {shown_sql(self)} AS shown "
            f"FROM (SELECT *, {blocked_sql(self.policy)} AS blocked FROM ("
            f"SELECT *, {urls.DECODED_SQL.format(col='url_raw')} AS url_decoded FROM {name}_all)){where}"
        )


def open_rows(sources: list[Source], config: DataConfig, *, policy: "Policy", threads: int | None = None,
              settings: Settings | None = None) -> Rows:
    """Check the shards and register the view ``rows`` (see :class:`Rows`).

    ``policy`` says what may be shown and which rows are opted out (:func:`load_policy`, built
    once per build); there is no default, so no caller can forget the blocklist or the opt-outs.
    """
    import duckdb

    _require_policy(policy, "open_rows")
    settings = settings or Settings()
    usable, available, notes, schemas = check_sources(sources)
    con = connect(threads, settings.duckdb_memory)
    _load_httpfs(con, usable, settings)
    remote = [s for s in usable if s.remote]
    if remote:
        try:
            described = con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({parquet_list_sql(remote)}, union_by_name = true)"
            ).fetchall()
        except duckdb.Error as error:
            raise _remote_error(error, settings.http_retries) from None
        schemas.append((", ".join(s.location for s in remote), {row[0]: str(row[1]) for row in described}))
        for row in described:
            if row[0] not in available:
                available.append(row[0])
    mapping = map_columns(available, config.columns)
    notes += check_types(schemas, mapping)
    rows = Rows(con, mapping, usable, notes, settings, policy)
    _register_exclusions(con, policy)
    if not usable:
        rows.define_view("rows", "(SELECT 1) WHERE false", extra=", NULL::VARCHAR AS shard")
        return rows
    _define_rows_view(rows, usable)
    return rows


def _define_rows_view(rows: Rows, sources: list[Source], present: dict[str, str] | None = None) -> None:
    """The view ``rows`` over ``sources``; ``shard`` is the file each row comes from (a filter on
    it makes DuckDB skip the other files). ``present``: the mapped columns these shards have."""
    inner = f"read_parquet({parquet_list_sql(sources)}, union_by_name = true, filename = {quote_literal(SHARD_COLUMN)})"
    rows.define_view("rows", inner, extra=f", {quote_ident(SHARD_COLUMN)} AS shard", present=present)


def open_shard(source: Source, mapping: dict[str, str], settings: Settings | None = None,
               threads: int | None = None, *, policy: "Policy") -> Rows:
    """The view ``rows`` over one shard, read with the column ``mapping`` that :func:`open_rows`
    found over all the shards (``Rows.columns``) and the same ``policy``: a mapped column this
    shard lacks is NULL, as it is in the union of all shards, so a query gives this shard's rows
    the same values (``shown`` included) here as there. For work on one shard in another process
    or on another machine (a Ray task); the shard was checked when all of them were opened.
    """
    import duckdb

    _require_policy(policy, "open_shard")
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
    rows = Rows(con, dict(mapping), [source], [], settings, policy)
    _register_exclusions(con, policy)
    _define_rows_view(rows, [source], {c: column for c, column in mapping.items() if column in present})
    return rows


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
    rows.define_view("_atlas_rows_indexed",
                     f"{inner} AS r JOIN _atlas_shard_offsets AS o ON r._atlas_filename = o.filename",
                     extra=", o.row_offset + file_row_number AS source_row")
    return "_atlas_rows_indexed"


def canonical_select_sql(mapping: dict[str, str]) -> str:
    """Every canonical column, cast from the shard column ``mapping`` names, or a typed NULL;
    the URL as ``url_raw`` (the view adds its canonical form as ``url``)."""
    parts = []
    for canonical in CANONICAL_COLUMNS:
        name = "url_raw" if canonical == "url" else canonical
        if canonical in mapping:
            parts.append(f"TRY_CAST({quote_ident(mapping[canonical])} AS {TYPES[canonical]}) AS {name}")
        else:
            parts.append(f"NULL::{TYPES[canonical]} AS {name}")
    return ", ".join(parts)


def link_sql(mapping: dict[str, str]) -> str:
    """The canonical link of ``url_raw`` (:func:`atlas.urls.canonical`), given the column ``_fast``."""
    return urls.link_sql("url_raw", "_fast") if "url" in mapping else "NULL::VARCHAR"


def host_sql(mapping: dict[str, str]) -> str:
    """The canonical host of ``url_raw`` (:func:`atlas.urls.canonical`), or NULL when there is none."""
    return urls.host_sql("url_raw", "_fast") if "url" in mapping else "NULL::VARCHAR"


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
    import duckdb

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


# ----------------------------------------------------------------------------- what may be shown


@dataclass(frozen=True)
class Exclusion:
    """One opt-out or removal list: full image URLs, hosts/domains (with subdomains), hashes."""

    name: str
    urls: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()
    digest: str = ""


#: Bumped when the canonical URL form or the text fold changes what a policy matches.
RULES_VERSION = 2


def _require_policy(policy: object, caller: str) -> None:
    if not isinstance(policy, Policy):
        raise TypeError(f"{caller} needs a Policy (atlas.data.load_policy), not {type(policy).__name__}")


@dataclass(frozen=True)
class Policy:
    """What may be published: the one rule every stage that publishes a row goes through.

    A row may be shown when its ``punsafe`` is a number in [0, ``threshold``) and its ``NSFW``
    tag is ``UNLIKELY`` (for each of the two columns the data has), or, for data with neither,
    only when ``unscored`` is ``keyword-filter``; and in every case when neither its caption
    nor its URL has a word of the blocklist. Rows of the ``exclusions`` are dropped before
    anything, statistics included.
    """

    threshold: float = 0.5
    unscored: str = "hide"
    #: Blocklist entries folded like the search index (atlas.text.fold), words separated by one space.
    blocklist: tuple[str, ...] = ()
    #: Where the blocklist came from (a path inside the content folder, or "built-in"), for the summary.
    blocklist_source: str = ""
    blocklist_digest: str = ""
    exclusions: tuple[Exclusion, ...] = ()

    def fingerprint(self) -> dict:
        """What a stage reading rows depends on (list contents by digest, and the version of the
        rules that read URLs and words, so a change of those rebuilds what they decided)."""
        return {
            "rules": RULES_VERSION,
            "threshold": self.threshold,
            "unscored": self.unscored,
            "blocklist": self.blocklist_digest,
            "exclude": [[e.name, e.digest] for e in self.exclusions],
        }


#: The words of a text joined by single spaces (:func:`atlas.text.fold.words`, the fold of the
#: search index): what the blocklist is matched against. ASCII text folds to exactly its lower
#: case with the runs of ``[a-z0-9]`` as words, which DuckDB computes itself; other text is
#: folded by Python (the scalar function :func:`atlas.data.connect` registers), since DuckDB's
#: ``strip_accents(lower())`` leaves full-width, math and circled letters, ligatures and
#: zero-width characters as they are.
WORDS_SQL = (f"CASE WHEN strlen({{x}}) = length({{x}}) THEN trim(regexp_replace(lower({{x}}), '[^a-z0-9]+', ' ', 'g')) "
             f"ELSE {WORDS_UDF}({{x}}) END")


def blocklist_file(config: DataConfig, content_dir: Path | None) -> Path | None:
    """The blocklist in force: ``[data] blocklist`` inside the content folder, else the shipped one."""
    if not config.blocklist:
        return None
    if content_dir is not None:
        path = inside_content(content_dir, config.blocklist, "[data] blocklist")
        if path.exists() or "blocklist" in config.model_fields_set:
            return path
    from atlas.scaffold import default_content_dir

    return default_content_dir() / "blocklist.txt"


def _read_lines(path: Path, key: str) -> tuple[list[tuple[int, str]], str]:
    """Numbered non-blank, non-comment lines of a UTF-8 list file, and the file's digest."""
    from atlas.cache import file_digest

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(f"{path} does not exist", where=key,
                           hint="Create the file, or remove it from atlas.toml.") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as error:
        raise ContentError(f"cannot read {path} as UTF-8 text ({type(error).__name__})", where=key,
                           hint="Point it at a UTF-8 text file, one entry a line.") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    return [(n, line) for n, line in lines if line and not line.startswith("#")], file_digest(path)


def normalise_words(texts: list[str]) -> list[str]:
    """Blocklist entries as :data:`WORDS_SQL` gives a caption's words (:func:`atlas.text.fold.words`):
    an entry written ``ＸＸＸ`` or ``Porn`` is the same entry as ``xxx`` or ``porn``."""
    return words_many(texts)


_HOST_ENTRY = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$|^\[[0-9a-f:.]+\]$")


def canonical_hash(value: str) -> str:
    """A ``hash`` as opt-out lists and rows are compared: no surrounding space, lower case."""
    return value.strip().lower()


#: SQL of :func:`canonical_hash` over the view's ``hash`` column.
HASH_SQL = "lower(trim(hash))"


def read_exclusion(path: Path, name: str) -> Exclusion:
    """Parse an opt-out list: ``https://...`` URLs, ``hash:VALUE``, or a host/registrable domain.

    Every entry is put in the canonical form rows are matched in (:mod:`atlas.urls`,
    :func:`canonical_hash`), so ``HTTPS://Example.com:443/a.jpg#x`` and ``https://example.com/a.jpg``
    name the same image, and ``ＥＸＡＭＰＬＥ.com.`` the same host.
    """
    key = f"[data] exclude ({name})"
    lines, digest = _read_lines(path, key)
    links, hosts, hashes = [], [], []
    for number, entry in lines:
        if entry.lower().startswith("hash:"):
            value = canonical_hash(entry[5:])
            if not value:
                raise ContentError(f"line {number} of {path} is 'hash:' with no value", where=key)
            hashes.append(value)
        elif "://" in entry or entry.lower().startswith(("http:", "https:")):
            link, host = urls.canonical(entry)
            if link is None:
                raise ContentError(
                    f"line {number} of {path} is not an http(s) URL a browser can open: {entry!r}",
                    where=key, hint="Write image URLs as https://host/path/image.jpg, or name the host alone.",
                )
            links.append(link)
        else:
            host = urls.canonical_host(entry)
            if host is None or not _HOST_ENTRY.match(host):
                raise ContentError(
                    f"line {number} of {path} is neither a URL (with ://), a host or domain, nor hash:VALUE: {entry!r}",
                    where=key, hint="Write one entry a line: https://host/image.jpg, example.com or hash:123.",
                )
            hosts.append(host)
    return Exclusion(name, tuple(dict.fromkeys(links)), tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(hashes)), digest)


def load_policy(config: DataConfig, content_dir: Path | None) -> Policy:
    """The :class:`Policy` of ``[data]``, reading the blocklist and opt-out lists (inside ``content_dir``)."""
    path = blocklist_file(config, content_dir)
    words, digest, source = (), "", ""
    if path is not None:
        lines, digest = _read_lines(path, "[data] blocklist")
        normalised = normalise_words([line for _, line in lines])
        for (number, line), word in zip(lines, normalised):
            if not re.search(r"[^\d ]", word):
                raise ContentError(
                    f"line {number} of {path}, {line!r}, has no letters: it would hide every caption with "
                    f"{word!r}" if word else f"line {number} of {path}, {line!r}, has no letters or digits",
                    where="[data] blocklist", hint="Blocklist entries are words; remove or rewrite that line.")
        words = tuple(sorted(set(normalised)))
        source = path.name if content_dir is not None and path.is_relative_to(Path(content_dir).resolve()) else "built-in"
    if config.unscored == "keyword-filter" and not words:
        raise ConfigError(
            "[data] unscored = \"keyword-filter\" needs a blocklist with at least one word",
            hint="Set [data] blocklist to a word list inside the content folder (atlas ships blocklist.txt).",
        )
    exclusions = []
    if config.exclude and content_dir is None:
        raise ConfigError("[data] exclude lists need a content folder to be read from")
    for value in config.exclude:
        exclusions.append(read_exclusion(inside_content(content_dir, value, "[data] exclude"), value))
    return Policy(config.unsafe_threshold, config.unscored, words, source, digest, tuple(exclusions))


def score_sql(rows: Rows) -> str:
    """SQL true when the safety scores allow showing a row (see :class:`Policy`).

    Any ``punsafe`` outside [0, threshold) counts as unknown: negative, -inf, NaN (DuckDB sorts
    NaN above every number), +inf, NULL and values a shard stores as text that fail the cast.
    """
    conditions = []
    if rows.has("punsafe"):
        conditions.append(f"coalesce(punsafe >= 0 AND punsafe < {float(rows.policy.threshold)!r}, false)")
    if rows.has("nsfw"):
        conditions.append("coalesce(upper(nsfw) = 'UNLIKELY', false)")
    if not conditions:
        return "true" if rows.policy.unscored == "keyword-filter" else "false"
    return "(" + " AND ".join(conditions) + ")"


def words_prefilter_sql(column: str, keys: list[str]) -> str:
    """SQL that is false only where ``column`` cannot have any of ``keys`` (words of
    :data:`WORDS_SQL`) as a word; the exact test need only run where it is true.

    For ASCII text (as many bytes as characters) the words are runs of the lower case, so a key
    that is one is in the text whatever its case: a case-insensitive scan of the raw text finds
    it. For other text the fold is Python's, and DuckDB reproduces it character by character
    except for the characters of :func:`atlas.text.sql.mismatch_class` (full-width and math
    letters, ligatures, zero-width joiners, bidi marks...): a text with none of them has each
    of its words in ``strip_accents(lower(text))``; a text with one goes to the exact test.
    One RE2 automaton for all keys, one for the class, each a single scan. Measured: ~0.4 µs a
    caption for 100 keys, against ~8 µs for folding and splitting it in Python; about 0.5 % of
    the real LAION captions have a character of the class (mostly ™).
    """
    if not keys:
        return "false"
    keys = set(keys)
    # A text holding "porn" holds it whether or not it also holds "porno": the shorter key suffices.
    keys = {k for k in keys if not any(other != k and other in k for other in keys)}
    alternatives = "|".join(re.escape(k) for k in sorted(keys, key=lambda k: (-len(k), k)))
    return (f"CASE WHEN strlen({column}) = length({column}) "
            f"THEN regexp_matches({column}, {quote_literal('(?i)' + alternatives)}) "
            f"ELSE regexp_matches({column}, {quote_literal(mismatch_class())}) "
            f"OR regexp_matches(strip_accents(lower({column})), {quote_literal(alternatives)}) END")


#: What the blocklist reads: the caption, the URL as the shard wrote it (its words as a reader
#: sees them; the canonical form percent-encodes them) and, where that spells letters, the URL
#: percent-decoded (:data:`atlas.urls.DECODED_SQL`).
BLOCKLIST_COLUMNS = ("caption", "url_raw", "url_decoded")


def blocked_sql(policy: Policy) -> str:
    """SQL true when the caption or URL has a blocklist word or phrase (whole words, in order).

    Exact test: the words (:data:`WORDS_SQL`, the search index's fold), padded with a space each
    side, hold ``' entry '`` for some entry (one RE2 automaton for all of them), so an entry is
    blocked wherever the map's search would find it. Folding non-ASCII text costs ~8 µs a
    caption in Python, so it runs only on the values :func:`words_prefilter_sql` lets through
    (a few percent of LAION captions): ~1 CPU-s per million rows for both columns instead of
    ~40 (benchmarks/bench_stats.py).
    """
    if not policy.blocklist:
        return "false"
    entries = sorted(policy.blocklist, key=lambda w: (-len(w), w))
    exact = quote_literal(" (?:" + "|".join(re.escape(w) for w in entries) + ") ")
    # A phrase is in the text only when each of its words is: its longest word stands for it.
    keys = [max(w.split(" "), key=len) for w in entries]
    tests = [
        f"CASE WHEN {words_prefilter_sql(column, keys)} "
        f"THEN regexp_matches(' ' || {WORDS_SQL.format(x=column)} || ' ', {exact}) ELSE false END"
        for column in BLOCKLIST_COLUMNS
    ]
    return "coalesce(" + " OR ".join(f"({t})" for t in tests) + ", false)"


def shown_sql(rows: Rows) -> str:
    """The one predicate for "may be shown", over the columns of the ``rows`` view."""
    return f"({score_sql(rows)} AND NOT blocked)"


def _register_exclusions(con: duckdb.DuckDBPyConnection, policy: Policy) -> None:
    """The opt-out entries as a temp table ``_atlas_exclude(list, kind, value)``."""
    if not policy.exclusions:
        return
    import pyarrow as pa

    lists, kinds, values = [], [], []
    for index, exclusion in enumerate(policy.exclusions):
        for kind, entries in (("url", exclusion.urls), ("host", exclusion.hosts), ("hash", exclusion.hashes)):
            lists += [index] * len(entries)
            kinds += [kind] * len(entries)
            values += list(entries)
    con.register("_atlas_exclude_in", pa.table({"list": pa.array(lists, pa.int32()), "kind": kinds, "value": values}))
    con.execute("CREATE OR REPLACE TEMP TABLE _atlas_exclude AS SELECT * FROM _atlas_exclude_in")
    con.unregister("_atlas_exclude_in")


#: Every dot-suffix of ``host`` (``a.b.c`` -> a.b.c, b.c, c): a domain entry matches its subdomains.
_SUFFIXES = ("list_transform(generate_series(1, len(string_split(host, '.'))), "
             "lambda i: array_to_string(list_slice(string_split(host, '.'), i, -1), '.'))")


def excluded_sql(policy: Policy, index: int | None = None) -> str:
    """SQL true for rows of the opt-out lists (of list ``index`` only, when given)."""
    if not policy.exclusions:
        return "false"
    only = f" AND list = {int(index)}" if index is not None else ""
    entries = f"(SELECT value FROM _atlas_exclude WHERE kind = '{{kind}}'{only})"
    return (
        f"(coalesce(url IN {entries.format(kind='url')}, false)"
        f" OR coalesce({HASH_SQL} IN {entries.format(kind='hash')}, false)"
        f" OR coalesce(list_has_any({_SUFFIXES}, (SELECT list(value) FROM _atlas_exclude "
        f"WHERE kind = 'host'{only})), false))"
    )


def exclusion_counts(rows: Rows) -> dict[str, int]:
    """Rows each opt-out list removes (a row on two lists counts for both)."""
    exclusions = rows.policy.exclusions
    if not exclusions:
        return {}
    counts = ", ".join(f"count_if({excluded_sql(rows.policy, i)})" for i in range(len(exclusions)))
    found = rows.con.execute(f"SELECT {counts} FROM rows_all").fetchone()
    return {e.name: int(n) for e, n in zip(exclusions, found)}


def safety_notice(safety: dict) -> str:
    """One sentence for readers: what this site shows of the data, and how rows were filtered."""
    words = safety.get("blocklist_words") or 0
    blocklist = (f" Captions and links with any of the {words:,} words of a blocklist are not shown either."
                 if words else "")
    if safety.get("scored", True):
        return ("Rows scored unsafe by the data's safety classifier, or with no valid score, are never shown."
                + blocklist)
    if safety.get("unscored") == "keyword-filter":
        return (f"This data has no safety scores. Rows are shown only when their caption and link have none of the "
                f"{words:,} words of a blocklist; such a filter misses much, and nobody checked the rows by hand.")
    return ("This data has no safety scores, so no caption, link or image from it is shown: "
            "the pages give statistics only.")


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
    """The canonical link of ``value`` (:func:`atlas.urls.canonical`) if it is an http(s) URL (the
    only kind ever linked), else None. What is linked is what the rules were checked on: the
    canonical form, never the text as written."""
    link = urls.canonical_link(value)
    if link is None or not re.match(r"^https?://[^\s\"'<>\\`]+$", link):
        return None
    return link
