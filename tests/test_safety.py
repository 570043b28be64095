"""What may be shown: the one predicate at its edges, unscored data, the blocklist, opt-out lists
and column types (README "Safety of the published site")."""

from __future__ import annotations

import json
import math
import re
import textwrap
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from markupsafe import escape

from atlas.build import build
from atlas.config import DataConfig
from atlas.data import load_policy, open_rows, resolve_sources
from atlas.errors import ConfigError, ContentError, DataError
from atlas.report import Reporter
from atlas.stages.sample import draw_sample
from atlas.stages.stats import compute_stats

from conftest import SAMPLE_10K, write_content


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
    from atlas.data import check_types, map_columns

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


def test_the_blocklist_prefilter_never_changes_what_is_blocked(real_sample):
    """The cheap scan that spares most rows the normalisation (``words_prefilter_sql``) is only an
    optimisation: over the real captions and URLs and over text built to trip it (accents,
    Unicode case rules, ligatures, full-width letters, words glued to others, control and
    combining characters), the predicate gives the same answer as the exact test on every row."""
    import duckdb

    from atlas.data import WORDS_SQL, blocked_sql

    policy = load_policy(DataConfig(), None)
    words = sorted(policy.blocklist)
    tricky = []
    for word in words[:40] + ["adult video", "sexual intercourse"]:
        accented = unicodedata.normalize("NFC", "".join(ch + "\u0301" if ch in "aeiou" else ch for ch in word))
        tricky += [word.upper(), f"A {word.title()}!", f"x{word}x", f"{word}s", accented, accented.upper(),
                   "".join(chr(ord(ch) + 0xFEE0) if ch.isalpha() else ch for ch in word),  # full-width
                   word.replace("i", "\u0130").replace("k", "\u212a").replace("ss", "\u00df"),  # İ, Kelvin sign, ß
                   f"{word}\u0000tail", f"a–{word}—b", word.replace(" ", "\u00a0"), word.replace(" ", "-\n")]
    tricky += ["", " ", "ﬁsting", "Ǆ", "ΣΊΣΥΦΟΣ", "\u0300sex", "se\u0301x", None]
    table = pq.read_table(SAMPLE_10K)
    captions = table.column("TEXT").to_pylist() + tricky
    urls = table.column("URL").to_pylist() + [f"https://a.example/{t}.jpg" if t is not None else None for t in tricky]
    con = duckdb.connect()
    con.register("t", pa.table({"caption": pa.array(captions, pa.string()), "url": pa.array(urls, pa.string())}))
    alternatives = "|".join(re.escape(w) for w in words)
    exact = " OR ".join(f"coalesce(regexp_matches(' ' || {WORDS_SQL.format(x=c)} || ' ', ' (?:{alternatives}) '), false)"
                        for c in ("caption", "url"))
    fast, slow = zip(*con.execute(f"SELECT {blocked_sql(policy)}, {exact} FROM t").fetchall())
    assert sum(slow) > 100  # the real sample has blocklisted captions, the tricky ones many
    assert [i for i, (a, b) in enumerate(zip(fast, slow)) if a != b] == []


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
