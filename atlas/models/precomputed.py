"""Precomputed embeddings: rows of LAION's published ``.npy`` embedding files (``[embed]
precomputed``), aligned row by row with the shards in their order; a sample row's vector is the
row of its ``source_row`` (its global index across the shards).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from atlas.core.config import content_path
from atlas.core.errors import ConfigError, DataError, ModelError
from atlas.models.embedder import normalise

if TYPE_CHECKING:
    import numpy as np

    from atlas.core.config import EmbedConfig


def precomputed_rows(paths: list[Path], source_rows: np.ndarray, total_rows: int | None = None) -> np.ndarray:
    """The rows ``source_rows`` (global indices) of the concatenated ``.npy`` files."""
    import numpy as np

    arrays, offsets, start = [], [], 0
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"precomputed embeddings file {path} does not exist", where="[embed] precomputed",
                              hint="List the .npy files in the same order as the shards in [data] sources.")
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as error:
            raise DataError(f"{path} is not a .npy array: {error}", where="[embed] precomputed") from None
        if array.ndim != 2:
            raise DataError(f"{path} has shape {array.shape}; expected [rows, dim]", where="[embed] precomputed")
        arrays.append(array)
        offsets.append(start)
        start += array.shape[0]
    if total_rows is not None and start != total_rows:
        raise DataError(
            f"the precomputed embeddings have {start:,} rows but the shards have {total_rows:,}",
            where="[embed] precomputed",
            hint="The .npy files must align row by row with the shards, in the same order.",
        )
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise DataError(f"precomputed files have different widths {sorted(dims)}", where="[embed] precomputed")
    out = np.zeros((len(source_rows), dims.pop()), dtype=np.float32)
    offsets_arr = np.array(offsets)
    which = np.searchsorted(offsets_arr, source_rows, side="right") - 1
    for index, array in enumerate(arrays):
        mask = which == index
        if mask.any():
            local = source_rows[mask] - offsets[index]
            order = np.argsort(local)
            picked = np.asarray(array[local[order]], dtype=np.float32)
            rows = np.empty_like(picked)
            rows[order] = picked
            out[mask] = rows
    return normalise(out)



@dataclass
class Precomputed:
    """The files of ``[embed] precomputed`` (an :class:`atlas.models.embedder.Embedder` that
    embeds no new text: :meth:`rows` looks the sample's rows up)."""

    paths: list[Path]
    method: ClassVar[str] = "precomputed"

    @property
    def name(self) -> str:
        return ", ".join(p.name for p in self.paths)

    @property
    def dim(self) -> int:
        import numpy as np

        return int(np.load(self.paths[0], mmap_mode="r").shape[1]) if self.paths else 0

    def rows(self, source_rows: np.ndarray, total_rows: int | None = None) -> np.ndarray:
        """:func:`precomputed_rows` of these files."""
        return precomputed_rows(self.paths, source_rows, total_rows)

    def embed_texts(self, texts: Sequence[str], progress=None) -> np.ndarray:
        raise ModelError("precomputed embeddings hold the sample's rows only and cannot embed new text",
                         where="[embed] method", hint='Use method = "clip" or "text" to embed new text.')


def load_embedder(config: EmbedConfig, *, base: Path | None = None, **_) -> Precomputed:
    """The registry's loader (:func:`atlas.models.embedder.load_embedder`): the listed files."""
    if not config.precomputed:
        raise ConfigError("method = \"precomputed\" but no files are listed", where="[embed] precomputed",
                          hint="List LAION's .npy embedding files, aligned with the shards.")
    return Precomputed([content_path(p, base) for p in config.precomputed])
