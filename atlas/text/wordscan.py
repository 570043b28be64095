"""The compiled inner loop of the artist pass (:func:`atlas.stages.stats.count_artists`).

Written with numba because numpy needs a dozen passes and several temporary arrays over every
caption byte for the same result (measured on 4M demo captions: 0.9-1.1 s against 0.3-0.4 s for
the ASCII captions alone, and several times more for UTF-8 decoding); numba is a dependency
already (umap-learn). Compiled once and kept in numba's on-disk cache.
"""

from __future__ import annotations

import numba

#: What a character becomes (as in :class:`atlas.stages.stats._CharFolds`): nothing, a word
#: break, or (``EXPANDED - k``) the characters listed at ``expansions[k]``: their count, then
#: each one (a space there is a word break). Any value >= 0 is the one code point it folds to.
REMOVED, SEPARATOR, EXPANDED = -1, -2, -3


@numba.njit(cache=True, nogil=True)
def _code_point(raw, i, end):  # pragma: no cover - compiled
    """(code point, bytes) of the UTF-8 character at ``raw[i]``; code point -1 for bytes that are
    not valid UTF-8 (a stray continuation byte, a cut or impossible character)."""
    byte = raw[i]
    if byte < 0x80:
        return byte, 1
    if byte >= 0xF0:
        length = 4
    elif byte >= 0xE0:
        length = 3
    elif byte >= 0xC0:
        length = 2
    else:
        return -1, 1
    if i + length > end:
        return -1, end - i
    code = byte & (0x7F >> length)
    for k in range(1, length):
        code = (code << 6) | (raw[i + k] & 0x3F)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return -1, length
    return code, length


@numba.njit(cache=True, nogil=True, inline="always")
def _put(text, written, fold, previous_space):  # pragma: no cover - compiled
    """Write one folded code point (or, for ``SEPARATOR`` and a space, one space unless the
    last byte written was one) at ``text[written]``; returns (bytes written, last was a space)."""
    if fold == SEPARATOR or fold == 32:
        if not previous_space:
            text[written] = 32
            written += 1
        return written, True
    if fold < 0x80:
        text[written] = fold
        written += 1
    elif fold < 0x800:
        text[written] = 0xC0 | (fold >> 6)
        text[written + 1] = 0x80 | (fold & 0x3F)
        written += 2
    elif fold < 0x10000:
        text[written] = 0xE0 | (fold >> 12)
        text[written + 1] = 0x80 | ((fold >> 6) & 0x3F)
        text[written + 2] = 0x80 | (fold & 0x3F)
        written += 3
    else:
        text[written] = 0xF0 | (fold >> 18)
        text[written + 1] = 0x80 | ((fold >> 12) & 0x3F)
        text[written + 2] = 0x80 | ((fold >> 6) & 0x3F)
        text[written + 3] = 0x80 | (fold & 0x3F)
        written += 4
    return written, False


@numba.njit(cache=True, nogil=True)
def fold_words(raw, offsets, ascii_table, folds, known, expansions, text, starts, unknown):  # pragma: no cover - compiled
    """Fold and split texts into words separated by exactly one space.

    ``raw[offsets[i]:offsets[i + 1]]`` is the i-th text (UTF-8). An ASCII byte becomes
    ``ascii_table[byte]`` (lower case, or a space for a separator); any other character what
    ``folds[code]`` says: a code point, encoded again, nothing (``REMOVED``), a separator
    (``SEPARATOR``; so are bytes that are not valid UTF-8) or several (``EXPANDED``, from
    ``expansions``). A separator writes one space unless the last byte written was one. Writes
    to ``text`` (room for as many bytes as the table's longest fold per byte read) and each
    text's start to ``starts`` (one more entry: the end). Code points ``known`` does not have
    are written to ``unknown`` (room for half of ``raw``; repeats included; they write at most
    one byte): the text is only right when there are none. Returns (bytes written, unknown
    code points).
    """
    written = 0
    missing = 0
    previous_space = False
    count = len(offsets) - 1
    for row in range(count):
        starts[row] = written
        i = offsets[row]
        end = offsets[row + 1]
        while i < end:
            byte = raw[i]
            if byte < 0x80:  # most bytes: written here, without the general case below
                i += 1
                lowered = ascii_table[byte]
                if lowered == 32:
                    if not previous_space:
                        text[written] = 32
                        written += 1
                        previous_space = True
                else:
                    text[written] = lowered
                    written += 1
                    previous_space = False
                continue
            code, length = _code_point(raw, i, end)
            fold = SEPARATOR
            if code >= 0:
                fold = folds[code]
                if not known[code]:
                    unknown[missing] = code
                    missing += 1
            i += length
            if fold == REMOVED:
                continue
            if fold <= EXPANDED:
                at = EXPANDED - fold
                for k in range(at + 1, at + 1 + expansions[at]):
                    written, previous_space = _put(text, written, expansions[k], previous_space)
                continue
            written, previous_space = _put(text, written, fold, previous_space)
    starts[count] = written
    return written, missing
