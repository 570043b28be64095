"""The build as an ordered list of stages, each cached by a fingerprint of what it depends on.

A stage is a name, a code version, a function that returns the inputs it depends on (config
sections, shard list, content files...) and a function that writes its outputs into a folder.
Its cache key hashes its name, version, inputs and the keys of the stages before it that it
reads, so changing the sample size re-runs sample -> embed -> project -> render but not stats.
The runner logs each stage as ran or cached, with the reason (Observable Framework's
``[fresh]``/``[stale]``/``[missing]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.cache import Cache, _canonical, fingerprint
from atlas.config import AtlasConfig
from atlas.report import Reporter


@dataclass
class Stage:
    name: str
    #: Bump when the stage's code changes what it writes, so old cache entries are not reused.
    version: str
    #: What the output depends on, besides upstream stages: JSON-able values.
    inputs: Callable[["BuildContext"], dict]
    #: Writes the outputs into the given folder; may return a small JSON-able summary.
    run: Callable[["BuildContext", Path], Any]
    #: Names of earlier stages whose outputs this one reads.
    after: tuple[str, ...] = ()
    #: When False the stage is skipped (e.g. no images to generate).
    enabled: Callable[["BuildContext"], bool] = lambda ctx: True
    description: str = ""


@dataclass
class StageResult:
    name: str
    status: str  # "ran", "cached" or "skipped"
    reason: str
    seconds: float = 0.0
    key: str = ""
    path: Path | None = None
    summary: Any = None


@dataclass
class BuildContext:
    config: AtlasConfig
    content_dir: Path
    cache: Cache
    reporter: Reporter
    #: Resolved data sources (see atlas.data.resolve_sources); empty means the demo.
    sources: list = field(default_factory=list)
    #: Output folder of each stage that has run or was found in the cache.
    outputs: dict[str, Path] = field(default_factory=dict)
    results: dict[str, StageResult] = field(default_factory=dict)
    #: Free-form flags from the command line (e.g. ``frozen``).
    options: dict[str, Any] = field(default_factory=dict)

    def output(self, stage: str) -> Path:
        return self.outputs[stage]

    @property
    def demo(self) -> bool:
        """True when no data is configured and the build uses the generated demo shards."""
        return not self.sources

    def shard_sources(self) -> list:
        """The shards to read: the configured ones, or the demo stage's output."""
        if self.sources:
            return self.sources
        from atlas.data import resolve_sources

        return resolve_sources([str(self.output("demo") / "*.parquet")], self.content_dir)

    def sources_fingerprint(self) -> list:
        """What identifies the data (paths, sizes, mtimes); the demo is keyed by its stage."""
        return [source.fingerprint() for source in self.sources]

    def open_rows(self, threads: int | None = None):
        """A DuckDB connection with the view ``rows`` over the shards (see atlas.data)."""
        from atlas.data import open_rows

        return open_rows(self.shard_sources(), self.config.data, threads=threads)

    def summary(self, stage: str) -> Any:
        result = self.results.get(stage)
        return None if result is None else result.summary


def stage_key(stage: Stage, ctx: BuildContext) -> tuple[str, dict]:
    inputs = {
        "stage": stage.name,
        "version": stage.version,
        "inputs": stage.inputs(ctx),
        "upstream": {name: ctx.results[name].key for name in stage.after if name in ctx.results},
    }
    return fingerprint(inputs), inputs


def _why(previous: dict | None, inputs: dict) -> str:
    """Say which inputs differ from the last time the stage ran."""
    if previous is None:
        return "never built"
    before, now = previous.get("inputs", {}), _canonical(inputs)
    changed = []
    if before.get("version") != now.get("version"):
        changed.append("stage code version")
    for group in ("inputs", "upstream"):
        old, new = before.get(group, {}) or {}, now.get(group, {}) or {}
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                changed.append(f"{name}" if group == "inputs" else f"upstream {name}")
    return ("changed: " + ", ".join(changed)) if changed else "output missing or damaged"


def run_stages(stages: list[Stage], ctx: BuildContext, explain_only: bool = False) -> list[StageResult]:
    """Run (or, with ``explain_only``, just plan) the stages in order."""
    results = []
    for stage in stages:
        if not stage.enabled(ctx):
            result = StageResult(stage.name, "skipped", "not needed for this build")
            ctx.results[stage.name] = result
            results.append(result)
            continue
        key, inputs = stage_key(stage, ctx)
        cached = ctx.cache.get(stage.name, key)
        summary_path = cached / "_summary.json" if cached else None
        if cached is not None:
            summary = _read_summary(summary_path)
            result = StageResult(stage.name, "cached", "inputs unchanged", 0.0, key, cached, summary)
        elif explain_only:
            reason = _why(ctx.cache.last_inputs(stage.name), inputs)
            result = StageResult(stage.name, "would run", reason, 0.0, key)
        else:
            reason = _why(ctx.cache.last_inputs(stage.name), inputs)
            ctx.reporter.info(f"[{stage.name}] running ({reason})")
            started = time.perf_counter()

            def build(folder: Path, stage=stage):
                summary = stage.run(ctx, folder)
                if summary is not None:
                    _write_summary(folder / "_summary.json", summary)
                return summary

            path, summary = ctx.cache.put(stage.name, key, build)
            ctx.cache.remember_inputs(stage.name, key, inputs)
            result = StageResult(stage.name, "ran", reason, time.perf_counter() - started, key, path, summary)
        ctx.results[stage.name] = result
        if result.path is not None:
            ctx.outputs[stage.name] = result.path
        results.append(result)
    return results


def _write_summary(path: Path, summary: Any) -> None:
    import json

    path.write_text(json.dumps(_canonical(summary), indent=1))


def _read_summary(path: Path | None) -> Any:
    import json

    if path is None or not path.exists():
        return None
    return json.loads(path.read_text())
