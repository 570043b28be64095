"""``[data] engine = "ray"``: the shards' partial statistics as Ray tasks on a local Ray give the
local engine's statistics and examples; the shard cache is shared between the engines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from atlas.core.cache import Cache
from atlas.core.config import DataConfig, load_config
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.data.sources import resolve_sources
from atlas.core.errors import ConfigError, DataError
from atlas.core.report import Reporter
from atlas.stages.stats import ray_partials, run_stats, stats_json

from helpers.content import hostile_shard
from helpers.paths import needs_ray


@pytest.fixture
def shards(shared_data, tmp_path) -> list[Path]:
    """The LAION sample in four shards (URL and TEXT only), two hostile shards with more
    columns, and a shard with the sample's schema but no rows."""
    table = pq.read_table(shared_data / "laion400m-sample-10k.parquet")
    quarter = table.num_rows // 4
    paths = []
    for i in range(4):
        paths.append(tmp_path / "shards" / f"part-{i}.parquet")
        paths[-1].parent.mkdir(exist_ok=True)
        pq.write_table(table.slice(i * quarter, quarter if i < 3 else table.num_rows - 3 * quarter), paths[-1])
    paths += [hostile_shard(tmp_path / "shards" / f"part-{i}.parquet", i, n=300) for i in (4, 5)]
    paths.append(tmp_path / "shards" / "part-6.parquet")
    pq.write_table(table.slice(0, 0), paths[-1])
    content = tmp_path / "content"
    content.mkdir()
    (content / "artists.txt").write_text((shared_data / "artists.txt").read_text(encoding="utf-8") + "\nClaude Monet\nJakub Rozalski\n",
                                         encoding="utf-8")
    return paths


def _run(paths: list[Path], engine: str, cache=None):
    content = paths[0].parent.parent / "content"
    sources = resolve_sources([str(p) for p in paths], Path.cwd())
    config = DataConfig(artists="artists.txt", engine=engine)
    stats, examples, _, scanned = run_stats(sources, config, content, Reporter(quiet=True), cache=cache,
                                            policy=load_policy(config, content))
    return stats, examples, sorted(Path(s).name for s in scanned)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the tests below (``ray_session`` uses an initialised Ray as it is)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_engine_gives_the_local_statistics_and_examples(shards):
    """The first test starts its own local Ray (none is running yet) and must leave none behind."""
    import ray

    local_stats, local_examples, _ = _run(shards, "local")
    stats, examples, scanned = _run(shards, "ray")
    assert scanned == sorted(p.name for p in shards)  # every shard, as a Ray task
    assert stats_json(stats) == stats_json(local_stats)  # the published stats.json, byte for byte
    assert examples == local_examples and len(examples["captions"]) > 50
    # The shards without score columns count as missing values there, as in the union of all shards.
    assert stats["rows"] == 10_000 + 600 and stats["histograms"]["similarity"]["invalid"] > 10_000
    assert stats["histograms"]["similarity"]["counts"][-1] > 0  # 1e300 in the last bin
    assert any(a["name"] == "Jakub Rozalski" and a["count"] > 0 for a in stats["artists"])
    assert not ray.is_initialized()  # the local Ray started for the build is shut down after it


@needs_ray
def test_the_shard_cache_is_shared_between_the_engines(shards, tmp_path, local_ray):
    cache = Cache(tmp_path / "cache")
    assert len(_run(shards[:5], "local", cache)[2]) == 5  # (the same columns as all seven: the same keys)
    stats, examples, scanned = _run(shards, "ray", cache)
    assert scanned == ["part-5.parquet", "part-6.parquet"]  # only the new shards, on Ray
    assert (stats, examples) == _run(shards, "local")[:2]  # a full local recomputation without cache
    hostile_shard(shards[5], 99, n=40)  # same name, new content
    stat = shards[5].stat()
    os.utime(shards[5], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    stats, examples, scanned = _run(shards, "ray", cache)
    assert scanned == ["part-5.parquet"] and stats["rows"] == 10_000 + 340
    assert (stats, examples) == _run(shards, "local")[:2]


@needs_ray
def test_a_shard_a_task_cannot_read_is_a_data_error(shards, local_ray):
    """On a cluster a worker may not see a driver's local file: the task's DataError reaches the
    build as it is (no Ray traceback), naming the shard and what to do."""
    rows = open_rows(resolve_sources([str(p) for p in shards[:2]], Path.cwd()), DataConfig(), policy=load_policy(DataConfig(), None))
    shards[1].unlink()
    with pytest.raises(DataError) as error:
        ray_partials(rows, DataConfig(engine="ray"), [])
    assert "part-1.parquet" in str(error.value) and "every node" in error.value.hint
    rows.con.close()


def test_engine_ray_without_the_extra_is_a_config_error(shards, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if `pip install ".[ray]"` had not been run
    with pytest.raises(ConfigError, match=r"needs Ray Data") as error:
        _run(shards, "ray")
    assert error.value.where == "[data] engine" and '".[ray]"' in error.value.hint


@pytest.mark.parametrize("value", ['"spark"', '"Ray"', "1", '""'])
def test_engine_is_validated(tmp_path, value):
    (tmp_path / "atlas.toml").write_text(f"[data]\nengine = {value}\n")
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)
    assert "[data] engine" in str(error.value) and '"local"' in str(error.value) and '"ray"' in str(error.value)


def test_engine_defaults_to_local_and_does_not_change_the_stage_key(tmp_path):
    (tmp_path / "atlas.toml").write_text('[data]\nengine = "ray"\n')
    assert load_config(tmp_path).data.engine == "ray" and DataConfig().engine == "local"
    from atlas.core.pipeline import machine_free

    assert machine_free({"data": {"engine": "ray", "seed": 1}}) == {"data": {"seed": 1}}
