"""The ``bias`` stage: how the captions of every row talk about each occupation of the Bias page.

For each occupation of ``prompts.toml`` (``[bias] occupations``), over all rows in one DuckDB
pass: how many captions mention it (whole words, any case, plural forms included), and among
those how many also use a female-coded word, a male-coded word, both, or neither ("unmarked"),
with the word lists of ``gender-words.toml`` in the content folder. Shares come with Wilson 95 %
intervals, since most occupations are rare in captions. A few example captions per occupation
are drawn (deterministically) from rows that may be shown (the ``shown`` column of the view ``rows``: :func:`atlas.data.policy.shown_sql`).

Outputs: ``bias.json`` and ``bias-captions.csv`` (read with :func:`read`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from atlas.core.cache import read_json
from atlas.data.rows import open_build_rows
from atlas.data.sql import quote_literal
from atlas.core.errors import ContentError
from atlas.core.tomlfile import read_toml
from atlas.core.pipeline import Stage
from atlas.text.published import csv_cell

WORDS_NAME = "gender-words.toml"
RESULT = "bias.json"
CSV_NAME = "bias-captions.csv"
EXAMPLES = 3
#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054


@dataclass
class WordList:
    """One coded word list: its name, what it means, and the words (lower case)."""

    name: str
    definition: str
    words: list[str]


@dataclass
class Occupation:
    """The caption figures of one occupation."""

    occupation: str
    terms: list[str]
    mentions: int
    female: int
    male: int
    both: int
    unmarked: int
    examples: list[str] = field(default_factory=list)

    def share(self, count: int) -> float | None:
        return count / self.mentions if self.mentions else None

    def interval(self, count: int) -> tuple[float, float] | None:
        return wilson(count, self.mentions)


@dataclass
class BiasCaptions:
    """What the stage found: rows scanned, the word lists, and one entry per occupation."""

    rows: int
    captioned: int
    female: WordList
    male: WordList
    occupations: list[Occupation]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``n`` (None when n is 0)."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


_ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)


def plural(word: str) -> str:
    """English plural of a noun, lower case: engineer -> engineers, boss -> bosses, lady -> ladies."""
    lower = word.lower()
    if lower.endswith(("s", "sh", "ch", "x", "z")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    if lower.endswith("man"):
        return lower[:-3] + "men"
    return lower + "s"


def occupation_terms(occupation: str) -> list[str]:
    """``"a software engineer"`` -> ``["software engineer", "software engineers"]`` (lower case)."""
    phrase = " ".join(_ARTICLE.sub("", occupation.strip()).split())
    if not phrase:
        return []
    words = phrase.split(" ")
    return list(dict.fromkeys(t.lower() for t in (phrase, " ".join(words[:-1] + [plural(words[-1])]))))


def words_regex(terms: list[str]) -> str:
    """A case-insensitive whole-word RE2 pattern for any of ``terms`` (spaces match any whitespace)."""
    alternatives = sorted({re.escape(t.lower()).replace(r"\ ", " ").replace(" ", r"\s+") for t in terms if t.strip()},
                          key=lambda t: (-len(t), t))
    return r"(?i)\b(" + "|".join(alternatives) + r")\b"


def load_word_lists(content_dir: Path) -> tuple[WordList, WordList]:
    """The female and male word lists of ``<content>/gender-words.toml`` (ContentError when bad)."""
    path = Path(content_dir) / WORDS_NAME
    if not path.is_file():
        raise ContentError(
            f"{path} is missing: the Bias page's caption figures need the word lists it defines",
            where=WORDS_NAME,
            hint="Copy gender-words.toml from atlas's default content (atlas new DIR writes it), "
            "or remove the bias-captions widget from your pages.",
        )
    data = read_toml(path, ContentError)
    lists = []
    for name in ("female", "male"):
        table = data.get(name)
        words = table.get("words") if isinstance(table, dict) else None
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ContentError(
                f"[{name}] words must be a non-empty list of words",
                where=f"{WORDS_NAME} [{name}]",
                hint=f'Write e.g. [{name}] words = ["…", "…"] and definition = "…".',
            )
        definition = table.get("definition", "")
        if not isinstance(definition, str):
            raise ContentError(f"[{name}] definition must be text", where=f"{WORDS_NAME} [{name}]")
        lists.append(WordList(name, definition.strip(), [w.strip().lower() for w in words]))
    unknown = sorted(set(data) - {"female", "male"})
    if unknown:
        raise ContentError(f"unknown table(s) {', '.join(unknown)} in {path}", where=WORDS_NAME,
                           hint="Only [female] and [male] are read.")
    return lists[0], lists[1]


def bias_captions(rows, occupations: list[str], female: WordList, male: WordList,
                  seed: int = 0, examples: int = EXAMPLES) -> BiasCaptions:
    """The caption figures over every row of ``rows`` (an :class:`atlas.data.rows.Rows`), one DuckDB pass.

    The shards are scanned once: rows whose caption mentions any occupation are kept (a small
    share), and every figure is counted over those. Examples are captions of rows that may be
    shown, picked by a seeded hash.
    """
    con = rows.con
    terms = {occupation: occupation_terms(occupation) for occupation in occupations}
    terms = {k: v for k, v in terms.items() if v}
    if not rows.has("caption") or not terms:
        total = con.execute("SELECT count(*) FROM rows").fetchone()[0]
        return BiasCaptions(int(total), 0, female, male,
                            [Occupation(o, t, 0, 0, 0, 0, 0) for o, t in terms.items()])
    every = quote_literal(words_regex([t for ts in terms.values() for t in ts]))
    fem, mal = quote_literal(words_regex(female.words)), quote_literal(words_regex(male.words))
    safe = "shown"
    key = f"hash(caption || {quote_literal(str(seed))})"
    columns = []
    for index, occupation in enumerate(terms):
        hit = f"regexp_matches(caption, {quote_literal(words_regex(terms[occupation]))})"
        columns.append(f"{hit} AS o{index}")
    selects = ["(SELECT n FROM totals)", "(SELECT captioned FROM totals)"]
    for index in range(len(terms)):
        o = f"o{index}"
        selects += [
            f"count(*) FILTER (WHERE {o})",
            f"count(*) FILTER (WHERE {o} AND f)",
            f"count(*) FILTER (WHERE {o} AND m)",
            f"count(*) FILTER (WHERE {o} AND f AND m)",
            f"min_by(caption, k, {int(examples)}) FILTER (WHERE {o} AND shown)",
        ]
    sql = f"""
        WITH scanned AS (
            SELECT caption, ({safe}) AS shown,
                   caption IS NOT NULL AND regexp_matches(caption, {every}) AS hit
            FROM rows
        ),
        totals AS (SELECT count(*) AS n, count(caption) AS captioned FROM scanned),
        hits AS (
            SELECT caption, coalesce(shown, false) AS shown, {key} AS k,
                   regexp_matches(caption, {fem}) AS f, regexp_matches(caption, {mal}) AS m,
                   {", ".join(columns)}
            FROM scanned WHERE hit
        )
        SELECT {", ".join(selects)} FROM hits
    """
    values = con.execute(sql).fetchone()
    total, captioned = int(values[0] or 0), int(values[1] or 0)
    found = []
    for index, (occupation, words) in enumerate(terms.items()):
        mentions, f, m, both, picked = values[2 + 5 * index: 7 + 5 * index]
        mentions, f, m, both = int(mentions or 0), int(f or 0), int(m or 0), int(both or 0)
        found.append(Occupation(occupation, words, mentions, f, m, both, mentions - f - m + both,
                                [str(c) for c in (picked or [])]))
    return BiasCaptions(total, captioned, female, male, found)


def to_json(result: BiasCaptions) -> dict:
    """The published form: figures, shares and Wilson intervals per occupation."""
    items = []
    for o in result.occupations:
        entry = {"occupation": o.occupation, "terms": o.terms, "mentions": o.mentions, "female": o.female,
                 "male": o.male, "both": o.both, "unmarked": o.unmarked, "examples": o.examples}
        for name in ("female", "male", "unmarked"):
            entry[f"{name}_share"] = o.share(getattr(o, name))
            interval = o.interval(getattr(o, name))
            entry[f"{name}_interval"] = list(interval) if interval else None
        items.append(entry)
    lists = {w.name: {"definition": w.definition, "words": w.words} for w in (result.female, result.male)}
    return {"rows": result.rows, "captioned": result.captioned, "words": lists, "occupations": items}


@dataclass
class BiasFigures:
    """What the stage wrote: ``bias.json`` as published (see :func:`to_json`) and the CSV's path."""

    data: dict
    csv: Path


def read(folder: Path | None) -> BiasFigures | None:
    """The bias stage's output in ``folder``, or None when the stage did not run."""
    data = read_json(folder, RESULT)
    if data is None:
        return None
    return BiasFigures(data, Path(folder) / CSV_NAME)


def write_bias(result: BiasCaptions, folder: Path) -> None:
    """``bias.json`` and ``bias-captions.csv`` (one row per occupation) into ``folder``."""
    data = to_json(result)
    (folder / RESULT).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    with open(folder / CSV_NAME, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["occupation", "terms", "captions_mentioning", "female_coded", "male_coded", "both",
                         "unmarked", "female_share", "female_low95", "female_high95", "male_share", "male_low95",
                         "male_high95"])
        for o in data["occupations"]:
            def cells(name):
                share, interval = o[f"{name}_share"], o[f"{name}_interval"] or [None, None]
                return ["" if v is None else f"{v:.4f}" for v in (share, *interval)]
            writer.writerow([csv_cell(o["occupation"]), csv_cell(" | ".join(o["terms"])), o["mentions"], o["female"],
                             o["male"], o["both"], o["unmarked"], *cells("female"), *cells("male")])


def bias_occupations(content_dir: Path) -> list[str]:
    """The occupations of ``prompts.toml`` (the Bias page's prompts), in their order."""
    from atlas.core.prompts import load_prompts

    return [p.label for p in load_prompts(content_dir, missing_ok=True) if p.page == "bias" and p.label]


def _inputs(ctx) -> dict:
    from atlas.core.cache import file_digest

    words = ctx.content_dir / WORDS_NAME
    return {
        "shards": ctx.sources_fingerprint(),
        "columns": ctx.config.data.columns,
        "policy": ctx.policy.fingerprint(),
        "seed": ctx.config.data.seed,
        "occupations": bias_occupations(ctx.content_dir),
        "words": file_digest(words) if words.is_file() else None,
    }


def _run(ctx, folder: Path) -> dict:
    female, male = load_word_lists(ctx.content_dir)
    rows = open_build_rows(ctx)
    try:
        with ctx.reporter.progress("caption words of the bias occupations", total=None, unit=""):
            result = bias_captions(rows, bias_occupations(ctx.content_dir), female, male,
                                   ctx.config.data.seed)
    finally:
        rows.con.close()
    write_bias(result, folder)
    return {"occupations": len(result.occupations), "mentions": sum(o.mentions for o in result.occupations)}


STAGE = Stage(
    "bias",
    "3",  # 2: rows.shown uses the blocklist's new fold (atlas.text.fold); 3: the CSV guard of atlas.text.published
    _inputs,
    _run,
    after=("demo",),
    enabled=lambda ctx: bool(bias_occupations(ctx.content_dir)) and (ctx.content_dir / WORDS_NAME).is_file(),
    description="how the captions of every row talk about the Bias page's occupations (DuckDB)",
)
