"""`atlas build` end to end: the demo, the real sample, bad shards, unsafe and hostile rows."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from atlas.build import build
from atlas.cli import main
from atlas.core.errors import AtlasError

from helpers.builds import quiet_build
from helpers.content import SMALL_MAP, tree_snapshot, write_content, write_shard
from helpers.paths import REPO, SAMPLE_SIZE

PAGES = {
    "index.md": """\
        ---
        title: Home
        nav: Home
        order: 0
        ---
        # Home

        ```atlas stat value=rows label=rows
        ```

        ```atlas captions n=50
        ```
        """,
}


def _cli(*args, cwd=REPO):
    """``python -m atlas ARGS`` in a fresh process (for the quick failures: the real entry point)."""
    env = dict(os.environ, CI="true", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "atlas", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def _atlas(*args):
    """``atlas ARGS`` through the same click command in this process (whose JIT-compiled UMAP is warm)."""
    return CliRunner().invoke(main, list(args), env={"CI": "true"})


@pytest.fixture(scope="module")
def small_content(tmp_path_factory):
    return write_content(tmp_path_factory.mktemp("content") / "content", PAGES, SMALL_MAP)


def _words(text: str) -> str:
    """A caption as whole lower-case words, space-delimited (the artist rule, written again)."""
    return " " + " ".join(re.sub(r"[\W_]+", " ", text.lower()).split()) + " "


def test_demo_build_publishes_a_meaningful_site(shared):
    out, report = shared["site"], shared["report"]
    stats = json.loads((out / "data" / "stats.json").read_text())
    demo = report.results[0]
    assert demo.name == "demo" and demo.summary["shards"] >= 4
    shards = pq.ParquetDataset(sorted(demo.path.glob("*.parquet"))).read(columns=["TEXT"])
    assert stats["rows"] == shards.num_rows >= 100_000
    assert {"similarity", "punsafe", "pwatermark", "aesthetic", "width", "height"} <= set(stats["histograms"])
    assert stats["domains"][0]["domain"] == "pinboard.example"  # reserved names only (RFC 2606)
    assert 0.02 < stats["shares"]["punsafe"][0]["share"] < 0.04  # published 2.9 % unsafe
    # Every listed artist is counted; the most named one matches a brute-force whole-word count.
    names = [line.strip() for line in (shared["content"] / "artists.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert sorted(a["name"] for a in stats["artists"]) == sorted(names)
    top = stats["artists"][0]
    captions = [_words(c) for c in shards.column("TEXT").to_pylist() if c]
    assert top["count"] == sum(_words(top["name"]) in c for c in captions) > 0
    home = (out / "index.html").read_text()
    assert "Demo data." in home and "[data] sources" not in home  # one reader sentence, no config keys
    assert (out / "map" / "index.html").exists()
    build_json = json.loads((out / "data" / "build.json").read_text())
    assert build_json["demo"] is True and build_json["rows"] == stats["rows"]
    assert build_json["sample_rows"] == SAMPLE_SIZE
    # The downloadable tables hold what stats.json says, row for row.
    for table, key in (("domains", "domain"), ("hosts", "host"), ("artists", "name")):
        with open(out / "data" / f"{table}.csv", newline="", encoding="utf-8") as handle:
            rows = [(row[key], int(row["count"])) for row in csv.DictReader(handle)]
        assert rows[: len(stats[table])] == [(item[key], item["count"]) for item in stats[table]], table
    with open(out / "data" / "histograms.csv", newline="", encoding="utf-8") as handle:
        histograms = list(csv.DictReader(handle))
    for column in stats["histograms"]:
        assert sum(int(r["count"]) for r in histograms if r["column"] == column) == stats["rows"], column


#: Libraries a build needs only when a stage runs (the Markdown/Jinja2 stack only to render).
STAGE_ONLY_MODULES = ("numpy", "pyarrow", "jinja2", "markdown_it", "torch", "umap", "numba", "sklearn",
                      "sentence_transformers", "PIL")


def test_a_no_change_build_in_a_fresh_process_loads_no_stage_libraries(shared):
    """Every stage cached: the build checks its keys and stops, without importing what the stages use."""
    before = tree_snapshot(shared["site"])
    script = (
        "import json, runpy, sys\n"
        f"sys.argv = ['atlas', '-q', 'build', '--content', {str(shared['content'])!r}, '--out', "
        f"{str(shared['site'])!r}, '--cache-dir', {str(shared['cache'])!r}]\n"
        "try:\n    runpy.run_module('atlas', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"print(json.dumps(sorted(m for m in {STAGE_ONLY_MODULES!r} if m in sys.modules)))\n"
    )
    env = dict(os.environ, CI="true", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert tree_snapshot(shared["site"]) == before  # nothing rebuilt, nothing republished


def test_demo_shards_are_deterministic(tmp_path):
    from atlas.stages.demo import write_demo_shards

    a = write_demo_shards(tmp_path / "a", rows=2000, shards=2, seed=0)
    b = write_demo_shards(tmp_path / "b", rows=2000, shards=2, seed=0)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert pq.read_metadata(a[0]).num_rows == 1000


@pytest.mark.slow
def test_real_sample_build_matches_an_independent_count(shared_data, small_content, tmp_path):
    out = tmp_path / "site"
    result = _atlas(
        "build", "--content", str(small_content), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--data", str(shared_data / "laion400m-sample-10k.parquet"),
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "data" / "stats.json").read_text())
    table = pq.read_table(shared_data / "laion400m-sample-10k.parquet")
    assert stats["rows"] == table.num_rows == 10_000
    hosts = {h["host"]: h["count"] for h in stats["hosts"]}
    shopify = sum(1 for u in table.column("URL").to_pylist() if u and "//cdn.shopify.com/" in u.lower())
    assert hosts["cdn.shopify.com"] == shopify == 641
    assert "Demo data." not in (out / "index.html").read_text()
    assert "10,000" in (out / "index.html").read_text()


def test_stats_command_writes_the_published_json(shared_data, tmp_path):
    target = tmp_path / "stats.json"
    result = _cli("stats", "--data", str(shared_data / "laion400m-sample-10k.parquet"), "--json", str(target))
    assert result.returncode == 0, result.stderr
    stats = json.loads(target.read_text())
    assert stats["rows"] == 10_000 and stats["hosts"][0]["host"] == "cdn.shopify.com"


@pytest.mark.slow
def test_corrupt_shard_fails_cleanly_and_leaves_the_previous_site(small_content, tmp_path):
    shards = tmp_path / "shards"
    write_shard(shards / "part-00000.parquet", {"URL": [f"https://a.org/{i}" for i in range(500)], "TEXT": [f"a cat {i}" for i in range(500)]})
    out = tmp_path / "site"
    args = ["build", "--content", str(small_content), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--data", str(shards / "*.parquet")]
    assert _atlas(*args).exit_code == 0
    before = tree_snapshot(out)
    good = (shards / "part-00000.parquet").read_bytes()
    (shards / "part-00001.parquet").write_bytes(good[: len(good) // 3])
    result = _atlas(*args)
    assert result.exit_code == 2
    assert "part-00001.parquet" in result.stderr and "Traceback" not in result.output
    assert tree_snapshot(out) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".site.")]  # no temp folders left


def test_refuses_to_replace_a_folder_it_did_not_write(small_content, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(AtlasError, match="did not write"):
        build(small_content, out, data=[str(tmp_path / "none.parquet")])
    assert (out / "thesis.tex").read_text() == "years of work"


def test_missing_data_is_a_clear_error(small_content, tmp_path):
    result = _cli("build", "--content", str(small_content), "--out", str(tmp_path / "s"), "--data", str(tmp_path / "nope-*.parquet"))
    assert result.returncode == 2
    assert "no parquet shards match" in result.stderr and "Traceback" not in result.stderr


def test_config_error_from_the_command_line(tmp_path):
    content = write_content(tmp_path / "content", toml="[sample]\nszie = 3\n")
    result = _cli("build", "--content", str(content), "--out", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "unknown key szie in [sample] — did you mean size?" in result.stderr and "Traceback" not in result.stderr


UNSAFE_MARKER = "zebracorn-unsafe"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory, small_content):
    root = tmp_path_factory.mktemp("hostile")
    n = 300
    captions, urls, punsafe = [], [], []
    hostile = [
        '<img src=x onerror="window.pwned=1">',
        '<script>window.pwned=1</script>',
        '"><svg onload="window.pwned=1">',
        "{{ 7*7 }} {% raw %} **not bold**",
        "[click](javascript:window.pwned=1)",
    ]
    for i in range(n):
        captions.append(f"{hostile[i % len(hostile)]} hostile caption {i}")
        urls.append(["javascript:window.pwned=1", "data:text/html,<script>window.pwned=1</script>", f"https://ok.example/{i}.jpg"][i % 3])
        punsafe.append(0.01)
    for i in range(40):
        captions.append(f"{UNSAFE_MARKER} caption {i}")
        urls.append(f"https://unsafe.example/{UNSAFE_MARKER}/{i}.jpg")
        punsafe.append(0.97)
    write_shard(root / "shards" / "part-0.parquet", {"URL": urls, "TEXT": captions, "punsafe": punsafe})
    out = root / "site"
    quiet_build(small_content, out, root / "cache", data=[str(root / "shards" / "*.parquet")])
    return out


@pytest.mark.slow
def test_unsafe_rows_are_counted_but_never_published(hostile_site):
    stats = json.loads((hostile_site / "data" / "stats.json").read_text())
    assert stats["rows"] == 340 and stats["safety"]["unsafe_rows"] == 40
    for path in hostile_site.rglob("*"):
        if path.is_file():
            assert UNSAFE_MARKER.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_only_http_links_are_published(hostile_site):
    for path in hostile_site.rglob("*.html"):
        html = path.read_text()
        assert 'href="javascript:' not in html and 'href="data:' not in html, path
        assert 'src="javascript:' not in html, path


@pytest.mark.browser
def test_hostile_captions_never_run_in_a_browser(hostile_site):
    from helpers.browser import launch, serve, skip_reason

    if skip_reason():
        pytest.skip(skip_reason())
    from playwright.sync_api import sync_playwright

    with serve(hostile_site) as base, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in ("", "map/"):
            page.goto(base + path)
            page.wait_for_timeout(800)
            assert page.evaluate("window.pwned") is None, path
        page.goto(base)
        text = page.inner_text("main")
        assert '<img src=x onerror="window.pwned=1">' in text  # shown as text, not markup
        assert "**not bold**" in text
        browser.close()
    assert not errors
