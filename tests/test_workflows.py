"""The GitHub workflows: valid YAML, Pages deployment done the documented way, CI runs .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"


def _load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _uses(workflow: dict) -> dict[str, dict]:
    return {step["uses"].split("@")[0]: step for step in _steps(workflow) if "uses" in step}


def _runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


@pytest.fixture(scope="module")
def pages() -> dict:
    return _load("pages.yml")


def test_pages_workflow_deploys_with_the_pages_actions(pages):
    uses = _uses(pages)
    for action in ("actions/checkout", "actions/configure-pages", "actions/upload-pages-artifact",
                   "actions/deploy-pages", "actions/cache"):
        assert action in uses, action
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "build/site"
    assert pages["permissions"]["pages"] == "write" and pages["permissions"]["id-token"] == "write"
    assert pages["concurrency"]["group"] and pages["concurrency"]["cancel-in-progress"] is False
    deploy = pages["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert "push" in pages["on"] and "workflow_dispatch" in pages["on"]


def test_pages_workflow_runs_the_readme_build_command_with_the_pages_base_url(pages):
    build = next(step for step in _steps(pages) if re.search(r"^atlas build\b", step.get("run", ""), re.M))
    assert "--out build/site" in build["run"]
    assert build["env"]["ATLAS_BASE_URL"] == "${{ steps.pages.outputs.base_url }}"
    assert next(s for s in _steps(pages) if s.get("uses", "").startswith("actions/configure-pages"))["id"] == "pages"
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    assert "atlas build" in readme.read_text()


def test_pages_workflow_caches_the_stage_cache_the_build_uses(pages):
    cache = _uses(pages)["actions/cache"]
    build = next(step for step in _steps(pages) if "atlas build" in step.get("run", ""))
    assert cache["with"]["path"] == build["env"]["ATLAS_CACHE_DIR"]
    assert "content/**" in cache["with"]["key"] and "hashFiles" in cache["with"]["key"]


def test_pages_workflow_installs_without_a_cuda_torch(pages):
    install = _runs(pages)
    assert "pip install" in install
    assert "[ml]" not in install or "download.pytorch.org/whl/cpu" in install


def test_ci_workflow_runs_the_ci_script():
    ci = _load("ci.yml")
    assert "bash .ci/run" in _runs(ci)
    assert "pull_request" in ci["on"] and "push" in ci["on"]
    assert "actions/checkout" in _uses(ci)
