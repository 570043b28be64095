"""Link check of a built demo site: every internal href/src resolves to a published file,
with and without a base URL (GitHub Pages project sub-path); plus 404.html, sitemap, robots."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from helpers.builds import content_copy, quiet_build, ran
from helpers.paths import EDIT_PAGE

BASE = "https://someone.github.io/their-atlas/"
SLUG = EDIT_PAGE.removesuffix(".md") + "/"
#: Stands for the site's root while resolving relative links (urljoin needs an http URL).
ORIGIN = "http://site.invalid/"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src") or (name == "srcset" and tag in ("img", "source")):
                values = [part.strip().split(" ")[0] for part in value.split(",")] if name == "srcset" else [value]
                self.links += [v for v in values if v]


def broken_links(site: Path, base_url: str = "") -> list[str]:
    """``page: link`` for every internal link of the site's HTML and CSS that names no file."""
    broken = []
    files = sorted(site.rglob("*.html")) + sorted(site.rglob("*.css"))
    assert files, f"no HTML in {site}"
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            parser = _Links()
            parser.feed(text)
            links = parser.links
        else:
            links = re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", text)
        page_url = ORIGIN + path.relative_to(site).as_posix()
        for link in links:
            if base_url and link.startswith(base_url):
                target = ORIGIN + link[len(base_url):]
            elif link.startswith(("#", "data:", "mailto:", "javascript:", "http://", "https://", "//")):
                continue
            else:
                target = urljoin(page_url, link)
            parts = urlsplit(target)
            if not target.startswith(ORIGIN):
                continue
            rel = unquote(parts.path).lstrip("/")
            file = site / rel
            if rel == "" or rel.endswith("/") or file.is_dir():
                file = file / "index.html"
            if not file.is_file():
                broken.append(f"{path.relative_to(site)}: {link}")
    return broken


@pytest.fixture(scope="module")
def based_site(shared, tmp_path_factory):
    """The demo site built for https://someone.github.io/their-atlas/ (only render re-runs)."""
    root = tmp_path_factory.mktemp("based")
    content = content_copy(shared, root / "content")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATLAS_BASE_URL", BASE)
        report = quiet_build(content, root / "site", shared["cache"])
    assert ran(report) == {"render"}
    return root / "site"


def test_every_internal_link_of_the_site_resolves(shared):
    assert broken_links(shared["site"]) == []


def test_every_internal_link_resolves_under_a_project_sub_path(based_site):
    assert broken_links(based_site, BASE) == []


def test_the_link_check_finds_a_broken_link(shared, tmp_path):
    content = content_copy(shared, tmp_path / "content")
    (content / EDIT_PAGE).write_text("# Making\n\nSee [the missing page](../nowhere/) and ![x](../img/none.png).\n")
    quiet_build(content, tmp_path / "site", shared["cache"])
    assert sorted(broken_links(tmp_path / "site")) == [
        f"{SLUG}index.html: ../img/none.png",
        f"{SLUG}index.html: ../nowhere/",
    ]


def test_404_page_links_work_from_any_depth(shared, based_site):
    plain = (shared["site"] / "404.html").read_text()
    assert "data/build.json" in plain  # finds the root at run time: no base URL known
    based = (based_site / "404.html").read_text()
    assert f'href="{BASE}"' in based and f'href="{BASE}static/css/atlas.css"' in based
    assert "data/build.json" not in based


def test_sitemap_and_robots_with_a_base_url(shared, based_site):
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    urls = [loc.text for loc in ET.parse(based_site / "sitemap.xml").getroot().findall("s:url/s:loc", ns)]
    assert BASE in urls and BASE + SLUG in urls and BASE + "map/" in urls
    for url in urls:
        assert (based_site / url[len(BASE):] / "index.html").is_file()
    assert f"Sitemap: {BASE}sitemap.xml" in (based_site / "robots.txt").read_text()
    # Without a base URL there are no absolute URLs to list.
    assert not (shared["site"] / "sitemap.xml").exists()
    assert (shared["site"] / "robots.txt").is_file()
    page = (based_site / SLUG / "index.html").read_text()
    assert f'<link rel="canonical" href="{BASE}{SLUG}">' in page
    assert f'<meta property="og:image" content="{BASE}og.png">' in page
    assert (based_site / "og.png").read_bytes().startswith(b"\x89PNG")
