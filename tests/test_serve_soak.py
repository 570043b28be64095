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
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers.builds import content_copy
from helpers.paths import EDIT_PAGE

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


# --- Under load: many clients at once, and clients that hang up ---------------------------------

BURST = 500
BIG_FILE = 8 * 1024 * 1024


@pytest.fixture
def site_server(shared, tmp_path):
    """A ``SiteServer`` on 127.0.0.1 (a free port) over a private copy of the session's content."""
    from atlas.core.report import Reporter
    from atlas.serve import SiteServer

    content = content_copy(shared, tmp_path / "content")
    server = SiteServer(content, port=0, cache_dir=shared["cache"], reporter=Reporter(quiet=True)).start()
    try:
        yield server
    finally:
        server.stop()


def _get_body(port: int, path: str, timeout: float) -> tuple[str, bytes]:
    """One GET on 127.0.0.1: (status, body)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while len(answer) <= 20_000_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b" ", 2)[1].decode("latin-1") if head.startswith(b"HTTP/") else "none", body


def _handler_threads_done(baseline: set[threading.Thread], seconds: float) -> None:
    """Wait (bounded) until the server's request threads have finished, so their log is complete."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and set(threading.enumerate()) - baseline:
        time.sleep(0.05)


def test_500_concurrent_requests_are_all_answered(site_server):
    """A page with many assets, or many readers at once, must not see a connection time out."""
    from concurrent.futures import ThreadPoolExecutor

    css = (site_server.out / "static/css/atlas.css").read_bytes()
    points = (site_server.out / "map/data/points.bin").read_bytes()
    expected = {"/static/css/atlas.css": css, "/map/data/points.bin": points}
    paths = [list(expected)[i % 2] for i in range(BURST)]
    start = threading.Barrier(BURST, timeout=60)

    def one(path: str) -> tuple[str, bool]:
        start.wait()  # every client connects at the same moment
        try:
            status, body = _get_body(site_server.port, path, timeout=10)
        except OSError as error:
            return f"{type(error).__name__}", False
        return status, body == expected[path]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        results = list(pool.map(one, paths, timeout=120))
    seconds = time.perf_counter() - started
    statuses = Counter(status for status, _ in results)
    print(f"\nburst: {BURST} concurrent requests in {seconds:.1f}s; statuses {dict(statuses)}; "
          f"load {os.getloadavg()[0]:.2f}")
    assert statuses == {"200": BURST}
    assert all(right for _, right in results), "a body differs from the built file"
    assert json.loads(_get_body(site_server.port, "/__atlas__/version", 10)[1])["error"] is None


def test_clients_that_hang_up_mid_answer_leave_no_traceback(site_server, capfd, caplog):
    """Closing a tab while a large file downloads is normal: the log must not show a traceback,
    and the server must go on answering."""
    import logging

    (site_server.out / "big.bin").write_bytes(os.urandom(1024) * (BIG_FILE // 1024))
    baseline = set(threading.enumerate())
    request = b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with caplog.at_level(logging.DEBUG, logger="atlas.serve"):
        for i in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", site_server.port))
            sock.sendall(request)
            if i % 2:  # reset at once (RST, not FIN)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:  # read a little of the answer, then close
                sock.recv(1024)
            sock.close()
        _handler_threads_done(baseline, 30)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err[-3000:]
    loud = [r for r in caplog.records if r.name == "atlas.serve" and r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]
    status, body = _get_body(site_server.port, "/big.bin", timeout=30)
    assert status == "200" and len(body) == BIG_FILE
