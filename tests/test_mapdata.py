"""The map's data files: compact binary points, exact-enough quantisation, safe links, chunks."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from atlas.core.config import AtlasConfig
from atlas.stages import mapdata
from atlas.stages import embed, project
from atlas.stages.mapdata import STAGE, write_mapdata
from atlas.site.render import map_page_context
from atlas.site.widgets import WidgetContext, render_widget
from helpers.browser import synthetic_inputs

HOSTILE_ROWS = [
    {"x": 20.0, "y": 20.0, "url": "javascript:alert(1)", "caption": "js link", "host": "evil", "domain": "evil.test"},
    {"x": 20.5, "y": 20.0, "url": "data:text/html,<script>alert(1)</script>", "caption": "data link"},
    {"x": 21.0, "y": 20.0, "url": "https://ok.example/a b.jpg", "caption": "space in url"},
    {"x": 21.5, "y": 20.0, "url": None, "caption": None},
    {"x": 22.0, "y": 20.0, "url": "HTTPS://fine.example/x.jpg", "caption": "<script>window.x=1</script>"},
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return synthetic_inputs(tmp_path_factory.mktemp("inputs"), 3000, seed=1, extra_rows=HOSTILE_ROWS)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory) -> tuple[Path, dict, dict]:
    out = tmp_path_factory.mktemp("mapdata")
    summary = write_mapdata(inputs["sample"], project.read(inputs["project"]), embed.read(inputs["project"]), out,
                            chunk_size=700, source_rows=123_456)
    return out, summary, json.loads((out / "meta.json").read_text())


def decode(folder: Path, meta: dict) -> dict[str, np.ndarray]:
    raw = (folder / "points.bin").read_bytes()
    out = {}
    for column in meta["points"]["columns"]:
        dtype = np.dtype(column["type"]).newbyteorder("<")
        out[column["name"]] = np.frombuffer(raw, dtype=dtype, count=column["length"], offset=column["offset"])
    return out


def all_details(folder: Path, meta: dict) -> list[list]:
    rows = []
    for chunk in range(meta["chunks"]):
        rows += json.loads((folder / "detail" / f"{chunk:05d}.json").read_text())
    return rows


def test_first_load_is_at_most_16_bytes_a_point(built):
    folder, summary, meta = built
    n = meta["count"]
    assert n == 3000 + len(HOSTILE_ROWS)
    first_load = (folder / "points.bin").stat().st_size
    assert first_load == meta["points"]["bytes"] == summary["bytes"]
    assert first_load / n <= 16
    # meta.json stays small: it does not grow with the points.
    assert (folder / "meta.json").stat().st_size < 8_000


def test_positions_round_trip_within_one_quantisation_step(built, inputs):
    folder, _, meta = built
    cols = decode(folder, meta)
    row_ids = np.array([row[3] for row in all_details(folder, meta)])
    coords = np.load(inputs["coords"]).astype(np.float64)[row_ids]
    xy = mapdata.dequantise_xy(cols["xy"].reshape(-1, 2), meta["bounds"])
    step = meta["bounds"]["span"] / 65535
    assert np.abs(xy - coords).max() <= step
    # The box is square, so distances keep their proportions on screen.
    assert np.all(cols["xy"] > 0) and np.all(cols["xy"] < 65535)


def test_scores_round_trip_and_missing_is_255(built, inputs):
    folder, _, meta = built
    scores = decode(folder, meta)["scores"].reshape(-1, 4)
    row_ids = np.array([row[3] for row in all_details(folder, meta)])
    table = pq.read_table(inputs["sample"])
    for info in meta["scores"]:
        original = np.array(table.column(info["name"]).to_pylist(), dtype=float)[row_ids]
        decoded = mapdata.dequantise_score(scores[:, info["index"]], info["min"], info["max"])
        missing = np.isnan(original)
        assert missing.sum() == len(HOSTILE_ROWS)
        assert np.all(scores[missing, info["index"]] == 255)
        step = (info["max"] - info["min"]) / 254
        assert np.nanmax(np.abs(decoded[~missing] - original[~missing])) <= step / 2 + 1e-9


def test_only_plain_http_urls_are_emitted_as_links(built):
    folder, summary, meta = built
    by_caption = {}
    for chunk in range(meta["chunks"]):
        captions = json.loads((folder / "text" / f"{chunk:05d}.json").read_text())
        details = json.loads((folder / "detail" / f"{chunk:05d}.json").read_text())
        by_caption.update({c: d for c, d in zip(captions, details)})
    assert by_caption["js link"][0] is None
    assert by_caption["data link"][0] is None
    # Links are published in their canonical form (what a browser would request): a space is
    # percent-encoded, the scheme and host lower-cased.
    assert by_caption["space in url"][0] == "https://ok.example/a%20b.jpg"
    assert by_caption["<script>window.x=1</script>"][0] == "https://fine.example/x.jpg"
    assert summary["unsafe_urls"] == 2
    everything = "".join(p.read_text() for p in (folder / "detail").glob("*.json")).lower()
    assert "javascript:" not in everything and "data:text" not in everything


def test_text_is_chunked_and_covers_every_point_once(built, inputs):
    folder, _, meta = built
    n = meta["count"]
    assert meta["chunk_size"] == 700 and meta["chunks"] == -(-n // 700)
    captions = []
    for chunk in range(meta["chunks"]):
        part = json.loads((folder / "text" / f"{chunk:05d}.json").read_text())
        assert len(part) == (700 if chunk < meta["chunks"] - 1 else n - 700 * chunk)
        captions += part
    details = all_details(folder, meta)
    assert sorted(row[3] for row in details) == list(range(n))
    original = pq.read_table(inputs["sample"]).column("caption").to_pylist()
    assert [original[row[3]] or "" for row in details] == captions
    # Hostile captions are kept verbatim as JSON strings (the page shows them with textContent).
    assert "<script>window.x=1</script>" in captions


def test_points_are_in_a_spatially_coherent_order(built):
    folder, _, meta = built
    xy = decode(folder, meta)["xy"].reshape(-1, 2).astype(float)
    step = np.abs(np.diff(xy, axis=0)).sum(axis=1).mean()
    shuffled = xy[np.random.default_rng(0).permutation(len(xy))]
    assert step < np.abs(np.diff(shuffled, axis=0)).sum(axis=1).mean() / 5


def test_meta_describes_domains_clusters_and_model(built):
    _, _, meta = built
    assert meta["domains"][-1] == "other" and len(meta["domains"]) <= mapdata.TOP_DOMAINS + 1
    assert meta["domains"][0] == "pinterest.com"  # the most common synthetic domain
    assert [level["name"] for level in meta["clusters"]] == ["coarse", "fine"]
    coarse = meta["clusters"][0]
    assert "Fashion" in coarse["labels"] and sum(coarse["size"]) == meta["count"]
    assert all(0 <= x <= 1 for x in coarse["x"])
    assert meta["colour_by"] == ["cluster", "domain", "aesthetic", "similarity", "punsafe", "pwatermark"]
    assert meta["model"] == "tfidf-hashing-512" and "TF-IDF" in meta["notice"]
    assert meta["sample_rows"] == 123_456


def test_colour_options_leave_out_scores_the_data_lacks(tmp_path):
    import pyarrow as pa

    inputs = synthetic_inputs(tmp_path / "in", 200)
    table = pq.read_table(inputs["sample"]).drop(["pwatermark"])
    table = table.set_column(
        table.schema.get_field_index("aesthetic"), "aesthetic", pa.array([None] * 200, pa.float64()))
    pq.write_table(table, inputs["sample"])
    write_mapdata(inputs["sample"], np.load(inputs["coords"]), {"model": "m"}, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["colour_by"] == ["domain", "similarity", "punsafe"]
    assert meta["clusters"] == []
    assert meta["points"]["bytes"] / 200 <= 10


def test_stage_reads_the_upstream_outputs(inputs, tmp_path):
    folder = inputs["project"]
    ctx = SimpleNamespace(output=lambda name: folder, summary=lambda name: {"population": 9_999}, demo=False)
    summary = STAGE.run(ctx, tmp_path)
    assert summary["points"] == 3000 + len(HOSTILE_ROWS)
    assert STAGE.after == ("sample", "embed", "project")
    context = map_page_context(mapdata.read(tmp_path))
    assert context["available"] and context["points"] == summary["points"]
    assert context["sample_rows"] == 9_999 and context["model"] == "tfidf-hashing-512"


def test_page_context_without_map_data(tmp_path):
    assert map_page_context(mapdata.read(tmp_path))["available"] is False


def _widget_ctx(outputs) -> WidgetContext:
    return WidgetContext(config=AtlasConfig(), content_dir=Path("."), page="making", source=Path("making.md"),
                         root="../", stats={}, outputs=outputs)


def test_map_widget_embeds_the_map_page(built):
    folder, _, _ = built
    html = str(render_widget("atlas map height=300 colour=domain", _widget_ctx({"mapdata": folder}), "making.md"))
    assert '<iframe src="../map/?embed=1#c=domain"' in html
    assert 'title="Interactive map of 3,005 sampled captions"' in html and "300px" in html


def test_map_widget_says_the_map_is_not_built(tmp_path):
    html = str(render_widget("atlas map", _widget_ctx({}), "making.md"))
    assert "map is not built" in html and "<iframe" not in html


def test_map_widget_rejects_a_colour_the_data_lacks(built):
    from atlas.core.errors import ContentError

    folder, _, _ = built
    with pytest.raises(ContentError, match="colour"):
        render_widget("atlas map colour=nsfw", _widget_ctx({"mapdata": folder}), "making.md")


def test_meta_carries_the_binary_encoding_the_points_use(tmp_path):
    """The page reads the format's numbers from meta.json: they must describe points.bin."""
    inputs = synthetic_inputs(tmp_path / "in", 300, seed=1, extra_rows=[{"x": 1e9, "y": -1e9, "caption": "far away"}])
    out = tmp_path / "map"
    write_mapdata(inputs["sample"], project.read(inputs["project"]), embed.read(inputs["project"]), out, chunk_size=64)
    meta = mapdata.read(out).meta
    enc = meta["encoding"]
    data = (out / "points.bin").read_bytes()
    cols = {c["name"]: c for c in meta["points"]["columns"]}
    xy = np.frombuffer(data, "<u2", cols["xy"]["length"], cols["xy"]["offset"])
    scores = np.frombuffer(data, "u1", cols["scores"]["length"], cols["scores"]["offset"])
    assert 0.98 * enc["xy_max"] < xy.max() <= enc["xy_max"]  # the far point spans the box (1% margin)
    present = scores[scores != enc["score_missing"]]
    assert present.max() <= enc["score_max"] and (scores == enc["score_missing"]).any()  # the extra row has none
    captions = mapdata.read(out).captions()
    assert len(captions) == meta["count"] == 301 and "far away" in captions


def test_neighbours_follow_the_points_into_map_order(inputs, tmp_path):
    """neighbours.bin on the site names the same rows as the project stage's, renumbered into the
    map's point order (checked through each point's row_id in the detail chunks)."""
    from atlas.stages.project import NO_NEIGHBOUR, exact_knn, map_neighbours

    projection = project.read(inputs["project"])
    n = len(projection.coords)
    by_row = map_neighbours(exact_knn(projection.coords, 11, "euclidean")[0])  # any neighbour table will do
    by_row[-1, 7:] = NO_NEIGHBOUR  # a point with fewer neighbours keeps its gaps
    projection.neighbours = by_row
    out = tmp_path / "map"
    write_mapdata(inputs["sample"], projection, None, out, chunk_size=700)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["neighbours"] == {"file": "neighbours.bin", "k": 10, "type": "uint32", "missing": NO_NEIGHBOUR,
                                  "bytes": n * 40}
    on_map = np.fromfile(out / "neighbours.bin", dtype="<u4").reshape(n, 10)
    row_of = np.array([d[3] for d in all_details(out, meta)])  # point index -> row id
    assert sorted(row_of.tolist()) == list(range(n))
    translated = np.where(on_map == NO_NEIGHBOUR, NO_NEIGHBOUR, row_of[np.minimum(on_map, n - 1)])
    assert np.array_equal(translated, by_row[row_of])
    # Without neighbours (an older project output) there is no file and no meta entry.
    write_mapdata(inputs["sample"], projection.coords, None, out, chunk_size=700)
    assert json.loads((out / "meta.json").read_text())["neighbours"] is None
    assert not (out / "neighbours.bin").exists()


def test_demo_rows_are_marked_so_the_page_shows_no_image_or_link(inputs, tmp_path):
    folder = inputs["project"]
    ctx = SimpleNamespace(output=lambda name: folder, summary=lambda name: {"population": 9_999}, demo=True)
    STAGE.run(ctx, tmp_path)
    assert mapdata.read(tmp_path).meta["demo"] is True


def test_caption_lengths_come_in_their_own_file_outside_the_first_load(built):
    """lengths.bin: a byte a point, the caption's length over [0, max]; points.bin does not grow."""
    folder, summary, meta = built
    spec, top = meta["lengths"], meta["encoding"]["score_max"]
    data = np.frombuffer((folder / spec["file"]).read_bytes(), dtype=np.uint8)
    assert len(data) == meta["count"] == spec["bytes"] and "lengths.bin" in meta["encoding"]["lengths"]
    assert meta["points"]["bytes"] == summary["bytes"] and "lengths" not in {c["name"] for c in meta["points"]["columns"]}
    lengths = np.array([len(c) for c in mapdata.read(folder).captions()])
    assert spec["min"] == 0 and 0 < spec["max"] <= lengths.max()
    decoded = data / top * spec["max"]
    short = lengths < spec["max"]
    assert np.all(np.abs(decoded[short] - lengths[short]) <= spec["max"] / top / 2 + 1e-9)
    assert np.all(data[~short] == top)  # the longest 1% share the top byte
    assert (data == 0).sum() == (lengths == 0).sum()  # empty captions stay at 0, never "missing"
