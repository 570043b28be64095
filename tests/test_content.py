"""Markdown pages, widget directives, escaping and theme overrides, rendered for real."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml

from atlas.core.config import AtlasConfig
from atlas.core.errors import ContentError
from atlas.site.render import render_site
from atlas.stages.stats import Stats

from helpers.content import write_content

STATS = {
    "rows": 3,
    "columns": {"url": "URL", "caption": "TEXT", "similarity": "similarity"},
    "distinct_hosts": 1,
    "distinct_domains": 1,
    "invalid_urls": 0,
    "domains": [{"domain": "<b>evil</b>.com", "count": 3}],
    "hosts": [{"host": "x.<b>evil</b>.com", "count": 3}],
    "artists": [{"name": "Claude Monet", "count": 2}],
    "histograms": {
        "similarity": {
            "label": "CLIP image-text similarity",
            "unit": "",
            "edges": [0.0, 0.2, 0.4, 0.6],
            "counts": [0, 2, 1],
            "invalid": 1,
            "thresholds": [{"value": 0.28, "label": "English cut 0.28"}],
        }
    },
    "shares": {"similarity": [{"threshold": 0.28, "count": 2, "share": 2 / 3}]},
    "categories": {},
    "safety": {"threshold": 0.5, "unsafe_rows": 0, "scored": False},
}
HOSTILE = '<img src=x onerror="window.pwned=1"> **bold** [link](javascript:alert(1)) {{ config }} {% raw %}'
EXAMPLES = {
    "captions": [
        {"url": "https://ok.example/a.jpg", "caption": HOSTILE, "host": "ok.example"},
        {"url": None, "caption": "plain caption", "host": None},
    ],
    "html": [],
}


def _render(tmp_path, pages, **kwargs):
    content = write_content(tmp_path / "content", pages)
    out = tmp_path / "site"
    render_site(AtlasConfig(), content, out, Stats(kwargs.get("stats", STATS), EXAMPLES, {}), {}, {"demo": False})
    return out


def test_histogram_widget_is_accessible_svg(tmp_path):
    out = _render(tmp_path, {"index.md": "# Home\n\n```atlas histogram column=similarity\n```\n"})
    html = (out / "index.html").read_text()
    assert '<svg class="chart histogram chart-wide"' in html and 'role="img"' in html
    assert '<svg class="chart histogram chart-narrow" viewBox="0 0 320 ' in html  # phones: labels stay readable
    assert "<title id=\"hist-similarity-t\">CLIP image-text similarity</title>" in html
    assert "66.7% at or over 0.28" in html  # the share, in the description for screen readers
    assert "English cut 0.28" in html
    assert "1 rows have no valid value" in html


def test_missing_column_shows_a_note_not_an_error(tmp_path):
    out = _render(tmp_path, {"index.md": "```atlas histogram column=aesthetic\n```\n"})
    assert "This data has no <code>aesthetic</code> column" in (out / "index.html").read_text()


def test_data_strings_are_escaped_everywhere(tmp_path):
    pages = {"index.md": "```atlas table of=domains\n```\n\n```atlas table of=hosts\n```\n\n```atlas captions n=5\n```\n"}
    html = (_render(tmp_path, pages) / "index.html").read_text()
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;.com" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    # Captions are text: not Markdown, not a template.
    assert "**bold**" in html and "<strong>bold</strong>" not in html
    assert "{{ config }}" in html
    assert 'href="javascript:' not in html
    assert 'href="https://ok.example/a.jpg"' in html


def test_unknown_widget_names_file_and_line(tmp_path):
    with pytest.raises(ContentError) as error:
        _render(tmp_path, {"index.md": "# Home\n\ntext\n\n```atlas histgram column=similarity\n```\n"})
    message = str(error.value)
    assert "index.md:5" in message and "unknown widget 'histgram'" in message and "histogram" in message


def test_bad_widget_argument(tmp_path):
    with pytest.raises(ContentError, match="limit='lots' must be a whole number"):
        _render(tmp_path, {"index.md": "```atlas table of=domains limit=lots\n```\n"})


def test_unknown_front_matter_key(tmp_path):
    with pytest.raises(ContentError, match="unknown front matter key"):
        _render(tmp_path, {"index.md": "---\ntitel: Home\n---\n# Home\n"})


def test_links_work_under_a_sub_path(tmp_path):
    pages = {
        "index.md": "---\ntitle: Home\nnav: Home\norder: 0\n---\n[CLIP](/clip-filtering/)\n",
        "clip-filtering.md": "---\ntitle: CLIP filtering\nnav: CLIP\norder: 30\n---\n[home](/) ![x](/static/x.png)\n",
    }
    out = _render(tmp_path, pages)
    home = (out / "index.html").read_text()
    page = (out / "clip-filtering" / "index.html").read_text()
    assert 'href="clip-filtering/"' in home
    assert 'href="../"' in page and 'src="../static/x.png"' in page
    assert 'href="../static/css/atlas.css"' in page
    assert 'aria-current="page"' in page and "CLIP filtering" in page
    assert 'rel="prev"' in page  # the journey pager links back home


def test_theme_override_extends_default(tmp_path):
    content = write_content(tmp_path / "content", {"index.md": "# Home\n"})
    templates = content / "themes" / "default" / "templates"
    templates.mkdir(parents=True)
    (templates / "page.html").write_text(
        '{% extends "default:page.html" %}{% block footer %}<p>fork footer</p>{% endblock %}'
    )
    out = tmp_path / "site"
    render_site(AtlasConfig(), content, out, Stats(STATS, EXAMPLES, {}), {}, {"demo": False})
    html = (out / "index.html").read_text()
    assert "fork footer" in html and "<h1" in html


def test_no_pages_is_a_clear_error(tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    with pytest.raises(ContentError, match="no Markdown pages"):
        render_site(AtlasConfig(), content, tmp_path / "site", Stats(STATS, EXAMPLES, {}), {}, {"demo": False})


def test_published_data_and_csv(tmp_path):
    from atlas.stages.stats import read, write_stats

    stats_dir = tmp_path / "stats"
    write_stats(dict(STATS, domains=[{"domain": "=cmd|' /C calc'!A0", "count": 1}]), EXAMPLES, stats_dir)
    content = write_content(tmp_path / "content")
    out = tmp_path / "site"
    render_site(AtlasConfig(), content, out, read(stats_dir), {"stats": stats_dir}, {"demo": False})
    for name in ("stats.json", "domains.csv", "hosts.csv", "artists.csv", "histograms.csv"):
        assert (out / "data" / name).read_bytes() == (stats_dir / name).read_bytes(), name
    csv_text = (out / "data" / "domains.csv").read_text()
    assert csv_text.splitlines()[1].startswith("'=cmd")  # no formula injection in spreadsheets
    assert (out / ".nojekyll").exists()


def test_repo_pages_have_front_matter_and_render_offline(shared):
    out: Path = shared["site"]
    sources = sorted(shared["content"].glob("*.md"))
    assert len(sources) >= 8
    for source in sources:
        front = yaml.safe_load(source.read_text(encoding="utf-8").split("---\n")[1])
        slug = "" if source.stem == "index" else f"{source.stem}/"
        page = (out / slug / "index.html").read_text(encoding="utf-8")
        assert f"<title>{html.escape(front['title'])}" in page, source.name
        assert "Demo data." in page, source.name
        # Offline: no script or stylesheet from another site.
        assert not re.search(r"<script[^>]+src=\"(https?:)?//", page), source.name
        assert not re.search(r"<link[^>]+rel=\"stylesheet\"[^>]+href=\"(https?:)?//", page), source.name


def test_between_widget_states_a_figure_only_when_the_data_has_it(tmp_path):
    import copy

    page = ('# CLIP\n\n```atlas between column=similarity low=0.26 high=0.28 '
            'text="{count} pairs ({share}) score between 0.26 and 0.28."\n```\n')
    stats = copy.deepcopy(STATS)
    stats["shares"]["similarity"] = [{"threshold": 0.26, "count": 2, "share": 1.0},
                                     {"threshold": 0.28, "count": 2, "share": 1.0}]
    html = (_render(tmp_path / "none", {"index.md": page}, stats=stats) / "index.html").read_text()
    assert "score between" not in html  # no such rows: the sentence is not shown
    stats["shares"]["similarity"][0]["count"] = 3
    html = (_render(tmp_path / "some", {"index.md": page}, stats=stats) / "index.html").read_text()
    assert "1 pairs (33.3%) score between 0.26 and 0.28." in html
    without = copy.deepcopy(STATS)
    without["histograms"], without["shares"] = {}, {}
    html = (_render(tmp_path / "nocol", {"index.md": page}, stats=without) / "index.html").read_text()
    assert "score between" not in html
    bad = page.replace("low=0.26", "low=0.27")
    with pytest.raises(ContentError, match="low=0.27"):
        _render(tmp_path / "bad", {"index.md": bad}, stats=stats)
