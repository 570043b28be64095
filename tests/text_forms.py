"""Ways of writing a word that a reader reads as that word but that a naive fold does not: the
forms the blocklist, the search index, its JavaScript mirror and the artist matcher must all
see through (issue 17, "one text fold"). Used by test_safety, test_search, test_stats and
test_fuzz_safety.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable


def _named(pattern: str, fallback: Callable[[str], str] = lambda ch: ch) -> Callable[[str], str]:
    """Each letter as the character named ``pattern`` (``{L}``: its capital, ``{l}``: itself);
    a letter without such a character (there is no superscript q) stays as it is."""

    def write(word: str) -> str:
        out = []
        for ch in word:
            if not ch.isalpha():
                out.append(ch)
                continue
            try:
                out.append(unicodedata.lookup(pattern.format(L=ch.upper(), l=ch)))
            except KeyError:
                out.append(fallback(ch))
        return "".join(out)

    return write


def _math(style: str) -> Callable[[str], str]:
    # A few letters of some styles were encoded earlier, outside the block: ℯ ℊ ℴ (script), ℎ (italic h).
    return _named(f"MATHEMATICAL {style} SMALL {{L}}", _named(f"{style} SMALL {{L}}", _named("PLANCK CONSTANT")))


def _superscript(ch: str) -> str:
    for name in (f"MODIFIER LETTER SMALL {ch.upper()}", f"SUPERSCRIPT LATIN SMALL LETTER {ch.upper()}"):
        try:
            return unicodedata.lookup(name)
        except KeyError:
            pass
    return ch


def _inside(mark: str) -> Callable[[str], str]:
    """``mark`` after every letter but the last of each word (spaces between words kept)."""
    return lambda text: " ".join(mark.join(word) for word in text.split(" "))


LIGATURES = {"ffi": "\ufb03", "ffl": "\ufb04", "ff": "\ufb00", "fi": "\ufb01", "fl": "\ufb02", "st": "\ufb06"}


def _ligatures(text: str) -> str:
    for pair, ligature in LIGATURES.items():
        text = text.replace(pair, ligature)
    return text


#: Form name -> how to write a (lower-case ASCII) word or phrase in it.
FORMS: dict[str, Callable[[str], str]] = {
    "full-width": lambda t: _named("FULLWIDTH LATIN SMALL LETTER {L}")(t).replace(" ", "\u3000"),
    "full-width capitals": _named("FULLWIDTH LATIN CAPITAL LETTER {L}"),
    "math bold": _math("BOLD"),
    "math italic": _math("ITALIC"),
    "math bold italic": _math("BOLD ITALIC"),
    "math script": _math("SCRIPT"),
    "math double-struck": _math("DOUBLE-STRUCK"),
    "math fraktur": _math("FRAKTUR"),
    "math sans-serif bold": _math("SANS-SERIF BOLD"),
    "math monospace": _math("MONOSPACE"),
    "circled": _named("CIRCLED LATIN SMALL LETTER {L}"),
    "circled capitals": _named("CIRCLED LATIN CAPITAL LETTER {L}"),
    "parenthesised": _named("PARENTHESIZED LATIN SMALL LETTER {L}"),
    "squared": _named("SQUARED LATIN CAPITAL LETTER {L}"),
    "superscript": lambda t: "".join(_superscript(ch) for ch in t),
    "ligatures": _ligatures,
    "zero-width joiner inside": _inside("\u200d"),
    "zero-width non-joiner inside": _inside("\u200c"),
    "zero-width space inside": _inside("\u200b"),
    "soft hyphen inside": _inside("\u00ad"),
    "word joiner inside": _inside("\u2060"),
    "variation selector inside": _inside("\ufe0f"),
    "right-to-left marks around": lambda t: f"\u200f{t}\u200f",
    "right-to-left mark inside": _inside("\u200f"),
    "left-to-right mark inside": _inside("\u200e"),
    "bidi isolate around": lambda t: f"\u2067{t}\u2069",
    "full-width, soft hyphen and accent": lambda t: _inside("\u00ad")(
        unicodedata.normalize("NFC", _named("FULLWIDTH LATIN SMALL LETTER {L}")(t).replace("\uff4f", "\u00f6"))),
}
