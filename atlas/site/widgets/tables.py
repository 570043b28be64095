"""The ``table`` widget: ranked domains, hosts, artists or category counts with a CSV link."""

from __future__ import annotations

from markupsafe import Markup

from atlas.site.charts import data_table
from atlas.core.errors import ContentError
from atlas.site.widgets import WidgetContext, arg_int, needs_stats, widget

TABLES = {"domains": ("domain", "Registrable domain"), "hosts": ("host", "Host"), "artists": ("name", "Artist")}
CATEGORY_TABLES = {"nsfw": "NSFW tag", "license": "Licence", "language": "Language"}


@widget("table")
def table_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas table of=domains limit=20``` – a ranked table with bars and a CSV download."""
    needs_stats(ctx, "table")
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
        data_table(["#", header, "", "images", "share"], rows, caption, numeric_from=3), link
    )
