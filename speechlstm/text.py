"""Transcript normalization and the mapping between text and model token ids.

The acoustic models are character-level: their output alphabet is ``a``-``z``, the apostrophe and the
space (plus the CTC blank).  :func:`normalize_text` turns arbitrary English text into that alphabet; it
implements the convention documented in ``shared/data/README.md`` ("Text normalization"), the one the
training manifests' ``text`` fields and the ``text/*.txt`` corpora were produced with:

* Unicode quotes and dashes become ASCII, accents are stripped (``café`` -> ``cafe``), ligatures are spelled
  out (``æ`` -> ``ae``), ``&`` -> ``and``, ``%`` -> ``percent``, ``+`` -> ``plus``, ``°`` -> ``degrees``;
* abbreviations are expanded: ``Mr.`` mister, ``Mrs.`` missus, ``Dr.`` doctor, ``Jr.`` junior, ``Gen.``
  general, ``Capt.`` captain, ``etc.`` et cetera, ``vs.`` versus, ``e.g.`` for example, ``i.e.`` that is,
  ``No. 5`` / ``#5`` number five, ``Ft. Worth`` fort worth, and ``St.`` becomes *saint* or *street* by
  context (``St. Albans`` -> saint albans, ``Giltspur St.`` -> giltspur street);
* numbers are read the LJSpeech way, without "and": ``199`` -> one hundred ninety nine.  Plain numbers
  from 1001 to 2999 are years (``1862`` -> eighteen sixty two, ``1800`` -> eighteen hundred, ``1905`` ->
  nineteen oh five, ``2005`` -> two thousand five); numbers with thousands separators are cardinals
  (``1,818``); numbers with a leading zero are read digit by digit; ordinals (``27th``, ``2d``); decimals
  digit by digit after the point (``3.14`` -> three point one four); decades (``1980s``, ``'80s``); clock
  times (``10:30`` -> ten thirty, ``5:00`` -> five o'clock, ``9:05`` -> nine oh five); simple fractions
  (``1/2``, ``½``); units after numbers (``5 lbs`` -> five pounds, ``6 ft.`` -> six feet); serial numbers
  letter by letter and digit by digit (``C2766`` -> c two seven six six);
* currency: ``$5`` -> five dollars, ``$1`` -> one dollar, ``$21.45`` -> twenty one dollars forty five
  cents, ``$0.05`` -> five cents, ``$5 million`` -> five million dollars, ``£10`` -> ten pounds, ``€3`` ->
  three euros;
* Roman numerals after a monarch's name are ordinals (``George III`` -> george the third) and after a
  section word are cardinals (``Chapter IV`` -> chapter four, ``World War II`` -> world war two);
* initialisms lose their dots (``U.S.`` -> u s); hyphens and all other punctuation become spaces; an
  apostrophe is kept only between letters (``don't``, ``o'connor``; ``dogs'`` -> dogs); the result is
  lowercase with single spaces and no leading or trailing space.

The function is idempotent on its own output.  It agrees with the reference implementation
(``shared/data/normalize_text.py``) on every ``raw_text`` of ``real/train.jsonl`` and ``real/dev.jsonl``
(see ``tests/test_text.py``).

Examples
--------
>>> normalize_text("Mr. Smith paid $5 on the 3rd of May, 1862.")
'mister smith paid five dollars on the third of may eighteen sixty two'
>>> tokens = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
>>> ids = text_to_ids("It's 10:30", tokens)
>>> ids_to_text(ids, tokens)
"it's ten thirty"
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, Sequence

import numpy as np

__all__ = ["normalize_text", "text_to_ids", "ids_to_text", "cardinal", "ordinal", "year"]

# ============================================================================ number words

_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_DECADE = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}
_GROUP_NAMES = ("", "thousand", "million", "billion", "trillion")
_ORDINAL_WORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}


def _below_thousand(n: int) -> list[str]:
    """Words of ``0 < n < 1000``."""
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_SMALL[hundreds], "hundred"]
    if rest >= 20:
        words.append(_DECADE[rest // 10])
        if rest % 10:
            words.append(_SMALL[rest % 10])
    elif rest:
        words.append(_SMALL[rest])
    return words


def cardinal(n: int) -> str:
    """A whole number in words, LJSpeech style (no "and"); 15 digits or more are read digit by digit.

    Parameters
    ----------
    n : int

    Returns
    -------
    str

    Examples
    --------
    >>> cardinal(199)
    'one hundred ninety nine'
    >>> cardinal(1_002_030)
    'one million two thousand thirty'
    >>> cardinal(-4)
    'minus four'
    """
    n = int(n)
    if n < 0:
        return "minus " + cardinal(-n)
    if n == 0:
        return "zero"
    if n >= 10 ** 15:
        return _digit_words(str(n))
    words = []
    group = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            part = _below_thousand(chunk)
            if _GROUP_NAMES[group]:
                part.append(_GROUP_NAMES[group])
            words = part + words
        group += 1
    return " ".join(words)


def ordinal(n: int) -> str:
    """An ordinal number in words.

    Examples
    --------
    >>> ordinal(27)
    'twenty seventh'
    >>> ordinal(40), ordinal(100), ordinal(12)
    ('fortieth', 'one hundredth', 'twelfth')
    """
    head, _, last = cardinal(n).rpartition(" ")
    if last in _ORDINAL_WORD:
        last = _ORDINAL_WORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}" if head else last


def year(n: int) -> str:
    """A year as read aloud: in pairs of digits, with "hundred", "oh" and "two thousand" forms.

    Examples
    --------
    >>> year(1862), year(1800), year(1905)
    ('eighteen sixty two', 'eighteen hundred', 'nineteen oh five')
    >>> year(2000), year(2005), year(2019)
    ('two thousand', 'two thousand five', 'twenty nineteen')
    """
    n = int(n)
    if n % 1000 == 0:
        return cardinal(n)
    if 2000 < n < 2010:
        return "two thousand " + _SMALL[n - 2000]
    century, rest = divmod(n, 100)
    if rest == 0:
        return cardinal(century) + " hundred"
    if rest < 10:
        return f"{cardinal(century)} oh {_SMALL[rest]}"
    return f"{cardinal(century)} {cardinal(rest)}"


def _digit_words(digits: str) -> str:
    return " ".join(_SMALL[int(d)] for d in digits if d.isdigit())


def _pluralize(words: str) -> str:
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + "s"


def _point_number(s: str) -> str:
    """``"3.14"`` -> three point one four; commas ignored; ``".5"`` -> zero point five."""
    s = s.replace(",", "")
    whole, dot, frac = s.partition(".")
    head = cardinal(int(whole)) if whole else "zero"
    return f"{head} point {_digit_words(frac)}" if dot else head


def _plain_number(s: str) -> str:
    """An integer token as written: separators -> cardinal, leading zero -> digits, 1001-2999 -> year."""
    if "," in s:
        return cardinal(int(s.replace(",", "")))
    if len(s) > 1 and s[0] == "0":
        return _digit_words(s)
    n = int(s)
    return year(n) if 1000 < n < 3000 else cardinal(n)


# ============================================================================ rule tables

# Characters replaced before anything else (after NFC composition).
_CHAR_REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"',
    "\u2013": " - ", "\u2014": " - ", "\u2212": "-", "\u2044": "/",
    "\u2009": " ", "\u00a0": " ",
    "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE", "\u00df": "ss", "\u00f8": "o",
    "\u00d8": "O", "\u0142": "l", "\u0141": "L", "\u00f0": "d", "\u00fe": "th",
    "&": " and ", "\u00a2": " cents ", "+": " plus ", "\u00b0": " degrees ", "@": " at ",
}
_CHAR_TABLE = str.maketrans(_CHAR_REPLACEMENTS)

_VULGAR_FRACTIONS = {"\u00bd": "one half", "\u00bc": "one quarter", "\u00be": "three quarters",
                     "\u2153": "one third", "\u2154": "two thirds", "\u215b": "one eighth"}
_VULGAR_CLASS = "[" + "".join(_VULGAR_FRACTIONS) + "]"

_SLASH_FRACTIONS = {"1/2": "one half", "1/3": "one third", "2/3": "two thirds", "1/4": "one quarter",
                    "3/4": "three quarters", "1/8": "one eighth"}

# Abbreviations that always expand the same way (a trailing period is required).
_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "messrs": "messieurs", "dr": "doctor", "drs": "doctors",
    "prof": "professor", "rev": "reverend", "hon": "honorable", "gen": "general", "col": "colonel",
    "capt": "captain", "lt": "lieutenant", "sgt": "sergeant", "maj": "major", "cpl": "corporal",
    "gov": "governor", "sen": "senator", "rep": "representative", "jr": "junior", "sr": "senior",
    "esq": "esquire", "mt": "mount", "ltd": "limited", "inc": "incorporated", "corp": "corporation",
    "vs": "versus", "etc": "et cetera", "bros": "brothers",
}

# Words after "St." that make it "saint" even after a capitalised word.
_SAINT_NAMES = frozenset("""
albans alban andrew andrews anne anne's augustine bartholomew bartholomew's benedict botolph bride bride's
catherine clement clement's david david's dunstan dunstan's edmund edmunds francis george george's giles
giles's helena helier ives james james's john john's johns joseph jude katherine kitts lawrence leonard
leonards louis lucia luke luke's margaret margaret's mark mark's martin martin's mary mary's matthew michael
michael's neots nicholas olave olave's pancras patrick patrick's paul paul's pauls peter peter's petersburg
saviour saviour's sepulchre sepulchre's stephen stephen's thomas thomas's vincent vitus
""".split())

# Names after which a Roman numeral is a regnal ordinal.
_MONARCHS = """George Henry Edward William Charles James Louis Richard Elizabeth Napoleon Pius Leo Gregory John
Philip Frederick Alexander Peter Catherine Mary Anne Victoria Paul Innocent Clement Benedict Boniface Urban
Ferdinand Francis Ptolemy Rameses Ramses Darius Artaxerxes Xerxes Nebuchadnezzar Thutmose Amenhotep Constantine
Otto Gustavus Christian Wilhelm Friedrich Ivan Nicholas David Malcolm Robert Stephen""".split()

# Words after which a Roman numeral is a cardinal (matched case-insensitively).
_SECTION_WORDS = ["chapter", r"chap\.", "section", "part", "book", "volume", r"vol\.", "act", "scene",
                  "article", "title", "psalm", "war", "appendix", "canto", "lecture", "letter", r"no\."]
_SECTION_RENAME = {"chap.": "chapter", "vol.": "volume", "no.": "number"}
# A lone "I" after these is the pronoun or a letter, not a numeral.
_SECTION_KEEP_I = {"no.", "act", "letter", "title"}

_UNIT_WORDS = {
    "lb": "pounds", "lbs": "pounds", "kg": "kilograms", "km": "kilometers", "cm": "centimeters",
    "mm": "millimeters", "mi": "miles", "mph": "miles per hour", "ft": "feet", "sq": "square",
    "oz": "ounces", "yd": "yards", "yds": "yards", "hr": "hours", "hrs": "hours", "min": "minutes",
    "mins": "minutes", "km/h": "kilometers per hour",
}

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"),
               "\u00a3": ("pound", "pounds", "penny", "pence"),
               "\u20ac": ("euro", "euros", "cent", "cents")}
_CURRENCY_CLASS = "[$\u00a3\u20ac]"


def _alternation(words) -> str:
    """Regex alternation of ``words``, longest first so that prefixes do not win."""
    return "|".join(sorted(words, key=len, reverse=True))


def _roman_value(s: str) -> int | None:
    """Value of a well-formed Roman numeral up to 399 (``None`` if malformed)."""
    s = s.upper()
    if not s or not re.fullmatch(r"C{0,3}(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})", s):
        return None
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}
    total = 0
    for a, b in zip(s, s[1:] + " "):
        v = values[a]
        total += -v if b != " " and values[b] > v else v
    return total


# ============================================================================ rewriting passes

Rule = tuple[re.Pattern, Callable[[re.Match], str] | str]


def _rule(pattern: str, repl, flags: int = 0) -> Rule:
    return re.compile(pattern, flags), repl


def _apply(rules: Sequence[Rule], text: str) -> str:
    for pattern, repl in rules:
        text = pattern.sub(repl, text)
    return text


def _spaced(s: str) -> str:
    return f" {s} "


# ---------------------------------------------------------------- pass 1: characters


def _fix_characters(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    # "3½" -> "3 and one half"
    text = re.sub(r"(\d)\s?(" + _VULGAR_CLASS + ")", r"\1 and \2", text)
    for ch, words in _VULGAR_FRACTIONS.items():
        text = text.replace(ch, _spaced(words))
    text = text.translate(_CHAR_TABLE)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# ---------------------------------------------------------------- pass 2: words


def _regnal(m: re.Match) -> str:
    value = _roman_value(m.group(2))
    return m.group(0) if value is None else f"{m.group(1)} the {ordinal(value)}"


def _section(m: re.Match) -> str:
    word, numeral = m.group(1), m.group(2)
    if numeral == "I" and word.lower() in _SECTION_KEEP_I:
        return m.group(0)
    value = _roman_value(numeral)
    if value is None:
        return m.group(0)
    return f"{_SECTION_RENAME.get(word.lower(), word)} {cardinal(value)}"


_WORD_RULES: list[Rule] = [
    _rule(r"\be\.\s?g\.", " for example ", re.IGNORECASE),
    _rule(r"\bi\.\s?e\.", " that is ", re.IGNORECASE),
    _rule(r"\b(" + "|".join(_MONARCHS) + r")\s+([IVXLC]{1,6})\b", _regnal),
    _rule(r"\b(" + "|".join(_SECTION_WORDS) + r")\s+([IVXLC]{1,6})\b", _section, re.IGNORECASE),
]

_ST_PATTERN = re.compile(r"\b(St|ST|st)\.(\s+)([A-Za-z']+)?")
_WORD_BEFORE = re.compile(r"([A-Za-z']+)\W*$")
_SENTENCE_END_BEFORE = re.compile(r"[.!?]\W*$")


def _saint_or_street(text: str) -> str:
    """``St.`` -> "saint" before a saint's name or after a non-capitalised word, else "street" after a
    capitalised word when what follows is not a capitalised name (or is "Compter")."""

    def choose(m: re.Match) -> str:
        following = m.group(3) or ""
        preceding_text = text[:m.start()].rstrip()
        prev = _WORD_BEFORE.search(preceding_text)
        after_name = (prev is not None and prev.group(1)[:1].isupper()
                      and not _SENTENCE_END_BEFORE.search(preceding_text))
        if following.lower() in _SAINT_NAMES:
            word = "saint"
        elif after_name and (not following[:1].isupper() or following.lower() == "compter"):
            word = "street"
        else:
            word = "saint"
        return word + m.group(2) + following

    return _ST_PATTERN.sub(choose, text)


_ABBREVIATION_RULES: list[Rule] = [
    _rule(r"\b(" + _alternation(_ABBREVIATIONS) + r")\.", lambda m: _ABBREVIATIONS[m.group(1).lower()],
          re.IGNORECASE),
    _rule(r"\bFt\.(?=\s+[A-Z])", "Fort"),
]


# ---------------------------------------------------------------- pass 3: numbers


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m.group(1)]
    units = int(m.group(2).replace(",", "") or 0)
    sub = int(m.group(3).ljust(2, "0")) if m.group(3) else 0
    out = []
    if units or not sub:
        out.append(f"{cardinal(units)} {one if units == 1 else many}")
    if sub:
        out.append(f"{cardinal(sub)} {sub_one if sub == 1 else sub_many}")
    return " ".join(out)


def _money_with_scale(m: re.Match) -> str:
    return f"{_point_number(m.group(2))} {m.group(3).lower()} {_CURRENCIES[m.group(1)][1]}"


def _clock(m: re.Match) -> str:
    hours, minutes = m.group(1), m.group(2)
    if minutes == "00":
        tail = "o'clock"
    elif minutes[0] == "0":
        tail = "oh " + _SMALL[int(minutes)]
    else:
        tail = cardinal(int(minutes))
    return _spaced(f"{cardinal(int(hours))} {tail}")


_NUMBER_RULES: list[Rule] = [
    # "#5", "No. 5", "Nos. 5": number
    _rule(r"(?:#|\b[Nn]os?\.)\s?(?=[A-Z]{0,3}\d)", "number "),
    # serial numbers: "C2766" -> c two seven six six
    _rule(r"\b([A-Z]{1,3})(\d{2,})\b", lambda m: " ".join(m.group(1)) + " " + _digit_words(m.group(2))),
    # calibres: ".38-caliber" -> thirty eight caliber
    _rule(r"(?<![\d.])\.(\d{2,3})(?=[- ]?(?:caliber|calibre|rifle|pistol|revolver|magnum|special)\b)",
          lambda m: cardinal(int(m.group(1))) + " ", re.IGNORECASE),
    # money
    _rule("(" + _CURRENCY_CLASS + r")\s?(\d[\d,]*(?:\.\d+)?)\s+(thousand|million|billion|trillion)\b",
          _money_with_scale, re.IGNORECASE),
    _rule("(" + _CURRENCY_CLASS + r")\s?(\d[\d,]*)(?:\.(\d\d?))?(?!\d)", _money),
    # percentages
    _rule(r"(\d+(?:\.\d+)?)\s?%", lambda m: _point_number(m.group(1)) + " percent"),
    # units after a number
    _rule(r"(\d)\s?(" + _alternation(map(re.escape, _UNIT_WORDS)) + r")\.?(?![A-Za-z])",
          lambda m: f"{m.group(1)} {_UNIT_WORDS[m.group(2)]}"),
] + [
    _rule(r"(?<![\d/])" + re.escape(frac) + r"(?![\d/])", _spaced(words))
    for frac, words in _SLASH_FRACTIONS.items()
] + [
    # decades: 1980s, 1980's -> nineteen eighties; '80s, 80s -> eighties
    _rule(r"\b(1[0-9]|20)(\d0)'?s\b", lambda m: _spaced(_pluralize(year(int(m.group(1) + m.group(2)))))),
    _rule(r"'([2-9]0)s\b", lambda m: _spaced(_pluralize(cardinal(int(m.group(1)))))),
    _rule(r"\b([2-9]0)'?s\b", lambda m: _spaced(_pluralize(cardinal(int(m.group(1)))))),
    # ordinals: 27th, 2d, 1,000th
    _rule(r"\b(\d[\d,]*)(st|nd|rd|th|d)\b", lambda m: _spaced(ordinal(int(m.group(1).replace(",", "")))),
          re.IGNORECASE),
    # clock times
    _rule(r"\b(\d{1,2}):(\d{2})\b", _clock),
    # decimals
    _rule(r"(?<![\d.])(\d[\d,]*)?\.(\d+)(?![\d.])",
          lambda m: _spaced(_point_number((m.group(1) or "") + "." + m.group(2)))),
    # everything else that is a number
    _rule(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+", lambda m: _spaced(_plain_number(m.group(0)))),
]


# ---------------------------------------------------------------- pass 4: alphabet

_FINAL_RULES: list[Rule] = [
    _rule(r"[^a-z']+", " "),
    _rule(r"(?<![a-z])'+|'+(?![a-z])", " "),  # apostrophes only inside words
    _rule(r"'{2,}", "'"),
]


# ============================================================================ public API


def normalize_text(s: str) -> str:
    """Normalize an English transcript to lowercase ``a``-``z``, apostrophes and single spaces.

    The rules are listed in the module docstring (the convention of ``shared/data/README.md``).

    Parameters
    ----------
    s : str
        Any text.

    Returns
    -------
    str
        Words of ``a``-``z`` (apostrophes only inside words) separated by single spaces; ``""`` for
        text without any word.

    Examples
    --------
    >>> normalize_text("Dr. Forde met him at St. Sepulchre's, in Giltspur St. Compter.")
    "doctor forde met him at saint sepulchre's in giltspur street compter"
    >>> normalize_text("The pension is $20,000 a year; the order was for $21.45.")
    'the pension is twenty thousand dollars a year the order was for twenty one dollars forty five cents'
    >>> normalize_text("In the 27th George II the Crown paid \u00a310,500 -- about 5% of it.")
    'in the twenty seventh george the second the crown paid ten thousand five hundred pounds about five percent of it'
    >>> normalize_text("\u201cDon't,\u201d said O\u2019Connor at the caf\u00e9 in the U.S. in the '80s.")
    "don't said o'connor at the cafe in the u s in the eighties"
    """
    if not s:
        return ""
    text = _fix_characters(str(s))
    text = _apply(_WORD_RULES, text)
    text = _saint_or_street(text)
    text = _apply(_ABBREVIATION_RULES, text)
    text = _apply(_NUMBER_RULES, text)
    text = _apply(_FINAL_RULES, text.lower())
    return " ".join(text.split())


def _char_index(tokens: Sequence[str], blank_index: int) -> dict:
    table = {}
    for i, tok in enumerate(tokens):
        if i == blank_index:
            continue
        if not isinstance(tok, str) or len(tok) != 1:
            raise ValueError(f"text_to_ids supports single-character tokens only (token {i} is {tok!r})")
        table[tok] = i
    return table


def text_to_ids(text: str, tokens: Sequence[str], blank_index: int = 0) -> np.ndarray:
    """Token ids of a transcript for a character-level model.

    If every character of ``text`` is a (non-blank) token it is used as it is; otherwise it is first
    normalized with :func:`normalize_text`.

    Parameters
    ----------
    text : str
        Transcript.
    tokens : sequence of str
        The model's output units (``ModelConfig.tokens``); every entry except the blank must be a single
        character.
    blank_index : int, optional
        Index of the CTC blank in ``tokens`` (never produced).

    Returns
    -------
    ndarray of int32, shape (len(normalized text),)

    Raises
    ------
    ValueError
        Characters that are not tokens even after normalization (named in the message), or a token list
        with multi-character units.

    Examples
    --------
    >>> tokens = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    >>> text_to_ids("Go 2", tokens).tolist()
    [9, 17, 1, 22, 25, 17]
    >>> text_to_ids("go", ["<blank>", "g"])
    Traceback (most recent call last):
    ...
    ValueError: text 'go' has characters that are not tokens: 'o'
    """
    table = _char_index(tokens, blank_index)
    if not all(c in table for c in text):
        normalized = normalize_text(text)
        missing = sorted({c for c in normalized if c not in table})
        if missing:
            raise ValueError(f"text {text!r} has characters that are not tokens: "
                             + ", ".join(repr(c) for c in missing))
        text = normalized
    return np.fromiter((table[c] for c in text), dtype=np.int32, count=len(text))


def ids_to_text(ids, tokens: Sequence[str], blank_index: int = 0) -> str:
    """The text of a token id sequence (the inverse of :func:`text_to_ids`); blanks are left out.

    Repeated ids are *not* collapsed (use the CTC decoder for network outputs).

    Parameters
    ----------
    ids : sequence of int
    tokens : sequence of str
    blank_index : int, optional

    Returns
    -------
    str

    Raises
    ------
    ValueError
        An id outside ``[0, len(tokens))``.

    Examples
    --------
    >>> ids_to_text([9, 17, 0, 1, 3], ["<blank>", " ", "'"] + [chr(c) for c in range(97, 123)])
    'go a'
    """
    n = len(tokens)
    out = []
    for i in np.asarray(ids, dtype=np.int64).ravel().tolist():
        if not 0 <= i < n:
            raise ValueError(f"token id {i} out of range [0, {n})")
        if i != blank_index:
            out.append(tokens[i])
    return "".join(out)
