"""A whole site built from a shard holding every hostile way of writing an opted-out URL or a
blocked word: no token of such a row reaches any published file (raw bytes, the search index
decoded), the statistics do not count opted-out rows, and the map's search in Chromium finds
none of them, while every ordinary row is still there (so the test can fail both ways)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from atlas.stages.search import SearchIndex

from helpers.builds import quiet_build
from helpers.content import write_content
from test_urls import OPTED_OUT_FORMS, SAME_IMAGE_FORMS

pytestmark = pytest.mark.slow  # builds a site

#: Captions that spell a word of the shipped blocklist in a way a reader (and the search) reads as it.
BLOCKED_CAPTIONS = [
    "ｐｏｒｎ ｎｕｄｅ",  # full-width
    "𝐩𝐨𝐫𝐧 𝐱𝐱𝐱",  # mathematical bold
    "𝓅ℴ𝓇𝓃 picture",  # mathematical script
    "ⓝⓤⓓⓔ beach",  # circled
    "p\u00adorn star",  # a soft hyphen inside the word
    "p\u200dorn video",  # a zero-width joiner inside
    "n\u200bude",  # a zero-width space inside
    "\u200fporn\u200f",  # right-to-left marks around
    "ᴾᴼᴿᴺ",  # modifier letters (superscript capitals)
    "PORN",
    "Pörn",
]
#: URLs whose words are blocked, however written.
BLOCKED_URLS = [
    "https://fine.example/ｐｏｒｎ.jpg",
    "https://fine.example/p%6Frn.jpg",
    "https://fine.example/%E2%93%9D%E2%93%A4%E2%93%93%E2%93%94.jpg",  # ⓝⓤⓓⓔ, percent-encoded
]
KEPT = 24


def _token(group: str, i: int) -> str:
    return f"zq{group}{i}zq"


def _rows() -> tuple[list[dict], set[str], set[str]]:
    rows, forbidden, kept = [], set(), set()
    for i, url in enumerate(OPTED_OUT_FORMS):
        rows.append({"URL": url, "TEXT": f"{_token('host', i)} a lighthouse at dusk", "hash": f"h{i}"})
        forbidden.add(_token("host", i))
    for i, url in enumerate(SAME_IMAGE_FORMS):
        rows.append({"URL": url, "TEXT": f"{_token('image', i)} a red bicycle", "hash": f"i{i}"})
        forbidden.add(_token("image", i))
    rows.append({"URL": "https://hashed.example/x.jpg", "TEXT": f"{_token('hash', 0)} an owl", "hash": " HashOpt "})
    forbidden.add(_token("hash", 0))
    for i, caption in enumerate(BLOCKED_CAPTIONS):
        rows.append({"URL": f"https://b{i}.example/x.jpg", "TEXT": f"{_token('word', i)} {caption}", "hash": f"b{i}"})
        forbidden.add(_token("word", i))
    for i, url in enumerate(BLOCKED_URLS):
        rows.append({"URL": url, "TEXT": f"{_token('link', i)} a garden", "hash": f"u{i}"})
        forbidden.add(_token("link", i))
    for i in range(KEPT):
        rows.append({"URL": f"https://kept{i}.example/{i}.jpg", "TEXT": f"{_token('kept', i)} a quiet harbour",
                     "hash": f"k{i}"})
        kept.add(_token("kept", i))
    return rows, forbidden, kept


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("canonical")
    rows, forbidden, kept = _rows()
    shard = root / "shards" / "hostile.parquet"
    shard.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), shard)
    pages = {
        "index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas captions n=200\n```\n\n```atlas table of=hosts\n```\n"
                    "\n```atlas table of=domains\n```\n\n```atlas map\n```\n",
    }
    toml = """
        [data]
        sources = ["../shards/*.parquet"]
        unscored = "keyword-filter"
        exclude = ["optout.txt"]

        [sample]
        size = 200

        [embed]
        method = "tfidf"

        [project]
        fit_size = 200
        n_neighbors = 5
        """
    content = write_content(root / "content", pages, toml)
    (content / "optout.txt").write_text(
        "# hosts, image URLs and hashes, written as oddly as the rows\n"
        "ＯＰＴＯＵＴ-Host.com.\n"
        "HTTPS://Fine.Example:443/optout.jpg#top\n"
        "hash: hashopt\n", encoding="utf-8")
    site = root / "site"
    quiet_build(content, site, root / "cache")
    return {"site": site, "forbidden": forbidden, "kept": kept, "rows": rows}


def test_no_token_of_a_hidden_row_is_in_any_published_file(hostile_site):
    site = hostile_site["site"]
    files = [p for p in site.rglob("*") if p.is_file()]
    everything = b"\n".join(p.read_bytes() for p in files)
    leaked = sorted(t for t in hostile_site["forbidden"] if t.encode() in everything)
    assert not leaked, leaked
    missing = sorted(t for t in hostile_site["kept"] if t.encode() not in everything)
    assert not missing, missing  # the ordinary rows are published
    assert b"optout-host" not in everything.lower()
    for word in ("ｐｏｒｎ", "𝐩𝐨𝐫𝐧", "ⓝⓤⓓⓔ", "p\u00adorn"):
        assert word.encode() not in everything


def test_the_search_index_has_none_of_them(hostile_site):
    index = SearchIndex(hostile_site["site"] / "map" / "data" / "search")
    assert all(index.postings(t) == [] for t in hostile_site["forbidden"])
    assert all(len(index.postings(t)) == 1 for t in hostile_site["kept"])
    for word in ("porn", "nude", "xxx", "optout"):
        assert index.postings(word) == [], word


def test_the_statistics_do_not_count_opted_out_rows(hostile_site):
    site = hostile_site["site"]
    stats = json.loads((site / "data" / "stats.json").read_text(encoding="utf-8"))
    opted_out = len(OPTED_OUT_FORMS) + len(SAME_IMAGE_FORMS) + 1
    assert stats["rows"] == len(hostile_site["rows"]) - opted_out
    assert stats["safety"]["excluded_rows"] == {"optout.txt": opted_out}
    hosts = {h["host"] for h in stats["hosts"]}
    assert not any("optout" in h for h in hosts), hosts
    assert stats["safety"]["blocklist_rows"] == len(BLOCKED_CAPTIONS) + len(BLOCKED_URLS)
    domains = (site / "data" / "domains.csv").read_text(encoding="utf-8")
    assert "optout" not in domains.lower()


@pytest.mark.browser
def test_the_maps_search_finds_none_of_them(hostile_site, chromium):
    from helpers.browser import serve

    with serve(hostile_site["site"]) as base:
        page = chromium.new_page()
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
        page.goto(base + "map/")
        page.evaluate("window.__atlasMap.ready")
        found = page.evaluate("""async (words) => {
            const out = {};
            for (const w of words) out[w] = (await window.__atlasMap.search(w)).total;
            return out;
        }""", sorted(hostile_site["forbidden"] | hostile_site["kept"]) + ["porn", "nude", "xxx", "ｐｏｒｎ"])
        page.close()
    assert {w: n for w, n in found.items() if n and w not in hostile_site["kept"]} == {}
    assert all(found[t] == 1 for t in hostile_site["kept"]), found
