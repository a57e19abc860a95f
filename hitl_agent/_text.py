"""Making invisible characters visible, and spotting look-alike letters: one rule for what the gate
renders and what the local server's console and terminal reviewer show (no IO, no dependencies).

What counts as invisible comes from Unicode's own data where Python has it (``unicodedata``'s
general categories), plus the two short lists Unicode keeps for the rest of its
Default_Ignorable_Code_Point property (``Other_Default_Ignorable_Code_Point`` and
``Variation_Selector`` in PropList.txt, both closed to additions by Unicode's stability policy
for the ranges listed) and a few characters that are not ignorable but draw nothing (blank
glyphs). No hand list of "known bad" characters: a new format character is caught by its
category.

* categories Cc (controls; tab and newline are kept), Cf (format: bidi embeddings, overrides,
  isolates and marks, zero-widths, the word joiner, soft hyphen, Unicode tag characters
  U+E0001 and U+E0020–E007F, interlinear annotation controls, …), Zl and Zp (line and
  paragraph separators: they break lines invisibly) and Cs (lone surrogates);
* Default_Ignorable_Code_Point beyond Cf (``_IGNORABLE``): the combining grapheme joiner,
  Hangul fillers, Khmer inherent vowels U+17B4/5, Mongolian free variation selectors
  U+180B–180F, variation selectors U+FE00–FE0F and U+E0100–E01EF, U+FFF0–FFF8 and the whole
  reserved block U+E0000–E0FFF (tag characters included, assigned or not);
* blank glyphs (``_BLANK``): U+2800 BRAILLE PATTERN BLANK, U+1D159 MUSICAL SYMBOL NULL
  NOTEHEAD (they are letters/symbols that render as empty space).

Mixed scripts (UTS #39's mixed-script detection, approximated from ``unicodedata`` names):
:func:`confusable_words` returns the words of a text whose letters come from more than one
script (``exаmple`` with a Cyrillic ``а``; Han, Hiragana, Katakana, Hangul and Bopomofo count
as one script, as in UTS #39's "highly restrictive" profile) or whose letters are all Cyrillic
or Greek letters that look Latin (``аррӏе``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "MAX_REQUEST_TEXT",
    "PRODUCT_MARK",
    "confusable_words",
    "describe_chars",
    "is_invisible",
    "reveal_invisible",
]

MAX_REQUEST_TEXT = 2000
"""HITL.sh's limit on ``request_text`` (characters)."""

PRODUCT_MARK = "🔒"
"""Starts every line of a request text that the product writes (a footer, a policy's notes);
agent text is quoted or fenced, so it never starts a line with it."""

# PropList.txt: Other_Default_Ignorable_Code_Point and Variation_Selector (the parts of
# Default_Ignorable_Code_Point that are not general category Cf).
_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x115F, 0x1160),  # HANGUL CHOSEONG / JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ / AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS (and U+180E, Cf before Unicode 6.3)
    (0x2065, 0x2065),  # reserved in the General Punctuation format range
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..16
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # reserved in the Specials block
    (0xE0000, 0xE0FFF),  # tags, VARIATION SELECTOR-17..256, the rest reserved ignorable
)
# Characters that are neither controls nor ignorable but draw nothing.
_BLANK: tuple[tuple[int, int], ...] = (
    (0x2800, 0x2800),  # BRAILLE PATTERN BLANK
    (0x1D159, 0x1D159),  # MUSICAL SYMBOL NULL NOTEHEAD
)
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

# Only characters outside printable ASCII are looked at (ASCII text costs one regex scan).
_CANDIDATE = re.compile(r"[^\x20-\x7e\n]")


@lru_cache(maxsize=4096)
def is_invisible(char: str) -> bool:
    """True when ``char`` renders as nothing or changes how the text around it reads
    (tab and newline excepted; see the module docstring for the sources)."""
    if char in "\t\n":
        return False
    code = ord(char)
    if any(low <= code <= high for low, high in _IGNORABLE) or any(
        low <= code <= high for low, high in _BLANK
    ):
        return True
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def reveal_invisible(text: str, *, keep_cr: bool = False) -> str:
    """Replace each invisible or direction-changing character by a visible ``⟦U+XXXX⟧``.

    Args:
        text: untrusted text.
        keep_cr: leave carriage returns alone (markdown that arrives with CRLF line ends);
            otherwise a CR is revealed too, since it can hide text in some viewers.
    """

    def reveal(match: re.Match[str]) -> str:
        char = match.group()
        if (keep_cr and char == "\r") or not is_invisible(char):
            return char
        return f"⟦U+{ord(char):04X}⟧"

    return _CANDIDATE.sub(reveal, text)


def describe_chars(chars: list[str], limit: int = 5) -> str:
    """``U+0430 CYRILLIC SMALL LETTER A, …`` for at most ``limit`` characters."""
    names = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')}" for ch in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return names + more


# UTS #39 treats these as one script for mixed-script purposes (Japanese and Korean writing).
_HAN_GROUP = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC"})
# Cyrillic and Greek letters that render like Latin ones (UTS #39 confusables.txt, the
# common single-letter prototypes); a word made only of these passes for a Latin word.
_LATIN_LOOKALIKES = frozenset("аеорсухіјѕԁһӏԛԝвкмнтАВЕКМНОРСТХІЈЅԌαοριτυνκΑΒΕΖΗΙΚΜΝΟΡΤΥΧ")


@lru_cache(maxsize=4096)
def _script(char: str) -> str | None:
    """The script of a letter (first word of its Unicode name), None for anything else."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    if not name:
        return None
    first = name.split()[0]
    return "HAN" if first in _HAN_GROUP else first


def confusable_words(text: str, limit: int = 3) -> list[tuple[str, list[str]]]:
    """Words of ``text`` that mix scripts or pass for Latin, each with its odd letters.

    Returns:
        Up to ``limit`` ``(word, [non-Latin letters])`` pairs, in order of appearance.
    """
    found: list[tuple[str, list[str]]] = []
    if text.isascii():
        return found
    for word in text.split():
        if word.isascii():
            continue
        scripts = {s for s in map(_script, word) if s is not None}
        letters = [ch for ch in word if _script(ch) is not None]
        mixed = len(scripts - {"HAN"}) > 1
        lookalike = (
            len(scripts) == 1
            and scripts <= {"CYRILLIC", "GREEK"}
            and len(letters) > 1
            and all(ch in _LATIN_LOOKALIKES for ch in letters)
        )
        if mixed or lookalike:
            odd = [ch for ch in dict.fromkeys(letters) if _script(ch) != "LATIN"]
            found.append((word, odd))
            if len(found) >= limit:
                break
    return found
