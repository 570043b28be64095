"""The workshop prompts, read from ``content/prompts.toml`` into typed, validated records.

Two kinds of entries: explicit ``[[prompt]]`` tables, and one ``[bias]`` table that expands a
template (``"Photo portrait of {occupation}"``) over a list of occupations, all with the same
seeds, for the bias grid. Every problem names the prompt and the key, in the same words as
atlas.toml's, e.g. ``prompts.toml [[prompt]] id="dog": unknown key sedes — did you mean seeds?``;
duplicate ids are an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from atlas.core.problems import problems_message, validation_problems
from atlas.core.errors import ContentError
from atlas.core.tomlfile import read_toml

PROMPTS_NAME = "prompts.toml"
PAGES = ("stable-diffusion", "bias")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
#: Seeds given as a count n mean 0..n-1; more than this is surely a typo.
MAX_SEEDS = 64


def _seeds(value: list[int] | int) -> list[int]:
    if isinstance(value, bool):
        raise ValueError("must be a list of seeds or a count")
    if isinstance(value, int):
        if not 1 <= value <= MAX_SEEDS:
            raise ValueError(f"a seed count must be between 1 and {MAX_SEEDS}")
        return list(range(value))
    if not value:
        raise ValueError("must list at least one seed")
    if len(value) > MAX_SEEDS:
        raise ValueError(f"at most {MAX_SEEDS} seeds")
    if len(set(value)) != len(value):
        raise ValueError("lists a seed twice")
    for seed in value:
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed {seed} must be between 0 and 2**63-1")
    return list(value)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    @field_validator("seeds", mode="before", check_fields=False)
    @classmethod
    def _check_seeds(cls, value):
        if isinstance(value, (int, list)):
            return _seeds(value)
        raise ValueError("must be a list of seeds or a count")


class PromptEntry(_Entry):
    """One ``[[prompt]]`` table."""

    id: str
    prompt: str = Field(min_length=1, max_length=1000)
    page: Literal["stable-diffusion", "bias"] = "stable-diffusion"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3])
    negative: str = Field("", max_length=1000)
    label: str = ""
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0.0, le=50.0)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be lower-case letters, digits and dashes (it names a folder)")
        return value


class BiasEntry(_Entry):
    """The ``[bias]`` table: one prompt per occupation."""

    template: str = "Photo portrait of {occupation}"
    occupations: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: list(range(6)))
    negative: str = Field("", max_length=1000)
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0.0, le=50.0)

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{occupation}" not in value:
            raise ValueError("must contain {occupation}")
        return value

    @field_validator("occupations")
    @classmethod
    def _check_occupations(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip():
                raise ValueError("an occupation is empty")
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: list[dict] = Field(default_factory=list)
    bias: dict | None = None


@dataclass(frozen=True)
class Prompt:
    """A prompt to render at each of its seeds; ``label`` names a bias-grid row."""

    id: str
    prompt: str
    page: str
    seeds: tuple[int, ...]
    negative: str = ""
    label: str = ""
    steps: int | None = None
    guidance: float | None = None


def occupation_id(occupation: str) -> str:
    """``"a software engineer"`` -> ``"bias-software-engineer"``."""
    words = re.findall(r"[a-z0-9]+", occupation.lower())
    if len(words) > 1 and words[0] in ("a", "an", "the"):
        words = words[1:]
    return "bias-" + "-".join(words)[:70]


def _validate(model: type[_Entry], data: dict, source: str, where: str):
    """The entry, or a ContentError in the same words as atlas.toml's (one formatter for both)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ContentError(problems_message(validation_problems(error, model)), where=f"{source} {where}") from None


def parse_prompts(data: dict, source: str = PROMPTS_NAME) -> list[Prompt]:
    """Validate the parsed TOML; raise :class:`ContentError` naming the prompt and key."""
    try:
        top = _File.model_validate(data)
    except ValidationError as error:
        raise ContentError(problems_message(validation_problems(error, _File)), where=source) from None
    prompts: list[Prompt] = []
    for index, raw in enumerate(top.prompt, start=1):
        name = raw.get("id")
        where = f'[[prompt]] id="{name}"' if isinstance(name, str) else f"[[prompt]] #{index}"
        entry = _validate(PromptEntry, raw, source, where)
        prompts.append(
            Prompt(
                id=entry.id,
                prompt=entry.prompt,
                page=entry.page,
                seeds=tuple(entry.seeds),
                negative=entry.negative,
                label=entry.label,
                steps=entry.steps,
                guidance=entry.guidance,
            )
        )
    if top.bias is not None:
        bias = _validate(BiasEntry, top.bias, source, "[bias]")
        for occupation in bias.occupations:
            prompts.append(
                Prompt(
                    id=occupation_id(occupation),
                    prompt=bias.template.replace("{occupation}", occupation.strip()),
                    page="bias",
                    seeds=tuple(bias.seeds),
                    negative=bias.negative,
                    label=occupation.strip(),
                    steps=bias.steps,
                    guidance=bias.guidance,
                )
            )
    seen: dict[str, Prompt] = {}
    for prompt in prompts:
        if prompt.id in seen:
            raise ContentError(
                f'prompt id "{prompt.id}" is used twice ("{seen[prompt.id].prompt}" and "{prompt.prompt}")',
                where=source,
                hint="Give each prompt its own id: it names the folder its images are written to.",
            )
        seen[prompt.id] = prompt
    return prompts


def prompts_path(content_dir: Path) -> Path:
    return Path(content_dir) / PROMPTS_NAME


def load_prompts(content_dir: Path, missing_ok: bool = False) -> list[Prompt]:
    """Read ``<content_dir>/prompts.toml``; a missing file is an error unless ``missing_ok``."""
    path = prompts_path(content_dir)
    if not path.exists():
        if missing_ok:
            return []
        raise ContentError(
            f"{path} does not exist",
            hint="Write the workshop prompts there ([[prompt]] tables with id, prompt, page, seeds).",
        )
    return parse_prompts(read_toml(path, ContentError), str(path))
