"""The ``atlas`` command: a thin layer that parses arguments, calls one function, prints.

Every :class:`~atlas.core.errors.AtlasError` is printed as one paragraph and exits with status 2;
other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from atlas import __version__
from atlas.core.errors import AtlasError
from atlas.core.report import Reporter
from atlas.core.settings import Settings


@dataclass
class App:
    """What every command gets: the one reporter and the environment's settings (read once)."""

    reporter: Reporter
    settings: Settings


def _fail(error: AtlasError) -> None:
    click.echo(f"atlas: {error.title}: {error}", err=True)
    sys.exit(2)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AtlasError as error:
            _fail(error)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="atlas")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Print debug logs.")
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Build a browsable atlas of LAION from parquet shards and Markdown."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    ctx.obj = App(Reporter(quiet=quiet, ci=settings.ci), settings)


CONTENT = click.option(
    "--content", type=click.Path(path_type=Path), default=Path("content"), show_default=True, help="Content folder."
)
DATA = click.option(
    "--data",
    "data",
    multiple=True,
    help="Parquet shard path or glob (local, https://, hf://, s3://); repeat for more. Replaces [data] sources.",
)


CACHE_DIR = click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None, help="Stage cache folder [default: $ATLAS_CACHE_DIR or build/cache]."
)


def _summary_table(report) -> None:
    """Stages (ran / cached / artifact, time, why), then rows, site size and warnings."""
    from rich.table import Table

    reporter: Reporter = click.get_current_context().obj.reporter
    if reporter.quiet:
        return
    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("why")
    for result in report.results:
        table.add_row(result.name, result.status, f"{result.seconds:.1f}s" if result.seconds else "", result.reason)
    reporter.console.print(table)
    info = report.info
    if info:
        rows = info.get("rows")
        sample = info.get("sample_rows")
        parts = [f"{rows:,} rows" if rows is not None else None, f"{sample:,} on the map" if sample else None,
                 f"site {report.site_bytes / 1e6:.1f} MB of GitHub Pages' 1 GB", info.get("embedder")]
        reporter.info(" · ".join(p for p in parts if p))
        screened = info.get("generated_images")
        if screened:
            reporter.info(
                f"generated images: {screened['images']} screened by {screened['classifier'] or 'no classifier'} "
                f"(threshold {screened['threshold']}), {screened['withheld']} withheld as flagged, "
                f"{screened['unscreened']} withheld as unscreened, "
                f"{screened.get('withheld_when_generated', 0)} withheld when generated"
            )
        if info.get("images_fetch"):
            from atlas.fetch.runner import summary_line

            reporter.info(summary_line(info["images_fetch"]))
    for stage, state in report.exported.items():
        reporter.info(f"artifact {stage}: {state} in {report.artifacts_dir / stage} (commit it)")
    if report.warnings:
        reporter.info(f"{len(report.warnings)} warning(s):")
        for warning in report.warnings:
            reporter.info(f"  - {warning}")


@main.command()
@CONTENT
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/site"), show_default=True, help="Output folder.")
@DATA
@CACHE_DIR
@click.option("--explain", is_flag=True, help="Say which stages would run and why; build nothing.")
@click.option("--frozen", is_flag=True, help="Fail unless the GPU stages (embed, project) come from matching committed artifacts.")
@click.option("--export-artifacts", is_flag=True, help="Copy the GPU stages' outputs into CONTENT/artifacts/ to commit.")
@click.pass_obj
def build(
    app: App,
    content: Path,
    out: Path,
    data: tuple[str, ...],
    cache_dir: Path | None,
    explain: bool,
    frozen: bool,
    export_artifacts: bool,
) -> None:
    """Build the site into --out (the embedded demo when no data is configured)."""
    from atlas.build import build as run_build

    reporter = app.reporter
    report = run_build(
        content, out, list(data) or None, cache_dir, reporter, explain=explain, frozen=frozen,
        export_artifacts=export_artifacts, settings=app.settings,
    )
    _summary_table(report)
    if explain:
        return
    state = "published" if report.published else "already up to date"
    reporter.info(f"site {state} in {out} after {report.seconds:.1f}s")
    reporter.info(f"preview it: atlas serve --content {content} (or python -m http.server -d {out})")


@main.command()
@CONTENT
@DATA
@CACHE_DIR
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (localhost only by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free port).")
@click.pass_obj
def serve(app: App, content: Path, data: tuple[str, ...], cache_dir: Path | None, host: str, port: int) -> None:
    """Build, serve the site locally and rebuild + reload the browser when content or theme change."""
    from atlas.serve import serve as run_serve

    run_serve(content, host=host, port=port, data=list(data) or None, cache_dir=cache_dir, reporter=app.reporter,
              settings=app.settings)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.pass_obj
def new(app: App, directory: Path) -> None:
    """Create a new content folder DIRECTORY from the default atlas, to make your own."""
    from atlas.scaffold import new_content

    reporter = app.reporter
    written = new_content(directory)
    reporter.info(f"created {directory} ({len(written)} files). Next: edit {directory}/atlas.toml, then")
    reporter.info(f"  atlas serve --content {directory}")


@main.command()
@click.option(
    "--content",
    "content_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("content"),
    show_default=True,
    help="Content folder with prompts.toml; images go to its generated/ folder.",
)
@click.option("--model", default=None, help="A diffusers model folder, or a hub id (needs network). Default: [generate] model.")
@click.option("--force", is_flag=True, help="Regenerate every image, even those whose recipe is unchanged.")
@click.option("--prompt", "prompt_ids", multiple=True, help="Only this prompt id (repeatable).")
@click.pass_obj
def generate(app: App, content_dir: Path, model: str | None, force: bool, prompt_ids: tuple[str, ...]) -> None:
    """Generate the Stable Diffusion examples of prompts.toml (needs diffusers; a GPU is best)."""
    from atlas.commands.generate import generate as run_generate

    summary = run_generate(content_dir, model, force, app.reporter, prompt_ids=prompt_ids, settings=app.settings)
    app.reporter.info(
        f"{summary['generated']} generated, {summary['skipped']} up to date, "
        f"{summary['withheld']} withheld ({summary['flagged']} of {summary['screened']} screened flagged by "
        f"{summary['classifier']} at {summary['threshold']}); model {summary['model']} (licence: {summary['licence']})"
    )


@main.command()
@DATA
@CONTENT
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the statistics JSON here.")
@click.pass_obj
def stats(app: App, data: tuple[str, ...], content: Path, json_path: Path | None) -> None:
    """Run only the statistics stage and print (or write) the JSON the site publishes."""
    from atlas.core.config import AtlasConfig, load_config
    from atlas.data.policy import load_policy
    from atlas.data.sources import select_sources
    from atlas.core.cache import write_atomic
    from atlas.stages.stats import run_stats, stats_json

    config = load_config(content) if content.is_dir() else AtlasConfig()
    if not data and not config.data.sources:
        raise AtlasError("atlas stats needs data", hint="Pass --data 'shards/*.parquet' or set [data] sources.")
    sources = select_sources(list(data), config.data.sources, content)
    policy = load_policy(config.data, content if content.is_dir() else None)  # once, as a build does
    result, _, _, _ = run_stats(sources, config.data, content, app.reporter, app.settings, policy=policy)
    text = stats_json(result)
    if json_path:
        try:
            write_atomic(json_path, text)
        except OSError as error:  # a folder, a file in the way, no permission, a full disk
            raise AtlasError(f"cannot write --json {json_path}: {error.strerror or error}", where="atlas stats",
                             hint="Give the name of a file in a folder you may write to, e.g. stats.json.") from None
        app.reporter.info(f"wrote {json_path}: {result['rows']:,} rows, {result['distinct_domains']:,} domains")
    else:
        click.echo(text)


if __name__ == "__main__":
    main()
