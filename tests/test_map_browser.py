"""The map page in headless Chromium: it draws, hovers, searches, restores shared views, falls
back to Canvas2D without WebGL2, and shows hostile captions as inert text. Each test forces one
renderer (``?renderer=webgl2``: WebGL2 on SwiftShader; ``?renderer=canvas2d``), so both draw for
real; one test lets the page choose."""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.browser import build_map_site, canvas_pixels, drawn_at, empty_spot, serve, skip_reason, synthetic_inputs

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> hostile'
KNOWN = "a lonely zebra unicorn riding a bicycle"
EXTRA = [
    {"x": -16.0, "y": -16.0, "url": "https://images.invalid/zebra.png", "caption": KNOWN, "host": "images.invalid",
     "domain": "images.invalid", "aesthetic": 7.25, "similarity": 0.41, "punsafe": 0.01, "pwatermark": 0.2},
    {"x": 16.0, "y": 16.0, "url": "javascript:window.__pwned=3", "caption": HOSTILE, "host": "evil.test",
     "domain": "evil.test", "aesthetic": 3.0, "similarity": 0.3, "punsafe": 0.02, "pwatermark": 0.1},
]
BACKGROUND = np.array([11, 14, 20])
HIGHLIGHT = np.array([255, 225, 77])
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f0"
    "1f0005000201a5f6a3c40000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapsite")
    inputs = synthetic_inputs(root / "inputs", 6000, seed=3, extra_rows=EXTRA)
    build_map_site(root / "site", inputs, chunk_size=1000, source_rows=250_000)
    captions = pq.read_table(inputs["sample"]).column("caption").to_pylist()
    coords = np.load(inputs["coords"])
    with serve(root / "site") as base:
        yield {"base": base, "captions": captions, "coords": coords}


class MapPage:
    def __init__(self, browser, base, no_webgl=False, image=None, renderer=None):
        #: "webgl2" or "canvas2d": forced with the page's ?renderer= switch; None: the page chooses.
        self.renderer = renderer
        self.page = browser.new_page(viewport={"width": 1200, "height": 800})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", self._console)
        if no_webgl:
            self.page.add_init_script("""(() => {
              const original = HTMLCanvasElement.prototype.getContext;
              HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
                return kind === 'webgl2' ? null : original.call(this, kind, ...rest);
              };
            })();""")

        def route(r):
            url = r.request.url
            if url.startswith(base):
                return r.continue_()
            if image and url.startswith("https://images.invalid/"):
                return r.fulfill(status=200, content_type="image/png", body=PNG_1PX)
            return r.abort()

        self.page.route("**/*", route)
        self.base = base

    def _console(self, message):
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if where.startswith("https://images.invalid/") or where.endswith("favicon.ico"):
            return  # an image that is (deliberately) unavailable
        self.errors.append(f"console: {message.text} ({where})")

    def open(self, suffix=""):
        if self.renderer:
            query, _, fragment = suffix.partition("#")
            suffix = f"{query}{'&' if query else '?'}renderer={self.renderer}" + (f"#{fragment}" if fragment else "")
        self.page.goto(self.base + "map/" + suffix)
        self.page.wait_for_function("window.__atlasFirstFrame > 0", timeout=15_000)
        self.page.wait_for_timeout(200)
        if self.renderer:
            assert self.page.evaluate("window.__atlasMap.renderer") == self.renderer
        return self

    def pixels(self) -> np.ndarray:
        from PIL import Image

        png = self.page.locator("#map-canvas").screenshot()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)

    def client(self, x, y):
        return self.page.evaluate("([x, y]) => window.__atlasMap.dataToClient(x, y)", [x, y])

    def hover(self, x, y):
        cx, cy = self.client(x, y)
        self.page.mouse.move(cx - 20, cy - 20)
        self.page.mouse.move(cx, cy, steps=3)

    def search(self, text):
        self.page.fill("#map-search", text)
        self.page.press("#map-search", "Enter")
        self.page.wait_for_function(
            "document.querySelector('#map-search-count').dataset.done === '1' && !window.__atlasMap.searching()",
            timeout=15_000)
        return int(self.page.get_attribute("#map-search-count", "data-count"))

    def close(self):
        self.page.close()


@pytest.fixture
def map_page(chromium, site):
    pages = []

    def make(**kwargs):
        page = MapPage(chromium, site["base"], **kwargs)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()


def non_background(pixels: np.ndarray) -> int:
    return int((np.abs(pixels - BACKGROUND).sum(axis=2) > 40).sum())


def highlighted(pixels: np.ndarray) -> int:
    return int((np.abs(pixels - HIGHLIGHT).sum(axis=2) < 40).sum())


def test_map_draws_points_and_summary(map_page):
    m = map_page().open()
    # The tests' Chromium runs with --disable-gpu: WebGL there is software-emulated (or absent), which
    # the map declines unless asked (?renderer=webgl), so it must have chosen Canvas2D by itself.
    assert m.page.get_attribute("#map-app", "data-renderer") == "canvas2d"
    assert non_background(m.pixels()) > 5_000
    summary = m.page.inner_text("#map-summary")
    assert "6,002 points, sample of 250,000 rows, embedded with tfidf-hashing-512" in summary
    assert "TF-IDF" in m.page.inner_text(".map-notice")
    # Coarse cluster labels at the start, a legend for the colouring, no errors.
    labels = m.page.locator(".map-label:visible").all_inner_texts()
    assert "Fashion" in labels
    assert "Fashion" in m.page.inner_text("#map-legend")
    assert not m.errors


def test_canvas2d_fallback_draws_without_webgl2(map_page):
    m = map_page(no_webgl=True).open()
    assert m.page.evaluate("window.__atlasMap.renderer") == "canvas2d"
    assert non_background(m.pixels()) > 5_000
    m.hover(-16, -16)
    m.page.wait_for_selector("#map-tooltip:not([hidden]) >> text=zebra unicorn", timeout=5_000)
    assert not m.errors


@pytest.mark.parametrize("renderer", ["webgl2", "canvas2d"])
def test_each_renderer_draws_the_points_where_they_are(map_page, site, renderer):
    # Software WebGL is only used when asked for (it is slower than Canvas2D), so ask: the tests'
    # Chromium has WebGL2 through SwiftShader (tests/helpers/browser.py), and open() asserts it was used.
    m = map_page(renderer=renderer).open()
    # The canvas itself (not the labels over it): the two lone points are drawn where they are,
    # the emptiest spot of the map is left as background, and the blobs cover thousands of pixels.
    gap = empty_spot(site["coords"])
    assert drawn_at(m.page, [m.client(-16, -16), m.client(16, 16), m.client(*gap)]) == [True, True, False]
    assert non_background(canvas_pixels(m.page)) > 5_000
    m.hover(-16, -16)
    m.page.wait_for_selector("#map-tooltip:not([hidden]) >> text=zebra unicorn", timeout=5_000)
    assert m.search("zebra") == 1
    assert not m.errors


def test_hovering_a_point_shows_caption_scores_and_unavailable_image(map_page):
    m = map_page(renderer="webgl2").open()
    m.hover(-16, -16)
    tooltip = m.page.locator("#map-tooltip")
    tooltip.locator("text=zebra unicorn").wait_for(timeout=5_000)
    text = tooltip.inner_text()
    assert KNOWN in text and "images.invalid" in text and "7.25" in text
    m.page.wait_for_selector("#map-tooltip .map-thumb.is-unavailable", timeout=10_000)
    assert "image unavailable" in tooltip.inner_text()
    # Moving away hides it.
    m.page.mouse.move(5, 5)
    m.page.wait_for_selector("#map-tooltip", state="hidden", timeout=3_000)
    assert not m.errors


def test_click_pins_a_card_with_a_safe_link_and_its_image(map_page):
    m = map_page(image=True, renderer="canvas2d").open()
    cx, cy = m.client(-16, -16)
    m.page.mouse.click(cx, cy)
    card = m.page.locator("#map-card")
    card.locator("text=zebra unicorn").wait_for(timeout=5_000)
    link = card.locator("a.map-link")
    assert link.get_attribute("href") == "https://images.invalid/zebra.png"
    assert link.get_attribute("target") == "_blank"
    assert set(link.get_attribute("rel").split()) == {"noopener", "noreferrer", "nofollow"}
    m.page.wait_for_function("document.querySelector('#map-card .map-thumb img')?.naturalWidth > 0", timeout=5_000)
    assert m.page.locator("#map-card .map-thumb.is-unavailable").count() == 0
    # The pinned point is part of the shareable view; Escape unpins.
    m.page.wait_for_function("location.hash.includes('p=')", timeout=3_000)
    m.page.keyboard.press("Escape")
    m.page.wait_for_selector("#map-card", state="hidden", timeout=3_000)
    assert not m.errors


@pytest.mark.parametrize("renderer", ["webgl2", "canvas2d"])
def test_search_counts_and_highlights_matches(map_page, site, renderer):
    m = map_page(renderer=renderer).open()
    before = highlighted(m.pixels())
    expected = sum("watercolor" in (c or "").lower() for c in site["captions"])
    assert m.search("Watercolor") == expected > 100
    assert m.page.inner_text("#map-search-count") == f"{expected:,} matches"
    m.page.wait_for_timeout(100)
    assert highlighted(m.pixels()) > before + 300
    assert m.search("zebra unicorn") == 1
    assert m.search("no such words here") == 0
    assert m.page.inner_text("#map-search-count") == "0 matches"
    assert not m.errors


def test_url_hash_restores_and_records_the_view(map_page, site):
    m = map_page(renderer="webgl2").open("#x=0.3&y=0.6&z=2&c=aesthetic&q=poster&f=aesthetic:5:8")
    state = m.page.evaluate("window.__atlasMap.state()")
    assert state["view"] == {"x": 0.3, "y": 0.6, "z": 2}
    assert state["colour"] == "aesthetic" and state["query"] == "poster"
    assert state["filters"] == {"aesthetic": [5, 8]}
    assert m.page.input_value("#map-colour") == "aesthetic"
    assert m.page.input_value("#map-search") == "poster"
    assert "aesthetic score" in m.page.inner_text("#map-legend").lower()
    total = sum("poster" in (c or "").lower() for c in site["captions"])
    m.page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1'")
    assert 0 < int(m.page.get_attribute("#map-search-count", "data-count")) < total
    assert m.page.evaluate("window.__atlasMap.visible()") < 6002
    # Keyboard zoom with the canvas focused updates the address; a reload restores it.
    m.page.focus("#map-canvas")
    m.page.keyboard.press("+")
    m.page.keyboard.press("ArrowRight")
    m.page.wait_for_function("/[#&]z=2\\.5(&|$)/.test(location.hash)", timeout=5_000)
    hash_ = m.page.evaluate("location.hash")
    view = m.page.evaluate("window.__atlasMap.state().view")
    assert view["x"] > 0.3
    m.page.reload()
    m.page.wait_for_function("window.__atlasFirstFrame > 0")
    restored = m.page.evaluate("window.__atlasMap.state()")
    assert m.page.evaluate("location.hash") == hash_
    assert restored["view"] == pytest.approx(view, abs=1e-4) and restored["query"] == "poster"
    # Following a link to another view of the same page (a hash change) switches to it.
    m.page.focus("#map-search")
    m.page.evaluate("location.hash = '#x=0.5&y=0.5&z=0&c=domain'")
    m.page.wait_for_function("window.__atlasMap.state().colour === 'domain'", timeout=3_000)
    assert m.page.evaluate("window.__atlasMap.state()")["query"] == ""
    assert m.page.input_value("#map-search") == "" and m.page.input_value("#map-colour") == "domain"
    assert not m.errors


def test_zooming_in_shows_fine_cluster_labels(map_page):
    m = map_page(renderer="canvas2d").open("#z=3.5")
    levels = m.page.eval_on_selector_all(".map-label:not([hidden])", "els => els.map(e => e.dataset.level)")
    assert levels and set(levels) == {"fine"}
    # Wheel zoom out goes back to the coarse labels.
    m.page.mouse.move(400, 400)
    for _ in range(8):
        m.page.mouse.wheel(0, 400)
        m.page.wait_for_timeout(60)
    m.page.wait_for_function("window.__atlasMap.state().view.z < 1", timeout=5_000)
    m.page.wait_for_timeout(600)
    levels = m.page.eval_on_selector_all(".map-label:not([hidden])", "els => els.map(e => e.dataset.level)")
    assert "coarse" in levels
    assert not m.errors


def test_hostile_captions_are_shown_as_text_and_never_run(map_page):
    m = map_page(renderer="webgl2").open()
    m.hover(16, 16)
    m.page.locator("#map-tooltip >> text=hostile").wait_for(timeout=5_000)
    assert HOSTILE in m.page.inner_text("#map-tooltip")
    assert m.page.locator("#map-tooltip img[src='x'], #map-tooltip script").count() == 0
    cx, cy = m.client(16, 16)
    m.page.mouse.click(cx, cy)
    m.page.locator("#map-card >> text=hostile").wait_for(timeout=5_000)
    assert HOSTILE in m.page.inner_text("#map-card")
    assert m.page.locator("#map-card a").count() == 0  # a javascript: URL is never a link
    assert "No http(s) link" in m.page.inner_text("#map-card")
    assert "no http(s) link" in m.page.inner_text("#map-card .map-thumb")
    assert m.search("onerror") == 1
    m.page.wait_for_timeout(300)
    assert m.page.evaluate("window.__pwned") is None
    html = m.page.content()
    assert not re.search(r"<script>window\.__pwned", html)
    assert not m.errors
