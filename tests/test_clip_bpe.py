"""CLIP's tokenizer in the browser (static/js/text/clip-bpe.js) against open_clip's own, token for
token: the 10,000 real captions of ../shared, hostile strings (emoji, right-to-left, CJK, HTML
entities and markup, controls, a 10,000-character word, a 12,000-character paste) and seeded
random strings. Python writes the build's tokenizer files (atlas.models.cliptext) and open_clip's
ids into a JSON file that tests/js/clip-bpe.test.js reads under Node's test runner."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest
from helpers.paths import REPO, has_module

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not has_module("open_clip"), reason="needs open_clip (pip install torch==2.13.0 '.[ml]')"),
]

#: What a reader may type or paste.
HOSTILE = [
    "", "   ", "\u200b", "\ufeff\ufeff",
    "🐶🐱 cute pets 😍😍 #love", "👨‍👩‍👧 family 🏴󠁧󠁢󠁷󠁬󠁳󠁿 wales 🇫🇷", "emoji🎉glued🎉together",
    "שלום עולם — مرحبا بالعالم", "\u200fright\u200e-to-left \u202bembedded\u202c", "עברית123english",
    "中文 日本語のテキスト 한국어", "Ｆｕｌｌ-width ＡＢＣ　１２３！", "ｳﾀｰﾝ halfwidth ﾊﾝｶｸ",
    "&amp;amp;amp; &lt;b&gt; &eacute; &EACUTE; P&EACUTE;REZ &#x41;&#65;&#128;&#0;&#xd800;&#1114112; &notit; &copy &amp",
    "<b>bold</b> &amp;amp; &lt;script&gt;", "line one &amp;amp;\n<i>two</i> &amp;amp;\nthree &amp;amp;",
    '<img src=x onerror="alert(1)"><script>alert(2)</script> a red dress', "&nbsp;x&nbsp;&#xfeff;y&#x2028;z",
    "&#x1c;&#133;&#150;&#x80;&#X41;&#00065;&#x;&#;&", "&AMP; &NTILDE; &nTILDE; &SZLIG; &Jscr;ohn &HilbertSpace;",
    "ﬁne ﬂour ﬃ ǅ ĳ ŉ", "“curly” ‘quotes’ it’s „low‟ ʼn", "a\x00b\x07c\x1bd\x7f e\ufffc f\u206a",
    "\x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m", "a\x85b \x80 \x81 \x9f\x9d", "a\r\nb\rc\u2028d\u2029e\x0bf\x0cg",
    "\ud800x \udc00y", "tab\tand\x1c\x1d\x1e\x1fseparators",
    "<start_of_text> hello <end_of_text>", "<START_OF_TEXT>", "<|endoftext|>", "I'm you're they've we'll he'd it's don't 'ſ 'S",
    "aͅb ͅ", "1234567 ½ ² ٣ ௫ Ⅻ", "e\u0301 İstanbul ΣΑΣ ß ǈ ﬀ", "Ꭰꭰ ᏸ", "\U0001d400\U0001d7d8 math",
    "x" * 10_000, "a small dog asleep on a sofa " * 400, "!!!???...,,,;;;" * 50, "a" * 77 + " b",
]
#: ftfy's fix_encoding (mojibake repair) is not in the JavaScript: texts it changes may differ.
MOJIBAKE = ["cafÃ© donâ€™t", "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", "Ãºnico"]


def _mojibake(text: str) -> bool:
    """Whether ftfy's fix_encoding changes the text (the one part of basic_clean not in clip-bpe.js)."""
    import ftfy

    return ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False)


def _random_texts(count: int, seed: int = 0) -> list[str]:
    """Seeded strings over a hostile alphabet (letters of several scripts, marks, spaces, controls,
    entity pieces, quotes, emoji), to find what the fixed lists miss."""
    pieces = list("aAzZ09 '\"&;#<>-_.,!?") + ["&amp;", "&lt;", "&#x41;", "&#1", "\n", "\r", "\t", "\x85", "\xa0", "\u3000",
                                                "\u0301", "\u0345", "é", "ß", "İ", "Σ", "ς", "ﬁ", "Ａ", "ｶ", "中", "한", "ש",
                                                "م", "٣", "½", "😀", "👍🏽", "\u200d", "\u200b", "\ufeff", "\x1b[3m", "\x00",
                                                "‘", "”", "<start_of_text>", "'s", "'LL", "ſ", "\U0001d400"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def test_the_browsers_clip_tokenizer_gives_open_clips_ids(tmp_path, shared_data):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs)")
    from atlas.models import cliptext

    tokenizer = cliptext._tokenizer_module().SimpleTokenizer()
    settings = cliptext.write_tokenizer(tokenizer, tmp_path)
    captions = [c for c in pq.read_table(shared_data / "laion400m-sample-10k.parquet").column("TEXT").to_pylist()
                if isinstance(c, str)]
    assert len(captions) >= 1000
    randoms = _random_texts(2000)
    texts = captions + HOSTILE + randoms + MOJIBAKE
    cases = [{"text": t, "ids": tokenizer([t])[0].tolist(), "known": _mojibake(t)} for t in texts]
    data = {"bpe": str(tmp_path / cliptext.BPE), "clean": str(tmp_path / cliptext.CLEAN), "settings": settings,
            "cases": cases, "out": str(tmp_path / "got.json")}
    (tmp_path / "cases.json").write_text(json.dumps(data))
    run = subprocess.run([node, "--test", "tests/js/clip-bpe.test.js"], cwd=REPO, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "ATLAS_CLIP_TOKENS": str(tmp_path / "cases.json")})
    out = json.loads((tmp_path / "got.json").read_text())
    same = [case["ids"] == got for case, got in zip(cases, out["got"])]
    n = len(captions)
    groups = {"real captions": (0, n), "hostile strings": (n, n + len(HOSTILE)),
              "random strings": (n + len(HOSTILE), n + len(HOSTILE) + len(randoms)), "mojibake": (len(texts) - len(MOJIBAKE), len(texts))}
    print("\nclip-bpe.js vs open_clip, identical token rows: " + "; ".join(
        f"{name} {sum(same[a:b])}/{b - a} ({sum(c['known'] for c in cases[a:b])} mojibake)" for name, (a, b) in groups.items())
        + f"; {out['ms']:.0f} ms in Node for all {len(texts)}")
    assert run.returncode == 0 and "# fail 0" in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]
    assert all(ok or case["known"] for ok, case in zip(same, cases))  # only mojibake may differ
    assert all(same[:n])
    assert settings == {"kind": "clip-bpe", "context_length": 77, "specials": ["<start_of_text>", "<end_of_text>"],
                        "sot": 49406, "eot": 49407, "pad": 0, "clean": "lower", "vocab_size": 49408}


def test_tokenizers_other_than_open_clips_bpe_are_refused():
    from atlas.models import cliptext

    module = cliptext._tokenizer_module()
    with pytest.raises(ValueError, match="not open_clip's SimpleTokenizer"):
        cliptext.tokenizer_settings(object())
    with pytest.raises(ValueError, match="cleans or reduces"):
        cliptext.tokenizer_settings(module.SimpleTokenizer(clean="canonicalize"))
