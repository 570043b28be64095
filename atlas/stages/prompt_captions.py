"""The ``prompt_captions`` stage: for each prompt of ``prompts.toml``, the sample captions nearest to it.

What the model saw when it learned a prompt's words: the prompt is embedded the way the map's
captions were, and compared with them by cosine similarity --

- CLIP's text tower when the embed stage used CLIP (the map's space, images or captions);
- the caption model when it used the caption model (``method = "text"``);
- otherwise TF-IDF over the sample's captions (shared words, no model).

Output: ``prompt_captions.json`` (read with :func:`read`): ``{"method", "model", "prompts":
{id: [{"row_id", "caption", "domain", "score", "x", "y"}]}}``, best first. The sample holds safe
rows only, so no unsafe caption can appear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from atlas.core.cache import read_json
from atlas.core.errors import ModelError
from atlas.core.pipeline import Stage
from atlas.models.nearest import top_k

RESULT = "prompt_captions.json"
K = 5


def embed_queries(texts: list[str], info, config, base: Path | None, models_dir: Path | None):
    """The prompts embedded like the map's captions (``info``: the embed stage's EmbedInfo), or None
    when the map's embedder cannot embed new text (TF-IDF, precomputed vectors)."""
    from atlas.models.embedder import load_embedder

    method = info.method if info is not None else None
    if method not in ("clip", "text"):
        return None
    return load_embedder(method, config.embed, base=base, models_dir=models_dir).embed_texts(texts)


def nearest_to_prompts(prompts: list, sample_folder: Path, embed_folder: Path | None, config,
                       coords: np.ndarray | None = None, k: int = K, *, base: Path | None = None,
                       models_dir: Path | None = None, reporter=None) -> dict:
    """The ``k`` sample captions nearest to each prompt (see the module docstring)."""
    import numpy as np

    from atlas.models.nearest import neighbour_lists
    from atlas.stages import embed, sample

    info = embed.read(embed_folder)
    texts = [p.prompt for p in prompts]
    method, model = "tfidf", "TF-IDF over the sample's captions"
    top = scores = None
    if texts and info is not None and info.method in ("clip", "text"):
        try:
            queries = embed_queries(texts, info, config, base, models_dir)
        except ModelError as error:
            if reporter is not None:
                reporter.warn("embedder", f"the prompts' nearest captions use TF-IDF: the map's model did not load ({error})")
        else:
            matrix = info.embeddings()
            if queries.shape[1] == matrix.shape[1]:
                top, scores = top_k(np.asarray(queries, dtype=np.float32), np.asarray(matrix, dtype=np.float32), k)
                method, model = info.method, str(info.model or "")
    if texts and top is None:
        from atlas.models import tfidf

        captions = sample.read(sample_folder).table(["caption"]).column("caption").to_pylist()
        top, scores = tfidf.nearest(texts, captions, k)
    found: dict[str, list[dict]] = {}
    if texts:
        rows = sample.read(sample_folder).rows_by_id(np.ravel(top))
        keep = lambda row, score: bool((row["caption"] or "").strip()) and score > 0  # noqa: E731
        for prompt, items in zip(prompts, neighbour_lists(top, scores, rows, coords, keep)):
            found[prompt.id] = items
    return {"method": method, "model": model, "prompts": found}


@dataclass
class PromptCaptions:
    """What the stage wrote: how the captions were found, and per prompt id the nearest ones."""

    method: str
    model: str
    prompts: dict[str, list[dict]] = field(default_factory=dict)

    def describe(self) -> str:
        """How the nearest captions were found, in a reader's words."""
        if self.method == "clip":
            return "by CLIP, the model whose text half guides Stable Diffusion"
        if self.method == "text":
            return f"by their meaning, as read by a small sentence model ({self.model})"
        return "by the words they share with the prompt"


def read(folder: Path | None) -> PromptCaptions | None:
    """The stage's output in ``folder``, or None when it did not run."""
    data = read_json(folder, RESULT)
    if data is None:
        return None
    return PromptCaptions(str(data.get("method") or "tfidf"), str(data.get("model") or ""), data.get("prompts") or {})


def _prompts(ctx) -> list:
    from atlas.core.prompts import load_prompts

    return load_prompts(ctx.content_dir, missing_ok=True)


def _inputs(ctx) -> dict:
    return {"prompts": [[p.id, p.prompt] for p in _prompts(ctx)], "k": K, "embed": ctx.config.embed}


def _run(ctx, folder: Path) -> dict:
    from atlas.stages import project
    from atlas.stages.embed import models_dir

    projection = project.read(ctx.outputs.get("project"))
    coords = projection.coords if projection is not None else None
    data = nearest_to_prompts(_prompts(ctx), ctx.output("sample"), ctx.outputs.get("embed"),
                              ctx.config, coords, base=ctx.content_dir, models_dir=models_dir(ctx),
                              reporter=ctx.reporter)
    (folder / RESULT).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return {"prompts": len(data["prompts"]), "method": data["method"]}


STAGE = Stage(
    "prompt_captions",
    "1",
    _inputs,
    _run,
    after=("sample", "embed", "project"),
    enabled=lambda ctx: bool(_prompts(ctx)),
    description="the sample captions nearest to each prompt of prompts.toml",
)
