"""The prompts loader, the gallery and bias-grid widgets, and "what in LAION looks like this".

Images here are written through the same function `atlas generate` uses (write_result), from
plain PIL images, so these tests need neither diffusers nor a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from atlas.core.config import AtlasConfig, GenerateConfig
from atlas.core.errors import ContentError
from atlas.core.prompts import load_prompts, parse_prompts
from atlas.stages import gallery as gal
from atlas.commands import generate as gen
from atlas.site.theme import make_env
from atlas.site.widgets import WidgetContext, render_widget

from helpers.builds import make_context
from helpers.content import write_shard

REPO_CONTENT = Path(__file__).resolve().parents[1] / "content"
HOSTILE = '<script>alert("x")</script> & "quotes" <img src=x onerror=alert(1)>'

PROMPTS = """
[[prompt]]
id = "astronaut"
prompt = "An astronaut riding a horse in a photorealistic style"
seeds = [1, 2]

[[prompt]]
id = "everest"
prompt = "Mount Everest made of cake, digital art"
seeds = [7]

[bias]
template = "Photo portrait of {occupation}"
occupations = ["a software engineer", "a housekeeper"]
seeds = 3
"""

MODEL = gen.ModelSource(
    folder=Path("/nowhere/tiny-sd"), id="tiny-sd", source="local", weights_sha256="ab" * 32, licence="mit",
    pipeline_class="StableDiffusionPipeline",
)
SCHEDULER = {"class": "DDIMScheduler", "config": {"num_train_timesteps": 1000}}


def _content(tmp_path: Path, prompts: str = PROMPTS) -> Path:
    content = tmp_path / "content"
    content.mkdir(exist_ok=True)
    (content / "prompts.toml").write_text(prompts, encoding="utf-8")
    return content


def _shoot(content: Path, prompt_id: str, seed: int, colour=(200, 30, 30), withheld: bool = False) -> None:
    """Write one image + manifest exactly as `atlas generate` does."""
    prompt = next(p for p in load_prompts(content) if p.id == prompt_id)
    recipe = gen.make_recipe(prompt, seed, MODEL, SCHEDULER, GenerateConfig(width=64, height=64, steps=2))
    manifest = {
        "recipe": recipe,
        "recipe_hash": gen.recipe_hash(recipe),
        "model_licence": MODEL.licence,
        "versions": {"diffusers": "0.0-test", "torch": "0.0-test"},
        "device": "cpu",
        "dtype": "float32",
    }
    image = None if withheld else Image.new("RGB", (64, 64), colour)
    gen.write_result(content, prompt_id, seed, image, manifest)


def _ctx(content: Path, outputs: dict | None = None, root: str = "../") -> WidgetContext:
    return WidgetContext(
        config=AtlasConfig(), content_dir=content, page="stable-diffusion", source=content / "stable-diffusion.md",
        root=root, stats={}, outputs=outputs or {}, env=make_env(content),
    )


def _gallery(ctx: WidgetContext, info: str = "atlas gallery") -> str:
    return str(render_widget(info, ctx, "stable-diffusion.md"))


# ---------------------------------------------------------------------------------- prompts


def test_repository_prompts_hold_the_workshop_prompts_and_the_bias_set():
    prompts = load_prompts(REPO_CONTENT)
    texts = {p.prompt for p in prompts if p.page == "stable-diffusion"}
    for wanted in (
        "a photograph comes out of a typewriter",
        "a cartoon spider",
        "a dog with a cloud on its head",
        "A photo of a robot hand drawing, digital art",
        "Pulp Fiction played by Muppets",
        "An astronaut riding a horse in a photorealistic style",
        "Mount Everest made of cake, digital art",
        "a robot ox on moon, UE5 rendering, ray tracing",
    ):
        assert wanted in texts
    bias = [p for p in prompts if p.page == "bias"]
    labels = {p.label for p in bias}
    assert {"a software engineer", "a housekeeper", "a doctor", "a nurse", "a CEO", "a janitor", "a teacher",
            "a firefighter"} <= labels
    assert len(bias) >= 10 and all(len(p.seeds) >= 4 for p in bias)
    assert len({p.seeds for p in bias}) == 1, "every bias row uses the same seeds"
    assert next(p for p in bias if p.label == "a software engineer").prompt == "Photo portrait of a software engineer"


def test_unknown_prompt_key_names_the_key_and_the_prompt():
    with pytest.raises(ContentError) as error:
        parse_prompts({"prompt": [{"id": "dog", "prompt": "a dog", "sedes": [1]}]}, "prompts.toml")
    assert str(error.value) == 'prompts.toml [[prompt]] id="dog": unknown key sedes — did you mean seeds?'
    with pytest.raises(ContentError, match=r"\[bias\]: unknown key occupation — did you mean occupations\?"):
        parse_prompts({"bias": {"occupation": ["a nurse"]}}, "prompts.toml")
    with pytest.raises(ContentError, match=r"unknown table \[\[promt\]\] — did you mean \[\[prompt\]\]\?"):
        parse_prompts({"promt": [{"id": "dog", "prompt": "a dog"}]}, "prompts.toml")


@pytest.mark.parametrize("entry, words", [
    ({"id": "a", "prompt": "x", "page": "bais"}, 'page = "bais": expected "stable-diffusion" or "bias" — did you mean "bias"?'),
    ({"id": "a", "prompt": "x", "steps": "many"}, 'steps = "many": expected a whole number of steps from 1 to 500'),
    ({"id": "a", "prompt": ""}, 'prompt = "": must not be empty.'),
    ({"id": "a"}, 'prompt is missing: add a line prompt = "…".'),
    ({"id": "a", "prompt": "x" * 1001}, "prompt is too long: at most 1000 characters (it has 1001)."),
])
def test_prompt_problems_speak_like_atlas_toml(entry, words):
    """prompts.toml and atlas.toml share one formatter: our words, one sentence, no pydantic."""
    with pytest.raises(ContentError) as error:
        parse_prompts({"prompt": [entry]}, "prompts.toml")
    message = str(error.value)
    assert words in message, message
    for pydantic_words in ("Input should be", "validation error", "For further information visit", "type="):
        assert pydantic_words not in message


def test_duplicate_prompt_ids_are_an_error():
    data = {"prompt": [{"id": "dog", "prompt": "a dog"}, {"id": "dog", "prompt": "another dog"}]}
    with pytest.raises(ContentError, match='"dog" is used twice'):
        parse_prompts(data)
    clash = {"prompt": [{"id": "bias-nurse", "prompt": "x"}], "bias": {"occupations": ["a nurse"]}}
    with pytest.raises(ContentError, match="bias-nurse"):
        parse_prompts(clash)


def test_seeds_as_count_or_list_and_bad_values_rejected():
    prompts = parse_prompts({"prompt": [{"id": "a", "prompt": "x", "seeds": 3}, {"id": "b", "prompt": "y", "seeds": [9, 4]}]})
    assert prompts[0].seeds == (0, 1, 2) and prompts[1].seeds == (9, 4)
    for bad in (0, [], [1, 1], [-1], "4"):
        with pytest.raises(ContentError, match="seeds"):
            parse_prompts({"prompt": [{"id": "a", "prompt": "x", "seeds": bad}]})
    with pytest.raises(ContentError, match="id"):
        parse_prompts({"prompt": [{"id": "../escape", "prompt": "x"}]})
    with pytest.raises(ContentError, match="page"):
        parse_prompts({"prompt": [{"id": "a", "prompt": "x", "page": "home"}]})


# ---------------------------------------------------------------------------------- widgets


def test_missing_images_render_not_generated_cards_never_broken_images(tmp_path):
    content = _content(tmp_path)
    ctx = _ctx(content)
    html = _gallery(ctx)
    # Nothing published: the page says so once, in reader words, with no empty cards per prompt.
    assert html.count("not published yet") == 1 and "Not published yet" not in html
    assert "atlas generate" not in html and "prompts.toml" not in html
    assert "<img" not in html and ctx.assets == {}
    grid = str(render_widget("atlas bias-grid", ctx, "bias.md"))
    # Nothing generated: one sentence naming the occupations, not 6 empty cells.
    assert "<img" not in grid and grid.count("not published yet") == 1
    assert "a software engineer, a housekeeper" in grid and "Photo portrait of a software engineer" in grid
    assert "atlas generate" not in grid and "0 of 6" not in grid


def test_gallery_shows_images_recipes_licence_and_copies_them_into_the_site(tmp_path):
    content = _content(tmp_path)
    _shoot(content, "astronaut", 1)
    _shoot(content, "everest", 7)
    ctx = _ctx(content)
    html = _gallery(ctx)
    assert 'src="../generated/astronaut/1.webp"' in html and 'src="../generated/everest/7.webp"' in html
    assert ctx.assets == {
        "generated/astronaut/1.webp": content / "generated" / "astronaut" / "1.webp",
        "generated/everest/7.webp": content / "generated" / "everest" / "7.webp",
    }
    assert html.count("Not published yet") == 1, "astronaut seed 2 is still missing"
    assert html.count("<details class=\"recipe\">") == 2
    assert "DDIMScheduler" in html and "tiny-sd" in html and "licence: mit" in html
    assert gen.recipe_hash(json.loads((content / "generated/astronaut/1.json").read_text())["recipe"])[:16] in html
    assert "Photo portrait" not in html, "bias prompts are not on the Stable Diffusion page"

    one = _gallery(_ctx(content), "atlas gallery prompt=everest")
    assert "Mount Everest" in one and "astronaut" not in one.lower()


def test_hostile_prompt_and_caption_text_is_escaped(tmp_path):
    content = _content(tmp_path, f'[[prompt]]\nid = "evil"\nprompt = {json.dumps(HOSTILE)}\nnegative = {json.dumps(HOSTILE)}\nseeds = [1, 2]\n')
    _shoot(content, "evil", 1)
    embed = tmp_path / "embed"
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    neighbours = {"reason": None, "model": "m", "images": {"evil/1": [{"row_id": 0, "caption": HOSTILE, "domain": "<b>x.com</b>", "score": 0.3, "x": 1.0, "y": 2.0}]}}
    (gallery / gal.NEIGHBOURS).write_text(json.dumps(neighbours))
    html = _gallery(_ctx(content, {"gallery": gallery, "embed": embed}))
    assert "<script>" not in html and "<img src=x" not in html and "<b>x.com" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;x.com&lt;/b&gt;" in html
    assert 'alt="&lt;script&gt;' in html


def test_changed_prompt_text_marks_old_images_out_of_date(tmp_path):
    content = _content(tmp_path)
    _shoot(content, "everest", 7)
    (content / "prompts.toml").write_text(PROMPTS.replace("made of cake", "made of cheese"), encoding="utf-8")
    ctx = _ctx(content)
    html = _gallery(ctx, "atlas gallery prompt=everest")
    assert "earlier wording of the prompt" in html and "<img" not in html and ctx.assets == {}


def test_image_withheld_by_the_safety_checker_is_not_published(tmp_path):
    content = _content(tmp_path)
    _shoot(content, "everest", 7, withheld=True)
    assert not (content / "generated" / "everest" / "7.webp").exists()
    ctx = _ctx(content)
    html = _gallery(ctx, "atlas gallery prompt=everest")
    assert "Withheld" in html and "<img" not in html and ctx.assets == {}


def test_bias_grid_rows_are_occupations_and_columns_seeds(tmp_path):
    content = _content(tmp_path)
    for seed in range(3):
        _shoot(content, "bias-software-engineer", seed)
    ctx = _ctx(content)
    grid = str(render_widget("atlas bias-grid", ctx, "bias.md"))
    assert grid.count("<tr id=\"prompt-") == 2
    assert [f"seed {s}</th>" in grid for s in range(3)] == [True] * 3
    assert grid.count('src="../generated/bias-software-engineer/') == 3
    assert grid.count("not published yet") == 4 and "3 of 6 portraits are published" in grid
    assert "a housekeeper" in grid and "Photo portrait of a software engineer" in grid
    assert "licence: mit" in grid and "DDIMScheduler" in grid
    assert len(ctx.assets) == 3
    two = str(render_widget("atlas bias-grid seeds=2", _ctx(content), "bias.md"))
    assert "seed 2</th>" not in two


def test_unknown_prompt_in_a_directive_is_a_content_error(tmp_path):
    content = _content(tmp_path)
    with pytest.raises(ContentError, match="no-such") as error:
        _gallery(_ctx(content), "atlas gallery prompt=no-such")
    assert error.value.where == "stable-diffusion.md"
    with pytest.raises(ContentError, match="page"):
        _gallery(_ctx(content), "atlas gallery page=home")


def test_gallery_without_prompts_says_so_in_reader_words(tmp_path):
    content = tmp_path / "empty"
    content.mkdir()
    html = _gallery(_ctx(content))
    assert "no prompts on this page yet" in html and "prompts.toml" not in html  # readers, not builders


# ------------------------------------------------------------------ what in LAION looks like this


def _embed_folder(tmp_path: Path, method: str, vectors: np.ndarray) -> Path:
    folder = tmp_path / f"embed-{method}"
    folder.mkdir()
    np.save(folder / "embeddings.npy", vectors.astype(np.float32))
    (folder / "info.json").write_text(json.dumps({"method": method, "model": "test", "dim": int(vectors.shape[1]), "notice": None}))
    return folder


def _sample(tmp_path: Path, captions: list[str]) -> Path:
    path = tmp_path / "sample.parquet"
    pq.write_table(
        pa.table({
            "row_id": pa.array(range(len(captions)), pa.int64()),
            "caption": captions,
            "domain": [f"site{i}.com" for i in range(len(captions))],
        }),
        path,
    )
    return path


def _unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_nearest_captions_ranks_by_cosine_and_reads_captions_and_domains(tmp_path):
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 50, 16)
    captions = [f"caption {i}" for i in range(50)]
    embed = _embed_folder(tmp_path, "clip", vectors)
    sample = _sample(tmp_path, captions)
    queries = np.stack([vectors[3] * 2.0, vectors[17] + 0.01 * rng.normal(size=16)])
    images = [tmp_path / "a.webp", tmp_path / "b.webp"]
    coords = rng.normal(size=(50, 2)).astype(np.float32)
    found = gal.nearest_captions(images, embed, sample.parent, AtlasConfig(), k=4, embedder=lambda paths: queries, coords=coords)
    assert found.reason is None and len(found.neighbours) == 2
    first, second = found.neighbours
    assert [n["row_id"] for n in first][:1] == [3] and first[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert first[0]["caption"] == "caption 3" and first[0]["domain"] == "site3.com"
    assert second[0]["row_id"] == 17 and len(first) == 4
    expected = np.argsort(-(vectors @ (queries[1] / np.linalg.norm(queries[1]))))[:4]
    assert [n["row_id"] for n in second] == list(expected)
    assert all(a["score"] >= b["score"] for a, b in zip(second, second[1:]))
    assert (first[0]["x"], first[0]["y"]) == pytest.approx(tuple(coords[3]), abs=1e-3)


def test_unreadable_image_gets_no_neighbours(tmp_path):
    vectors = _unit(np.random.default_rng(1), 10, 8)
    embed = _embed_folder(tmp_path, "clip", vectors)
    sample = _sample(tmp_path, [f"c{i}" for i in range(10)])
    out = (np.stack([vectors[2], np.zeros(8, np.float32)]), [None, "not an image"])
    found = gal.nearest_captions([tmp_path / "a", tmp_path / "b"], embed, sample.parent, AtlasConfig(), k=3, embedder=lambda p: out)
    assert found.neighbours[0][0]["row_id"] == 2 and found.neighbours[1] == []


def test_without_clip_the_section_says_why(tmp_path):
    vectors = _unit(np.random.default_rng(2), 10, 8)
    tfidf = _embed_folder(tmp_path, "tfidf", vectors)
    sample = _sample(tmp_path, [f"c{i}" for i in range(10)])
    found = gal.nearest_captions([tmp_path / "a"], tfidf, sample.parent, AtlasConfig(), embedder=lambda p: pytest.fail("no CLIP, no embedding"))
    assert found.reason and "shared words" in found.reason and found.neighbours == []

    content = _content(tmp_path)
    _shoot(content, "everest", 7)
    html = _gallery(_ctx(content, {"embed": tfidf}))
    assert "without CLIP" in html and "cannot place a generated image" in html and "[embed]" not in html
    assert "What in LAION looks like this" in html


def test_mismatched_embedding_sizes_are_explained(tmp_path):
    embed = _embed_folder(tmp_path, "clip", _unit(np.random.default_rng(3), 10, 8))
    sample = _sample(tmp_path, [f"c{i}" for i in range(10)])
    found = gal.nearest_captions([tmp_path / "a"], embed, sample.parent, AtlasConfig(), embedder=lambda p: np.ones((1, 4)))
    assert found.reason and "do not match" in found.reason


def test_gallery_lists_nearest_captions_with_a_map_link(tmp_path, monkeypatch):
    """The link is the row's point as the map reads it (atlas.site.maplinks, checked against the
    map's own files by test_score_pages), not the projection's raw coordinates (-1..1), which put
    the reader somewhere else; a row the map does not hold gets no link."""
    import atlas.site.widgets.gallery as gallery_widgets

    content = _content(tmp_path)
    _shoot(content, "everest", 7)
    folder = tmp_path / "gallery"
    folder.mkdir()
    near = [{"row_id": 4, "caption": "chocolate mountain cake", "domain": "bakery.example", "score": 0.31, "x": 1.25, "y": -3.5}]
    (folder / gal.NEIGHBOURS).write_text(json.dumps({"reason": None, "model": "ViT", "images": {"everest/7": near}}))
    html = _gallery(_ctx(content, {"gallery": folder}), "atlas gallery prompt=everest")
    assert "chocolate mountain cake" in html and "bakery.example" in html
    assert "map/#" not in html  # no map in this build: no link
    assert "not in this build" not in html
    asked = []
    monkeypatch.setattr(gallery_widgets, "map_positions", lambda outputs, rows: asked.append(list(rows)) or {4: (17, 0.25, 0.75)})
    html = _gallery(_ctx(content, {"gallery": folder}), "atlas gallery prompt=everest")
    assert 'href="../map/#x=0.25&amp;y=0.75&amp;z=6&amp;p=17"' in html and [4] in asked


@pytest.mark.slow
def test_gallery_stage_places_images_with_a_tiny_clip(tmp_path, tiny_clip):
    """The build stage end to end: real sample + CLIP embed stages, then nearest captions."""
    from atlas.core.pipeline import run_stages
    from atlas.stages import embed as embed_stage
    from atlas.stages import sample as sample_stage

    clip = tiny_clip
    shard = write_shard(tmp_path / "part.parquet", [
        {"URL": f"https://s{i % 7}.example.com/{i}.jpg", "TEXT": f"a picture of thing {i}", "punsafe": 0.0}
        for i in range(30)
    ])
    content = _content(tmp_path)
    _shoot(content, "everest", 7, colour=(240, 240, 250))
    _shoot(content, "astronaut", 1, colour=(20, 20, 20))
    ctx = make_context(
        content, [str(shard)], sample={"size": 20, "seed": 1},
        embed={"method": "clip", "model": str(clip["config"]), "pretrained": str(clip["checkpoint"])},
    )
    results = run_stages([sample_stage.STAGE, embed_stage.STAGE, gal.STAGE], ctx)
    assert [r.status for r in results] == ["ran", "ran", "ran"]
    data = json.loads((ctx.output("gallery") / gal.NEIGHBOURS).read_text())
    assert data["reason"] is None and set(data["images"]) == {"everest/7", "astronaut/1"}
    captions = set(pq.read_table(ctx.output("sample") / "sample.parquet")["caption"].to_pylist())
    for found in data["images"].values():
        assert len(found) == 5 and {n["caption"] for n in found} <= captions
    # Unchanged images: the stage is cached; a new image re-runs it.
    ctx2 = make_context(
        content, [str(shard)], sample={"size": 20, "seed": 1},
        embed={"method": "clip", "model": str(clip["config"]), "pretrained": str(clip["checkpoint"])},
    )
    assert [r.status for r in run_stages([sample_stage.STAGE, embed_stage.STAGE, gal.STAGE], ctx2)][-1] == "cached"
    html = _gallery(_ctx(content, dict(ctx.outputs)), "atlas gallery prompt=everest")
    assert "What in LAION looks like this" in html and next(iter(data["images"]["everest/7"]))["caption"] in html


def test_bias_rows_with_different_seeds_stay_aligned_by_seed(tmp_path):
    extra = '\n[[prompt]]\nid = "bias-baker"\npage = "bias"\nlabel = "a baker"\nprompt = "Photo portrait of a baker"\nseeds = [2]\n'
    content = _content(tmp_path, PROMPTS + extra)
    _shoot(content, "bias-baker", 2)
    grid = str(render_widget("atlas bias-grid", _ctx(content), "bias.md"))
    row = grid[grid.index('<tr id="prompt-bias-baker">'):]
    row = row[: row.index("</tr>")]
    cells = [part.split('"')[0] for part in row.split('<td class="cell ')[1:]]
    assert cells == ["cell-none", "cell-none", "cell-ready"]


def test_manifest_cannot_point_outside_its_folder(tmp_path):
    content = _content(tmp_path)
    _shoot(content, "astronaut", 1)
    _shoot(content, "everest", 7)
    path = content / "generated" / "everest" / "7.json"
    manifest = json.loads(path.read_text())
    manifest["image"] = "../astronaut/1.webp"
    path.write_text(json.dumps(manifest))
    ctx = _ctx(content)
    html = _gallery(ctx, "atlas gallery prompt=everest")
    assert "<img" not in html and "not published yet" in html and ctx.assets == {}


def test_switching_format_leaves_no_stale_image_behind(tmp_path):
    content = _content(tmp_path)
    _shoot(content, "everest", 7)
    prompt = next(p for p in load_prompts(content) if p.id == "everest")
    recipe = gen.make_recipe(prompt, 7, MODEL, SCHEDULER, GenerateConfig(format="png"))
    gen.write_result(content, "everest", 7, Image.new("RGB", (900, 600)), {"recipe": recipe, "recipe_hash": gen.recipe_hash(recipe)})
    folder = content / "generated" / "everest"
    assert sorted(p.name for p in folder.iterdir()) == ["7.json", "7.png"]
    with Image.open(folder / "7.png") as image:
        assert image.size == (768, 512), "stored at most 768 px on the longer side"
    ctx = _ctx(content)
    assert 'src="../generated/everest/7.png"' in _gallery(ctx, "atlas gallery prompt=everest")
