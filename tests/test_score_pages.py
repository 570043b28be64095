"""The map sample sorted by score (atlas/site/scores.py, templates/sorted.html, the sorted widget):
sorted, paged, only rows that may be shown (the hostile rows of the other safety tests never
appear), captions escaped, thumbnails only for real http(s) links, the unsafe list's note, no list
for a score the data lacks, and in Chromium: the order, the next page and a link to the right
point on the map."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from atlas.site import scores

from helpers.builds import quiet_build
from helpers.content import write_content
from test_safety_canonical import BLOCKED_CAPTIONS, BLOCKED_URLS

pytestmark = pytest.mark.slow  # builds a site

KEPT = 230  # ordinary rows: three pages of the unsafe list
THRESHOLD = 0.5
#: Unsafe scores that keep a row off the site, whatever its other scores.
HIDDEN_PUNSAFE = [0.5, 0.93, 1.0, 1e300, math.inf, -math.inf, math.nan, None, -0.01, -1e-300, -1.0]
#: Values of the other scores that are no score: such a row is on the map but not on that list.
BROKEN = [math.nan, math.inf, -math.inf, None, -1.0, -0.5, 1e9, 11.0]
SCRIPT = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1"> & "quoted" zqhtmlzq'
LONG = "zqlongzq " + "a long caption " * 700


def _token(group: str, i: int) -> str:
    return f"zq{group}{i}zq"


def _rows() -> tuple[list[dict], set[str]]:
    """LAION-shaped rows: ordinary ones with distinct scores, then every hostile kind, each made to
    top the lists if it got through. Returns the rows and the tokens that must never be published."""
    rows, hidden = [], set()
    for i in range(KEPT):
        url = (f"https://img{i % 5}.photos-site.com/{i}.jpg" if i % 3 else
               f"https://thumbs.demo{i}.example/{i}.jpg" if i % 2 else "javascript:alert(1)")
        rows.append({"URL": url, "TEXT": f"{_token('kept', i)} a quiet harbour", "punsafe": round(0.002 * i, 4),
                     "AESTHETIC_SCORE": round(2 + 0.03 * i, 4), "pwatermark": round(i / 300, 4),
                     "similarity": round(0.28 + 0.0005 * i, 5)})
    top = {"AESTHETIC_SCORE": 9.99, "pwatermark": 0.999, "similarity": 0.99}
    for i, value in enumerate(HIDDEN_PUNSAFE):
        rows.append({"URL": f"https://img0.photos-site.com/u{i}.jpg", "TEXT": f"{_token('unsafe', i)} a harbour",
                     "punsafe": value, **top})
        hidden.add(_token("unsafe", i))
    for i, caption in enumerate(BLOCKED_CAPTIONS):
        rows.append({"URL": f"https://img1.photos-site.com/b{i}.jpg", "TEXT": f"{_token('word', i)} {caption}",
                     "punsafe": 0.499, **top})
        hidden.add(_token("word", i))
    for i, url in enumerate(BLOCKED_URLS):
        rows.append({"URL": url, "TEXT": f"{_token('link', i)} a garden", "punsafe": 0.499, **top})
        hidden.add(_token("link", i))
    for i, value in enumerate(BROKEN):  # shown, but with no valid aesthetic, watermark or similarity score
        rows.append({"URL": f"https://img2.photos-site.com/n{i}.jpg", "TEXT": f"{_token('broken', i)} a pier",
                     "punsafe": 0.001, "AESTHETIC_SCORE": value, "pwatermark": value, "similarity": value})
    rows.append({"URL": "https://img3.photos-site.com/html.jpg", "TEXT": SCRIPT, "punsafe": 0.4995, **top})
    rows.append({"URL": "https://img3.photos-site.com/long.jpg", "TEXT": LONG, "punsafe": 0.0001,
                 "AESTHETIC_SCORE": 9.5, "pwatermark": 0.0, "similarity": 0.3})
    return rows, hidden


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("score-pages")
    rows, hidden = _rows()
    shard = root / "shards" / "rows.parquet"
    shard.parent.mkdir()
    types = {"punsafe": pa.float64(), "AESTHETIC_SCORE": pa.float64(), "pwatermark": pa.float64(),
             "similarity": pa.float64()}
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("URL", pa.string()), ("TEXT", pa.string()),
                                                                *types.items()])), shard)
    pages = {"index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas sorted\n```\n\n"
                         "```atlas sorted score=punsafe\n```\n\n```atlas map\n```\n"}
    toml = """
        [data]
        sources = ["../shards/*.parquet"]

        [sample]
        size = 400

        [embed]
        method = "tfidf"

        [project]
        fit_size = 400
        n_neighbors = 5
        """
    content = write_content(root / "content", pages, toml)
    out = root / "site"
    report = quiet_build(content, out, root / "cache")
    assert report.published
    return {"site": out, "rows": rows, "hidden": hidden}


class _Rows(HTMLParser):
    """The rows of a sorted page as a reader sees them: caption, score, thumbnail, map link."""

    def __init__(self):
        super().__init__()
        self.rows, self.links, self.scripts, self.handlers = [], {}, 0, []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.handlers += [name for name in attrs if name.startswith("on")]
        if tag == "script" and "src" not in attrs:
            self.scripts += 1
        classes = (attrs.get("class") or "").split()
        if tag == "li" and "sorted-row" in classes:
            self.rows.append({"row": int(attrs["data-row"]), "caption": "", "score": "", "thumb": None, "map": None})
        elif self.rows and tag == "img":
            self.rows[-1]["thumb"] = attrs
        elif self.rows and tag == "a" and "sorted-map" in classes:
            self.rows[-1]["map"] = attrs["href"]
        elif tag == "a" and attrs.get("rel") in ("prev", "next"):
            self.links[attrs["rel"]] = attrs["href"]
        if "sorted-caption" in classes:
            self._in = "caption"
        elif tag == "strong" and self.rows:
            self._in = "score"

    def handle_endtag(self, tag):
        if tag in ("p", "strong"):
            self._in = None

    def handle_data(self, data):
        if self._in and self.rows:
            self.rows[-1][self._in] += data


def _page(site: Path, rel: str) -> tuple[str, _Rows]:
    html = (site / rel).read_text(encoding="utf-8")
    parsed = _Rows()
    parsed.feed(html)
    return html, parsed


def _list(site: Path, name: str) -> list[dict]:
    rows, number = [], 1
    while (site / "sorted" / name / ("index.html" if number == 1 else f"{number}.html")).exists():
        rows += _page(site, f"sorted/{name}/" + ("index.html" if number == 1 else f"{number}.html"))[1].rows
        number += 1
    return rows


def test_each_list_is_sorted_highest_first_and_holds_every_valid_row(site):
    by_token = {re.search(r"zq\w+?zq", r["TEXT"]).group(0): r for r in site["rows"]}
    for name, column in (("punsafe", "punsafe"), ("aesthetic", "AESTHETIC_SCORE"), ("pwatermark", "pwatermark"),
                         ("similarity", "similarity")):
        listed = _list(site["site"], name)
        values = [float(r["score"]) for r in listed]
        assert values == sorted(values, reverse=True), name
        tokens = [re.search(r"zq\w+?zq", r["caption"]).group(0) for r in listed]
        assert len(tokens) == len(set(tokens))
        valid = {t for t, r in by_token.items() if t not in site["hidden"] and r.get(column) is not None
                 and math.isfinite(r[column]) and scores.BY_NAME[name].low <= r[column] <= scores.BY_NAME[name].high}
        assert set(tokens) == valid, name
        for token, row in zip(tokens, listed):
            digits = scores.BY_NAME[name].digits
            assert float(row["score"]) == pytest.approx(by_token[token][column], abs=0.6 * 10 ** -digits)


def test_rows_that_may_not_be_shown_are_on_no_sorted_page(site):
    files = sorted((site["site"] / "sorted").rglob("*.html"))
    assert len(files) >= 4
    text = "\n".join(f.read_text(encoding="utf-8") for f in files)
    assert [t for t in site["hidden"] if t in text] == []
    listed = {name: {r["row"] for r in _list(site["site"], name)} for name in scores.BY_NAME}
    captions = {name: " ".join(r["caption"] for r in _list(site["site"], name)) for name in scores.BY_NAME}
    for i, value in enumerate(BROKEN):  # a broken score keeps a row off that list only
        token = _token("broken", i)
        assert f"{token} " in captions["punsafe"]
        for name in ("aesthetic", "pwatermark", "similarity"):
            score = scores.BY_NAME[name]
            valid = value is not None and math.isfinite(value) and score.low <= value <= score.high
            assert (f"{token} " in captions[name]) == valid, (name, value)
    assert len(listed["punsafe"]) == KEPT + 2 + len(BROKEN)


def test_the_unsafe_list_starts_just_below_the_threshold_and_says_why(site):
    html, parsed = _page(site["site"], "sorted/punsafe/index.html")
    first = float(parsed.rows[0]["score"])
    assert first < THRESHOLD and first == pytest.approx(0.4995, abs=1e-3)
    note = re.search(r'<p class="sorted-threshold"[^>]*>(.*?)</p>', html, re.DOTALL).group(1)
    assert "0.5 or more are never shown" in note and "starts below 0.5" in note
    for name in ("aesthetic", "pwatermark", "similarity"):
        assert "sorted-threshold" not in (site["site"] / "sorted" / name / "index.html").read_text(encoding="utf-8")


def test_pages_hold_a_hundred_rows_and_link_their_neighbours(site):
    folder = site["site"] / "sorted" / "punsafe"
    files = sorted((p.name for p in folder.iterdir()), key=lambda name: (name != "index.html", name))
    pages = math.ceil((KEPT + 2 + len(BROKEN)) / scores.PAGE_SIZE)
    assert files == ["index.html"] + [f"{n}.html" for n in range(2, pages + 1)]
    html, first = _page(site["site"], "sorted/punsafe/index.html")
    assert len(first.rows) == scores.PAGE_SIZE and "prev" not in first.links and first.links["next"] == "../../sorted/punsafe/2.html"
    assert '<ol class="sorted-rows" start="1">' in html and 'aria-current="page">1</a>' in html
    html, middle = _page(site["site"], "sorted/punsafe/2.html")
    assert middle.links == {"prev": "../../sorted/punsafe/", "next": "../../sorted/punsafe/3.html"}
    assert f'start="{scores.PAGE_SIZE + 1}"' in html
    html, last = _page(site["site"], f"sorted/punsafe/{pages}.html")
    assert "next" not in last.links and 0 < len(last.rows) <= scores.PAGE_SIZE
    assert f'<a href="../../sorted/punsafe/{pages}.html" aria-current="page">{pages}</a>' in html
    # The tabs link every list; the sitemap-free site still links the lists from the home page.
    for name in ("punsafe", "aesthetic", "pwatermark", "similarity"):
        assert f'href="../../sorted/{name}/"' in html
    home = (site["site"] / "index.html").read_text(encoding="utf-8")
    assert home.count('class="atlas-sorted"') == 5 and 'href="sorted/aesthetic/"' in home


def test_captions_are_escaped_and_cut(site):
    files = sorted((site["site"] / "sorted").rglob("*.html"))
    for path in files:
        _, parsed = _page(site["site"], path.relative_to(site["site"]).as_posix())
        assert parsed.scripts == 0 and parsed.handlers == [], path
    html, parsed = _page(site["site"], "sorted/punsafe/index.html")
    assert "<script>window.pwned" not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert [r["caption"] for r in parsed.rows if "zqhtmlzq" in r["caption"]] == [SCRIPT]
    long = [r["caption"] for r in _list(site["site"], "aesthetic") if r["caption"].startswith("zqlongzq")]
    assert len(long) == 1 and len(long[0]) <= 1001 and long[0].endswith("…")


def test_thumbnails_only_for_real_http_links_without_referrer(site):
    by_token = {re.search(r"zq\w+?zq", r["TEXT"]).group(0): r for r in site["rows"]}
    html, _ = _page(site["site"], "sorted/aesthetic/index.html")
    listed = _list(site["site"], "aesthetic")
    with_thumb = 0
    for row in listed:
        url = by_token[re.search(r"zq\w+?zq", row["caption"]).group(0)]["URL"]
        if url.startswith("https://img"):
            assert row["thumb"]["src"] == url
            assert row["thumb"]["referrerpolicy"] == "no-referrer" and row["thumb"]["loading"] == "lazy"
            assert row["thumb"]["alt"] == ""
            with_thumb += 1
        else:  # javascript: and reserved example hosts: a placeholder, no image
            assert row["thumb"] is None, url
    assert with_thumb and with_thumb < len(listed)
    assert "no image link" in html and "javascript:" not in html and ".example/" not in html


def test_thumbnail_urls_go_through_the_safe_link_helper():
    assert scores.thumbnail_url("https://i.pinimg.com/a.jpg", demo=False) == "https://i.pinimg.com/a.jpg"
    assert scores.thumbnail_url(" HTTPS://I.PINIMG.com:443/a b.jpg#x", demo=False) == "https://i.pinimg.com/a%20b.jpg"
    for url in ("javascript:alert(1)", "data:image/png;base64,AAAA", "//evil.com/x.jpg", "ftp://a.com/x.jpg",
                "https://a.example/x.jpg", "https://www.example.com/x.jpg", "https://example.org./x.jpg", None, ""):
        assert scores.thumbnail_url(url, demo=False) is None, url
    assert scores.thumbnail_url("https://i.pinimg.com/a.jpg", demo=True) is None


def test_map_links_name_the_point_and_its_place_as_the_map_reads_them(site):
    meta = json.loads((site["site"] / "map" / "data" / "meta.json").read_text())
    column = next(c for c in meta["points"]["columns"] if c["name"] == "xy")
    xy = np.frombuffer((site["site"] / "map" / "data" / "points.bin").read_bytes(), dtype="<u2",
                       count=column["length"], offset=column["offset"]).reshape(-1, 2)
    captions = []
    for chunk in range(meta["chunks"]):
        captions += json.loads((site["site"] / "map" / "data" / "text" / f"{chunk:05d}.json").read_text())
    for name in ("punsafe", "similarity"):
        for row in _list(site["site"], name):
            found = re.fullmatch(r"\.\./\.\./map/#x=([\d.]+)&y=([\d.]+)&z=6&p=(\d+)", row["map"])
            assert found, row["map"]
            x, y, point = float(found[1]), float(found[2]), int(found[3])
            assert captions[point] == row["caption"]
            assert (x, y) == pytest.approx(tuple(xy[point] / meta["encoding"]["xy_max"]), abs=2e-5)


def test_a_list_caps_its_pages_and_a_missing_score_gets_none(tmp_path, monkeypatch):
    n = 1_000
    rng = np.random.default_rng(0)
    aesthetic = rng.uniform(0, 10, n)
    aesthetic[:10] = np.nan
    pq.write_table(pa.table({
        "row_id": np.arange(n), "url": [f"https://h.com/{i}.jpg" for i in range(n)],
        "caption": [f"c{i}" for i in range(n)], "host": ["h.com"] * n, "domain": ["h.com"] * n,
        "similarity": np.full(n, np.nan), "punsafe": pa.nulls(n, pa.float64()), "aesthetic": aesthetic,
    }), tmp_path / "sample.parquet")
    monkeypatch.setattr(scores, "PAGE_SIZE", 7)
    monkeypatch.setattr(scores, "MAX_PAGES", 3)
    lists = scores.collect({"sample": tmp_path}, demo=False, threshold=0.5)
    assert [item.score.name for item in lists] == ["aesthetic"]  # no pwatermark column, no valid similarity
    item = lists[0]
    assert item.scored == n - 10 and item.sample_rows == n and len(item.rows) == 21 and item.pages == 3
    best = np.sort(aesthetic[10:])[::-1][:21]
    assert [r["value"] for r in item.rows] == pytest.approx(best.tolist())
    assert all(r["map_href"] == "" for r in item.rows)  # no map in this build
    assert scores.collect({}, demo=False, threshold=0.5) == []


def test_data_without_scores_publishes_no_list_and_the_pages_say_so(tmp_path):
    """As the real LAION-400M sample: URL and caption only (shown here through the keyword filter)."""
    shard = tmp_path / "shards" / "plain.parquet"
    shard.parent.mkdir()
    pq.write_table(pa.table({"URL": [f"https://img.photos-site.com/{i}.jpg" for i in range(60)],
                             "TEXT": [f"a harbour at dusk {i}" for i in range(60)]}), shard)
    content = write_content(tmp_path / "content", {
        "index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas sorted score=aesthetic,pwatermark\n```\n"}, """
        [data]
        sources = ["../shards/*.parquet"]
        unscored = "keyword-filter"

        [embed]
        method = "tfidf"

        [project]
        n_neighbors = 5
        """)
    assert quiet_build(content, tmp_path / "site", tmp_path / "cache").published
    assert not (tmp_path / "site" / "sorted").exists()
    home = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "have no aesthetic scores or watermark scores, so there is no list" in home and "sorted/" not in home


def test_page_numbers_keep_the_ends_and_the_neighbourhood():
    assert scores.page_numbers(1, 1) == [1]
    assert scores.page_numbers(1, 10) == [1, 2, 3, None, 10]
    assert scores.page_numbers(6, 10) == [1, None, 4, 5, 6, 7, 8, None, 10]
    assert scores.page_numbers(10, 10) == [1, None, 8, 9, 10]


def test_the_widget_says_in_reader_words_when_there_is_no_list(tmp_path):
    from atlas.core.config import parse_config
    from atlas.core.errors import ContentError
    from atlas.site.widgets import WidgetContext, render_widget

    ctx = WidgetContext(config=parse_config({}), content_dir=tmp_path, page="x", source=tmp_path / "x.md",
                        root="../", stats={}, outputs={}, extra={"sorted": []})
    html = render_widget("atlas sorted score=punsafe", ctx, "x.md:1")
    assert "no unsafe scores" in html and "punsafe" not in html.replace("score=punsafe", "")
    with pytest.raises(ContentError, match="no score 'beauty'"):
        render_widget("atlas sorted score=beauty", ctx, "x.md:1")


@pytest.mark.browser
def test_a_reader_pages_through_a_list_and_follows_a_row_to_the_map(site, chromium):
    from helpers.browser import serve

    with serve(site["site"]) as base:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "sorted/similarity/")
        first = page.eval_on_selector_all(".sorted-score strong", "els => els.map(e => Number(e.textContent))")
        assert len(first) == scores.PAGE_SIZE and first == sorted(first, reverse=True)
        # Thumbnails that cannot load (every other host is unreachable here) say so; the lazy ones
        # further down have not been asked for yet.
        top = ".sorted-row:nth-child(-n+4) .sorted-thumb"
        page.wait_for_function(f"document.querySelectorAll('{top}.is-loading').length === 0", timeout=10_000)
        notes = page.eval_on_selector_all(top + " .sorted-thumb-note", "els => els.map(e => e.textContent)")
        assert notes.count("image unavailable") >= 2 and page.eval_on_selector_all(top + " img", "els => els.length") == 0
        page.click("a.sorted-next >> nth=0")
        page.wait_for_url("**/sorted/similarity/2.html")
        second = page.eval_on_selector_all(".sorted-score strong", "els => els.map(e => Number(e.textContent))")
        assert second and second == sorted(second, reverse=True) and second[0] <= first[-1]
        caption = page.inner_text(".sorted-row >> nth=2 >> .sorted-caption")
        href = page.get_attribute(".sorted-row >> nth=2 >> a.sorted-map", "href")
        point = int(href.rsplit("p=", 1)[1])
        x, y = (float(v) for v in re.search(r"x=([\d.]+)&y=([\d.]+)", href).groups())
        page.click(".sorted-row >> nth=2 >> a.sorted-map")
        page.wait_for_url("**/map/**")
        page.evaluate("window.__atlasMap.ready")
        page.wait_for_function("window.__atlasMap.state && window.__atlasMap.state().pinned >= 0")
        state = page.evaluate("window.__atlasMap.state()")
        assert state["pinned"] == point
        assert state["view"]["x"] == pytest.approx(x, abs=1e-4) and state["view"]["y"] == pytest.approx(y, abs=1e-4)
        assert page.evaluate("(id) => window.__atlasMap.caption(id)", point) == caption
        page.wait_for_function("(text) => document.querySelector('#map-card')?.innerText.includes(text)", arg=caption)
        assert errors == []
        page.close()
