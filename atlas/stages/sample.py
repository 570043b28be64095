"""The ``sample`` stage: a reproducible, safe, domain-stratified sample of the rows for the map.

The sample is drawn by DuckDB over the shards in two streaming passes; only the per-host counts
and the chosen rows come into Python. Each row gets a 64-bit key ``md5(seed, url, caption)``, so the same seed draws the
same rows whatever the shard order or thread count. Rows are allocated to registrable domains
proportionally, with every domain getting at least one row (while there are fewer domains
than sample rows) and no domain more than ``max_domain_share`` of the sample; quota a domain
cannot use (it has too few rows, or hit the cap) goes to the others. Within a domain the rows
with the smallest keys are taken.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from atlas.data.rows import Rows, indexed_rows_view, open_build_rows, query_error
from atlas.data.urls import registrable_domain
from atlas.core.pipeline import Stage

log = logging.getLogger(__name__)

#: No registrable domain takes more than this share of the sample while others have rows left.
MAX_DOMAIN_SHARE = 0.1

#: Output columns of sample.parquet, in order (see docs/ARCHITECTURE.md "Stage outputs").
OUTPUT_COLUMNS = (
    "row_id", "url", "caption", "host", "domain", "similarity", "punsafe", "pwatermark",
    "aesthetic", "width", "height", "source_row",
)
_DOUBLES = ("similarity", "punsafe", "pwatermark", "aesthetic", "width", "height")


def allocate(counts: np.ndarray, size: int, max_share: float = MAX_DOMAIN_SHARE) -> np.ndarray:
    """How many rows to take from each domain, given its row count; sums to min(size, total).

    Proportional to the counts, at least one per domain (when there are fewer domains than
    ``size``), at most ``max_share * size`` per domain unless the others run out of rows.
    Deterministic: ties in rounding go to the earlier domain in ``counts`` order.
    """
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if size >= total:
        return counts.copy()
    if size <= 0 or len(counts) == 0:
        return np.zeros_like(counts)
    cap = max(1, math.ceil(max_share * size))
    if np.minimum(counts, cap).sum() < size:
        # The cap leaves rows unfilled: raise it just enough (water-filling), so the spare quota
        # goes to the biggest domains only after every other domain is exhausted.
        low, high = cap, int(counts.max())
        while low < high:
            mid = (low + high) // 2
            if np.minimum(counts, mid).sum() >= size:
                high = mid
            else:
                low = mid + 1
        cap = low
    upper = np.minimum(counts, cap).astype(np.float64)
    floor = np.minimum(upper, 1.0) if len(counts) <= size else np.zeros_like(upper)

    def filled(scale: float) -> np.ndarray:
        return np.clip(scale * counts, floor, upper)

    low, high = 0.0, float(size)  # filled(size) == upper, whose sum is >= size
    for _ in range(100):
        mid = (low + high) / 2
        if filled(mid).sum() < size:
            low = mid
        else:
            high = mid
    target = filled(high)
    quota = np.floor(target).astype(np.int64)
    quota = np.maximum(quota, floor.astype(np.int64))
    short = size - int(quota.sum())
    if short > 0:
        room = (quota < upper)
        remainder = np.where(room, target - quota, -1.0)
        order = np.lexsort((np.arange(len(counts)), -remainder))
        for index in order[:short]:
            if room[index]:
                quota[index] += 1
    elif short < 0:  # floors pushed it over: take back from the largest quotas
        for index in np.lexsort((np.arange(len(counts)), -quota))[: -short]:
            if quota[index] > floor[index]:
                quota[index] -= 1
    return quota


def _keep_thresholds(counts: np.ndarray, quota: np.ndarray) -> list[int]:
    """Per-domain cut-offs on the 64-bit key that keep a few more than ``quota`` rows in expectation.

    Keys are uniform, so keeping ``key <= p * 2**64`` keeps about ``p * count`` rows. The margin
    (five standard deviations plus a constant) makes a shortfall practically impossible; one is
    detected and fixed anyway. The result is exact: the smallest-key rows of each domain.
    """
    import numpy as np

    counts = counts.astype(np.float64)
    share = np.divide(quota, counts, out=np.zeros_like(counts), where=counts > 0)
    margin = 5 * np.sqrt(share * (1 - share) / np.maximum(counts, 1)) + 16 / np.maximum(counts, 1)
    keep = np.minimum(share + margin, 1.0)
    keep[quota == 0] = 0.0
    top = 2**64 - 1
    return [top if k >= 1.0 else min(int(k * 2.0**64), top) for k in keep.tolist()]


def draw_sample(rows: Rows, size: int, seed: int, max_domain_share: float = MAX_DOMAIN_SHARE) -> pa.Table:
    """Draw up to ``size`` captioned rows that may be shown, stratified by registrable domain.

    Only rows of the ``shown`` column of ``rows`` (:func:`atlas.data.policy.shown_sql`) are drawn.

    Two streaming passes over the shards, so memory stays small whatever their size: per-host
    counts (to allocate each domain's quota), then the rows under each domain's key cut-off,
    ranked. Returns a table with the columns of ``OUTPUT_COLUMNS``; ``row_id`` is 0..N-1 in
    file order, which is the order of the sampling key (so row order is reproducible too).
    """
    import duckdb
    import numpy as np
    import pyarrow as pa

    con = rows.con
    relation = None
    try:
        relation = indexed_rows_view(rows)
    except (duckdb.Error, OSError) as error:  # fall back to the plain view; no source_row
        log.info("cannot index shard rows (%s); sample.source_row will be NULL", error)
    source_row = "source_row" if relation else "NULL::BIGINT AS source_row"
    relation = relation or "rows"
    where = "caption IS NOT NULL AND trim(caption) <> '' AND shown"
    key = f"md5_number_upper(concat_ws(chr(31), {int(seed)}::VARCHAR, coalesce(url, ''), caption))"
    try:
        host_counts = con.execute(
            f"SELECT coalesce(host, '') AS host, count(*) FROM {relation} WHERE {where} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    except duckdb.Error as error:
        raise query_error(error, rows) from None
    hosts = [h for h, _ in host_counts]
    host_domain = [registrable_domain(h) if h else "" for h in hosts]
    totals: dict[str, int] = {}
    for domain, (_, n) in zip(host_domain, host_counts):
        totals[domain] = totals.get(domain, 0) + n
    domains = sorted(totals, key=lambda d: (-totals[d], d))
    counts = np.array([totals[d] for d in domains], dtype=np.int64)
    population = int(counts.sum())
    quota = allocate(counts, size, max_domain_share)
    cutoffs = _keep_thresholds(counts, quota)
    index = {d: i for i, d in enumerate(domains)}
    quota_of = {d: int(q) for d, q in zip(domains, quota)}

    def select_kept(cut: dict[str, int]) -> None:
        con.register("_atlas_host_cut", pa.table({
            "host": pa.array(hosts, pa.string()),
            "domain": pa.array(host_domain, pa.string()),
            "cut": pa.array([cut[d] for d in host_domain], pa.uint64()),
        }))
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _atlas_kept AS
                SELECT r.*, t.domain FROM (
                    SELECT url, caption, coalesce(host, '') AS host, similarity, punsafe, pwatermark,
                           aesthetic, width, height, {source_row}, {key} AS _key
                    FROM {relation} WHERE {where}) AS r
                JOIN _atlas_host_cut AS t USING (host)
                WHERE r._key <= t.cut"""
            )
        except duckdb.Error as error:
            raise query_error(error, rows) from None

    cut = {d: int(cutoffs[index[d]]) for d in domains}
    select_kept(cut)
    kept = dict(con.execute("SELECT domain, count(*) FROM _atlas_kept GROUP BY domain").fetchall())
    short = [d for d in domains if kept.get(d, 0) < quota_of[d]]
    if short:  # astronomically rare with the margin; keep every row of those domains and redo
        log.info("sample: widening the cut-off of %d domain(s)", len(short))
        for d in short:
            cut[d] = 2**64 - 1
        select_kept(cut)
    con.register("_atlas_quota", pa.table({
        "domain": pa.array(domains, pa.string()),
        "quota": pa.array(quota, pa.int64()),
    }))
    doubles = ", ".join(f"{c}::DOUBLE AS {c}" for c in _DOUBLES)
    order = "_key, url, caption, similarity, punsafe, source_row"
    table = con.sql(
        f"""WITH ranked AS (
                SELECT k.*, row_number() OVER (PARTITION BY domain ORDER BY {order}) AS _rank
                FROM _atlas_kept AS k)
            SELECT (row_number() OVER (ORDER BY {order}) - 1)::BIGINT AS row_id,
                   url, caption, nullif(host, '') AS host, nullif(domain, '') AS domain, {doubles},
                   source_row::BIGINT AS source_row
            FROM ranked JOIN _atlas_quota USING (domain)
            WHERE _rank <= quota
            ORDER BY row_id"""
    ).to_arrow_table()
    con.execute("DROP TABLE IF EXISTS _atlas_kept")
    table = table.select(list(OUTPUT_COLUMNS))
    table = table.replace_schema_metadata({"atlas.population": str(population)})
    return table


@dataclass
class Sample:
    """What the sample stage wrote: one parquet file with :data:`OUTPUT_COLUMNS`."""

    path: Path
    rows: int

    def table(self, columns: list[str] | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self.path, columns=columns)

    def rows_by_id(self, row_ids, columns: tuple[str, ...] = ("caption", "domain")) -> dict[int, dict]:
        """``{row_id: {column: value}}`` of the given rows (the neighbours a stage publishes)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self.table(["row_id", *columns])
        wanted = pa.array(sorted({int(i) for i in row_ids}), type=table["row_id"].type)
        return {int(r["row_id"]): r for r in table.filter(pc.is_in(table["row_id"], value_set=wanted)).to_pylist()}


def read(folder: Path) -> Sample:
    """The sample stage's output in ``folder``."""
    import pyarrow.parquet as pq

    path = Path(folder) / "sample.parquet"
    return Sample(path, pq.ParquetFile(path).metadata.num_rows)


def rows_digest(folder: Path) -> str:
    """What the sample holds, for portable fingerprints: a digest of its rows (id, url, caption),
    stable across pyarrow versions and machines."""
    import hashlib
    import json

    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    handle = pq.ParquetFile(read(folder).path)
    columns = [c for c in ("row_id", "url", "caption") if c in handle.schema_arrow.names]
    for batch in handle.iter_batches(columns=columns, batch_size=65536):
        for row in zip(*(batch.column(c).to_pylist() for c in columns)):
            digest.update(json.dumps(row, ensure_ascii=True).encode("ascii"))
            digest.update(b"\n")
    return "rows:" + digest.hexdigest()


def _inputs(ctx) -> dict:
    return {
        "shards": ctx.sources_fingerprint(),
        "sample": ctx.config.sample,
        "columns": ctx.config.data.columns,
        "policy": ctx.policy.fingerprint(),
        "max_domain_share": MAX_DOMAIN_SHARE,
    }


def _run(ctx, folder: Path) -> dict:
    import pyarrow.parquet as pq

    rows = open_build_rows(ctx)
    try:
        table = draw_sample(rows, ctx.config.sample.size, ctx.config.sample.seed)
    finally:
        rows.con.close()
    population = int(table.schema.metadata[b"atlas.population"])
    pq.write_table(table.replace_schema_metadata(None), folder / "sample.parquet")
    if table.num_rows == 0 and rows.scored:
        ctx.reporter.warn("data", "the sample is empty: no rows with a caption may be shown (safety scores, blocklist)")
    domains = len(set(table.column("domain").to_pylist()))
    return {"rows": table.num_rows, "population": population, "domains": domains}


STAGE = Stage(
    "sample",
    "3",  # 3: the blocklist folds like the search index (atlas.text.fold): cached samples may hold blocked rows
    inputs=_inputs,
    run=_run,
    after=("demo",),
    description="draw a reproducible, safe, domain-stratified sample of the rows",
    digest=rows_digest,
)
