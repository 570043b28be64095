"""Charts drawn at build time as inline SVG (readable without JavaScript), and the data widgets
that place them, tables and example captions in Markdown pages.

Every string that comes from the data goes through :func:`markupsafe.escape`; SVGs carry
``role="img"``, a ``<title>``/``<desc>`` and a data table fallback for screen readers.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from atlas.errors import ContentError
from atlas.widgets import WidgetContext, arg_int, widget

WIDTH, HEIGHT = 640, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 34, 40


def _fmt(value: float) -> str:
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


def histogram_svg(hist: dict, title: str, shares: list[dict] | None = None, chart_id: str = "h") -> Markup:
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
        f'<svg class="chart histogram" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">Histogram of {escape(hist.get("label", title))} over {total:,} rows'
        + "".join(
            f"; {s['share'] * 100:.1f}% at or over {_fmt(s['threshold'])}" for s in (shares or []) if s.get("share") is not None
        )
        + f"; values at or over {_fmt(hi)} are counted in the last bar.</desc>",
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
        label = f"{_fmt(edges[i])}–{_fmt(edges[i + 1])}{'+' if i == len(counts) - 1 else ''}: {count:,}"
        parts.append(
            f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{y(count):.1f}" width="{max(x1 - x0 - 1, 0.8):.1f}" '
            f'height="{plot_h + pad_t - y(count):.1f}"><title>{escape(label)}</title></rect>'
        )
    ticks = nice_ticks(lo, hi)
    for value in ticks:
        last = abs(value - hi) < 1e-9
        parts.append(
            f'<text class="tick" x="{x(value):.1f}" y="{height - PAD_B + 16}" '
            f'text-anchor="{"end" if last else "middle"}">{escape(_fmt(value))}{"+" if last else ""}</text>'
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
        anchor = "end" if xx + 4 + 6.5 * len(t["label"]) > WIDTH - PAD_R else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            f'<text class="threshold-label" x="{xx + dx:.1f}" y="{label_y:.1f}" '
            f'text-anchor="{anchor}">{escape(t["label"])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _table(headers: list[str], rows: list[list], caption: str | None = None, numeric_from: int = 1) -> Markup:
    out = ['<table class="data">']
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
    out.append("</tbody></table>")
    return Markup("".join(out))


def _needs_stats(ctx: WidgetContext, what: str) -> None:
    if not ctx.stats:
        raise ContentError(f"the {what} widget needs statistics, but this build has none")


@widget("histogram")
def histogram_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas histogram column=similarity``` – a histogram with its published thresholds."""
    _needs_stats(ctx, "histogram")
    column = args.get("column") or args.get("_")
    if not column:
        raise ContentError("the histogram widget needs column=NAME")
    hist = ctx.stats["histograms"].get(column)
    if hist is None:
        present = ", ".join(ctx.stats["histograms"]) or "none"
        return Markup(
            '<p class="widget-missing">This data has no <code>{}</code> column, so there is no histogram of it '
            "here (columns with histograms: {}).</p>"
        ).format(column, present)
    title = args.get("title") or hist["label"]
    shares = ctx.stats.get("shares", {}).get(column, [])
    svg = histogram_svg(hist, title, shares, chart_id=f"hist-{column}")
    rows = [[f"≥ {_fmt(s['threshold'])}", f"{s['count']:,}", "–" if s["share"] is None else f"{s['share'] * 100:.2f}%"] for s in shares]
    invalid = hist.get("invalid", 0)
    table = _table(["threshold", "rows", "share of valid rows"], rows) if rows else Markup("")
    note = Markup("")
    if invalid:
        note = Markup('<p class="note">{} rows have no valid value (missing, NaN, infinite or negative).</p>').format(
            f"{invalid:,}"
        )
    data_rows = [
        [f"{_fmt(hist['edges'][i])}–{_fmt(hist['edges'][i + 1])}", f"{c:,}"] for i, c in enumerate(hist["counts"])
    ]
    details = Markup("<details><summary>Data</summary>{}</details>").format(
        _table(["bin", "rows"], data_rows, caption=title)
    )
    return Markup('<figure class="widget chart"><figcaption>{}</figcaption>{}{}{}{}</figure>').format(
        title, svg, table, note, details
    )


TABLES = {"domains": ("domain", "Registrable domain"), "hosts": ("host", "Host"), "artists": ("name", "Artist")}
CATEGORY_TABLES = {"nsfw": "NSFW tag", "license": "Licence", "language": "Language"}


@widget("table")
def table_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas table of=domains limit=20``` – a ranked table with bars and a CSV download."""
    _needs_stats(ctx, "table")
    which = args.get("of") or args.get("_") or "domains"
    limit = arg_int(args, "limit", 20, 1, 1000)
    if which in TABLES:
        key, header = TABLES[which]
        items = [item for item in ctx.stats[which] if item["count"] > 0][:limit]
    elif which in CATEGORY_TABLES:
        key, header = "value", CATEGORY_TABLES[which]
        items = ctx.stats.get("categories", {}).get(which, [])[:limit]
    else:
        known = ", ".join([*TABLES, *CATEGORY_TABLES])
        raise ContentError(f"the table widget shows one of {known}, not {which!r}")
    total = ctx.stats["rows"] or 1
    top = items[0]["count"] if items else 1
    rows = []
    for rank, item in enumerate(items, 1):
        bar = Markup('<span class="bar" style="width:{:.1f}%"></span>').format(100 * item["count"] / top)
        rows.append([str(rank), item[key], bar, f"{item['count']:,}", f"{100 * item['count'] / total:.2f}%"])
    if not rows:
        return Markup('<p class="widget-missing">No {} to show for this data.</p>').format(which)
    caption = args.get("title") or f"Top {len(rows)} {which} by number of images"
    link = Markup("")
    if which in TABLES:
        link = Markup('<p class="download"><a href="{}data/{}.csv" download>Download all {} as CSV</a></p>').format(
            ctx.root, which, which
        )
    return Markup('<figure class="widget ranked">{}{}</figure>').format(
        _table(["#", header, "", "images", "share"], rows, caption, numeric_from=3), link
    )


@widget("captions")
def captions_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas captions n=12 kind=html``` – real captions from the data, shown as plain text."""
    examples = ctx.extra.get("examples") or {}
    kind = args.get("kind", "random")
    if kind not in ("random", "html"):
        raise ContentError("the captions widget takes kind=random or kind=html")
    n = arg_int(args, "n", 12, 1, 200)
    offset = arg_int(args, "offset", 0, 0, 10_000)
    items = (examples.get("captions" if kind == "random" else "html") or [])[offset : offset + n]
    if not items:
        return Markup('<p class="widget-missing">This data has no captions to show here.</p>')
    out = ['<ul class="widget captions">']
    for item in items:
        host = Markup('<span class="host">{}</span>').format(item.get("host") or "no host")
        url = item.get("url")
        link = Markup(' <a href="{}" rel="noopener noreferrer nofollow" target="_blank">image link</a>').format(url) if url else ""
        out.append(Markup('<li><q class="caption">{}</q> {}{}</li>').format(item["caption"], host, link))
    out.append("</ul>")
    return Markup("".join(out))


def _stat_value(stats: dict, path: str):
    value = stats
    for part in path.split("."):
        if isinstance(value, list):
            try:
                value = value[int(part)]
            except (ValueError, IndexError):
                return None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


@widget("stat")
def stat_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas stat value=rows label="rows"``` – one number from stats.json, as a big figure."""
    _needs_stats(ctx, "stat")
    path = args.get("value") or args.get("_")
    if not path:
        raise ContentError("the stat widget needs value=PATH (e.g. rows, distinct_domains, shares.punsafe.0.share)")
    value = _stat_value(ctx.stats, path)
    if value is None:
        text = "n/a"
    elif isinstance(value, float) and 0 <= value <= 1 and "share" in path:
        text = f"{value * 100:.1f}%"
    elif isinstance(value, (int, float)):
        text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"
    else:
        text = str(value)
    return Markup('<div class="widget stat"><span class="figure">{}</span> <span class="label">{}</span></div>').format(
        text, args.get("label", path)
    )
