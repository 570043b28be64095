"""The ``stat`` widget: one published statistic as a big figure."""

from __future__ import annotations

from markupsafe import Markup

from atlas.core.errors import ContentError
from atlas.site.widgets import WidgetContext, needs_stats, widget


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
    """```atlas stat value=rows label="rows"``` – one published statistic, as a big figure."""
    needs_stats(ctx, "stat")
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


@widget("between")
def between_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas between column=similarity low=0.26 high=0.28 text="…{share}…{count}…"```

    A sentence about the rows whose ``column`` lies in [low, high), shown only when there are such
    rows: ``{count}`` and ``{share}`` (of the column's valid rows) are filled in from the
    statistics. ``low`` and ``high`` must be thresholds the statistics count for that column.
    """
    needs_stats(ctx, "between")
    column, text = args.get("column", ""), args.get("text", "")
    if not column or not text:
        raise ContentError('the between widget needs column=NAME, low=, high= and text="…"')
    try:
        low, high = float(args.get("low", "")), float(args.get("high", ""))
    except ValueError:
        raise ContentError("the between widget's low= and high= must be numbers") from None
    shares = {round(float(s["threshold"]), 9): s for s in ctx.stats.get("shares", {}).get(column, [])}
    if column not in ctx.stats.get("histograms", {}):
        return Markup("")  # the data has no such column: nothing to say
    if round(low, 9) not in shares or round(high, 9) not in shares:
        raise ContentError(f"the statistics count {column} at {', '.join(f'{t:g}' for t in shares) or 'no'} "
                           f"thresholds; low={low:g} and high={high:g} must be among them")
    count = shares[round(low, 9)]["count"] - shares[round(high, 9)]["count"]
    hist = ctx.stats["histograms"][column]
    valid = sum(hist["counts"])
    if count <= 0 or not valid:
        return Markup("")
    share = f"{100 * count / valid:.1f}%"
    return Markup('<p class="widget between">{}</p>').format(text.replace("{count}", f"{count:,}").replace("{share}", share))
