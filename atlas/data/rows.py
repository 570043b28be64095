"""The DuckDB view ``rows`` over the shards (:func:`open_rows`, :func:`open_shard`), with the
canonical column names of :data:`atlas.core.config.CANONICAL_COLUMNS` (absent ones are NULL),
the canonical URL and host (:mod:`atlas.data.urls`) and the policy's ``blocked`` and ``shown``;
and DuckDB's failures turned into errors naming the shard."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from atlas.core.config import CANONICAL_COLUMNS, DataConfig
from atlas.core.errors import DataError
from atlas.core.settings import HTTP_RETRIES, Settings
from atlas.data import urls
from atlas.data.policy import Policy, _require_policy, blocked_sql, excluded_sql, shown_sql
from atlas.data.sources import TYPES, Source, check_sources, check_types, map_columns
from atlas.data.sql import quote_ident, quote_literal
from atlas.text.sql import register as register_words_udf

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

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

    ``rows`` has the canonical columns, with ``url`` in its canonical form (:mod:`atlas.data.urls`:
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
            raise TypeError(f"Rows needs a Policy (atlas.data.policy.load_policy), not {type(self.policy).__name__}")

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
    """The canonical link of ``url_raw`` (:func:`atlas.data.urls.canonical`), given the column ``_fast``."""
    return urls.link_sql("url_raw", "_fast") if "url" in mapping else "NULL::VARCHAR"


def host_sql(mapping: dict[str, str]) -> str:
    """The canonical host of ``url_raw`` (:func:`atlas.data.urls.canonical`), or NULL when there is none."""
    return urls.host_sql("url_raw", "_fast") if "url" in mapping else "NULL::VARCHAR"


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


def exclusion_counts(rows: Rows) -> dict[str, int]:
    """Rows each opt-out list removes (a row on two lists counts for both)."""
    exclusions = rows.policy.exclusions
    if not exclusions:
        return {}
    counts = ", ".join(f"count_if({excluded_sql(rows.policy, i)})" for i in range(len(exclusions)))
    found = rows.con.execute(f"SELECT {counts} FROM rows_all").fetchone()
    return {e.name: int(n) for e, n in zip(exclusions, found)}


def build_sources(ctx) -> list[Source]:
    """The shards a build (an :class:`atlas.core.pipeline.BuildContext`) reads: the configured
    ones, or the demo stage's output."""
    from atlas.data.sources import resolve_sources

    if ctx.sources:
        return ctx.sources
    return resolve_sources([str(ctx.output("demo") / "*.parquet")], ctx.content_dir)


def open_build_rows(ctx, threads: int | None = None) -> Rows:
    """The view ``rows`` over a build's shards, with the build's one policy."""
    return open_rows(build_sources(ctx), ctx.config.data, threads=threads, settings=ctx.settings, policy=ctx.policy)
