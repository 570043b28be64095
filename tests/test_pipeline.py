"""Incremental builds: each kind of change re-runs exactly the stages that depend on it."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from helpers.builds import content_copy, quiet_build, ran, statuses
from helpers.content import edit_config
from helpers.paths import EDIT_PAGE, SAMPLE_SIZE
from atlas.cli import main

WIDE = {"COLUMNS": "240"}  # rich tables: one line per stage
MAP_STAGES = {"sample", "embed", "project", "mapdata", "search", "prompt_captions", "render"}


@pytest.fixture
def content(shared, tmp_path):
    return content_copy(shared, tmp_path / "content")


def test_cold_build_runs_every_stage_and_publishes_the_site(shared):
    site = shared["site"]
    assert (site / "index.html").is_file() and (site / "map" / "index.html").is_file()
    info = json.loads((site / "data" / "build.json").read_text())
    assert info["demo"] is True
    published = [p for p in site.rglob("*") if p.is_file() and p.name not in ("build.json", ".atlas-site")]
    assert info["site_bytes"] == sum(p.stat().st_size for p in published)
    assert any("demo data" in w for w in info["warnings"])
    footer = (site / "index.html").read_text()
    # No CLIP weights: the caption model when it is installed, else TF-IDF (and a warning).
    assert re.search(r"from generated demo shards \([\d,]+ rows\), on \d{4}-\d\d-\d\d, with "
                     r"(caption embeddings from the sentence model all-MiniLM-L6-v2|offline TF-IDF)", footer)
    if "offline TF-IDF" in footer:
        assert any("TF-IDF" in w for w in info["warnings"])


def test_no_change_rebuild_does_no_stage_work(shared, content, tmp_path):
    report = quiet_build(content, tmp_path / "site", shared["cache"])
    assert ran(report) == set()
    assert set(statuses(report).values()) <= {"cached", "skipped"}
    assert statuses(report)["render"] == "cached"


def test_page_edit_reruns_render_only(shared, content, tmp_path):
    quiet_build(content, tmp_path / "site", shared["cache"])
    page = content / EDIT_PAGE
    page.write_text(page.read_text() + "\nA new paragraph about crawling.\n")
    report = quiet_build(content, tmp_path / "site", shared["cache"])
    assert ran(report) == {"render"}
    assert "A new paragraph about crawling." in (tmp_path / "site" / page.stem / "index.html").read_text()


def test_sample_size_change_reruns_the_map_stages_but_not_stats(shared, content, tmp_path):
    edit_config(content, f"size = {SAMPLE_SIZE}", f"size = {SAMPLE_SIZE - 20}")
    report = quiet_build(content, tmp_path / "site", shared["cache"])
    # The caption model for the browser follows the map (when the map was embedded with it).
    browser_model = {"textmodel"} if statuses(shared["report"])["textmodel"] != "skipped" else set()
    assert ran(report) == MAP_STAGES | browser_model
    assert statuses(report)["stats"] == "cached"
    assert report.info["sample_rows"] == SAMPLE_SIZE - 20
    # The map's search index is published beside its data and covers the new sample.
    index = json.loads((tmp_path / "site" / "map" / "data" / "search" / "index.json").read_text())
    assert index["docs"] == SAMPLE_SIZE - 20
    why = {r.name: r.reason for r in report.results}
    assert "sample" in why["sample"] and "upstream sample" in why["embed"]


def test_artist_list_change_reruns_stats_and_render(shared, content, tmp_path):
    (content / "artists.txt").write_text("Greg Rutkowski\nAlphonse Mucha\nClaude Monet\n")
    report = quiet_build(content, tmp_path / "site", shared["cache"])
    assert ran(report) == {"stats", "render"}
    assert "artists" in next(r.reason for r in report.results if r.name == "stats")


def test_explain_says_what_would_run_and_why_without_building(shared, content, tmp_path):
    edit_config(content, r"n_neighbors = \d+", "n_neighbors = 12")
    out = tmp_path / "site"
    result = CliRunner().invoke(
        main, ["build", "--content", str(content), "--out", str(out), "--cache-dir", str(shared["cache"]), "--explain"],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "would run" in lines["project"] and "project" in lines["project"]
    assert "cached" in lines["embed"] and "cached" in lines["stats"]
    assert "would run" in lines["mapdata"] and "upstream project" in lines["mapdata"]
    assert not out.exists()


def test_cli_build_prints_a_summary_with_rows_size_and_warnings(shared, content, tmp_path):
    result = CliRunner().invoke(
        main, ["build", "--content", str(content), "--out", str(tmp_path / "site"), "--cache-dir", str(shared["cache"])],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert re.search(rf"[\d,]+ rows · {SAMPLE_SIZE} on the map · site [\d.]+ MB", result.output)
    assert "demo data" in result.output and "warning(s)" in result.output
    assert "Traceback" not in result.output


def test_cache_dir_from_the_environment(shared, content, tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(shared["cache"]))
    report = quiet_build(content, tmp_path / "site", None)
    assert ran(report) == set()


def test_a_site_near_the_pages_limit_is_a_warning(tmp_path):
    from types import SimpleNamespace

    from atlas.build import build_warnings
    from atlas.core.report import Warnings

    ctx = SimpleNamespace(demo=False, outputs={}, content_dir=tmp_path, summary=lambda stage: None)
    assert build_warnings(ctx, Warnings(), 500_000_000) == []
    (warning,) = build_warnings(ctx, Warnings(), 950_000_000)
    assert "950 MB" in warning and "1 GB" in warning


def test_a_cached_stage_reports_the_warnings_it_raised_when_it_ran(tmp_path):
    """A warning raised by a stage's work (say, an empty sample) is part of its output: the next
    build, which reuses the output, reports it again in its summary and build.json."""
    from atlas.core.cache import Cache
    from atlas.core.config import AtlasConfig
    from atlas.core.pipeline import BuildContext, Stage, run_stages
    from atlas.core.report import Reporter

    runs = []

    def work(ctx, folder):
        runs.append(1)
        (folder / "out.txt").write_text("x")
        ctx.reporter.warn("data", "the sample is empty")

    stage = Stage("toy", "1", lambda ctx: {}, work)

    def build_once():
        reporter = Reporter(quiet=True)
        ctx = BuildContext(AtlasConfig(), tmp_path, Cache(tmp_path / "cache"), reporter)
        return run_stages([stage], ctx)[0].status, reporter.warnings.items()

    assert build_once() == ("ran", [("data", "the sample is empty")])
    assert build_once() == ("cached", [("data", "the sample is empty")])
    assert len(runs) == 1
