"""The build as an ordered list of stages, each cached by a fingerprint of what it depends on.

A stage is a name, a code version, a function that returns the inputs it depends on (config
sections, shard list, content files...) and a function that writes its outputs into a folder.
Its cache key hashes its name, version, inputs and the keys of the stages before it that it
reads, so changing the sample size re-runs sample -> embed -> project -> mapdata -> render but
not stats.
The runner logs each stage as ran or cached, with the reason (Observable Framework's
``[fresh]``/``[stale]``/``[missing]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.core.cache import SUMMARY, WARNINGS, Cache, canonical, fingerprint
from atlas.core.config import AtlasConfig
from atlas.core.report import Reporter
from atlas.core.settings import Settings


#: Settings that change how a stage runs on a machine, not what it makes.
MACHINE_KEYS = frozenset({"device", "batch_size", "engine", "distributor"})


def machine_free(inputs: Any) -> Any:
    """Inputs without the settings of :data:`MACHINE_KEYS`, at any depth (the default rule)."""
    value = canonical(inputs)
    if isinstance(value, dict):
        return {k: machine_free(v) for k, v in value.items() if k not in MACHINE_KEYS}
    return value


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
    #: Its output may come from a committed artifact made on a GPU machine (see atlas.core.artifacts).
    artifact: bool = False
    #: Its inputs without what differs between machines (devices, local paths, file times):
    #: what an artifact's portable fingerprint compares.
    portable: Callable[[dict], dict] = machine_free
    #: A digest of its output folder, independent of the machine that made it, for the portable
    #: fingerprints of the artifact stages after it; None: the SHA-256 of its files.
    digest: Callable[[Path], str] | None = None


@dataclass
class StageResult:
    name: str
    status: str  # "ran", "cached", "artifact" (committed files used), "skipped" or "would run"
    reason: str
    seconds: float = 0.0
    key: str = ""
    path: Path | None = None
    summary: Any = None
    #: The stage's own inputs (without upstream keys), as fingerprinted.
    inputs: dict | None = None


@dataclass
class BuildContext:
    config: AtlasConfig
    content_dir: Path
    cache: Cache
    reporter: Reporter
    #: Resolved data sources (see atlas.data.sources.resolve_sources); empty means the demo.
    sources: list = field(default_factory=list)
    #: Output folder of each stage that has run or was found in the cache.
    outputs: dict[str, Path] = field(default_factory=dict)
    results: dict[str, StageResult] = field(default_factory=dict)
    #: Free-form flags from the command line (e.g. ``frozen``).
    options: dict[str, Any] = field(default_factory=dict)
    #: Committed GPU artifacts (an :class:`atlas.core.artifacts.ArtifactStore`), or None.
    artifacts: Any = None
    #: The environment, read once at the edge (see atlas.core.settings).
    settings: Settings = field(default_factory=Settings)
    #: What may be shown and which rows are opted out (:class:`atlas.data.policy.Policy`), built
    #: once per build by :func:`atlas.build.context`; stages open rows with it
    #: (:func:`atlas.data.rows.open_build_rows`).
    policy: Any = None

    def output(self, stage: str) -> Path:
        return self.outputs[stage]

    @property
    def demo(self) -> bool:
        """True when no data is configured and the build uses the generated demo shards."""
        return not self.sources

    def sources_fingerprint(self) -> list:
        """What identifies the data (paths, sizes, mtimes); the demo is keyed by its stage."""
        return [source.fingerprint() for source in self.sources]

    def summary(self, stage: str) -> Any:
        result = self.results.get(stage)
        return None if result is None else result.summary


def stage_key(stage: Stage, ctx: BuildContext, own: dict | None = None, artifact: dict | None = None) -> tuple[str, dict]:
    """The cache key of a stage: its name, version, inputs, upstream keys (and committed artifact)."""
    inputs = {
        "stage": stage.name,
        "version": stage.version,
        "inputs": stage.inputs(ctx) if own is None else own,
        "upstream": {name: ctx.results[name].key for name in stage.after if name in ctx.results},
    }
    if artifact is not None:  # only then, so keys of builds without artifacts never change
        inputs["artifact"] = artifact
    return fingerprint(inputs), inputs


def _why(previous: dict | None, inputs: dict) -> str:
    """Say which inputs differ from the last time the stage ran."""
    if previous is None:
        return "never built"
    before, now = previous.get("inputs", {}), canonical(inputs)
    changed = []
    if before.get("version") != now.get("version"):
        changed.append("stage code version")
    if before.get("artifact") != now.get("artifact"):
        changed.append("committed artifact")
    for group in ("inputs", "upstream"):
        old, new = before.get(group, {}) or {}, now.get(group, {}) or {}
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                changed.append(_detail(name, old.get(name), new.get(name)) if group == "inputs" else f"upstream {name}")
    return ("changed: " + ", ".join(changed)) if changed else "output missing or damaged"


def _detail(name: str, old: Any, new: Any) -> str:
    """``sample.size 20000 -> 15000``, ``content (making.md)`` or just ``name``."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return name
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    shown = []
    for key in keys[:3]:
        a, b = old.get(key), new.get(key)
        simple = all(v is None or isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 30) for v in (a, b))
        if simple and not (isinstance(a, str) and len(a) == 64):  # not file digests
            shown.append(f"{name}.{key} {a!r} -> {b!r}" if a is not None and b is not None else f"{name}.{key}")
        else:
            shown.append(key)
    if not shown:
        return name
    more = f", +{len(keys) - 3} more" if len(keys) > 3 else ""
    if all("->" in item or item.startswith(f"{name}.") for item in shown):
        return ", ".join(shown) + more
    return f"{name} ({', '.join(shown)}{more})"


def run_stages(stages: list[Stage], ctx: BuildContext, explain_only: bool = False) -> list[StageResult]:
    """Run (or, with ``explain_only``, just plan) the stages in order.

    A stage is taken from the cache when its key is there; else from a committed artifact
    (``ctx.artifacts``) whose fingerprint matches; else it runs. A stale artifact is a warning,
    or under ``--frozen`` (``ctx.artifacts.frozen``) an error.
    """
    results = []
    for stage in stages:
        if not stage.enabled(ctx):
            result = StageResult(stage.name, "skipped", "not needed for this build")
            ctx.results[stage.name] = result
            results.append(result)
            continue
        own = stage.inputs(ctx)
        # (While explaining, an upstream stage that would run has no output to compare with yet.)
        pending = any(n in ctx.results and ctx.results[n].path is None and ctx.results[n].status != "skipped"
                      for n in stage.after)
        check = None
        if ctx.artifacts is not None and not pending:
            check = ctx.artifacts.check(stage, own, ctx.outputs)
        if check is not None and not check.matches:
            if ctx.artifacts.frozen and not explain_only:
                raise check.error()
            ctx.reporter.warn("artifact", check.message.rstrip(".") + "; falling back to computing the stage on this machine")
        key, inputs = stage_key(stage, ctx, own, check.key_part() if check is not None else None)
        cached = ctx.cache.get(stage.name, key)
        summary_path = cached / SUMMARY if cached else None
        if cached is not None:
            summary = _read_summary(summary_path)
            _replay_warnings(ctx, cached)
            reason = "inputs unchanged" + (f" (from {check.where})" if check is not None and check.matches else "")
            result = StageResult(stage.name, "cached", reason, 0.0, key, cached, summary)
        elif explain_only:
            reason = _why(ctx.cache.last_inputs(stage.name), inputs)
            if check is not None and check.matches:
                result = StageResult(stage.name, "would use artifact", f"{check.where} matches ({reason})", 0.0, key)
            else:
                result = StageResult(stage.name, "would run", reason, 0.0, key)
        elif check is not None and check.matches:
            started = time.perf_counter()
            ctx.reporter.info(f"[{stage.name}] using the committed artifact {check.where}")
            path, _ = ctx.cache.put(stage.name, key, check.copy_into)
            ctx.cache.remember_inputs(stage.name, key, inputs)
            summary = _read_summary(path / SUMMARY)
            _replay_warnings(ctx, path)
            result = StageResult(stage.name, "artifact", f"{check.where} matches", time.perf_counter() - started,
                                 key, path, summary)
        else:
            if (stage.name, key) in ctx.cache.damaged:
                reason = "cached output was damaged (truncated or edited); rebuilding it"
            else:
                reason = _why(ctx.cache.last_inputs(stage.name), inputs)
            ctx.reporter.info(f"[{stage.name}] running ({reason})")
            started = time.perf_counter()

            def build(folder: Path, stage=stage):
                before = set(ctx.reporter.warnings.items())
                summary = stage.run(ctx, folder)
                if summary is not None:
                    _write_summary(folder / SUMMARY, summary)
                raised = [item for item in ctx.reporter.warnings.items() if item not in before]
                if raised:  # kept with the output, so a cached build reports them too
                    _write_summary(folder / WARNINGS, raised)
                return summary

            path, summary = ctx.cache.put(stage.name, key, build)
            ctx.cache.remember_inputs(stage.name, key, inputs)
            result = StageResult(stage.name, "ran", reason, time.perf_counter() - started, key, path, summary)
        result.inputs = own
        ctx.results[stage.name] = result
        if result.path is not None:
            ctx.outputs[stage.name] = result.path
        results.append(result)
    return results


def _replay_warnings(ctx: BuildContext, folder: Path) -> None:
    """Raise again the warnings a reused stage output recorded when it was made."""
    for kind, message in _read_summary(folder / WARNINGS) or []:
        ctx.reporter.warn(kind, message)


def _write_summary(path: Path, summary: Any) -> None:
    import json

    path.write_text(json.dumps(canonical(summary), indent=1))


def _read_summary(path: Path | None) -> Any:
    import json

    if path is None or not path.exists():
        return None
    return json.loads(path.read_text())
