"""A content-addressed cache of stage outputs.

Each entry is a folder ``<root>/<stage>/<key[:2]>/<key>/`` holding the files a stage wrote plus
``_manifest.json`` (every file's size and SHA-256). Entries are written to a temporary folder and
renamed into place, so a crash never leaves a half-written entry under its key; an entry whose
files do not match its manifest (truncated, edited, missing) is treated as a miss and rebuilt.
Keys come from :func:`fingerprint`, which hashes typed values canonically.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
#: The small JSON summary a stage returned (see atlas.core.pipeline).
SUMMARY = "_summary.json"
#: Files the cache keeps beside a stage's outputs: never published.
#: The warnings a stage raised while it ran, replayed when its output is reused.
WARNINGS = "_warnings.json"
BOOKKEEPING = (MANIFEST, SUMMARY, WARNINGS)


def canonical(value: Any) -> Any:
    """Turn a value into JSON-able data with one spelling per meaning."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(canonical(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return {"bytes": hashlib.sha256(value).hexdigest()}
    if hasattr(value, "model_dump"):  # pydantic models
        return canonical(value.model_dump(mode="json"))
    if hasattr(value, "dtype") and hasattr(value, "tobytes"):  # numpy arrays
        return {
            "array": str(value.dtype),
            "shape": list(value.shape),
            "sha256": hashlib.sha256(value.tobytes()).hexdigest(),
        }
    if isinstance(value, float) and value != value:
        return "NaN"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def fingerprint(value: Any) -> str:
    """A stable hex digest of ``value`` (dict order, tuples vs lists and paths do not matter)."""
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digests(folder: Path, skip: Callable[[Path], bool] = lambda rel: False) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative POSIX path, except where ``skip(rel)``."""
    folder = Path(folder)
    digests = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not skip(rel):
            digests[rel.as_posix()] = file_digest(path)
    return digests


def file_stamp(path: Path) -> dict:
    """A file's path, size and modification time (None for a missing file): cheap identity."""
    try:
        stat = Path(path).stat()
    except OSError:
        return {"path": str(path), "size": None, "mtime_ns": None}
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_json(folder: Path | None, name: str) -> Any:
    """The JSON file ``name`` in a stage's output ``folder``, or None when there is no folder or
    the file is missing or unreadable (the stage did not run, or wrote nothing usable): what the
    stages' ``read`` functions start from."""
    if folder is None:
        return None
    try:
        return json.loads((Path(folder) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename, so readers see
    the old file or the new one, never a half-written one. Raises OSError (e.g.
    IsADirectoryError when ``path`` is a folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:  # after a failure (a full disk, a folder at ``path``) no temporary file stays behind
        with contextlib.suppress(OSError):
            tmp.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``, then delete what was there before.

    Where the system can, the two folders are swapped in one atomic step, so that a crash
    (even SIGKILL) at any moment leaves ``target`` whole, old or new; elsewhere two renames,
    between which ``target`` briefly does not exist. Readers never see a half-written folder.
    """
    if target.exists() and _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old folder
        return
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale(folder: Path, pattern: str) -> None:
    """Remove leftovers of killed processes in ``folder``: entries matching ``pattern`` whose
    name holds the id of a process that no longer runs (``...-<pid>-...`` or ``....<pid>.tmp``)."""
    for path in Path(folder).glob(pattern):
        digits = [int(part) for part in re.split(r"[.-]", path.name) if part.isdigit()]
        if digits and not any(_running(pid) for pid in digits):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """True when a process ``pid`` exists (or may: no permission to signal it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**22
    return True


def _write_manifest(folder: Path) -> None:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"size": path.stat().st_size, "sha256": file_digest(path)}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True))


def verify_entry(folder: Path) -> bool:
    """True when every file listed in the manifest is present with its recorded size and hash."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for rel, meta in files.items():
        path = folder / rel
        try:
            if path.stat().st_size != meta["size"] or file_digest(path) != meta["sha256"]:
                return False
        except OSError:
            return False
    return True


class Cache:
    """Stage outputs under one root folder (``--cache-dir`` / ``ATLAS_CACHE_DIR``)."""

    def __init__(self, root: Path):
        # Absolute, so paths handed to other stages do not depend on the folder they resolve from.
        self.root = Path(root).absolute()
        #: (stage, key) of entries found damaged and removed during this build.
        self.damaged: set[tuple[str, str]] = set()

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def get(self, stage: str, key: str) -> Path | None:
        """The verified entry folder, or None (a damaged entry is removed so it is rebuilt)."""
        folder = self.entry(stage, key)
        if not folder.is_dir():
            return None
        if verify_entry(folder):
            return folder
        log.warning("cache entry %s/%s is damaged; rebuilding it", stage, key[:12])
        self.damaged.add((stage, key))
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def put(self, stage: str, key: str, build: Callable[[Path], Any]) -> tuple[Path, Any]:
        """Run ``build(tmp_folder)`` and move the folder into place atomically."""
        final = self.entry(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(final.parent, f".{key[:12]}.*.tmp")  # left by a build that was killed
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=f".{os.getpid()}.tmp", dir=final.parent))
        try:
            result = build(tmp)
            _write_manifest(tmp)
            if final.exists():  # a concurrent build got there first, or a damaged leftover
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final, result

    # Explanations: what a stage's inputs were the last time it ran, to say what changed.
    def _last_path(self, stage: str) -> Path:
        return self.root / stage / "last.json"

    def last_inputs(self, stage: str) -> dict | None:
        try:
            return json.loads(self._last_path(stage).read_text())
        except (OSError, ValueError):
            return None

    def remember_inputs(self, stage: str, key: str, inputs: dict) -> None:
        write_atomic(self._last_path(stage), json.dumps({"key": key, "inputs": canonical(inputs)}, sort_keys=True))
