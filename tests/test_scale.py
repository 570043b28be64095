"""Past one machine (issue 13): the embed stage on Ray gives the local engine's vectors, images
fetched by the built-in downloader whether or not img2dataset is installed (opt-outs honoured,
dead links counted, non-public addresses never fetched: issue 17), and the default install free
of the heavy extras."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
import tomllib

import numpy as np
import pyarrow as pa
import pytest
from helpers.paths import IMAGES, REPO, needs_images, needs_ray

from atlas.fetch import images
from atlas.fetch import runner as fetch
from atlas.core.config import EmbedConfig, parse_config
from atlas.core.errors import ConfigError
from atlas.fetch.runner import fetch_summary, outcome, private_host
from atlas.core.report import Reporter
from atlas.core.settings import Settings
from atlas.stages.embed import embed_sample



# Found, not imported: importing img2dataset imports albumentations, which asks pypi.org for its version.
needs_img2dataset = pytest.mark.skipif(not fetch.img2dataset_available(), reason="the images extra is not installed")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_default_install_is_free_of_ray_img2dataset_and_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    default = {_requirement_name(r) for r in project["dependencies"]}
    assert not default & {"ray", "img2dataset", "torch", "torchvision", "open-clip-torch", "pyspark"}, default
    extras = project["optional-dependencies"]
    # The heavy extras are there, pinned, so a cluster's workers install what the tests ran.
    assert [_requirement_name(r) for r in extras["ray"]] == ["ray"] and "==" in extras["ray"][0]
    assert "data" in extras["ray"][0]
    assert [_requirement_name(r) for r in extras["images"]] == ["img2dataset"] and "==" in extras["images"][0]


@pytest.mark.parametrize("key, value", [("engine", "spark"), ("engine", ""), ("engine", 1),
                                        ("distributor", "threads"), ("distributor", None)])
def test_engine_and_distributor_reject_unknown_values(key, value):
    with pytest.raises(ConfigError, match=rf"\[embed\] {key}"):
        parse_config({"embed": {key: value}})


def test_ray_address_comes_from_the_environment():
    assert Settings.from_env({"RAY_ADDRESS": " ray://head:10001 "}).ray_address == "ray://head:10001"
    assert Settings.from_env({"RAY_ADDRESS": ""}).ray_address is None
    assert Settings.from_env({}).ray_address is None


@pytest.mark.parametrize("url, refused", [
    ("http://127.0.0.1/a.jpg", True), ("http://127.8.9.1:8080/a.jpg", True), ("http://10.0.0.7/a.jpg", True),
    ("http://192.168.1.1/a.jpg", True), ("http://172.16.0.1/a.jpg", True), ("http://169.254.169.254/latest", True),
    ("http://100.64.0.1/a.jpg", True), ("http://0.0.0.0/a.jpg", True), ("http://240.0.0.1/a.jpg", True),
    ("http://224.0.0.1/a.jpg", True), ("http://[::1]/a.jpg", True), ("http://[fe80::1%25eth0]/a.jpg", True),
    ("http://[fc00::1]/a.jpg", True), ("http://[::ffff:127.0.0.1]/a.jpg", True), ("http://localhost:80/a", True),
    ("http://img.localhost/a", True), ("http://8.8.8.8/a.jpg", False), ("https://[2606:4700::1111]/a", False),
    ("https://example.com/a.jpg", False), ("https://10.example.com/a.jpg", False), ("not a url", False),
    (None, False), ("", False),
])
def test_literal_non_public_hosts_are_refused(url, refused):
    assert private_host(url) is refused


def test_the_test_allow_list_exempts_only_its_network(monkeypatch):
    monkeypatch.setattr(images, "ALLOW_NETWORKS_FOR_TESTS", ("127.0.0.1/32",))
    assert not private_host("http://127.0.0.1:8000/a.jpg")
    assert private_host("http://127.0.0.2:8000/a.jpg") and private_host("http://[::1]/a.jpg")


@pytest.mark.parametrize("reason, kind", [
    (None, "fetched"), ("Use of image disallowed by X-Robots-Tag directive", "opt_out"),
    ("HTTP Error 404: Not Found", "dead"), ("http 410", "dead"), ("HTTP Error 403: Forbidden", "dead"),
    ("HTTP Error 429: Too Many Requests", "failed"), ("http 503", "failed"),
    ("<urlopen error [Errno -2] Name or service not known>", "dead"),
    ("<urlopen error [Errno 111] Connection refused>", "dead"), ("connection failed", "dead"),
    ("timeout", "failed"), ("The read operation timed out", "failed"), ("not an image", "failed"),
    ("too large", "failed"), ("too many pixels", "failed"), (fetch.REFUSED, "refused"),
    ("opted out (X-Robots-Tag: noai)", "opt_out"),
])
def test_fetch_outcomes_in_both_tools_words(reason, kind):
    assert outcome(reason) == kind


def test_fetch_summary_counts_link_rot_over_attempted_rows():
    images_ = {"embedded": 6, "reasons": {"http 404": 2, fetch.REFUSED: 2, "timeout": 1, images.OPTED_OUT: 1}}
    summary = fetch_summary(images_, fetch.TOOL)
    assert summary == {"tool": "built-in downloader", "distributor": None, "requested": 12, "fetched": 6,
                       "opt_out": 1, "dead": 2, "refused": 2, "failed": 1, "link_rot": 0.2}
    assert fetch_summary({"embedded": 0, "reasons": {fetch.REFUSED: 3}}, fetch.TOOL)["link_rot"] is None
    assert fetch_summary({"embedded": 0, "reasons": {}}, fetch.TOOL)["requested"] == 0


def _table(captions, urls) -> pa.Table:
    n = len(captions)
    return pa.table({"row_id": pa.array(range(n), pa.int64()), "url": pa.array(urls, pa.string()),
                     "caption": pa.array(captions, pa.string()), "source_row": pa.array(range(n), pa.int64())})


def _clip(tiny_clip, **extra) -> EmbedConfig:
    return EmbedConfig(method="clip", model=str(tiny_clip["config"]), pretrained=str(tiny_clip["checkpoint"]), **extra)


@needs_ray
def test_tfidf_on_a_local_ray_gives_the_same_bytes_as_the_local_engine(shared_data):
    import pyarrow.parquet as pq

    captions = pq.read_table(shared_data / "laion400m-sample-10k.parquet", columns=["TEXT"]).column(0).to_pylist()[:3000]
    captions[5], captions[6] = None, ""  # a missing and an empty caption
    table = _table(captions, [f"https://img{i}.example.com/a.jpg" for i in range(len(captions))])
    local, local_info = embed_sample(table, EmbedConfig(method="tfidf"))
    distributed, info = embed_sample(table, EmbedConfig(method="tfidf", engine="ray"))
    assert info == local_info and local.shape == (3000, 128)
    assert distributed.tobytes() == local.tobytes()
    import ray

    assert not ray.is_initialized()  # the local Ray started for the build is shut down after it


@needs_ray
@needs_images
def test_clip_on_a_local_ray_matches_the_local_engine(tiny_clip, tmp_path):
    photos = sorted(IMAGES.glob("*.jpg"))
    folder = tmp_path / "images"
    folder.mkdir()
    for i, photo in enumerate(photos):
        shutil.copy(photo, folder / f"{i}.jpg")
    (folder / f"{len(photos)}.jpg").write_bytes(b"not a jpeg")
    n = 70  # more rows than one batch, most without an image
    table = _table([f"caption {i} about {'cats' if i % 2 else 'engines'}" for i in range(n - 1)] + [None],
                   [f"https://img{i}.example.com/a.jpg" for i in range(n)])
    config = _clip(tiny_clip, images=str(folder), batch_size=16)
    local, local_info = embed_sample(table, config)
    distributed, info = embed_sample(table, _clip(tiny_clip, images=str(folder), batch_size=16, engine="ray"))
    assert info == local_info
    assert info["images"] == {"embedded": len(photos), "failed": n - len(photos),
                              "reasons": {"missing": n - len(photos) - 1, "not an image": 1}}
    # Same rows, same vectors to fp32 rounding (batches are composed differently on the actors).
    assert np.allclose(distributed, local, rtol=0, atol=1e-6)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test folder; ``noai-*`` files carry ``X-Robots-Tag: noai``."""

    def end_headers(self):
        if "noai-" in self.path:
            self.send_header("X-Robots-Tag", "noai")
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server(tmp_path, monkeypatch):
    """A server on 127.0.0.1 -- the one address allow-listed for these tests -- serving the
    shared photos; the test URLs name no other address but the refused 127.0.0.2."""
    root = tmp_path / "www"
    root.mkdir()
    photos = sorted(IMAGES.glob("*.jpg"))
    for i, photo in enumerate(photos[:3]):
        shutil.copy(photo, root / f"{i}.jpg")
    shutil.copy(photos[3], root / "noai-3.jpg")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(images, "ALLOW_NETWORKS_FOR_TESTS", ("127.0.0.1/32",))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/0.jpg", f"{base}/1.jpg", f"{base}/2.jpg", f"{base}/noai-3.jpg", f"{base}/gone.jpg",
            f"http://127.0.0.2:{server.server_address[1]}/0.jpg"]
    yield urls
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("extra", [pytest.param(True, marks=needs_img2dataset, id="images-extra-installed"),
                                   pytest.param(False, id="without-the-extra")])
@needs_images
def test_the_built_in_downloader_fetches_with_or_without_img2dataset(tiny_clip, image_server, tmp_path, monkeypatch,
                                                                     extra):
    """img2dataset checks no resolved address and no redirect (issue 17), so installing it must not
    change who downloads: the same figures, the same tool named, nothing written to the cache."""
    import io

    from rich.console import Console

    if not extra:
        monkeypatch.setattr(fetch, "img2dataset_available", lambda: False)  # as if the extra were not installed
    table = _table([f"caption {i}" for i in range(len(image_server))], image_server)
    log = io.StringIO()
    cache = tmp_path / "cache"
    vectors, info = embed_sample(table, _clip(tiny_clip, images="download"),
                                 reporter=Reporter(console=Console(file=log, width=400)), download_dir=cache)
    assert info["images"]["fetch"] == {"tool": "built-in downloader", "distributor": None, "requested": 6,
                                       "fetched": 3, "opt_out": 1, "dead": 1, "refused": 1, "failed": 0,
                                       "link_rot": 0.2}
    assert info["images"]["reasons"] == {"http 404": 1, images.OPTED_OUT: 1, fetch.REFUSED: 1}
    assert ("img2dataset is installed but does not download" in log.getvalue()) is extra
    assert not [p for p in cache.rglob("*") if p.is_file()]  # fetched while embedding, nothing kept
    # The rows without an image keep their caption vector.
    text_only, _ = embed_sample(table, _clip(tiny_clip))
    assert np.allclose(vectors[3:], text_only[3:]) and not np.allclose(vectors[:3], text_only[:3])


def test_a_cluster_distributor_is_warned_about_not_silently_ignored():
    reporter = Reporter(quiet=True)
    table = _table(["a"], ["https://example.com/a.jpg"])
    assert fetch.fetch_images(table, EmbedConfig(images="download", distributor="ray"), reporter=reporter) == (
        "download", {}, "built-in downloader")
    (warning,) = reporter.warnings.messages()
    assert warning.startswith('[embed] distributor = "ray" has no effect') and "img2dataset" in warning


@needs_images
def test_a_build_reports_the_fetch_figures_on_the_map_page(tiny_clip, image_server, tmp_path):
    import json

    from helpers.content import write_content, write_shard

    from atlas.build import build

    # 120 rows: the six of the test server, then refused addresses (never contacted, so the
    # downloader's per-host pace does not make the test slow).
    refused = image_server[-1]
    urls = image_server + [refused.replace(".jpg", f"-{i}.jpg") for i in range(len(image_server), 120)]
    shard = write_shard(tmp_path / "data" / "part.parquet", {
        "URL": urls, "TEXT": [f"a photo of thing {i}" for i in range(120)], "punsafe": [0.01] * 120})
    content = write_content(tmp_path / "content", toml=f"""
        [data]
        sources = ["{shard}"]
        [sample]
        size = 120
        [project]
        fit_size = 120
        [embed]
        method = "clip"
        model = "{tiny_clip['config']}"
        pretrained = "{tiny_clip['checkpoint']}"
        images = "download"
        """)
    out = tmp_path / "site"
    report = build(content, out, cache_dir=tmp_path / "cache", reporter=Reporter(quiet=True))
    figures = json.loads((out / "data" / "build.json").read_text())["images_fetch"]
    assert figures["tool"] == "built-in downloader" and figures["requested"] == 120
    assert (figures["fetched"], figures["opt_out"], figures["refused"]) == (3, 1, 115)
    assert figures["dead"] == 1 and figures["link_rot"] == round(1 / 5, 4)
    html = (out / "map" / "index.html").read_text()
    assert "Of the 120 images behind these points, 3 could be downloaded" in html
    assert "1 link no longer works (20% of those tried" in html
    assert "1 image was left alone because its site asks AI tools not to use it" in html
    assert "115 links point into private networks" in html
    assert any(r.name == "embed" and r.status == "ran" for r in report.results)


def test_engine_ray_without_the_extra_is_a_config_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if `pip install ".[ray]"` had not been run
    table = _table(["a red dress", "a blue car", "a green tree"], [None, None, None])
    with pytest.raises(ConfigError, match=r"needs Ray Data") as error:
        embed_sample(table, EmbedConfig(method="tfidf", engine="ray"))
    assert error.value.where == "[embed] engine" and ".[ray]" in error.value.hint
