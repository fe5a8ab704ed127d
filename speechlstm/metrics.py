"""Error rates: Levenshtein alignment of a hypothesis against a reference, WER and CER.

Word error rate (WER) and character error rate (CER) are ``(substitutions + deletions + insertions) /
reference length``; corpus-level rates (:class:`ErrorCounter`) sum the edits and the reference lengths over all
utterances, so long utterances weigh more (the usual convention), rather than averaging per-utterance rates.

Words are the whitespace-separated pieces of a string; characters are those of the string with runs of
whitespace collapsed to one space and the ends stripped (spaces count as characters, so a missing word boundary
is one error).

Examples
--------
>>> from speechlstm.metrics import wer, cer
>>> wer("the cat sat", "the bat sat down")
0.6666666666666666
>>> round(cer("abc", "abd"), 4)
0.3333
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

__all__ = ["edit_ops", "edit_distance", "wer", "cer", "word_errors", "char_errors", "ErrorCounter"]


@njit(cache=True, nogil=True)
def _edit_ops_kernel(ref, hyp):
    """Levenshtein alignment of two int sequences -> (substitutions, deletions, insertions).

    Among the alignments with the fewest edits, ties are broken towards substitutions, then deletions
    (a fixed rule, so counts are reproducible).
    """
    n, m = ref.size, hyp.size
    # cost and the op counts of the best alignment of ref[:i] with hyp[:j], one row at a time
    cost = np.empty(m + 1, np.int64)
    sub = np.zeros(m + 1, np.int64)
    dele = np.zeros(m + 1, np.int64)
    ins = np.empty(m + 1, np.int64)
    for j in range(m + 1):
        cost[j] = j
        ins[j] = j
    for i in range(1, n + 1):
        diag_c, diag_s, diag_d, diag_i = cost[0], sub[0], dele[0], ins[0]
        cost[0] = i
        sub[0] = 0
        dele[0] = i
        ins[0] = 0
        for j in range(1, m + 1):
            up_c, up_s, up_d, up_i = cost[j], sub[j], dele[j], ins[j]  # ref[:i-1] vs hyp[:j]
            same = ref[i - 1] == hyp[j - 1]
            # candidate 1: match / substitution
            bc = diag_c + (0 if same else 1)
            bs = diag_s + (0 if same else 1)
            bd = diag_d
            bi = diag_i
            # candidate 2: deletion of ref[i-1]
            c2 = up_c + 1
            if c2 < bc:
                bc, bs, bd, bi = c2, up_s, up_d + 1, up_i
            # candidate 3: insertion of hyp[j-1]
            c3 = cost[j - 1] + 1
            if c3 < bc:
                bc, bs, bd, bi = c3, sub[j - 1], dele[j - 1], ins[j - 1] + 1
            diag_c, diag_s, diag_d, diag_i = up_c, up_s, up_d, up_i
            cost[j] = bc
            sub[j] = bs
            dele[j] = bd
            ins[j] = bi
    return sub[m], dele[m], ins[m]


def _as_ids(a, b):
    """Map two sequences of hashable items to int64 id arrays over a shared vocabulary."""
    vocab: dict = {}
    ra = np.array([vocab.setdefault(x, len(vocab)) for x in a], dtype=np.int64)
    rb = np.array([vocab.setdefault(x, len(vocab)) for x in b], dtype=np.int64)
    return ra, rb


def edit_ops(ref, hyp) -> tuple[int, int, int]:
    """Substitutions, deletions and insertions of a minimum-edit alignment of ``hyp`` to ``ref``.

    Parameters
    ----------
    ref, hyp : sequence
        Sequences of hashable items (a string is a sequence of characters, a list of words works too).

    Returns
    -------
    tuple of int
        ``(substitutions, deletions, insertions)``; their sum is the Levenshtein distance.

    Examples
    --------
    >>> edit_ops("kitten", "sitting")
    (2, 0, 1)
    >>> edit_ops(["a", "b", "c"], ["a", "c"])
    (0, 1, 0)
    """
    r, h = _as_ids(ref, hyp)
    s, d, i = _edit_ops_kernel(r, h)
    return int(s), int(d), int(i)


def edit_distance(ref, hyp) -> int:
    """Levenshtein distance between two sequences.

    Examples
    --------
    >>> edit_distance("flaw", "lawn")
    2
    """
    return sum(edit_ops(ref, hyp))


def _words(s: str) -> list:
    return s.split()


def _chars(s: str) -> str:
    return " ".join(s.split())


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """``(word edits, reference words)`` of one utterance.

    Examples
    --------
    >>> word_errors("a b c", "a x c d")
    (2, 3)
    """
    r = _words(ref)
    return edit_distance(r, _words(hyp)), len(r)


def char_errors(ref: str, hyp: str) -> tuple[int, int]:
    """``(character edits, reference characters)`` of one utterance (whitespace runs count as one space).

    Examples
    --------
    >>> char_errors("ab  c", " ab d")
    (1, 4)
    """
    r = _chars(ref)
    return edit_distance(r, _chars(hyp)), len(r)


def _rate(errors: int, n: int) -> float:
    if n == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / n


def wer(ref: str, hyp: str) -> float:
    """Word error rate of one utterance (``inf`` for an empty reference with a non-empty hypothesis).

    Examples
    --------
    >>> wer("one two", "one two"), wer("one two", "")
    (0.0, 1.0)
    """
    return _rate(*word_errors(ref, hyp))


def cer(ref: str, hyp: str) -> float:
    """Character error rate of one utterance.

    Examples
    --------
    >>> cer("abcd", "abc")
    0.25
    """
    return _rate(*char_errors(ref, hyp))


@dataclass
class ErrorCounter:
    """Accumulates corpus-level WER/CER, overall and per group (e.g. per data source).

    Examples
    --------
    >>> c = ErrorCounter()
    >>> c.add("the cat", "the cat", group="a")
    (0.0, 0.0)
    >>> _ = c.add("a dog", "a fog", group="b")
    >>> round(c.wer, 3), round(c.cer, 3), c.n, sorted(c.groups)
    (0.25, 0.083, 2, ['a', 'b'])
    >>> c.groups["b"].wer
    0.5
    """

    word_edits: int = 0
    words: int = 0
    char_edits: int = 0
    chars: int = 0
    n: int = 0
    groups: dict = field(default_factory=dict)

    def add(self, ref: str, hyp: str, group: str | None = None) -> tuple[float, float]:
        """Count one utterance; returns its own ``(cer, wer)``."""
        we, nw = word_errors(ref, hyp)
        ce, nc = char_errors(ref, hyp)
        self._count(we, nw, ce, nc)
        if group is not None:
            self.groups.setdefault(group, ErrorCounter())._count(we, nw, ce, nc)
        return _rate(ce, nc), _rate(we, nw)

    def _count(self, we, nw, ce, nc):
        self.word_edits += we
        self.words += nw
        self.char_edits += ce
        self.chars += nc
        self.n += 1

    @property
    def wer(self) -> float:
        return _rate(self.word_edits, self.words)

    @property
    def cer(self) -> float:
        return _rate(self.char_edits, self.chars)

    def to_dict(self) -> dict:
        """Rates, counts and per-group rates as plain JSON-able values."""
        d = {"wer": self.wer, "cer": self.cer, "n": self.n, "words": self.words, "chars": self.chars,
             "word_edits": self.word_edits, "char_edits": self.char_edits}
        if self.groups:
            d["groups"] = {g: c.to_dict() for g, c in sorted(self.groups.items())}
        return d
