"""The one text fold and tokeniser of atlas: the search index, its JavaScript mirror
(``themes/default/static/js/map/text.js``), the blocklist and the artist matcher all see the
same words, so a word the map's search can find is a word the blocklist can block.

A text is folded by

1. compatibility decomposition (NFKD): full-width ``ｐｏｒｎ``, math alphanumerics ``𝐩𝐨𝐫𝐧``,
   circled ``ⓟⓞⓡⓝ``, superscripts, ligatures ``ﬁ`` become the plain letters a reader sees,
   and parenthesised ``⒫⒪⒭⒩`` loses its parentheses;
2. removing nonspacing marks (accents) and default-ignorable code points (zero-width joiners
   and spaces, soft hyphens, left-to-right and right-to-left marks and the other bidi controls,
   the word joiner, BOM, variation selectors, Hangul fillers, tags): a browser draws
   ``p\\u00adorn`` as "porn", so it must be one word here, not "p" and "orn";
3. full case folding: upper- then lower-case (full mappings, so ``ß`` -> ``ss``), final sigma
   as sigma, and ``ẞ`` (which lower-cases to ``ß``) as ``ss`` too, so that folding twice
   changes nothing.

Its tokens are each Han, Hiragana or Katakana character on its own and, elsewhere, the runs of
letters, digits and (spacing or enclosing) marks; everything else separates words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import regex

#: Letters, digits and ideographs in parentheses or tortoise-shell brackets (⒫ ⑴ ㈠ 🄟 🉀): their
#: compatibility decomposition keeps the brackets, "(p)", which would make ⒫⒪⒭⒩ four words
#: where a reader sees one; they fold to what is inside. (Every character whose NFKD is a
#: bracket, something, a bracket; a test checks the list against the Unicode tables.)
BRACKETED = "\u2474-\u2487\u249c-\u24b5\u3200-\u321e\u3220-\u3243\U0001f110-\U0001f12a\U0001f240-\U0001f248"
_BRACKETED = regex.compile(f"[{BRACKETED}]")
#: Removed after decomposition: accents and what a reader never sees.
_STRIP = regex.compile(r"[\p{Mn}\p{Default_Ignorable_Code_Point}]+")
CJK = r"\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}"
#: A CJK character, or a run of letters, digits and marks that are not CJK (text.js: the same
#: class written with a lookahead; a set difference is faster here).
_TOKEN = regex.compile(rf"[{CJK}]|[[\p{{L}}\p{{N}}\p{{M}}]--[{CJK}]]+", regex.V1)
#: For the per-character table: a CJK character (a word alone, even a radical that is a symbol),
#: or a run of what is not part of a word.
_SPLIT = regex.compile(rf"([{CJK}])|[[^\p{{L}}\p{{N}}\p{{M}}\n]--[{CJK}]]+", regex.V1)


def _unbracket(match) -> str:
    return unicodedata.normalize("NFKD", match.group())[1:-1]


def fold(text: str) -> str:
    """Folded text (see the module): NFKD, marks and default-ignorables removed, case folded.
    Same steps as ``fold`` in text.js."""
    text = _BRACKETED.sub(_unbracket, text)
    text = _STRIP.sub("", unicodedata.normalize("NFKD", text))
    return text.upper().lower().replace("ς", "σ").replace("ß", "ss")


def tokens(text: str | None) -> list[str]:
    """The folded word tokens of a text, in order (the search index's positions are indices)."""
    return _TOKEN.findall(fold(text)) if text else []


def tokens_many(texts: Sequence[str | None], batch: int = 2_000) -> list[list[str]]:
    """``tokens`` of each text, folding a batch of texts at once (the same result, faster: the
    normaliser and the case mappings run once over the joined batch)."""
    out: list[list[str]] = []
    for lo in range(0, len(texts), batch):
        part = [(t or "").replace("\0", " ") for t in texts[lo:lo + batch]]  # NUL is no word character
        out += [_TOKEN.findall(f) for f in fold("\0".join(part)).split("\0")]
    return out


def words(text: str | None) -> str:
    """The tokens joined by single spaces: the form blocklist entries, artist names and (in
    DuckDB) captions are compared in, a phrase matching where its words follow each other."""
    return " ".join(tokens(text))


def words_many(texts: Sequence[str | None]) -> list[str]:
    """``words`` of each text (batched like :func:`tokens_many`)."""
    return [" ".join(found) for found in tokens_many(texts)]


def character_words(codes: Sequence[int]) -> list[str]:
    """What each (non-ASCII) code point becomes in ``words`` of a text, one character at a time:
    its folded characters, with a space for each character that separates words and around
    each CJK character (a word of its own). ``""``: removed (a mark, a zero-width joiner).

    Folding character by character gives ``words`` of the whole text (Python's final-sigma
    rule is undone by the fold itself), except where NFKD reorders spacing marks with a
    combining class (a handful of musical symbols). The artist matcher's compiled loop folds
    with these (:class:`atlas.stages.stats._CharFolds`).
    """
    codes = [int(c) for c in codes]
    if not codes:
        return []
    if any(c < 0x80 or 0xD800 <= c <= 0xDFFF or c > 0x10FFFF for c in codes):
        raise ValueError("character_words takes non-ASCII code points (not surrogates)")
    folded = fold("\n".join(map(chr, codes)))  # nothing non-ASCII folds to (or from) a newline
    spaced = _SPLIT.sub(lambda m: f" {m.group(1)} " if m.group(1) else " ", folded)
    out = spaced.split("\n")
    assert len(out) == len(codes)
    return out
