"""The ``map`` widget: a small live map (an iframe of the map page) from the mapdata stage."""

from __future__ import annotations

from markupsafe import Markup

from atlas.core.errors import ContentError
from atlas.stages import mapdata
from atlas.site.widgets import WidgetContext, arg_int, widget


@widget("map")
def map_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas map height=360 colour=cluster``` -> a small live map (an iframe of the map page)."""
    height = arg_int(args, "height", 360, lo=120, hi=2000)
    colour = args.get("colour") or args.get("color") or args.get("_") or ""
    data = mapdata.read(ctx.outputs.get("mapdata"))
    if data is None:
        return Markup('<p class="atlas-note map-note" role="note">The map is not built for this site yet, '
                      "so it cannot be shown here.</p>")
    if colour and colour not in data.colour_by:
        raise ContentError(f"map widget: colour={colour!r} is not available",
                           hint=f"Available: {', '.join(data.colour_by) or 'none'}.")
    fragment = []
    if colour:
        fragment.append(f"c={colour}")
    for key in ("x", "y", "z"):
        if key in args:
            try:
                fragment.append(f"{key}={float(args[key]):g}")
            except ValueError:
                raise ContentError(f"map widget argument {key}={args[key]!r} must be a number") from None
    hash_part = ("#" + "&".join(fragment)) if fragment else ""
    title = args.get("title") or f"Interactive map of {data.count:,} sampled captions"
    return Markup(
        '<figure class="atlas-map-embed">'
        '<iframe src="{src}" title="{title}" loading="lazy" height="{h}" style="width:100%;height:{h}px;border:0"></iframe>'
        '<figcaption><a href="{full}">Open the full map</a></figcaption></figure>'
    ).format(src=f"{ctx.root}map/?embed=1{hash_part}", title=title, h=height, full=f"{ctx.root}map/{hash_part}")
