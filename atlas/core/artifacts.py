"""Committed GPU artifacts: stage outputs made on a GPU machine that a CPU-only build reuses.

``atlas build --export-artifacts`` copies the outputs of the GPU stages (those declaring
``artifact=True``: ``embed``, ``project`` and, when there are generated images, ``gallery``) into ``content/artifacts/<stage>/`` with a
``fingerprint.json``: the stage's cache key, its inputs, and a *portable* fingerprint of what the
output was made from: the stage's settings (without machine-specific ones such as the device,
batch size or local file times: each stage's ``portable`` rule) and the *content* of the upstream
outputs (each stage's ``digest``, e.g. the sample's rows, or its files' bytes). Commit that folder.

Before such a stage runs, the pipeline asks :meth:`ArtifactStore.check`: when the portable
fingerprint matches, the committed files are used instead of running the stage; when it does not
("stale"), the build says what changed and which command regenerates it, and runs the stage on
the CPU, or, under ``--frozen``, stops with an :class:`ArtifactError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.core.cache import MANIFEST, canonical, file_digest, fingerprint, replace_dir, tree_digests
from atlas.core.errors import AtlasError

ARTIFACTS = "artifacts"
FINGERPRINT = "fingerprint.json"
FORMAT = 1
REGENERATE = (
    "Regenerate it on the machine with the CLIP weights (a GPU): `atlas build --export-artifacts`, "
    "then commit content/artifacts/."
)


class ArtifactError(AtlasError):
    title = "artifact error"


def output_digest(stage, folder: Path) -> str:
    """What an upstream output holds, independent of the machine that made it: the stage's own
    ``digest`` where it declares one, else the SHA-256 of its files."""
    folder = Path(folder)
    if stage.digest is not None:
        return stage.digest(folder)
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        digests = {rel: meta["sha256"] for rel, meta in files.items() if not rel.startswith("_")}
    except (OSError, ValueError, KeyError, TypeError):
        digests = tree_digests(folder, lambda rel: rel.name.startswith("_"))
    return fingerprint(digests)


def portable_fingerprint(stage, inputs: dict, outputs: dict[str, Path], stages: dict) -> dict:
    """What a stage's output was made from, comparable across machines (``stages``: by name)."""
    return {
        "stage": stage.name,
        "version": stage.version,
        "inputs": canonical(stage.portable(canonical(inputs))),
        "upstream": {name: output_digest(stages[name], outputs[name]) for name in stage.after if name in outputs},
    }


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _differences(before: Any, now: Any, path: str = "") -> list[str]:
    """Readable leaf differences, e.g. ``[embed] model: 'ViT-B-32' -> 'ViT-L-14'``."""
    if isinstance(before, dict) and isinstance(now, dict):
        found = []
        for key in sorted(set(before) | set(now)):
            found += _differences(before.get(key), now.get(key), f"{path}.{key}" if path else key)
        return found
    if before == now:
        return []
    if path.startswith("upstream."):
        name = path.split(".", 1)[1]
        return [f"the {name} stage's output changed (upstream {name})"]
    if path.startswith("inputs."):
        parts = path.split(".")[1:]
        if len(parts) >= 2:  # a setting of a config section, e.g. [project] n_neighbors
            label = f"[{parts[0]}] {'.'.join(parts[1:])}"
        else:
            label = ".".join(parts)
        return [f"{label}: {_short(before)} -> {_short(now)}"]
    if path == "version":
        return [f"stage code version {before} -> {now}"]
    return [f"{path or 'fingerprint'} changed"]


@dataclass
class ArtifactCheck:
    """The state of one stage's committed artifact for this build."""

    stage: str
    folder: Path
    matches: bool
    message: str = ""
    #: Identifies the committed files; part of the stage's cache key.
    digest: str = ""

    @property
    def where(self) -> str:
        return f"{self.folder.parent.name}/{self.folder.name}"

    def key_part(self) -> dict:
        return {"fingerprint": self.digest, "matches": self.matches}

    def error(self) -> ArtifactError:
        return ArtifactError(self.message, hint=REGENERATE + " Without --frozen the build falls back to the CPU.")

    def copy_into(self, folder: Path) -> None:
        """Copy the committed files into a cache entry, checking them against fingerprint.json."""
        recorded = json.loads((self.folder / FINGERPRINT).read_text())["files"]
        present = {
            p.relative_to(self.folder).as_posix()
            for p in self.folder.rglob("*")
            if p.is_file() and p.name != FINGERPRINT
        }
        for rel, digest in recorded.items():
            path = self.folder / rel
            if not path.is_file() or file_digest(path) != digest:
                raise ArtifactError(
                    f"the committed artifact {self.folder / rel} is missing or does not match its fingerprint.json",
                    hint=REGENERATE,
                )
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        extra = sorted(present - set(recorded))
        if extra:
            raise ArtifactError(
                f"{self.folder} holds files its fingerprint.json does not list: {', '.join(extra[:3])}",
                hint=REGENERATE,
            )


class ArtifactStore:
    """The ``artifacts/`` folder of a content folder."""

    def __init__(self, root: Path, stages: list, frozen: bool = False):
        self.root = Path(root)
        #: The build's stages by name (their ``artifact``, ``portable`` and ``digest`` rules).
        self.stages = {stage.name: stage for stage in stages}
        self.frozen = frozen

    def folder(self, stage: str) -> Path:
        return self.root / stage

    def check(self, stage, inputs: dict, outputs: dict[str, Path]) -> ArtifactCheck | None:
        """None when the stage has no committed artifact (and none is required)."""
        if not stage.artifact:
            return None
        folder = self.folder(stage.name)
        path = folder / FINGERPRINT
        if not path.exists():
            if not self.frozen:
                return None
            return ArtifactCheck(
                stage.name, folder, False,
                f"--frozen needs a committed artifact for the {stage.name} stage, but {folder} has none.",
            )
        try:
            text = path.read_text(encoding="utf-8")
            recorded = json.loads(text)
            made_from = recorded["portable"]
            recorded["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return ArtifactCheck(stage.name, folder, False, f"{path} is unreadable or not an atlas fingerprint.",
                                 hashlib.sha256(path.read_bytes()).hexdigest())
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        now = canonical(portable_fingerprint(stage, inputs, outputs, self.stages))
        if fingerprint(made_from) == fingerprint(now):
            return ArtifactCheck(stage.name, folder, True, "", digest)
        changes = _differences(made_from, now)
        listed = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        message = (
            f"the committed artifact {folder} no longer matches this build "
            f"({listed or 'its fingerprint differs'})."
        )
        return ArtifactCheck(stage.name, folder, False, message, digest)

    def export(self, stage, result, outputs: dict[str, Path], method: str | None = None) -> str:
        """Copy one stage's cache entry into ``artifacts/<stage>/``; returns what happened."""
        made_from = canonical(portable_fingerprint(stage, result.inputs, outputs, self.stages))
        target = self.folder(stage.name)
        files = tree_digests(result.path, lambda rel: rel.name == MANIFEST)
        try:
            old = json.loads((target / FINGERPRINT).read_text())
            if old.get("portable") == made_from and old.get("files") == files:
                return "up to date"
        except (OSError, ValueError):
            pass
        record = {
            "format": FORMAT,
            "stage": stage.name,
            "key": result.key,
            "portable": made_from,
            "inputs": canonical(result.inputs),
            "files": files,
            "method": method,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{stage.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(result.path, tmp, ignore=shutil.ignore_patterns(MANIFEST))
        (tmp / FINGERPRINT).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        replace_dir(tmp, target)
        return "exported"
