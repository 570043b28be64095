"""The 404 page in Chromium: without a base URL its script finds the site root, and an address
such as ``//evil.example/x`` can never point it (its requests, stylesheet or links) at another
site."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from helpers.browser import skip_reason

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]


class _PagesLike(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and answers 404.html (status 404) for anything missing, as GitHub Pages does."""

    def log_message(self, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@pytest.fixture(scope="module")
def site_url(shared):
    site = shared["site"]
    assert "fetch(" in (site / "404.html").read_text()  # no base URL: the page finds its root itself
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_PagesLike, directory=str(site)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _visit(browser, url: str) -> tuple[list[str], dict]:
    """Open ``url``; every request is recorded and only 127.0.0.1 is reached (others aborted).
    Returns (requested URLs, {links, stylesheets} as absolute URLs after the script ran)."""
    page = browser.new_page()
    requested = []

    def route(route):
        requested.append(route.request.url)
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    found = page.evaluate(
        """() => ({
          links: [...document.querySelectorAll('a[href]')].map(a => a.href),
          styles: [...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href),
          styled: getComputedStyle(document.body).fontFamily,
          title: document.querySelector('h1') && document.querySelector('h1').textContent,
        })"""
    )
    page.close()
    return requested, found


@pytest.mark.parametrize("path", ["//evil.example/x", "//evil.example/a/b/", "///evil.example/x",
                                  "/\\evil.example/x", "/a//evil.example/x", "//127.0.0.2:1/x"])
def test_a_network_path_in_the_address_never_leaves_the_site(chromium, site_url, path):
    requested, found = _visit(chromium, site_url + path)
    assert found["title"] == "Page not found"
    origin = site_url + "/"
    assert all(url.startswith(origin) for url in requested), requested
    assert found["links"] and all(link.startswith(origin) for link in found["links"]), found["links"]
    assert all(style.startswith(origin) for style in found["styles"]), found["styles"]
    # The root was found on this site: the first link is its home page.
    assert origin in found["links"]


def test_links_are_rewritten_to_the_site_root_from_any_depth(chromium, site_url):
    _, found = _visit(chromium, site_url + "/no/such/deep/page")
    assert site_url + "/" in found["links"] and site_url + "/map/" in found["links"]
    assert found["styles"] and all(style.startswith(site_url + "/static/") for style in found["styles"])
