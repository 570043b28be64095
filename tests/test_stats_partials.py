"""Per-shard partial statistics: cached by each shard's fingerprint, merged exactly."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

from atlas.core.cache import Cache
from atlas.core.config import DataConfig
from atlas.data.sources import Source, remote_fingerprint, resolve_sources
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.core.report import Reporter
from atlas.stages.stats import EXAMPLES, compute_stats, run_stats, shard_fingerprint

from helpers.content import hostile_shard


def _run(paths, cache=None, artists=("Claude Monet", "Jakub Rozalski", "Nobody")):
    content = paths[0].parent / "content"
    content.mkdir(exist_ok=True)
    (content / "artists.txt").write_text("\n".join(artists), encoding="utf-8")
    sources = resolve_sources([str(p) for p in paths], Path.cwd())
    config = DataConfig(artists="artists.txt")
    stats, examples, _, scanned = run_stats(sources, config, content, Reporter(quiet=True), cache=cache,
                                            policy=load_policy(config, content))
    return stats, examples, [Path(s).name for s in scanned]


def test_adding_a_shard_scans_only_it_and_equals_a_full_recomputation(tmp_path):
    shards = [hostile_shard(tmp_path / f"part-{i}.parquet", i) for i in range(4)]
    cache = Cache(tmp_path / "cache")
    _, _, scanned = _run(shards[:3], cache)
    assert scanned == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    stats, examples, scanned = _run(shards, cache)
    assert scanned == ["part-3.parquet"]
    cold_stats, cold_examples, _ = _run(shards)  # no cache: one scan of everything
    assert stats == cold_stats and examples == cold_examples
    assert stats["rows"] == 1600 and stats["histograms"]["similarity"]["invalid"] > 0
    assert any(a["count"] for a in stats["artists"])


def test_removing_a_shard_merges_again_without_scanning(tmp_path):
    shards = [hostile_shard(tmp_path / f"part-{i}.parquet", i) for i in range(3)]
    cache = Cache(tmp_path / "cache")
    _run(shards, cache)
    stats, examples, scanned = _run(shards[:2], cache)
    assert scanned == []
    assert (stats, examples) == _run(shards[:2])[:2]


def test_a_changed_shard_is_scanned_again(tmp_path):
    shards = [hostile_shard(tmp_path / f"part-{i}.parquet", i) for i in range(3)]
    cache = Cache(tmp_path / "cache")
    _run(shards, cache)
    hostile_shard(shards[1], 99, n=50)  # same name, new content
    stat = shards[1].stat()
    os.utime(shards[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    stats, _, scanned = _run(shards, cache)
    assert scanned == ["part-1.parquet"]
    assert stats["rows"] == 850 and stats == _run(shards)[0]


def test_changed_artist_list_or_settings_rescan(tmp_path):
    shards = [hostile_shard(tmp_path / f"part-{i}.parquet", i) for i in range(2)]
    cache = Cache(tmp_path / "cache")
    _run(shards, cache)
    assert _run(shards, cache, artists=("Claude Monet",))[2] == ["part-0.parquet", "part-1.parquet"]
    assert _run(shards, cache, artists=("Claude Monet",))[2] == []


def test_merged_examples_are_the_single_pass_choice(tmp_path):
    """The examples picked from per-shard candidates are the EXAMPLES shown rows with the smallest
    seeded hash over all rows, as one query over everything picks them."""
    shards = [hostile_shard(tmp_path / f"part-{i}.parquet", i, n=300) for i in range(5)]
    rows = open_rows(resolve_sources([str(tmp_path / "*.parquet")], Path.cwd()), DataConfig(), policy=load_policy(DataConfig(), None))
    _, examples = compute_stats(rows, DataConfig())
    rows = open_rows(resolve_sources([str(tmp_path / "*.parquet")], Path.cwd()), DataConfig(), policy=load_policy(DataConfig(), None))
    expected = rows.con.execute(
        f"""
        SELECT caption FROM rows
        WHERE caption IS NOT NULL AND trim(caption) <> '' AND shown
        ORDER BY hash(caption, url, 0), url, caption LIMIT {EXAMPLES}
        """
    ).fetchall()
    assert [e["caption"] for e in examples["captions"]] == [c for (c,) in expected]
    assert len(shards) == 5


class _ETagHandler(http.server.BaseHTTPRequestHandler):
    """Serves one file whose ETag the test changes (``server.etag``)."""

    def do_HEAD(self):
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self.server.etag)
        self.send_header("Last-Modified", "Wed, 02 Dec 2026 00:00:00 GMT")
        self.end_headers()

    def do_GET(self):
        self.do_HEAD()
        self.wfile.write(self.server.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def etag_server(tmp_path):
    shard = hostile_shard(tmp_path / "remote.parquet", 1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ETagHandler)
    server.body, server.etag = shard.read_bytes(), '"v1"'
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_changed_remote_shard_gets_a_new_fingerprint(etag_server):
    """(DuckDB's httpfs extension cannot be installed offline, so the scan of an http:// shard is
    not run here; the fingerprint that decides whether it is scanned again is.)"""
    url = f"http://127.0.0.1:{etag_server.server_address[1]}/part-0.parquet"
    first = shard_fingerprint(Source(url))
    assert first["etag"] == '"v1"' and first["size"] == str(len(etag_server.body))
    assert shard_fingerprint(Source(url)) == first
    etag_server.etag = '"v2"'  # same name, same size, new content
    second = remote_fingerprint(url)
    assert second != first and second["etag"] == '"v2"'


def test_remote_sources_without_a_fingerprint_are_always_scanned(etag_server):
    port = etag_server.server_address[1]
    assert remote_fingerprint(f"http://127.0.0.1:{port}/part-*.parquet") is None  # a glob
    assert remote_fingerprint("s3://bucket/part-0.parquet") is None
    etag_server.server_close()
    etag_server.shutdown()
    assert remote_fingerprint(f"http://127.0.0.1:{port}/gone.parquet", timeout=2) is None


def test_hf_fingerprints_carry_the_settings_token_and_only_theirs(monkeypatch):
    """The HEAD of an hf:// shard asks huggingface.co with Settings' HF_TOKEN (the environment is
    read once, at the edge); a plain https shard never gets the token."""
    import urllib.request

    from atlas.core.settings import Settings

    asked = []

    class _Response:
        headers = {"ETag": '"abc"'}

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

    def urlopen(request, timeout):
        asked.append((request.full_url, request.get_header("Authorization")))
        return _Response()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("HF_TOKEN", "from-the-environment")
    settings = Settings(hf_token="from-settings")
    assert remote_fingerprint("hf://datasets/o/n/part-0.parquet", settings=settings)["etag"] == '"abc"'
    remote_fingerprint("https://example.org/part-0.parquet", settings=settings)
    remote_fingerprint("hf://datasets/o/n/part-1.parquet")
    assert asked == [("https://huggingface.co/datasets/o/n/resolve/main/part-0.parquet", "Bearer from-settings"),
                     ("https://example.org/part-0.parquet", None),
                     ("https://huggingface.co/datasets/o/n/resolve/main/part-1.parquet", None)]
    assert shard_fingerprint(Source("hf://datasets/o/n/part-2.parquet"), settings)["etag"] == '"abc"'
    assert asked[-1][1] == "Bearer from-settings"
