"""What may be shown: the one predicate at its edges, unscored data, the blocklist, opt-out lists
and column types (README "Safety of the published site")."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from urllib.parse import quote
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from markupsafe import escape

from atlas.build import build
from atlas.core.config import DataConfig
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.data.sources import resolve_sources
from atlas.core.errors import ConfigError, ContentError, DataError
from atlas.core.report import Reporter
from atlas.stages.sample import draw_sample
from atlas.stages.stats import compute_stats

from helpers.content import write_content
from helpers.paths import SAMPLE_10K
from text_forms import FORMS


def _rows(folder: Path, table: pa.Table, **config):
    """Open ``table`` (written as a shard in ``folder``, also the content folder) like a build does."""
    pq.write_table(table, folder / "shard.parquet")
    data = DataConfig(**config)
    rows = open_rows(resolve_sources([str(folder / "shard.parquet")], folder), data, policy=load_policy(data, folder))
    return rows, data


def _published(rows, data) -> tuple[set[str], set[str], set[str]]:
    """Captions of the sample, of the example captions, and the rows the view says may be shown."""
    sample = set(draw_sample(rows, 1000, seed=0).column("caption").to_pylist())
    _, examples = compute_stats(rows, data)
    shown = {c for (c,) in rows.con.execute("SELECT caption FROM rows WHERE shown").fetchall()}
    return sample, {e["caption"] for e in examples["captions"] + examples["html"]}, shown


PUNSAFE = {
    "ok": 0.1, "zero": 0.0, "negative zero": -0.0, "just under": 0.4999,
    "minus one": -1.0, "slightly negative": -0.01, "minus inf": -math.inf, "nan": math.nan, "missing": None,
    "plus inf": math.inf, "at threshold": 0.5, "huge": 1e300, "tiny negative": -1e-300,
}
MAY_SHOW = {"ok", "zero", "negative zero", "just under"}


def test_only_punsafe_in_zero_to_threshold_is_shown(tmp_path):
    names = list(PUNSAFE)
    table = pa.table({"URL": [f"https://a.example/{i}.jpg" for i in range(len(names))],
                      "TEXT": [f"row {name}" for name in names],
                      "punsafe": pa.array([PUNSAFE[n] for n in names], pa.float64())})
    rows, data = _rows(tmp_path, table)
    expected = {f"row {name}" for name in MAY_SHOW}
    sample, examples, shown = _published(rows, data)
    assert sample == examples == shown == expected


def test_nsfw_tags_other_than_unlikely_are_never_shown(tmp_path):
    tags = ["UNLIKELY", "unlikely", "UNSURE", "NSFW", "", None, " UNLIKELY-ish"]
    table = pa.table({"URL": [f"https://a.example/{i}.jpg" for i in range(len(tags))],
                      "TEXT": [f"tag {i}" for i in range(len(tags))], "NSFW": tags})
    rows, data = _rows(tmp_path, table)
    sample, examples, shown = _published(rows, data)
    assert sample == examples == shown == {"tag 0", "tag 1"}


def test_both_columns_must_allow_a_row(tmp_path):
    table = pa.table({"URL": ["https://a.example/1", "https://a.example/2", "https://a.example/3"],
                      "TEXT": ["both fine", "tag unsafe", "score unknown"],
                      "punsafe": [0.1, 0.1, None], "NSFW": ["UNLIKELY", "NSFW", "UNLIKELY"]})
    rows, data = _rows(tmp_path, table)
    assert _published(rows, data)[2] == {"both fine"}


@pytest.mark.parametrize("column, values, kind", [
    ("punsafe", pa.array(["-0.5", "0.1"]), "string"),
    ("punsafe", pa.array([[0.1], [0.2]]), "list"),
    ("punsafe", pa.array([{"p": 0.1}, {"p": 0.2}]), "struct"),
    ("punsafe", pa.array([True, False]), "bool"),
    ("TEXT", pa.array([["a"], ["b"]]), "list"),
    ("NSFW", pa.array([1.5, 2.5]), "double"),
    ("URL", pa.array([b"https://a", b"https://b"]), "binary"),
])
def test_a_wrong_column_type_is_an_error_naming_file_column_and_types(tmp_path, column, values, kind):
    columns = {"URL": pa.array(["https://a.example/1", "https://a.example/2"]), "TEXT": pa.array(["a", "b"])}
    columns[column] = values
    with pytest.raises(DataError) as error:
        _rows(tmp_path, pa.table(columns))
    message = str(error.value)
    assert "shard.parquet" in message and repr(column) in message and kind in message and "expected" in message


@pytest.mark.parametrize("column, duckdb_type, ok", [
    ("punsafe", "DOUBLE", True), ("punsafe", "DECIMAL(5,3)", True), ("punsafe", "VARCHAR", False),
    ("punsafe", "DOUBLE[]", False), ("punsafe", "BOOLEAN", False), ("punsafe", "STRUCT(p DOUBLE)", False),
    ("TEXT", "VARCHAR", True), ("TEXT", "VARCHAR[]", False), ("hash", "BIGINT", True), ("NSFW", "INTEGER", False),
])
def test_remote_shards_are_checked_by_their_duckdb_types(column, duckdb_type, ok):
    """Remote globs are described by DuckDB, whose type names differ from pyarrow's."""
    from atlas.data.sources import check_types, map_columns

    schema = {"URL": "VARCHAR", "TEXT": "VARCHAR", column: duckdb_type}
    mapping = map_columns(list(schema), {})
    if ok:
        check_types([("hf://datasets/x/*.parquet", schema)], mapping)
    else:
        with pytest.raises(DataError, match=re.escape(duckdb_type)):
            check_types([("hf://datasets/x/*.parquet", schema)], mapping)


def test_integer_scores_are_read_as_numbers_with_a_note(tmp_path):
    table = pa.table({"URL": ["https://a.example/1", "https://a.example/2"], "TEXT": ["zero", "one"],
                      "punsafe": pa.array([0, 1], pa.int64()), "WIDTH": pa.array([640, 480], pa.int32())})
    rows, data = _rows(tmp_path, table)
    assert _published(rows, data)[2] == {"zero"}
    assert any("'punsafe'" in note and "int64" in note for note in rows.notes)
    assert not any("WIDTH" in note for note in rows.notes)


def test_a_shard_with_no_known_column_is_an_error_listing_its_columns(tmp_path):
    with pytest.raises(DataError) as error:
        _rows(tmp_path, pa.table({"image": ["https://a.example/1"], "words": ["a cat"]}))
    message = str(error.value)
    assert "image, words" in message and "URL" in message and "TEXT" in message and "[data.columns]" in message


# ----------------------------------------------------------------------------- the blocklist


def test_blocklist_matches_whole_words_ignoring_case_and_accents(tmp_path):
    (tmp_path / "words.txt").write_text("# comment\nporn\ncock\nred panda\n", encoding="utf-8")
    captions = ["Hot PÖRN here", "Scunthorpe cocktail dress", "a cock-fight", "A Red  Panda!", "red pandas",
                "clean caption", "clean caption with a bad url"]
    urls = [f"https://a.example/{i}.jpg" for i in range(6)] + ["https://a.example/porn/7.jpg"]
    table = pa.table({"URL": urls, "TEXT": captions, "punsafe": [0.1] * len(captions)})
    rows, data = _rows(tmp_path, table, blocklist="words.txt")
    sample, examples, shown = _published(rows, data)
    assert sample == examples == shown == {"Scunthorpe cocktail dress", "red pandas", "clean caption"}
    stats, _ = compute_stats(rows, data)
    assert stats["safety"]["blocklist_rows"] == 4 and stats["safety"]["blocklist_words"] == 3


def _tricky_forms(words: list[str]) -> list[str | None]:
    """Text built to trip the blocklist's cheap scan: each word in upper and title case, glued to
    others, plural, accented, with Unicode case rules (İ, the Kelvin sign, ß, ẞ), every form of
    ``text_forms.FORMS`` (full-width, math, circled, parenthesised, superscript, ligatures,
    zero-width and bidi characters inside), control characters, dashes, no-break spaces."""
    tricky = []
    for word in words:
        accented = unicodedata.normalize("NFC", "".join(ch + "\u0301" if ch in "aeiou" else ch for ch in word))
        tricky += [word.upper(), f"A {word.title()}!", f"x{word}x", f"{word}s", accented, accented.upper(),
                   word.replace("i", "\u0130").replace("k", "\u212a").replace("ss", "\u00df"),  # İ, Kelvin sign, ß
                   word.replace("ss", "\u1e9e").upper(), f"{word}\u0000tail", f"a–{word}—b", word.replace(" ", "\u00a0"),
                   word.replace(" ", "-\n")]
        tricky += [f"{write(word)} and more" for write in FORMS.values()]
        tricky += [f"x{FORMS['full-width'](word)}", f"{FORMS['zero-width joiner inside'](word)}x"]  # glued: no word
    tricky += ["", " ", "ﬁsting", "Ǆ", "ΣΊΣΥΦΟΣ", "\u0300sex", "se\u0301x", "\u1109\u1166\u11a8\u1109\u1173", "섹스",
               "\u3164sex", "s\u3164ex", None]
    return tricky


def _blocked_both_ways(con, policy, captions, urls) -> tuple[list[bool], list[bool]]:
    """``blocked_sql`` over the texts, and the rule computed in Python (an entry's words are
    consecutive words of the caption's or the URL's :func:`atlas.text.fold.words`)."""
    from atlas.data.policy import blocked_sql
    from atlas.text.fold import words

    from urllib.parse import unquote

    from atlas.data.urls import DECODED_SQL

    con.register("t", pa.table({"caption": pa.array(captions, pa.string()), "url": pa.array(urls, pa.string())}))
    fast = [b for (b,) in con.execute(
        f"SELECT {blocked_sql(policy)} FROM (SELECT caption, url AS url_raw, "
        f"{DECODED_SQL.format(col='url')} AS url_decoded FROM t)").fetchall()]
    entries = [f" {w} " for w in policy.blocklist]
    # The URL as written and percent-decoded (a reader sees the decoded words in the address bar).
    padded = [(f" {words(c)} ", f" {words(u)} ", f" {words(unquote(u, errors='replace') if u else u)} ")
              for c, u in zip(captions, urls)]
    exact = [any(e in c or e in u or e in d for e in entries) for c, u, d in padded]
    return fast, exact


def test_the_blocklist_prefilter_never_changes_what_is_blocked(real_sample, monkeypatch):
    """The cheap scan that spares most rows the fold (``words_prefilter_sql``) is only an
    optimisation: over the real captions and URLs and over text built to trip it, the SQL
    predicate gives the same answer on every row as the rule computed in Python with the search
    index's fold. The rows built to trip it do trip a weaker scan (the class of characters
    DuckDB folds differently left out): this test notices if the scan is weakened."""
    from atlas.data import policy as data
    from atlas.data.rows import connect

    policy = load_policy(DataConfig(), None)
    words = sorted(policy.blocklist)
    tricky = _tricky_forms(words[:40] + ["adult video", "sexual intercourse"])
    table = pq.read_table(SAMPLE_10K)
    captions = table.column("TEXT").to_pylist() + tricky
    urls = table.column("URL").to_pylist() + [f"https://a.example/{t}.jpg" if t is not None else None for t in tricky]
    # Percent-encoded words (ASCII letters, the UTF-8 of a full-width word), also beside invalid UTF-8.
    urls += [f"https://a.example/%FF/{quote(t)}" for t in tricky[:200] if t] + [
        "https://a.example/" + "".join(f"%{ord(ch):02X}" for ch in w) for w in words[:40]]
    captions += ["a caption"] * (len(urls) - len(captions))
    con = connect()
    fast, exact = _blocked_both_ways(con, policy, captions, urls)
    assert sum(exact[:len(table)]) > 20 and sum(exact) > 1000  # the real sample has blocklisted captions, the tricky ones many
    assert [(captions[i], urls[i]) for i, (a, b) in enumerate(zip(fast, exact)) if a != b] == []
    # The same scan without the characters DuckDB folds differently misses hundreds of them.
    monkeypatch.setattr(data, "mismatch_class", lambda: "[^\\x00-\\x{10ffff}]")
    weak, _ = _blocked_both_ways(con, policy, captions, urls)
    assert sum(1 for a, b in zip(weak, exact) if a != b) > 300


def test_the_words_of_ascii_text_are_computed_in_sql_exactly_as_the_fold_gives_them(real_sample):
    """For ASCII text the blocklist does not call Python: DuckDB's lower case and runs of
    [a-z0-9] must be the fold's words, for every ASCII character and every real caption and URL."""
    from atlas.data.policy import WORDS_SQL
    from atlas.data.rows import connect
    from atlas.text.fold import words

    table = pq.read_table(SAMPLE_10K)
    every = "".join(map(chr, range(128)))
    texts = [every, every[::-1], *(f"a{chr(c)}b" for c in range(128))]
    texts += [t for t in table.column("TEXT").to_pylist() + table.column("URL").to_pylist() if t]
    con = connect()
    got = [w for (w,) in con.execute(f"SELECT {WORDS_SQL.format(x='t')} FROM (SELECT unnest(?::VARCHAR[]) AS t)",
                                     [texts]).fetchall()]
    assert sum(t.isascii() for t in texts) > 15_000 and sum(not t.isascii() for t in texts) > 500
    assert [(t, a) for t, a in zip(texts, got) if a != words(t)] == []


BLOCKED_WORDS = ("porn", "nude", "xxx", "fisting", "red panda")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_blocklist_blocks_a_word_however_it_is_written(tmp_path, form):
    """A blocked word written full-width, in math letters, circled, parenthesised, superscript,
    with ligatures, or with zero-width or bidi characters inside reads as the word (and the
    map's search finds it): the row is hidden, whether the word is in the caption or the URL.
    The same text glued to other letters is no word and stays."""
    from atlas.text.fold import tokens

    write = FORMS[form]
    (tmp_path / "words.txt").write_text("\n".join(BLOCKED_WORDS) + "\n", encoding="utf-8")
    captions = [f"hot {write(w)} pics" for w in BLOCKED_WORDS] + [f"clean url {i}" for i in range(len(BLOCKED_WORDS))]
    captions += [f"glued {write('x' + w + 'x')}" for w in BLOCKED_WORDS]
    urls = [f"https://a.example/{i}.jpg" for i in range(len(BLOCKED_WORDS))]
    urls += [f"https://a.example/{write(w)}.jpg" for w in BLOCKED_WORDS]
    urls += [f"https://a.example/g{i}.jpg" for i in range(len(BLOCKED_WORDS))]
    for word, caption in zip(BLOCKED_WORDS, captions):
        found, want = tokens(caption), tokens(word)
        assert any(found[i:i + len(want)] == want for i in range(len(found))), (caption, found)  # what search finds
    table = pa.table({"URL": urls, "TEXT": captions, "punsafe": [0.1] * len(captions)})
    rows, data = _rows(tmp_path, table, blocklist="words.txt")
    shown = {c for (c,) in rows.con.execute("SELECT caption FROM rows WHERE shown").fetchall()}
    assert shown == set(captions[2 * len(BLOCKED_WORDS):])
    stats, _ = compute_stats(rows, data)
    assert stats["safety"]["blocklist_rows"] == 2 * len(BLOCKED_WORDS)


def test_blocklist_entries_are_folded_like_captions(tmp_path):
    """An entry written with capitals, full-width letters or a soft hyphen is the plain word."""
    (tmp_path / "words.txt").write_text("ＰＯＲＮ\nNu\u00adde\n𝐱𝐱𝐱\n", encoding="utf-8")
    assert load_policy(DataConfig(blocklist="words.txt"), tmp_path).blocklist == ("nude", "porn", "xxx")


def test_the_shipped_blocklist_is_used_when_the_content_folder_has_none(tmp_path):
    table = pa.table({"URL": ["https://a.example/1", "https://a.example/2"], "TEXT": ["free porn", "a cat"],
                      "punsafe": [0.1, 0.1]})
    rows, data = _rows(tmp_path, table)
    assert _published(rows, data)[2] == {"a cat"}


@pytest.mark.parametrize("config, message", [
    ({"unscored": "keyword-filter", "blocklist": ""}, "needs a blocklist"),
    ({"blocklist": "../outside.txt"}, "leads outside"),
    ({"exclude": ["/etc/hosts"]}, "absolute path"),
    ({"blocklist": "missing.txt"}, "does not exist"),
])
def test_policy_mistakes_are_clear_errors(tmp_path, config, message):
    with pytest.raises((ConfigError, ContentError), match=message):
        load_policy(DataConfig(**config), tmp_path)


def test_bad_list_lines_are_named(tmp_path):
    (tmp_path / "optout.txt").write_text("example.com\nnot a host!\n")
    with pytest.raises(ContentError, match="line 2 of .*optout.txt"):
        load_policy(DataConfig(exclude=["optout.txt"]), tmp_path)
    (tmp_path / "words.txt").write_text("fine\n18+\n")
    with pytest.raises(ContentError, match="line 2 of .*words.txt.*no letters"):
        load_policy(DataConfig(blocklist="words.txt"), tmp_path)


# ----------------------------------------------------------------------------- whole builds

PAGES = {
    "index.md": """\
        ---
        title: Home
        ---
        # Home

        ```atlas captions n=50
        ```

        ```atlas captions n=24 kind=html
        ```
        """,
}
SMALL = """\
    [data]
    {data}

    [sample]
    size = 300

    [project]
    fit_size = 300
    """


def _build(content: Path, out: Path, cache: Path, data: str):
    return build(content, out, data=[data], cache_dir=cache, reporter=Reporter(quiet=True))


def _site_text(site: Path) -> dict[Path, str]:
    return {p: p.read_bytes().decode("utf-8", "replace") for p in site.rglob("*") if p.is_file()}


def _words(text: str) -> set[str]:
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    return set(re.findall(r"[^\W_]+", plain))


@pytest.fixture(scope="module")
def real_sample(shared_data):
    table = pq.read_table(SAMPLE_10K)
    return {"captions": [c for c in table.column("TEXT").to_pylist() if c and len(c.strip()) >= 25]}


def test_unscored_real_sample_publishes_no_row_by_default(real_sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("unscored")
    content = write_content(root / "content", PAGES, SMALL.format(data=""))
    report = _build(content, root / "site", root / "cache", str(SAMPLE_10K))
    files = _site_text(root / "site")
    needles = set(real_sample["captions"]) | {str(escape(c)) for c in real_sample["captions"]}
    leaks = [(p.name, c[:40]) for p, text in files.items() for c in needles if c in text]
    assert not leaks
    stats = json.loads((root / "site" / "data" / "stats.json").read_text())
    assert stats["rows"] == 10_000 and stats["safety"]["shown_rows"] == 0
    assert json.loads((root / "site" / "map" / "data" / "meta.json").read_text())["count"] == 0
    [warning] = [w for w in report.warnings if w.startswith("unscored data")]
    assert 'unscored = "keyword-filter"' in warning
    for page in ("index.html", "map/index.html"):
        html = files[root / "site" / page]
        assert "no safety scores" in html and "unsafe rows are never shown" not in html


def test_keyword_filter_publishes_rows_without_blocklisted_words_and_says_so(real_sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("keyword")
    content = write_content(root / "content", PAGES, SMALL.format(data='unscored = "keyword-filter"'))
    report = _build(content, root / "site", root / "cache", str(SAMPLE_10K))
    assert not [w for w in report.warnings if w.startswith("unscored data")]
    policy = load_policy(DataConfig(), content)
    single = {w for w in policy.blocklist if " " not in w}
    site = root / "site"
    captions = [c for chunk in sorted((site / "map" / "data" / "text").glob("*.json"))
                for c in json.loads(chunk.read_text())]
    assert len(captions) == 300
    assert not [c for c in captions if _words(c) & single]
    details = [d for chunk in (site / "map" / "data" / "detail").glob("*.json") for d in json.loads(chunk.read_text())]
    assert not [d[0] for d in details if d[0] and _words(d[0]) & single]
    stats = json.loads((site / "data" / "stats.json").read_text())
    assert stats["safety"]["blocklist_rows"] > 50 and stats["safety"]["shown_rows"] > 9000
    for page in ("index.html", "map/index.html"):
        html = (site / page).read_text()
        assert "blocklist" in html and "no safety scores" in html and "unsafe rows are never shown" not in html


def test_an_opt_out_entry_disappears_from_every_published_file_in_one_rebuild(tmp_path):
    rows = [("https://img.keep.example/k%d.jpg" % i, "kept caption %d" % i, str(1000 + i)) for i in range(40)]
    rows += [("https://img.keep.example/urlmarkqv.jpg", "caption urlmarkqv", "2001"),
             ("https://cdn.domainmarkqv.example/a.jpg", "caption domainmarkqv one", "2002"),
             ("https://domainmarkqv.example/b.jpg", "caption domainmarkqv two", "2003"),
             ("https://img.keep.example/h.jpg", "caption hashmarkqv", "-2004")]
    url, text, key = zip(*rows)
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(pa.table({"URL": url, "TEXT": text, "punsafe": [0.1] * len(rows),
                             "hash": pa.array([int(k) for k in key], pa.int64())}), shards / "part-0.parquet")
    content = write_content(tmp_path / "content", PAGES, SMALL.format(data='exclude = ["optout.txt", "removals.txt"]'))
    (content / "optout.txt").write_text("# opt-outs\n")
    (content / "removals.txt").write_text("")
    site, cache = tmp_path / "site", tmp_path / "cache"
    _build(content, site, cache, str(shards / "*.parquet"))
    before = "".join(_site_text(site).values())
    for marker in ("urlmarkqv", "domainmarkqv", "hashmarkqv"):
        assert marker in before
    (content / "optout.txt").write_text("# opt-outs\nhttps://img.keep.example/urlmarkqv.jpg\nDomainMarkQV.example\n")
    (content / "removals.txt").write_text("hash:-2004\n")
    _build(content, site, cache, str(shards / "*.parquet"))
    for path, body in _site_text(site).items():
        assert not re.search("urlmarkqv|domainmarkqv|hashmarkqv", body), path
    info = json.loads((site / "data" / "build.json").read_text())
    assert info["excluded"] == {"optout.txt": 3, "removals.txt": 1}
    assert json.loads((site / "data" / "stats.json").read_text())["rows"] == 40
