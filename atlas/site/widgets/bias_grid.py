"""The ``bias-grid`` widget: occupations x seeds, every row with the same seeds."""

from __future__ import annotations

from markupsafe import Markup

from atlas.site.widgets import WidgetContext, arg_int, widget
from atlas.site.widgets.gallery import collect_shots, models, page_prompts


@widget("bias-grid")
def bias_grid_widget(args: dict[str, str], ctx: WidgetContext) -> Markup:
    """Occupations x seeds, every row with the same seeds (DiffusionBiasExplorer style).

    ```atlas bias-grid``` (``seeds=N`` shows at most N columns).
    """
    prompts = page_prompts(args, ctx, "bias")
    limit = arg_int(args, "seeds", 8, 1, 64)
    rows = []
    for prompt in prompts:
        shots = collect_shots(prompt, ctx)[:limit]
        rows.append({"prompt": prompt, "label": prompt.label or prompt.prompt, "shots": shots})
    seeds = sorted({s.seed for row in rows for s in row["shots"]})
    for row in rows:  # one cell per column seed, None where a row lacks that seed
        by_seed = {s.seed: s for s in row["shots"]}
        row["cells"] = [by_seed.get(seed) for seed in seeds]
    all_shots = [s for row in rows for s in row["shots"]]
    recipe = next((s.recipe for s in all_shots if s.state == "ready"), None)
    return ctx.render(
        "widgets/bias_grid.html",
        rows=rows,
        seeds=seeds,
        models=models(all_shots),
        example=recipe,
        ready=sum(s.state == "ready" for s in all_shots),
        withheld=sum(s.state in ("flagged", "unscreened", "withheld") for s in all_shots),
        total=len(all_shots),
    )
