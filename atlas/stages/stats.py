"""Statistics stage: one streaming DuckDB pass over the shards for hosts and histograms, one for
artist mentions, one for example captions. Nothing is loaded into Python but aggregates.

:func:`compute_stats` is the plain function (rows + data config -> dict); ``STAGE`` wraps it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import duckdb

from atlas.config import DataConfig, content_path
from atlas.data import (
    HOST_SQL,
    Rows,
    open_rows,
    query_error,
    quote_literal,
    registrable_domain,
    safe_condition,
    safe_http_url,
)
from atlas.errors import ContentError
from atlas.pipeline import BuildContext, Stage
from atlas.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Histogram:
    """Equal-width bins from ``lo`` to ``hi``; values at or over ``hi`` fall in the last bin."""

    column: str
    label: str
    lo: float
    hi: float
    step: float
    #: (value, label) of published cut-offs drawn on the chart; shares are computed for each.
    thresholds: tuple[tuple[float, str], ...] = ()
    #: SQL giving the value from the view ``rows`` (defaults to the column).
    expr: str | None = None
    unit: str = ""

    @property
    def bins(self) -> int:
        return int(round((self.hi - self.lo) / self.step))

    def edges(self) -> list[float]:
        return [round(self.lo + i * self.step, 10) for i in range(self.bins + 1)]

    @property
    def value_sql(self) -> str:
        return f"CAST({self.expr or self.column} AS DOUBLE)"

    def valid_sql(self) -> str:
        """Missing, NaN, infinite and negative values are invalid (DuckDB sorts NaN above all)."""
        value = self.value_sql
        return f"({value} IS NOT NULL AND NOT isnan({value}) AND NOT isinf({value}) AND {value} >= 0)"

    def bin_sql(self) -> str:
        value = self.value_sql
        # The 1e-9 keeps a value sitting on an edge (0.29 / 0.01 = 28.999...) in its own bin.
        return (
            f"CASE WHEN NOT {self.valid_sql()} THEN -1 "
            # Clamp while still a DOUBLE: a value like 1e300 must land in the last bin, not overflow.
            f"ELSE CAST(least(greatest(floor(({value} - {self.lo!r}) / {self.step!r} + 1e-9), 0), "
            f"{self.bins - 1}) AS INTEGER) END"
        )


HISTOGRAMS: tuple[Histogram, ...] = (
    Histogram(
        "similarity",
        "CLIP image-text similarity",
        0.0,
        0.6,
        0.01,
        ((0.26, "multilingual cut 0.26"), (0.28, "English cut 0.28"), (0.3, "LAION-400M cut 0.30")),
    ),
    Histogram("punsafe", "Probability unsafe (punsafe)", 0.0, 1.0, 0.02, ((0.5, "unsafe ≥ 0.5"),)),
    Histogram("pwatermark", "Probability watermarked", 0.0, 1.0, 0.02, ((0.8, "watermarked ≥ 0.8"),)),
    Histogram(
        "aesthetic", "Aesthetic score", 0.0, 10.0, 0.25, ((5.0, "SD v1 subset ≥ 5"), (6.0, "6+ subset"))
    ),
    Histogram("width", "Image width", 0, 2048, 64, ((256, "256 px"), (512, "512 px"), (1024, "1024 px")), unit="px"),
    Histogram("height", "Image height", 0, 2048, 64, ((256, "256 px"), (512, "512 px"), (1024, "1024 px")), unit="px"),
    Histogram(
        "caption_length",
        "Caption length",
        0,
        400,
        8,
        ((5, "dropped under 5"),),
        expr="length(caption)",
        unit="characters",
    ),
)

CATEGORIES = ("nsfw", "license", "language")
EXAMPLES = 240


def _present(rows: Rows) -> list[Histogram]:
    return [h for h in HISTOGRAMS if rows.has("caption" if h.column == "caption_length" else h.column)]


#: The part of a URL its host is taken from: everything before the first ``/`` after the first
#: ``//`` (scheme, user-info, host, port). :data:`atlas.data.HOST_SQL` never looks past it, so
#: grouping rows by this cheap prefix and applying the host expression to the distinct prefixes
#: afterwards gives the same host counts as grouping by ``host``, with the costly host regexes run
#: once per distinct prefix instead of once per row. NULL exactly where the URL is NULL.
AUTHORITY_SQL = "regexp_extract(url, '^[^/]*//[^/]*')"


def _scan(rows: Rows, threshold: float) -> dict:
    """The one pass: host counts, every histogram, categories, threshold shares, row count.

    In ``GROUPING SETS`` every aggregate is computed for every set, so the threshold flags are not
    summed: they are packed into one small key (bit i: flag i) counted as one more set, and the
    counts per flag are added up here.
    """
    hists = _present(rows)
    cats = [c for c in CATEGORIES if rows.has(c)]
    keys = ["authority"] + [f"b_{h.column}" for h in hists] + [f"c_{c}" for c in cats] + ["flags"]
    over = []
    for h in hists:
        for value, _ in h.thresholds:
            over.append((h, value, f"o_{h.column}_{len(over)}"))
    authority = AUTHORITY_SQL if rows.has("url") else "NULL::VARCHAR"
    select = [f"{authority} AS authority"] + [f"{h.bin_sql()} AS b_{h.column}" for h in hists]
    select += [f"coalesce({c}, '(missing)') AS c_{c}" for c in cats]
    flags = [f"coalesce({h.valid_sql()} AND {h.value_sql} >= {value!r}, false)" for h, value, _ in over]
    # Counted as unsafe: at or over the threshold. NaN is unknown, not unsafe (it is never shown either).
    flags.append(
        f"coalesce(NOT isnan(punsafe) AND punsafe >= {float(threshold)!r}, false)" if rows.has("punsafe") else "false"
    )
    select.append(" + ".join(f"({flag})::INTEGER * {1 << i}" for i, flag in enumerate(flags)) + " AS flags")
    sets = ", ".join(f"({k})" for k in keys) + ", ()"
    groupings = ", ".join(f"grouping({k})" for k in keys)
    sql = (
        f"WITH t AS (SELECT {', '.join(select)} FROM rows) "
        f"SELECT {groupings}, {', '.join(keys)}, {HOST_SQL.format(col='authority')} AS authority_host, count(*) "
        f"FROM t GROUP BY GROUPING SETS ({sets})"
    )
    result = rows.con.execute(sql).fetchall()
    n_keys = len(keys)
    hosts: dict[str, int] = {}
    bins = {h.column: [0] * h.bins for h in hists}
    invalid = {h.column: 0 for h in hists}
    categories: dict[str, dict[str, int]] = {c: {} for c in cats}
    total = {"rows": 0, "over": [0] * len(over), "unsafe": 0, "bad_urls": 0}
    for record in result:
        flags_set = record[:n_keys]
        values = record[n_keys : 2 * n_keys]
        host, count = record[2 * n_keys], record[2 * n_keys + 1]
        if all(flags_set):  # the () set: grand total
            total["rows"] = count
            continue
        which = flags_set.index(0)
        key, value = keys[which], values[which]
        if key == "authority":  # several prefixes (www., ports, case) can share a host
            if host is not None:
                hosts[host] = hosts.get(host, 0) + count
            elif value is not None:  # a URL without a host
                total["bad_urls"] += count
        elif key == "flags":
            for i in range(len(over)):
                if value >> i & 1:
                    total["over"][i] += count
            if value >> len(over) & 1:
                total["unsafe"] += count
        elif key.startswith("b_"):
            column = key[2:]
            if value == -1:
                invalid[column] += count
            else:
                bins[column][value] += count
        else:
            categories[key[2:]][value] = count
    return {
        "hists": hists,
        "hosts": hosts,
        "bins": bins,
        "invalid": invalid,
        "categories": categories,
        "total": total,
        "over": over,
    }


def _ranked(counts: dict[str, int], key: str) -> list[dict]:
    return [{key: name, "count": n} for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def read_artists(path: Path) -> list[str]:
    """One name a line; blank lines and ``#`` comments skipped, duplicates dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(
            f"artist list {path} does not exist",
            where="[data] artists",
            hint="Point [data] artists at a text file with one name a line, or set it to \"\" to skip artists.",
        ) from None
    except UnicodeDecodeError:
        raise ContentError(f"artist list {path} is not UTF-8 text", where="[data] artists") from None
    names = [line.strip() for line in text.splitlines()]
    return list(dict.fromkeys(n for n in names if n and not n.startswith("#")))


#: Lower case, every run of non-letters/digits becomes one space: whole-word matching on tokens.
#: (The regex leaves single spaces alone, which are most separators, and replaces only the runs
#: that contain something else or several spaces: the same result as replacing every run, at
#: half the cost, since DuckDB's global replace pays per match.)
_NORMALISE = "trim(regexp_replace(lower({x}), '[^\\p{{L}}\\p{{N}}]*[^\\p{{L}}\\p{{N}} ][^\\p{{L}}\\p{{N}}]*| {{2,}}', ' ', 'g'))"


def count_artists(rows: Rows, names: list[str]) -> list[dict]:
    """Captions mentioning each name (case-insensitive, whole words), in one DuckDB pass.

    Captions and names are normalised to space-separated words. Each name has a key: its
    longest word. The distinct words of each caption are hash-joined with the keys (cost grows
    with caption words, not with the number of names), and only the few captions holding a key
    are checked for the whole name with a plain substring test on the normalised text
    (``' w1 w2 '`` in ``' caption words '`` is exactly "these words in a row"). A caption
    mentioning a name twice counts once.
    """
    if not names or not rows.has("caption"):
        return [{"name": n, "count": 0} for n in names]
    con = rows.con
    import pyarrow as pa

    con.register("artist_names", pa.table({"name": pa.array(names, pa.string())}))
    longest = "list_reduce(string_split(norm, ' '), lambda a, b: CASE WHEN length(b) > length(a) THEN b ELSE a END)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE artist_norm AS SELECT DISTINCT name, norm, {longest} AS key "
        f"FROM (SELECT name, {_NORMALISE.format(x='name')} AS norm FROM artist_names) WHERE norm <> ''"
    )
    sql = f"""
        WITH captions AS (
            SELECT {_NORMALISE.format(x='caption')} AS norm FROM rows WHERE caption IS NOT NULL
        ), words AS (
            SELECT norm, unnest(list_distinct(string_split(norm, ' '))) AS word FROM captions
        ), hits AS (
            SELECT a.name, count(*) AS c FROM words w JOIN artist_norm a ON a.key = w.word
            WHERE contains(' ' || w.norm || ' ', ' ' || a.norm || ' ')
            GROUP BY a.name
        )
        SELECT a.name, coalesce(h.c, 0) FROM artist_norm a LEFT JOIN hits h ON h.name = a.name
    """
    counts = dict(con.execute(sql).fetchall())
    return [{"name": n, "count": int(counts.get(n, 0))} for n in sorted(names, key=lambda n: (-counts.get(n, 0), n))]


def _examples(rows: Rows, threshold: float, seed: int) -> dict:
    """Deterministic example captions of safe rows (ordering by a seeded hash, thread-proof).

    One pass: ``min_by(..., n)`` keeps the n rows with the smallest hash (in that order) for both
    lists; hosts are computed for the picked rows only. A caption counts as blank when it has
    nothing but space characters (Unicode Zs, what ``trim`` removes): the regex test finds that
    without building the trimmed copy of every caption.
    """
    if not rows.has("caption"):
        return {"captions": [], "html": []}
    safe = safe_condition(rows, threshold)
    url = "url" if rows.has("url") else "NULL::VARCHAR"
    key = f"hash(coalesce(caption, '') || coalesce({url}, '') || {quote_literal(str(seed))})"
    picked, html = rows.con.execute(
        f"""
        SELECT min_by(struct_pack(url, caption), k, {EXAMPLES}),
               min_by(struct_pack(url, caption), k, 24) FILTER (WHERE regexp_matches(caption, '<[a-zA-Z/!][^>]*>'))
        FROM (
            SELECT {url} AS url, caption, {key} AS k FROM rows
            WHERE caption IS NOT NULL AND regexp_matches(caption, '[^\\p{{Zs}}]') AND ({safe})
        )
        """
    ).fetchone()
    picked, html = picked or [], html or []
    urls = sorted({item["url"] for item in picked + html if item["url"] is not None})
    hosts = dict(
        rows.con.execute(
            f"SELECT url, {HOST_SQL.format(col='url')} FROM (SELECT unnest(?::VARCHAR[]) AS url)", [urls]
        ).fetchall()
    ) if urls else {}

    def shape(items):
        return [
            {"url": safe_http_url(item["url"]), "caption": item["caption"], "host": hosts.get(item["url"])}
            for item in items
        ]

    return {"captions": shape(picked), "html": shape(html)}


def compute_stats(rows: Rows, config: DataConfig, artists: list[str] | None = None) -> tuple[dict, dict]:
    """(stats, examples) for the rows; ``stats`` is what ``data/stats.json`` publishes."""
    try:
        scan = _scan(rows, config.unsafe_threshold)
        artist_counts = count_artists(rows, artists or [])
        examples = _examples(rows, config.unsafe_threshold, config.seed)
    except duckdb.Error as error:
        raise query_error(error, rows) from None
    total = scan["total"]
    domains: dict[str, int] = {}
    for host, n in scan["hosts"].items():  # hosts -> registrable domains after aggregation
        domain = registrable_domain(host)
        domains[domain] = domains.get(domain, 0) + n
    histograms = {}
    shares = {}
    over_iter = iter(zip(scan["over"], total["over"]))
    for h in scan["hists"]:
        histograms[h.column] = {
            "label": h.label,
            "unit": h.unit,
            "edges": h.edges(),
            "counts": scan["bins"][h.column],
            "invalid": scan["invalid"][h.column],
            "overflow_in_last_bin": True,
            "thresholds": [{"value": v, "label": label} for v, label in h.thresholds],
        }
        valid = total["rows"] - scan["invalid"][h.column]
        for _ in h.thresholds:
            (hist, value, _name), count = next(over_iter)
            shares.setdefault(h.column, []).append(
                {
                    "threshold": value,
                    "count": count,
                    "share": (count / valid) if valid else None,
                }
            )
    stats = {
        "rows": total["rows"],
        "columns": rows.columns,
        "distinct_hosts": len(scan["hosts"]),
        "distinct_domains": len(domains),
        "invalid_urls": total["bad_urls"],
        "domains": _ranked(domains, "domain"),
        "hosts": _ranked(scan["hosts"], "host"),
        "artists": artist_counts,
        "artists_listed": len(artists or []),
        "histograms": histograms,
        "shares": shares,
        "categories": {c: _ranked(v, "value") for c, v in scan["categories"].items()},
        "safety": {
            "threshold": config.unsafe_threshold,
            "unsafe_rows": total["unsafe"],
            "scored": rows.has("punsafe") or rows.has("nsfw"),
        },
    }
    _check_finite(stats)
    return stats, examples


def _check_finite(value) -> None:
    """JSON has no NaN: a non-finite number here would be a bug, not user data."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("non-finite number in stats")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v)
    elif isinstance(value, list):
        for v in value:
            _check_finite(v)


def _csv_cell(value):
    """Guard spreadsheet users against formula injection from data (=, +, -, @ first)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


#: stats.json lists at most this many hosts/domains/artists (the CSV downloads list all of them),
#: so that the published JSON stays small for a billion-row release with millions of hosts.
JSON_LIST_LIMIT = 10_000


def stats_json(stats: dict) -> str:
    """The published ``stats.json`` text: long ranked lists cut to :data:`JSON_LIST_LIMIT`."""
    published = dict(stats)
    for key in ("hosts", "domains", "artists"):
        if len(stats[key]) > JSON_LIST_LIMIT:
            published[key] = stats[key][:JSON_LIST_LIMIT]
            published[f"{key}_truncated"] = True
    return json.dumps(published, ensure_ascii=False, indent=1)


def write_stats(stats: dict, examples: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stats.json").write_text(stats_json(stats), encoding="utf-8")
    (folder / "examples.json").write_text(json.dumps(examples, ensure_ascii=False), encoding="utf-8")
    tables = {"domains.csv": ("domain", stats["domains"]), "hosts.csv": ("host", stats["hosts"])}
    tables["artists.csv"] = ("name", stats["artists"])
    for name, (key, items) in tables.items():
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([key, "count"])
            for item in items:
                writer.writerow([_csv_cell(item[key]), item["count"]])
    with open(folder / "histograms.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["column", "bin_start", "bin_end", "count"])
        for column, h in stats["histograms"].items():
            for i, count in enumerate(h["counts"]):
                writer.writerow([column, h["edges"][i], h["edges"][i + 1], count])
            writer.writerow([column, "invalid", "", h["invalid"]])


#: Files of the stage's output the site publishes under ``data/`` (for readers to download).
PUBLISHED = ("stats.json", "domains.csv", "hosts.csv", "artists.csv", "histograms.csv")


@dataclass
class Stats:
    """What the statistics stage wrote: the published statistics, example rows and downloads."""

    #: The ``stats.json`` object (empty for a build without the stage).
    stats: dict
    #: Example rows per statistic (``examples.json``).
    examples: dict
    #: Files the site publishes under ``data/``, by name (only those present).
    downloads: dict[str, Path]


def read(folder: Path | None) -> Stats:
    """The statistics stage's output in ``folder``; empty statistics when there is none."""
    if folder is None:
        return Stats({}, {}, {})
    folder = Path(folder)
    return Stats(
        json.loads((folder / "stats.json").read_text(encoding="utf-8")),
        json.loads((folder / "examples.json").read_text(encoding="utf-8")),
        {name: folder / name for name in PUBLISHED if (folder / name).exists()},
    )


def artists_path(config: DataConfig, content_dir: Path) -> Path | None:
    """``[data] artists``, relative to the content folder; None when no list is configured."""
    if not config.artists:
        return None
    return content_path(config.artists, content_dir)


def run_stats(sources: list, config: DataConfig, content_dir: Path, reporter,
              settings: Settings | None = None) -> tuple[dict, dict, Rows]:
    """The whole stage as a plain function: read the artist list, scan the shards.

    Returns (stats, examples, rows); ``rows`` tells which shards and columns were read (its
    connection is closed). ``atlas build`` and ``atlas stats`` both call this.
    """
    path = artists_path(config, content_dir)
    names = read_artists(path) if path is not None else []
    rows = open_rows(sources, config, settings=settings)
    try:
        for note in rows.notes:
            reporter.warn("data", note)
        with reporter.progress("statistics", total=None, unit=""):
            stats, examples = compute_stats(rows, config, names)
    finally:
        rows.con.close()
    return stats, examples, rows


def _inputs(ctx: BuildContext) -> dict:
    path = artists_path(ctx.config.data, ctx.content_dir)
    artists = None
    if path is not None:
        from atlas.cache import file_digest

        artists = file_digest(path) if path.exists() else f"missing:{path}"
    return {
        "shards": ctx.sources_fingerprint(),
        "columns": ctx.config.data.columns,
        "threshold": ctx.config.data.unsafe_threshold,
        "seed": ctx.config.data.seed,
        "artists": artists,
    }


def _run(ctx: BuildContext, folder: Path) -> dict:
    stats, examples, rows = run_stats(ctx.shard_sources(), ctx.config.data, ctx.content_dir, ctx.reporter, ctx.settings)
    write_stats(stats, examples, folder)
    return {"rows": stats["rows"], "shards": len(rows.sources), "columns": sorted(rows.columns)}


STAGE = Stage("stats", "1", _inputs, _run, after=("demo",), description="DuckDB statistics over the shards")
