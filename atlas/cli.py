"""The ``atlas`` command: a thin layer that parses arguments, calls one function, prints.

Every :class:`~atlas.errors.AtlasError` is printed as one paragraph and exits with status 2;
other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from atlas import __version__
from atlas.errors import AtlasError
from atlas.report import Reporter


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
    ctx.obj = Reporter(quiet=quiet)


CONTENT = click.option(
    "--content", type=click.Path(path_type=Path), default=Path("content"), show_default=True, help="Content folder."
)
DATA = click.option(
    "--data",
    "data",
    multiple=True,
    help="Parquet shard path or glob (local, https://, hf://, s3://); repeat for more. Replaces [data] sources.",
)


def _summary_table(report) -> None:
    from rich.table import Table

    reporter: Reporter = click.get_current_context().obj
    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("why")
    for result in report.results:
        table.add_row(result.name, result.status, f"{result.seconds:.1f}s" if result.seconds else "", result.reason)
    if not reporter.quiet:
        reporter.console.print(table)


@main.command()
@CONTENT
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/site"), show_default=True, help="Output folder.")
@DATA
@click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None, help="Stage cache folder [default: $ATLAS_CACHE_DIR or build/cache]."
)
@click.option("--explain", is_flag=True, help="Say which stages would run and why; build nothing.")
@click.pass_obj
def build(reporter: Reporter, content: Path, out: Path, data: tuple[str, ...], cache_dir: Path | None, explain: bool) -> None:
    """Build the site into --out (the embedded demo when no data is configured)."""
    from atlas.build import build as run_build

    report = run_build(content, out, list(data) or None, cache_dir, reporter, explain=explain)
    _summary_table(report)
    if explain:
        return
    size = report.site_bytes / 1e6
    state = "published" if report.published else "already up to date"
    reporter.info(f"site {state} in {out} ({size:.1f} MB) after {report.seconds:.1f}s")
    if report.info.get("demo"):
        reporter.info("note: this site shows generated demo data; pass --data or set [data] sources for real shards")
    reporter.info(f"open it: python -m http.server -d {out} 8000, then http://127.0.0.1:8000/")


@main.command()
@DATA
@CONTENT
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write stats.json here.")
@click.pass_obj
def stats(reporter: Reporter, data: tuple[str, ...], content: Path, json_path: Path | None) -> None:
    """Run only the statistics stage and print (or write) the JSON the site publishes."""
    from atlas.config import AtlasConfig, load_config
    from atlas.data import open_rows, resolve_sources
    from atlas.stages.stats import compute_stats, read_artists, stats_json

    config = load_config(content) if content.is_dir() else AtlasConfig()
    if data:
        sources = resolve_sources(list(data), Path.cwd())
    elif config.data.sources:
        sources = resolve_sources(config.data.sources, content)
    else:
        raise AtlasError("atlas stats needs data", hint="Pass --data 'shards/*.parquet' or set [data] sources.")
    names = []
    if config.data.artists:
        path = Path(config.data.artists)
        path = path if path.is_absolute() else content / path
        names = read_artists(path) if content.is_dir() else []
    rows = open_rows(sources, config.data)
    for note in rows.notes:
        reporter.warn(note)
    result, _ = compute_stats(rows, config.data, names)
    text = stats_json(result)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_path.with_name(json_path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, json_path)
        reporter.info(f"wrote {json_path}: {result['rows']:,} rows, {result['distinct_domains']:,} domains")
    else:
        click.echo(text)


if __name__ == "__main__":
    main()
