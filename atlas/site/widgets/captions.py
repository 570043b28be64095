"""The ``captions`` widget: real captions from the data (the statistics stage's examples), as text."""

from __future__ import annotations

from markupsafe import Markup

from atlas.data.policy import safety_notice
from atlas.core.errors import ContentError
from atlas.text.published import cut_caption
from atlas.site.widgets import WidgetContext, arg_int, widget


@widget("captions")
def captions_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas captions n=12 kind=html``` – real captions from the data, shown as plain text.

    Image links only for real data: a demo row's URL leads nowhere (a reserved domain). Each
    caption is cut at :data:`atlas.text.published.CAPTION_CUT` characters, so one row cannot make the
    page megabytes long.
    """
    demo = bool((ctx.extra.get("build") or {}).get("demo"))
    examples = ctx.extra.get("examples") or {}
    kind = args.get("kind", "random")
    if kind not in ("random", "html"):
        raise ContentError("the captions widget takes kind=random or kind=html")
    n = arg_int(args, "n", 12, 1, 200)
    offset = arg_int(args, "offset", 0, 0, 10_000)
    items = (examples.get("captions" if kind == "random" else "html") or [])[offset : offset + n]
    if not items:
        safety = (ctx.stats or {}).get("safety") or {}
        if safety and not safety.get("shown_rows"):
            return Markup('<p class="widget-missing" role="note">No caption of this data may be shown here. {}</p>').format(
                safety_notice(safety))
        return Markup('<p class="widget-missing">This data has no captions to show here.</p>')
    out = ['<ul class="widget captions">']
    for item in items:
        host = Markup('<span class="host">{}</span>').format(item.get("host") or "no host")
        url = None if demo else item.get("url")
        link = Markup(' <a href="{}" rel="noopener noreferrer nofollow" target="_blank">image link</a>').format(url) if url else ""
        out.append(Markup('<li><q class="caption">{}</q> {}{}</li>').format(cut_caption(item["caption"]), host, link))
    out.append("</ul>")
    return Markup("".join(out))
