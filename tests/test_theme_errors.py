"""A fork's theme template that fails (README "every user mistake ... one paragraph"): `atlas
build` names the template file and line and what to do, exits 2 without a traceback, and the
site published before stays byte for byte as it was."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from atlas.cli import main

from helpers.content import tree_snapshot, write_content, write_shard

TOML = """\
    [site]
    theme = "fork"

    [sample]
    size = 200

    [project]
    fit_size = 200

    [embed]
    method = "tfidf"
    """
PAGES = {"index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas captions n=5\n```\n"}
FOOTER = '{% extends "default:page.html" %}\n{% block footer %}\n'

#: Template file, its text, the line the message must name, and words of the message.
BROKEN = {
    "division": ("page.html", FOOTER + "<p>{{ 1 / 0 }}</p>\n{% endblock %}\n", 3, "ZeroDivisionError"),
    "undefined": ("page.html", FOOTER + "<p>{{ no_such_name.title }}</p>\n{% endblock %}\n", 3,
                  "'no_such_name' is undefined"),
    "recursive extends": ("page.html", '{% extends "page.html" %}\n', 1, "extends or includes itself"),
    "syntax": ("page.html", FOOTER + "{% if %}\n{% endblock %}\n", 3, "syntax error"),
    "missing include": ("page.html", FOOTER + "\n{% include 'nowhere.html' %}\n{% endblock %}\n", 4,
                        "nowhere.html not found"),
    "404 page": ("404.html", '{% extends "default:404.html" %}\n{% block content %}\n{{ built.nope }}\n'
                 "{% endblock %}\n", 3, "has no attribute 'nope'"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A content folder with a fork theme and a small shard, built once (the site to keep)."""
    root = tmp_path_factory.mktemp("theme-errors")
    words = ["cat", "dog", "red", "blue", "house", "tree", "river", "car", "poster", "shirt", "lamp", "chair"]
    rows = [{"URL": f"https://site{i % 5}.example/{i}.jpg",
             "TEXT": " ".join(words[(i * k) % len(words)] for k in (1, 3, 5, 7)) + f" photo {i % 11}",
             "punsafe": 0.01} for i in range(200)]
    shard = write_shard(root / "data" / "shard.parquet", rows)
    content = write_content(root / "content", PAGES, TOML)
    (content / "themes" / "fork" / "templates").mkdir(parents=True)
    args = ["build", "--content", str(content), "--out", str(root / "site"), "--data", str(shard),
            "--cache-dir", str(root / "cache")]
    result = CliRunner().invoke(main, args, env={"CI": "true"})
    assert result.exit_code == 0, result.output
    return {"content": content, "site": root / "site", "args": args, "before": tree_snapshot(root / "site")}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_failing_fork_template_is_one_paragraph_and_keeps_the_site(project, case):
    name, text, line, words = BROKEN[case]
    templates = project["content"] / "themes" / "fork" / "templates"
    (templates / name).write_text(text, encoding="utf-8")
    try:
        result = CliRunner().invoke(main, project["args"], env={"CI": "true"})
    finally:
        shutil.rmtree(templates)
        templates.mkdir()
    output = result.output  # stdout and stderr (click 8.2+)
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit)  # no exception escaped to click
    assert "Traceback" not in output
    [message] = [ln for ln in output.splitlines() if ln.startswith("atlas: theme error:")]
    assert f"themes/fork/templates/{name}, line {line}" in message, message
    assert words in message, message
    assert tree_snapshot(project["site"]) == project["before"]  # the previous site, byte for byte


def test_the_fork_builds_again_once_fixed(project):
    templates = project["content"] / "themes" / "fork" / "templates"
    (templates / "page.html").write_text(FOOTER + "<p>fixed footer</p>\n{% endblock %}\n", encoding="utf-8")
    try:
        result = CliRunner().invoke(main, project["args"], env={"CI": "true"})
    finally:
        shutil.rmtree(templates)
        templates.mkdir()
    assert result.exit_code == 0, result.output
    assert "fixed footer" in (project["site"] / "index.html").read_text(encoding="utf-8")


def test_a_page_naming_a_template_the_theme_lacks_names_the_page(tmp_path):
    from atlas.core.config import AtlasConfig
    from atlas.core.errors import ContentError
    from atlas.site.render import render_site
    from atlas.stages.stats import Stats

    content = write_content(tmp_path / "content", {"index.md": "---\ntitle: Home\ntemplate: wide.html\n---\n# Home\n"})
    with pytest.raises(ContentError, match="template 'wide.html' is not in the theme") as raised:
        render_site(AtlasConfig(), content, tmp_path / "site", Stats({}, {}, {}), {}, {"demo": False})
    assert str(raised.value).startswith(str(content / "index.md"))
