"""The image downloader (``[embed] images = "download"``) against hostile servers and URLs.

Every request goes to a local HTTP server on 127.0.0.1, which the tests allow-list explicitly
(``Downloader(allow=...)``, an internal parameter: loopback is refused by default). A guard on
``socket.create_connection`` fails the test if anything tries to connect anywhere else: the
refusal of 169.254.169.254 and friends is checked on the decision alone, never by sending
traffic there.
"""

from __future__ import annotations

import http.server
import importlib.util
import io
import socket
import struct
import threading
import time
import zlib

import pytest

from atlas.fetch.images import OPTED_OUT, Downloader, address_refused, decode_image, robots_opt_out
from helpers.paths import IMAGES, needs_images

LOCAL = ("127.0.0.1/32",)


def bomb_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels, a few kB long (built without
    ever holding the pixels: rows are compressed one by one)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class _Hostile(http.server.BaseHTTPRequestHandler):
    """Paths: /photo.jpg, /noai.jpg (X-Robots-Tag), /to-metadata, /to-private, /to-name, /to-ftp, /to-photo, /loop,
    /drip (body one byte at a time), /drip-headers, /bomb.png, /big (no Content-Length)."""

    photo = b""
    requests: list[str] = []
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, headers: dict | None = None, status: int = 200) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(b"", {"Location": location}, 302)

    def do_GET(self):  # noqa: N802
        self.requests.append(self.path)
        path = self.path
        if path == "/photo.jpg":
            self._send(self.photo, {"Content-Type": "image/jpeg"})
        elif path.startswith("/robots/"):
            self._send(self.photo, {"X-Robots-Tag": path.split("/", 2)[2].replace("_", " ")})
        elif path == "/noai.jpg":
            self._send(self.photo, {"X-Robots-Tag": "noai"})
        elif path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        elif path == "/to-private":
            self._redirect("http://10.0.0.7/admin/photo.jpg")
        elif path == "/to-name":  # a name that resolves to the metadata address (see _resolving)
            self._redirect(f"http://metadata.images.test:{self.server.server_address[1]}/photo.jpg")
        elif path == "/to-ftp":
            self._redirect(f"ftp://127.0.0.1:{self.server.server_address[1]}/photo.jpg")
        elif path == "/to-photo":
            self._redirect("/photo.jpg")
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/bomb.png":
            self._send(self.server.bomb, {"Content-Type": "image/png"})
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "400")
            self.end_headers()
            self._drip(b"x" * 400)
        elif path == "/drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._drip(b"X-Slow: " + b"y" * 400)
        elif path == "/big":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"z" * 65536)
        else:
            self._send(b"no", status=404)

    def _drip(self, data: bytes) -> None:
        try:
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)  # 400 bytes: 20 s in all
        except OSError:
            pass  # the client hung up: the point of the test


@pytest.fixture
def server():
    photo = sorted(IMAGES.glob("*.jpg"))[0].read_bytes() if IMAGES.is_dir() else b"\xff\xd8"
    handler = type("Handler", (_Hostile,), {"photo": photo, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.bomb = bomb_png()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def only_loopback_traffic(monkeypatch):
    """Fail at once if the downloader tries to connect to any address but 127.0.0.1."""
    real = socket.create_connection
    attempts = []

    def guarded(address, *args, **kwargs):
        attempts.append(address[0])
        assert address[0] == "127.0.0.1", f"the downloader tried to connect to {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return attempts


def _downloader(**options) -> Downloader:
    settings = dict(deadline=5.0, retries=0, host_interval=0.0, backoff=0.01, allow=LOCAL)
    settings.update(options)
    return Downloader(**settings)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "169.254.169.254", "fe80::1", "fc00::1", "100.64.0.1", "224.0.0.1", "ff02::1", "240.0.0.1",
    "255.255.255.255", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "192.0.2.1", "not an address",
])
def test_non_public_addresses_are_refused(address):
    assert address_refused(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert not address_refused(address)


def test_the_allow_list_exempts_only_its_network():
    assert not address_refused("127.0.0.1", LOCAL)
    assert address_refused("127.0.0.2", LOCAL) and address_refused("::1", LOCAL)
    assert address_refused("169.254.169.254", LOCAL)


@needs_images
def test_loopback_is_refused_without_the_allow_list_and_nothing_is_sent(server, only_loopback_traffic):
    _, base, requests = server
    for url in (f"{base}/photo.jpg", base.replace("127.0.0.1", "localhost") + "/photo.jpg",
                f"http://[::1]:{base.rsplit(':', 1)[1]}/photo.jpg", f"http://2130706433:{base.rsplit(':', 1)[1]}/x"):
        assert Downloader(deadline=5, host_interval=0).get(url) == (None, "refused address"), url
    assert requests == [] and only_loopback_traffic == []
    # With the allow-list the same URL is fetched.
    data, error = _downloader().get(f"{base}/photo.jpg")
    assert error is None and data == sorted(IMAGES.glob("*.jpg"))[0].read_bytes()


@needs_images
def test_redirects_are_checked_at_every_hop(server, only_loopback_traffic):
    _, base, requests = server
    downloader = _downloader()
    assert downloader.get(f"{base}/to-metadata") == (None, "refused address")
    assert downloader.get(f"{base}/to-ftp") == (None, "not an http(s) url")
    assert downloader.get(f"{base}/loop") == (None, "too many redirects")
    data, error = downloader.get(f"{base}/to-photo")
    assert error is None and data[:2] == b"\xff\xd8"
    assert set(only_loopback_traffic) == {"127.0.0.1"}  # nothing was sent to 169.254.169.254
    assert requests.count("/loop") == downloader.max_redirects + 1


def test_the_address_actually_connected_to_is_checked(monkeypatch, server):
    """A name that resolves to a public address but whose connection ends on loopback (a
    rebinding or a transparent proxy) is refused before any request is sent."""
    _, base, requests = server
    port = int(base.rsplit(":", 1)[1])
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))])
    real = socket.socket.connect

    def connect_to_loopback_instead(sock, address):  # never reaches 93.184.216.34
        return real(sock, ("127.0.0.1", address[1]))

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: _connect_local(address, timeout))
    monkeypatch.setattr(socket.socket, "connect", connect_to_loopback_instead)
    assert Downloader(deadline=5, host_interval=0).get(f"http://images.example:{port}/photo.jpg") == (None, "refused address")
    assert requests == []


def _connect_local(address, timeout):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(address)  # patched above: lands on 127.0.0.1
    return sock


def test_slow_drip_is_cut_at_the_deadline(server):
    _, base, _ = server
    for path in ("/drip", "/drip-headers"):
        started = time.monotonic()
        assert _downloader(deadline=1.0).get(f"{base}{path}") == (None, "timeout")
        # The server would drip for 20 s; a per-read timeout would wait all of it.
        assert time.monotonic() - started < 10


def test_byte_cap_without_content_length(server):
    _, base, _ = server
    assert _downloader(max_bytes=1_000_000).get(f"{base}/big") == (None, "too large")
    data, error = _downloader(max_bytes=8_000_000).get(f"{base}/big")
    assert error is None and len(data) == 64 * 65536


def test_decompression_bomb_is_refused_before_decoding(server):
    _, base, _ = server
    data, error = _downloader().get(f"{base}/bomb.png")
    assert error is None and len(data) < 200_000
    with pytest.raises(ValueError, match="too many pixels"):
        decode_image(data)  # 100 MP > 40 MP: refused from the header
    with pytest.raises(ValueError, match="too many pixels"):
        decode_image(bomb_png(1000, 1000), max_pixels=999_999)
    small = decode_image(bomb_png(300, 200))
    assert small.size == (300, 200) and small.mode == "RGB"


@needs_images
def test_noai_opt_outs_are_skipped(server):
    _, base, _ = server
    downloader = _downloader()
    assert downloader.get(f"{base}/noai.jpg") == (None, OPTED_OUT)
    for header in ("noimageai", "noindex,_NoAI", "atlas:_noimageai", "img2dataset:_noai"):
        assert downloader.get(f"{base}/robots/{header}") == (None, OPTED_OUT), header
    for header in ("noindex", "otherbot:_noai", "unavailable_after:_25_Jun_2010_15:00:00_PST"):
        data, error = downloader.get(f"{base}/robots/{header}")
        assert error is None and data, header


def test_robots_opt_out_parsing():
    assert robots_opt_out(["noai"]) and robots_opt_out(["noindex", "NoImageAI"])
    assert robots_opt_out(["googlebot: noindex", "atlas: noai, nofollow"])
    assert not robots_opt_out([]) and not robots_opt_out(["googlebot: noai"]) and not robots_opt_out(["none"])


def test_non_http_and_malformed_urls(server):
    downloader = _downloader()
    for url, reason in [("ftp://127.0.0.1/x.jpg", "not an http(s) url"), ("file:///etc/passwd", "not an http(s) url"),
                        ("javascript:alert(1)", "not an http(s) url"), ("http://127.0.0.1:99999/x", "bad url"),
                        ("http:///nohost", "bad url"), (None, "not an http(s) url"), ("", "not an http(s) url")]:
        assert downloader.get(url) == (None, reason), url


@needs_images
def test_the_embed_stage_records_each_refusal_and_keeps_caption_vectors(server, monkeypatch, tmp_path, tiny_clip):

    import atlas.fetch.images
    from atlas.core.config import EmbedConfig
    from atlas.core.report import Reporter
    from atlas.stages.embed import embed_sample
    from test_embed import _sample_table

    monkeypatch.setattr(atlas.fetch.images, "ALLOW_NETWORKS_FOR_TESTS", LOCAL)  # the test server only
    _, base, _ = server
    clip = tiny_clip
    urls = [f"{base}/photo.jpg", f"{base}/noai.jpg", f"{base}/bomb.png", f"{base}/to-metadata", f"{base}/to-ftp"]
    config = EmbedConfig(method="clip", model=str(clip["config"]), pretrained=str(clip["checkpoint"]),
                         images="download", batch_size=2)
    reporter = Reporter(quiet=True)
    vectors, info = embed_sample(_sample_table(list("abcde"), urls), config, reporter=reporter)
    assert {k: info["images"][k] for k in ("embedded", "failed", "reasons")} == {"embedded": 1, "failed": 4, "reasons": {
        OPTED_OUT: 1, "too many pixels": 1, "refused address": 1, "not an http(s) url": 1}}
    assert info["images"]["fetch"] == {"tool": "built-in downloader", "distributor": None, "requested": 5,
                                       "fetched": 1, "opt_out": 1, "dead": 0, "refused": 1, "failed": 2,
                                       "link_rot": 0.0}
    text_only, _ = embed_sample(_sample_table(list("abcde"), urls), config.model_copy(update={"images": ""}))
    assert not (vectors[0] == text_only[0]).all() and (vectors[1:] == text_only[1:]).all()
    # The opt-out is not a failure to warn about: the build summary counts it on its own line.
    assert any("3 of 5 images could not be embedded" in w for w in reporter.warnings)
    import json

    from atlas.build import build_warnings, make_context
    from atlas.core.report import Warnings
    from helpers.content import write_content

    (tmp_path / "embed").mkdir()
    (tmp_path / "embed" / "info.json").write_text(json.dumps(info))
    ctx = make_context(write_content(tmp_path / "content"), None, tmp_path / "cache", reporter, tmp_path / "site")
    ctx.outputs["embed"] = tmp_path / "embed"
    summary = build_warnings(ctx, Warnings(), 0)
    assert any(m.startswith("1 image(s) were not embedded because their server opted out") for m in summary)


#: Names the tests resolve to refused addresses (``.test`` is reserved: no real DNS answers it).
REFUSED_NAMES = {"metadata.images.test": "169.254.169.254", "intranet.images.test": "10.0.0.7"}


def _resolving(monkeypatch) -> None:
    """Resolve :data:`REFUSED_NAMES` to their refused addresses, other names as usual (the
    network edge: the downloader must refuse what a name resolves to, not what it looks like)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in REFUSED_NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (REFUSED_NAMES[host], port or 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.skipif(importlib.util.find_spec("img2dataset") is None, reason="the images extra is not installed")
@needs_images
def test_with_img2dataset_installed_download_refuses_redirects_and_names_to_private_addresses(
        server, only_loopback_traffic, monkeypatch, tmp_path, tiny_clip):
    """With the ``images`` extra installed, ``images = "download"`` once went through img2dataset,
    which follows redirects and resolves names with no address check, so a hostile URL could
    make the build fetch from 169.254.169.254 or an intranet. Downloads must be checked either way.

    img2dataset fetches in spawned processes that this test's connection guard does not reach,
    so its ``download`` is replaced by a tripwire: code that still hands it the URLs fails here
    before anything is sent, instead of contacting a refused address."""
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset's albumentations would ask pypi.org
    import img2dataset
    from rich.console import Console

    import atlas.fetch.images
    from atlas.core.config import EmbedConfig
    from atlas.core.report import Reporter
    from atlas.stages.embed import embed_sample
    from test_embed import _sample_table

    def tripwire(*args, **kwargs):
        raise AssertionError("img2dataset was asked to download: its fetches check no address or redirect")

    monkeypatch.setattr(img2dataset, "download", tripwire)
    monkeypatch.setattr(atlas.fetch.images, "ALLOW_NETWORKS_FOR_TESTS", LOCAL)  # the test server only
    _resolving(monkeypatch)
    _, base, requests = server
    port = base.rsplit(":", 1)[1]
    urls = [f"{base}/photo.jpg", f"{base}/to-metadata", f"{base}/to-private", f"{base}/to-name",
            f"http://metadata.images.test:{port}/photo.jpg", "http://intranet.images.test/photo.jpg"]
    clip = tiny_clip
    config = EmbedConfig(method="clip", model=str(clip["config"]), pretrained=str(clip["checkpoint"]),
                         images="download", batch_size=2)
    log = io.StringIO()
    reporter = Reporter(console=Console(file=log, width=400))
    _, info = embed_sample(_sample_table(list("abcdef"), urls), config, reporter=reporter,
                           download_dir=tmp_path / "cache" / "images")
    assert info["images"]["fetch"] == {"tool": "built-in downloader", "distributor": None, "requested": 6,
                                       "fetched": 1, "opt_out": 0, "dead": 0, "refused": 5, "failed": 0,
                                       "link_rot": 0.0}
    assert info["images"]["reasons"] == {"refused address": 5}
    # Only the test server was asked, and only for the first hop of each redirect.
    assert sorted(requests) == ["/photo.jpg", "/to-metadata", "/to-name", "/to-private"]
    assert set(only_loopback_traffic) == {"127.0.0.1"}
    assert "img2dataset is installed but does not download" in log.getvalue()
