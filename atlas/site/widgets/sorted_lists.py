"""The ``sorted`` widget: a link to the lists of the map's sample sorted by a score
(:mod:`atlas.site.scores`), or a reader's line saying this build has none."""

from __future__ import annotations

from markupsafe import Markup

from atlas.core.errors import ContentError
from atlas.site.widgets import WidgetContext, widget


@widget("sorted")
def sorted_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas sorted score=punsafe``` (or ``score=aesthetic,pwatermark``; all scores without it):
    a link to each list, with what it holds; a line in reader words where the data has no such score."""
    from atlas.site.scores import BY_NAME, SCORES

    wanted = [w.strip() for w in (args.get("score") or args.get("_") or "").split(",") if w.strip()]
    unknown = [w for w in wanted if w not in BY_NAME]
    if unknown:
        raise ContentError(f"the sorted widget has no score {', '.join(map(repr, unknown))}",
                           hint=f"Scores: {', '.join(s.name for s in SCORES)} (several: score=aesthetic,pwatermark).")
    scores = [BY_NAME[w] for w in wanted] or list(SCORES)
    lists = {item.score.name: item for item in ctx.extra.get("sorted") or []}
    demo = bool((ctx.extra.get("build") or {}).get("demo"))
    found = [lists[s.name] for s in scores if s.name in lists]
    missing = [s for s in scores if s.name not in lists]
    parts = [Markup('<link rel="stylesheet" href="{}static/css/sorted.css">').format(ctx.root)]
    for item in found:
        listed = len(item.rows)
        what = (f"all {item.scored:,} pairs of the map's sample that have one" if listed >= item.scored
                else f"the {listed:,} highest of the {item.scored:,} pairs of the map's sample that have one")
        shown = "captions, hosts" if demo else "pictures, captions, hosts"
        sentence = Markup('<p class="atlas-sorted"><a href="{href}">See the sample sorted by {noun}</a>: '
                          "{what}, highest first, with their {shown} and place on the map.{note}</p>").format(
            href=ctx.root + item.href, noun=item.score.noun, what=what, shown=shown,
            note=(Markup(" Pairs scored {} or more are never shown, so the list starts below it.").format(
                item.threshold) if item.threshold is not None else ""))
        parts.append(sentence)
    if missing and not found:
        nouns = " or ".join(s.noun + "s" for s in missing)
        parts = [Markup('<p class="widget-missing">The pairs of this atlas have no {}, so there is no list of them '
                        "sorted by one.</p>").format(nouns)]
    return Markup("").join(parts)
