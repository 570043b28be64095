"""The sample stage over real parquet with real DuckDB."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from helpers.builds import make_context
from helpers.content import write_shard
from helpers.paths import SAMPLE_10K, needs_shared

from atlas.core.config import DataConfig
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.data.sources import resolve_sources
from atlas.core.pipeline import run_stages
from atlas.stages import sample as sample_stage
from atlas.stages.sample import OUTPUT_COLUMNS, allocate, draw_sample


def _rows(paths, base):
    return open_rows(resolve_sources([str(p) for p in paths], base), DataConfig(unscored="keyword-filter"), policy=load_policy(DataConfig(unscored="keyword-filter"), None))


@needs_shared
def test_sample_has_requested_size_and_contract_columns(tmp_path):
    rows = _rows([SAMPLE_10K], tmp_path)
    table = draw_sample(rows, 500, seed=1)
    assert table.num_rows == 500
    assert table.column_names == list(OUTPUT_COLUMNS)
    assert table.column("row_id").to_pylist() == list(range(500))
    assert str(table.schema.field("row_id").type) == "int64"
    for name in ("similarity", "punsafe", "width", "height"):
        assert str(table.schema.field(name).type) == "double"
    assert all(c and c.strip() for c in table.column("caption").to_pylist())
    # source_row points back at the same row of the shard.
    original = pq.read_table(SAMPLE_10K, columns=["URL", "TEXT"])
    for source_row, url, caption in list(zip(table.column("source_row").to_pylist(),
                                             table.column("url").to_pylist(),
                                             table.column("caption").to_pylist()))[:50]:
        assert original.column("URL")[source_row].as_py() == url
        assert original.column("TEXT")[source_row].as_py() == caption


@needs_shared
def test_same_seed_draws_the_same_sample_and_another_seed_another(tmp_path):
    first = draw_sample(_rows([SAMPLE_10K], tmp_path), 300, seed=7)
    again = draw_sample(_rows([SAMPLE_10K], tmp_path), 300, seed=7)
    other = draw_sample(_rows([SAMPLE_10K], tmp_path), 300, seed=8)
    assert first.equals(again)
    overlap = set(first.column("url").to_pylist()) & set(other.column("url").to_pylist())
    assert len(overlap) < 150


def test_unsafe_and_uncaptioned_rows_never_enter_the_sample(tmp_path):
    punsafe = [0.0, 0.1, 0.49, float("nan"), None, 0.5, 0.9, 0.2, 0.3]
    captions = ["ok zero", "ok one", "ok edge", "nan", "null", "at threshold", "unsafe", None, "   "]
    shard = write_shard(tmp_path / "part.parquet", [
        {"URL": f"https://site{i}.example.com/{i}.jpg", "TEXT": c, "punsafe": p}
        for i, (c, p) in enumerate(zip(captions, punsafe))
    ])
    table = draw_sample(_rows([shard], tmp_path), 100, seed=0)
    assert sorted(table.column("caption").to_pylist()) == ["ok edge", "ok one", "ok zero"]
    assert max(table.column("punsafe").to_pylist()) < 0.5


def test_nsfw_tag_also_excludes_rows(tmp_path):
    shard = write_shard(tmp_path / "part.parquet", [
        {"URL": "https://a.example.com/1.jpg", "TEXT": "a cat", "punsafe": 0.1, "NSFW": "UNLIKELY"},
        {"URL": "https://a.example.com/2.jpg", "TEXT": "a dog", "punsafe": 0.1, "NSFW": "NSFW"},
    ])
    table = draw_sample(_rows([shard], tmp_path), 10, seed=0)
    assert table.column("caption").to_pylist() == ["a cat"]


def test_stratification_keeps_small_domains(tmp_path):
    rows = [{"URL": f"https://cdn{i % 7}.bigshop.com/p/{i}.jpg", "TEXT": f"product {i}", "punsafe": 0.0}
            for i in range(2000)]
    small = [f"blog{j}.co.uk" for j in range(12)]
    rows += [{"URL": f"https://www.{d}/img/{k}.jpg", "TEXT": f"photo {k} from {d}", "punsafe": 0.0}
             for d in small for k in range(3)]
    shard = write_shard(tmp_path / "part.parquet", rows)
    table = draw_sample(_rows([shard], tmp_path), 100, seed=3)
    domains = table.column("domain").to_pylist()
    assert table.num_rows == 100
    # A plain random draw of 100 from 2,036 rows would miss most of the 12 small blogs.
    assert set(small) <= set(domains)
    # Subdomains roll up to the registrable domain.
    assert "bigshop.com" in domains and not any(d.startswith("cdn") for d in domains)
    # The big shop still fills the spare quota the small ones cannot use.
    assert domains.count("bigshop.com") >= 100 - 12 * 3


def test_allocate_caps_large_domains_and_gives_spare_quota_away():
    # Plenty of domains: proportional, at least one row each, none over the 10% cap.
    counts = np.array([10_000] + [100] * 40 + [1] * 5)
    quota = allocate(counts, 1000, max_share=0.1)
    assert quota.sum() == 1000
    assert quota[0] == 100  # capped (it has 2/3 of the rows)
    assert all(quota[41:] == 1)  # one-row domains are kept
    assert all(quota[1:41] >= 20)  # the spare quota went to the mid-sized domains
    # Too few other rows to fill the sample: the cap rises just enough (water-filling).
    assert allocate(np.array([10_000, 5_000, 50, 3, 1]), 1000, max_share=0.1).tolist() == [473, 473, 50, 3, 1]
    # Proportional below the cap; rounding leftovers go to the largest remainder, earlier first.
    assert allocate(np.array([1000, 1000, 10]), 100, max_share=0.6).tolist() == [50, 49, 1]
    assert allocate(np.array([5, 5]), 100).tolist() == [5, 5]


def test_sample_stage_writes_parquet_and_reports_population(tmp_path):
    first = write_shard(tmp_path / "a.parquet", [
        {"URL": f"https://a{i}.example.org/{i}.jpg", "TEXT": f"first shard {i}", "punsafe": 0.1} for i in range(30)])
    second = write_shard(tmp_path / "b.parquet", [
        {"URL": f"https://b{i}.example.net/{i}.jpg", "TEXT": f"second shard {i}", "punsafe": 0.9 if i % 2 else 0.1}
        for i in range(20)])
    ctx = make_context(tmp_path, [str(first), str(second)], sample={"size": 25, "seed": 5})
    [result] = run_stages([sample_stage.STAGE], ctx)
    assert result.status == "ran"
    assert result.summary["rows"] == 25 and result.summary["population"] == 40
    table = pq.read_table(ctx.output("sample") / "sample.parquet")
    assert table.num_rows == 25
    for row in table.to_pylist():  # global row index across shards, in source order
        index = row["source_row"]
        expected = f"first shard {index}" if index < 30 else f"second shard {index - 30}"
        assert row["caption"] == expected
    # Same inputs: cached. Another sample size: runs again.
    ctx2 = make_context(tmp_path, [str(first), str(second)], sample={"size": 25, "seed": 5})
    assert run_stages([sample_stage.STAGE], ctx2)[0].status == "cached"
    ctx3 = make_context(tmp_path, [str(first), str(second)], sample={"size": 10, "seed": 5})
    assert run_stages([sample_stage.STAGE], ctx3)[0].status == "ran"


def _shop_shard(tmp_path):
    rows = [{"URL": f"https://img{i % 5}.shop{i % 9}.com/{i}.jpg", "TEXT": f"item {i}", "punsafe": 0.01}
            for i in range(3000)]
    return write_shard(tmp_path / "shop.parquet", rows)


def test_sample_is_the_smallest_keys_of_each_domain(tmp_path):
    """The streaming cut-off gives exactly what a full per-domain ranking would."""
    shard = _shop_shard(tmp_path)
    rows = _rows([shard], tmp_path)
    table = draw_sample(rows, 400, seed=11)
    quotas = {}
    for domain in table.column("domain").to_pylist():
        quotas[domain] = quotas.get(domain, 0) + 1
    for domain, quota in quotas.items():
        expected = rows.con.execute(
            f"""SELECT url FROM rows WHERE host LIKE '%{domain}'
                ORDER BY md5_number_upper(concat_ws(chr(31), '11', url, caption)), url LIMIT {quota}"""
        ).fetchall()
        got = [u for u, d in zip(table.column("url").to_pylist(), table.column("domain").to_pylist()) if d == domain]
        assert got == [u for (u,) in expected]


def test_a_too_tight_cut_off_is_widened(tmp_path, monkeypatch):
    shard = _shop_shard(tmp_path)
    expected = draw_sample(_rows([shard], tmp_path), 400, seed=11)
    monkeypatch.setattr(sample_stage, "_keep_thresholds", lambda counts, quota: [0] * len(counts))
    assert draw_sample(_rows([shard], tmp_path), 400, seed=11).equals(expected)
