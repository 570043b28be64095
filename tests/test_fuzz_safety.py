"""Property-based: sites built from hostile rows never run script, link a non-http(s) URL or
publish a row that may not be shown (README "Safety of the published site").

Hypothesis generates small shards mixing HTML, script, attribute breaks, javascript:/data:/
vbscript: URLs, Jinja and Markdown syntax, bidi overrides, NUL bytes, lone surrogates, 100 kB
strings and NaN/±inf/negative/huge scores (sometimes an NSFW column, sometimes a score column of
the wrong type). Each example is a full ``atlas build``; every published file is checked, and
the first examples are also opened in Chromium (every page, the map with every point hovered and
pinned). Parquet stores UTF-8 only, so lone surrogates enter as U+FFFD, as any writer must store
them. The example budget is fixed and the search derandomised, so CI time is bounded.

A second, fast property checks the blocklist's fold alone: text mixing blocked words written
every way (``text_forms.FORMS``) with zero-width, bidi and compatibility characters is blocked
exactly where the search index's tokens hold a blocked word.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.build import build
from atlas.core.errors import DataError
from atlas.core.report import Reporter

from helpers.content import tree_snapshot, write_content
from text_forms import FORMS

#: Full builds tried (each a whole site); the first BROWSER_EXAMPLES are also driven in Chromium.
MAX_EXAMPLES = int(os.environ.get("ATLAS_FUZZ_EXAMPLES", "40"))
BROWSER_EXAMPLES = 4
THRESHOLD = 0.5
COUNTS = {"examples": 0, "rows": 0, "hidden_rows": 0, "browser": 0, "refused": 0}

PAYLOADS = [
    "<script>window.pwned=1</script>", '<img src=x onerror="window.pwned=1">', '"><svg onload=window.pwned=1>',
    "'><iframe srcdoc='<script>parent.pwned=1</script>'></iframe>", "</q></li><script>window.pwned=1</script>",
    "</textarea></title><script>window.pwned=1</script>", '" autofocus onfocus="window.pwned=1" x="',
    "{{ 7*7 }}", "{% include 'base.html' %}", "{{ config.__class__ }}", "{# c #}", "${7*7}",
    "[x](javascript:window.pwned=1)", "![i](data:text/html,<script>window.pwned=1</script>)", "**bold** _it_",
    "<https://evil.example/>", "```atlas captions n=5\n```", "<!--", "]]>", "\\u003cscript\\u003e",
    "\u202e\u2066rtl\u2069", "\x00", "\ud800", "\udfff", "\r\n", "&lt;b&gt;", "javascript:window.pwned=1", "\ufeff",
]
BAD_URLS = [
    "javascript:window.pwned=1", "JaVaScRiPt:window.pwned=1", " javascript:window.pwned=1",
    "java\tscript:window.pwned=1", "data:text/html,<script>window.pwned=1</script>", "vbscript:msgbox(1)",
    "https://ok.example/\"onmouseover=\"window.pwned=1", "https://ok.example/'><script>window.pwned=1</script>",
    "//evil.example/x.jpg", "ftp://ok.example/x.jpg", "file:///etc/passwd", "https://ok.example/{{7*7}}.jpg",
    "http://[::1]:99999/x", "", "https://", "https://ok.example/\u202ex.jpg",
]
SCORES = st.one_of(
    st.floats(min_value=0.0, max_value=THRESHOLD, exclude_max=True),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.1, 0.4999, 0.5, -1.0, -0.01, 1e308, -1e308, math.nan, math.inf, -math.inf]),
)
TAGS = st.one_of(st.none(), st.sampled_from(["UNLIKELY", "unlikely", "UNSURE", "NSFW", "", "<b>UNLIKELY</b>"]))


def _utf8(text: str) -> str:
    """What a UTF-8 writer stores: lone surrogates become U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _fragment():
    return st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=12), st.just("x" * 100_000))


#: The opt-out list of the fuzz site names this host (written plainly); rows name it in every
#: way a browser still reads as that host (atlas.data.urls: the canonical form).
OPTOUT_HOST = "optout-host.example"
OPTOUT_URL = st.builds(
    lambda lead, scheme, user, host, port, sep, path, frag, tail: f"{lead}{scheme}{user}{host}{port}{sep}{path}{frag}{tail}",
    st.sampled_from(["", " ", "\t", "\n ", "\x0c"]),
    st.sampled_from(["https://", "HTTPS://", "https:/", "https:", "http://", "https:\\\\", "hTTp:\\/"]),
    st.sampled_from(["", "u@", "u:p@", "@"]),
    st.sampled_from([OPTOUT_HOST, "OPTOUT-Host.Example", "ｏｐｔｏｕｔ-host.example", "%6Fptout-host.example",
                     "optout-host.example.", "optout-host.example%2e", "img.optout-host.example",
                     "www.optout-host.example", "opt\tout-host.example", "optout-host.ｅｘａｍｐｌｅ"]),
    st.sampled_from(["", ":443", ":80"]),
    st.sampled_from(["/", "\\"]),
    st.text(alphabet="abc/.%20?=", max_size=8),
    st.sampled_from(["", "#x", "#"]),
    st.sampled_from(["", " ", "\n"]),
)
#: The blocklist of the fuzz site holds this made-up word; captions spell it as readers (and
#: the search's fold) still read it: compatibility forms and invisible characters inside.
BLOCKED_WORD = "quokkaz"
_LETTER_FORMS = [
    lambda c: c, lambda c: c.upper(), lambda c: chr(0xFF41 + ord(c) - 97),  # full-width
    lambda c: chr(0x1D41A + ord(c) - 97),  # mathematical bold
    lambda c: chr(0x24D0 + ord(c) - 97),  # circled
    lambda c: chr(0x1D5BA + ord(c) - 97),  # mathematical sans-serif
]
_INVISIBLE = ["", "", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\u200e", "\u200f", "\ufeff"]
BLOCKED_SPELLING = st.lists(st.tuples(st.sampled_from(range(len(_LETTER_FORMS))), st.sampled_from(_INVISIBLE)),
                            min_size=len(BLOCKED_WORD), max_size=len(BLOCKED_WORD)).map(
    lambda forms: "".join(_LETTER_FORMS[f](c) + (gap if i < len(BLOCKED_WORD) - 1 else "")
                          for i, (c, (f, gap)) in enumerate(zip(BLOCKED_WORD, forms))))

ROW = st.fixed_dictionaries({
    "caption": st.lists(_fragment(), max_size=5).map("".join),
    "url": st.one_of(st.sampled_from(BAD_URLS), st.just(None), st.text(max_size=20).map(lambda t: f"https://ok.example/{t}")),
    "punsafe": SCORES,
    "nsfw": TAGS,
    "optout_url": st.one_of(st.none(), st.none(), OPTOUT_URL),
    "blocked": st.one_of(st.none(), st.none(), BLOCKED_SPELLING),
})
DATASET = st.fixed_dictionaries({
    "rows": st.lists(ROW, min_size=1, max_size=10),
    "nsfw": st.booleans(),
    "punsafe_as_text": st.sampled_from([False, False, False, True]),
})


def may_show(row: dict, with_nsfw: bool) -> bool:
    """The README's rule, written independently of atlas.data (opted-out and blocked rows are
    known by how the strategy made them)."""
    if row.get("optout_url") is not None or row.get("blocked") is not None:
        return False
    p = row["punsafe"]
    if p is None or not (0 <= p < THRESHOLD):
        return False
    return not with_nsfw or (row["nsfw"] or "").upper() == "UNLIKELY"


def _marker(i: int) -> str:
    return f"mk{COUNTS['examples']:03d}r{i:02d}zq"


def write_dataset(dataset: dict, path: Path) -> list[tuple[str, bool]]:
    """The shard, each row's caption and URL tagged with a unique marker; returns (marker, may show)."""
    captions, urls, tagged = [], [], []
    for i, row in enumerate(dataset["rows"]):
        marker = _marker(i)
        blocked = f" {row['blocked']} " if row.get("blocked") is not None else ""
        captions.append(_utf8(f"{marker} {row['caption']}{blocked}"))
        url = row["url"] if row.get("optout_url") is None else row["optout_url"]
        if url is not None and url.startswith("https://ok.example/"):
            url = f"https://ok.example/{marker}/{url[len('https://ok.example/'):]}"
        urls.append(None if url is None else _utf8(url))
        tagged.append((marker, may_show(row, dataset["nsfw"])))
    columns = {"URL": pa.array(urls, pa.string()), "TEXT": pa.array(captions, pa.string())}
    scores = [r["punsafe"] for r in dataset["rows"]]
    columns["punsafe"] = (pa.array([None if s is None else repr(s) for s in scores], pa.string())
                          if dataset["punsafe_as_text"] else pa.array(scores, pa.float64()))
    if dataset["nsfw"]:
        columns["NSFW"] = pa.array([r["nsfw"] for r in dataset["rows"]], pa.string())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return tagged


URL_ATTRIBUTES = {"href", "src", "action", "formaction", "poster", "data", "xlink:href", "background", "cite"}
SAFE_URL = re.compile(r"^(https?://|[^:]*$|[^:/?#]*[/?#])", re.I)


class _Audit(HTMLParser):
    """Collects what could run script in a page: handlers, URL attributes, inline scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems, self._in_script, self.scripts = [], False, []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            value = (value or "").strip()
            if name.startswith("on") or name == "srcdoc":
                self.problems.append(f"<{tag} {name}=...>")
            if name in URL_ATTRIBUTES and not SAFE_URL.match(re.sub(r"[\x00-\x20]", "", value)):
                self.problems.append(f"<{tag} {name}={value[:60]!r}>")
        if tag == "script":
            src = dict(attrs).get("src")
            if src is not None and not src.endswith(("static/js/map/main.js", "static/js/text/atlas-text.js", "static/js/sorted.js")):
                self.problems.append(f"<script src={src[:60]!r}>")
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def audit_site(site: Path, tagged: list[tuple[str, bool]]) -> None:
    """Every published file: no hidden row's marker, no script from data, only http(s) links;
    and every row that may be shown is on the map (the rule is exact, not merely strict)."""
    hidden = [marker for marker, shown in tagged if not shown]
    for path in site.rglob("*"):
        if not path.is_file():
            continue
        body = path.read_bytes()
        for marker in hidden:
            assert marker.encode() not in body, f"a row that may not be shown is in {path}"
        if path.suffix == ".html":
            audit = _Audit()
            audit.feed(body.decode("utf-8"))
            assert not audit.problems, (path, audit.problems)
            assert not any("pwned" in script for script in audit.scripts), path
    text = "".join(chunk.read_text(encoding="utf-8") for chunk in (site / "map" / "data" / "text").glob("*.json"))
    missing = [marker for marker, shown in tagged if shown and marker not in text]
    assert not missing, f"rows that may be shown are missing from the map: {missing}"
    for chunk in (site / "map" / "data" / "detail").glob("*.json"):
        for detail in json.loads(chunk.read_text(encoding="utf-8")):
            assert detail[0] is None or re.match(r"^https?://[^\s\"'<>\\`]+$", detail[0]), detail[0]


def browse(page, base: str, site: Path) -> None:
    """Open every page; on the map hover and pin every point and search; nothing may run."""
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pages = sorted(str(p.relative_to(site).parent) for p in site.rglob("index.html")) + ["404.html"]
    for rel in pages:
        url = base + ("" if rel == "." else rel if rel.endswith(".html") else rel + "/")
        page.goto(url)
        page.wait_for_timeout(150)
        assert page.evaluate("window.pwned") is None, rel
    meta = json.loads((site / "map" / "data" / "meta.json").read_text())
    if meta["count"]:
        page.goto(base + "map/")
        page.wait_for_function("window.__atlasFirstFrame > 0", timeout=15_000)
        xy = np.frombuffer((site / "map" / "data" / "points.bin").read_bytes()[: meta["count"] * 4], "<u2")
        bounds = meta["bounds"]
        for qx, qy in xy.reshape(-1, 2)[:12]:
            x, y = qx / 65535 * bounds["span"] + bounds["x0"], qy / 65535 * bounds["span"] + bounds["y0"]
            cx, cy = page.evaluate("([x, y]) => window.__atlasMap.dataToClient(x, y)", [x, y])
            page.mouse.move(cx - 15, cy - 15)
            page.mouse.move(cx, cy, steps=2)
            page.wait_for_timeout(60)
            page.mouse.click(cx, cy)
            page.wait_for_timeout(60)
        page.fill("#map-search", "a")
        page.press("#map-search", "Enter")
        page.wait_for_timeout(300)
        protocols = page.evaluate("[...document.querySelectorAll('a[href], img[src]')].map(e => new URL(e.href || e.src).protocol)")
        assert set(protocols) <= {"http:", "https:"}, protocols
        assert page.evaluate("window.pwned") is None
    assert not dialogs


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    pages = {
        "index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas captions n=50\n```\n\n```atlas captions n=24 kind=html\n```\n",
        "more.md": "---\ntitle: More\nnav: More\norder: 5\n---\n# More\n\n```atlas table of=hosts\n```\n\n```atlas map\n```\n\n```atlas sorted\n```\n",
    }
    toml = textwrap.dedent(f"""\
        [data]
        unsafe_threshold = {THRESHOLD}
        blocklist = "words.txt"
        exclude = ["optout.txt"]

        [sample]
        size = 50

        [project]
        fit_size = 100
        n_neighbors = 5
        """)
    content = write_content(root / "content", pages, toml)
    (content / "words.txt").write_text(f"{BLOCKED_WORD}\n", encoding="utf-8")
    (content / "optout.txt").write_text(f"{OPTOUT_HOST}\n", encoding="utf-8")
    env = {"root": root, "content": content, "cache": root / "cache", "site": root / "site", "browser": None}
    yield env
    print(f"\nhostile inputs tried: {COUNTS}")
    if env["browser"] is not None:
        env["browser"][1].close()
        env["browser"][0].stop()


def _browser(env):
    from helpers.browser import launch, skip_reason

    if skip_reason():
        return None
    if env["browser"] is None:
        from playwright.sync_api import sync_playwright

        manager = sync_playwright().start()
        env["browser"] = (manager, launch(manager))
    return env["browser"][1]


@pytest.mark.slow
@pytest.mark.browser
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(dataset=DATASET)
def test_hostile_rows_never_run_leak_or_link_elsewhere(fuzz_env, dataset):
    COUNTS["examples"] += 1
    shard = fuzz_env["root"] / "shards" / "part-0.parquet"
    tagged = write_dataset(dataset, shard)
    COUNTS["rows"] += len(tagged)
    COUNTS["hidden_rows"] += sum(1 for _, shown in tagged if not shown)
    site = fuzz_env["site"]
    if dataset["punsafe_as_text"]:  # a wrong type: refused, previous site untouched
        before = tree_snapshot(site) if site.exists() else None
        with pytest.raises(DataError, match="punsafe"):
            build(fuzz_env["content"], site, data=[str(shard)], cache_dir=fuzz_env["cache"], reporter=Reporter(quiet=True))
        assert (tree_snapshot(site) if site.exists() else None) == before
        COUNTS["refused"] += 1
        return
    build(fuzz_env["content"], site, data=[str(shard)], cache_dir=fuzz_env["cache"], reporter=Reporter(quiet=True))
    audit_site(site, tagged)
    if COUNTS["browser"] < BROWSER_EXAMPLES:
        browser = _browser(fuzz_env)
        if browser is not None:
            from helpers.browser import serve

            COUNTS["browser"] += 1
            with serve(site) as base:
                context = browser.new_context()
                context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                              else route.abort())
                try:
                    browse(context.new_page(), base, site)
                finally:
                    context.close()


# ----------------------------------------------------------------------------- the blocklist's fold

#: Words of the property's blocklist, and characters that make folding hard: zero-width and bidi
#: characters, soft hyphen, Hangul filler and jamo, marks (nonspacing, spacing, enclosing),
#: case rules (ß ẞ ς Σ İ ı, the Kelvin sign), compatibility forms, CJK, and separators.
FOLD_WORDS = ["porn", "nude", "xxx", "red panda", "fisting", "ｓｅｘ", "섹스", "東京", "straße", "σισυφοσ"]
FOLD_CHARACTERS = (
    "\u200b\u200c\u200d\u00ad\u200e\u200f\u202a\u202e\u202c\u2066\u2067\u2069\u2060\ufeff\ufe0f\u034f\u3164"
    "\U000e0041\u1100\u1161\u11a8\u0301\u0308\u093e\u20dd\u00df\u1e9e\u03c2\u03a3\u0130\u0131\u212a"
    "ﬁﬆ①⒫ⓝ𝐩𝕠ｒᵖ™½²\u3000\u00a0 -.'東京タ섹"
    "pornudexsfitgaedσισυφοσ"
)


@pytest.fixture(scope="module")
def fold_rules(tmp_path_factory):
    """A DuckDB connection as atlas opens them, and the Policy of a content folder blocking FOLD_WORDS."""
    from atlas.core.config import DataConfig
    from atlas.data.rows import connect
    from atlas.data.policy import load_policy

    content = tmp_path_factory.mktemp("fold")
    (content / "words.txt").write_text("\n".join(FOLD_WORDS) + "\n", encoding="utf-8")
    return connect(), load_policy(DataConfig(blocklist="words.txt"), content)


def _fold_text():
    written = st.builds(lambda form, word: FORMS[form](word) if word.isascii() else word,
                        st.sampled_from(sorted(FORMS)), st.sampled_from(FOLD_WORDS))
    piece = st.one_of(written, st.sampled_from(FOLD_WORDS), st.text(st.sampled_from(FOLD_CHARACTERS), max_size=6),
                      st.text(max_size=4))
    return st.lists(piece, max_size=6).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(_fold_text(), min_size=1, max_size=20), in_url=st.booleans())
def test_what_the_search_finds_the_blocklist_blocks(fold_rules, texts, in_url):
    """For text mixing blocked words in every written form with zero-width, bidi, case-rule and
    compatibility characters: whenever the search index's tokens of the caption (or URL) hold a
    blocklist entry's tokens one after another, the SQL ``blocked`` predicate is true, and it is
    true nowhere else."""
    from atlas.data.policy import blocked_sql
    from atlas.stages.search import tokens

    fold_con, policy = fold_rules
    entries = policy.blocklist
    assert len(entries) == len(FOLD_WORDS)
    texts = [_utf8(t) for t in texts]
    captions = [None if in_url else t for t in texts]
    urls = [f"https://ok.example/{t}" if in_url else "https://ok.example/x.jpg" for t in texts]
    fold_con.register("fold_t", pa.table({"caption": pa.array(captions, pa.string()), "url": pa.array(urls, pa.string())}))
    from atlas.data.urls import DECODED_SQL

    blocked = [b for (b,) in fold_con.execute(
        f"SELECT {blocked_sql(policy)} FROM (SELECT caption, url AS url_raw, {DECODED_SQL.format(col='url')} "
        "AS url_decoded FROM fold_t)").fetchall()]

    def holds(text, entry):
        found, want = tokens(text), entry.split(" ")
        return any(found[i:i + len(want)] == want for i in range(len(found) - len(want) + 1))

    for text, caption, url, got in zip(texts, captions, urls, blocked):
        found = any(holds(caption, e) or holds(url, e) or holds(unquote(url, errors="replace"), e) for e in entries)
        assert got == found, (text, tokens(caption or url), got)
