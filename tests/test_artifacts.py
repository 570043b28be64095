"""Committed GPU artifacts: exported once, reused by a machine that cannot run the stages,
reported (or, under --frozen, refused) when they no longer match the configuration."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from helpers.builds import content_copy, quiet_build, ran, statuses
from helpers.content import edit_config
from atlas.core.artifacts import ArtifactError
from atlas.cli import main


@pytest.fixture
def exported(shared, tmp_path):
    """A content folder with the embed/project outputs of the shared build committed."""
    content = content_copy(shared, tmp_path / "content")
    report = quiet_build(content, tmp_path / "site", shared["cache"], export_artifacts=True)
    assert report.exported == {"embed": "exported", "project": "exported"}
    return content


def _no_gpu_cache(shared, target):
    """A cache like a CI machine's: the CPU stages' entries, none of the GPU stages'."""
    for stage in ("demo", "stats", "bias", "sample"):
        shutil.copytree(shared["cache"] / stage, target / stage)
    return target


def test_export_writes_the_outputs_with_a_fingerprint(exported):
    for stage, name in (("embed", "embeddings.npy"), ("project", "coords.npy")):
        folder = exported / "artifacts" / stage
        record = json.loads((folder / "fingerprint.json").read_text())
        assert (folder / name).is_file() and name in record["files"]
        assert record["stage"] == stage and len(record["key"]) == 64
        assert "inputs" in record and "upstream" in record["portable"]


def test_a_machine_without_the_gpu_stages_builds_from_the_artifacts(shared, exported, tmp_path, monkeypatch):
    from atlas.stages import embed, project

    def no_gpu_here(ctx, folder):
        raise AssertionError("the stage ran although a matching artifact was committed")

    monkeypatch.setattr(embed.STAGE, "run", no_gpu_here)
    monkeypatch.setattr(project.STAGE, "run", no_gpu_here)
    cache = _no_gpu_cache(shared, tmp_path / "ci-cache")
    report = quiet_build(exported, tmp_path / "ci-site", cache, frozen=True)
    assert statuses(report)["embed"] == "artifact" and statuses(report)["project"] == "artifact"
    # The CPU stages after them run again; so does the browser's copy of the caption model when
    # the map was embedded with it (it is made from the embed stage's model, not committed).
    text_map = embed.read(next(r.path for r in report.results if r.name == "embed")).method == "text"
    assert ran(report) == {"mapdata", "search", "prompt_captions", "render"} | ({"textmodel"} if text_map else set())
    committed = (exported / "artifacts" / "embed" / "embeddings.npy").read_bytes()
    used = next(r.path for r in report.results if r.name == "embed") / "embeddings.npy"
    assert used.read_bytes() == committed
    assert (tmp_path / "ci-site" / "map" / "index.html").is_file()
    # The next build takes them from the cache.
    again = quiet_build(exported, tmp_path / "ci-site", cache, frozen=True)
    assert ran(again) == set()


def test_frozen_build_with_a_stale_artifact_fails_saying_what_changed(exported, shared, tmp_path):
    edit_config(exported, "n_neighbors = 15", "n_neighbors = 10")
    with pytest.raises(ArtifactError) as caught:
        quiet_build(exported, tmp_path / "new-site", shared["cache"], frozen=True)
    message = str(caught.value)
    assert "artifacts/project" in message and "[project] n_neighbors: 15 -> 10" in message
    assert "atlas build --export-artifacts" in message
    assert not (tmp_path / "new-site").exists()

    result = CliRunner().invoke(
        main,
        ["build", "--content", str(exported), "--out", str(tmp_path / "site"), "--cache-dir", str(shared["cache"]),
         "--frozen"],
    )
    assert result.exit_code == 2
    assert "artifact error" in result.output and "n_neighbors: 15 -> 10" in result.output
    assert "Traceback" not in result.output


def test_a_stale_artifact_without_frozen_warns_and_falls_back_to_the_cpu(exported, shared, tmp_path):
    edit_config(exported, "n_neighbors = 15", "n_neighbors = 10")
    report = quiet_build(exported, tmp_path / "site", _no_gpu_cache(shared, tmp_path / "ci-cache"))
    assert statuses(report)["embed"] == "artifact"  # still matches: the sample did not change
    assert statuses(report)["project"] == "ran"
    stale = [w for w in report.warnings if "no longer matches" in w]
    assert len(stale) == 1 and "n_neighbors" in stale[0]
    published = json.loads((tmp_path / "site" / "data" / "build.json").read_text())
    assert stale[0] in published["warnings"]


def test_a_new_sample_makes_the_embeddings_stale(exported, shared, tmp_path):
    edit_config(exported, r"seed = \d+", "seed = 4242")
    with pytest.raises(ArtifactError, match=r"artifacts/embed .*the sample stage's output changed"):
        quiet_build(exported, tmp_path / "site", shared["cache"], frozen=True)


def test_frozen_without_committed_artifacts_fails(shared, tmp_path):
    content = content_copy(shared, tmp_path / "content")
    with pytest.raises(ArtifactError, match="--frozen needs a committed artifact for the embed stage"):
        quiet_build(content, tmp_path / "site", shared["cache"], frozen=True)


def test_a_tampered_artifact_is_refused(shared, exported, tmp_path):
    target = exported / "artifacts" / "embed" / "embeddings.npy"
    target.write_bytes(target.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="does not match its fingerprint.json"):
        quiet_build(exported, tmp_path / "site", _no_gpu_cache(shared, tmp_path / "ci-cache"))
