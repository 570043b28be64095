"""Parquet shards and content folders written in code, and the files of a built tree."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_shard(path: Path, data: dict[str, list] | list[dict], types: dict[str, pa.DataType] | None = None) -> Path:
    """A parquet shard from columns (name -> values) or from rows (dicts; a key a row lacks is
    null there), with LAION's column names or any others; types are inferred unless given."""
    if isinstance(data, list):
        data = {name: [row.get(name) for row in data] for name in sorted({key for row in data for key in row})}
    types = types or {}
    table = pa.table({name: pa.array(values, types.get(name)) for name, values in data.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_content(folder: Path, pages: dict[str, str] | None = None, toml: str = "", artists: str | None = None) -> Path:
    """A content folder with atlas.toml and the given pages (name -> Markdown, dedented)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "atlas.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    pages = pages or {"index.md": "---\ntitle: Home\n---\n# Home\n\n```atlas stat value=rows label=rows\n```\n"}
    for name, text in pages.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    if artists is not None:
        (folder / "artists.txt").write_text(artists, encoding="utf-8")
    return folder


def edit_config(content: Path, pattern: str, replacement: str) -> None:
    """Replace the one line of ``atlas.toml`` that matches ``pattern`` (a regular expression)."""
    config = content / "atlas.toml"
    text, count = re.subn(f"(?m)^{pattern}$", replacement, config.read_text(encoding="utf-8"))
    assert count == 1, f"{config}: {count} lines match {pattern!r}"
    config.write_text(text, encoding="utf-8")


#: A small map for content folders written in code.
SMALL_MAP = """
[sample]
size = 300

[project]
fit_size = 300
"""


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative POSIX path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hostile_shard(path: Path, seed: int, n: int = 400) -> Path:
    """A shard of LAION's columns with hostile values: NaN/inf/negative/missing scores, odd URLs
    (userinfo, ports, javascript:, upper case, ftp:), blank, HTML and SQL-ish captions, NSFW tags
    unknown or missing; ``seed`` varies which row gets which."""
    nan, inf = float("nan"), float("inf")
    scores = [nan, inf, -0.5, None, 0.26, 0.28, 0.3, 0.5, 0.8, 1e300]
    urls = ["https://www.Example.com/a", "http://user:pw@cdn.site.org:81/b", "javascript:alert(1)", None,
            "HTTPS://I.PINIMG.COM/x", "ftp://files.example.org/y", "not a url"]
    captions = ["a cat", "   ", "", None, "<b>bold</b> dog", "Claude Monet garden", "Jakub Różalski", "x'; --"]
    rows = range(n)
    return write_shard(
        path,
        {
            "URL": [urls[(i * 7 + seed) % len(urls)] if i % 5 else f"https://h{(i + seed) % 37}.org/{i}" for i in rows],
            "TEXT": [captions[(i + seed) % len(captions)] if i % 3 else f"caption {seed}-{i}" for i in rows],
            "similarity": [scores[(i + seed) % len(scores)] if i % 2 else (i % 60) / 100 for i in rows],
            "punsafe": [scores[(i * 3 + seed) % len(scores)] if i % 4 == 0 else (i % 10) / 10 for i in rows],
            "WIDTH": [(i * 37 + seed) % 3000 for i in rows],
            "NSFW": [["UNLIKELY", "NSFW", None][i % 3] for i in rows],
        },
        {"similarity": pa.float64(), "punsafe": pa.float64()},
    )
