"""The stage cache: atomic entries, damaged entries detected and rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.builds import content_copy, quiet_build, ran, statuses
from atlas.core.cache import Cache, fingerprint


def _write(folder, text="hello"):
    (folder / "out.txt").write_text(text)
    return {"n": 1}


def test_fingerprint_ignores_dict_order_and_tuple_vs_list():
    assert fingerprint({"a": 1, "b": (1, 2)}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint(np.arange(3, dtype=np.int32)) != fingerprint(np.arange(3, dtype=np.int64))


def test_put_then_get_returns_the_entry(tmp_path):
    cache = Cache(tmp_path)
    path, summary = cache.put("stage", "ab" * 32, _write)
    assert summary == {"n": 1}
    assert cache.get("stage", "ab" * 32) == path
    assert (path / "out.txt").read_text() == "hello"


def test_a_failed_stage_leaves_no_entry_and_no_temporary_folder(tmp_path):
    cache = Cache(tmp_path)

    def crash(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("stage crashed")

    with pytest.raises(RuntimeError):
        cache.put("stage", "cd" * 32, crash)
    assert cache.get("stage", "cd" * 32) is None
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "stage").rglob("*"))


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete", "manifest"])
def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path, damage):
    cache = Cache(tmp_path)
    path, _ = cache.put("stage", "ef" * 32, lambda folder: _write(folder, "x" * 1000))
    target = path / "out.txt"
    if damage == "truncate":
        target.write_text("x" * 10)
    elif damage == "edit":
        target.write_text("y" * 1000)  # same size, different bytes
    elif damage == "delete":
        target.unlink()
    else:
        (path / "_manifest.json").write_text("{not json")
    assert cache.get("stage", "ef" * 32) is None
    assert not path.exists()


def test_a_truncated_cache_file_is_rebuilt_by_the_next_build(shared, tmp_path):
    content = content_copy(shared, tmp_path / "content")
    first = quiet_build(content, tmp_path / "site", shared["cache"])
    project = next(r for r in first.results if r.name == "project")
    coords = project.path / "coords.npy"
    good = coords.read_bytes()
    coords.write_bytes(good[: len(good) // 2])  # a crash or a full disk mid-copy

    report = quiet_build(content, tmp_path / "site", shared["cache"])
    assert statuses(report)["project"] == "ran"
    assert "damaged" in next(r.reason for r in report.results if r.name == "project")
    # Same inputs, same key: downstream stages are still cached.
    assert ran(report) == {"project"}
    assert np.load(coords).shape == (300, 2)
