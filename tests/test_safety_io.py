"""Hostile input at the edges of the command line and the content folder (issue 9, items 5-7, 9):
one paragraph and exit status 2 (never a traceback), nothing left behind, nothing outside the
content folder published, a world-readable site."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import main
from atlas.core.errors import ConfigError
from atlas.core.paths import check_links_inside, inside_content
from helpers.builds import content_copy, quiet_build
from helpers.content import write_content, write_shard


def run_cli(*args: str, env: dict | None = None):
    """``atlas ARGS`` in-process; returns (exit code, output)."""
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"atlas {' '.join(args)} crashed: {result.exception!r}") from result.exception
    return result.exit_code, result.output


def assert_one_paragraph(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    text = output.strip()
    assert "\n\n" not in text
    for needle in needles:
        assert needle in text, text


@pytest.fixture
def shard(tmp_path) -> Path:
    return write_shard(tmp_path / "shards" / "a.parquet", {"URL": ["https://a.example/1.jpg"], "TEXT": ["a cat"]})


# ---- item 6: one paragraph and exit 2 --------------------------------------------------------


def test_atlas_toml_that_is_a_folder(tmp_path, shard):
    (tmp_path / "content" / "atlas.toml").mkdir(parents=True)
    code, out = run_cli("stats", "--content", str(tmp_path / "content"), "--data", str(shard))
    assert_one_paragraph(code, out, "atlas.toml is a folder")


def test_atlas_toml_that_is_a_broken_link(tmp_path, shard):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "atlas.toml").symlink_to(tmp_path / "nowhere.toml")
    code, out = run_cli("stats", "--content", str(tmp_path / "content"), "--data", str(shard))
    assert_one_paragraph(code, out, "atlas.toml")


def test_broken_symlink_matched_by_data(tmp_path, shard):
    (shard.parent / "b.parquet").symlink_to(tmp_path / "gone.parquet")
    code, out = run_cli("stats", "--content", str(tmp_path / "none"), "--data", str(shard.parent / "*.parquet"))
    assert_one_paragraph(code, out, "b.parquet", "broken symbolic link")


def test_stats_json_into_a_folder_or_an_unwritable_place_leaves_no_temporary_file(tmp_path, shard):
    folder = tmp_path / "out"
    folder.mkdir()
    code, out = run_cli("stats", "--content", str(tmp_path / "none"), "--data", str(shard), "--json", str(folder))
    assert_one_paragraph(code, out, "cannot write --json", "Is a directory")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # (root may write anywhere)
            code, out = run_cli("stats", "--content", str(tmp_path / "none"), "--data", str(shard),
                                "--json", str(locked / "stats.json"))
            assert_one_paragraph(code, out, "cannot write --json")
    finally:
        locked.chmod(0o755)
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, out = run_cli("stats", "--content", str(tmp_path / "none"), "--data", str(shard),
                        "--json", str(afile / "stats.json"))
    assert_one_paragraph(code, out, "cannot write --json")
    assert list(tmp_path.rglob("*.tmp")) == []
    code, out = run_cli("stats", "--content", str(tmp_path / "none"), "--data", str(shard),
                        "--json", str(tmp_path / "new" / "stats.json"))
    assert code == 0 and (tmp_path / "new" / "stats.json").is_file()


def test_new_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    code, out = run_cli("new", str(tmp_path / "afile" / "sub"))
    assert_one_paragraph(code, out, "afile is a file")


def test_serve_port_out_of_range_leaves_no_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    for port in ("70000", "-1"):
        code, out = run_cli("serve", "--content", str(tmp_path / "c"), "--port", port)
        assert code == 2 and "Traceback" not in out and "--port" in out and "0<=x<=65535" in out
    from atlas.core.report import Reporter
    from atlas.serve import SiteServer
    from atlas.core.errors import AtlasError

    with pytest.raises(AtlasError, match="cannot listen"):
        SiteServer(tmp_path / "c", port=70000, reporter=Reporter(quiet=True)).start()
    assert not list(tmp_path.glob("atlas-serve-*"))


@pytest.mark.slow
def test_serve_stopped_by_sigterm_removes_its_temporary_folder(shared, tmp_path):
    content = content_copy(shared, tmp_path / "content")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    # Stopped while serving, then while still building its first site.
    for ready in ("atlas-serve-*/site/index.html", "atlas-serve-*"):
        process = subprocess.Popen(
            [sys.executable, "-m", "atlas", "serve", "--content", str(content), "--cache-dir", str(shared["cache"]),
             "--port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 120
            while not list(tmp.glob(ready)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert list(tmp.glob("atlas-serve-*")), "serve never made its folder"
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=60)[0]
        finally:
            if process.poll() is None:
                process.kill()
        assert "Traceback" not in output
        assert list(tmp.glob("atlas-serve-*")) == [], ready


# ---- item 5: ATLAS_BASE_URL ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["javascript:alert(document.domain)//x", "//evil.example/", "data:text/html,x",
                                   "https://a b/", "ftp://files.example/"])
def test_atlas_base_url_gets_the_same_validation_as_the_config_key(tmp_path, shard, value):
    content = write_content(tmp_path / "content")
    code, out = run_cli("build", "--content", str(content), "--out", str(tmp_path / "site"), "--data", str(shard),
                        "--cache-dir", str(tmp_path / "cache"), env={"ATLAS_BASE_URL": value})
    assert_one_paragraph(code, out, "ATLAS_BASE_URL")
    assert not (tmp_path / "site").exists()
    (content / "atlas.toml").write_text(f'[site]\nbase_url = "{value}"\n')
    code, out = run_cli("build", "--content", str(content), "--out", str(tmp_path / "site"), "--data", str(shard))
    assert code == 2 and "[site] base_url" in out and "Traceback" not in out


# ---- item 7: published paths stay inside the content folder ----------------------------------


def test_inside_content_refuses_absolute_paths_dotdot_and_links_out(tmp_path):
    content = tmp_path / "content"
    (content / "lists").mkdir(parents=True)
    (content / "lists" / "a.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("secret")
    (content / "lists" / "link.txt").symlink_to(tmp_path / "secret.txt")
    (content / "lists" / "inner.txt").symlink_to(content / "lists" / "a.txt")
    assert inside_content(content, "lists/a.txt", "[data] artists") == (content / "lists" / "a.txt").resolve()
    assert inside_content(content, "lists/../lists/inner.txt", "[data] artists").name == "a.txt"
    for bad in ("/etc/passwd", "~/.ssh/id_rsa", "../secret.txt", "lists/../../secret.txt", "lists/link.txt",
                "../../../../etc/passwd"):
        with pytest.raises(ConfigError) as error:
            inside_content(content, bad, "[data] artists")
        assert error.value.where == "[data] artists"


def test_check_links_inside_follows_inner_links_and_refuses_outer_ones(tmp_path):
    content = tmp_path / "content"
    (content / "static" / "css").mkdir(parents=True)
    (content / "other").mkdir()
    (content / "static" / "in").symlink_to(content / "other")
    check_links_inside(content / "static", content, "content/static")
    (content / "other" / "out").symlink_to("/etc/hostname")
    with pytest.raises(ConfigError, match="outside"):
        check_links_inside(content / "static", content, "content/static")


def test_artist_list_outside_the_content_folder_is_refused(tmp_path, shard):
    content = write_content(tmp_path / "content", toml='[data]\nartists = "../../../../../../../../etc/passwd"\n')
    code, out = run_cli("stats", "--content", str(content), "--data", str(shard), "--json", str(tmp_path / "s.json"))
    assert_one_paragraph(code, out, "[data] artists", "outside")
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("case", ["theme-dotdot", "theme-link", "static-link", "static-folder-link", "page-link"])
def test_a_build_never_publishes_files_from_outside_the_content_folder(shared, tmp_path, case):
    content = content_copy(shared, tmp_path / "content")
    outside = tmp_path / "outside"
    (outside / "templates").mkdir(parents=True)
    (outside / "templates" / "page.html").write_text("SECRET-TEMPLATE {{ body }}")
    (outside / "secret.txt").write_text("SECRET-FILE")
    toml = (content / "atlas.toml").read_text()
    if case == "theme-dotdot":
        (content / "atlas.toml").write_text(toml.replace("[site]", '[site]\ntheme = "../../outside"'))
        key = "[site] theme"
    elif case == "theme-link":
        (content / "themes").mkdir()
        (content / "themes" / "mine").symlink_to(outside)
        (content / "atlas.toml").write_text(toml.replace("[site]", '[site]\ntheme = "mine"'))
        key = "[site] theme"
    elif case == "static-link":
        (content / "static").mkdir()
        (content / "static" / "notes.txt").symlink_to(outside / "secret.txt")
        key = "content/static"
    elif case == "static-folder-link":
        (content / "static").symlink_to(outside)
        key = "content/static"
    else:
        (content / "leak.md").symlink_to(outside / "secret.txt")
        key = "page leak.md"
    site = tmp_path / "site"
    code, out = run_cli("build", "--content", str(content), "--out", str(site), "--cache-dir", str(shared["cache"]))
    assert_one_paragraph(code, out, key)
    assert not site.exists()


# ---- item 9: a world-readable site -----------------------------------------------------------


def test_the_published_site_is_world_readable(shared, tmp_path):
    old = os.umask(0o077)  # even under a private umask
    try:
        report = quiet_build(content_copy(shared, tmp_path / "content"), tmp_path / "site", shared["cache"])
    finally:
        os.umask(old)
    site = report.out
    assert (site / "map" / "data").is_dir()
    for path in [site, *site.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path.relative_to(site)}: {oct(mode)}"
