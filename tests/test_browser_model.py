"""The caption model in the reader's browser (atlas/stages/textmodel.py, static/js/text/): a small
real-sample build embedded with all-MiniLM-L6-v2, whose ONNX export gives the reader's words the
vector sentence-transformers gives them in Python -- in Python onnxruntime and in headless
Chromium, where the tokenizer is our own WordPiece -- and whose nearest points are Python's exact
nearest. Loaded on first use only, from the site itself; a missing or damaged file, a browser
without WebAssembly or workers, an empty text and a TF-IDF atlas each give a clear answer."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.browser import serve, skip_reason
from helpers.builds import quiet_build
from helpers.content import write_content
from helpers.paths import REPO, needs_model

VENDOR = REPO / "themes" / "default" / "static" / "js" / "vendor" / "onnxruntime-web"



def in_chromium(test):
    """A test that builds a site and drives headless Chromium."""
    for mark in (pytest.mark.slow, pytest.mark.browser,
                 pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")):
        test = mark(test)
    return test

#: What a reader may type that the model must survive (a long paste, emoji, right-to-left, markup).
HARD = [
    "a small dog asleep on a sofa " * 400,  # ~12,000 characters: cut at the model's token limit
    "🐶🐱 cute pets 😍😍 #love",
    "שלום עולם — مرحبا بالعالم",
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> a red dress',
    "Ｆｕｌｌ-width café ΣΑΣ İstanbul 中文 [SEP] [cls]",
]
QUERIES = ["a small dog asleep on a sofa", "wedding dress with lace", "vintage car at a show", "mountain lake at sunrise",
           "red rose bouquet", "kitchen interior design", "running shoes for men", "watercolor painting of a bird",
           "christmas tree decoration", "diamond engagement ring", "a cup of coffee", "city skyline at night",
           "birthday cake with candles", "black leather jacket", "cat sleeping in the sun", "old map of europe",
           "football player in action", "wooden dining table", "sunset on the beach", "logo design template"]


# ----------------------------------------------------------------------------- fast: the vendored files


def test_the_vendored_runtime_is_the_pinned_version_with_its_licence_and_checksums():
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    assert manifest["package"] == "onnxruntime-web" and manifest["version"] == "1.30.0"
    on_disk = {p.name for p in VENDOR.iterdir() if p.name != "MANIFEST.json"}
    assert on_disk == set(manifest["files"]) and "LICENSE" in on_disk
    assert "MIT License" in (VENDOR / "LICENSE").read_text()
    for name, entry in manifest["files"].items():
        data = (VENDOR / name).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], name
    assert (REPO / "scripts" / "vendor-js.sh").stat().st_mode & 0o111  # the refresh script runs as it is


def test_only_bert_wordpiece_tokenizers_are_exported_since_the_page_implements_only_that():
    from atlas.stages.textmodel import tokenizer_settings

    bpe = {"normalizer": None, "pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {}}}
    with pytest.raises(ValueError, match="not BERT WordPiece"):
        tokenizer_settings(bpe, 128)
    bert = {"normalizer": {"type": "BertNormalizer", "lowercase": True, "strip_accents": None},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}},
            "added_tokens": [{"content": "[SEP]", "special": True}]}
    settings = tokenizer_settings(bert, 128)
    assert settings["strip_accents"] is True and settings["specials"] == {"[SEP]": 3} and settings["max_tokens"] == 128


def test_the_maps_vectors_keep_their_cosines_in_int8(tmp_path):
    from atlas.stages.textmodel import write_vectors

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[7] = 0  # a row without a vector stays a zero row
    entry = write_vectors(tmp_path / "vectors.bin", vectors)
    raw = (tmp_path / "vectors.bin").read_bytes()
    q = np.frombuffer(raw, np.int8, 500 * 384, entry["int8_offset"]).reshape(500, 384)
    scales = np.frombuffer(raw, "<f4", 500, entry["scales_offset"])
    assert entry["bytes"] == len(raw) == 500 * 384 + 500 * 4 and not q[7].any()
    query = vectors[3]
    assert np.abs((q @ query) * scales - vectors @ query).max() < 0.01


@needs_model
def test_our_wordpiece_gives_the_token_ids_of_the_models_own_tokenizer(tmp_path, shared_data):
    """The JavaScript tokenizer against the tokenizers library, on hard texts and 3,000 real captions."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs)")
    from tokenizers import Tokenizer

    from atlas.models.captionmodel import packaged_text_model
    from atlas.stages.textmodel import _vocab_lines, tokenizer_settings

    source = packaged_text_model(tmp_path / "models") / "tokenizer.json"
    tokenizer_json = json.loads(source.read_text(encoding="utf-8"))
    reference = Tokenizer.from_file(str(source))
    reference.no_padding()
    reference.enable_truncation(128)
    captions = [c for c in pq.read_table(shared_data / "laion400m-sample-10k.parquet").column("TEXT").to_pylist()
                if isinstance(c, str)][:3000]
    texts = HARD + ["", "  \t\n ", "a\x85b\x0bc\ufeffd\u200be", "\ue000x \u0378y", "a" * 101, "ǅ ß ﬁ ŉ", "$+<=>^`|~ ¿¡ «»"] + captions
    (tmp_path / "in.json").write_text(json.dumps({"vocab": _vocab_lines(tokenizer_json),
                                                  "settings": tokenizer_settings(tokenizer_json, 128), "texts": texts}))
    script = tmp_path / "run.mjs"
    script.write_text(
        "import { readFileSync } from 'node:fs';\n"
        f"import {{ WordPiece }} from {json.dumps((REPO / 'themes/default/static/js/text/wordpiece.js').as_uri())};\n"
        f"const d = JSON.parse(readFileSync({json.dumps(str(tmp_path / 'in.json'))}, 'utf-8'));\n"
        "const wp = new WordPiece(d.vocab, d.settings);\n"
        "process.stdout.write(JSON.stringify(d.texts.map((t) => wp.encode(t))));\n")
    run = subprocess.run([node, str(script)], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)
    wrong = [(text[:60], reference.encode(text).ids[:12], ids[:12]) for text, ids in zip(texts, got)
             if reference.encode(text).ids != ids]
    assert not wrong, wrong[:5]
    assert len(got[0]) == 128  # the long paste is cut at the model's limit, [SEP] kept


# ----------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def model_site(tmp_path_factory, shared_data):
    if any(importlib.util.find_spec(m) is None for m in ("sentence_transformers", "all_minilm_l6_v2", "onnx")):
        pytest.skip('the caption model or onnx is not installed (pip install torch==2.13.0 ".[text]")')
    root = tmp_path_factory.mktemp("browser-model")
    content = write_content(root / "content", toml=f"""
        [data]
        sources = ["{shared_data / 'laion400m-sample-10k.parquet'}"]
        unscored = "keyword-filter"

        [sample]
        size = 300

        [project]
        fit_size = 300

        [embed]
        method = "text"
        """)
    report = quiet_build(content, root / "site", root / "cache")
    assert report.published
    from atlas.models.captionmodel import load_text_model
    from atlas.core.config import EmbedConfig
    from atlas.stages import mapdata

    model = load_text_model(EmbedConfig(method="text"), content, root / "cache" / "models")
    data = mapdata.read(root / "site" / "map" / "data")
    captions = data.captions()
    vectors = model.model.encode(captions, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return {"root": root, "site": root / "site", "report": report, "model": model, "captions": captions,
            "vectors": vectors, "content": content}


def st_embed(model_site, texts):
    return model_site["model"].model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False)


def real_captions(shared_data, start=5000, count=50):
    """Real captions the build's own check did not use (the sample's first 200 in map order)."""
    captions = [c for c in pq.read_table(shared_data / "laion400m-sample-10k.parquet").column("TEXT").to_pylist()
                if isinstance(c, str) and c.strip()]
    return captions[start:start + count]


@pytest.mark.slow
def test_the_build_ships_the_model_states_its_size_and_fits_the_time_budget(model_site):
    site, info = model_site["site"], model_site["report"].info
    manifest = json.loads((site / "model" / "text-model.json").read_text())
    model_bytes = (site / "model" / "model.onnx").stat().st_size
    summary = info["browser_model"]
    print(f"\nmodel {model_bytes / 1e6:.1f} MB ({summary['quantisation']}), export {summary['export_seconds']} s, "
          f"quantisation {summary['quantise_seconds']} s, agreement {summary['agreement']}")
    assert summary["bytes"] == model_bytes == manifest["files"]["model"]["bytes"]
    assert model_bytes < 25_000_000 and summary["quantisation"] == "int8 per channel"
    assert summary["export_seconds"] + summary["quantise_seconds"] < 60
    assert manifest["tokenizer"]["max_tokens"] == model_site["model"].model.max_seq_length
    assert manifest["vectors"]["count"] == len(model_site["captions"])
    published = json.loads((site / "data" / "build.json").read_text())
    assert published["browser_model"]["bytes"] == model_bytes
    assert (site / "static" / "js" / "vendor" / "onnxruntime-web" / "ort-wasm-simd-threaded.wasm").is_file()


@pytest.mark.slow
def test_a_second_build_takes_the_exported_model_from_the_cache(model_site, tmp_path):
    from helpers.builds import statuses

    again = quiet_build(model_site["content"], tmp_path / "site", model_site["root"] / "cache")
    assert statuses(again)["textmodel"] == "cached"
    assert (tmp_path / "site" / "model" / "model.onnx").read_bytes() == (model_site["site"] / "model" / "model.onnx").read_bytes()


@pytest.mark.slow
def test_the_onnx_model_in_python_agrees_with_sentence_transformers(model_site, shared_data):
    from atlas.stages.textmodel import onnx_embed

    texts = real_captions(shared_data) + HARD
    model = model_site["model"].model
    got = onnx_embed(model_site["site"] / "model" / "model.onnx", model.tokenizer, texts, model.max_seq_length)
    cos = (got * st_embed(model_site, texts)).sum(1)
    print(f"\nPython onnxruntime vs sentence-transformers: cosine {cos.mean():.4f} mean, {cos.min():.4f} min")
    assert cos.mean() >= 0.99 and cos.min() >= 0.97


@pytest.mark.slow
def test_the_maps_vectors_are_the_builds_in_the_maps_point_order(model_site):
    from atlas.stages import textmodel

    manifest = textmodel.read(model_site["site"] / "model").manifest["vectors"]
    raw = (model_site["site"] / "model" / "vectors.bin").read_bytes()
    n, dim = manifest["count"], manifest["dim"]
    q = np.frombuffer(raw, np.int8, n * dim, manifest["int8_offset"]).reshape(n, dim)
    scales = np.frombuffer(raw, "<f4", n, manifest["scales_offset"])
    restored = q * scales[:, None]
    cos = (restored * model_site["vectors"]).sum(1) / np.linalg.norm(restored, axis=1)
    assert cos.min() > 0.999


# ----------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def served(model_site):
    with serve(model_site["site"]) as base:
        yield base


def open_map(chromium, base, init_script=None, route=None, wait_map=True):
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    page.errors, page.requests, page.foreign = [], [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))

    def handle(request_route):
        url = request_route.request.url
        if not url.startswith(base):
            page.foreign.append(url)
            return request_route.abort()
        if route is not None and route(request_route):
            return None
        return request_route.continue_()

    page.route("**/*", handle)
    if init_script:
        page.add_init_script(init_script)
    page.goto(base + "map/")
    if wait_map:
        page.evaluate("window.__atlasMap.ready")
    else:
        page.wait_for_function("window.__atlasText !== undefined")
    return page


@in_chromium
def test_in_chromium_the_vectors_match_sentence_transformers(chromium, served, model_site, shared_data):
    page = open_map(chromium, served)
    assert not [u for u in page.requests if "/model/" in u or "onnxruntime" in u], "fetched before first use"
    started = time.perf_counter()
    info = page.evaluate("window.__atlasText.ready")
    print(f"\nmodel ready {time.perf_counter() - started:.2f} s after first use (download from 127.0.0.1 included)")
    assert info["model"] == "all-MiniLM-L6-v2" and info["dim"] == 384
    texts = real_captions(shared_data) + HARD
    vectors = np.array(page.evaluate("(texts) => Promise.all(texts.map((t) => window.__atlasText.embed(t).then((v) => Array.from(v))))", texts))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = (vectors * st_embed(model_site, texts)).sum(1)
    print(f"\nChromium vs sentence-transformers on {len(texts)} texts: cosine {cos.mean():.4f} mean, {cos.min():.4f} min")
    assert cos.mean() >= 0.99 and cos.min() >= 0.97
    assert page.evaluate("window.__pwned") is None  # the markup in a text is only text
    timing = page.evaluate("""async () => { const t = [];
        for (let i = 0; i < 20; i++) { const s = performance.now(); await window.__atlasText.embed('a small dog asleep on a sofa ' + i); t.push(performance.now() - s); }
        t.sort((a, b) => a - b); return t[10]; }""")
    print(f"one query embedded: {timing:.1f} ms (median of 20, warm)")
    model_fetches = [u for u in page.requests if u.endswith("/model/model.onnx")]
    assert len(model_fetches) == 1 and not page.foreign and not page.errors
    page.close()


@in_chromium
def test_in_chromium_the_nearest_points_are_pythons_exact_nearest(chromium, served, model_site):
    page = open_map(chromium, served)
    answers = page.evaluate("(qs) => Promise.all(qs.map((q) => window.__atlasText.nearest(q, 10)))", QUERIES)
    exact = st_embed(model_site, QUERIES) @ model_site["vectors"].T
    overlaps = []
    for answer, row in zip(answers, exact):
        assert len(answer["ids"]) == 10 and answer["scores"] == sorted(answer["scores"], reverse=True)
        overlaps.append(len(set(answer["ids"]) & set(np.argsort(-row)[:10].tolist())))
    print(f"\nnearest 10 in Chromium vs Python's exact nearest 10: {np.mean(overlaps):.2f} shared on average "
          f"(min {min(overlaps)}) over {len(QUERIES)} queries")
    assert np.mean(overlaps) >= 8
    caption = page.evaluate("(id) => window.__atlasMap.caption(id)", answers[0]["ids"][0])
    assert caption == model_site["captions"][answers[0]["ids"][0]]  # ids are the map's point ids
    assert sum(u.endswith("/model/vectors.bin") for u in page.requests) == 1 and not page.errors
    page.close()


@in_chromium
def test_an_empty_text_is_refused_with_a_reason(chromium, served):
    page = open_map(chromium, served)
    for text in ("", "   \n\t", "\u200b\ufeff"):
        error = page.evaluate("(t) => window.__atlasText.embed(t).then(() => null, (e) => ({code: e.code, message: e.message}))", text)
        assert error["code"] == "empty" and "empty" in error["message"]
    assert len(page.evaluate("window.__atlasText.embed('still works')")) == 384
    page.close()


@in_chromium
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_truncated_model_file_is_a_clear_error_and_the_map_keeps_working(chromium, served, damage):
    def route(request_route):
        if not request_route.request.url.endswith("/model/model.onnx"):
            return False
        if damage == "missing":
            request_route.fulfill(status=404, body="not found")
        else:
            request_route.fulfill(status=200, body=b"\x08\x07" * 5000, headers={"content-type": "application/octet-stream"})
        return True

    page = open_map(chromium, served, route=route)
    error = page.evaluate("window.__atlasText.ready.then(() => null, (e) => ({code: e.code, message: e.message}))")
    assert error is not None and "caption model file" in error["message"]
    assert error["code"] == ("missing" if damage == "missing" else "damaged")
    assert page.evaluate("window.__atlasText.nearest('a dog', 5).then(() => 'ok', (e) => e.code)") == error["code"]
    answer = page.evaluate("window.__atlasMap.searchMeaning('a dog on a sofa', 5)")
    assert answer["ids"] == [] and "caption model file" in answer["error"]
    said = page.inner_text("#map-search-count")
    assert "caption model file" in said and "Search by words still works" in said  # in the box, in reader words
    assert page.get_attribute("#map-search-count", "data-error") == error["code"]
    words = page.evaluate("window.__atlasMap.search('dog')")  # keyword search is untouched
    assert words["total"] > 0 and page.evaluate("window.__atlasMap.state().mode") == "words"
    assert not page.errors
    page.close()


@in_chromium
@pytest.mark.parametrize("missing", ["WebAssembly", "Worker"])
def test_a_browser_without_webassembly_or_workers_gets_a_clear_error(chromium, served, missing):
    # (The map itself needs a worker for its keyword search: without one only the handle is awaited.)
    page = open_map(chromium, served, init_script=f"delete window.{missing};", wait_map=missing != "Worker")
    error = page.evaluate("window.__atlasText.ready.then(() => null, (e) => ({code: e.code, message: e.message}))")
    assert error["code"] == "unsupported"
    assert ("WebAssembly" if missing == "WebAssembly" else "Web Workers") in error["message"]
    assert not [u for u in page.requests if "/model/" in u]
    page.close()


@in_chromium
def test_a_tfidf_atlas_ships_no_model_and_says_search_by_meaning_is_unavailable(chromium, tmp_path, shared_data):
    content = write_content(tmp_path / "content", toml=f"""
        [data]
        sources = ["{shared_data / 'laion400m-sample-10k.parquet'}"]
        unscored = "keyword-filter"

        [sample]
        size = 200

        [project]
        fit_size = 200

        [embed]
        method = "tfidf"
        """)
    report = quiet_build(content, tmp_path / "site", tmp_path / "cache")
    site = tmp_path / "site"
    assert not (site / "model").exists() and "browser_model" not in report.info
    assert not (site / "static" / "js" / "vendor" / "onnxruntime-web").exists()  # no runtime without a model
    with serve(site) as base:
        page = open_map(chromium, base)
        error = page.evaluate("window.__atlasText.ready.then(() => null, (e) => ({code: e.code, message: e.message}))")
        assert error["code"] == "unavailable" and page.evaluate("window.__atlasText.available") is False
        assert "not available for this atlas" in error["message"] and "tfidf" not in error["message"].lower()
        page.click("text=by meaning")  # the map's mode says why, and the box stays with words
        assert "not available for this atlas" in page.inner_text("#map-search-count")
        assert page.evaluate("window.__atlasMap.state().mode") == "words"
        assert page.is_checked("input[name=map-mode][value=words]")
        assert page.evaluate("window.__atlasMap.search('dress')")["total"] > 0
        assert not [u for u in page.requests if "/model/" in u] and not page.errors
        page.close()


@pytest.mark.slow
def test_a_map_with_no_point_ships_no_model(tmp_path, shared_data):
    """Unscored data shows no row by default: the map is empty, so there is nothing to search by
    meaning, and the site does not carry the model and runtime (37 MB) for it."""
    if any(importlib.util.find_spec(m) is None for m in ("sentence_transformers", "all_minilm_l6_v2", "onnx")):
        pytest.skip('the caption model or onnx is not installed (pip install torch==2.13.0 ".[text]")')
    content = write_content(tmp_path / "content", toml=f"""
        [data]
        sources = ["{shared_data / 'laion400m-sample-10k.parquet'}"]

        [sample]
        size = 200

        [embed]
        method = "text"
        """)
    report = quiet_build(content, tmp_path / "site", tmp_path / "cache")
    site = tmp_path / "site"
    assert report.published and json.loads((site / "map" / "data" / "meta.json").read_text())["count"] == 0
    assert not (site / "model").exists() and "browser_model" not in report.info
    assert not (site / "static" / "js" / "vendor" / "onnxruntime-web").exists()


# ----------------------------------------------------------------------------- the map's search by meaning


@in_chromium
@pytest.mark.parametrize("renderer", ["webgl2", "canvas2d"])
def test_the_maps_search_by_meaning_lists_flies_to_and_marks_the_nearest_points(chromium, served, model_site, renderer):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(served + f"map/?renderer={renderer}")
    page.evaluate("window.__atlasMap.ready")
    assert page.evaluate("window.__atlasMap.renderer") == renderer
    page.click("text=by meaning")
    assert "own words" in page.inner_text("#map-search-help") and "leaves it" in page.inner_text("#map-search-help")
    query = "a small dog asleep on a sofa"
    page.fill("#map-search", query)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1'", timeout=120_000)
    assert page.inner_text("#map-search-count") == "50 closest in meaning"
    expected = page.evaluate("(q) => window.__atlasText.nearest(q, 50)", query)
    listed = [int(i) for i in page.eval_on_selector_all(".map-result", "rows => rows.map((r) => r.dataset.id)")]
    assert listed and listed == expected["ids"][: len(listed)]  # the same answer, in the same order
    first = page.inner_text(".map-result >> nth=0")
    assert model_site["captions"][expected["ids"][0]] in first and "in meaning" in first
    # where the words land: the ring is on screen, where the answer says, among the nearest points
    answer = page.evaluate("(q) => window.__atlasMap.searchMeaning(q, 10)", query)
    assert answer["ids"] == expected["ids"][:10] and answer["scores"] == expected["scores"][:10]
    page.wait_for_timeout(1200)  # the flight
    ring = page.evaluate("window.__atlasMap.meaningMarker()")
    at = page.evaluate("(a) => window.__atlasMap.dataToClient(a[0], a[1])", answer["at"])
    assert ring is not None and abs(ring[0] - at[0]) < 3 and abs(ring[1] - at[1]) < 3
    canvas = page.locator("#map-canvas").bounding_box()
    assert canvas["x"] <= ring[0] <= canvas["x"] + canvas["width"] and canvas["y"] <= ring[1] <= canvas["y"] + canvas["height"]
    # the address keeps the mode: a reload searches by meaning again
    page.wait_for_function("location.hash.includes('m=meaning')")
    page.reload()
    page.evaluate("window.__atlasMap.ready")
    page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1' && window.__atlasMap.matches() > 0",
                           timeout=120_000)
    assert page.is_checked("input[name=map-mode][value=meaning]")
    assert page.evaluate("window.__atlasMap.meaningMarker()") is not None
    # back to words: the ring goes, the same box searches the index
    page.click("text=by words")
    page.wait_for_function("document.querySelector('#map-search-count').dataset.done === '1' && !location.hash.includes('m=meaning')")
    assert page.evaluate("window.__atlasMap.meaningMarker()") is None
    assert page.evaluate("window.__atlasMap.state().mode") == "words" and "closest in meaning" not in page.inner_text("#map-search-count")
    assert not errors
    page.close()


@in_chromium
def test_what_a_reader_types_by_meaning_stays_text(chromium, served):
    page = open_map(chromium, served)
    page.click("text=by meaning")
    for text in HARD:
        answer = page.evaluate("(t) => window.__atlasMap.searchMeaning(t, 5)", text)
        assert len(answer["ids"]) == 5 and "error" not in answer, text[:40]
    assert page.evaluate("window.__pwned") is None
    answer = page.evaluate("window.__atlasMap.searchMeaning('   ', 5)")  # an empty box: nothing listed, no ring
    assert answer["ids"] == [] and page.evaluate("window.__atlasMap.meaningMarker()") is None
    assert not page.errors and not page.foreign
    page.close()


@in_chromium
def test_search_by_meaning_fetches_nothing_before_the_reader_asks(chromium, served):
    page = open_map(chromium, served)
    page.click("text=by meaning")  # choosing the mode is not asking yet
    page.wait_for_timeout(500)
    assert not [u for u in page.requests if "/model/" in u or "onnxruntime" in u]
    page.close()
