"""Fetching the images of sample rows for CLIP image embeddings.

``[embed] images`` names where they come from:

- a folder of image files named by the sample's ``row_id`` (``12.jpg``) or by the SHA-256 hex
  digest of the URL (:func:`url_key`, ``<hex>.jpg``), any image extension;
- a folder of webdataset ``.tar`` files (as img2dataset writes them): each ``<key>.jpg`` is
  matched to its row through the ``url`` field of ``<key>.json`` (or ``<key>.url.txt``);
- ``download``: fetch the URLs over http(s) (:class:`Downloader`): public addresses only, a
  deadline per image, a size cap, a per-host pace, and no image whose server opted out with
  ``X-Robots-Tag: noai``.

Images whose header announces more than ``[embed] max_pixels`` are refused before decoding.

Every failure is recorded per row as a short reason (``missing``, ``not an image``,
``http 404``, ``timeout``, ``too large``, ``too many pixels``, ``refused address``,
:data:`OPTED_OUT`...) and never stops the build.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import ipaddress
import json
import logging
import os
import socket
import ssl
import tarfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from atlas.core.config import content_path
from atlas.core.errors import ConfigError
from atlas.data.urls import canonical_link

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
USER_AGENT = "atlas-site-builder/1 (+https://github.com/; image embeddings for a LAION atlas)"


def url_key(url: str) -> str:
    """The file name stem of an image stored by URL: SHA-256 of the URL, hex."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


@dataclass
class Fetched:
    """One row's image: ``data`` (bytes) or ``error`` (a short reason)."""

    row_id: int
    data: bytes | None = None
    error: str | None = None


#: Default of ``[embed] max_pixels``: larger images are refused before they are decoded.
MAX_PIXELS = 40_000_000


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS):
    """Bytes -> RGB PIL image; raises ValueError('not an image') for anything undecodable and
    ValueError('too many pixels') when the header announces more than ``max_pixels`` (checked
    before any pixel is decoded: a 100 kB PNG may claim 10000x10000)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: the check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as error:
        raise ValueError("too many pixels") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError("not an image") from error
    width, height = image.size
    if width * height > max_pixels:
        raise ValueError("too many pixels")
    try:
        image.load()
        return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError("not an image") from error


class FolderImages:
    """Image files named by row_id or by :func:`url_key` of the URL."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.index: dict[str, Path] = {}
        for path in self.folder.rglob("*"):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                self.index.setdefault(path.stem, path)

    def fetch(self, items: list[tuple[int, str | None]]) -> list[Fetched]:
        out = []
        for row_id, url in items:
            path = self.index.get(str(row_id)) or (self.index.get(url_key(url)) if url else None)
            if path is None:
                out.append(Fetched(row_id, error="missing"))
                continue
            try:
                out.append(Fetched(row_id, data=path.read_bytes()))
            except OSError:
                out.append(Fetched(row_id, error="unreadable file"))
        return out


class TarImages:
    """Webdataset tars: images matched to rows by the URL in each sample's metadata."""

    def __init__(self, tars: list[Path]):
        self.by_url: dict[str, tuple[Path, str]] = {}
        for tar_path in tars:
            try:
                with tarfile.open(tar_path) as tar:
                    members = {m.name: m for m in tar.getmembers() if m.isfile()}
                    stems: dict[str, str] = {}
                    for name in members:
                        stem, ext = os.path.splitext(name)
                        if ext.lower() in IMAGE_EXTENSIONS:
                            stems[stem] = name
                    for stem, image_name in stems.items():
                        url = None
                        if stem + ".json" in members:
                            try:
                                meta = json.loads(tar.extractfile(members[stem + ".json"]).read())
                                url = meta.get("url") or meta.get("URL")
                            except (ValueError, AttributeError):
                                url = None
                        if url is None and stem + ".url.txt" in members:
                            url = tar.extractfile(members[stem + ".url.txt"]).read().decode().strip()
                        if url:  # rows carry the canonical form of their URL (atlas.data.urls)
                            self.by_url.setdefault(canonical_link(url) or url, (tar_path, image_name))
            except (tarfile.TarError, OSError) as error:
                log.warning("skipping unreadable webdataset tar %s: %s", tar_path, error)

    def fetch(self, items: list[tuple[int, str | None]]) -> list[Fetched]:
        out, wanted = {}, {}
        for row_id, url in items:
            if url in self.by_url:
                wanted.setdefault(self.by_url[url][0], []).append((row_id, self.by_url[url][1]))
            else:
                out[row_id] = Fetched(row_id, error="missing")
        for tar_path, entries in wanted.items():
            with tarfile.open(tar_path) as tar:
                for row_id, name in entries:
                    try:
                        out[row_id] = Fetched(row_id, data=tar.extractfile(name).read())
                    except (KeyError, tarfile.TarError, OSError, AttributeError):
                        out[row_id] = Fetched(row_id, error="unreadable file")
        return [out[row_id] for row_id, _ in items]


#: The reason recorded for an image whose server opted out of AI use (counted in the build summary).
OPTED_OUT = "opted out (X-Robots-Tag: noai)"
#: ``X-Robots-Tag`` directives that opt an image out (img2dataset's convention).
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai"})
#: User-agent tokens an ``X-Robots-Tag: TOKEN: directives`` value may address to us.
ROBOTS_TOKENS = frozenset({"atlas", "atlas-site-builder", "img2dataset"})
#: Internal, for tests only: networks the downloader may reach although they are not public
#: (e.g. ``("127.0.0.1/32",)`` for a test server). Never set from atlas.toml.
ALLOW_NETWORKS_FOR_TESTS: tuple[str, ...] = ()
REDIRECTS = (301, 302, 303, 307, 308)


class Refused(Exception):
    """A URL the downloader will not fetch; ``str()`` is the short reason recorded for the row."""


def address_refused(address: str, allow: tuple[str, ...] = ()) -> bool:
    """True for an IP address the downloader must never connect to: loopback, private,
    link-local (169.254.169.254, cloud metadata), multicast, reserved, unspecified, shared
    (100.64/10) or any other non-global address, IPv4-mapped IPv6 included. ``allow`` lists
    networks exempt from the rule (tests only)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if any(ip in ipaddress.ip_network(net) for net in allow if ipaddress.ip_network(net).version == ip.version):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_refused(str(ip.ipv4_mapped), allow)
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local


def robots_opt_out(values: list[str]) -> bool:
    """True when ``X-Robots-Tag`` values say ``noai``/``noimageai`` to every agent or to us."""
    for value in values:
        token, directives = value.split(":", 1) if ":" in value else ("", value)
        if token.strip() and token.strip().lower() not in ROBOTS_TOKENS:
            continue
        if {d.strip().lower() for d in directives.split(",")} & OPT_OUT_DIRECTIVES:
            return True
    return False


@dataclass
class Downloader:
    """Fetch image URLs safely and politely.

    - only ``http(s)``, also after redirects, which are followed by hand (at most
      ``max_redirects``), each hop checked again;
    - the host name is resolved once and the connection made to that address, which must be
      public (:func:`address_refused`) -- the address actually connected to is checked, so a
      name that resolves to 127.0.0.1 or 169.254.169.254 is never contacted;
    - one ``deadline`` in seconds for the whole image (retries included), not per read: a slow
      drip is cut off when it runs out;
    - at most ``max_bytes`` per image; a per-host pace; retries with backoff for 5xx/429 and
      connection failures;
    - an image whose response carries ``X-Robots-Tag: noai`` (or ``noimageai``) is skipped
      (:data:`OPTED_OUT`).
    """

    deadline: float = 20.0
    retries: int = 2
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    #: Seconds between two requests to the same host.
    host_interval: float = 0.2
    workers: int = 16
    backoff: float = 0.5
    #: Internal, for tests only: see :data:`ALLOW_NETWORKS_FOR_TESTS`.
    allow: tuple[str, ...] = field(default_factory=lambda: tuple(ALLOW_NETWORKS_FOR_TESTS))
    _last: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _host_locks: dict = field(default_factory=dict, repr=False)

    def _wait_turn(self, host: str) -> None:
        with self._lock:
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:
            now = time.monotonic()
            wait = self._last.get(host, 0.0) + self.host_interval - now
            if wait > 0:
                time.sleep(wait)
            self._last[host] = time.monotonic()

    def target(self, url: str) -> tuple[urllib.parse.SplitResult, str, int]:
        """(parts, address, port) to connect to for ``url``, or Refused: the scheme must be
        http(s) and the host must resolve to an address that is not refused (no connection
        is made here)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Refused("not an http(s) url")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise Refused("bad url") from None
        if not parts.hostname:
            raise Refused("bad url")
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise Refused("connection failed") from None
        for _family, _type, _proto, _name, sockaddr in infos:
            if not address_refused(sockaddr[0], self.allow):
                return parts, sockaddr[0], port
        raise Refused("refused address")

    def _request(self, url: str, deadline: float) -> tuple[bytes | None, str | None, bool]:
        """One attempt, redirects included: (data, reason, retry?)."""
        for _hop in range(self.max_redirects + 1):
            parts, address, port = self.target(url)
            self._wait_turn(parts.hostname)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, "timeout", False
            sock = socket.create_connection((address, port), timeout=remaining)
            # Cut the connection when the deadline passes, whatever read is under way.
            timer = threading.Timer(remaining, _shutdown, (sock,))
            timer.start()
            try:
                if address_refused(sock.getpeername()[0], self.allow):  # the address actually connected to
                    raise Refused("refused address")
                if parts.scheme == "https":
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
                    timer.args = (sock,)
                connection = http.client.HTTPConnection(parts.hostname, port, timeout=remaining)
                connection.sock = sock
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
                response = connection.getresponse()
                if response.status in REDIRECTS and response.getheader("Location"):
                    url = urllib.parse.urljoin(url, response.getheader("Location").strip())
                    continue
                if robots_opt_out(response.headers.get_all("X-Robots-Tag") or []):
                    return None, OPTED_OUT, False
                if response.status != 200:
                    transient = response.status >= 500 or response.status == 429
                    return None, f"http {response.status}", transient
                length = response.getheader("Content-Length")
                if length and length.strip().isdigit() and int(length) > self.max_bytes:
                    return None, "too large", False
                chunks, size = [], 0
                while size <= self.max_bytes:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if time.monotonic() >= deadline:
                        return None, "timeout", False
                if time.monotonic() >= deadline:
                    return None, "timeout", False
                if size > self.max_bytes:
                    return None, "too large", False
                return b"".join(chunks), None, False
            except (OSError, http.client.HTTPException) as error:
                if time.monotonic() >= deadline or isinstance(error, TimeoutError):
                    return None, "timeout", False
                return None, "connection failed", True
            finally:
                timer.cancel()
                sock.close()
        return None, "too many redirects", False

    def get(self, url: str | None) -> tuple[bytes | None, str | None]:
        """(data, None) or (None, reason)."""
        if not url:
            return None, "not an http(s) url"
        deadline = time.monotonic() + self.deadline
        reason = "error"
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff * (2 ** (attempt - 1))
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            try:
                data, reason, retry = self._request(url, deadline)
            except Refused as refused:
                return None, str(refused)
            except (OSError, ValueError, http.client.HTTPException):
                data, retry = None, True
                reason = "timeout" if time.monotonic() >= deadline else "connection failed"
            if data is not None or not retry:
                return data, reason
        return None, reason

    def fetch(self, items: list[tuple[int, str | None]]) -> list[Fetched]:
        def one(item):
            data, error = self.get(item[1])
            return Fetched(item[0], data=data, error=error)

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, items))


def _shutdown(sock) -> None:
    """Stop a socket's reads and writes (the deadline passed); closing is left to its owner."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def open_images(spec: str, base: Path | None = None):
    """The image source named by ``[embed] images``; a bad value is a ConfigError."""
    if spec == "download":
        return Downloader()
    path = content_path(spec, base)
    if not path.is_dir():
        raise ConfigError(
            f"images folder {path} does not exist",
            where="[embed] images",
            hint="Point it at a folder of images named by row_id or URL hash, a folder of "
            "webdataset .tar files, or set it to \"download\" (or empty for text only).",
        )
    tars = sorted(path.rglob("*.tar"))
    return TarImages(tars) if tars else FolderImages(path)


def source_fingerprint(spec: str, base: Path | None = None) -> dict:
    """What identifies an image source for the stage cache (files' names, sizes and mtimes)."""
    if not spec or spec == "download":
        return {"images": spec}
    path = content_path(spec, base)
    digest = hashlib.sha256()
    count = 0
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file():
                stat = item.stat()
                digest.update(f"{item.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                count += 1
    return {"images": str(path), "files": count, "digest": digest.hexdigest()}


def iter_images(source, items: Iterable[tuple[int, str | None]], batch: int = 64) -> Iterator[list[Fetched]]:
    """Fetch in batches so memory stays bounded."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= batch:
            yield source.fetch(chunk)
            chunk = []
    if chunk:
        yield source.fetch(chunk)
