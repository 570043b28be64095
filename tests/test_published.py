"""Bounds on what the site publishes (atlas/published.py): captions cut to one length in every
file, CSV cells that no spreadsheet runs (README "Safety of the published site")."""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pytest

from atlas.build import build
from atlas.text.published import CAPTION_CUT, ELLIPSIS, csv_cell, cut_caption
from atlas.core.report import Reporter

from helpers.content import write_content, write_shard

FORMS = json.loads((Path(__file__).parent / "csv_forms.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the cut


def test_cut_caption_keeps_short_captions_and_cuts_long_ones_with_an_ellipsis():
    assert cut_caption("a cat") == "a cat"
    assert cut_caption("x" * CAPTION_CUT) == "x" * CAPTION_CUT
    cut = cut_caption("y" * (CAPTION_CUT + 1))
    assert cut == "y" * CAPTION_CUT + ELLIPSIS
    assert cut_caption(None) == "" and cut_caption(3.5) == ""


def test_cut_caption_never_splits_a_combining_sequence_or_an_emoji():
    accented = "e\u0301" * CAPTION_CUT  # é as e + combining acute
    cut = cut_caption(accented)
    assert cut.endswith(ELLIPSIS) and len(cut) <= CAPTION_CUT + 1
    body = cut[:-1]
    assert not unicodedata.combining(body[0]) and unicodedata.combining(body[-1])  # ends on a whole é
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467 "
    cut = cut_caption(family * CAPTION_CUT)
    assert "\u200d" != cut[-2] and "\U0001F468" != cut[-2]  # no dangling joiner or half a sequence
    assert cut[:-1].endswith(family.rstrip()) or cut[:-1].endswith("\U0001F467")


# ----------------------------------------------------------------------------- the CSV guard


@pytest.mark.parametrize("text", FORMS["formulas"])
def test_csv_cell_guards_formulas_behind_invisible_and_full_width_characters(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("text", FORMS["text"])
def test_csv_cell_leaves_text_alone(text):
    assert csv_cell(text) == text
    assert csv_cell(-0.5) == -0.5 and csv_cell(3) == 3  # numbers are numbers


# ----------------------------------------------------------------------------- whole builds

LONG = 5_000_000
PAGES = {
    "index.md": """\
        ---
        title: Home
        ---
        # Home

        ```atlas captions n=200
        ```

        ```atlas table of=hosts
        ```
        """,
}
TOML = """\
    [sample]
    size = 300

    [project]
    fit_size = 300

    [embed]
    method = "tfidf"
    """
@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """A site built from a shard with one 5 MB caption among 239 short ones."""
    root = tmp_path_factory.mktemp("bounded")
    long_caption = "bigtoken " + "long caption words " * (LONG // 19)
    words = ["cat", "dog", "red", "blue", "house", "tree", "river", "car", "poster", "shirt", "lamp", "chair"]
    rows = [{"URL": f"https://site{i % 7}.example/{i}.jpg",
             "TEXT": " ".join(words[(i * k) % len(words)] for k in (1, 3, 5, 7)) + f" photo {i % 13}",
             "punsafe": 0.01} for i in range(240)]
    rows[0]["TEXT"] = long_caption
    shard = write_shard(root / "data" / "shard.parquet", rows)
    content = write_content(root / "content", PAGES, TOML)
    build(content, root / "site", data=[str(shard)], cache_dir=root / "cache", reporter=Reporter(quiet=True))
    return {"site": root / "site", "caption": long_caption}


def test_a_5mb_caption_is_published_cut_in_every_file(hostile_site):
    site = hostile_site["site"]
    files = [p for p in site.rglob("*") if p.is_file()]
    assert max(p.stat().st_size for p in files) < 1_000_000  # no file carries the whole caption
    run = "long caption words " * ((CAPTION_CUT + 19) // 19)
    assert not [p.relative_to(site) for p in files if run.encode() in p.read_bytes()]
    map_captions = [c for chunk in sorted((site / "map" / "data" / "text").glob("*.json"))
                    for c in json.loads(chunk.read_text(encoding="utf-8"))]
    [cut] = [c for c in map_captions if c.startswith("bigtoken")]
    assert cut.endswith(ELLIPSIS) and len(cut) <= CAPTION_CUT + 1
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "bigtoken" in page and "\u2026</q>" in page


def test_the_statistics_count_the_whole_caption(hostile_site):
    """The statistics read the shards, not what is published: the 5 MB caption counts in the
    caption length histogram's last bin (400+ characters), with every other row in its own."""
    stats = json.loads((hostile_site["site"] / "data" / "stats.json").read_text(encoding="utf-8"))
    lengths = stats["histograms"]["caption_length"]
    assert sum(lengths["counts"]) == stats["rows"] == 240
    assert lengths["counts"][-1] == 1 and lengths["edges"][-2] <= 400


def test_published_csv_guards_hostile_hosts_and_domains(tmp_path):
    from atlas.core.config import AtlasConfig
    from atlas.site.render import render_site
    from atlas.stages.stats import read, write_stats

    from test_content import EXAMPLES, STATS

    hostile = FORMS["formulas"]
    stats = dict(STATS, hosts=[{"host": h, "count": 1} for h in hostile],
                 domains=[{"domain": d, "count": 1} for d in hostile + FORMS["text"]])
    write_stats(stats, EXAMPLES, tmp_path / "stats")
    content = write_content(tmp_path / "content")
    render_site(AtlasConfig(), content, tmp_path / "site", read(tmp_path / "stats"), {"stats": tmp_path / "stats"},
                {"demo": False})
    for name, key in (("hosts.csv", "host"), ("domains.csv", "domain")):
        with open(tmp_path / "site" / "data" / name, newline="", encoding="utf-8") as handle:
            cells = [row[key] for row in csv.DictReader(handle)]
        assert cells[: len(hostile)] == ["'" + h for h in hostile], name
    assert cells[len(hostile):] == FORMS["text"]


def test_python_and_javascript_guards_agree_on_every_character():
    """csv_cell and the map's csvCell are one rule: for every code point in front of "=1" and of
    "x", both say formula or both say text. Only characters whose Unicode category differs between
    Python's Unicode database and Node's (unassigned in the older one, or a mark that became a
    spacing mark) may disagree."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs); .ci/run installs it")
    module = (Path(__file__).resolve().parents[1] / "themes/default/static/js/map/selection.js").as_uri()
    script = (f"import {{ looksLikeFormula as f }} from {json.dumps(module)};"
              "const out = [];"
              "for (let c = 0; c < 0x30000; c++) { if (c >= 0xd800 && c < 0xe000) { out.push('s'); continue; }"
              "  const ch = String.fromCodePoint(c); out.push((f(ch + '=1') ? 1 : 0) + (f(ch + 'x') ? 2 : 0)); }"
              "process.stdout.write(out.join(''));")
    run = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and len(run.stdout) == 0x30000, run.stderr
    from atlas.text.published import looks_like_formula

    disagree = []
    for code, js in enumerate(run.stdout):
        if js == "s":
            continue
        char = chr(code)
        py = (1 if looks_like_formula(char + "=1") else 0) + (2 if looks_like_formula(char + "x") else 0)
        if str(py) != js and unicodedata.category(char) not in ("Cn", "Mn", "Mc"):
            disagree.append(f"U+{code:04X}")
    assert not disagree, disagree
