"""The statistics stage over real parquet files with real DuckDB."""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import regex

from atlas.core.config import DataConfig
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.data.urls import registrable_domain
from atlas.data.sources import resolve_sources
from atlas.core.errors import DataError
from atlas.stages.stats import compute_stats, read_artists, stats_json

from helpers.content import write_shard


def _stats(paths, artists=None, **config):
    rows = open_rows(resolve_sources([str(p) for p in paths], Path.cwd()), DataConfig(**config), policy=load_policy(DataConfig(**config), None))
    return compute_stats(rows, DataConfig(**config), artists)


def _independent_host(url: str) -> str | None:
    """The host rule written again with the standard library: lower-case, no user-info or port."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname
    if not parts.scheme or not host:
        return None
    return host[4:] if host.startswith("www.") else host


def test_real_sample_hosts_match_an_independent_count(shared_data):
    stats, _ = _stats([shared_data / "laion400m-sample-10k.parquet"])
    urls = pq.read_table(shared_data / "laion400m-sample-10k.parquet", columns=["URL"]).column(0).to_pylist()
    expected = Counter(h for h in map(_independent_host, urls) if h)
    got = {item["host"]: item["count"] for item in stats["hosts"]}
    assert stats["rows"] == 10_000
    assert got == dict(expected)
    assert stats["hosts"][0] == {"host": "cdn.shopify.com", "count": 641}
    counts = [item["count"] for item in stats["hosts"]]
    assert counts == sorted(counts, reverse=True)


def test_real_sample_domains_roll_hosts_up(shared_data):
    stats, _ = _stats([shared_data / "laion400m-sample-10k.parquet"])
    domains = {item["domain"]: item["count"] for item in stats["domains"]}
    hosts = {item["host"]: item["count"] for item in stats["hosts"]}
    pinimg_hosts = sum(n for h, n in hosts.items() if h == "pinimg.com" or h.endswith(".pinimg.com"))
    assert domains["pinimg.com"] == pinimg_hosts >= 194
    assert "i.pinimg.com" not in domains
    assert sum(domains.values()) == sum(hosts.values())


#: The README's rule for words, written again with ``unicodedata`` and ``regex``: default-
#: ignorable characters (zero-width joiners, soft hyphens, bidi marks) and nonspacing marks
#: are dropped, each CJK character is a word, other words are runs of letters, digits and marks.
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")
_CJK_WORDS = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]|(?:(?![\p{Han}\p{Hiragana}\p{Katakana}])[\p{L}\p{N}\p{M}])+")


def _unbracketed(decomposed: str) -> str:
    """⒫ decomposes to "(p)": a reader reads a letter, so does the rule."""
    return decomposed[1:-1] if len(decomposed) >= 3 and decomposed[0] + decomposed[-1] in ("()", "〔〕") else decomposed


def _folded_words(text: str) -> str:
    """Independent rule: compatibility decomposition (NFKD; letters in brackets without them),
    nonspacing marks and default-ignorable characters dropped, casefold, words as above. (NFKD spells "Seuss™" as "SeussTM",
    one word, as the map's search and the blocklist see it, so "Dr. Seuss™" is no mention of
    Dr. Seuss.)"""
    decomposed = "".join(_unbracketed(unicodedata.normalize("NFKD", ch)) for ch in text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn" and not _IGNORABLE.match(ch)).casefold()
    return " " + " ".join(_CJK_WORDS.findall(bare)) + " "


def _python_counts(captions: list, names: list[str]) -> dict[str, int]:
    """Captions holding each name's folded words in a row (a word index narrows the search)."""
    folded = [_folded_words(c) for c in captions if c]
    index: dict[str, set[int]] = {}
    for i, text in enumerate(folded):
        for word in text.split():
            index.setdefault(word, set()).add(i)
    counts = {}
    for name in names:
        needle = _folded_words(name)
        words = needle.split()
        candidates = set.intersection(*(index.get(w, set()) for w in words)) if words else set()
        counts[name] = sum(needle in folded[i] for i in candidates)
    return counts


def test_real_artist_counts_match_an_accent_folding_count(shared_data):
    names = read_artists(shared_data / "artists.txt")
    stats, _ = _stats([shared_data / "laion400m-sample-10k.parquet"], artists=names)
    captions = pq.read_table(shared_data / "laion400m-sample-10k.parquet", columns=["TEXT"]).column(0).to_pylist()
    got = {item["name"]: item["count"] for item in stats["artists"]}
    assert len(got) == len(names)
    assert got == _python_counts(captions, names)  # every one of the 5,000+ names
    assert got["Claude Monet"] >= 1
    assert got["Jakub Różalski"] >= 1  # written "Jakub Rozalski" in the caption
    assert stats["artists"][0]["count"] == max(got.values())


def test_artist_matching_folds_case_and_accents_on_whole_words(tmp_path):
    captions = [
        "Water lilies by CLAUDE MONET, 1906",
        "Monetary policy explained",  # not a whole-word match of Monet
        "monet monet monet",  # one caption counts once
        "After Monet's garden",
        "poster after Jakub Rozalski",  # accents dropped in the caption
        "JAKUB RÓŻALSKI concept art",  # upper case with accents
        "Jakub Ro\u0301z\u0307alski, decomposed marks",  # combining marks (NFD)
        "by joan miro and jean-leon gerome",
        "Dürerstraße by Albrecht Durer",
        "<b>Dürer</b>_Albrecht",  # underscore and tags separate words
        "Mucha\u00a0Alphonse and Alphonse\tMucha",
        "mucha",
        "",
        "   ",
        None,
        "Hokusai 葛飾北斎 wave",
        "Zdzisław Beksiński; zdzislaw beksinski",
        "'; DROP TABLE rows; -- Monet",
    ]
    names = ["Monet", "Claude Monet", "Jakub Różalski", "Joan Miró", "Jean-Léon Gérôme", "Albrecht Dürer",
             "Dürer", "Alphonse Mucha", "Mucha", "葛飾北斎", "Zdzisław Beksiński", "Nobody Here", "!!!", "O'Keeffe"]
    shard = write_shard(tmp_path / "a.parquet", {"URL": [f"http://a.com/{i}" for i in range(len(captions))],
                                                 "TEXT": captions})
    stats, _ = _stats([shard], artists=names)
    got = {item["name"]: item["count"] for item in stats["artists"]}
    assert got == _python_counts(captions, names)
    assert got["Monet"] == 4 and got["Claude Monet"] == 1 and got["Jakub Różalski"] == 3
    assert got["Joan Miró"] == 1 and got["Jean-Léon Gérôme"] == 1 and got["Nobody Here"] == 0 and got["!!!"] == 0


def test_artist_counts_never_join_neighbouring_captions_and_add_up_across_batches_and_shards(tmp_path, monkeypatch):
    """Captions are searched a batch at a time as one run of text: a name split over two captions
    ("... Andy" + "Warhol ...") is no mention, and counts per shard add up whatever the batch size."""
    from atlas.stages import stats as stats_stage

    names = ["Andy Warhol", "Warhol", "Monet", "Claude Monet"]
    first = ["pop art by Andy", "Warhol soup cans", "ANDY   WARHOL!", "", "Monet", "claude", "Monet.", None, "x Claude-Monet"]
    second = ["andy", " warhol", "a Warhol, a Monet", "Claude", "  Monet  ", "Andy Warhol and Andy Warhol",
              "🎨 Monet 🖌️", "𐐀 Warhol", "🎨🖌️"]  # characters above the BMP, looked up while two threads search
    shards = [write_shard(tmp_path / "a.parquet", {"URL": [f"http://a.com/{i}" for i in range(len(first))], "TEXT": first}),
              write_shard(tmp_path / "b.parquet", {"URL": [f"http://b.com/{i}" for i in range(len(second))], "TEXT": second})]
    expected = _python_counts(first + second, names)
    assert expected == {"Andy Warhol": 2, "Warhol": 6, "Monet": 6, "Claude Monet": 1}
    for batch in (1, 2, 3, 65_536):
        monkeypatch.setattr(stats_stage, "ARTIST_BATCH", batch)
        stats, _ = _stats(shards, artists=names)
        assert {item["name"]: item["count"] for item in stats["artists"]} == expected, batch
        rows = open_rows(resolve_sources([str(s) for s in shards], tmp_path), DataConfig(), policy=load_policy(DataConfig(), None))
        per_shard = stats_stage.count_artists(rows, names)
        assert per_shard[str(shards[0])] == {k: v for k, v in _python_counts(first, names).items() if v}
        assert per_shard[str(shards[1])] == {k: v for k, v in _python_counts(second, names).items() if v}


def test_artist_text_is_split_into_words_like_the_search_index_splits_it(shared_data):
    """The compiled folding of the artist pass (a character at a time) gives the words of
    :func:`atlas.text.fold.words` (the search index's and the blocklist's) for the whole caption,
    on every real caption and on text from other scripts and planes (astral letters with case,
    emoji, private use, combining marks, CJK and Arabic punctuation, letters whose lower case is
    longer in UTF-8), compatibility forms and characters that fold to many (ﷺ is 18 letters:
    the output buffer must grow), and zero-width and bidi characters inside words."""
    import numpy as np

    from atlas.stages import stats as stats_stage
    from atlas.text.fold import words

    captions = pq.read_table(shared_data / "laion400m-sample-10k.parquet", columns=["TEXT"]).column(0).to_pylist()
    captions = [c for c in captions if c] + [
        "𝐁𝐨𝐥𝐝 math letters 𝟏𝟐", "emoji 🎨🖌️ art", "private \ue000 use \U000f0001 x", "葛飾北斎「富嶽三十六景」",
        "مرحبا، بالعالم", "Ünïcödé—dash’quote «guillemets»", "a\u0301b\u0308c", "tab\tnew\nline\x00nul", "Ǆemal Ⅻ ½ ²",
        "ﬁne ligature", "ǅ title case", "\u200bzero\u200dwidth", "𠀀 ext-B ideograph", "𐐀𐐁 Deseret 𐐨", "ȺȾ grow",
        "KELVIN \u212a İstanbul ẞ", " \u0301 ", "\u0300", "ΣΊΣΥΦΟΣ", "x\U000e0041y tag",
        "Ｃｌａｕｄｅ Ｍｏｎｅｔ", "𝑴𝒐𝒏𝒆𝒕 𝓜𝓸𝓷𝓮𝓽 𝕄𝕠𝕟𝕖𝕥", "ⓜⓞⓝⓔⓣ ⒨⒪⒩⒠⒯", "ᴹᵒⁿᵉᵗ", "Mo\u00adnet Mo\u200dnet Mo\u200cnet",
        "\u200fMonet\u200f \u202eMo\u200enet\u202c", "ﷺ" * 300, "x" + "ﷺ" * 5 + "ﬁ" * 40, "한국어 \u1100\u1161\u11a8",
        "⑴⑵ ㎏㎒ ℡ ™ ¼", "ヶ月 ｶﾀｶﾅ ﾞ", "\ufeffbom\u2060joined\ufe0f", "⺀⺁x radicals 〆々ゝ",
    ]
    expected = [words(c) for c in captions]
    encoded = [text.encode("utf-8") for text in captions]
    raw = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.concatenate(([0], np.cumsum([len(e) for e in encoded]))).astype(np.int64)
    got_words, starts = stats_stage._words_of(raw, offsets, stats_stage._ascii_fold_table(), stats_stage._CharFolds())
    got = [got_words[starts[i]:starts[i + 1]].tobytes().decode("utf-8").strip(" ") for i in range(len(captions))]
    assert [(captions[i], a, b) for i, (a, b) in enumerate(zip(got, expected)) if a != b] == []
    folded = dict(zip(captions, got))
    assert folded["Ｃｌａｕｄｅ Ｍｏｎｅｔ"] == "claude monet" and folded["ⓜⓞⓝⓔⓣ ⒨⒪⒩⒠⒯"] == "monet monet"
    assert folded["Mo\u00adnet Mo\u200dnet Mo\u200cnet"] == "monet monet monet" == folded["𝑴𝒐𝒏𝒆𝒕 𝓜𝓸𝓷𝓮𝓽 𝕄𝕠𝕟𝕖𝕥"]


def test_artist_names_count_however_they_are_written(tmp_path):
    """A name written full-width, in math letters, circled, parenthesised, superscript, with
    zero-width or bidi characters inside is a mention, as the map's search finds it; a name in
    the list written full-width is the plain name; glued letters are still no mention."""
    from text_forms import FORMS

    captions = [f"water lilies by {write('claude monet')}, 1906" for write in FORMS.values()]
    captions += ["by claudemonet", "Monetary policy", "Édouard Manet", f"{FORMS['full-width']('monetary')} policy"]
    shard = write_shard(tmp_path / "a.parquet", {"URL": [f"http://a.com/{i}" for i in range(len(captions))],
                                                 "TEXT": captions})
    stats, _ = _stats([shard], artists=["Claude Monet", "Monet", "Ｍａｎｅｔ"])
    got = {item["name"]: item["count"] for item in stats["artists"]}
    assert got == {"Claude Monet": len(FORMS), "Monet": len(FORMS), "Ｍａｎｅｔ": 1}
    assert got == _python_counts(captions, ["Claude Monet", "Monet", "Ｍａｎｅｔ"])


def test_artist_counts_of_a_glob_source_are_kept_per_file(tmp_path):
    """A remote glob stays a pattern until DuckDB lists it; its files' mentions must still count
    (here a local glob given as one source, as a remote one would be)."""
    from atlas.data.sources import Source
    from atlas.stages import stats as stats_stage

    for name, captions in (("a", ["Monet in spring", "x"]), ("b", ["MONET", "after monet", "Manet"])):
        write_shard(tmp_path / f"{name}.parquet", {"URL": [f"http://{name}.com/{i}" for i in range(len(captions))],
                                                   "TEXT": captions})
    rows = open_rows(resolve_sources([str(tmp_path / "*.parquet")], tmp_path), DataConfig(), policy=load_policy(DataConfig(), None))
    rows.sources = [Source(str(tmp_path / "*.parquet"))]  # what a remote glob's rows hold (local ones are expanded)
    counts = stats_stage.count_artists(rows, ["Monet", "Manet"])
    assert counts == {str(tmp_path / "a.parquet"): {"Monet": 1}, str(tmp_path / "b.parquet"): {"Monet": 2, "Manet": 1}}
    stats, _ = compute_stats(rows, DataConfig(), ["Monet", "Manet"])
    assert {item["name"]: item["count"] for item in stats["artists"]} == {"Monet": 3, "Manet": 1}


def test_artist_counts_agree_with_sqlite_fts5(tmp_path):
    """On Latin text with accents, case and punctuation the fold agrees with FTS5's unicode61
    tokenizer (remove_diacritics 2), the rule the Datasette explorer of LAION counted with."""
    import sqlite3

    captions = ["Jakub Rozalski", "JAKUB RÓŻALSKI", "jakub-różalski!", "Różalski Jakub", "jakubróżalski",
                "Gérôme (Jean-Léon)", "jean leon gerome", "ÉCOLE de MIRÓ", "joan miro", "Joan_Miró", "x"]
    names = ["Jakub Różalski", "Jean-Léon Gérôme", "Joan Miró", "Miró", "École"]
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE c USING fts5(t, tokenize = 'unicode61 remove_diacritics 2')")
    con.executemany("INSERT INTO c VALUES (?)", [(c,) for c in captions])
    fts = {n: con.execute("SELECT count(*) FROM c WHERE c MATCH ?", ('"' + n + '"',)).fetchone()[0] for n in names}
    shard = write_shard(tmp_path / "a.parquet", {"URL": [f"http://a.com/{i}" for i in range(len(captions))],
                                                 "TEXT": captions})
    stats, _ = _stats([shard], artists=names)
    assert {item["name"]: item["count"] for item in stats["artists"]} == fts


def test_host_parsing_rules(tmp_path):
    shard = write_shard(
        tmp_path / "h.parquet",
        {
            "url": [
                "HTTPS://WWW.Example.COM/a.jpg",
                "http://user:secret@example.com:8080/b.jpg",
                "https://cdn.Example.com/c.jpg",
                "not a url",
                "javascript:alert(1)",
                None,
            ],
            "caption": ["a", "b", "c", "d", "e", "f"],
        },
    )
    stats, _ = _stats([shard])
    assert {h["host"]: h["count"] for h in stats["hosts"]} == {"example.com": 2, "cdn.example.com": 1}
    assert {d["domain"]: d["count"] for d in stats["domains"]} == {"example.com": 3}
    assert stats["invalid_urls"] == 2  # two non-null strings without a host


def test_scores_with_nan_inf_negative_and_missing_are_invalid(tmp_path):
    shard = write_shard(
        tmp_path / "s.parquet",
        {
            "URL": [f"https://x.org/{i}" for i in range(8)],
            "TEXT": ["a cat"] * 8,
            "similarity": [0.25, 0.28, 0.29, 0.35, float("nan"), float("inf"), -0.1, None],
            "punsafe": [0.1, 0.5, 0.49, 0.9, 0.0, 0.0, 0.0, 0.0],
        },
        {"similarity": pa.float64(), "punsafe": pa.float32()},
    )
    stats, _ = _stats([shard])
    sim = stats["histograms"]["similarity"]
    assert sim["invalid"] == 4
    assert sum(sim["counts"]) == 4
    edges = sim["edges"]
    for value in (0.25, 0.28, 0.29, 0.35):  # each lands in the bin that contains it
        i = next(k for k in range(len(edges) - 1) if edges[k] <= value + 1e-12 < edges[k + 1])
        assert sim["counts"][i] >= 1, value
    shares = {s["threshold"]: s for s in stats["shares"]["similarity"]}
    assert shares[0.28]["count"] == 3 and shares[0.28]["share"] == pytest.approx(3 / 4)
    assert stats["safety"]["unsafe_rows"] == 2  # punsafe >= 0.5 (0.5 itself is unsafe)
    text = stats_json(stats)
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


def test_schema_variant_re_laion(tmp_path):
    shard = write_shard(
        tmp_path / "relaion.parquet",
        {
            "key": ["000001", "000002"],
            "url": ["https://i.pinimg.com/x.jpg", "https://img.example.co.uk/y.jpg"],
            "caption": ["a red dress", "a blue car"],
            "original_width": [512, 1024],
            "original_height": [300, 2000],
            "similarity": [0.31, 0.33],
            "pwatermark": [0.1, 0.95],
            "punsafe": [0.01, 0.02],
        },
    )
    stats, _ = _stats([shard])
    assert stats["columns"]["width"] == "original_width"
    assert stats["columns"]["caption"] == "caption"
    assert {"similarity", "pwatermark", "punsafe", "width", "height", "caption_length"} <= set(stats["histograms"])
    assert "aesthetic" not in stats["histograms"]
    assert {d["domain"] for d in stats["domains"]} == {"pinimg.com", "example.co.uk"}
    # 2000 px is past the last edge: it is counted in the last ("2048+") bin, not dropped.
    assert sum(stats["histograms"]["height"]["counts"]) == 2


def test_column_override_and_unknown_override(tmp_path):
    shard = write_shard(tmp_path / "o.parquet", {"link": ["https://a.org/1"], "alt": ["hello"], "score": [0.4]})
    stats, _ = _stats([shard], columns={"caption": "alt", "similarity": "score"})
    assert stats["columns"]["caption"] == "alt"
    assert stats["histograms"]["similarity"]["invalid"] == 0
    with pytest.raises(DataError, match="'aesthetic' to column 'nope'"):
        _stats([shard], columns={"aesthetic": "nope"})


def test_several_shards_with_different_columns(tmp_path):
    a = write_shard(tmp_path / "a.parquet", {"URL": ["https://a.org/1"], "TEXT": ["x"]})
    b = write_shard(tmp_path / "b.parquet", {"URL": ["https://b.org/1"], "TEXT": ["y"], "punsafe": [0.7]})
    stats, _ = _stats([tmp_path / "*.parquet"])
    assert stats["rows"] == 2
    assert stats["histograms"]["punsafe"]["invalid"] == 1
    assert stats["safety"]["unsafe_rows"] == 1


def test_truncated_shard_is_named(tmp_path):
    good = write_shard(tmp_path / "good.parquet", {"URL": ["https://a.org/1"] * 100, "TEXT": ["x"] * 100})
    bad = tmp_path / "part-00001.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError) as error:
        _stats([tmp_path / "*.parquet"])
    assert "part-00001.parquet" in str(error.value)
    assert "Re-download" in str(error.value)


def test_truncated_shard_says_truncated_not_foreign(tmp_path):
    good = write_shard(tmp_path / "good.parquet", {"URL": ["https://a.org/1"] * 100, "TEXT": ["x"] * 100})
    (tmp_path / "half.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "tiny.parquet").write_bytes(b"PAR1PAR")
    for name in ("half.parquet", "tiny.parquet"):
        with pytest.raises(DataError) as error:
            _stats([tmp_path / name])
        message = str(error.value)
        assert f"{name} is a truncated parquet file" in message and "Re-download it" in message
        assert "not a parquet file" not in message and "magic bytes" not in message


@pytest.mark.parametrize("name, content, starts", [
    ("notes.txt", b"url,caption\nhttps://a.org/1.jpg,a cat\n", "'url,caption https://'"),
    ("hello.parquet", b"hello", "'hello'"),
    ("archive.parquet", b"\x1f\x8b\x08\x00" + bytes(40), "the bytes 1f 8b 08 00"),
])
def test_a_file_that_is_not_parquet_is_named_as_such(tmp_path, name, content, starts):
    """A text file given as a shard: say what it is, not "re-download it"."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        _stats([path])
    message = str(error.value)
    assert message == (f"{path} is not a parquet file (it starts with {starts}): remove it from [data] sources "
                       "or --data, or convert it to parquet.")


def test_a_file_that_is_not_parquet_through_the_command_line(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "captions.txt"
    path.write_text("a cat on a mat\n")
    env = dict(os.environ, CI="true", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "atlas", "stats", "--data", str(path)], capture_output=True,
                            text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert result.returncode == 2, result.stderr
    assert f"{path} is not a parquet file (it starts with 'a cat on a mat')" in result.stderr
    assert "Re-download" not in result.stderr and "Traceback" not in result.stderr


def test_corrupt_data_page_is_named(tmp_path):
    good = write_shard(
        tmp_path / "good.parquet", {"URL": [f"https://a.org/{i}" for i in range(5000)], "TEXT": ["caption"] * 5000}
    )
    data = bytearray(good.read_bytes())
    for i in range(200, 2000):  # scribble over data pages, keep the footer intact
        data[i] = 0xFF
    bad = tmp_path / "scribbled.parquet"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError) as error:
        _stats([bad])
    assert "scribbled.parquet" in str(error.value)


def test_empty_shards_are_fine(tmp_path):
    write_shard(tmp_path / "rows.parquet", {"URL": ["https://a.org/1"], "TEXT": ["x"]})
    empty = pa.table({"URL": pa.array([], pa.string()), "TEXT": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "empty.parquet")
    (tmp_path / "zero-bytes.parquet").write_bytes(b"")
    rows = open_rows(resolve_sources([str(tmp_path / "*.parquet")], Path.cwd()), DataConfig(), policy=load_policy(DataConfig(), None))
    stats, _ = compute_stats(rows, DataConfig())
    assert stats["rows"] == 1
    assert any("zero-bytes.parquet" in note for note in rows.notes)


def test_no_matching_files_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no parquet shards match"):
        resolve_sources([str(tmp_path / "nothing-*.parquet")], Path.cwd())


def test_examples_never_include_unsafe_rows(tmp_path):
    shard = write_shard(
        tmp_path / "u.parquet",
        {
            "URL": [f"https://a.org/{i}" for i in range(40)],
            "TEXT": [f"unsafe-marker-{i}" if i % 2 else f"fine caption {i}" for i in range(40)],
            "punsafe": [0.99 if i % 2 else 0.01 for i in range(40)],
        },
    )
    stats, examples = _stats([shard])
    assert stats["rows"] == 40 and stats["safety"]["unsafe_rows"] == 20
    shown = [e["caption"] for e in examples["captions"]]
    assert shown and not any("unsafe-marker" in c for c in shown)


def test_registrable_domain_rules():
    assert registrable_domain("i.pinimg.com") == "pinimg.com"
    assert registrable_domain("a.b.example.co.uk") == "example.co.uk"
    assert registrable_domain("192.168.0.1") == "192.168.0.1"
    assert not math.isnan(len(registrable_domain("localhost")))


def test_laion400m_nsfw_tags_are_counted_and_hidden(tmp_path):
    tags = ["UNLIKELY", "UNLIKELY", "UNSURE", "NSFW", None]
    shard = write_shard(
        tmp_path / "400m.parquet",
        {
            "SAMPLE_ID": [1, 2, 3, 4, 5],
            "URL": [f"https://a.org/{i}" for i in range(5)],
            "TEXT": ["fine one", "fine two", "unsure-marker", "nsfw-marker", "untagged"],
            "LICENSE": ["?", "cc-by", "?", "?", "?"],
            "NSFW": tags,
            "similarity": [0.31, 0.32, 0.33, 0.34, 0.35],
            "WIDTH": [100, 200, 300, 400, 500],
            "HEIGHT": [100, 200, 300, 400, 500],
        },
    )
    stats, examples = _stats([shard])
    nsfw = {c["value"]: c["count"] for c in stats["categories"]["nsfw"]}
    assert nsfw == {"UNLIKELY": 2, "UNSURE": 1, "NSFW": 1, "(missing)": 1}
    assert {c["value"]: c["count"] for c in stats["categories"]["license"]} == {"?": 4, "cc-by": 1}
    shown = {e["caption"] for e in examples["captions"]}
    assert shown == {"fine one", "fine two"}  # where the data has tags, untagged rows are not shown either


def test_huge_values_land_in_the_last_bin(tmp_path):
    shard = write_shard(
        tmp_path / "big.parquet",
        {"URL": ["https://a.org/1", "https://a.org/2"], "TEXT": ["x", "y"], "WIDTH": [1e9, 1e300], "similarity": [1e12, 0.3]},
        {"WIDTH": pa.float64(), "similarity": pa.float64()},
    )
    stats, _ = _stats([shard])
    assert stats["histograms"]["width"]["counts"][-1] == 2
    assert stats["histograms"]["similarity"]["counts"][-1] == 1
