"""What may be published: the one :class:`Policy` (score threshold, blocklist, opt-out lists) and
the SQL every stage that publishes a row goes through (``blocked``, ``shown``, the exclusions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atlas.core.config import DataConfig
from atlas.core.errors import ConfigError, ContentError
from atlas.core.paths import inside_content
from atlas.core.resources import default_content_dir
from atlas.data import urls
from atlas.data.sql import quote_literal
from atlas.text.fold import words_many
from atlas.text.sql import UDF as WORDS_UDF
from atlas.text.sql import mismatch_class

if TYPE_CHECKING:
    from atlas.data.rows import Rows

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
        raise TypeError(f"{caller} needs a Policy (atlas.data.policy.load_policy), not {type(policy).__name__}")


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
#: folded by Python (the scalar function :func:`atlas.data.rows.connect` registers), since DuckDB's
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
    return default_content_dir() / "blocklist.txt"


def _read_lines(path: Path, key: str) -> tuple[list[tuple[int, str]], str]:
    """Numbered non-blank, non-comment lines of a UTF-8 list file, and the file's digest."""
    from atlas.core.cache import file_digest

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

    Every entry is put in the canonical form rows are matched in (:mod:`atlas.data.urls`,
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
#: percent-decoded (:data:`atlas.data.urls.DECODED_SQL`).
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
