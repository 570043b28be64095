"""The ``histogram`` widget: a column's distribution as an SVG chart with its thresholds."""

from __future__ import annotations

from markupsafe import Markup

from atlas.site.charts import NARROW_WIDTH, data_table, fmt, histogram_svg
from atlas.core.errors import ContentError
from atlas.site.widgets import WidgetContext, needs_stats, widget


@widget("histogram")
def histogram_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas histogram column=similarity``` – a histogram with its published thresholds."""
    needs_stats(ctx, "histogram")
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
    svg = histogram_svg(hist, title, shares, chart_id=f"hist-{column}") + histogram_svg(
        hist, title, shares, chart_id=f"hist-{column}-narrow", width=NARROW_WIDTH)
    rows = [[f"≥ {fmt(s['threshold'])}", f"{s['count']:,}", "–" if s["share"] is None else f"{s['share'] * 100:.2f}%"] for s in shares]
    invalid = hist.get("invalid", 0)
    table = data_table(["threshold", "rows", "share of valid rows"], rows) if rows else Markup("")
    note = Markup("")
    if invalid:
        note = Markup('<p class="note">{} rows have no valid value (missing, NaN, infinite or negative).</p>').format(
            f"{invalid:,}"
        )
    data_rows = [
        [f"{fmt(hist['edges'][i])}–{fmt(hist['edges'][i + 1])}", f"{c:,}"] for i, c in enumerate(hist["counts"])
    ]
    details = Markup("<details><summary>Data</summary>{}</details>").format(
        data_table(["bin", "rows"], data_rows, caption=title)
    )
    return Markup('<figure class="widget chart"><figcaption>{}</figcaption>{}{}{}{}</figure>').format(
        title, svg, table, note, details
    )
