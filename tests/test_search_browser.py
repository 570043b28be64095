"""Search on the map page in headless Chromium, on the real 10k LAION sample: whole words and
phrases exactly as an independent count in Python finds them, the result list with the keyboard,
captions fetched only for the rows shown, hostile captions inert, and the window.__atlasMap hook."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from atlas.stages.search import tokens
from helpers.browser import build_map_site, serve, skip_reason, synthetic_inputs

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> hostile caption'
EXTRA = [{"x": 16.0, "y": 16.0, "url": "javascript:window.__pwned=3", "caption": HOSTILE, "host": "evil.test",
          "domain": "evil.test", "aesthetic": 3.0, "similarity": 0.3, "punsafe": 0.02, "pwatermark": 0.1}]
CHUNK = 500


@pytest.fixture(scope="module")
def site(shared_data, tmp_path_factory):
    table = pq.read_table(shared_data / "laion400m-sample-10k.parquet")
    captions = table.column("TEXT").to_pylist()
    urls = table.column("URL").to_pylist()
    root = tmp_path_factory.mktemp("searchsite")
    inputs = synthetic_inputs(root / "inputs", len(captions), seed=5, extra_rows=EXTRA, captions=captions, urls=urls)
    build_map_site(root / "site", inputs, chunk_size=CHUNK)
    everything = captions + [HOSTILE]
    with serve(root / "site") as base:
        yield {"base": base, "captions": everything, "tokens": [tokens(c) for c in everything]}


@pytest.fixture
def page(chromium, site):
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    page.errors = []
    page.requests = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    # Images hot-linked from the sample's URLs are blocked here: their failures are expected.
    page.on("console", lambda m: m.type == "error" and (m.location or {}).get("url", "").startswith(site["base"])
            and page.errors.append(m.text))
    page.on("request", lambda r: page.requests.append(r.url))
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(site["base"]) else r.abort())
    # Canvas2D, forced: the same renderer on every machine (tests/test_map_browser.py tests both).
    page.goto(site["base"] + "map/?renderer=canvas2d")
    page.evaluate("window.__atlasMap.ready")
    assert page.evaluate("window.__atlasMap.renderer") == "canvas2d"
    yield page
    assert not page.errors
    page.close()


def count_with(site, *phrases: list[str]) -> list[str]:
    """Captions containing every phrase (a list of words) as adjacent words, by brute force."""
    def has(words, phrase):
        return any(words[k:k + len(phrase)] == phrase for k in range(len(words) - len(phrase) + 1))

    return [c for c, w in zip(site["captions"], site["tokens"]) if all(has(w, p) for p in phrases)]


def hook_search(page, query):
    return page.evaluate("(q) => window.__atlasMap.search(q)", query)


def captions_of(page, ids):
    return page.evaluate("(ids) => Promise.all(ids.map((i) => window.__atlasMap.caption(i)))", ids)


def test_a_word_finds_exactly_the_captions_with_that_word(page, site):
    expected = count_with(site, ["cat"])
    result = hook_search(page, "Cat")
    assert result["total"] == len(expected) == len(result["ids"]) > 10
    assert sorted(captions_of(page, result["ids"])) == sorted(expected)
    assert not any("cathedral" in c.lower() and "cat" not in tokens(c) for c in captions_of(page, result["ids"]))
    substring = [c for c in site["captions"] if "cat" in (c or "").lower()]
    assert len(substring) > 3 * len(expected)  # what the old substring search found
    assert page.inner_text("#map-search-count") == f"{len(expected)} matches"
    # Accents and case fold: "CAFÉ" finds "cafe" and "café".
    assert hook_search(page, "CAFÉ")["total"] == len(count_with(site, ["cafe"])) > 0


def test_a_phrase_needs_its_words_together_and_in_order(page, site):
    both = count_with(site, ["for"], ["sale"])
    phrase = count_with(site, ["for", "sale"])
    result = hook_search(page, '"for sale"')
    assert result["total"] == len(phrase) > 0
    assert sorted(captions_of(page, result["ids"])) == sorted(phrase)
    assert hook_search(page, "for sale")["total"] == len(both) > len(phrase)
    assert hook_search(page, '"sale for"')["total"] == len(count_with(site, ["sale", "for"]))


def test_typing_completes_the_last_word_and_enter_searches_whole_words(page, site):
    page.click("#map-search")
    page.keyboard.type("weddi")
    page.wait_for_function("document.querySelector('#map-search-count').textContent.includes('match')")
    page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1'")
    typed = int(page.get_attribute("#map-search-count", "data-count"))
    completed = [c for c, w in zip(site["captions"], site["tokens"]) if any(t.startswith("weddi") for t in w)]
    assert typed == len(completed) > 0
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#map-search-count').textContent === '0 matches'")


def test_the_result_list_is_virtual_and_fetches_only_the_captions_it_shows(page, site):
    page.requests.clear()
    result = hook_search(page, "the")
    assert result["total"] == len(count_with(site, ["the"])) > 500
    page.wait_for_function("document.querySelectorAll('#map-results .map-result-meta:not(:empty)').length > 3")
    rows = page.eval_on_selector_all("#map-results .map-result", "els => els.map(e => +e.dataset.id)")
    assert 3 < len(rows) < 30  # a thousand matches, a screenful of rows
    fetched = {int(m.group(1)) for m in (re.search(r"/text/(\d+)\.json", u) for u in page.requests) if m}
    assert fetched == {i // CHUNK for i in rows}
    assert not any("/detail/" in u and int(re.search(r"(\d+)\.json", u).group(1)) not in fetched for u in page.requests
                   if "/detail/" in u)
    index_files = [u for u in page.requests if "/search/terms/" in u]
    assert len(index_files) == 1
    # Scrolling to the end draws the last rows.
    page.eval_on_selector("#map-results", "el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_function(f"document.querySelector('#map-results [data-index=\"{result['total'] - 1}\"]') !== null")


def test_the_keyboard_walks_the_results_and_enter_flies_to_one_and_pins_it(page, site):
    page.fill("#map-search", "dress")
    page.press("#map-search", "Enter")
    page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1' && window.__atlasMap.matches() > 3")
    page.press("#map-search", "ArrowDown")
    assert page.evaluate("document.activeElement.id") == "map-results"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    active = page.get_attribute("#map-results", "aria-activedescendant")
    assert active == "map-result-2"
    assert page.get_attribute(f"#{active}", "aria-selected") == "true"
    chosen = int(page.get_attribute(f"#{active}", "data-id"))
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.__atlasMap.state().pinned === {chosen}")
    caption = captions_of(page, [chosen])[0]
    assert "dress" in tokens(caption)
    page.wait_for_function("(c) => document.querySelector('#map-card').innerText.includes(c)", arg=caption[:40])
    page.wait_for_function("window.__atlasMap.view().z >= 2.9", timeout=5_000)
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "map-search"


def test_hostile_captions_are_inert_text_in_the_result_list(page, site):
    result = hook_search(page, "onerror")
    assert result["total"] == 1
    page.locator("#map-results >> text=hostile caption").wait_for(timeout=5_000)
    assert HOSTILE in page.inner_text("#map-results")
    assert page.locator("#map-results img, #map-results script").count() == 0
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None


def test_the_hook_selects_and_reports_the_view(page, site):
    assert page.evaluate("window.__atlasMap.view()") == {"x": 0.5, "y": 0.5, "z": 0}
    page.evaluate("window.__atlasMap.select([5, 1, 3])")
    assert page.evaluate("window.__atlasMap.selection()") == [5, 1, 3]
    assert page.get_attribute("#map-selection", "data-count") == "3"
    if not page.evaluate("window.__atlasMap.hasNeighbours"):
        assert page.evaluate("window.__atlasMap.neighbours(5)") == []
    empty = hook_search(page, "zzzzqqq")
    assert empty == {"total": 0, "ids": [], "bytes": empty["bytes"]}
    assert page.inner_text("#map-search-count") == "0 matches"


def test_queries_at_their_edges(page, site):
    assert hook_search(page, '""')["total"] == 0
    assert hook_search(page, "!!! ???")["total"] == 0
    assert page.inner_text("#map-search-count") == "0 matches"
    assert hook_search(page, "")["total"] == 0
    assert page.inner_text("#map-search-count") == ""  # no query, no count
    assert hook_search(page, "cat " * 300)["total"] == len(count_with(site, ["cat"]))
    assert hook_search(page, '"cat')["total"] == len(count_with(site, ["cat"]))  # an unclosed quote


def test_a_map_without_a_search_index_says_so_and_still_draws(chromium, site):
    page = chromium.new_page(viewport={"width": 1000, "height": 700})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if "/search/" in r.request.url:
            return r.fulfill(status=404, body="not found")
        return r.continue_() if r.request.url.startswith(site["base"]) else r.abort()

    page.route("**/*", route)
    page.goto(site["base"] + "map/?renderer=canvas2d")
    page.evaluate("window.__atlasMap.ready")
    assert page.is_disabled("#map-search")
    assert "not available" in page.get_attribute("#map-search", "placeholder")
    assert page.get_attribute("#map-app", "data-ready") == "1"
    assert not errors
    page.close()


def test_clicking_a_result_pins_that_point(page, site):
    hook_search(page, "wedding")
    page.wait_for_selector("#map-result-1")
    chosen = int(page.get_attribute("#map-result-1", "data-id"))
    page.click("#map-result-1")
    page.wait_for_function(f"window.__atlasMap.state().pinned === {chosen}")
    assert page.get_attribute("#map-results", "aria-activedescendant") == "map-result-1"
    assert "wedding" in tokens(captions_of(page, [chosen])[0])
