"""Charts drawn at build time as inline SVG (readable without JavaScript), and plain HTML data
tables; the widgets in :mod:`atlas.site.widgets` place them in Markdown pages.

Every string that comes from the data goes through :func:`markupsafe.escape`; SVGs carry
``role="img"``, a ``<title>``/``<desc>`` and a data table fallback for screen readers.
"""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 34, 40


def fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:g}"


def _compact(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + unit
    return f"{int(n)}"


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    import math

    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


#: The phone layout's chart width: drawn at about its on-screen size on a 390 px screen, so tick
#: labels keep their 11-12 px instead of shrinking with a 640-wide drawing.
NARROW_WIDTH = 320


def histogram_svg(hist: dict, title: str, shares: list[dict] | None = None, chart_id: str = "h",
                  width: int = WIDTH) -> Markup:
    """The histogram as inline SVG, ``width`` user units wide (:data:`NARROW_WIDTH` for phones)."""
    WIDTH = width  # noqa: N806 -- the drawing below is written against the chart's width
    narrow = width < 500
    edges, counts = hist["edges"], hist["counts"]
    lo, hi = edges[0], edges[-1]
    top = max(counts) if counts and max(counts) > 0 else 1
    thresholds = [t for t in hist.get("thresholds", []) if lo <= t["value"] <= hi]
    pad_t = 16 + 14 * len(thresholds)  # one row of label per threshold, so none overlap
    height = HEIGHT + pad_t - PAD_T
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, height - pad_t - PAD_B

    def x(value: float) -> float:
        return PAD_L + (value - lo) / (hi - lo) * plot_w

    def y(count: float) -> float:
        return pad_t + plot_h - count / top * plot_h

    total = sum(counts) + hist.get("invalid", 0)
    parts = [
        f'<svg class="chart histogram {"chart-narrow" if narrow else "chart-wide"}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">Histogram of {escape(hist.get("label", title))} over {total:,} rows'
        + "".join(
            f"; {s['share'] * 100:.1f}% at or over {fmt(s['threshold'])}" for s in (shares or []) if s.get("share") is not None
        )
        + f"; values at or over {fmt(hi)} are counted in the last bar.</desc>",
    ]
    # Grid lines and y labels.
    for frac in (0, 0.5, 1):
        yy = y(top * frac)
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text class="tick" x="{PAD_L - 6}" y="{yy + 4:.1f}" text-anchor="end">{_compact(top * frac)}</text>')
    for i, count in enumerate(counts):
        if count <= 0:
            continue
        x0, x1 = x(edges[i]), x(edges[i + 1])
        label = f"{fmt(edges[i])}–{fmt(edges[i + 1])}{'+' if i == len(counts) - 1 else ''}: {count:,}"
        parts.append(
            f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{y(count):.1f}" width="{max(x1 - x0 - 1, 0.8):.1f}" '
            f'height="{plot_h + pad_t - y(count):.1f}"><title>{escape(label)}</title></rect>'
        )
    ticks = nice_ticks(lo, hi, 4 if narrow else 5)
    for value in ticks:
        last = abs(value - hi) < 1e-9
        parts.append(
            f'<text class="tick" x="{x(value):.1f}" y="{height - PAD_B + 16}" '
            f'text-anchor="{"end" if last else "middle"}">{escape(fmt(value))}{"+" if last else ""}</text>'
        )
    if hist.get("unit"):
        parts.append(
            f'<text class="axis" x="{PAD_L + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">'
            f"{escape(hist['unit'])}</text>"
        )
    for n, t in enumerate(thresholds):
        xx = x(t["value"])
        label_y = 14 + 14 * n
        parts.append(f'<line class="threshold" x1="{xx:.1f}" x2="{xx:.1f}" y1="{label_y + 3}" y2="{pad_t + plot_h}"/>')
        # Labels run right of their line unless they would leave the chart (~6.5 px a character).
        anchor = "end" if xx + 4 + (7.2 if narrow else 6.5) * len(t["label"]) > WIDTH - PAD_R else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            f'<text class="threshold-label" x="{xx + dx:.1f}" y="{label_y:.1f}" '
            f'text-anchor="{anchor}">{escape(t["label"])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def data_table(headers: list[str], rows: list[list], caption: str | None = None, numeric_from: int = 1) -> Markup:
    """An HTML table in its own horizontally scrolling box (a wide table never widens the page)."""
    out = ['<div class="table-scroll"><table class="data">']
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    heads = []
    for i, h in enumerate(headers):
        cls = ' class="num"' if i >= numeric_from else ""
        heads.append(f'<th scope="col"{cls}>{escape(h)}</th>')
    out.append("<thead><tr>" + "".join(heads) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i >= numeric_from else ""
            cells.append(f"<td{cls}>{cell if isinstance(cell, Markup) else escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return Markup("".join(out))
