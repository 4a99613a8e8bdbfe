"""Chinese names across romanizations: the Mandarin (pinyin) syllables a Latin word can stand for.

The same hanzi name is written in Hanyu pinyin on the mainland (张建宏: ZHANG JIANHONG), in
Wade-Giles in Taiwan (CHANG CHIEN-HUNG) and in the Hong Kong Government's Cantonese
romanization in Hong Kong and Macao (陳詠詩: CHAN WING SZE). `readings(word)` gives, for one
Latin word, every pinyin syllable it can be a writing of: itself, the pinyin syllables whose
Wade-Giles form it is (from pypinyin), and the usual Mandarin readings of the characters the Hong
Kong romanization gives it to (from cantonese-romanisation's character table and pypinyin). A
word may write a pinyin word when that word is among its readings (or the other way round).
The tables are built once, on first use.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["readings", "syllables"]

_LATIN = re.compile(r"[a-z]+")
_CJK = (0x4E00, 0x9FFF)


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """(Wade-Giles syllable -> pinyin syllables, Cantonese syllable -> pinyin syllables)."""
    from cantoroman import Cantonese
    from pypinyin import Style, pinyin

    wade: dict[str, set[str]] = {}
    for code in range(_CJK[0], _CJK[1] + 1):
        char = chr(code)
        plain = pinyin(char, style=Style.NORMAL, errors="ignore")
        wg = pinyin(char, style=Style.WADEGILES, errors="ignore")
        if not plain or not wg:
            continue
        for w, p in zip(wg[0], plain[0]):
            w = re.sub(r"[^a-z]", "", w.lower())   # apostrophes and umlauts are written or left out
            if w and _LATIN.fullmatch(p):
                wade.setdefault(w, set()).add(p)
    cantonese: dict[str, set[str]] = {}
    table = Cantonese().charToRoman
    for char, romans in table.items():
        mandarin = pinyin(char, style=Style.NORMAL, errors="ignore")   # the character's usual reading
        if not mandarin:
            continue
        for roman in romans:
            roman = roman.lower()
            if _LATIN.fullmatch(roman):
                cantonese.setdefault(roman, set()).update(p for p in mandarin[0] if _LATIN.fullmatch(p))
    return ({k: frozenset(v) for k, v in wade.items()}, {k: frozenset(v) for k, v in cantonese.items()})


@lru_cache(maxsize=1 << 16)
def readings(word: str) -> frozenset[str]:
    """The pinyin syllables a Latin word (one syllable, any case) may write, itself included."""
    word = word.lower()
    if not _LATIN.fullmatch(word):
        return frozenset([word])
    wade, cantonese = _tables()
    return frozenset([word]) | wade.get(word, frozenset()) | cantonese.get(word, frozenset())


@lru_cache(maxsize=1)
def syllables() -> frozenset[str]:
    """Every pinyin syllable a reading can be."""
    wade, cantonese = _tables()
    return frozenset().union(*wade.values(), *cantonese.values())
