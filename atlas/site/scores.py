"""Samples sorted by score: for each score the map's sample has, its rows sorted by it, highest first,
on paged lists under ``sorted/<score>/`` (``index.html``, ``2.html``, ...).

The rows are the sample's (:mod:`atlas.stages.sample`): the rows the build's one predicate lets
the site show (``shown``, :mod:`atlas.data.policy`), as on the map. A score is listed only where it
is a number in its possible range (for the unsafe score also below the site's threshold, which the
sample holds already); NULL, NaN, ±inf and values out of range are left off that score's list.
A score no row of the sample has gets no list (the real LAION-400M sample has none).

The lists are the sample's top, not the data's: at most :data:`MAX_PAGES` pages of
:data:`PAGE_SIZE` rows a score, whatever the size of the data, so a fork of 12 million rows
publishes the same 40 pages at most: 2.7 MB for the demo (66 kB a page, 7.5 kB gzipped), about
3.3 MB at the real LAION sample's caption and URL lengths (a page of its captions measured 76 kB
with short URLs; its URLs average 98 characters).

Each row shows its caption (cut: :func:`atlas.text.published.cut_caption`; escaped by the
templates), its host, the score, a thumbnail hot-linked from its URL when that is a real http(s)
link (:func:`atlas.data.urls.safe_http_url`; never a demo row's or a reserved example domain's)
and a link to its point on the map (``map/#x=..&y=..&z=..&p=..``: the map's world coordinates,
``(coord - x0) / span`` of ``meta.json``'s bounds, and the point's index in the map's order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from atlas.site.maplinks import map_positions, point_href
from atlas.data.urls import safe_http_url
from atlas.text.published import cut_caption

#: Rows on one page of a list.
PAGE_SIZE = 100
#: Pages of one list at most: the highest PAGE_SIZE * MAX_PAGES rows of the sample are listed.
MAX_PAGES = 10
#: The lists' folder in the site.
FOLDER = "sorted"
#: Host names reserved for examples (RFC 2606): a demo row's address, never a real image.
RESERVED_HOSTS = ("example", "example.com", "example.org", "example.net")


@dataclass(frozen=True)
class Score:
    """One score as the lists show it (reader words only)."""

    name: str  #: the sample's column
    label: str  #: e.g. "Unsafe score"
    noun: str  #: e.g. "unsafe score", inside a sentence
    about: str  #: one sentence: what the score is
    digits: int  #: decimals shown
    low: float  #: the score's possible range; a value outside it is a broken value, not listed
    high: float


SCORES = (
    Score("punsafe", "Unsafe score", "unsafe score",
          "A model's estimate of the probability that the image is unsafe, for example sexually explicit.",
          3, 0.0, 1.0),
    Score("aesthetic", "Aesthetic score", "aesthetic score",
          "A model's prediction, from 0 to 10, of how much people would like the image.", 2, 0.0, 10.0),
    Score("pwatermark", "Watermark score", "watermark score",
          "A model's estimate of the probability that the image carries a watermark.", 3, 0.0, 1.0),
    Score("similarity", "CLIP similarity", "CLIP similarity",
          "How well CLIP thinks the caption fits the image (the cosine similarity of their embeddings).",
          3, -1.0, 1.0),
)
BY_NAME = {score.name: score for score in SCORES}


@dataclass
class ScoreList:
    """One score's list: the rows it publishes (best first) and the counts the pages state."""

    score: Score
    #: Rows of the sample with a valid value of this score.
    scored: int
    #: Rows in the sample.
    sample_rows: int
    #: The listed rows, highest first: dicts with row_id, caption, host, value, shown (the value as
    #: text), thumb (an image URL or None) and map_href (from the site root, or "").
    rows: list[dict] = field(default_factory=list)
    #: Rows scored at or above this are never shown (the unsafe score's list only), else None.
    threshold: float | None = None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(len(self.rows) / PAGE_SIZE))

    @property
    def href(self) -> str:
        """The list's first page, from the site root."""
        return f"{FOLDER}/{self.score.name}/"

    def page_href(self, number: int) -> str:
        """Page ``number`` (1-based) from the site root."""
        return self.href if number == 1 else f"{self.href}{number}.html"

    def page_file(self, number: int) -> str:
        return f"{self.href}index.html" if number == 1 else self.page_href(number)


def thumbnail_url(url: object, demo: bool) -> str | None:
    """The image to show for a row: its canonical http(s) link (:func:`safe_http_url`), never for a
    demo row nor for a host under a reserved example name (it would only ever fail)."""
    if demo:
        return None
    link = safe_http_url(url)
    if link is None:
        return None
    host = (urlsplit(link).hostname or "").rstrip(".").lower()
    if any(host == name or host.endswith("." + name) for name in RESERVED_HOSTS):
        return None
    return link


def _valid(values, score: Score, threshold: float):
    import numpy as np

    ok = np.isfinite(values) & (values >= score.low) & (values <= score.high)
    if score.name == "punsafe":
        ok &= values < threshold  # the sample holds only such rows; a list never relies on it
    return ok


def collect(outputs: dict[str, Path], demo: bool, threshold: float) -> list[ScoreList]:
    """The lists this build publishes, in :data:`SCORES` order: one for each score with at least
    one valid value in the sample; none without a sample."""
    import numpy as np
    import pyarrow.parquet as pq

    from atlas.stages import sample

    folder = outputs.get("sample")
    if folder is None:
        return []
    try:
        rows = sample.read(folder)
    except OSError:  # no sample in this build
        return []
    names = set(pq.read_schema(rows.path).names)
    present = [score for score in SCORES if score.name in names]
    if not present:
        return []
    table = rows.table(["row_id", *[score.name for score in present]])
    row_ids = table.column("row_id").to_numpy(zero_copy_only=False).astype(np.int64)
    chosen: list[tuple[Score, int, np.ndarray, np.ndarray]] = []
    for score in present:
        values = np.asarray(table.column(score.name).cast("double").to_numpy(zero_copy_only=False), dtype=np.float64)
        ok = _valid(values, score, threshold)
        if not ok.any():
            continue
        ids, kept = row_ids[ok], values[ok]
        order = np.lexsort((ids, -kept))[: PAGE_SIZE * MAX_PAGES]  # highest first; ties by row id
        chosen.append((score, int(ok.sum()), ids[order], kept[order]))
    if not chosen:
        return []
    everything = np.unique(np.concatenate([ids for _, _, ids, _ in chosen]))
    details = rows.rows_by_id(everything, columns=("url", "caption", "host"))
    positions = map_positions(outputs, everything)
    lists = []
    for score, scored, ids, values in chosen:
        listed = []
        for row_id, value in zip(ids.tolist(), values.tolist()):
            row = details.get(row_id)
            if row is None:
                continue
            place = positions.get(row_id)
            listed.append({
                "row_id": row_id,
                "caption": cut_caption(row.get("caption")),
                "host": row.get("host") if isinstance(row.get("host"), str) else "",
                "value": value,
                "shown": f"{value:.{score.digits}f}",
                "thumb": thumbnail_url(row.get("url"), demo),
                "map_href": point_href("", place),
            })
        lists.append(ScoreList(score, scored, rows.rows, listed, threshold if score.name == "punsafe" else None))
    return lists


def page_numbers(current: int, pages: int) -> list[int | None]:
    """The page links of a pager: the first, the last and two either side of ``current``; None
    marks a gap (an ellipsis)."""
    keep = {1, pages, *range(current - 2, current + 3)}
    out: list[int | None] = []
    for number in range(1, pages + 1):
        if number in keep:
            out.append(number)
        elif out and out[-1] is not None:
            out.append(None)
    return out


def write_pages(env, out: Path, lists: list[ScoreList], context: Callable[..., dict], demo: bool) -> list[str]:
    """Write every list's pages into the site folder ``out``; returns the files written.

    ``context(current, root, title, description, path, **extra)`` gives a page's template
    arguments (:func:`atlas.site.render.template_context`)."""
    from atlas.site.theme import render_template

    written = []
    tabs = [{"name": item.score.name, "label": item.score.label, "href": item.href} for item in lists]
    root = "../../"
    for item in lists:
        for number in range(1, item.pages + 1):
            first = (number - 1) * PAGE_SIZE
            rows = item.rows[first: first + PAGE_SIZE]
            title = f"Sorted by {item.score.noun}" + (f", page {number}" if number > 1 else "")
            description = (f"The image-text pairs of this atlas's map sample with the highest {item.score.noun}, "
                           "with their captions and their place on the map.")
            html = render_template(env, "sorted.html", **context(
                FOLDER, root, title, description, item.page_href(number),
                listing=item, tabs=tabs, rows=rows, number=number, first=first + 1,
                numbers=page_numbers(number, item.pages), page_size=PAGE_SIZE, max_rows=PAGE_SIZE * MAX_PAGES,
                demo_rows=demo,
            ))
            target = out / item.page_file(number)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(html, encoding="utf-8")
            written.append(item.page_file(number))
    return written
