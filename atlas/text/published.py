"""Bounds and guards on data as the site publishes it: captions cut to one length, CSV cells that
a spreadsheet cannot run.

Every publisher of a caption (the captions widget, the map's text chunks, the gallery's nearest
captions, the bias examples) cuts it with :func:`cut_caption`, so no row can make a page or a
file megabytes long; the statistics (caption length histogram, counts) read the shards and
still see the whole caption. Every published CSV cell goes through :func:`csv_cell`; the map's
CSV export has the same rule in ``themes/default/static/js/map/selection.js`` (``csvCell``).
"""

from __future__ import annotations

import unicodedata

#: Characters of a caption the site publishes (LAION captions are rarely over 300; the longest
#: real ones are a few thousand). Longer captions are cut and end in :data:`ELLIPSIS`.
CAPTION_CUT = 1_000
ELLIPSIS = "\u2026"
#: How far a cut moves back to keep a base character with its combining marks (a longer run of
#: marks is cut anyway: the bound matters, not the zalgo).
_MAX_BACKOFF = 32


def _joins_previous(char: str) -> bool:
    """True for a character that belongs to the one before it: combining marks, variation
    selectors, ZWJ/ZWNJ, a low surrogate (only in a string that holds surrogates)."""
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char in "\u200c\u200d"
        or "\udc00" <= char <= "\udfff"
    )


def cut_caption(text: str | None, limit: int = CAPTION_CUT) -> str:
    """``text`` as published: at most ``limit`` characters of it, then "…" when it was longer.

    The cut falls on a character boundary and, when cheap, before a combining sequence rather
    than inside it (so "e" + U+0301 is kept or dropped whole, and no half of a surrogate pair
    or emoji ZWJ sequence is left behind). ``None`` and non-strings publish as "".
    """
    if not isinstance(text, str):
        return ""
    if len(text) <= limit:
        return text
    cut = limit
    for _ in range(_MAX_BACKOFF):
        if cut <= 1 or not (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
            break
        cut -= 1
    else:
        cut = limit
    return text[:cut].rstrip() + ELLIPSIS


# ----------------------------------------------------------------------------- CSV

#: Default-ignorable code points that are neither Cf nor marks (Unicode's
#: Default_Ignorable_Code_Point; JavaScript has the property, Python's unicodedata does not).
_IGNORABLE_RANGES = ((0x115F, 0x1160), (0x3164, 0x3164), (0xFFA0, 0xFFA0), (0x180B, 0x180F),
                     (0x2060, 0x206F), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))
#: First visible characters that make a spreadsheet read a cell as a formula (after NFKC, which
#: folds the full-width ＝＋－＠ and the small ﹢﹣﹦﹫ forms); U+2212 MINUS SIGN has no
#: compatibility form and is listed as itself.
FORMULA_STARTS = frozenset("=+-@\u2212")


def _invisible(char: str) -> bool:
    """Whitespace, control, format (zero-width, bidi), marks and other default-ignorable
    characters: what a reader cannot see in front of a formula sign."""
    if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"):
        return True
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _IGNORABLE_RANGES)


def looks_like_formula(text: str) -> bool:
    """True when a spreadsheet may run ``text``: it starts with tab or CR (formula triggers in
    some spreadsheets), or its first visible character, NFKC-folded, is ``= + - @`` (or −).

    ``|`` and ``%`` are not included: neither starts a formula in Excel, LibreOffice or Google
    Sheets (``|`` matters only inside a formula that ``=`` already starts).
    """
    if text[:1] in ("\t", "\r"):
        return True
    for char in text:
        if _invisible(char):
            continue
        return unicodedata.normalize("NFKC", char)[:1] in FORMULA_STARTS
    return False


def csv_cell(value):
    """A published CSV cell: text that looks like a formula gets a leading apostrophe (shown
    as text by spreadsheets); numbers and everything else are returned unchanged."""
    if isinstance(value, str) and looks_like_formula(value):
        return "'" + value
    return value
