"""The search stage: the index over the map's captions is exact (whole words, phrases by
position), and the page's JavaScript folds, tokenises and reads it exactly as Python wrote it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from atlas.stages.search import (
    SearchIndex,
    decode_varints,
    encode_varints,
    fold,
    read,
    tokens,
    tokens_many,
    varint,
    write_index,
)

from text_forms import FORMS
from helpers.paths import REPO

MAP_JS = REPO / "themes" / "default" / "static" / "js" / "map"
TRICKY = [
    "Crème BRÛLÉE", "Straße STRASSE", "ΟΔΟΣ οδος", "ﬁne Ｆｕｌｌ ①", "東京タワー at night", "İstanbul ıI",
    "t-shirt don't 42cm", "Ǆemal ǅ ǆ", "naïve café résumé", "𝒜𝒷𝒸 math", "\u0000nul\u2028sep", "ÅNGSTRÖM Ångström",
    "Русский Ёлка", "עברית العربية हिन्दी ไทย", "", "   ", "emoji 😀 only", 'onerror="x" <script>',
    "STRAẞE straße", "⒫⒪⒭⒩ ⑴⑽ ㈠ 🄟 🉀", "\u3164x\u3164", "\u1100\u1161\u11a8 한국어", "x\U000e0041y\U000e007f",
    "\u034fa\u034fb", "ｶﾀｶﾅ ﾊﾟ", "\u2067\u202eevil\u202c\u2069", "⺀⺁x radicals 〆々ゝ",
] + [write(w) for write in FORMS.values() for w in ("porn", "red panda", "claude monet")]


@pytest.fixture(scope="module")
def captions(shared_data) -> list[str]:
    return pq.read_table(shared_data / "laion400m-sample-10k.parquet").column("TEXT").to_pylist()


@pytest.fixture(scope="module")
def index(captions, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    write_index(captions, folder)
    return folder


def test_varints_round_trip_at_their_edges():
    values = np.array([0, 1, 127, 128, 255, 16383, 16384, 2**21, 2**28 - 1, 2**35 + 3], dtype=np.uint64)
    data = encode_varints(values)
    assert decode_varints(data)[0] == values.tolist()
    assert b"".join(varint(int(v)) for v in values) == data
    assert encode_varints(np.zeros(0)) == b""


def test_folding_and_tokens():
    assert fold("Crème BRÛLÉE Straße ΟΔΟΣ") == "creme brulee strasse οδοσ"
    assert fold("ｐｏｒｎ 𝐩𝐨𝐫𝐧 ⓝⓤⓓⓔ ⒫⒪⒭⒩ ᵖᵒʳⁿ ﬁsting STRAẞE") == "porn porn nude porn porn fisting strasse"
    assert tokens("p\u00adorn p\u200dorn p\u200corn p\u200born \u200fp\u200eorn\u200f") == ["porn"] * 5
    assert tokens("Cat-shaped CATHEDRAL") == ["cat", "shaped", "cathedral"]
    assert tokens("東京 night") == ["東", "京", "night"]
    assert tokens(None) == [] and tokens("") == []
    assert tokens_many(TRICKY + [None]) == [tokens(t) for t in TRICKY + [None]]


def test_folding_twice_changes_nothing():
    """A folded word is its own fold (ẞ lower-cases to ß, which folds to ss: written ss at once),
    so a query folded again, or a blocklist entry copied from a folded caption, is the same word."""
    codes = [c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    once = fold("\n".join(map(chr, codes)))
    assert fold(once) == once


def test_bracketed_letters_are_exactly_those_whose_decomposition_is_in_brackets():
    """fold.py and text.js list them by hand (JavaScript has no table): the list is Unicode's."""
    import unicodedata

    from atlas.text.fold import _BRACKETED

    bracketed = {c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF
                 and len(d := unicodedata.normalize("NFKD", chr(c))) >= 3 and d[0] + d[-1] in ("()", "\u3014\u3015")}
    listed = {c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF and _BRACKETED.match(chr(c))}
    assert listed == bracketed
    script = (MAP_JS / "text.js").read_text(encoding="utf-8")
    assert "\\u2474-\\u2487\\u249c-\\u24b5\\u3200-\\u321e\\u3220-\\u3243\\u{1f110}-\\u{1f12a}\\u{1f240}-\\u{1f248}" in script


def test_whole_words_only_and_exact_on_the_real_sample(captions, index):
    search = SearchIndex(index)
    words = [tokens(c) for c in captions]
    for word in ("cat", "the", "dress", "of", "2", "wedding", "zzzzzz"):
        expected = [i for i, t in enumerate(words) if word in t]
        assert search.postings(word) == expected, word
    # "cat" is a word: no cathedral, no education, no catalogue.
    cat = search.postings("cat")
    assert cat and all("cat" in words[i] for i in cat)
    substring = [i for i, c in enumerate(captions) if "cat" in (c or "").lower()]
    assert len(substring) > 5 * len(cat)
    # Positions are where the word is in the caption.
    for point, where in search.positions("red").items():
        assert where == [k for k, w in enumerate(words[point]) if w == "red"]


def test_a_one_word_query_fetches_a_small_part_of_the_index(captions, index):
    info = json.loads((index / "index.json").read_text())
    assert info["docs"] == len(captions) and info["postings"] == sum(len(set(tokens(c))) for c in captions)
    size = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
    caption_bytes = sum(len((c or "").encode()) for c in captions)
    assert size < caption_bytes
    # Every word's shard (all a one-word query fetches) is a small fraction of the captions.
    shards = [p.stat().st_size for p in (index / "terms").iterdir()]
    assert len(shards) == info["shards"] > 1 and max(shards) < caption_bytes / 20
    assert read(index) is not None and read(index.parent / "nowhere") is None


def test_an_empty_map_has_an_empty_index(tmp_path):
    summary = write_index([None, "", "  !! "], tmp_path)
    assert summary.terms == 0 and summary.postings == 0
    assert SearchIndex(tmp_path).postings("anything") == []


def _node(script: str, data) -> object:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs); .ci/run installs it")
    run = subprocess.run([node, "--input-type=module", "-e", script], input=json.dumps(data), capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_javascript_tokenises_every_caption_as_python_does(captions):
    texts = TRICKY + [c or "" for c in captions]
    script = f"""
      import {{ tokens }} from '{(MAP_JS / "text.js").as_uri()}';
      let input = ''; process.stdin.on('data', (d) => input += d);
      process.stdin.on('end', () => console.log(JSON.stringify(JSON.parse(input).map(tokens))));
    """
    got = _node(script, texts)
    mismatches = [(t, g, tokens(t)) for t, g in zip(texts, got) if g != tokens(t)]
    assert not mismatches, mismatches[:5]


def _javascript_search(index: Path, queries: list[str]) -> dict[str, list[int]]:
    """Each query evaluated by the page's index.js over the index files, and ``dres*`` completed."""
    script = f"""
      import {{ readFileSync }} from 'node:fs';
      import {{ evaluate, parseShard, parsePositions }} from '{(MAP_JS / "index.js").as_uri()}';
      const dir = '{index.as_posix()}/';
      const info = JSON.parse(readFileSync(dir + 'index.json'));
      const bytes = (p) => {{ const b = readFileSync(dir + p); return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); }};
      const name = (i) => String(i).padStart(4, '0');
      const source = {{
        terms: async (i) => parseShard(bytes(`terms/${{name(i)}}.bin`)),
        positions: async (i) => parsePositions(bytes(`pos/${{name(i)}}.bin`), parseShard(bytes(`terms/${{name(i)}}.bin`))),
      }};
      let input = ''; process.stdin.on('data', (d) => input += d);
      process.stdin.on('end', async () => {{
        const out = {{}};
        for (const q of JSON.parse(input)) out[q] = [...(await evaluate(q, info, source)).ids];
        out['dres*'] = [...(await evaluate('dres', info, source, {{ prefix: true, maxExpansions: 1000 }})).ids];
        console.log(JSON.stringify(out));
      }});
    """
    return _node(script, queries)


def test_javascript_reads_the_index_python_wrote(captions, index):
    words = [tokens(c) for c in captions]
    queries = ["cat", "the", "red dress", '"red dress"', '"of the"', "wedding dress", "t-shirt", "zzzz",
               '"for sale"', "東"]

    def brute(query: str) -> list[int]:
        import regex

        out = set(range(len(captions)))
        for quoted, bare in regex.findall(r'"([^"]*)"|(\S+)', query):
            phrase = tokens(quoted or bare)
            if not phrase:
                continue
            out &= {i for i, t in enumerate(words)
                    if any(t[k:k + len(phrase)] == phrase for k in range(len(t) - len(phrase) + 1))}
        return sorted(out)

    got = _javascript_search(index, queries)
    for query in queries:
        assert got[query] == brute(query), query
    assert len(got['"red dress"']) < len(got["red dress"])
    assert got["dres*"] == sorted({i for i, t in enumerate(words) if any(w.startswith("dres") for w in t)})


def test_a_word_however_written_is_found_by_the_search_in_python_and_javascript(tmp_path):
    """Full-width, math, circled, parenthesised and superscript letters, ligatures, zero-width and
    bidi characters inside: the index files the caption under the plain word, and the page's
    search (index.js, text.js folding the query) finds every such caption and nothing glued."""
    captions = [f"hot {write('porn')} pics, {write('red panda')}!" for write in FORMS.values()]
    captions += ["clean", "hot pornx pics", *(f"{write('xporn')} {write('redpanda')}" for write in FORMS.values())]
    write_index(captions, tmp_path)
    search = SearchIndex(tmp_path)
    expected = list(range(len(FORMS)))
    assert search.postings("porn") == expected
    got = _javascript_search(tmp_path, ["porn", '"red panda"', "ｐｏｒｎ", "p\u00adorn", "\u200fporn\u200f"])
    assert got["porn"] == got['"red panda"'] == got["ｐｏｒｎ"] == got["p\u00adorn"] == got["\u200fporn\u200f"] == expected
