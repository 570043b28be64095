"""The fold of :mod:`atlas.text.fold` inside DuckDB, for the blocklist (:func:`atlas.data.policy.blocked_sql`).

DuckDB's own folding (``strip_accents(lower(x))``) does no compatibility decomposition and keeps
zero-width characters, so it cannot be the rule: ``ｐｏｒｎ`` would pass a blocklist that the
search index then undoes. The exact words come from Python instead, through the scalar function
:data:`UDF` that :func:`register` puts on every connection (:func:`atlas.data.rows.connect`). It is
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

from atlas.text.fold import _TOKEN, words

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
#: Code points compared at a time by :func:`mismatch_class`.
_CHUNK = 32768


def register(con) -> None:
    """Define :data:`UDF` on a DuckDB connection: :func:`atlas.text.fold.words` of each value.

    A plain (one value a call) Python function: DuckDB calls it only for the rows the scan
    lets through, a dozen or so in each vector of 2,048, where an Arrow-vectorised one was no
    faster (0.9-1.4 s either way for ``count_if(blocked)`` over 1M real captions) and held
    ~45 MB more memory.
    """
    import duckdb

    con.create_function(UDF, words, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                        type="native", side_effects=False)


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
    plane 4 and in plane 14 (about 0.2 s, in parts of 32,768 so that it holds a few MB at a
    time): the fold of them joined by newlines, DuckDB's of the same string, and a comparison;
    about 400 ranges.
    """
    import duckdb
    import numpy as np

    from atlas.text.fold import fold

    codes = np.r_[0x80:0xD800, 0xE000:0x40000, 0xE0000:0xF0000].tolist()
    special = np.zeros(0x110000, dtype=np.bool_)
    con = duckdb.connect()
    try:
        for lo in range(0, len(codes), _CHUNK):  # in parts: a few MB of strings at a time, not 60
            part = codes[lo:lo + _CHUNK]
            joined = "\n".join(map(chr, part))  # nothing non-ASCII folds to or from a newline
            ours = fold(joined).split("\n")
            theirs = con.execute("SELECT strip_accents(lower(?))", [joined]).fetchone()[0].split("\n")
            if not len(ours) == len(theirs) == len(part):
                raise RuntimeError("folding the code points one a line changed the number of lines")
            special[[c for c, a, b in zip(part, ours, theirs) if a != b and (a == "" or _TOKEN.search(a))]] = True
    finally:
        con.close()
    for lo, hi in _UNCOMPUTED + _COMPOSING:
        special[lo:hi + 1] = True
    edges = np.diff(np.concatenate([[0], special.view(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    ranges = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in zip(starts, ends))
    return f"[{ranges}]"
