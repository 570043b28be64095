"""Snapshot of a whole build, in the manner of Observable Framework's build tests: a tiny content
folder (tests/snapshots/tiny/input, plus a parquet shard of fixed values written here) is built and
every published file is compared with tests/snapshots/tiny/expected, so that a change to any page or
data file shows up as a reviewable diff.

The expected tree holds each file in a normalised form: build dates, versions, durations, hashes and
cache keys are replaced by placeholders; files whose bytes follow the 2-D projection (UMAP is not
bit-stable across machines) are summarised without positions or order; other binary files are kept
as they are and compared by SHA-256.

Changed the output on purpose? ``ATLAS_UPDATE_SNAPSHOTS=1 pytest tests/test_snapshot.py`` rewrites
the expected tree; review and commit it with the change.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from atlas.core.settings import Settings

from helpers.builds import quiet_build
from helpers.content import write_shard

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("ATLAS_UPDATE_SNAPSHOTS") == "1"

TEXT_SUFFIXES = {".html", ".css", ".js", ".mjs", ".json", ".csv", ".txt", ".xml", ".svg", ".md", ""}
#: Keys of build.json (and anything else) whose values change from build to build or machine to machine.
VOLATILE = {
    "atlas": "<version>", "python": "<version>", "built_at": "<date>", "built_on": "<machine>",
    "commit": "<commit>", "seconds": "<duration>", "render_key": "<hash>", "site_bytes": "<bytes>",
}
#: Theme files copied as they are (test_site_links checks that every page finds them).
COPIED = re.compile(r"^static/")
#: Published files whose bytes follow the projection: positions, the points' order, the clusters.
LAYOUT = re.compile(r"^map/data/")
#: Links to a point on the map (the score-sorted lists): its position and index follow the projection.
POINT_LINK = re.compile(r"map/#x=[\d.]+&amp;y=[\d.]+&amp;z=\d+&amp;p=\d+")
#: Images the build draws with Pillow's bundled font: their pixels follow Pillow's version.
DRAWN = re.compile(r"^og\.png$")
DATE = re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z?)?\b")
HASH = re.compile(r"\b[0-9a-f]{16,64}\b")
VERSION = re.compile(r"\batlas \d+(?:\.\d+)+(?:[-+.]?[a-z]+\d*)?")

# ----------------------------------------------------------------------------- the input


THEMES = (
    ("red rose", ("garden", "bouquet", "watercolor", "close-up photo")),
    ("vintage car", ("engine", "poster", "for sale", "at a show")),
    ("wedding dress", ("lace", "summer", "bride", "boutique")),
    ("mountain lake", ("sunrise", "painting by Claude Monet", "panorama", "hiking")),
)
HOSTS = ("i.pinimg.com", "cdn.shopify.com", "www.etsy.com", "upload.wikimedia.org", "images.example.org")
#: Which host each run of twelve rows links to: a few big domains, a long tail.
HOST_PATTERN = (0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4)
UNSAFE_MARKER = "snapshot-unsafe-row"


def snapshot_rows(n: int = 96) -> list[dict]:
    """LAION-shaped rows with fixed values, edge cases included: unsafe rows, a javascript: URL, a
    caption with markup, NaN and missing scores."""
    rows = []
    for i in range(n):
        subject, extras = THEMES[i % len(THEMES)]
        caption = f"{subject} {extras[(i // 4) % 4]} #{i}"
        punsafe = round(0.002 * (i % 11), 4)
        if i % 16 == 5:
            caption, punsafe = f"{UNSAFE_MARKER} {i}", 0.93
        rows.append({
            "URL": f"https://{HOSTS[HOST_PATTERN[i % len(HOST_PATTERN)]]}/{i:03d}.jpg",
            "TEXT": caption,
            "WIDTH": 256 + 32 * (i % 9),
            "HEIGHT": 256 + 48 * (i % 5),
            "similarity": round(0.24 + 0.01 * (i % 13), 4),
            "punsafe": punsafe,
            "pwatermark": round(0.05 * (i % 19), 4),
            "AESTHETIC_SCORE": round(4.0 + 0.125 * (i % 24), 4),
        })
    rows[10]["URL"] = "javascript:alert(1)"
    rows[22]["TEXT"] = '<script>alert("x")</script> vintage car & "quotes"'
    rows[30]["similarity"] = float("nan")
    rows[42]["similarity"] = None
    rows[50]["TEXT"] = "art nouveau poster by Alphonse Mucha"
    return rows


def prepare(input_dir: Path, content: Path) -> Path:
    """A content folder to build: the committed input plus the shard of fixed values."""
    shutil.copytree(input_dir, content)
    write_shard(content / "shards" / "part-0.parquet", snapshot_rows())
    return content


# ----------------------------------------------------------------------------- normalising


def _volatile(value, key: str | None = None):
    if key in VOLATILE:
        return VOLATILE[key]
    if isinstance(value, dict):
        return {k: _volatile(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_volatile(v) for v in value]
    return value


def _layout_summary(rel: str, data: bytes) -> str:
    """A projection-independent view of a map data file: what it holds, not where or in which order."""
    name = rel.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        return f"{len(data)} bytes of binary data (positions and point order follow the projection)\n"
    value = json.loads(data)
    if name == "meta.json":
        value = dict(value, bounds="<layout>")
        value["clusters"] = [  # labels, centres and sizes follow the layout (k-means on the map)
            {"name": level["name"], "column": level["column"], "clusters": len(level["ids"]),
             "points": sum(level["size"])}
            for level in value["clusters"]
        ]
    elif isinstance(value, list):  # text/ and detail/ chunks: one entry a point, in map order -> sorted
        value = sorted(value, key=lambda item: json.dumps(item, ensure_ascii=False))
    return json.dumps(value, ensure_ascii=False, indent=1) + "\n"


def _image_summary(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return f"{image.format} image, {image.width}x{image.height} {image.mode} (pixels follow Pillow's font)\n"


def normalise(rel: str, data: bytes) -> bytes:
    """The form of a published file that the expected tree holds (see the module docstring)."""
    if LAYOUT.match(rel):
        return _layout_summary(rel, data).encode()
    if DRAWN.match(rel):
        return _image_summary(data).encode()
    if Path(rel).suffix not in TEXT_SUFFIXES:
        return data
    text = data.decode("utf-8")
    if rel.endswith(".json"):
        text = json.dumps(_volatile(json.loads(text)), ensure_ascii=False, indent=1) + "\n"
    elif rel.endswith((".html", ".svg")):
        text = POINT_LINK.sub("map/#<point>", text)
        text = re.sub(r">(?=<)", ">\n", text)  # a tag a line: diffs show what changed
    text = VERSION.sub("atlas <version>", DATE.sub("<date>", text))
    return HASH.sub("<hash>", text).encode()


def normalised_tree(site: Path) -> dict[str, bytes]:
    """Every published file but the theme's copied ones, normalised: relative path -> bytes."""
    files = (p.relative_to(site).as_posix() for p in sorted(site.rglob("*")) if p.is_file())
    return {rel: normalise(rel, (site / rel).read_bytes()) for rel in files if not COPIED.match(rel)}


# ----------------------------------------------------------------------------- comparing


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


def _describe(data: bytes) -> str:
    return f"{len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def compare(actual: dict[str, bytes], expected_dir: Path) -> list[str]:
    """Readable differences between a normalised tree and the expected folder (empty: the same)."""
    expected = {p.relative_to(expected_dir).as_posix(): p.read_bytes()
                for p in sorted(expected_dir.rglob("*")) if p.is_file()} if expected_dir.is_dir() else {}
    problems = []
    for rel in sorted(set(actual) | set(expected)):
        got, want = actual.get(rel), expected.get(rel)
        if got == want:
            continue
        if want is None:
            problems.append(f"{rel}: new file, not in the expected tree ({_describe(got)})")
        elif got is None:
            problems.append(f"{rel}: expected but the build no longer writes it")
        elif _is_text(got) and _is_text(want):
            problems.append("".join(difflib.unified_diff(
                want.decode().splitlines(keepends=True), got.decode().splitlines(keepends=True),
                f"expected/{rel}", f"built/{rel}", n=2,
            )))
        else:
            problems.append(f"{rel}: binary file differs: expected {_describe(want)}, built {_describe(got)}")
    return problems


def update(actual: dict[str, bytes], expected_dir: Path) -> None:
    """Make ``expected_dir`` hold exactly the normalised tree."""
    if expected_dir.exists():
        shutil.rmtree(expected_dir)
    for rel, data in actual.items():
        target = expected_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def check(actual: dict[str, bytes], expected_dir: Path, rewrite: bool) -> None:
    """Fail with the differences, or (``rewrite``) update the expected tree to match."""
    if rewrite:
        update(actual, expected_dir)
        return
    problems = compare(actual, expected_dir)
    if problems:
        pytest.fail(
            f"the build differs from {expected_dir} in {len(problems)} file(s); if that is intended, run "
            "ATLAS_UPDATE_SNAPSHOTS=1 pytest tests/test_snapshot.py and review the diff\n\n" + "\n".join(problems),
            pytrace=False,
        )


# ----------------------------------------------------------------------------- the tests


def snapshot_build(content: Path, out: Path, cache: Path):
    """A build with no settings from the environment (GitHub's would show in build.json)."""
    return quiet_build(content, out, cache, settings=Settings())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny site, built once."""
    root = tmp_path_factory.mktemp("snapshot")
    content = prepare(SNAPSHOTS / "tiny" / "input", root / "content")
    report = snapshot_build(content, root / "site", root / "cache")
    return {"content": content, "site": root / "site", "cache": root / "cache", "report": report}


@pytest.mark.slow
def test_the_build_matches_the_expected_tree(tiny):
    check(normalised_tree(tiny["site"]), SNAPSHOTS / "tiny" / "expected", rewrite=UPDATE)


@pytest.mark.slow
def test_a_changed_page_fails_with_its_diff_until_the_snapshot_is_updated(tiny, tmp_path):
    """The snapshot check against a scratch expected tree: an edit to a page fails it, naming the
    page and the line; updating on purpose makes it pass again and drops files no longer written."""
    expected = tmp_path / "expected"
    check(normalised_tree(tiny["site"]), expected, rewrite=True)
    check(normalised_tree(tiny["site"]), expected, rewrite=False)
    (expected / "stale.html").write_text("a page an earlier build wrote\n")
    content = tmp_path / "content"
    shutil.copytree(tiny["content"], content)
    page = content / "about.md"
    page.write_text(page.read_text().replace("Back [home](../).", "Back [home](../), edited on purpose."))
    snapshot_build(content, tmp_path / "site", tmp_path / "cache")  # a cold build, like the snapshot's

    actual = normalised_tree(tmp_path / "site")
    problems = compare(actual, expected)
    assert len(problems) == 2, problems
    diff, stale = problems
    assert diff.startswith("--- expected/about/index.html\n+++ built/about/index.html\n")
    assert "\n+" in diff and "edited on purpose" in diff
    assert stale.startswith("stale.html: expected but the build no longer writes it")
    with pytest.raises(pytest.fail.Exception, match=r"differs from .* in 2 file\(s\)"):
        check(actual, expected, rewrite=False)

    check(actual, expected, rewrite=True)
    assert compare(actual, expected) == []
    assert not (expected / "stale.html").exists()
    check(actual, expected, rewrite=False)


def test_normalising_hides_what_changes_between_builds_and_nothing_else():
    build_json = json.dumps({"atlas": "0.3.1", "built_at": "2026-12-02T01:02:03Z", "rows": 90,
                             "stages": {"render": {"status": "ran", "seconds": 0.25}}}).encode()
    assert json.loads(normalise("data/build.json", build_json)) == {
        "atlas": "<version>", "built_at": "<date>", "rows": 90,
        "stages": {"render": {"status": "ran", "seconds": "<duration>"}},
    }
    footer = b"<p>Built with atlas 0.3.1 on 2026-12-02 from 90 rows, key 0123456789abcdef0123.</p>"
    assert normalise("index.html", footer) == b"<p>Built with atlas <version> on <date> from 90 rows, key <hash>.</p>"
    parquet = b"PAR1\x00\x15binary\x00PAR1"
    assert normalise("data/sample.parquet", parquet) == parquet  # compared by digest
    chunk = json.dumps(["b caption", "a caption"]).encode()
    assert json.loads(normalise("map/data/text/00000.json", chunk)) == ["a caption", "b caption"]
