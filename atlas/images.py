"""Fetching the images of sample rows for CLIP image embeddings.

``[embed] images`` names where they come from:

- a folder of image files named by the sample's ``row_id`` (``12.jpg``) or by the SHA-256 hex
  digest of the URL (:func:`url_key`, ``<hex>.jpg``), any image extension;
- a folder of webdataset ``.tar`` files (as img2dataset writes them): each ``<key>.jpg`` is
  matched to its row through the ``url`` field of ``<key>.json`` (or ``<key>.url.txt``);
- ``download``: fetch the URLs over http(s) with a timeout, retries, a size cap and a per-host
  rate limit (:class:`Downloader`).

Every failure is recorded per row as a short reason (``missing``, ``not an image``,
``http 404``, ``timeout``, ``too large``...) and never stops the build.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from atlas.config import content_path
from atlas.errors import ConfigError

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


def decode_image(data: bytes):
    """Bytes -> RGB PIL image; raises ValueError('not an image') for anything undecodable."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
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
                        if url:
                            self.by_url.setdefault(url, (tar_path, image_name))
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


@dataclass
class Downloader:
    """Fetch image URLs politely: timeouts, retries with backoff, a size cap, a per-host pace."""

    timeout: float = 10.0
    retries: int = 2
    max_bytes: int = 20 * 1024 * 1024
    #: Seconds between two requests to the same host.
    host_interval: float = 0.2
    workers: int = 16
    backoff: float = 0.5
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

    def get(self, url: str | None) -> tuple[bytes | None, str | None]:
        """(data, None) or (None, reason)."""
        if not url or urlsplit(url).scheme not in ("http", "https"):
            return None, "not an http(s) url"
        host = urlsplit(url).hostname or ""
        reason = "error"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            self._wait_turn(host)
            try:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    length = response.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > self.max_bytes:
                        return None, "too large"
                    data = response.read(self.max_bytes + 1)
                    if len(data) > self.max_bytes:
                        return None, "too large"
                    return data, None
            except urllib.error.HTTPError as error:
                reason = f"http {error.code}"
                if error.code < 500 and error.code != 429:  # permanent: do not retry
                    return None, reason
            except (TimeoutError, OSError) as error:  # URLError is an OSError
                inner = getattr(error, "reason", error)
                reason = "timeout" if isinstance(inner, TimeoutError) or "timed out" in str(inner) else "connection failed"
            except ValueError:
                return None, "bad url"
        return None, reason

    def fetch(self, items: list[tuple[int, str | None]]) -> list[Fetched]:
        def one(item):
            data, error = self.get(item[1])
            return Fetched(item[0], data=data, error=error)

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, items))


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
