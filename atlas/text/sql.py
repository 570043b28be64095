"""The fold of :mod:`atlas.text.fold` inside DuckDB, for the blocklist (:func:`atlas.data.blocked_sql`).

DuckDB's own folding (``strip_accents(lower(x))``) does no compatibility decomposition and keeps
zero-width characters, so it cannot be the rule: ``ｐｏｒｎ`` would pass a blocklist that the
search index then undoes. The exact words come from Python instead, through the scalar function
:data:`UDF` that :func:`register` puts on every connection (:func:`atlas.data.connect`). It is
called only for the few values the cheap RE2 scan lets through, and only for non-ASCII text:
for ASCII the fold is exactly ``lower`` and the words the runs of ``[a-z0-9]``, which DuckDB
computes itself.

That scan must stay a necessary condition under this fold. :func:`mismatch_class` is the RE2
class of the characters whose fold DuckDB's ``strip_accents(lower())`` does not reproduce; a
text without any of them folds, in every word, to the same characters as
``strip_accents(lower(text))``, so a word of the fold is a substring of that.
"""

from __future__ import annotations

from functools import lru_cache

from atlas.text.fold import _TOKEN, words_many

#: The scalar function of the words of a text (:func:`atlas.text.fold.words`), NULL for NULL.
UDF = "atlas_words"

#: Planes no Unicode version has assigned yet (4-13) and the private-use planes (15-16): never
#: computed, counted as mismatching (a caption with one is simply always looked at closely).
_UNCOMPUTED = ((0x40000, 0xDFFFF), (0xF0000, 0x10FFFF))
#: Conjoining Hangul vowels and trailing consonants: ``strip_accents`` composes them with the
#: letter before into one syllable, so a text's fold and DuckDB's differ around them even where
#: each character alone agrees (Python's tables have no other canonical composition whose second
#: character is not a mark, and marks are stripped before DuckDB composes).
_COMPOSING = ((0x1161, 0x1175), (0x11A8, 0x11C2), (0xD7B0, 0xD7C6), (0xD7CB, 0xD7FB))


def words_arrow(texts):
    """The UDF's body, a batch at a time: ``words`` of each value of an Arrow string array."""
    import pyarrow as pa

    values = texts.to_pylist()
    folded = words_many(values)
    return pa.array([None if v is None else w for v, w in zip(values, folded)], pa.string())


def register(con) -> None:
    """Define :data:`UDF` on a DuckDB connection."""
    import duckdb

    con.create_function(UDF, words_arrow, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                        type="arrow", side_effects=False)


@lru_cache(maxsize=1)
def mismatch_class() -> str:
    """RE2 class of the non-ASCII characters ``c`` whose fold is not DuckDB's
    ``strip_accents(lower(c))``, where the difference can change a word: the two strings differ
    and the fold is not a pure separator (a fold that is only punctuation or space separates
    words whatever DuckDB makes of the character). Full-width and math letters, ligatures,
    superscripts, ``ß``, final sigma, zero-width joiners and bidi marks (removed by the fold,
    kept by DuckDB), spacing marks (kept by the fold, stripped by DuckDB), Hangul syllables
    (decomposed by the fold) are in it; ``é``, curly quotes, no-break spaces and ``…`` are not.

    Computed once per process in three vectorised passes over the 325,000 code points below
    plane 4 and plane 14 (about 0.2 s): the fold of all of them joined by newlines, DuckDB's of
    the same string, and a comparison; about 400 ranges.
    """
    import duckdb
    import numpy as np

    from atlas.text.fold import fold

    codes = np.r_[0x80:0xD800, 0xE000:0x40000, 0xE0000:0xF0000]
    joined = "\n".join(map(chr, codes.tolist()))  # nothing non-ASCII folds to or from a newline
    ours = fold(joined).split("\n")
    con = duckdb.connect()
    try:
        theirs = con.execute("SELECT strip_accents(lower(?))", [joined]).fetchone()[0].split("\n")
    finally:
        con.close()
    if not len(ours) == len(theirs) == len(codes):
        raise RuntimeError("folding the code points one a line changed the number of lines")
    special = np.zeros(0x110000, dtype=np.bool_)
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    special[[int(codes[i]) for i in differ if ours[i] == "" or _TOKEN.search(ours[i])]] = True
    for lo, hi in _UNCOMPUTED + _COMPOSING:
        special[lo:hi + 1] = True
    edges = np.diff(np.concatenate([[0], special.view(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    ranges = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in zip(starts, ends))
    return f"[{ranges}]"
