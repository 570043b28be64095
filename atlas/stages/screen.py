"""The screen stage (``screen``, part of ``atlas build``, CPU only): every committed generated
image scored by the nudity classifier (Open-NSFW, :mod:`atlas.models.nsfw`) before a page may show it.

Committed images are screened here even when their manifest records a score: images committed
before screening existed have none, a hand-edited manifest may say anything, and the threshold may
have changed since. Scores are cached per image digest under ``<cache>/nsfw-scores/``, so a build
scores only new or changed files. The verdicts (:func:`read`) are what the gallery and bias-grid
widgets check (:func:`check`); flagged and unscreened images are never copied into
the site, and the counts reach ``data/build.json`` (``generated_images``) and the build summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from atlas.models import nsfw as screen
from atlas.core.cache import file_digest, read_json
from atlas.core.generated import GENERATED, read_manifest
from atlas.core.pipeline import Stage

SCORES_DIR = "nsfw-scores"


def _images(ctx) -> list[tuple[str, Path]]:
    from atlas.stages.gallery import generated_images

    return generated_images(ctx.content_dir)


def _manifest(path: Path) -> dict | None:
    """The manifest beside a committed image (``<seed>.json`` for ``<seed>.webp``)."""
    return read_manifest(path.with_suffix(".json"))


def _never_written(ctx) -> list[str]:
    """``<prompt-id>/<seed>`` of the manifests whose image ``atlas generate`` withheld."""
    root = Path(ctx.content_dir) / GENERATED
    return [
        f"{path.parent.name}/{path.stem}"
        for path in sorted(root.glob("*/*.json"))
        if (manifest := read_manifest(path)) is not None and manifest.get("image") is None
    ]


def _inputs(ctx) -> dict:
    images = []
    for key, path in _images(ctx):
        recorded = (_manifest(path) or {}).get("nsfw")
        images.append([key, file_digest(path), recorded if isinstance(recorded, dict) else None])
    return {
        "images": images,
        "classifier": screen.classifier_version(),
        "threshold": ctx.config.generate.nsfw_threshold,
        "never_written": _never_written(ctx),
    }


def _run(ctx, folder: Path) -> dict:
    threshold = ctx.config.generate.nsfw_threshold
    cache_dir = Path(ctx.cache.root) / SCORES_DIR
    verdicts = {}
    for key, path in _images(ctx):
        verdicts[key] = screen.screen_file(path, threshold, _manifest(path), cache_dir=cache_dir)
    version = screen.classifier_version()
    data = {
        "classifier": screen.describe(version) if version else None,
        "threshold": threshold,
        "images": {key: found.as_json() for key, found in verdicts.items()},
    }
    (folder / screen.VERDICTS).write_text(json.dumps(data, indent=1), encoding="utf-8")
    states = [found.state for found in verdicts.values()]
    summary = {
        "classifier": data["classifier"],
        "threshold": threshold,
        "images": len(states),
        "passed": states.count(screen.PASSED),
        "withheld": states.count(screen.FLAGGED),
        "unscreened": states.count(screen.UNSCREENED),
        # Flagged when they were generated (by either check), so never committed.
        "withheld_when_generated": len(_never_written(ctx)),
    }
    if summary["withheld"]:
        ctx.reporter.warn(
            "nsfw",
            f"{summary['withheld']} generated image(s) were withheld from the site: the nudity classifier "
            f"({screen.describe(version)}) scored them at or above {threshold} ([generate] nsfw_threshold); "
            "delete them from content/generated/ or regenerate them with other seeds",
        )
    if summary["unscreened"]:
        problems = sorted({found.problem for found in verdicts.values() if found.state == screen.UNSCREENED})
        ctx.reporter.warn(
            "nsfw",
            f"{summary['unscreened']} generated image(s) were withheld from the site because they could not be "
            f"screened for nudity: {'; '.join(problems)[:300]}",
        )
    return summary


@dataclass
class Verdicts:
    """What the screen stage decided: per image (``<prompt-id>/<seed>``) its state, the SHA-256 of
    the file it judged, its score; and the classifier and threshold used."""

    classifier: str | None
    threshold: float | None
    images: dict[str, dict] = field(default_factory=dict)


def read(folder: Path | None) -> Verdicts | None:
    """The screen stage's output in ``folder``, or None (no folder or no readable file)."""
    data = read_json(folder, screen.VERDICTS)
    if not isinstance(data, dict):
        return None
    images = data.get("images")
    return Verdicts(data.get("classifier"), data.get("threshold"), images if isinstance(images, dict) else {})


STAGE = Stage(
    name="screen",
    version="1",
    inputs=_inputs,
    run=_run,
    enabled=lambda ctx: bool(_images(ctx) or _never_written(ctx)),
    description="the committed Stable Diffusion images screened by a nudity classifier (Open-NSFW)",
)


def check(ctx, key: str, path: Path, manifest: dict | None) -> screen.Verdict:
    """The verdict on the image ``key`` about to be published from ``path``: the screen stage's
    when it judged this very file, else screened here and now (a widget rendered outside a build,
    or a file changed since), so no code path publishes an image that was not screened."""
    digest = file_digest(path)
    verdicts = read(ctx.outputs.get("screen"))
    found = verdicts.images.get(key) if verdicts is not None else None
    states = (screen.PASSED, screen.FLAGGED, screen.UNSCREENED)
    if isinstance(found, dict) and found.get("sha256") == digest and found.get("state") in states:
        return screen.Verdict(found["state"], digest, found.get("score"), found.get("by") or "classifier",
                              found.get("problem") or "")
    return screen.screen_file(path, ctx.config.generate.nsfw_threshold, manifest, digest=digest)
