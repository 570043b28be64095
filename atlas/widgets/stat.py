"""The ``stat`` widget: one published statistic as a big figure."""

from __future__ import annotations

from markupsafe import Markup

from atlas.errors import ContentError
from atlas.widgets import WidgetContext, needs_stats, widget


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
