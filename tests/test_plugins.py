"""Plugins: a widget (or a stage) from another installed package, found through the
``atlas.widgets`` / ``atlas.stages`` entry points, with no edit to atlas. Each test installs a
tiny plugin distribution for real: a package and its ``*.dist-info`` (METADATA, entry_points.txt)
in a folder on sys.path, which is what pip leaves in site-packages."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest

from atlas.site import widgets
from atlas.core.config import AtlasConfig
from atlas.core.errors import AtlasError, PluginError
from atlas.site.render import render_site
from atlas.stages.stats import Stats

from helpers.content import write_content


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(name, {module: source}, entry_points)`` puts the distribution ``name`` on
    sys.path; the widget registry starts from atlas's own and is restored afterwards."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    widgets._load_builtin_widgets()  # atlas's own first, into the registry restored afterwards
    monkeypatch.setattr(widgets, "REGISTRY", dict(widgets.REGISTRY))
    monkeypatch.setattr(widgets, "OWNERS", dict(widgets.OWNERS))
    monkeypatch.setattr(widgets, "_loaded", False)
    packages = []

    def make(dist: str, modules: dict[str, str], entry_points: str, version: str = "0.1") -> None:
        for module, source in modules.items():
            path = site / Path(*module.split(".")).with_suffix(".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").touch()
            path.write_text(textwrap.dedent(source))
            packages.append(module.split(".")[0])
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        importlib.invalidate_caches()

    yield make
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]
    importlib.invalidate_caches()


SPARKLE = {"atlas_sparkle.widgets": '''
    from markupsafe import Markup, escape

    from atlas.site.widgets import widget


    @widget("sparkle")
    def sparkle(args, ctx):
        """A widget from outside atlas: the row count, in a sentence the page author words."""
        label = args.get("label", "rows")
        return Markup(f'<p class="sparkle">{ctx.stats["rows"]:,} {escape(label)}</p>')
'''}


def _render(tmp_path, page: str) -> str:
    content = write_content(tmp_path / "content", {"index.md": page})
    out = tmp_path / "site"
    render_site(AtlasConfig(), content, out, Stats({"rows": 12345}, {"captions": [], "html": []}, {}), {}, {"demo": False})
    return (out / "index.html").read_text()


def test_a_plugin_widget_renders_on_a_page(install, tmp_path):
    install("atlas-sparkle", SPARKLE, '[atlas.widgets]\nsparkle = atlas_sparkle.widgets\n')
    html = _render(tmp_path, '# Home\n\n```atlas sparkle label="<b>rows</b> counted"\n```\n')
    assert '<p class="sparkle">12,345 &lt;b&gt;rows&lt;/b&gt; counted</p>' in html
    assert widgets.OWNERS["sparkle"] == "the atlas.widgets plugin 'sparkle' (atlas-sparkle 0.1, atlas_sparkle.widgets)"
    assert widgets.OWNERS["histogram"] == "atlas"
    # Its version is part of the render stage's key: upgrading the plugin re-renders the pages.
    from atlas.core.plugins import versions

    from types import SimpleNamespace

    from atlas.site import render

    assert versions() == {"atlas.widgets:sparkle": "atlas-sparkle 0.1"}
    ctx = SimpleNamespace(content_dir=tmp_path / "content", config=AtlasConfig(), demo=False)
    assert render.STAGE.inputs(ctx)["plugins"] == {"atlas.widgets:sparkle": "atlas-sparkle 0.1"}


def test_a_plugin_may_name_a_callable_that_registers(install, tmp_path):
    module = {"atlas_twinkle.hooks": '''
        from markupsafe import Markup

        from atlas.site.widgets import widget


        def register():
            widget("twinkle")(lambda args, ctx: Markup('<p class="twinkle">twinkle</p>'))
    '''}
    install("atlas-twinkle", module, "[atlas.widgets]\ntwinkle = atlas_twinkle.hooks:register\n")
    assert '<p class="twinkle">twinkle</p>' in _render(tmp_path, "```atlas twinkle\n```\n")


def test_without_the_plugin_its_widget_is_unknown(install, tmp_path):
    with pytest.raises(AtlasError, match="unknown widget 'sparkle'"):
        _render(tmp_path, "```atlas sparkle\n```\n")


def _one_paragraph(error: AtlasError) -> str:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def test_a_plugin_that_fails_to_import_is_named(install, tmp_path):
    broken = {"atlas_broken.widgets": "import a_dependency_nobody_installed\n"}
    install("atlas-broken", broken, "[atlas.widgets]\nbroken = atlas_broken.widgets\n")
    with pytest.raises(PluginError) as error:
        _render(tmp_path, "```atlas histogram column=similarity\n```\n")
    message = _one_paragraph(error.value)
    assert message.startswith("the atlas.widgets plugin 'broken' (atlas-broken 0.1, atlas_broken.widgets) failed to "
                              "load: ModuleNotFoundError: No module named 'a_dependency_nobody_installed'.")
    assert message.endswith("Fix or update atlas-broken, or uninstall it (pip uninstall atlas-broken).")


def test_a_plugin_taking_a_builtin_name_is_refused(install, tmp_path):
    thief = {"atlas_thief.widgets": '''
        from atlas.site.widgets import widget


        @widget("histogram")
        def histogram(args, ctx):
            return "not the real histogram"
    '''}
    install("atlas-thief", thief, "[atlas.widgets]\nthief = atlas_thief.widgets\n")
    with pytest.raises(PluginError) as error:
        _render(tmp_path, "```atlas histogram column=similarity\n```\n")
    message = _one_paragraph(error.value)
    assert "the atlas.widgets plugin 'thief' (atlas-thief 0.1, atlas_thief.widgets) registers the widget " \
           "'histogram', which atlas already registers" in message
    assert widgets.REGISTRY["histogram"].__module__ == "atlas.site.widgets.histogram"


def test_two_plugins_taking_one_name_are_refused(install, tmp_path):
    install("atlas-sparkle", SPARKLE, '[atlas.widgets]\nsparkle = atlas_sparkle.widgets\n')
    again = {"atlas_sparkle2.widgets": SPARKLE["atlas_sparkle.widgets"]}
    install("atlas-sparkle2", again, '[atlas.widgets]\nsparkle2 = atlas_sparkle2.widgets\n')
    with pytest.raises(PluginError, match="plugin 'sparkle2' .* registers the widget 'sparkle', which the "
                                          "atlas.widgets plugin 'sparkle' .* already registers"):
        _render(tmp_path, "```atlas sparkle\n```\n")


WORDCOUNT = {"atlas_wordcount.stage": '''
    import json

    from atlas.core.pipeline import Stage


    def run(ctx, folder):
        (folder / "count.json").write_text(json.dumps({"rows": 1}))


    STAGE = Stage("wordcount", "1", lambda ctx: {}, run, after=("stats", "sample"), description="a plugin's stage")
'''}


def test_a_plugin_stage_runs_after_what_it_reads_and_render_depends_on_it(install):
    from atlas.build import stages

    install("atlas-wordcount", WORDCOUNT, "[atlas.stages]\nwordcount = atlas_wordcount.stage:STAGE\n")
    names = [stage.name for stage in stages()]
    assert names.index("wordcount") == names.index("sample") + 1 and names[-1] == "render"
    assert "wordcount" in stages()[-1].after  # a new count re-renders the pages that show it


@pytest.mark.parametrize("stage, words", [
    ('Stage("stats", "1", lambda ctx: {}, lambda ctx, f: None)', "names its stage 'stats', which is already taken"),
    ('Stage("late", "1", lambda ctx: {}, lambda ctx, f: None, after=("render",))', "reads 'render', which is not a stage"),
    ('"not a stage"', "gives str, not an atlas.core.pipeline.Stage"),
])
def test_a_plugin_stage_that_cannot_be_placed_is_named(install, stage, words):
    from atlas.build import stages

    module = {"atlas_badstage.stage": f"from atlas.core.pipeline import Stage\n\nSTAGE = {stage}\n"}
    install("atlas-badstage", module, "[atlas.stages]\nbad = atlas_badstage.stage:STAGE\n")
    with pytest.raises(PluginError) as error:
        stages()
    message = _one_paragraph(error.value)
    assert message.startswith("the atlas.stages plugin 'bad' (atlas-badstage 0.1, atlas_badstage.stage")
    assert words in message


SHARE = {"atlas_share.stage": '''
    import json

    from atlas.core.pipeline import Stage
    from atlas.stages import stats

    #: The tests change it between builds, as a plugin's new release would its stage's inputs.
    LABEL = "rows counted by a plugin"


    def run(ctx, folder):
        rows = stats.read(ctx.output("stats")).stats["rows"]
        (folder / "share.json").write_text(json.dumps({"rows": rows, "label": LABEL}))


    STAGE = Stage("share", "1", lambda ctx: {"label": LABEL}, run, after=("stats",), description="a plugin's stage")
''', "atlas_share.widgets": '''
    import json

    from markupsafe import Markup, escape

    from atlas.site.widgets import widget


    @widget("share")
    def share(args, ctx):
        data = json.loads((ctx.outputs["share"] / "share.json").read_text())
        return Markup(f'<p class="share">{data["rows"]:,} {escape(data["label"])}</p>')
'''}


@pytest.mark.slow
def test_a_build_runs_a_plugin_stage_and_shows_it_with_a_plugin_widget(install, tmp_path):
    """The whole build: the plugin's stage runs after statistics, its widget shows the output,
    and a change to the stage's inputs re-runs it and re-renders the page (render depends on it)."""
    from atlas.build import build
    from atlas.core.report import Reporter

    install("atlas-share", SHARE, "[atlas.stages]\nshare = atlas_share.stage:STAGE\n\n"
                                  "[atlas.widgets]\nshare = atlas_share.widgets\n")
    content = write_content(tmp_path / "content", {"index.md": "# Home\n\n```atlas share\n```\n"},
                            "[sample]\nsize = 300\n\n[project]\nfit_size = 300\n")
    out, cache = tmp_path / "site", tmp_path / "cache"
    report = build(content, out, cache_dir=cache, reporter=Reporter(quiet=True))
    names = [r.name for r in report.results]
    assert names.index("share") == names.index("stats") + 1
    assert {r.name: r.status for r in report.results}["share"] == "ran"
    rows = json.loads((out / "data" / "stats.json").read_text())["rows"]
    assert f'<p class="share">{rows:,} rows counted by a plugin</p>' in (out / "index.html").read_text()
    sys.modules["atlas_share.stage"].LABEL = "rows, counted again"
    again = {r.name: r.status for r in build(content, out, cache_dir=cache, reporter=Reporter(quiet=True)).results}
    assert (again["share"], again["render"], again["stats"]) == ("ran", "ran", "cached")
    assert f'<p class="share">{rows:,} rows, counted again</p>' in (out / "index.html").read_text()
