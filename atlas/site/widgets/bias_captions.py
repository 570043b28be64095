"""The ``bias-captions`` widget: how the captions talk about each occupation of the Bias page."""

from __future__ import annotations

from markupsafe import Markup

from atlas.core.prompts import load_prompts
from atlas.text.published import cut_caption
from atlas.stages import bias
from atlas.site.widgets import WidgetContext, arg_int, widget
from atlas.site.widgets.gallery import collect_shots


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def bias_rows(data: dict) -> list[dict]:
    """Occupations for the page, sorted by female-coded minus male-coded share (unmentioned last)."""
    rows = []
    for item in data.get("occupations", []):
        row = dict(item)
        for name in ("female", "male", "unmarked"):
            row[f"{name}_text"] = _percent(item.get(f"{name}_share"))
            low, high = item.get(f"{name}_interval") or (None, None)
            row[f"{name}_range"] = "" if low is None else f"{100 * low:.0f}–{100 * high:.0f}%"
            row[f"{name}_low"] = 100 * (low or 0)
            row[f"{name}_high"] = 100 * (high or 0)
            row[f"{name}_pct"] = 100 * (item.get(f"{name}_share") or 0)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["mentions"] == 0, -((r["female_share"] or 0) - (r["male_share"] or 0)),
                                       -r["mentions"]))


@widget("bias-captions")
def bias_captions_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """```atlas bias-captions``` -- the caption figures per occupation, generated portraits beside.

    ``examples=N`` shows at most N example captions per occupation (default 3, 0 for none).
    """
    figures = bias.read(ctx.outputs.get("bias"))
    if figures is None:
        bias.load_word_lists(ctx.content_dir)  # a missing or broken word list is the usual reason: say so
        return Markup('<p class="widget-missing">The Bias page has no occupations to count in this build.</p>')
    limit = arg_int(args, "examples", bias.EXAMPLES, 0, bias.EXAMPLES)
    prompts = {p.label: p for p in load_prompts(ctx.content_dir, missing_ok=True) if p.page == "bias"}
    rows = bias_rows(figures.data)
    for row in rows:
        row["examples"] = [cut_caption(caption) for caption in row["examples"][:limit]]
        prompt = prompts.get(row["occupation"])
        row["shots"] = [s for s in collect_shots(prompt, ctx) if s.state == "ready"] if prompt else []
    csv = "data/" + figures.csv.name
    ctx.assets[csv] = figures.csv
    return ctx.render("widgets/bias_captions.html", data=figures.data, rows=rows,
                      has_images=any(row["shots"] for row in rows), csv=csv)
