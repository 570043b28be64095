"""`atlas serve`: serves the built site on localhost and rebuilds + reloads on edits."""

from __future__ import annotations

import json
import time
import tomllib
import urllib.error
import urllib.request

import pytest

from helpers.builds import content_copy
from helpers.paths import EDIT_PAGE
from atlas.core.errors import AtlasError
from atlas.core.report import Reporter
from atlas.serve import RELOAD_PATH, VERSION_PATH, SiteServer

SLUG = EDIT_PAGE.removesuffix(".md") + "/"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def _wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true after {timeout}s")


@pytest.fixture
def server(shared, tmp_path):
    content = content_copy(shared, tmp_path / "content")
    server = SiteServer(content, port=0, cache_dir=shared["cache"], reporter=Reporter(quiet=True)).start()
    yield server
    server.stop()


def test_serves_the_site_on_localhost_with_live_reload(server):
    assert server.url.startswith("http://127.0.0.1:") and server.port != 0
    status, home = _get(server.url)
    title = tomllib.loads((server.content_dir / "atlas.toml").read_text())["site"]["title"]
    assert status == 200 and f" · {title}</title>" in home and f'<script src="{RELOAD_PATH}"' in home
    status, map_page = _get(server.url + "map/")
    assert status == 200 and RELOAD_PATH in map_page
    status, css = _get(server.url + "static/css/atlas.css")
    assert status == 200 and RELOAD_PATH not in css
    status, missing = _get(server.url + "no/such/page/")
    assert status == 404 and "Page not found" in missing
    # The script is a file of its own that polls the version next to it.
    status, script = _get(server.url + RELOAD_PATH[1:])
    assert status == 200 and "location.reload()" in script and "new URL('version'" in script
    # The reload script is added while serving; the built files do not have it.
    built = "".join(p.read_text() for p in server.out.rglob("*.html"))
    assert "__atlas__" not in built and "livereload" not in built


def test_an_edited_page_is_rebuilt_and_the_version_changes(server):
    version = json.loads(_get(server.url + VERSION_PATH[1:])[1])["version"]
    page = server.content_dir / EDIT_PAGE
    page.write_text(page.read_text() + "\nFreshly edited paragraph.\n")
    _wait_for(lambda: "Freshly edited paragraph." in _get(server.url + SLUG)[1])
    # The version moves once the rebuild has finished (just after the new files are published).
    now = _wait_for(lambda: (state := json.loads(_get(server.url + VERSION_PATH[1:])[1]))["version"] > version and state)
    assert now["error"] is None


def test_a_broken_edit_is_reported_to_the_browser_and_the_old_site_stays(server):
    page = server.content_dir / EDIT_PAGE
    page.write_text("---\ntitle: [unclosed\n---\n# Broken\n")
    state = _wait_for(lambda: json.loads(_get(server.url + VERSION_PATH[1:])[1])["error"])
    assert "front matter" in state
    assert _get(server.url + SLUG)[0] == 200


def test_a_busy_port_is_a_clear_error(server, tmp_path):
    other = SiteServer(server.content_dir, port=server.port, cache_dir=server.cache_dir, reporter=Reporter(quiet=True))
    with pytest.raises(AtlasError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        other.start()


@pytest.mark.browser
def test_the_browser_reloads_after_an_edit_and_404_finds_the_root(server):
    from helpers import browser

    reason = browser.skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        try:
            page = chromium.new_page()
            page.goto(server.url + SLUG)
            page.wait_for_timeout(300)
            source = server.content_dir / EDIT_PAGE
            source.write_text(source.read_text() + "\nReloaded by the browser itself.\n")
            page.wait_for_function(
                "document.body.textContent.includes('Reloaded by the browser itself.')", timeout=30000
            )
            # GitHub Pages serves 404.html at any depth: its links must lead back to the site.
            page.goto(server.url + "deep/missing/page/")
            page.wait_for_function(
                "document.querySelector('a.brand').getAttribute('href') === '/'", timeout=10000
            )
            assert page.evaluate("document.querySelector('link[rel=stylesheet]').getAttribute('href')") == (
                "/static/css/atlas.css"
            )
        finally:
            chromium.close()
