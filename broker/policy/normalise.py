"""Normalise free text before the R2 special-category scan.

R2 (002 §5.2): criminal, health and income information, and the other
GDPR art. 9 categories, never flow between partners. Free-text fields are
scanned for such content by `policies/lexicon.rego` against the lexicon in
`policies/data/lexicon.json`; a hit withholds the whole field.

This module only puts the text into the one form the lexicon is written in,
so that a disguised word still meets its entry. It decides nothing: the
lexicon (data) and the matching (Rego) are the policy, and a normalised text
says nothing about whether it may be disclosed.

The normal form is ASCII: lowercase `a-z`, digits and single spaces, no
leading or trailing space. Steps, in this order:

1. Remove invisible characters: every Unicode *format* character (Cf:
   zero-width space/joiners U+200B-U+200D, LRM/RLM U+200E-U+200F, bidi
   embeddings and overrides U+202A-U+202E, isolates U+2066-U+2069, the
   byte-order mark U+FEFF, the soft hyphen U+00AD, word joiner U+2060, tag
   characters) and every control character (Cc, NUL included). They are
   dropped, not turned into spaces, because inserted inside a word they
   would otherwise split it ("psy<ZWSP>chose"). Controls that are
   whitespace (tab, newline, ...) do separate words and become a space.
2. NFKC: full-width letters and digits, ligatures ("ﬁ"), mathematical and
   circled letters fold to their plain forms.
3. NFD and drop combining marks: "geïnjecteerd" -> "geinjecteerd",
   Cyrillic "ё" -> "е" (then mapped in step 4).
4. Map look-alikes of Latin letters (`HOMOGLYPHS`: Cyrillic, Greek, Latin
   small capitals) to Latin.
5. casefold.
6. Drop combining marks once more (casefold can add one: "İ").
7. Every run of characters outside `a-z0-9` becomes one space; trim.
8. If the text holds a right-to-left override (U+202E), the reversed text
   is appended, so the scan also sees the order a reader sees.

Not done, on purpose: digits standing in for letters ("alc0hol") are left
alone, because mapping digits would corrupt house numbers and dates that
notes are full of; punctuation inside a word ("p.s.y.c.h.o.s.e") splits it.
Both need deliberate effort from the writer; the scanner aims at the
careless professional and at text that arrives in odd encodings, and it is
one control among several (the convenant, the structured fields, the DPO's
audit).

Bound: `normalise_text` refuses input longer than `MAX_SCANNED_CHARS` with
`TextTooLongError` rather than scanning a prefix. A cut text would let
whatever follows the cut through unscanned, so the caller must withhold
such a field whole, exactly as for a lexicon hit (fail closed, style.md
§13).
"""

from __future__ import annotations

import unicodedata
from typing import Final

from broker.errors import InputError

# Where the bound comes from: the free text the broker passes on is the
# short description of a report (004 §5.3) or a note on a case; the
# longest note in tests/policy/data/labelled_sentences.jsonl is about 100
# characters, and 4,000 characters is about 600 Dutch words, a full page.
# The scan in lexicon.rego costs time per lexicon entry, hardly per
# character, so the bound protects the normaliser and the Rego string
# builtins from megabyte inputs rather than keeping the entry loop short.
# NFKC can expand one character into up to 18 (U+FDFA), so the normalised
# text is bounded again by the same figure.
MAX_SCANNED_CHARS: Final = 4000


class TextTooLongError(InputError):
    """A free-text value is longer than the scanner accepts; withhold it whole."""

    code = "text_too_long"
    public_detail = "A free-text field was too long to be checked and was withheld."


# Cyrillic and Greek letters that render like a Latin letter in common
# fonts and sit on ordinary keyboard layouts, so a pasted or deliberately
# mixed word ("рsychose" with Cyrillic "р") still reads as Dutch to a person
# but would not match the lexicon. Kept small and explicit rather than the
# full Unicode confusables table (UTS #39): that table also folds many
# Latin letters into each other and would change the words it should
# protect. Both cases are listed because the mapping runs before casefold,
# where Greek capital Nu ("Ν", like N) and small nu ("ν", like v) differ.
# A few Latin letters without a decomposition (ø, æ, œ, ł, đ, ı, script ɡ) and
# the Latin small capitals (ᴍ, ʀ, ...) are folded too; otherwise step 7 would
# split words at them.
# fmt: off
HOMOGLYPHS: Final[dict[str, str]] = {
    # Cyrillic small
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i",
    "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h",
    # Cyrillic capital
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O",
    "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I",
    "Ј": "J", "Ԛ": "Q", "Ԝ": "W", "Һ": "H",
    # Greek small
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x",
    # Greek capital
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K",
    "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin letters without a canonical decomposition
    "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "ɡ": "g",
    # Latin small capitals ("fancy text" generators); NFKC leaves them alone
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
}
# fmt: on

_HOMOGLYPH_TABLE: Final = str.maketrans(HOMOGLYPHS)
_ALLOWED: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
RIGHT_TO_LEFT_OVERRIDE: Final = "\u202e"


def normalise_text(text: str) -> str:
    """The lexicon's normal form of `text`; raise TextTooLongError past the bound."""
    _verify_length(text)
    visible = "".join(_visible(char) for char in text)
    folded = _drop_marks(unicodedata.normalize("NFKC", visible))
    folded = _drop_marks(folded.translate(_HOMOGLYPH_TABLE).casefold())
    _verify_length(folded)
    words = _words(folded)
    if RIGHT_TO_LEFT_OVERRIDE in text:
        # U+202E makes a viewer draw the Latin letters after it in reverse:
        # stored "esohcysp" is read as "psychose". Removing the override
        # (step 1) keeps the stored order only, so the reversed text is
        # scanned as well: the result covers what a reader sees.
        words += _words(folded[::-1])
    return " ".join(words)


def _words(folded: str) -> list[str]:
    return "".join(char if char in _ALLOWED else " " for char in folded).split()


def _verify_length(text: str) -> None:
    if len(text) > MAX_SCANNED_CHARS:
        raise TextTooLongError(
            f"expected at most {MAX_SCANNED_CHARS} characters of free text, got {len(text)}"
        )


def _visible(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category == "Cc":
        return " " if char.isspace() else ""
    return char


def _drop_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if not unicodedata.category(char).startswith("M"))
