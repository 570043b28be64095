"""Statistics stage: one streaming DuckDB pass over the shards for hosts and histograms, one for
artist mentions, one for example captions. Nothing is loaded into Python but aggregates.

:func:`compute_stats` is the plain function (rows + data config -> dict); ``STAGE`` wraps it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from atlas.core.config import DataConfig
from atlas.data import urls
from atlas.data.policy import Policy
from atlas.data.rows import Rows, build_sources, exclusion_counts, open_rows, open_shard, query_error
from atlas.data.sources import Source, is_glob, remote_fingerprint
from atlas.data.sql import quote_literal
from atlas.data.urls import registrable_domain, safe_http_url
from atlas.core.errors import AtlasError, ContentError
from atlas.core.pipeline import BuildContext, Stage
from atlas.core.settings import Settings
from atlas.text.published import csv_cell

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
        """Missing, NaN, infinite and negative values are invalid. (NaN is tested for by name:
        DuckDB 2.0 compares NaN read from parquet inconsistently, ``NaN < 'inf'`` true in one
        plan and false in another.)"""
        value = self.value_sql
        return f"({value} >= 0 AND NOT isnan({value}) AND NOT isinf({value}))"

    def bin_sql(self) -> str:
        """The bin of a valid value."""
        # The 1e-9 keeps a value sitting on an edge (0.29 / 0.01 = 28.999...) in its own bin.
        # Clamp while still a DOUBLE: a value like 1e300 must land in the last bin, not overflow.
        return (
            f"CAST(least(greatest(floor(({self.value_sql} - {self.lo!r}) / {self.step!r} + 1e-9), 0), "
            f"{self.bins - 1}) AS INTEGER)"
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


#: A caption is blank when it has nothing but space characters (Unicode Zs, what ``trim`` removes).
#: Nearly every caption starts with another character, which settles it without the regex.
_ZS = (32, 160, 5760, *range(8192, 8203), 8239, 8287, 12288)
_NOT_BLANK = (
    f"CASE WHEN ascii(caption) NOT IN (0, {', '.join(map(str, _ZS))}) THEN true "
    "ELSE regexp_matches(caption, '[^\\p{Zs}]') END"
)
#: Raw HTML in a caption; the cheap ``contains`` runs first so the regex sees few captions.
_HTML = "contains(caption, '<') AND regexp_matches(caption, '<[a-zA-Z/!][^>]*>')"
HTML_EXAMPLES = 24


def _in_shards(shards: list[str] | None) -> str:
    """A filter on ``rows.shard``: DuckDB then skips the other files entirely."""
    if shards is None:
        return "true"
    return f"shard IN ({', '.join(quote_literal(s) for s in shards)})" if shards else "false"


def _example_key(rows: Rows, seed: int) -> str:
    """The seeded hash that orders example candidates: the same row gets the same key in any
    shard, scan or process, so the n smallest over all shards are the n smallest of their
    shards' n smallest (what makes per-shard candidates merge exactly)."""
    url = "url" if rows.has("url") else "NULL::VARCHAR"
    return f"hash(caption, {url}, {int(seed)})"


def scan_partials(rows: Rows, config: DataConfig, shards: list[str] | None = None) -> dict[str, dict]:
    """Partial statistics of every shard (or of ``shards`` only), in one streaming pass.

    One ``GROUP BY shard`` query computes, per shard: the row count, counts by URL prefix (turned
    into hosts here), each histogram's bins (bin -1: invalid values), the counts at or over each
    published threshold, the unsafe rows, the captioned rows that may be shown and the rows the
    blocklist hides, category counts and the example-caption candidates
    (the :data:`EXAMPLES` safe rows with the smallest seeded hash, and the
    :data:`HTML_EXAMPLES` smallest among captions with HTML). Every part adds up across shards
    (:func:`merge_partials`), so a shard's partial can be cached and reused.
    """
    hists = _present(rows)
    cats = [c for c in CATEGORIES if rows.has(c)]
    threshold = float(rows.policy.threshold)
    # One projection computes each value once; the aggregates read its columns. Hosts are the
    # view's canonical ones (atlas.data.urls), the form the opt-out lists were matched on.
    inner = ["shard", "host", "url_raw IS NOT NULL AND host IS NULL AS bad_url"]
    inner += [f"{_bin_key_sql(h)} AS b_{h.column}" for h in hists]
    inner += [f"coalesce({c}, '(missing)') AS c_{c}" for c in cats]
    # Counted as unsafe: at or over the threshold. NaN is unknown, not unsafe (it is never shown either).
    inner.append(f"punsafe >= {threshold!r} AND NOT isnan(punsafe) AS unsafe" if rows.has("punsafe") else "false AS unsafe")
    outer = ["shard", "count(*)", "histogram(host)", "count(*) FILTER (WHERE bad_url)"]
    outer += [f"histogram(b_{h.column})" for h in hists]
    outer += ["count(*) FILTER (WHERE unsafe)"] + [f"histogram(c_{c})" for c in cats]
    if rows.has("caption"):
        url = "url" if rows.has("url") else "NULL::VARCHAR"
        inner += [f"{url} AS url", "caption", f"{_example_key(rows, config.seed)} AS k"]
        inner.append(f"caption IS NOT NULL AND {_NOT_BLANK} AND rows.shown AS shown")
        inner.append("rows.blocked AS blocked")
        # The safety summary's counts: captioned rows that may be shown, rows the blocklist hides.
        outer += ["count(*) FILTER (WHERE shown)", "count(*) FILTER (WHERE blocked)"]
        for n, where in ((EXAMPLES, "shown"), (HTML_EXAMPLES, f"shown AND {_HTML}")):
            # Three aggregates of plain values cost less than one of a struct. (min_by skips NULL
            # values, which would shift the lists against each other: a missing URL is ''.)
            outer += [f"{agg} FILTER (WHERE {where})" for agg in
                      (f"min(k, {n})", f"min_by(coalesce(url, ''), k, {n})", f"min_by(caption, k, {n})")]
    sql = (
        f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM rows WHERE {_in_shards(shards)}) "
        f"GROUP BY shard"
    )
    records = rows.con.execute(sql).fetchall()
    partials = {}
    for record in records:
        it = iter(record)
        shard, count, hosts, bad_urls = next(it), next(it), dict(next(it) or {}), next(it)
        part = {"rows": count, "hosts": hosts, "bad_urls": bad_urls, "bins": {}, "invalid": {}, "over": []}
        for h in hists:
            bins, over = [0] * h.bins, [0] * len(h.thresholds)
            invalid = 0
            for key, n in (next(it) or {}).items():
                if key < 0:
                    invalid += n
                    continue
                bins[key // _STRIDE] += n
                for i in range(key % _STRIDE):  # the value is at or over the first (key % stride) thresholds
                    over[i] += n
            part["bins"][h.column], part["invalid"][h.column] = bins, invalid
            part["over"] += over
        part["unsafe"] = next(it)
        part["categories"] = {c: dict(next(it) or {}) for c in cats}
        if rows.has("caption"):
            part["shown_rows"], part["blocklist_rows"] = next(it), next(it)
            for name in ("examples", "html"):
                keys, urls, captions = next(it) or [], next(it) or [], next(it) or []
                part[name] = [list(c) for c in zip(keys, urls, captions)]
        partials[shard] = part
    for shard in shards if shards is not None else [s.location for s in rows.sources]:
        partials.setdefault(shard, _empty_partial(rows))  # a shard without rows
    return partials


#: A histogram key is bin * _STRIDE + the number of the column's thresholds the value reaches,
#: so one histogram per column gives both its bins and its threshold counts.
_STRIDE = 8


def _bin_key_sql(h: Histogram) -> str:
    """``bin * _STRIDE + thresholds reached`` of a valid value, -1 for an invalid one."""
    assert len(h.thresholds) < _STRIDE and list(h.thresholds) == sorted(h.thresholds)
    reached = " + ".join(f"({h.value_sql} >= {value!r})::INTEGER" for value, _ in h.thresholds) or "0"
    return f"CASE WHEN {h.valid_sql()} THEN {h.bin_sql()} * {_STRIDE} + {reached} ELSE -1 END"


def _empty_partial(rows: Rows) -> dict:
    hists = _present(rows)
    part = {
        "rows": 0,
        "hosts": {},
        "bad_urls": 0,
        "bins": {h.column: [0] * h.bins for h in hists},
        "invalid": {h.column: 0 for h in hists},
        "over": [0] * sum(len(h.thresholds) for h in hists),
        "unsafe": 0,
        "shown_rows": 0,
        "blocklist_rows": 0,
        "categories": {c: {} for c in CATEGORIES if rows.has(c)},
    }
    if rows.has("caption"):
        part["examples"], part["html"] = [], []
    return part


def _add(total: dict, part: dict) -> None:
    for key, n in part.items():
        total[key] = total.get(key, 0) + n


def _smallest(candidates: list[list], n: int) -> list[list]:
    """The n candidates with the smallest key (ties, which only identical rows have, by text)."""
    return sorted(candidates, key=lambda c: (c[0], c[1] or "", c[2]))[:n]


def merge_partials(partials: list[dict]) -> dict:
    """Add up shards' partials: the same partial a single scan of all of them gives."""
    merged = {"rows": 0, "hosts": {}, "bad_urls": 0, "bins": {}, "invalid": {}, "over": None, "unsafe": 0,
              "shown_rows": 0, "blocklist_rows": 0, "categories": {}, "artists": {}}
    examples, html = [], []
    for part in partials:
        merged["rows"] += part["rows"]
        merged["bad_urls"] += part["bad_urls"]
        merged["unsafe"] += part["unsafe"]
        for key in ("shown_rows", "blocklist_rows"):  # 0 without a caption column
            merged[key] += part.get(key, 0)
        _add(merged["hosts"], part["hosts"])
        for column, bins in part["bins"].items():
            old = merged["bins"].get(column, [0] * len(bins))
            merged["bins"][column] = [a + b for a, b in zip(old, bins)]
            merged["invalid"][column] = merged["invalid"].get(column, 0) + part["invalid"][column]
        merged["over"] = [a + b for a, b in zip(merged["over"] or [0] * len(part["over"]), part["over"])]
        for c, counts in part["categories"].items():
            _add(merged["categories"].setdefault(c, {}), counts)
        _add(merged["artists"], part.get("artists", {}))
        examples = _smallest(examples + part.get("examples", []), EXAMPLES)
        html = _smallest(html + part.get("html", []), HTML_EXAMPLES)
    merged["examples"], merged["html"] = examples, html
    merged["over"] = merged["over"] or []
    return merged


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


#: Captions handed to Python at a time by the artist pass, and the threads searching them (the
#: compiled loop and the automaton release the GIL; at most twice as many batches are in flight).
ARTIST_BATCH = 65_536
ARTIST_THREADS = 2


class _CharFolds:
    """What each non-ASCII character becomes in :func:`atlas.text.fold.words` (the fold of the
    search index and the blocklist), one code point at a time, in ``state``: its folded code
    point, ``REMOVED`` (a mark, a zero-width joiner, a soft hyphen), ``SEPARATOR``, or, when it
    folds to several (``ﬁ``, ``½``, ``㎏``, a CJK character with a word break on each side), an
    entry of the expansion table (see :mod:`atlas.text.wordscan`). Computed by
    :func:`atlas.text.fold.character_words` for the characters the captions hold, as they
    appear (:meth:`learn`; a few hundred per million captions). :func:`_words_of` folds a
    batch, learns the characters it did not know and, only then (rarely after the first
    batches), folds it again.
    """

    def __init__(self):
        import numpy as np

        from atlas.text.wordscan import SEPARATOR

        #: (folds, known, expansions, growth): replaced as a whole, never changed in place, so a
        #: thread folding with one while another learns sees a consistent table. ``growth``:
        #: at most this many bytes are written for each byte read (room for "ﷺ", 3 bytes that
        #: fold to 18 letters).
        self.state = (np.full(0x110000, SEPARATOR, dtype=np.int32), np.zeros(0x110000, dtype=np.bool_),
                      np.zeros(0, dtype=np.int32), 2)
        self._lock = threading.Lock()  # the artist pass learns from two threads

    def learn(self, codes) -> None:
        """Make ``state`` right for the code points ``codes`` (numpy ints, repeats allowed)."""
        import numpy as np

        from atlas.text.fold import character_words
        from atlas.text.wordscan import EXPANDED, REMOVED, SEPARATOR

        with self._lock:
            table, known, expansions, growth = self.state
            codes = np.unique(codes)
            codes = codes[~known[codes]]
            if not len(codes):
                return
            table, known = table.copy(), known.copy()
            extra = []
            for code, words in zip(codes.tolist(), character_words(codes.tolist())):
                if not words:
                    table[code] = REMOVED
                    continue
                if not words.strip(" "):
                    table[code] = SEPARATOR
                elif len(words) == 1:
                    table[code] = ord(words)
                else:  # several characters: spaces in it are separators
                    table[code] = EXPANDED - (len(expansions) + len(extra))
                    extra += [len(words)] + [ord(ch) for ch in words]
                growth = max(growth, -(-len(words.encode("utf-8")) // len(chr(code).encode("utf-8"))))
            known[codes] = True
            if extra:
                expansions = np.concatenate([expansions, np.asarray(extra, dtype=np.int32)])
            self.state = (table, known, expansions, growth)


def _ascii_fold_table():
    """Byte -> byte for ASCII: letters to lower case, digits kept, every other byte to a space
    (exactly :func:`atlas.text.fold.words` for ASCII text, up to runs of spaces)."""
    import numpy as np

    table = np.full(128, 32, dtype=np.uint8)
    for byte in range(128):
        if chr(byte).isalnum():
            table[byte] = ord(chr(byte).lower())
    return table


def _name_words(names: list[str]) -> list[tuple[str, str]]:
    """(name, its folded words joined by single spaces) for the names that have words."""
    from atlas.text.fold import words_many

    return [(name, words) for name, words in zip(names, words_many(names)) if words]


def _words_of(raw, offsets, table, folds: _CharFolds):
    """(text, starts): the texts ``raw[offsets[i]:offsets[i + 1]]`` (UTF-8) folded and split into
    words separated by one space (:func:`atlas.text.wordscan.fold_words`), the i-th from ``starts[i]``."""
    import numpy as np

    from atlas.text.wordscan import fold_words

    starts = np.empty(len(offsets), dtype=np.int64)
    unknown = np.empty(len(raw) // 2 + 1, dtype=np.int64)  # a non-ASCII character has 2 bytes or more
    state = folds.state  # one consistent table for the whole batch
    text = np.empty(state[3] * len(raw) + 4, dtype=np.uint8)  # an unknown character writes one byte
    written, missing = fold_words(raw, offsets, table, *state[:3], text, starts, unknown)
    if missing:
        folds.learn(unknown[:missing])
        state = folds.state
        if len(text) < state[3] * len(raw) + 4:
            text = np.empty(state[3] * len(raw) + 4, dtype=np.uint8)
        written, missing = fold_words(raw, offsets, table, *state[:3], text, starts, unknown)
        assert not missing
    return text[:written], starts


def _mentions(raw, offsets, searcher, table, folds: _CharFolds, n_names: int):
    """``row * n_names + name`` for each (text, name) mention among the texts ``raw[offsets[i]:
    offsets[i + 1]]`` (UTF-8 bytes), each pair once.

    The texts are split into words (:func:`_words_of`) and searched in one pass by an
    Aho-Corasick automaton of all the names (overlapping matches, so "Claude Monet" also counts
    for "Monet"); a match counts when it lies inside one text with a space or the text's edge
    on both sides (whole words, like FTS5's phrase queries).
    """
    import numpy as np

    if not len(raw):
        return np.zeros(0, np.int64)
    text, starts = _words_of(raw, offsets, table, folds)
    found = searcher.find_matches_as_indexes(memoryview(text), overlapping=True)
    if not found:
        return np.zeros(0, np.int64)
    name, begin, end = np.array(found, dtype=np.int64).T
    row = np.searchsorted(starts, begin, side="right") - 1
    whole = end <= starts[row + 1]
    whole &= (begin == starts[row]) | (text[np.maximum(begin - 1, 0)] == 32)
    whole &= (end == starts[row + 1]) | (text[np.minimum(end, len(text) - 1)] == 32)
    return np.unique(row[whole] * n_names + name[whole])  # a text mentioning a name twice counts once


def _arrow_bytes(strings):
    """(UTF-8 bytes, offsets from 0) of an Arrow string array without NULLs, without copying."""
    import numpy as np
    import pyarrow as pa

    wide = pa.types.is_large_string(strings.type)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[strings.offset:strings.offset + len(strings) + 1].astype(np.int64)
    raw = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return raw, offsets - offsets[0]


def _shard_names(rows: Rows) -> list[str]:
    """The files the view ``rows`` reads (its ``shard`` values): the sources, with globs (remote
    ones stay patterns, see :func:`atlas.data.sources.resolve_sources`) listed by DuckDB's ``glob``, the
    listing ``read_parquet`` expands them with."""
    names = []
    for source in rows.sources:
        if is_glob(source.location):
            names += [f for (f,) in rows.con.execute("SELECT file FROM glob(?) ORDER BY file", [source.location]).fetchall()]
        else:
            names.append(source.location)
    return list(dict.fromkeys(names))


def count_artists(rows: Rows, names: list[str], shards: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Captions mentioning each name, per shard: {shard: {name: count}} (names with a mention).

    Matching is on whole words of the fold the search index and the blocklist use
    (:mod:`atlas.text.fold`: compatibility forms, case and accents folded, zero-width
    characters removed): "Jakub Rozalski", "JAKUB RÓŻALSKI" and "Ｊａｋｕｂ Ｒｏｚａｌｓｋｉ" all
    mention "Jakub Różalski"; "Monetary" does not mention "Monet". A caption mentioning a name twice
    counts once. DuckDB streams each shard's captions to :func:`_mentions`, which splits a
    batch into words with a compiled loop and finds every name in it with one Aho-Corasick
    automaton (``ahocorasick_rs``; an RE2 alternation of thousands of names outgrows RE2's
    memory budget, and splitting every caption into words in SQL costs ~3x more:
    benchmarks/bench_artists.py). Two threads search at once (the loop and the automaton
    release the GIL).
    """
    if not names or not rows.has("caption"):
        return {}
    from concurrent.futures import ThreadPoolExecutor

    import ahocorasick_rs
    import numpy as np

    named = _name_words(names)
    if not named:
        return {}
    patterns = [words.encode("utf-8") for _, words in named]
    searcher = ahocorasick_rs.BytesAhoCorasick(patterns, implementation=ahocorasick_rs.Implementation.DFA)
    table, folds = _ascii_fold_table(), _CharFolds()
    counts: dict[str, dict[str, int]] = {}

    def work(batch):
        captions = batch.column(0)
        if captions.null_count:
            raise ValueError("NULL captions in the artist pass")  # the query filters them out
        return _mentions(*_arrow_bytes(captions), searcher, table, folds, len(named))

    # One query per shard: no shard column to carry, and DuckDB reads only that file.
    for shard in shards if shards is not None else _shard_names(rows):
        reader = rows.con.sql(f"SELECT caption FROM rows WHERE caption IS NOT NULL AND shard = {quote_literal(shard)}"
                              ).to_arrow_reader(ARTIST_BATCH)
        found = []
        with ThreadPoolExecutor(max_workers=ARTIST_THREADS) as pool:
            pending = []
            for batch in reader:
                pending.append(pool.submit(work, batch))
                if len(pending) >= 2 * ARTIST_THREADS:  # a bounded window: memory stays flat however many rows
                    found.append(pending.pop(0).result() % len(named))
            found += [future.result() % len(named) for future in pending]
        which, n = np.unique(np.concatenate(found) if found else np.zeros(0, np.int64), return_counts=True)
        if len(which):
            counts[shard] = {named[i][0]: c for i, c in zip(which.tolist(), n.tolist())}
    return counts


def _shape_examples(rows: Rows, merged: dict) -> dict:
    """The picked candidates as published: only plain http(s) URLs linked (their canonical form,
    which the view's ``url`` already is); hosts for the picked rows."""
    picked, html = merged.get("examples", []), merged.get("html", [])

    def shape(items):
        return [{"url": safe_http_url(url), "caption": caption, "host": urls.canonical(url)[1] if url else None}
                for _, url, caption in items]

    return {"captions": shape(picked), "html": shape(html)}


def compute_partials(rows: Rows, config: DataConfig, artists: list[str], shards: list[str] | None = None) -> dict[str, dict]:
    """Every partial of :func:`scan_partials` plus the artist mention counts of each shard."""
    import duckdb

    try:
        partials = scan_partials(rows, config, shards)
        for shard, counts in count_artists(rows, artists, shards).items():
            partials[shard]["artists"] = counts
    except duckdb.Error as error:
        raise query_error(error, rows) from None
    return partials


def shard_partials(source: Source, columns: dict[str, str], config: DataConfig, artists: list[str],
                   settings: Settings, threads: int = 1, *, policy: Policy) -> dict[str, dict]:
    """:func:`compute_partials` of one shard (of each file of a remote glob) in a DuckDB of its own
    (:func:`atlas.data.rows.open_shard`, ``threads`` threads): the same SQL, so the same partial as the
    local pass. ``columns`` is the mapping found over all the shards (``Rows.columns``). Plain,
    picklable values in and out: this is the body of a Ray task."""
    rows = open_shard(source, columns, settings, threads=threads, policy=policy)
    try:
        return compute_partials(rows, config, artists)
    finally:
        rows.con.close()


def ray_partials(rows: Rows, config: DataConfig, artists: list[str], shards: list[str] | None = None) -> dict[str, dict]:
    """:func:`compute_partials` fanned out on Ray: one task per shard running
    :func:`shard_partials`, on the cluster named by ``RAY_ADDRESS`` or a local Ray started for
    this call (:func:`atlas.core.raycluster.ray_session`). A task takes one CPU, or the cluster's CPUs
    shared out when there are fewer shards than CPUs (at most one node's), and runs as many
    DuckDB threads. A task's AtlasError (an unreadable shard) is raised here as it is."""
    from atlas.core.raycluster import ray_session

    wanted = None if shards is None else set(shards)
    sources = [s for s in rows.sources if wanted is None or s.location in wanted]
    if not sources:
        return {}
    with ray_session(rows.settings, "[data] engine") as ray:
        cpus = _cpus_per_task(ray, len(sources))
        task = ray.remote(num_cpus=cpus)(shard_partials)
        refs = [task.remote(source, rows.columns, config, artists, rows.settings, cpus, policy=rows.policy)
                for source in sources]
        try:
            results = ray.get(refs)
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, AtlasError):
                raise error.cause from None
            raise
    partials: dict[str, dict] = {}
    for result in results:
        partials.update(result)
    return partials


def _cpus_per_task(ray, tasks: int) -> int:
    """The cluster's CPUs shared out over ``tasks``, at least 1, at most the largest node's."""
    largest = max((int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")), default=1)
    return max(1, min(largest, int(ray.cluster_resources().get("CPU", 1)) // max(1, tasks)))


#: Cache folder (see :class:`atlas.core.cache.Cache`) of the per-shard partials; bump the version
#: when a partial's meaning changes.
PARTIALS = "stats-shard"
PARTIAL_VERSION = "5"  # 5: hosts from the canonical URL form; 4: artists and the blocklist fold like the search index


def shard_fingerprint(source: Source, settings: Settings | None = None) -> dict | None:
    """What identifies a shard's content: size and modification time of a local file; ETag,
    Last-Modified and size of a remote one (:func:`atlas.data.sources.remote_fingerprint`, asked
    with ``settings``' Hugging Face token). None when there is nothing to go by (a remote glob, a
    store without HTTP HEAD): such a shard's partial is never cached, and the stage itself is keyed
    by the shard's name only."""
    return remote_fingerprint(source.location, settings=settings) if source.remote else source.fingerprint()


def partial_key(fingerprint_of_shard: dict, rows: Rows, config: DataConfig, artists: list[str]) -> str:
    """Cache key of a shard's partial: the shard's fingerprint and everything the scan reads."""
    import duckdb

    from atlas.core.cache import fingerprint

    return fingerprint({
        "version": PARTIAL_VERSION,
        "duckdb": duckdb.__version__,  # the example key is DuckDB's hash()
        "shard": fingerprint_of_shard,
        "columns": rows.columns,
        "policy": rows.policy.fingerprint(),
        "seed": config.seed,
        "artists": artists,
    })


def cached_partials(rows: Rows, config: DataConfig, artists: list[str], cache) -> tuple[dict[str, dict], list[str]]:
    """Every shard's partial, from ``cache`` where the shard's fingerprint is known and unchanged;
    only the other shards are scanned (one pass over them), and their partials stored.

    Returns ({shard: partial} in shard order, the shards scanned). Without a cache, or with a
    remote glob (its files are known only once DuckDB lists them), every shard is scanned. With
    ``[data] engine = "ray"`` the scans are Ray tasks (:func:`ray_partials`).
    """
    scan = ray_partials if config.engine == "ray" else compute_partials
    if cache is None or any(s.remote and is_glob(s.location) for s in rows.sources):
        partials = scan(rows, config, artists)
        return partials, list(partials)
    keys = {}
    for source in rows.sources:
        shard = shard_fingerprint(source, rows.settings)
        keys[source.location] = None if shard is None else partial_key(shard, rows, config, artists)
    partials: dict[str, dict] = {}
    for location, key in keys.items():
        folder = cache.get(PARTIALS, key) if key else None
        if folder is not None:
            partials[location] = json.loads((folder / "partial.json").read_text(encoding="utf-8"))
    missing = [location for location in keys if location not in partials]
    if missing:
        fresh = scan(rows, config, artists, shards=missing)
        for location in missing:
            partials[location] = fresh[location]
            if keys[location]:
                text = json.dumps(fresh[location], ensure_ascii=False)
                cache.put(PARTIALS, keys[location], lambda folder, text=text: (folder / "partial.json").write_text(text, encoding="utf-8"))
    return {location: partials[location] for location in keys}, missing


def compute_stats(rows: Rows, config: DataConfig, artists: list[str] | None = None) -> tuple[dict, dict]:
    """(stats, examples) for the rows; ``stats`` is what ``data/stats.json`` publishes."""
    partials = compute_partials(rows, config, artists or [])
    return finish_stats(rows, config, merge_partials(list(partials.values())), artists or [])


def finish_stats(rows: Rows, config: DataConfig, merged: dict, artists: list[str]) -> tuple[dict, dict]:
    """(stats, examples) from merged partials: shares, registrable domains, ranked lists."""
    hists = _present(rows)
    domains: dict[str, int] = {}
    for host, n in merged["hosts"].items():  # hosts -> registrable domains after aggregation
        domain = registrable_domain(host)
        domains[domain] = domains.get(domain, 0) + n
    histograms = {}
    shares = {}
    over = iter(merged["over"])
    for h in hists:
        invalid = merged["invalid"].get(h.column, 0)
        histograms[h.column] = {
            "label": h.label,
            "unit": h.unit,
            "edges": h.edges(),
            "counts": merged["bins"].get(h.column, [0] * h.bins),
            "invalid": invalid,
            "overflow_in_last_bin": True,
            "thresholds": [{"value": v, "label": label} for v, label in h.thresholds],
        }
        valid = merged["rows"] - invalid
        for value, _ in h.thresholds:
            count = next(over, 0)
            shares.setdefault(h.column, []).append(
                {"threshold": value, "count": count, "share": (count / valid) if valid else None}
            )
    mentions = merged["artists"]
    stats = {
        "rows": merged["rows"],
        "columns": rows.columns,
        "distinct_hosts": len(merged["hosts"]),
        "distinct_domains": len(domains),
        "invalid_urls": merged["bad_urls"],
        "domains": _ranked(domains, "domain"),
        "hosts": _ranked(merged["hosts"], "host"),
        "artists": [
            {"name": n, "count": int(mentions.get(n, 0))} for n in sorted(artists, key=lambda n: (-mentions.get(n, 0), n))
        ],
        "artists_listed": len(artists),
        "histograms": histograms,
        "shares": shares,
        "categories": {c: _ranked(v, "value") for c, v in merged["categories"].items()},
        "safety": {
            "threshold": rows.policy.threshold,
            "unsafe_rows": merged["unsafe"],
            "scored": rows.scored,
            "unscored": rows.policy.unscored,
            "blocklist_words": len(rows.policy.blocklist),
            "blocklist_rows": merged["blocklist_rows"],
            "shown_rows": merged["shown_rows"],
            "excluded_rows": exclusion_counts(rows),
        },
    }
    _check_finite(stats)
    return stats, _shape_examples(rows, merged)


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
                writer.writerow([csv_cell(item[key]), item["count"]])
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
    """``[data] artists``, inside the content folder (its names are published); None when no
    list is configured."""
    if not config.artists:
        return None
    from atlas.core.paths import inside_content

    return inside_content(content_dir, config.artists, "[data] artists")


def run_stats(sources: list, config: DataConfig, content_dir: Path, reporter,
              settings: Settings | None = None, cache=None, *,
              policy: Policy) -> tuple[dict, dict, Rows, list[str]]:
    """The whole stage as a plain function: read the artist list, scan the shards, merge.

    With a ``cache`` (:class:`atlas.core.cache.Cache`), each shard's partial statistics are kept under
    the shard's fingerprint and only new or changed shards are scanned. Returns (stats, examples,
    rows, shards scanned); ``rows`` tells which shards and columns were read (its connection is
    closed). ``atlas build`` (with its cache) and ``atlas stats`` (without) both call this.
    ``policy`` (:func:`atlas.data.policy.load_policy`) is built once by the caller, never here.
    """
    if config.engine == "ray":
        from atlas.core.raycluster import import_ray

        import_ray("[data] engine")  # before any work: a clear error when the extra is missing
    path = artists_path(config, content_dir)
    names = read_artists(path) if path is not None else []
    rows = open_rows(sources, config, settings=settings, policy=policy)
    try:
        for note in rows.notes:
            reporter.warn("data", note)
        with reporter.progress("statistics", total=None, unit=""):
            partials, scanned = cached_partials(rows, config, names, cache)
            stats, examples = finish_stats(rows, config, merge_partials(list(partials.values())), names)
    finally:
        rows.con.close()
    return stats, examples, rows, scanned


def _inputs(ctx: BuildContext) -> dict:
    path = artists_path(ctx.config.data, ctx.content_dir)
    artists = None
    if path is not None:
        from atlas.core.cache import file_digest

        artists = file_digest(path) if path.exists() else f"missing:{path}"
    # A remote file is keyed by its ETag/Last-Modified/size, so a changed file under the same name
    # rebuilds; a remote glob (or a store without HEAD) only by its name, as before.
    shards = [shard_fingerprint(source, ctx.settings) or source.fingerprint() for source in ctx.sources]
    return {
        "shards": shards,
        "columns": ctx.config.data.columns,
        "policy": ctx.policy.fingerprint(),
        "seed": ctx.config.data.seed,
        "artists": artists,
    }


def _run(ctx: BuildContext, folder: Path) -> dict:
    stats, examples, rows, scanned = run_stats(
        build_sources(ctx), ctx.config.data, ctx.content_dir, ctx.reporter, ctx.settings, cache=ctx.cache,
        policy=ctx.policy,
    )
    write_stats(stats, examples, folder)
    safety = stats["safety"]
    return {"rows": stats["rows"], "shards": len(rows.sources), "scanned": len(scanned), "columns": sorted(rows.columns),
            "scored": safety["scored"], "shown_rows": safety["shown_rows"], "excluded": safety["excluded_rows"]}


# 5: the CSV downloads' cells guarded by atlas.text.published.csv_cell
STAGE = Stage("stats", "5", _inputs, _run, after=("demo",), description="DuckDB statistics over the shards")
