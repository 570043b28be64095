"""The search stage: a term index over the map's captions, so the page searches a million captions
by fetching one small file per word and never the captions themselves.

Words are the tokens of :mod:`atlas.text.fold` (the fold of every word rule of atlas: NFKD,
nonspacing marks and default-ignorable characters removed, case folded; each Han, Hiragana or
Katakana character a token of its own), so the blocklist hides every caption a search for one of
its words would find; the page's ``text.js`` folds and tokenises queries in exactly the same
way. The folder (copied to
``<site>/map/data/search/``) holds:

``index.json``
    ``{"format", "docs", "terms", "postings", "shards", "key_len", "hash"}``.
``terms/NNNN.bin``
    The terms whose *key* (their first ``key_len`` characters) hashes to NNNN (FNV-1a 32 of the
    UTF-8 key, modulo ``shards``), so a word and every word it starts are in one file: ``ATI1``,
    a varint term count, per term (sorted by UTF-8 bytes, front-coded) ``varint shared bytes,
    varint suffix bytes, suffix, varint df``, then each term's postings one after another: its
    ``df`` point ids (the map's order) as varint gaps, the first counting from -1.
``pos/NNNN.bin``
    The same terms' positions, fetched only for phrase queries: per posting
    ``varint (first position << 1 | more)``, and when ``more``: ``varint (tf - 2)`` and ``tf - 1``
    varint gaps to the next positions.

All varints are LEB128 (7 bits a byte, low first).
"""

from __future__ import annotations

import json
import logging
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atlas.core.pipeline import Stage
from atlas.text.fold import fold, tokens, tokens_many# noqa: F401 (the stage's word rule, re-exported)

log = logging.getLogger(__name__)

FORMAT = 1
MAGIC = b"ATI1"
#: Aim for shard files of about this many bytes (a one-word query fetches one).
SHARD_BYTES = 16_384
#: Words are filed under their first KEY_LEN characters: completion of a word of at least this
#: many characters needs only its own shard.
KEY_LEN = 3
MAX_SHARDS = 4096

def term_key(term: str) -> str:
    """The part of a term its shard is chosen by."""
    return term[:KEY_LEN]


def fnv1a(text: str) -> int:
    """FNV-1a 32-bit hash of the UTF-8 bytes (the page computes the same)."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _power_of_two(n: float) -> int:
    import numpy as np

    return 1 << max(0, min(MAX_SHARDS.bit_length() - 1, round(float(np.log2(max(n, 1.0))))))


def varint(value: int) -> bytes:
    """One LEB128 varint."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each non-negative value takes as a LEB128 varint."""
    import numpy as np

    values = np.asarray(values, dtype=np.uint64)
    out = np.ones(values.shape, dtype=np.int64)
    for shift in (7, 14, 21, 28, 35):
        out += values >= (np.uint64(1) << np.uint64(shift))
    return out


def encode_varints(values: np.ndarray) -> bytes:
    """LEB128 varints of non-negative integers, all at once."""
    import numpy as np

    values = np.asarray(values, dtype=np.uint64)
    if not len(values):
        return b""
    lengths = varint_lengths(values)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    out = np.zeros(int(lengths.sum()), dtype=np.uint8)
    for k in range(int(lengths.max())):
        has = lengths > k
        byte = (values[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[has] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def decode_varints(data: bytes, count: int | None = None, offset: int = 0) -> tuple[list[int], int]:
    """``count`` varints (all when None) from ``offset``; returns them and the offset after them."""
    out, value, shift, i = [], 0, 0, offset
    end = len(data)
    while i < end and (count is None or len(out) < count):
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            out.append(value)
            value, shift = 0, 0
    return out, i


@dataclass
class IndexSummary:
    docs: int
    terms: int
    postings: int
    shards: int
    bytes: int
    seconds: float


def write_index(captions: Sequence[str | None], out_folder: Path, shard_bytes: int = SHARD_BYTES) -> IndexSummary:
    """Write the search index of ``captions`` (point i = captions[i]) into ``out_folder``."""
    import numpy as np

    started = time.perf_counter()
    out = Path(out_folder)
    vocab: dict[str, int] = {}
    term_ids, doc_ids, positions = array("q"), array("q"), array("q")
    for doc, found in enumerate(tokens_many(captions)):
        if found:
            term_ids.extend([vocab.setdefault(t, len(vocab)) for t in found])
            doc_ids.extend([doc] * len(found))
            positions.extend(range(len(found)))
    words = list(vocab)
    n_terms = len(words)
    # Terms in file order (shard, then UTF-8 bytes) get ranks; occurrences sorted by rank, doc, position.
    shards_guess = _power_of_two((2 * len(term_ids) + 6 * n_terms) / shard_bytes)
    raw = [w.encode("utf-8") for w in words]
    shard_of = [fnv1a(term_key(w)) % shards_guess for w in words]
    file_order = sorted(range(n_terms), key=lambda t: (shard_of[t], raw[t]))
    rank = np.empty(n_terms, dtype=np.int64)
    rank[file_order] = np.arange(n_terms)
    term = rank[np.frombuffer(term_ids, dtype=np.int64)] if n_terms else np.zeros(0, np.int64)
    doc = np.frombuffer(doc_ids, dtype=np.int64) if n_terms else np.zeros(0, np.int64)
    pos = np.frombuffer(positions, dtype=np.int64) if n_terms else np.zeros(0, np.int64)
    order = np.lexsort((pos, doc, term))
    term, doc, pos = term[order], doc[order], pos[order]

    new_pair = np.ones(len(term), dtype=bool)
    new_pair[1:] = (term[1:] != term[:-1]) | (doc[1:] != doc[:-1])
    pair_start = np.flatnonzero(new_pair)
    pair_term, pair_doc = term[pair_start], doc[pair_start]
    tf = np.diff(np.append(pair_start, len(term)))
    df = np.bincount(pair_term, minlength=n_terms)  # by rank

    # Postings: gaps between a term's point ids (the first from -1).
    first = np.ones(len(pair_term), dtype=bool)
    first[1:] = pair_term[1:] != pair_term[:-1]
    gaps = pair_doc - np.concatenate([[-1], pair_doc[:-1]])
    gaps[first] = pair_doc[first] + 1
    # Positions: (first << 1 | more), then (tf - 2) and the gaps when a word repeats.
    pos_gaps = pos - np.concatenate([[0], pos[:-1]])
    head = pos[pair_start] * 2 + (tf > 1)
    repeat = tf > 1
    values = np.insert(pos_gaps, pair_start, 0)  # a slot before each pair's positions
    slot = pair_start + np.arange(len(pair_start))
    values[slot] = tf - 2  # replaced below where the word does not repeat
    values[slot + 1] = head
    keep = np.ones(len(values), dtype=bool)
    keep[slot[~repeat]] = False
    # Order per pair: head, tf - 2, gaps...: swap the first two where kept.
    values[slot[repeat]], values[slot[repeat] + 1] = head[repeat], tf[repeat] - 2
    pos_bytes = encode_varints(values[keep])
    post_bytes = encode_varints(gaps)
    pair_term_pos = np.repeat(pair_term, tf + repeat)  # term rank of each kept value
    post_len = np.bincount(pair_term, weights=varint_lengths(gaps), minlength=n_terms).astype(np.int64)
    pos_len = np.bincount(pair_term_pos, weights=varint_lengths(values[keep]), minlength=n_terms).astype(np.int64)
    post_off = np.concatenate([[0], np.cumsum(post_len)]).astype(np.int64)
    pos_off = np.concatenate([[0], np.cumsum(pos_len)]).astype(np.int64)

    for sub in ("terms", "pos"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    written, t = 0, 0
    for s in range(shards_guess):
        lo = t
        while t < n_terms and shard_of[file_order[t]] == s:
            t += 1
        head_bytes = bytearray(MAGIC) + varint(t - lo)
        previous = b""
        for r in range(lo, t):
            word = raw[file_order[r]]
            shared = 0
            limit = min(len(word), len(previous))
            while shared < limit and word[shared] == previous[shared]:
                shared += 1
            head_bytes += varint(shared) + varint(len(word) - shared) + word[shared:] + varint(int(df[r]))
            previous = word
        body = post_bytes[post_off[lo]:post_off[t]]
        pbody = pos_bytes[pos_off[lo]:pos_off[t]]
        (out / "terms" / f"{s:04d}.bin").write_bytes(bytes(head_bytes) + body)
        (out / "pos" / f"{s:04d}.bin").write_bytes(pbody)
        written += len(head_bytes) + len(body) + len(pbody)

    info = {"format": FORMAT, "docs": len(captions), "terms": n_terms, "postings": int(len(pair_term)),
            "shards": shards_guess, "key_len": KEY_LEN, "hash": "fnv1a32"}
    (out / "index.json").write_text(json.dumps(info))
    seconds = time.perf_counter() - started
    log.info("search index: %d terms, %d postings, %d shards, %d bytes in %.1fs", n_terms, len(pair_term),
             shards_guess, written, seconds)
    return IndexSummary(len(captions), n_terms, int(len(pair_term)), shards_guess, written, seconds)


# ----------------------------------------------------------------------------- reader


class SearchIndex:
    """The index as written: ``SearchIndex(folder).postings("cat")`` -> the sorted point ids."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.info = json.loads((self.folder / "index.json").read_text())

    def shard_of(self, term: str) -> int:
        return fnv1a(term_key(term)) % self.info["shards"]

    def _shard(self, term: str) -> dict[str, tuple[list[int], list[list[int]]]]:
        """term -> (point ids, positions per point) for every term of ``term``'s shard."""
        import numpy as np

        s = self.shard_of(term)
        data = (self.folder / "terms" / f"{s:04d}.bin").read_bytes()
        if data[:4] != MAGIC:
            raise ValueError(f"{self.folder}: not a search index shard")
        (count,), i = decode_varints(data, 1, 4)
        heads, previous = [], b""
        for _ in range(count):
            (shared, length), i = decode_varints(data, 2, i)
            word = previous[:shared] + data[i:i + length]
            (df,), i = decode_varints(data, 1, i + length)
            heads.append((word.decode("utf-8"), df))
            previous = word
        gaps, _ = decode_varints(data, None, i)
        values, _ = decode_varints((self.folder / "pos" / f"{s:04d}.bin").read_bytes())
        out, g, v = {}, 0, 0
        for word, df in heads:
            points = (np.cumsum(gaps[g:g + df], dtype=np.int64) - 1).tolist()
            g += df
            where = []
            for _ in range(df):
                head = values[v]
                v += 1
                at = [head >> 1]
                if head & 1:
                    tf = values[v] + 2
                    for gap in values[v + 1:v + tf]:
                        at.append(at[-1] + gap)
                    v += tf
                where.append(at)
            out[word] = (points, where)
        return out

    def postings(self, term: str) -> list[int]:
        """Point ids whose caption has the (folded) word ``term``."""
        return self._shard(term).get(term, ([], []))[0]

    def positions(self, term: str) -> dict[int, list[int]]:
        """Point id -> the word's positions in its caption."""
        points, where = self._shard(term).get(term, ([], []))
        return dict(zip(points, where))

    def terms(self, term: str) -> dict[str, int]:
        """Every term filed with ``term`` (the same key) and its document frequency."""
        return {w: len(p) for w, (p, _) in self._shard(term).items()}

    def bytes_for(self, term: str) -> int:
        """Bytes a one-word query for ``term`` fetches (its terms shard)."""
        return (self.folder / "terms" / f"{self.shard_of(term):04d}.bin").stat().st_size


def read(folder: Path | None) -> SearchIndex | None:
    """The search stage's output, or None when the folder has no index."""
    if folder is None or not (Path(folder) / "index.json").exists():
        return None
    return SearchIndex(folder)


# ----------------------------------------------------------------------------- stage


def _run(ctx, folder: Path) -> dict:
    from atlas.stages import mapdata

    summary = write_index(mapdata.read(ctx.output("mapdata")).captions(), folder)
    return {"terms": summary.terms, "postings": summary.postings, "shards": summary.shards, "bytes": summary.bytes}


STAGE = Stage(
    "search",
    "2",  # 2: the fold removes default-ignorable characters (soft hyphens, zero-width joiners), ẞ is ss
    inputs=lambda ctx: {"format": FORMAT, "shard_bytes": SHARD_BYTES, "key_len": KEY_LEN},
    run=_run,
    after=("mapdata",),
    description="Term index of the map's captions (sharded postings and positions)",
)
