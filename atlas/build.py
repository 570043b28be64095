"""``atlas build``, top to bottom: config -> sources -> stages (cached) -> atomic publish.

The stages, in order: demo shards (only without data) -> statistics -> sample -> embed ->
project -> map data -> render. A failed build raises before anything touches ``--out``; a
successful one swaps the new site in with two renames, so readers never see half a site.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from atlas import __version__
from atlas.cache import Cache
from atlas.config import AtlasConfig, load_config
from atlas.data import resolve_sources
from atlas.demo import DEFAULT_ROWS, DEFAULT_SHARDS, GENERATOR_VERSION, write_demo_shards
from atlas.errors import AtlasError
from atlas.pipeline import BuildContext, Stage, StageResult, run_stages
from atlas.report import Reporter

MARKER = ".atlas-site"


def _demo_run(ctx: BuildContext, folder: Path) -> dict:
    paths = write_demo_shards(folder, DEFAULT_ROWS, DEFAULT_SHARDS, seed=0)
    return {"rows": DEFAULT_ROWS, "shards": len(paths)}


DEMO_STAGE = Stage(
    "demo",
    "1",
    lambda ctx: {"rows": DEFAULT_ROWS, "shards": DEFAULT_SHARDS, "generator": GENERATOR_VERSION},
    _demo_run,
    enabled=lambda ctx: ctx.demo,
    description="deterministic LAION-shaped demo shards",
)


def stages() -> list[Stage]:
    """The build's stages in order."""
    import importlib

    found = [DEMO_STAGE]
    for name in ("stats", "sample", "embed", "project", "mapdata", "render"):
        try:  # TODO(lead): plain imports once the map stages have landed
            found.append(importlib.import_module(f"atlas.stages.{name}").STAGE)
        except (ModuleNotFoundError, AttributeError):
            pass
    return found


def default_cache_dir(out: Path) -> Path:
    env = os.environ.get("ATLAS_CACHE_DIR")
    if env:
        return Path(env)
    return Path("build") / "cache"


@dataclass
class BuildReport:
    out: Path
    results: list[StageResult]
    warnings: list[str] = field(default_factory=list)
    published: bool = False
    seconds: float = 0.0
    site_bytes: int = 0
    info: dict = field(default_factory=dict)


def make_context(
    content_dir: Path,
    data: list[str] | None,
    cache_dir: Path | None,
    reporter: Reporter,
    out: Path,
    config: AtlasConfig | None = None,
) -> BuildContext:
    content_dir = Path(content_dir)
    config = config or load_config(content_dir)
    if data:  # --data: paths relative to where the command runs
        sources = resolve_sources(list(data), Path.cwd())
    else:  # [data] sources: relative to the content folder
        sources = resolve_sources(config.data.sources, content_dir)
    cache = Cache(cache_dir or default_cache_dir(out))
    return BuildContext(config=config, content_dir=content_dir, cache=cache, reporter=reporter, sources=sources)


def build(
    content_dir: Path = Path("content"),
    out: Path = Path("build/site"),
    data: list[str] | None = None,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    explain: bool = False,
) -> BuildReport:
    """Build the site into ``out``; with ``explain`` only say which stages would run and why."""
    started = time.perf_counter()
    reporter = reporter or Reporter()
    out = Path(out)
    check_out_dir(out)
    ctx = make_context(content_dir, data, cache_dir, reporter, out)
    results = run_stages(stages(), ctx, explain_only=explain)
    report = BuildReport(out, results, reporter.warnings)
    if explain:
        return report
    render = ctx.results["render"]
    info = {
        "atlas": __version__,
        "demo": ctx.demo,
        "source": "generated demo shards" if ctx.demo else [s.location for s in ctx.sources],
        "rows": (ctx.summary("stats") or {}).get("rows"),
        "render_key": render.key,
        "stages": {r.name: {"status": r.status, "seconds": round(r.seconds, 3)} for r in results},
    }
    report.published = publish(render.path, out, info)
    report.info = info
    report.site_bytes = site_size(out)
    report.seconds = time.perf_counter() - started
    return report


def site_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def check_out_dir(out: Path) -> None:
    """Refuse to replace a folder that is not an atlas site (say, --out pointed at a home folder)."""
    if out.exists() and not out.is_dir():
        raise AtlasError(f"--out {out} is a file, not a folder", hint="Choose a folder for the site.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise AtlasError(
            f"--out {out} already holds files that atlas did not write",
            hint="atlas replaces its output folder whole; choose an empty or new folder (default build/site).",
        )
    resolved = out.resolve()
    if resolved == Path.cwd().resolve() or resolved == Path.home().resolve() or resolved.parent == resolved:
        raise AtlasError(f"--out {out} would replace the current, home or root folder", hint="Choose a sub-folder.")


def publish(site: Path, out: Path, info: dict) -> bool:
    """Copy the rendered site to ``out`` atomically; False when ``out`` already is that site."""
    marker = out / MARKER
    if marker.exists() and marker.read_text().strip() == info["render_key"]:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a published site is world-readable
    try:
        shutil.copytree(site, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_manifest.json", "_summary.json"))
        data = tmp / "data"
        data.mkdir(exist_ok=True)
        stamped = dict(info, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (data / "build.json").write_text(json.dumps(stamped, indent=1))
        (tmp / MARKER).write_text(info["render_key"] + "\n")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return True
