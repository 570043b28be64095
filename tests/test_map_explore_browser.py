"""The map as an explorer, in headless Chromium on the real 10k LAION sample's captions and URLs:
lasso and box selections (checked against an independent point-in-polygon count), their table and
CSV, crossfilter brushing, the address restoring a search and a selection, neighbours of a pinned
point, an embedded map that leaves the wheel to the page, the phone layout, the keyboard, and hostile
captions inert in the table. Each page forces a renderer (``?renderer=``; Canvas2D unless a test
asks for WebGL2, which the tests' Chromium has through SwiftShader), the main tests run with both."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from atlas.stages import mapdata
from atlas.stages.project import NO_NEIGHBOUR
from helpers.browser import build_map_site, drawn_at, empty_spot, serve, skip_reason, synthetic_inputs

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> hostile caption'
FORMULA = '=HYPERLINK("http://evil.test","click me")'
EXTRA = [
    {"x": 16.0, "y": 16.0, "url": "javascript:window.__pwned=3", "caption": HOSTILE, "host": "evil.test",
     "domain": "evil.test", "aesthetic": 3.0, "similarity": 0.3, "punsafe": 0.02, "pwatermark": 0.1},
    {"x": 16.2, "y": 15.8, "url": "https://evil.test/a.jpg", "caption": FORMULA, "host": "@evil.test",
     "domain": "evil.test", "aesthetic": 8.5, "similarity": 0.45, "punsafe": 0.01, "pwatermark": 0.05},
]
K = 5


def read_points(data: Path) -> dict:
    """The map's points.bin columns as numpy arrays (map order), read as the format describes."""
    meta = json.loads((data / "meta.json").read_text())
    raw = (data / meta["points"]["file"]).read_bytes()
    out = {"meta": meta}
    for column in meta["points"]["columns"]:
        dtype = np.uint16 if column["type"] == "uint16" else np.uint8
        out[column["name"]] = np.frombuffer(raw, dtype=dtype, count=column["length"], offset=column["offset"])
    out["xy"] = out["xy"].reshape(-1, 2) / meta["encoding"]["xy_max"]
    out["scores"] = out["scores"].reshape(-1, len(meta["scores"]))
    return out


def inside(xy: np.ndarray, polygon: list[list[float]]) -> np.ndarray:
    """Even-odd point-in-polygon for many points at once (an independent check of the page's)."""
    x, y = xy[:, 0], xy[:, 1]
    result = np.zeros(len(xy), dtype=bool)
    for (xi, yi), (xj, yj) in zip(polygon, polygon[-1:] + polygon[:-1]):
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (y - yi) / (yj - yi) + xi
        result ^= crosses & (x < at)
    return result


def write_project_neighbours(project: Path, k: int = K) -> np.ndarray:
    """Give the synthetic project output the neighbours the project stage would write
    (``neighbours.bin``, uint32 [n, k], row i = sample row i, nearest first): here each row's k
    nearest on the plane, so walking between neighbours stays close. Row 0 lacks its last one
    (NO_NEIGHBOUR), as a sample with few points has. The build renumbers them into map order."""
    coords = np.load(project / "coords.npy").astype(np.float64)
    nearest = np.empty((len(coords), k), dtype="<u4")
    for start in range(0, len(coords), 1000):
        d = ((coords[start:start + 1000, None, :] - coords[None, :, :]) ** 2).sum(-1)
        d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf
        nearest[start:start + 1000] = np.argsort(d, axis=1)[:, :k]
    nearest[0, -1] = NO_NEIGHBOUR
    (project / "neighbours.bin").write_bytes(nearest.tobytes())
    return nearest


@pytest.fixture(scope="module")
def site(shared_data, tmp_path_factory):
    table = pq.read_table(shared_data / "laion400m-sample-10k.parquet")
    captions, urls = table.column("TEXT").to_pylist(), table.column("URL").to_pylist()
    root = tmp_path_factory.mktemp("exploresite")
    inputs = synthetic_inputs(root / "inputs", len(captions), seed=7, extra_rows=EXTRA, captions=captions, urls=urls)
    neighbours = write_project_neighbours(inputs["project"])
    build_map_site(root / "site", inputs, chunk_size=1000)
    data = root / "site" / "map" / "data"
    (root / "site" / "embed.html").write_text(
        "<!doctype html><meta charset=utf-8><title>embed</title><body style='margin:0'>"
        "<div style='height:400px'>above</div><iframe id=map src='map/?embed=1' style='width:800px;height:500px;border:0'>"
        "</iframe><div style='height:3000px'>below</div></body>")
    points = read_points(data)
    with serve(root / "site") as base:
        yield {"base": base, "data": data, "points": points, "neighbours": neighbours,
               "captions": pq.read_table(inputs["sample"]).column("caption").to_pylist()}


@pytest.fixture
def open_map(chromium, site):
    pages = []

    def make(suffix="", renderer="canvas2d", **context):
        ctx = chromium.new_context(**({"viewport": {"width": 1200, "height": 800}} | context))
        page = ctx.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and (m.location or {}).get("url", "").startswith(site["base"])
                and page.errors.append(m.text))
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(site["base"]) else r.abort())
        page.goto(site["base"] + (suffix if suffix.startswith("embed") else f"map/?renderer={renderer}" + suffix))
        if not suffix.startswith("embed"):
            page.evaluate("window.__atlasMap.ready")
            page.wait_for_function("document.querySelector('.map-hist') !== null")
            assert page.evaluate("window.__atlasMap.renderer") == renderer
        pages.append(page)
        return page

    yield make
    for page in pages:
        assert not page.errors
        assert page.evaluate("window.__pwned") is None
        page.context.close()


def client(page, x, y):
    return page.evaluate("([x, y]) => window.__atlasMap.dataToClient(x, y)", [x, y])


def draw(page, tool, corners_client, steps=6):
    page.click(f"#map-tool-{tool}")
    page.mouse.move(*corners_client[0])
    page.mouse.down()
    for c in corners_client[1:]:
        page.mouse.move(*c, steps=steps)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#map-selection').dataset.count !== '0'", timeout=5_000)


def selected(page) -> list[int]:
    return page.evaluate("window.__atlasMap.selection()")


def lasso_centre(page):
    box = page.locator("#map-canvas").bounding_box()
    cx, cy = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5
    # A concave, irregular lasso (a "V" notch at the top) around the middle of the map.
    return [(cx - 180, cy - 150), (cx, cy - 20), (cx + 160, cy - 160), (cx + 170, cy + 140), (cx - 160, cy + 150),
            (cx - 185, cy - 140)]


def data_xy(site) -> np.ndarray:
    """The points' positions in data coordinates (what ``dataToClient`` takes)."""
    b = site["points"]["meta"]["bounds"]
    return np.array([b["x0"], b["y0"]]) + site["points"]["xy"] * b["span"]


@pytest.mark.parametrize("renderer", ["webgl2", "canvas2d"])
def test_lasso_selects_exactly_the_points_inside_and_fills_a_sorted_paged_table(open_map, site, renderer):
    page = open_map(renderer=renderer)
    # The renderer draws: the lone hostile point and the blobs' points are painted, the map's
    # emptiest spot is not (read back from the canvas).
    xy = data_xy(site)
    spots = [(16.0, 16.0)] + [tuple(p) for p in xy[::997]] + [empty_spot(xy)]
    assert drawn_at(page, [client(page, *p) for p in spots]) == [True] * (len(spots) - 1) + [False]
    draw(page, "lasso", lasso_centre(page))
    polygon = page.evaluate("window.__atlasMap.state().selection.polygon")
    expected = np.flatnonzero(inside(site["points"]["xy"], polygon))
    got = selected(page)
    assert 200 < len(expected) < 0.9 * site["points"]["meta"]["count"]
    assert sorted(got) == expected.tolist()
    assert page.inner_text("#map-selection-count") == f"{len(got):,} points selected"
    rows = page.locator("#map-selection-table tbody tr")
    assert rows.count() == 25
    assert f"Page 1 of {-(-len(got) // 25):,}" in page.inner_text("#map-selection-pager")
    page.click("#map-selection-pager button:has-text('Next')")
    assert "Page 2 of" in page.inner_text("#map-selection-pager")
    # Sorting by CLIP similarity: the column reads in order, both ways.
    sim = [s["name"] for s in site["points"]["meta"]["scores"] if s["present"] > 0].index("similarity") + 2

    def values():
        texts = page.eval_on_selector_all(f"#map-selection-table tbody tr td:nth-child({sim})", "els => els.map(e => e.textContent)")
        return [float(t) for t in texts if t != "–"]

    page.click("#map-selection-table button[data-sort=similarity]")
    first = values()
    assert first == sorted(first, reverse=True) and len(first) > 10
    assert page.get_attribute("#map-selection-table th:has(button[data-sort=similarity])", "aria-sort") == "descending"
    page.click("#map-selection-table button[data-sort=similarity]")
    again = values()
    assert again == sorted(again) and again[0] < first[0]
    # The table's captions are the selected rows' captions, fetched for the page shown.
    ids = page.eval_on_selector_all("#map-selection-table tbody tr", "els => els.map(e => +e.dataset.id)")
    assert set(ids) <= set(got)
    page.wait_for_function("![...document.querySelectorAll('.map-sel-text')].some(e => e.textContent === '…')")
    want = page.evaluate("(ids) => Promise.all(ids.map((i) => window.__atlasMap.caption(i)))", ids[:3])
    shown = page.eval_on_selector_all(".map-sel-text", "els => els.slice(0, 3).map(e => e.textContent)")
    assert shown == [w or "(no caption)" for w in want]
    # The rest of the map is greyed, the selection drawn highlighted; Clear empties it all.
    page.click("#map-selection-clear")
    assert selected(page) == []
    page.wait_for_function("!location.hash.includes('r=')")


def test_box_selection_csv_guards_formulas_and_hostile_captions_stay_inert(open_map, site):
    page = open_map()
    a, b = client(page, 15.5, 16.6), client(page, 16.7, 15.3)
    draw(page, "box", [a, b])
    got = selected(page)
    assert len(got) == 2
    page.wait_for_function("[...document.querySelectorAll('.map-sel-text')].some(e => e.textContent.includes('hostile'))")
    table = page.locator("#map-selection-table")
    assert HOSTILE in table.inner_text() and FORMULA in table.inner_text()
    assert table.locator("img, script").count() == 0
    with page.expect_download() as download:
        page.click("#map-selection-csv")
    text = Path(download.value.path()).read_bytes().decode("utf-8")
    assert download.value.suggested_filename == "atlas-selection.csv"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][:4] == ["point", "caption", "url", "host"]
    assert "similarity" in rows[0] and "aesthetic" in rows[0]
    assert len(rows) == 3
    by_caption = {r[1]: r for r in rows[1:]}
    assert "'" + FORMULA in by_caption  # a spreadsheet shows it as text, never runs it
    formula_row = by_caption["'" + FORMULA]
    assert formula_row[3] == "'@evil.test"
    assert float(formula_row[rows[0].index("aesthetic")]) == pytest.approx(8.5, abs=0.05)
    assert HOSTILE in by_caption
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(got)
    assert page.evaluate("window.__atlasMap.selectionCsv()") == text


def test_brushing_a_histogram_filters_the_map_and_updates_the_others(open_map, site):
    page = open_map()
    n = site["points"]["meta"]["count"]
    assert page.evaluate("window.__atlasMap.visible()") == n
    before = page.inner_text(".map-hist[data-score=similarity] .map-hist-count")
    box = page.locator(".map-hist[data-score=aesthetic] canvas").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.6, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.98, y, steps=5)
    page.mouse.up()
    page.wait_for_function(f"window.__atlasMap.visible() < {n}")
    lo, hi = page.evaluate("window.__atlasMap.state().filters.aesthetic")
    meta = site["points"]["meta"]
    score = next(s for s in meta["scores"] if s["name"] == "aesthetic")
    top = meta["encoding"]["score_max"]
    byte = site["points"]["scores"][:, score["index"]].astype(int)
    value = score["min"] + byte / top * (score["max"] - score["min"])
    expected = int(((byte <= top) & (value >= lo - 1e-6) & (value <= hi + 1e-6)).sum())
    assert page.evaluate("window.__atlasMap.visible()") == expected
    assert 0 < expected < n
    assert page.inner_text(".map-hist[data-score=similarity] .map-hist-count") != before
    assert f"{expected:,} of {n:,} points pass the filters" in page.inner_text("#map-visible")
    page.wait_for_function("location.hash.includes('f=aesthetic')")
    # A lasso then draws the selection's shape over each histogram; clearing the brush restores all.
    page.click(".map-hist[data-score=aesthetic] .map-hist-clear")
    page.wait_for_function(f"window.__atlasMap.visible() === {n}")
    assert page.inner_text(".map-hist[data-score=similarity] .map-hist-count") == before


@pytest.mark.parametrize("renderer", ["webgl2", "canvas2d"])
def test_brushing_caption_length_filters_the_map_to_an_independent_count(open_map, site, renderer):
    """The caption-length histogram arrives after the first frame and brushes like the scores."""
    page = open_map(renderer=renderer)
    page.wait_for_function("document.querySelector('.map-hist[data-score=caption_length]') !== null")
    n = site["points"]["meta"]["count"]
    chart = page.locator(".map-hist[data-score=caption_length] canvas")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.02, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, y, steps=4)
    page.mouse.up()
    page.wait_for_function(f"window.__atlasMap.visible() < {n}")
    lo, hi = page.evaluate("window.__atlasMap.state().filters.caption_length")
    # Independently: each caption's length in characters, as the text chunks hold them.
    spec = site["points"]["meta"]["lengths"]
    lengths = np.minimum([len(c) for c in mapdata.read(site["data"]).captions()], spec["max"])  # longer ones: the top bin
    top = site["points"]["meta"]["encoding"]["score_max"]
    step = spec["max"] / top  # one quantisation step: lengths within half a step of an edge may fall either way
    sure = int(((lengths >= lo + step / 2) & (lengths <= hi - step / 2)).sum())
    maybe = int(((lengths >= lo - step / 2) & (lengths <= hi + step / 2)).sum())
    visible = page.evaluate("window.__atlasMap.visible()")
    assert 0 < sure <= visible <= maybe < n
    assert f"{visible:,} of {n:,} points pass the filters" in page.inner_text("#map-visible")
    assert page.inner_text(".map-hist[data-score=aesthetic] .map-hist-count") == f"{visible:,} with a value"
    page.wait_for_function("location.hash.includes('f=caption_length')")
    hash_ = page.evaluate("location.hash")
    # The address restores the brush once the lengths have arrived.
    again = open_map(hash_, renderer=renderer)
    again.wait_for_function(f"window.__atlasMap.visible() < {n}")
    assert again.evaluate("window.__atlasMap.visible()") == visible


def test_the_address_restores_a_search_selection_and_a_drawn_region(open_map, site):
    page = open_map(renderer="webgl2")
    page.fill("#map-search", "dress")
    page.press("#map-search", "Enter")
    page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1'")
    matches = page.evaluate("window.__atlasMap.matches()")
    assert matches > 5
    page.click("#map-select-search")
    page.wait_for_function(f"window.__atlasMap.selection().length === {matches}")
    ranked = selected(page)
    page.wait_for_function("location.hash.includes('s=q')")
    shared = page.evaluate("location.hash")
    other = open_map(shared)
    other.wait_for_function(f"window.__atlasMap.selection().length === {matches}")
    assert selected(other) == ranked
    assert other.input_value("#map-search") == "dress"
    # A drawn region travels too, and selects the same points in a new page.
    draw(page, "lasso", lasso_centre(page))
    region = selected(page)
    page.wait_for_function("location.hash.includes('r=')")
    third = open_map(page.evaluate("location.hash"))
    third.wait_for_function("window.__atlasMap.selection().length > 0")
    assert selected(third) == region


def test_a_pinned_point_lists_its_neighbours_and_walks_to_them(open_map, site):
    page = open_map(renderer="webgl2")
    assert page.evaluate("window.__atlasMap.hasNeighbours") is True
    data = site["data"]
    meta = json.loads((data / "meta.json").read_text())
    k = meta["neighbours"]["k"]
    table = np.frombuffer((data / "neighbours.bin").read_bytes(), dtype="<u4").reshape(-1, k)
    assert page.evaluate("window.__atlasMap.neighbours(0)") == [int(v) for v in table[0] if v != 0xFFFFFFFF]
    point = 123
    want = [int(v) for v in table[point] if v != 0xFFFFFFFF and v != point]
    assert page.evaluate(f"window.__atlasMap.neighbours({point})") == want
    assert page.evaluate("window.__atlasMap.neighbours(-1)") == []
    assert page.evaluate(f"window.__atlasMap.neighbours({meta['count']})") == []
    page.evaluate(f"window.__atlasMap.select([{point}])")
    page.locator("#map-selection-table tbody tr").first.focus()
    page.keyboard.press("Enter")
    buttons = page.locator("#map-card .map-neighbour")
    buttons.first.wait_for(timeout=5_000)
    assert buttons.count() == len(want)
    assert page.eval_on_selector_all("#map-card .map-neighbour", "els => els.map(e => +e.dataset.id)") == want
    # Keyboard: the neighbours are buttons; Enter walks to one, whose card lists its own.
    buttons.nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.__atlasMap.state().pinned === {want[1]}")
    page.wait_for_function(f"[...document.querySelectorAll('#map-card .map-neighbour')].some(e => +e.dataset.id === {point})"
                           if point in table[want[1]] else "document.querySelector('#map-card .map-neighbour') !== null")


def map_row_ids(data: Path) -> np.ndarray:
    """Each map point's sample row id, from the detail chunks (``meta.json`` ``detail_fields``)."""
    meta = json.loads((data / "meta.json").read_text())
    at = meta["detail_fields"].index("row_id")
    rows = [r[at] for chunk in sorted((data / "detail").glob("*.json")) for r in json.loads(chunk.read_text())]
    assert len(rows) == meta["count"]
    return np.array(rows)


def test_the_card_lists_the_neighbours_the_build_wrote_for_the_point(open_map, site):
    """neighbours.bin decoded as README and mapdata.py describe it (uint32 [count, k], map order,
    ``missing`` = none) holds the project stage's neighbours of each point's row, and a pinned
    point's card lists exactly its row, nearest first, each with its own caption."""
    data = site["data"]
    meta = json.loads((data / "meta.json").read_text())
    info = meta["neighbours"]
    assert (info["file"], info["k"], info["type"], info["missing"]) == ("neighbours.bin", K, "uint32", NO_NEIGHBOUR)
    table = np.frombuffer((data / info["file"]).read_bytes(), dtype="<u4").reshape(meta["count"], K)
    rows = map_row_ids(data)
    point_of = {int(row): point for point, row in enumerate(rows)}
    project = site["neighbours"]
    for point, row in enumerate(rows):
        want = [point_of[int(r)] if r != NO_NEIGHBOUR else NO_NEIGHBOUR for r in project[row]]
        assert table[point].tolist() == want, (point, row)
    # The page: the point whose row lacks a neighbour, and one with all k.
    page = open_map(renderer="webgl2")
    for point in (point_of[0], point_of[500]):
        shown = [int(v) for v in table[point] if v != NO_NEIGHBOUR]
        assert len(shown) == (K - 1 if point == point_of[0] else K)
        page.evaluate(f"window.__atlasMap.select([{point}])")
        page.locator("#map-selection-table tbody tr").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_function(f"window.__atlasMap.state().pinned === {point}")
        page.wait_for_function(f"document.querySelectorAll('#map-card .map-neighbour').length === {len(shown)} && "
                               "![...document.querySelectorAll('#map-card .map-neighbour')].some(e => e.textContent === '…')")
        assert page.eval_on_selector_all("#map-card .map-neighbour", "els => els.map(e => +e.dataset.id)") == shown
        captions = page.eval_on_selector_all("#map-card .map-neighbour", "els => els.map(e => e.textContent)")
        assert captions == [site["captions"][rows[i]] or "(no caption)" for i in shown]


def test_an_embedded_map_leaves_the_wheel_to_the_page_until_clicked(open_map, site):
    page = open_map("embed.html")
    frame = page.frame_locator("#map")
    frame.locator("#map-app[data-ready='1']").wait_for(timeout=15_000)
    inner = page.frames[1]
    z0 = inner.evaluate("window.__atlasMap.view().z")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + 400, box["y"] + 250)
    page.mouse.wheel(0, 300)
    page.wait_for_function("window.scrollY > 100")
    assert inner.evaluate("window.__atlasMap.view().z") == z0
    assert frame.locator("#map-wheel-hint").is_visible()
    # Clicked (activated), the wheel zooms the map and the page stays put.
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + 400, box["y"] + 250)
    scrolled = page.evaluate("window.scrollY")
    page.mouse.wheel(0, -300)
    inner.wait_for_function(f"window.__atlasMap.view().z > {z0} + 0.1")
    assert page.evaluate("window.scrollY") == scrolled


def test_a_tooltip_closes_when_its_point_leaves_the_cursor_after_zooming(open_map):
    page = open_map()
    x, y = client(page, 16.0, 16.0)
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y, steps=3)
    page.wait_for_selector("#map-tooltip:not([hidden]) >> text=hostile", timeout=5_000)
    page.click("#map-zoom-in")
    page.mouse.move(x, y)  # the pointer has not moved; the map has
    page.wait_for_selector("#map-tooltip", state="hidden", timeout=5_000)


def test_phone_layout_gives_the_map_the_screen_and_tap_pins(open_map, site):
    page = open_map(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)
    stage = page.locator(".map-stage").bounding_box()
    assert stage["height"] >= 0.7 * 844, stage
    assert stage["width"] == pytest.approx(390, abs=2)
    sheet = page.locator(".map-panel").bounding_box()
    assert sheet["y"] + sheet["height"] == pytest.approx(844, abs=2) and sheet["height"] < 0.3 * 844
    page.click("#map-sheet-toggle")
    page.wait_for_function("document.querySelector('.map-panel').getBoundingClientRect().height > 844 * 0.5")
    page.click("#map-sheet-toggle")
    # Tap a point in the upper half of the map: it is pinned and its card opens.
    b = site["points"]["meta"]["bounds"]
    for i, (wx, wy) in enumerate(site["points"]["xy"]):
        x, y = client(page, b["x0"] + wx * b["span"], b["y0"] + wy * b["span"])
        if 60 < x < 330 and stage["y"] + 80 < y < stage["y"] + stage["height"] * 0.5:
            break
    page.touchscreen.tap(x, y)
    page.wait_for_function("window.__atlasMap.state().pinned >= 0")
    page.wait_for_selector("#map-card:not([hidden]) .map-caption", timeout=5_000)
    # Pinch: two touches moving apart zoom in.
    z0 = page.evaluate("window.__atlasMap.view().z")
    cdp = page.context.new_cdp_session(page)
    page.click("#map-card .map-card-close")
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2

    def touch(kind, d):
        points = [] if kind == "touchEnd" else [{"x": cx - d, "y": cy, "id": 1}, {"x": cx + d, "y": cy, "id": 2}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 20)
    for d in range(30, 130, 10):
        touch("touchMove", d)
    touch("touchEnd", 0)
    page.wait_for_function(f"window.__atlasMap.view().z > {z0} + 1")


def test_keyboard_reaches_the_selection_table_and_the_focus_outline_shows(open_map):
    page = open_map()
    page.evaluate("window.__atlasMap.select([10, 20, 30])")
    page.focus("#map-canvas")
    outline = page.evaluate("getComputedStyle(document.querySelector('#map-canvas')).outlineStyle")
    assert outline != "none"
    # Tab from the search box reaches the table's rows; Enter pins the row's point.
    page.focus("#map-search")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#map-selection-table tr[data-id]')"):
            break
    row = page.evaluate("+document.activeElement.dataset.id")
    assert row in (10, 20, 30)
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.__atlasMap.state().pinned === {row}")


def test_the_legend_and_the_labels_describe_the_same_cluster_level(open_map):
    page = open_map()
    assert page.text_content("#map-legend .map-legend-title") == "Cluster (coarse)"
    page.fill("#map-search", "wedding")
    page.press("#map-search", "Enter")
    page.wait_for_selector("#map-result-0")
    page.click("#map-zoom-in")
    page.click("#map-zoom-in")
    page.wait_for_function("window.__atlasMap.view().z > 1.6")
    page.wait_for_function("document.querySelector('#map-legend .map-legend-title').textContent === 'Cluster (fine)'")
    # The labels follow on the next drawn frame (under load, a frame or two after the legend).
    page.wait_for_function(
        "(() => { const ls = [...document.querySelectorAll('.map-label:not([hidden])')];"
        " return ls.length > 0 && ls.every(e => e.dataset.level === 'fine'); })()", timeout=10000)
    levels = page.eval_on_selector_all(".map-label:not([hidden])", "els => els.map(e => e.dataset.level)")
    assert levels and set(levels) == {"fine"}
    assert not page.is_hidden("#map-result-0")  # zooming does not reset the result list
    # A fine label wears the colour of its legend entry.
    swatches = set(page.eval_on_selector_all("#map-legend .map-swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)"))
    worn = page.eval_on_selector_all(".map-label:not([hidden])", "els => els.map(e => getComputedStyle(e).borderLeftColor)")
    assert worn and set(worn) & swatches


def test_with_three_cluster_levels_the_legend_and_labels_agree_at_each(chromium, tmp_path):
    """A sample of 100k+ points gets coarse → fine → finer: each zoom shows one level's labels and
    the legend names that same level, its swatches the labels' colours."""
    inputs = synthetic_inputs(tmp_path / "inputs", 3000, seed=5, finer=True)
    build_map_site(tmp_path / "site", inputs, chunk_size=1000)
    meta = json.loads((tmp_path / "site" / "map" / "data" / "meta.json").read_text())
    assert [level["name"] for level in meta["clusters"]] == ["coarse", "fine", "finer"]
    with serve(tmp_path / "site") as base:
        page = chromium.new_page(viewport={"width": 1200, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        for z, level in zip((0, 2, 4), meta["clusters"]):
            name, big = level["name"], int(np.argmax(level["size"]))  # look at the level's biggest cluster
            page.goto(f"{base}map/#x={level['x'][big]}&y={level['y'][big]}&z={z}")
            page.evaluate("window.__atlasMap.ready")
            page.wait_for_function(f"document.querySelector('#map-legend .map-legend-title').textContent === 'Cluster ({name})'")
            levels = page.eval_on_selector_all(".map-label:not([hidden])", "els => els.map(e => e.dataset.level)")
            assert levels and set(levels) == {name}
            swatches = set(page.eval_on_selector_all("#map-legend .map-swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)"))
            worn = page.eval_on_selector_all(".map-label:not([hidden])", "els => els.map(e => getComputedStyle(e).borderLeftColor)")
            assert set(worn) & swatches
        page.close()
        assert not errors
