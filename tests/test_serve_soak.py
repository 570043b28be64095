"""Soak of ``atlas serve``: 10,000+ bounded requests from a few concurrent clients on 127.0.0.1,
a third of them hostile (malformed request lines, traversal with ``..``, ``%2e%2e``, absolute
paths and NUL bytes, unknown methods, oversized lines), while a page is being edited and the
site rebuilt. The server must not crash, must never serve a file from outside its site, and its
memory must stay flat. The figures are printed for the report.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import EDIT_PAGE, content_copy

pytestmark = pytest.mark.slow

REQUESTS = 10_400
CLIENTS = 4
SEED = 9
CANARY = "CANARY-7f3a9c-not-for-publishing"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _exchange(port: int, raw: bytes, limit: int = 2_000_000) -> bytes:
    """Send ``raw`` and read the answer until the server closes (bounded in time and size)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(raw)
        with_eof = b""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while len(with_eof) <= limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            with_eof += chunk
        return with_eof


def _hostile(canary_paths: list[str]) -> list[bytes]:
    """Request lines an attacker (or a broken client) sends."""
    paths = ["/../../../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
             "/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/static/../../../../../../etc/passwd",
             "//etc/passwd", "/etc/passwd", "/%252e%252e/%252e%252e/etc/passwd", "/..\\..\\..\\etc\\passwd",
             "/.%2e/.%2e/.%2e/.%2e/etc/passwd", "/index.html%00.txt", "/%00", "/map/%00/../../etc/passwd",
             "/static/css/atlas.css/..;/..;/etc/passwd", "/?" + "a" * 5000, "/%ff%fe%c0%ae%c0%ae/etc/passwd"]
    for target in canary_paths:
        paths += ["/.." * 12 + target, "/%2e%2e" * 12 + target.replace("/", "%2f"), target]
    lines = [f"GET {p} HTTP/1.0\r\nHost: x\r\n\r\n".encode("latin-1") for p in paths]
    lines += [b"GET http://127.0.0.1/../../../etc/passwd HTTP/1.0\r\n\r\n",
              b"GET /\x00/etc/passwd HTTP/1.0\r\n\r\n", b"GET \x00 HTTP/1.0\r\n\r\n",
              b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / FTP/1.0\r\n\r\n",
              b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS hello
              b"GET /" + b"A" * 70_000 + b" HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\nNo-Colon-Header\r\n\r\n",
              b"GET / HTTP/1.0\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n",
              b"POST /index.html HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", b"DELETE / HTTP/1.0\r\n\r\n",
              b"PUT /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", b"\r\n\r\n", b"",
              b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    return lines


def test_serve_survives_a_soak_of_hostile_requests_while_pages_are_edited(shared, tmp_path):
    content = content_copy(shared, tmp_path / "content")
    (content / "canary.txt").write_text(CANARY)  # in the content folder but never published
    (tmp_path / "canary.txt").write_text(CANARY)
    env = dict(os.environ, COLUMNS="1000")
    process = subprocess.Popen(
        [sys.executable, "-m", "atlas", "serve", "--content", str(content), "--cache-dir", str(shared["cache"]),
         "--port", "0"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    log: list[str] = []
    port_found = threading.Event()
    port = {}

    def read_log():
        for line in process.stderr:
            log.append(line)
            match = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
            if match and not port_found.is_set():
                port["value"] = int(match.group(1))
                port_found.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        assert port_found.wait(300), "".join(log)
        port = port["value"]
        edited = "/" + EDIT_PAGE.removesuffix(".md") + "/"
        site_files = ["/", "/map/", edited, "/static/css/atlas.css", "/data/build.json", "/data/stats.json",
                      "/map/data/points.bin", "/404-nowhere/", "/robots.txt"]
        canary_paths = [str(tmp_path / "canary.txt"), str(content / "canary.txt")]
        hostile = _hostile(canary_paths)
        normal = [f"GET {p} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode() for p in site_files]

        counts: Counter = Counter()
        leaks: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(index: int, n: int) -> None:
            rng = random.Random(SEED * 100 + index)
            for _ in range(n):
                raw = rng.choice(hostile) if rng.random() < 0.35 else rng.choice(normal)
                try:
                    answer = _exchange(port, raw)
                except OSError as error:  # the server may drop a malformed request: counted, not a crash
                    with lock:
                        counts["connection error"] += 1
                        errors.append(f"{raw[:60]!r}: {error}")
                    continue
                status = answer.split(b" ", 2)[1].decode("latin-1", "replace") if answer.startswith(b"HTTP/") else "none"
                with lock:
                    counts[status] += 1
                    if CANARY.encode() in answer or b"root:x:0:0" in answer:
                        leaks.append(raw[:120].decode("latin-1"))

        page = content / EDIT_PAGE
        original = page.read_text()

        def editor() -> None:
            edits = 0
            while not stop.is_set():
                edits += 1
                page.write_text(original + f"\nEdit number {edits}.\n")
                stop.wait(0.4)
            counts["edits"] = edits

        per_client = REQUESTS // CLIENTS
        # Warm up (first rebuilds, caches), then measure memory from there.
        client(99, 400)
        rss_before = _rss_kb(process.pid)
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i, per_client)) for i in range(CLIENTS)]
        edit_thread = threading.Thread(target=editor)
        for thread in threads + [edit_thread]:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        edit_thread.join()
        seconds = time.perf_counter() - started
        time.sleep(2)  # let the last rebuild finish
        rss_after = _rss_kb(process.pid)
        assert process.poll() is None, "atlas serve died:\n" + "".join(log[-40:])
        final = _exchange(port, f"GET {edited} HTTP/1.0\r\n\r\n".encode())
        version = _exchange(port, b"GET /__atlas__/version HTTP/1.0\r\n\r\n").split(b"\r\n\r\n", 1)[1]
        rebuilds = json.loads(version)["version"]
        sent = sum(v for k, v in counts.items() if k != "edits")
        print(f"\nsoak: {sent + 400:,} requests ({CLIENTS} clients, {per_client:,} each + 400 warm-up) in "
              f"{seconds:.0f}s, {counts['edits']} page edits, {rebuilds} rebuilds; statuses {dict(counts)}; "
              f"RSS {rss_before / 1024:.1f} MB -> {rss_after / 1024:.1f} MB; tracebacks in the log: "
              f"{sum('Traceback' in line for line in log)}")
        assert leaks == []
        assert sent >= REQUESTS - CLIENTS and sent + 400 >= 10_000
        assert final.startswith(b"HTTP/1.0 200") and b"Edit number" in final
        assert counts["connection error"] <= sent // 100, errors[:5]
        assert counts["500"] == 0
        assert rebuilds >= 2
        assert not any("Traceback" in line for line in log), "".join(log[-60:])
        assert rss_after <= rss_before * 1.25 + 20_000, (rss_before, rss_after)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
