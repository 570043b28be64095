"""CLIP's text tower in the reader's browser (atlas/stages/textmodel.py write_clip_model,
atlas/models/cliptext.py, static/js/text/clip-bpe.js): a real-sample build embedded with the
tiny random-weight open_clip model the tests save (the same code path as real weights from a local
path; captions only, as the sample has no images here) ships the text tower as ONNX with the BPE
tokenizer's files, and headless Chromium gives a reader's words open_clip's vector: within 1e-3 of
torch where the build shipped the exact fp32 graph, in torch's direction (cosine) where it shipped
int8, and the nearest points are Python's exact nearest."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.browser import serve, skip_reason
from helpers.builds import quiet_build
from helpers.content import write_content

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("open_clip", "onnx", "onnxruntime", "torch")),
                       reason="needs open_clip, torch and onnx (pip install torch==2.13.0 '.[ml,text]')"),
]

#: What a reader may type: a long paste, emoji, right-to-left, CJK, entities and markup, controls.
HARD = [
    "a small dog asleep on a sofa " * 400,
    "x" * 10_000,
    "🐶🐱 cute pets 😍😍 #love",
    "שלום עולם — مرحبا بالعالم",
    "中文 日本語のテキスト 한국어 Ｆｕｌｌ-width",
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> a red dress',
    "&amp;amp; &lt;b&gt; caf&eacute; P&EACUTE;REZ “curly” ﬁne <start_of_text>",
    "a\x00b\x1b[31mred\x1b[0m\r\nline\u2028two \ud800",
]
QUERIES = ["a small dog asleep on a sofa", "wedding dress with lace", "vintage car at a show", "mountain lake at sunrise",
           "red rose bouquet", "kitchen interior design", "running shoes for men", "watercolor painting of a bird",
           "christmas tree decoration", "diamond engagement ring", "a cup of coffee", "city skyline at night",
           "birthday cake with candles", "black leather jacket", "cat sleeping in the sun", "old map of europe",
           "football player in action", "wooden dining table", "sunset on the beach", "logo design template"]


def in_chromium(test):
    for mark in (pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")):
        test = mark(test)
    return test


def _content(folder, shared_data, tiny_clip):
    return write_content(folder, toml=f"""
        [data]
        sources = ["{shared_data / 'laion400m-sample-10k.parquet'}"]
        unscored = "keyword-filter"

        [sample]
        size = 300

        [project]
        fit_size = 300

        [embed]
        method = "clip"
        model = "{tiny_clip['config']}"
        pretrained = "{tiny_clip['checkpoint']}"
        device = "cpu"
        """)


@pytest.fixture(scope="module")
def clip_sites(tmp_path_factory, shared_data, tiny_clip):
    """Two builds of one content over one cache: as the stage decides (int8, which the tiny model's
    check passes) and one whose check no int8 graph passes, so it ships the exact fp32 export."""
    from atlas.core.config import EmbedConfig
    from atlas.stages import mapdata, textmodel
    from atlas.models.clip import clip_texts, load_clip

    root = tmp_path_factory.mktemp("clip-text")
    content = _content(root / "content", shared_data, tiny_clip)
    report = quiet_build(content, root / "site", root / "cache")
    assert report.published
    saved = textmodel.MIN_MEAN_COSINE
    textmodel.MIN_MEAN_COSINE = 1.01  # a stage input: the cache keys the stricter check apart
    try:
        exact = quiet_build(content, root / "site-fp32", root / "cache")
    finally:
        textmodel.MIN_MEAN_COSINE = saved
    clip = load_clip(EmbedConfig(method="clip", model=str(tiny_clip["config"]), pretrained=str(tiny_clip["checkpoint"]),
                                 device="cpu"))
    captions = mapdata.read(root / "site" / "map" / "data").captions()
    return {"root": root, "site": root / "site", "exact": root / "site-fp32", "report": report, "exact_report": exact,
            "clip": clip, "captions": captions, "vectors": clip_texts(clip, captions, 64)}


def torch_embed(clip_sites, texts):
    from atlas.models.clip import clip_texts

    return clip_texts(clip_sites["clip"], list(texts), 16)


def test_a_clip_map_ships_the_text_tower_its_tokenizer_and_the_maps_vectors(clip_sites):
    model = clip_sites["site"] / "model"
    manifest = json.loads((model / "text-model.json").read_text())
    summary = clip_sites["report"].info["browser_model"]
    sizes = {name: entry["bytes"] for name, entry in manifest["files"].items()}
    print(f"\nCLIP text tower for the browser: {sizes} bytes, vectors {manifest['vectors']['bytes']} bytes, "
          f"{summary['quantisation']}, agreement with torch {summary['agreement']}, "
          f"export {summary['export_seconds']} s, quantisation {summary['quantise_seconds']} s")
    exact = clip_sites["exact_report"].info["browser_model"]
    print(f"the same, fp32: {exact['bytes']} bytes, agreement {exact['agreement']}")
    assert manifest["kind"] == "clip" and manifest["inputs"] == ["input_ids"] and manifest["output"] == "embedding"
    assert manifest["tokenizer"]["kind"] == "clip-bpe" and manifest["tokenizer"]["context_length"] == 77
    assert set(manifest["files"]) == {"model", "bpe", "clean"} and not (model / "vocab.txt").exists()
    for entry in manifest["files"].values():
        assert (model / entry["file"]).stat().st_size == entry["bytes"]
    assert manifest["vectors"]["count"] == len(clip_sites["captions"]) and manifest["vectors"]["dim"] == 32
    assert summary["quantisation"] == "int8 per channel" and summary["agreement"]["mean_cosine"] >= 0.99
    assert exact["quantisation"] == "none (fp32)" and exact["agreement"]["max_abs_difference"] < 1e-4
    assert (clip_sites["site"] / "static" / "js" / "vendor" / "onnxruntime-web" / "ort-wasm-simd-threaded.wasm").is_file()
    assert (clip_sites["site"] / "static" / "js" / "text" / "clip-bpe.js").is_file()


def test_the_shipped_graphs_in_python_agree_with_open_clip(clip_sites, shared_data):
    from atlas.models.cliptext import onnx_embed

    texts = _real_captions(shared_data) + HARD
    want = torch_embed(clip_sites, texts)
    exact = onnx_embed(clip_sites["exact"] / "model" / "model.onnx", clip_sites["clip"].tokenizer, texts)
    assert np.abs(exact - want).max() < 1e-4
    quantised = onnx_embed(clip_sites["site"] / "model" / "model.onnx", clip_sites["clip"].tokenizer, texts)
    cos = (quantised * want).sum(1)
    print(f"\nint8 graph vs torch on {len(texts)} texts: cosine {cos.mean():.4f} mean, {cos.min():.4f} min")
    assert cos.mean() >= 0.99 and cos.min() >= 0.97


def _real_captions(shared_data, start=5000, count=20):
    captions = [c for c in pq.read_table(shared_data / "laion400m-sample-10k.parquet").column("TEXT").to_pylist()
                if isinstance(c, str) and c.strip()]
    return captions[start:start + count]


# ----------------------------------------------------------------------------- in Chromium


def _open_map(chromium, base):
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    page.errors, page.requests, page.foreign = [], [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))

    def handle(route):
        if not route.request.url.startswith(base):
            page.foreign.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", handle)
    page.goto(base + "map/")
    page.evaluate("window.__atlasMap.ready")
    return page


def _browser_vectors(page, texts):
    return np.array(page.evaluate(
        "(texts) => Promise.all(texts.map((t) => window.__atlasText.embed(t).then((v) => Array.from(v))))", texts))


@in_chromium
def test_in_chromium_the_fp32_tower_gives_torchs_vectors_within_1e_3(chromium, clip_sites, shared_data):
    texts = _real_captions(shared_data, count=12) + HARD
    with serve(clip_sites["exact"]) as base:
        page = _open_map(chromium, base)
        assert not [u for u in page.requests if "/model/" in u], "fetched before first use"
        info = page.evaluate("window.__atlasText.ready")
        assert info["dim"] == 32 and info["quantisation"] == "none (fp32)"
        got = _browser_vectors(page, texts)
        assert page.evaluate("window.__pwned") is None and not page.errors and not page.foreign
        page.close()
    want = torch_embed(clip_sites, texts)
    worst = np.abs(got - want).max(axis=1)
    print(f"\nChromium (fp32) vs open_clip in torch on {len(texts)} texts: max |difference| {worst.max():.2e}")
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert worst.max() < 1e-3, [t[:40] for t, w in zip(texts, worst) if w >= 1e-3]


@pytest.fixture(scope="module")
def served(clip_sites):
    with serve(clip_sites["site"]) as base:
        yield base


@in_chromium
def test_in_chromium_the_int8_tower_gives_the_graphs_vectors_and_torchs_direction(chromium, served, clip_sites, shared_data):
    from atlas.models.cliptext import onnx_embed

    texts = _real_captions(shared_data, count=12) + HARD
    page = _open_map(chromium, served)
    assert page.evaluate("window.__atlasText.ready")["quantisation"] == "int8 per channel"
    got = _browser_vectors(page, texts)
    assert not page.errors and not page.foreign
    page.close()
    graph = onnx_embed(clip_sites["site"] / "model" / "model.onnx", clip_sites["clip"].tokenizer, texts)
    cos = (got * torch_embed(clip_sites, texts)).sum(1)
    same = (got * graph).sum(1)
    print(f"\nChromium (int8) vs Python onnxruntime on the same graph: cosine {same.mean():.5f} mean, {same.min():.5f} min, "
          f"max |difference| {np.abs(got - graph).max():.2e}; vs torch: cosine {cos.mean():.4f} mean, {cos.min():.4f} min")
    # onnxruntime's int8 kernels round differently in WebAssembly and on the CPU: not bit for bit
    assert same.min() >= 0.99
    assert cos.mean() >= 0.99 and cos.min() >= 0.97


@in_chromium
def test_in_chromium_the_nearest_points_are_pythons_exact_nearest(chromium, served, clip_sites):
    page = _open_map(chromium, served)
    queries = QUERIES + clip_sites["captions"][:10]
    answers = page.evaluate("(qs) => Promise.all(qs.map((q) => window.__atlasText.nearest(q, 10)))", queries)
    exact = torch_embed(clip_sites, queries) @ clip_sites["vectors"].T
    overlaps = []
    for answer, row in zip(answers, exact):
        assert len(answer["ids"]) == 10 and answer["scores"] == sorted(answer["scores"], reverse=True)
        overlaps.append(len(set(answer["ids"]) & set(np.argsort(-row)[:10].tolist())))
    print(f"\nnearest 10 in Chromium vs Python's exact nearest 10: {np.mean(overlaps):.2f} shared on average "
          f"(min {min(overlaps)}) over {len(queries)} queries")
    assert np.mean(overlaps) >= 8
    assert [a["ids"][0] for a in answers[len(QUERIES):]] == list(range(10))  # a map caption finds itself first
    answer = page.evaluate("(q) => window.__atlasMap.searchMeaning(q, 5)", QUERIES[0])
    assert answer["ids"] == answers[0]["ids"][:5]  # the map's search by meaning gives the same answer
    assert not page.errors and not page.foreign
    page.close()


def test_a_large_clip_map_gets_the_clustered_layout_as_the_caption_model_does(tmp_path, clip_sites):
    from atlas.stages.textmodel import write_clip_model

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    summary = write_clip_model(clip_sites["clip"], vectors, clip_sites["captions"][:20], tmp_path, exact_max=100)
    manifest = json.loads((tmp_path / "text-model.json").read_text())
    assert summary["vectors_kind"] == manifest["vectors"]["kind"] == "clustered" and manifest["kind"] == "clip"
    assert (tmp_path / "ivf" / "index.bin").is_file() and not (tmp_path / "model-fp32.onnx").exists()
