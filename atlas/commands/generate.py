"""Stable Diffusion examples for the workshop prompts: generated once on a GPU, shown by every build.

:func:`generate` (the ``atlas generate`` command, needs ``diffusers`` and ideally a GPU) renders
every prompt of ``content/prompts.toml`` at each of its seeds into
``content/generated/<prompt-id>/<seed>.webp`` with a JSON manifest beside each image holding
its exact recipe. An image whose recipe hash is unchanged is skipped; ``force`` redoes all.
Each image is screened by a nudity classifier before it is written (:mod:`atlas.models.nsfw`): a
flagged one is not written, and its manifest says why. :mod:`atlas.stages.gallery` and
:mod:`atlas.site.widgets.gallery` put them on the site, after the build screened them again.

torch and diffusers are imported inside the functions that use them, so importing this module
(which every build does, through the gallery widgets) stays fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from atlas.core.generated import GENERATED, MAP_ZOOM, manifest_path, read_manifest  # noqa: F401 - also the command's API
from atlas.models import nsfw as screen
from atlas.core.cache import file_digest, fingerprint
from atlas.core.config import AtlasConfig, GenerateConfig, load_config
from atlas.models.device import resolve_device
from atlas.core.errors import ConfigError, ContentError, ModelError
from atlas.core.prompts import Prompt, load_prompts
from atlas.core.settings import Settings
from atlas.models.hub import find_model

log = logging.getLogger(__name__)

#: Bump when what a recipe means changes (e.g. how images are encoded), to regenerate all.
RECIPE_VERSION = 1
#: Images are stored at most this many pixels on their longer side (sized for the web).
WEB_MAX_SIDE = 768
WEBP_QUALITY = 90

#: Defaults per model family: (steps, guidance). Size comes from the model's own config.
FAMILY_DEFAULTS = {
    "sd": (30, 7.5),
    "sdxl": (30, 5.0),
    "turbo": (1, 0.0),
}
#: Short scheduler names accepted in ``[generate] scheduler`` besides diffusers class names.
SCHEDULER_ALIASES = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpm++-sde": "DPMSolverSDEScheduler",
    "unipc": "UniPCMultistepScheduler",
    "heun": "HeunDiscreteScheduler",
    "lcm": "LCMScheduler",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".json", ".txt", ".model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# --------------------------------------------------------------------------------------------
# The model: where it is, what it is, under which licence
# --------------------------------------------------------------------------------------------


@dataclass
class ModelSource:
    """A diffusers model folder on disk and what identifies its weights."""

    folder: Path
    #: Hub id, or the local folder's name (never an absolute path: manifests are committed).
    id: str
    source: str  # "local" or "hub"
    revision: str | None = None
    weights_sha256: str | None = None
    licence: str = "unknown"
    pipeline_class: str = ""
    family: str = "sd"
    default_size: tuple[int, int] = (512, 512)

    def identity(self) -> dict:
        """What the recipe hash keys the model by (not where it lies on disk)."""
        return {"id": self.id, "revision": self.revision, "weights_sha256": self.weights_sha256}


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {what}: {error}", where=str(path)) from None


def model_licence(folder: Path) -> str:
    """The ``license:`` of the model card (README.md front matter), else ``"unknown"``."""
    readme = Path(folder) / "README.md"
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, flags=re.S)
    if not match:
        return "unknown"
    values = {}
    for line in match.group(1).splitlines():
        found = re.match(r"^(license|license_name|license_link)\s*:\s*(.+?)\s*$", line)
        if found:
            values[found.group(1)] = found.group(2).strip("'\"")
    licence = values.get("license", "")
    if licence == "other" and values.get("license_name"):
        licence = values["license_name"]
    return licence or "unknown"


_DIGESTS: dict[tuple, str] = {}


def weights_digest(folder: Path) -> str:
    """SHA-256 over every weight and config file of a model folder (by relative path).

    Hidden folders (``.cache``, ``.git``) and the model card are left out, so moving or
    re-downloading the same weights keeps the digest. Per-file digests are memoised by
    (path, size, mtime) for the life of the process.
    """
    folder = Path(folder)
    total = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.endswith(_WEIGHT_SUFFIXES)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for path in files:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        digest = _DIGESTS.get(key)
        if digest is None:
            digest = _DIGESTS[key] = file_digest(path, chunk=1 << 22)
        total.update(path.relative_to(folder).as_posix().encode() + b"\0" + digest.encode() + b"\n")
    return total.hexdigest()


def _hub_snapshot(repo_id: str, settings: Settings | None = None) -> Path:
    """The local snapshot of a hub model: from the HF cache, else downloaded (needs network)."""
    hint = (
        "Download the model folder once on a machine with network "
        f"(`hf download {repo_id} --local-dir models/NAME`) and pass --model models/NAME."
    )
    return find_model(repo_id, settings, download=True, where="--model / [generate] model", hint=hint,
                      allow_patterns=["model_index.json", "README.md", "LICENSE*", "*/*.json", "*/*.txt", "*/*.safetensors"])


def resolve_model(model: str, content_dir: Path, settings: Settings | None = None) -> ModelSource:
    """Find the model folder for ``model`` (a folder or a hub id) and describe it. Fast: no torch.

    A hub id is looked up (and downloaded) by :func:`atlas.models.hub.find_model` with ``settings``
    (the environment: ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_TOKEN``)."""
    model = (model or "").strip()
    if not model:
        raise ModelError(
            "no Stable Diffusion model given",
            where="--model / [generate] model",
            hint="Pass --model DIR (a diffusers folder with model_index.json) or set [generate] model in atlas.toml.",
        )
    candidates = [Path(model).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(Path(content_dir) / model)
    local = next((c for c in candidates if c.exists()), None)
    if local is not None:
        if not local.is_dir():
            raise ModelError(
                f"{local} is a file; atlas needs a diffusers model folder (with model_index.json)",
                where="--model",
                hint="Convert a single-file checkpoint with diffusers' from_single_file(...).save_pretrained(DIR).",
            )
        folder, source, revision, name = local.resolve(), "local", None, local.resolve().name
    elif _HUB_ID.match(model) and not model.startswith((".", "~")):
        folder, source, name = _hub_snapshot(model, settings), "hub", model
        revision = folder.name if folder.parent.name == "snapshots" else None
    else:
        raise ModelError(
            f"model folder {model!r} does not exist",
            where="--model / [generate] model",
            hint="Pass the path of a diffusers model folder (with model_index.json), relative to the "
            "current folder or to the content folder.",
        )
    index = _read_json(folder / "model_index.json", "the model index")
    if not index:
        raise ModelError(
            f"{folder} is not a diffusers model folder (no model_index.json)",
            where="--model",
            hint="Point --model at the folder that pipeline.save_pretrained(DIR) wrote.",
        )
    pipeline_class = str(index.get("_class_name", ""))
    unet = _read_json(folder / "unet" / "config.json", "the UNet config")
    vae = _read_json(folder / "vae" / "config.json", "the VAE config")
    scale = 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    sample = unet.get("sample_size", 64)
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    side = int(sample) * scale
    lowered = f"{name} {folder.name}".lower()
    family = "turbo" if "turbo" in lowered else "sdxl" if "XL" in pipeline_class else "sd"
    return ModelSource(
        folder=folder,
        id=name,
        source=source,
        revision=revision,
        weights_sha256=None if revision else weights_digest(folder),
        licence=model_licence(folder),
        pipeline_class=pipeline_class,
        family=family,
        default_size=(side, side),
    )


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------


def _load_torch_stack():
    """Import torch and diffusers (slow; only when generating)."""
    from atlas.models._torch_compat import import_torchvision

    try:  # transformers' image processors import torchvision; a broken build is worked around there
        import_torchvision()
    except ImportError:  # no torchvision at all: transformers then uses its PIL backends
        pass
    import diffusers
    import torch

    return torch, diffusers


def make_scheduler(model: ModelSource, name: str):
    """The scheduler named in the config (class name or alias), or the model's own."""
    _, diffusers = _load_torch_stack()
    base = _read_json(model.folder / "scheduler" / "scheduler_config.json", "the scheduler config")
    class_name = SCHEDULER_ALIASES.get(name.strip().lower(), name.strip()) if name.strip() else base.get("_class_name", "")
    cls = getattr(diffusers, class_name, None) if class_name.endswith("Scheduler") else None
    if cls is None:
        if name.strip():
            raise ConfigError(
                f"unknown scheduler {name!r}",
                where="[generate] scheduler",
                hint=f"Use a diffusers scheduler class name or one of: {', '.join(SCHEDULER_ALIASES)}; "
                "leave it empty for the model's own scheduler.",
            )
        raise ModelError(
            "the model folder names no scheduler class",
            where=str(model.folder / "scheduler" / "scheduler_config.json"),
            hint="Set [generate] scheduler, e.g. \"euler\".",
        )
    return cls.from_config(base)


def scheduler_recipe(scheduler) -> dict:
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return {"class": type(scheduler).__name__, "config": json.loads(json.dumps(config, default=str))}


def settings_for(prompt: Prompt, model: ModelSource, config: GenerateConfig) -> dict:
    """Steps, guidance and size for one prompt: prompt > [generate] > the model family's default."""
    steps, guidance = FAMILY_DEFAULTS[model.family]
    width = config.width or model.default_size[0]
    height = config.height or model.default_size[1]
    for key, value in (("width", width), ("height", height)):
        if value % 8:
            raise ConfigError(f"{key} {value} is not a multiple of 8", where=f"[generate] {key}", hint="Use e.g. 512 or 768.")
    return {
        "steps": prompt.steps or config.steps or steps,
        "guidance": float(
            prompt.guidance if prompt.guidance is not None else config.guidance if config.guidance is not None else guidance
        ),
        "width": width,
        "height": height,
    }


def make_recipe(prompt: Prompt, seed: int, model: ModelSource, scheduler: dict, config: GenerateConfig) -> dict:
    """Everything that determines the image (and nothing that does not, e.g. the folder path)."""
    return {
        "recipe_version": RECIPE_VERSION,
        "prompt": prompt.prompt,
        "negative_prompt": prompt.negative,
        "seed": seed,
        "model": model.identity(),
        "pipeline": model.pipeline_class,
        "scheduler": scheduler,
        **settings_for(prompt, model, config),
        "output": {"format": config.format, "max_side": WEB_MAX_SIDE, "quality": WEBP_QUALITY if config.format == "webp" else None},
    }


def recipe_hash(recipe: dict) -> str:
    return fingerprint(recipe)


def image_path(content_dir: Path, prompt_id: str, seed: int, fmt: str) -> Path:
    return Path(content_dir) / GENERATED / prompt_id / f"{seed}.{fmt}"


def _web_sized(image):
    from PIL import Image

    if max(image.size) > WEB_MAX_SIDE:
        ratio = WEB_MAX_SIDE / max(image.size)
        image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.LANCZOS)
    return image.convert("RGB")


@dataclass
class Encoded:
    """An image as it will be committed: its file's bytes and its size in pixels."""

    data: bytes
    size: tuple[int, int]


def encode(image, fmt: str) -> Encoded:
    """The web-sized file of a PIL image, in memory: what the screening scores is exactly what
    is committed and published (the WebP encoding changes pixels)."""
    import io

    image = _web_sized(image)
    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=6)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return Encoded(buffer.getvalue(), image.size)


def write_result(content_dir: Path, prompt_id: str, seed: int, image, manifest: dict) -> Path:
    """Write ``<seed>.<fmt>`` then ``<seed>.json`` atomically; the image goes first, so a manifest
    never names a missing image. ``image`` is a PIL image or an :class:`Encoded` one, or None
    when it was withheld (then no image file is left)."""
    fmt = manifest["recipe"]["output"]["format"]
    target = image_path(content_dir, prompt_id, seed, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    if image is not None:
        encoded = image if isinstance(image, Encoded) else encode(image, fmt)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(encoded.data)
        os.replace(tmp, target)
        manifest = {**manifest, "image": target.name, "image_size": list(encoded.size)}
    else:
        target.unlink(missing_ok=True)
        manifest = {**manifest, "image": None, "image_size": None}
    for other in ("webp", "png"):  # an image left over in the other format would be stale
        if other != fmt:
            image_path(content_dir, prompt_id, seed, other).unlink(missing_ok=True)
    out = manifest_path(content_dir, prompt_id, seed)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return target


@dataclass
class Job:
    prompt: Prompt
    seed: int
    recipe: dict
    hash: str
    reason: str


def plan(prompts: list[Prompt], content_dir: Path, model: ModelSource, scheduler: dict, config: GenerateConfig, force: bool) -> tuple[list[Job], int]:
    """Which images to (re)generate, and how many are up to date."""
    jobs, fresh = [], 0
    for prompt in prompts:
        for seed in prompt.seeds:
            recipe = make_recipe(prompt, seed, model, scheduler, config)
            digest = recipe_hash(recipe)
            manifest = read_manifest(manifest_path(content_dir, prompt.id, seed))
            if manifest is None:
                reason = "never generated"
            elif manifest.get("recipe_hash") != digest:
                reason = "recipe changed"
            elif manifest.get("image") and not image_path(content_dir, prompt.id, seed, config.format).exists():
                reason = "image missing"
            elif _allowed_now(manifest, config.nsfw_threshold):
                reason = "withheld under a lower nudity threshold"
            elif force:
                reason = "forced"
            else:
                fresh += 1
                continue
            jobs.append(Job(prompt, seed, recipe, digest, reason))
    return jobs, fresh


def _allowed_now(manifest: dict, threshold: float) -> bool:
    """Was this image withheld only by the nudity classifier, at a score that the threshold now
    lets through? (It was never written, so it must be generated again.)"""
    nsfw = manifest.get("nsfw")
    if manifest.get("image") or manifest.get("safety_checker") or not isinstance(nsfw, dict):
        return False
    score = nsfw.get("score")
    return nsfw.get("verdict") == screen.FLAGGED and isinstance(score, (int, float)) and score < threshold


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def screen_committed(content_dir: Path, prompts: list[Prompt], threshold: float, skip: set) -> tuple[int, int]:
    """Screen the committed images that are up to date but have no verdict for their very file at
    this threshold (committed before screening existed, edited, or judged at another threshold):
    record the score in the manifest, and delete a flagged image (``"image": null``), as if it
    had just been generated. ``skip``: (prompt id, seed) about to be generated anyway. Returns
    (screened, flagged)."""
    screened = flagged = 0
    package = f"{screen.PACKAGE} {screen.classifier_version()}"
    for prompt in prompts:
        for seed in prompt.seeds:
            path = manifest_path(content_dir, prompt.id, seed)
            manifest = read_manifest(path)
            name = manifest.get("image") if manifest and (prompt.id, seed) not in skip else None
            if not isinstance(name, str) or Path(name).name != name or not (path.parent / name).is_file():
                continue
            image = path.parent / name
            data = image.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            known = manifest.get("nsfw") if isinstance(manifest.get("nsfw"), dict) else {}
            if (known.get("image_sha256"), known.get("threshold"), known.get("package")) == (digest, threshold, package):
                continue
            try:
                nsfw = screen.record(screen.score_bytes(data), threshold, digest)
            except Exception as error:  # not an image the classifier can read
                raise ContentError(
                    f"cannot screen the committed image for nudity: {type(error).__name__}: {error}",
                    where=str(image),
                    hint="Delete the image and its manifest, then run atlas generate again.",
                ) from None
            manifest = {**manifest, "nsfw": nsfw}
            screened += 1
            if nsfw["verdict"] == screen.FLAGGED:
                flagged += 1
                image.unlink()
                manifest.update(image=None, image_size=None, safety=_classifier_safety(nsfw))
            _write_manifest(path, manifest)
    return screened, flagged


def _classifier_safety(nsfw: dict) -> str:
    return f"withheld by the nudity classifier ({screen.CLASSIFIER} score {nsfw['score']:.3f} >= {nsfw['threshold']})"


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _load_pipeline(model: ModelSource, scheduler, device: str):
    torch, diffusers = _load_torch_stack()
    import transformers

    for library in (diffusers, transformers):  # our own progress bar and messages only
        library.utils.logging.disable_progress_bar()
        library.utils.logging.set_verbosity_error()
    dtype = torch.float16 if device == "cuda" else torch.float32
    # diffusers >= 0.36 calls it ``dtype``; older releases only know ``torch_dtype``.
    dtype_key = "dtype" if _version_tuple(diffusers.__version__) >= (0, 36) else "torch_dtype"
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(
            str(model.folder), local_files_only=True, scheduler=scheduler, **{dtype_key: dtype}
        )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        raise ModelError(
            f"cannot load the pipeline from {model.folder}: {error}",
            where="--model",
            hint="Check that the folder is a complete diffusers pipeline (pipeline.save_pretrained(DIR)).",
        ) from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, dtype


def generate(
    content_dir: Path,
    model: str | None = None,
    force: bool = False,
    reporter=None,
    *,
    config: AtlasConfig | None = None,
    prompt_ids: list[str] | tuple[str, ...] = (),
    settings: Settings | None = None,
) -> dict:
    """Render every prompt x seed of ``prompts.toml`` whose recipe changed (all with ``force``).

    ``model`` (a diffusers folder or a hub id) overrides ``[generate] model``. Every image made is
    scored by the nudity classifier (:mod:`atlas.models.nsfw`) and by the model's safety checker when
    the model folder has one; its manifest records both (``nsfw``, ``safety_checker``), and a
    flagged image is not written (``"image": null``). Returns a summary: ``{"model", "licence",
    "device", "generated", "skipped", "screened", "flagged", "withheld", "classifier", "threshold",
    "images", "seconds", "stale"}`` where ``withheld`` counts images flagged by either check and
    ``stale`` lists generated folders no prompt uses any more. ``settings``: the environment
    (:class:`atlas.core.settings.Settings`, read here when not given) a hub id is fetched with.
    """
    from atlas.core.report import Reporter

    reporter = reporter or Reporter(quiet=True)
    content_dir = Path(content_dir)
    config = config or load_config(content_dir)
    options = config.generate
    prompts = load_prompts(content_dir)
    if prompt_ids:
        unknown = sorted(set(prompt_ids) - {p.id for p in prompts})
        if unknown:
            raise ContentError(
                f"no prompt with id {', '.join(unknown)}",
                where=str(content_dir / "prompts.toml"),
                hint=f"Known ids: {', '.join(p.id for p in prompts)}.",
            )
        prompts = [p for p in prompts if p.id in prompt_ids]
    # First: no image may be written, nor a committed one left, unscreened (atlas/screen.py).
    if screen.classifier_version() is None:
        raise screen.missing_error()
    threshold = options.nsfw_threshold
    source = resolve_model(model or options.model, content_dir, settings or Settings.from_env())
    scheduler = make_scheduler(source, options.scheduler)
    jobs, fresh = plan(prompts, content_dir, source, scheduler_recipe(scheduler), options, force)
    summary = {
        "model": source.id,
        "licence": source.licence,
        "images": sum(len(p.seeds) for p in prompts),
        "generated": 0,
        "skipped": fresh,
        "withheld": 0,
        "screened": 0,
        "flagged": 0,
        "classifier": screen.describe(),
        "threshold": options.nsfw_threshold,
        "device": None,
        "seconds": 0.0,
        "stale": _stale_folders(content_dir, prompts) if not prompt_ids else [],
    }
    for name in summary["stale"]:
        reporter.warn("generate", f"{GENERATED}/{name}/ belongs to no prompt in prompts.toml any more; delete it if unwanted")
    screened, flagged = screen_committed(content_dir, prompts, threshold, {(job.prompt.id, job.seed) for job in jobs})
    summary.update(screened=screened, flagged=flagged, withheld=flagged)
    if screened:
        reporter.info(
            f"screened {screened} committed image(s) that had no verdict for this file and threshold: "
            f"{flagged} flagged and removed"
        )
    if not jobs:
        reporter.info(f"all {fresh} image(s) up to date (use --force to regenerate)")
        return summary

    torch, diffusers = _load_torch_stack()
    import transformers

    device = resolve_device("auto", mps=False)  # as before: CUDA or the CPU, never MPS
    if device == "cpu":
        reporter.warn("device", f"no CUDA device: generating {len(jobs)} image(s) on the CPU in float32 (slow)")
    reporter.info(f"loading {source.id} ({source.family}, {source.pipeline_class}) on {device}")
    pipe, dtype = _load_pipeline(source, scheduler, device)
    versions = {
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    started = time.perf_counter()
    with reporter.progress("Generating images", total=len(jobs), unit="images") as task:
        for job in jobs:
            recipe = job.recipe
            generator = torch.Generator("cpu").manual_seed(job.seed)
            t0 = time.perf_counter()
            with torch.inference_mode():
                output = pipe(
                    prompt=recipe["prompt"],
                    negative_prompt=recipe["negative_prompt"] or None,
                    num_inference_steps=recipe["steps"],
                    guidance_scale=recipe["guidance"],
                    width=recipe["width"],
                    height=recipe["height"],
                    generator=generator,
                    output_type="pil",
                )
            seconds = time.perf_counter() - t0
            # diffusers' safety checker, when the model folder holds its weights (else None).
            flagged = getattr(output, "nsfw_content_detected", None)
            checker = None if flagged is None else bool(flagged[0])
            # Open-NSFW on the file as it would be committed, whatever the checker said.
            encoded = encode(output.images[0], recipe["output"]["format"])
            nsfw = screen.record(screen.score_bytes(encoded.data), threshold, hashlib.sha256(encoded.data).hexdigest())
            withheld = bool(checker) or nsfw["verdict"] == screen.FLAGGED
            if checker:
                safety = "withheld by the model's safety checker"
            elif withheld:
                safety = _classifier_safety(nsfw)
            else:
                safety = None
            manifest = {
                "recipe": recipe,
                "recipe_hash": job.hash,
                "prompt_id": job.prompt.id,
                "model_source": source.source,
                "model_licence": source.licence,
                "versions": versions,
                "device": device_name,
                "dtype": str(dtype).removeprefix("torch."),
                "seconds": round(seconds, 3),
                "safety_checker": checker,
                "nsfw": nsfw,
                "safety": safety,
            }
            write_result(content_dir, job.prompt.id, job.seed, None if withheld else encoded, manifest)
            summary["generated"] += 1
            summary["screened"] += 1
            summary["withheld"] += int(withheld)
            summary["flagged"] += int(nsfw["verdict"] == screen.FLAGGED)
            task.advance()
    summary["device"] = device_name
    summary["seconds"] = round(time.perf_counter() - started, 2)
    reporter.info(
        f"generated {summary['generated']} image(s), {summary['skipped']} up to date"
        + f", {summary['screened']} screened by {summary['classifier']}, {summary['withheld']} withheld"
        + f" ({summary['seconds']:.1f} s on {device_name})"
    )
    return summary


def _stale_folders(content_dir: Path, prompts: list[Prompt]) -> list[str]:
    root = Path(content_dir) / GENERATED
    if not root.is_dir():
        return []
    ids = {p.id for p in prompts}
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in ids)
