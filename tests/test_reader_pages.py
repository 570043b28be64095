"""What readers see on the built demo site: no builder talk, demo links that point nowhere real,
the caption figures on the Bias page, nearest captions for every prompt, sourced readings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from helpers.browser import launch, serve, skip_reason

#: Builder talk that belongs in README and the build summary, never on a reader page.
BUILDER_TALK = re.compile(
    r"atlas generate|atlas build|atlas\.toml|prompts\.toml|gender-words\.toml|pretrained|"
    r"\[(site|data|sample|embed|project|generate|bias)\]|content/generated|--data"
)
RESERVED = (".example", ".test", ".invalid", ".localhost")


def _pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def test_no_reader_page_contains_commands_or_config_keys(shared):
    pages = _pages(shared["site"])
    assert len(pages) >= 9
    for page in pages:
        html = page.read_text(encoding="utf-8")
        found = BUILDER_TALK.findall(html)
        assert not found, f"{page.relative_to(shared['out'])}: {found}"
    meta = json.loads((shared["site"] / "map" / "data" / "meta.json").read_text())
    assert meta["notice"] and not BUILDER_TALK.search(meta["notice"])
    # The instructions are still there for the builder.
    build = json.loads((shared["site"] / "data" / "build.json").read_text())
    assert any("atlas generate" in w for w in build["warnings"])
    assert any("[data] sources" in w for w in build["warnings"])


def _is_reserved(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith(RESERVED) or host in ("example.com", "example.org", "example.net") or \
        host.endswith((".example.com", ".example.org", ".example.net"))


def test_demo_rows_point_only_at_reserved_domains_and_are_never_linked(shared):
    shards = sorted((shared["cache"] / "demo").rglob("*.parquet"))
    assert shards
    urls = [u for s in shards for u in pq.read_table(s, columns=["URL"]).column("URL").to_pylist()]
    assert len(urls) >= 100_000 and all(_is_reserved(u) for u in urls)
    out = shared["site"]
    meta = json.loads((out / "map" / "data" / "meta.json").read_text())
    assert meta["demo"] is True
    for page in _pages(out):
        for link in re.findall(r'(?:href|src)="(https?://[^"]+)"', page.read_text(encoding="utf-8")):
            assert not _is_reserved(link), f"{page.name} links a demo row: {link}"
    alt_text = (out / "alt-text" / "index.html").read_text(encoding="utf-8")
    assert "image link" not in alt_text and "<q class=\"caption\">" in alt_text


def test_demo_captions_read_as_alt_text():
    from atlas.stages.demo import demo_table

    captions = demo_table(3000, seed=0).column("TEXT").to_pylist()
    cars = [c for c in captions if re.search(r"\b(BMW|Toyota|Ford|Porsche|Honda|Volkswagen)\b", c)]
    assert cars
    pairs = {"BMW": "3 Series", "Porsche": "911", "Honda": "Civic", "Volkswagen": "Golf"}
    for caption in cars:
        for make, model in pairs.items():
            if make in caption:
                assert model in caption, caption  # no "Black BMW Corolla"
    assert not any("cat puppy" in c or "rabbit puppy" in c for c in captions)
    assert captions == demo_table(3000, seed=0).column("TEXT").to_pylist()  # deterministic


def test_bias_page_shows_caption_figures_for_every_occupation(shared):
    html = (shared["site"] / "bias" / "index.html").read_text(encoding="utf-8")
    body = html.split('<section class="bias-captions"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<th scope="row">([^<]+)</th>', body)
    assert len(rows) == 12 and "a software engineer" in rows
    assert "Download the figures as CSV" in body
    csv = (shared["site"] / "data" / "bias-captions.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv) == 13 and csv[0].startswith("occupation,")
    assert "not published yet" in html and "0 of 72" not in html


def test_stable_diffusion_page_shows_nearest_captions_for_all_prompts(shared):
    html = (shared["site"] / "stable-diffusion" / "index.html").read_text(encoding="utf-8")
    articles = html.split('<article class="prompt"')[1:]
    assert len(articles) == 8
    for article in articles:
        assert article.count('<span class="caption">') >= 3
        assert 'href="../map/#x=' in article
    assert html.count("not published yet") == 1  # said once, for the page


def test_every_page_has_a_social_image_and_every_reading_a_source(shared):
    out = shared["site"]
    assert (out / "og.png").is_file()
    for page in _pages(out):
        if page.name == "404.html":
            continue
        html = page.read_text(encoding="utf-8")
        match = re.search(r'<meta property="og:image" content="([^"]+)">', html)
        assert match, page
        assert (page.parent / match.group(1)).resolve() == (out / "og.png").resolve()
    readings = (out / "readings" / "index.html").read_text(encoding="utf-8")
    entries = re.findall(r"<p><strong>.*?</p>", readings, re.S)
    assert len(entries) >= 10
    for entry in entries:
        assert re.search(r'href="https://', entry), entry[:80]


PHONE_CHECK = """() => {
  const sizes = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.getBoundingClientRect();
    if (!box.width) continue;  // the other drawing (wide or narrow) is hidden
    const scale = box.width / svg.viewBox.baseVal.width;
    for (const t of svg.querySelectorAll('text.tick')) sizes.push(parseFloat(getComputedStyle(t).fontSize) * scale);
  }
  const wide = [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > innerWidth + 1
    && !t.closest('.table-scroll') && getComputedStyle(t).display !== 'block');
  return {sizes, pageWidth: document.documentElement.scrollWidth, unboxed: wide.length};
}"""


@pytest.mark.browser
@pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
def test_on_a_phone_chart_labels_stay_readable_and_tables_scroll_in_their_box(shared):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, serve(shared["site"]) as base:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        for path in ("clip-filtering/", "laion-5b/", "bias/", "alt-text/"):
            page.goto(base + path)
            found = page.evaluate(PHONE_CHECK)
            assert found["pageWidth"] <= 390, (path, found["pageWidth"])  # nothing widens the page
            assert found["unboxed"] == 0, path
            if path in ("clip-filtering/", "laion-5b/"):
                assert found["sizes"] and min(found["sizes"]) >= 11, (path, min(found["sizes"] or [0]))
        browser.close()
