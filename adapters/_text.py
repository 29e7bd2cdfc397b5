"""Small text helpers shared by the proofing checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from spellchecker import SpellChecker

# A word: letters, with inner apostrophes or hyphens ("O'Neil", "follow-up").
WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b(?:[\w\-]+\.)+[a-z]{2,}(?:/\S*)?")
PHONE = re.compile(r"\+?\d[\d \t().\-]{5,}\d")
NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")

# A word this frequent in the spelling corpus is "simply another word", not a name slip.
COMMON_FREQUENCY = 10_000


@dataclass(frozen=True, slots=True)
class Token:
    """A word of the text and where it starts."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def bare(self) -> str:
        """The word without a possessive "'s"."""
        return re.sub(r"['’]s$", "", self.text)


@cache
def speller() -> SpellChecker:
    """The English spelling dictionary, loaded once (it takes a fraction of a second)."""
    return SpellChecker(language="en")


def suggestion(word: str) -> str | None:
    """The likeliest intended word, kept cheap: two edits only for short words."""
    spell = speller()
    near = spell.known(spell.edit_distance_1(word))
    if not near and len(word) <= 4:
        near = spell.known(spell.edit_distance_2(word))
    return max(sorted(near), key=lambda w: spell.word_frequency[w]) if near else None


def common(word: str) -> bool:
    """True for an ordinary, frequent English word (e.g. "mark", "will")."""
    return speller().word_frequency[word.lower()] >= COMMON_FREQUENCY


def mask_addresses(text: str) -> str:
    """``text`` with emails and URLs blanked out, keeping every offset."""
    for pattern in (_EMAIL, _URL):
        text = pattern.sub(lambda m: " " * len(m.group()), text)
    return text


def tokens(text: str) -> list[Token]:
    """The words of ``text`` (emails and URLs skipped), with their offsets."""
    return [Token(m.group(), m.start()) for m in WORD.finditer(mask_addresses(text))]


def spoken_words(text: str) -> int:
    """Words as read aloud: a phone number is read digit by digit."""
    masked = mask_addresses(text)
    digits = 0
    for match in PHONE.finditer(masked):
        digits += sum(ch.isdigit() for ch in match.group())
    masked = PHONE.sub(" ", masked)
    return len(WORD.findall(masked)) + len(NUMBER.findall(masked)) + digits


def written_words(text: str) -> int:
    """Words as counted on the page (numbers count as words)."""
    masked = mask_addresses(text)
    return len(WORD.findall(masked)) + len(NUMBER.findall(masked))


def excerpt(text: str, start: int, end: int, margin: int = 30) -> str:
    """The match with a little context either side, on one line."""
    left = max(0, start - margin)
    right = min(len(text), end + margin)
    piece = " ".join(text[left:right].split())
    return ("…" if left else "") + piece + ("…" if right < len(text) else "")


def osa_distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit ("ie" / "ei")."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def sentences(text: str) -> Iterator[str]:
    """Rough sentences: split at . ! ? and blank lines."""
    for part in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
        if part.strip():
            yield part.strip()
