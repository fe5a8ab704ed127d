"""Pronunciation lexicon (CMUdict) and a grapheme-to-phoneme (G2P) model for the words outside it.

Phone models spell words with the 39 ARPAbet phones of CMUdict without stress (:data:`PHONES`).  Their
labels and their decoding vocabulary come from a :class:`Lexicon`: the pronunciations of
``shared/data/text/cmudict.dict`` (:func:`read_cmudict`) plus a :class:`G2P` model that guesses the
pronunciation of any other word made of ``a``-``z`` and the apostrophe (hotwords, grammar phrases, LM words,
transcript words that CMUdict lacks).

CMUdict
-------
Lines ``word PH PH ...`` (``abandon AH0 B AE1 N D AH0 N``); a variant of a word is marked ``word(2)`` (or the
word is simply repeated); ``#`` starts a comment, as does a line that starts with ``;;;``.  Words are lowercased,
stress digits are stripped, pronunciations that coincide without stress are kept once, and words with characters
other than ``a``-``z`` and ``'`` (``a.m.``, ``ad-hoc``) are skipped: :func:`speechlstm.text.normalize_text`
never produces them.  An unknown phone or a word without phones is an error naming the file and the line.

G2P method
----------
A classic data-driven letter-to-sound model (trained on CMUdict in about 5 s, about 50 000 words a second):

1. **Alignment.**  Every letter emits a *chunk* of 0, 1 or 2 phones (``x`` -> ``K S``, a silent ``e`` -> nothing).
   ``p(chunk | letter)`` is estimated by EM over all alignments of each word with its pronunciation
   (forward-backward over letters x phones in Numba, uniform start, 10 iterations), then each word is aligned
   by Viterbi.  Words that need more than two phones a letter (``www``) are left out.
2. **Letters in context, with back-off.**  The chunk a letter emits is counted under windows of ``l`` letters to
   its left, ``r`` to its right (``#`` pads the word ends) and, for ``history`` 1, the chunk the previous letter
   emitted.  The windows form a chain from wide to narrow, each inside the one before
   (:data:`DEFAULT_CONTEXTS`: 4+5, 4+4, 3+4, 3+3, 2+3, 2+2, 1+2, 1+1, 0+1 and 0+0 letters with the history,
   then the letter alone).  A window's chunk distribution is interpolated with the next narrower one
   (Witten-Bell: ``p = (n(c) + lambda p'(c)) / (N + lambda)``, ``lambda`` = distinct chunks seen in the window).
   Words are read left to right: each letter emits the most probable chunk of the widest window seen in
   training, its history being the chunk just emitted.  Only those predictions are stored, and only where they
   differ from what the narrower windows answer, which changes no prediction and keeps the model small.

A word whose letters all came out silent gets the most common non-empty chunk of its first letter, so every
word has at least one phone.  With 5% of CMUdict's words held out (:func:`evaluate_g2p`, seed 0) the model
pronounces 65% of the words exactly as listed (8.2% phone error rate); without the history and the smoothing
(the plain most-frequent-chunk back-off over 4+4 .. 0+0 letters) it got 61% (8.8%).

Files
-----
:meth:`Lexicon.save` writes ``lexicon.txt.gz`` (gzip'd text: a header comment naming the G2P file, then one
``word PH PH ...`` line per pronunciation, variants on repeated lines; :func:`read_cmudict` reads it too) and the
G2P beside it as ``lexicon.g2p.npz`` (:meth:`G2P.save`: plain integer arrays in an ``.npz``, read without
pickle).  For the whole of CMUdict the two are about 0.8 MB and 0.2 MB.

Examples
--------
>>> lex = Lexicon({"cat": [("K", "AE", "T")], "the": [("DH", "AH"), ("DH", "IY")]})
>>> lex.pronounce("the"), len(lex), "dog" in lex
(('DH', 'AH'), 2, False)
>>> lex.words_to_phones("the cat")
['DH', 'AH', ' ', 'K', 'AE', 'T']
>>> toy = {"ab": [("AE", "B")], "ba": [("B", "AE")], "bab": [("B", "AE", "B")], "abba": [("AE", "B", "AE")]}
>>> G2P.fit(toy).predict("baab")
('B', 'AE', 'AE', 'B')
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from numba import njit

from .errors import SpeechlstmError

__all__ = ["PHONES", "LexiconError", "read_cmudict", "G2P", "Lexicon", "evaluate_g2p", "DEFAULT_CONTEXTS",
           "LEXICON_FILE"]

PHONES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
          "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z",
          "ZH")
"""The 39 ARPAbet phones of CMUdict without stress, sorted."""

DEFAULT_CONTEXTS = ((4, 5, 1), (4, 4, 1), (3, 4, 1), (3, 3, 1), (2, 3, 1), (2, 2, 1), (1, 2, 1), (1, 1, 1), (0, 1, 1),
                    (0, 0, 1), (0, 0, 0))
"""G2P back-off chain: ``(letters left, letters right, history)`` windows, widest first, each inside the one before
(``history`` 1: the window includes the chunk emitted by the previous letter)."""

LEXICON_FILE = "lexicon.txt.gz"
"""File name :meth:`Lexicon.save` uses when it is given a directory."""

G2P_FORMAT = "speechlstm-g2p"
G2P_VERSION = 1
_LEXICON_HEADER = "# speechlstm lexicon v1"


class LexiconError(SpeechlstmError, ValueError):
    """A lexicon or G2P file that is missing or malformed (``file:line: reason``), or a word that cannot be
    pronounced (not in the lexicon and no G2P, or not made of ``a``-``z`` and ``'``)."""


# ============================================================================ phones, letters and chunks

_NP = len(PHONES)
_PHONE_ID = {p: i for i, p in enumerate(PHONES)}
_BASE_PHONE = {**{p: p for p in PHONES}, **{p + s: p for p in PHONES for s in "012"}}  # stress dropped
_N_CHUNKS = 1 + _NP + _NP * _NP  # chunk 0: no phone; 1 + a: phone a; 1 + NP + a * NP + b: phones a b
_CHUNK_BITS = 11
assert _N_CHUNKS < 1 << _CHUNK_BITS
_CHUNK_PHONES = [()] + [(p,) for p in PHONES] + [(a, b) for a in PHONES for b in PHONES]

# Letter symbols: 0 pads the word ends ("#"), 1 is the apostrophe, 2.. are a-z.  5 bits each in context codes.
_SYM_BITS = 5
_N_SYMS = 28
_SYM = {"'": 1, **{chr(ord("a") + i): 2 + i for i in range(26)}}
_VARIANT = re.compile(r"(.+)\(\d+\)\Z")

# Last-resort sound of a letter for a G2P that never saw it pronounced (tiny training lexicons).
_LETTER_SOUND = dict(zip("abcdefghijklmnopqrstuvwxyz",
                         "AE B K D EH F G HH IH JH K L M N AA P K R S T AH V W K Y Z".split()))


def _valid_word(word) -> bool:
    if not isinstance(word, str):
        return False
    letters = word.replace("'", "")  # only a-z and ', with at least one letter
    return bool(letters) and letters.isascii() and letters.isalpha() and letters.islower()


def _check_word(word) -> str:
    if not _valid_word(word):
        raise LexiconError(f"cannot pronounce {word!r}: a word must be made of a-z and ' (with a letter)")
    return word


def _chunk_id(phones: Sequence[str]) -> int:
    ids = [_PHONE_ID[p] for p in phones]
    if not ids:
        return 0
    if len(ids) == 1:
        return 1 + ids[0]
    return 1 + _NP + ids[0] * _NP + ids[1]


# ============================================================================ reading CMUdict


def _open_text(path):
    """Lines of a text file, gzip'd or not (told by its first bytes)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz:
            with gzip.open(p, "rt", encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        return p.read_text(encoding="utf-8", errors="replace").splitlines()
    except (OSError, EOFError) as e:
        raise LexiconError(f"{path}: cannot read: {e}") from None


def _parse_lines(lines: Iterable[str], source) -> dict[str, list[tuple[str, ...]]]:
    entries: dict[str, list[tuple[str, ...]]] = {}
    for lineno, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith(";;;"):
            continue
        parts = text.split()
        word = parts[0].lower()
        m = _VARIANT.match(word)
        if m:
            word = m.group(1)
        if len(parts) < 2:
            raise LexiconError(f"{source}:{lineno}: no phones after {parts[0]!r}")
        try:
            pron = tuple(map(_BASE_PHONE.__getitem__, parts[1:]))
        except KeyError as e:
            raise LexiconError(f"{source}:{lineno}: unknown phone {e.args[0]!r}") from None
        if not _valid_word(word):
            continue
        prons = entries.get(word)
        if prons is None:
            entries[word] = [pron]
        elif pron not in prons:
            prons.append(pron)
    return entries


def read_cmudict(path) -> dict[str, list[tuple[str, ...]]]:
    """Read a CMUdict file (plain or gzip'd): word -> pronunciations without stress.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of str to list of tuple of str
        Lowercase words, in file order, each with its pronunciations in file order (``word(2)`` variants
        appended), stress digits stripped and duplicates removed.  Words with characters other than ``a``-``z``
        and ``'`` are skipped.

    Raises
    ------
    LexiconError
        The file cannot be read, or a line has an unknown phone or no phones (``file:line: reason``).

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> path = os.path.join(d, "cmu.dict")
    >>> with open(path, "w") as f:
    ...     _ = f.write("tomato T AH0 M EY1 T OW2\\ntomato(2) T AH0 M AA1 T OW2  # british\\na.m. EY2 EH1 M\\n")
    >>> read_cmudict(path)
    {'tomato': [('T', 'AH', 'M', 'EY', 'T', 'OW'), ('T', 'AH', 'M', 'AA', 'T', 'OW')]}
    >>> with open(path, "a") as f:
    ...     _ = f.write("oops T AH0 XX\\n")
    >>> read_cmudict(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    speechlstm.lexicon.LexiconError: ...cmu.dict:4: unknown phone 'XX'
    """
    return _parse_lines(_open_text(path), path)


# ============================================================================ G2P: alignment (Numba)


@njit(cache=True, nogil=True)
def _em_counts(letters, loff, phones, poff, prob, counts):
    """One E step: add the expected (letter, chunk) counts of all alignments of every word to ``counts``.

    ``letters[loff[w]:loff[w+1]]`` and ``phones[poff[w]:poff[w+1]]`` are word ``w``; ``prob[letter, chunk]`` is
    ``p(chunk | letter)``.  Returns the log-likelihood of the alignable words.
    """
    np_ = 39  # len(PHONES)
    loglik = 0.0
    for w in range(loff.size - 1):
        l0 = loff[w]
        p0 = poff[w]
        n_l = loff[w + 1] - l0
        n_p = poff[w + 1] - p0
        if n_p > 2 * n_l:
            continue
        alpha = np.zeros((n_l + 1, n_p + 1))
        beta = np.zeros((n_l + 1, n_p + 1))
        alpha[0, 0] = 1.0
        for i in range(1, n_l + 1):
            c = letters[l0 + i - 1]
            for j in range(n_p + 1):
                s = alpha[i - 1, j] * prob[c, 0]
                if j >= 1:
                    s += alpha[i - 1, j - 1] * prob[c, 1 + phones[p0 + j - 1]]
                if j >= 2:
                    s += alpha[i - 1, j - 2] * prob[c, 1 + np_ + phones[p0 + j - 2] * np_ + phones[p0 + j - 1]]
                alpha[i, j] = s
        z = alpha[n_l, n_p]
        if z <= 0.0:
            continue
        loglik += np.log(z)
        beta[n_l, n_p] = 1.0
        for i in range(n_l, 0, -1):
            c = letters[l0 + i - 1]
            for j in range(n_p + 1):
                b = beta[i, j]
                if b == 0.0:
                    continue
                q = prob[c, 0] * b
                counts[c, 0] += alpha[i - 1, j] * q / z
                beta[i - 1, j] += q
                if j >= 1:
                    k = 1 + phones[p0 + j - 1]
                    q = prob[c, k] * b
                    counts[c, k] += alpha[i - 1, j - 1] * q / z
                    beta[i - 1, j - 1] += q
                if j >= 2:
                    k = 1 + np_ + phones[p0 + j - 2] * np_ + phones[p0 + j - 1]
                    q = prob[c, k] * b
                    counts[c, k] += alpha[i - 1, j - 2] * q / z
                    beta[i - 1, j - 2] += q
    return loglik


@njit(cache=True, nogil=True)
def _viterbi(letters, loff, phones, poff, prob, out):
    """Best alignment of every word: ``out[loff[w] + i]`` = chunk of letter ``i`` (-1 for unalignable words).

    Ties prefer one phone, then none, then two (a fixed rule, so alignments are reproducible).
    """
    np_ = 39  # len(PHONES)
    for w in range(loff.size - 1):
        l0 = loff[w]
        p0 = poff[w]
        n_l = loff[w + 1] - l0
        n_p = poff[w + 1] - p0
        for i in range(n_l):
            out[l0 + i] = -1
        if n_p > 2 * n_l:
            continue
        score = np.full((n_l + 1, n_p + 1), -np.inf)
        back = np.zeros((n_l + 1, n_p + 1), np.int8)
        score[0, 0] = 0.0
        for i in range(1, n_l + 1):
            c = letters[l0 + i - 1]
            for j in range(n_p + 1):
                best = -np.inf
                arg = 0
                if j >= 1 and prob[c, 1 + phones[p0 + j - 1]] > 0.0:
                    s = score[i - 1, j - 1] + np.log(prob[c, 1 + phones[p0 + j - 1]])
                    if s > best:
                        best, arg = s, 1
                if prob[c, 0] > 0.0:
                    s = score[i - 1, j] + np.log(prob[c, 0])
                    if s > best:
                        best, arg = s, 0
                if j >= 2:
                    k = 1 + np_ + phones[p0 + j - 2] * np_ + phones[p0 + j - 1]
                    if prob[c, k] > 0.0:
                        s = score[i - 1, j - 2] + np.log(prob[c, k])
                        if s > best:
                            best, arg = s, 2
                score[i, j] = best
                back[i, j] = arg
        if score[n_l, n_p] == -np.inf:
            continue
        j = n_p
        for i in range(n_l, 0, -1):
            k = back[i, j]
            c = 0
            if k == 1:
                c = 1 + phones[p0 + j - 1]
            elif k == 2:
                c = 1 + np_ + phones[p0 + j - 2] * np_ + phones[p0 + j - 1]
            out[l0 + i - 1] = c
            j -= k


def _align(pairs, iterations: int):
    """EM-trained letter -> chunk alignment of ``(word, pronunciation)`` pairs.

    Returns ``(letters, loff, chunks)``: the words' letter symbols concatenated, their offsets and the chunk of
    every letter (-1 throughout a word that cannot be aligned: more than two phones per letter).
    """
    letters = np.fromiter((_SYM[ch] for w, _ in pairs for ch in w), np.int64)
    loff = np.zeros(len(pairs) + 1, np.int64)
    loff[1:] = np.cumsum([len(w) for w, _ in pairs])
    phones = np.fromiter((_PHONE_ID[p] for _, pr in pairs for p in pr), np.int64)
    poff = np.zeros(len(pairs) + 1, np.int64)
    poff[1:] = np.cumsum([len(pr) for _, pr in pairs])
    prob = np.full((_N_SYMS, _N_CHUNKS), 1.0 / _N_CHUNKS)
    for _ in range(iterations):
        counts = np.zeros_like(prob)
        _em_counts(letters, loff, phones, poff, prob, counts)
        total = counts.sum(axis=1, keepdims=True)
        prob = np.where(total > 0, counts / np.maximum(total, 1e-300), prob)
    chunks = np.empty(letters.size, np.int64)
    _viterbi(letters, loff, phones, poff, prob, chunks)
    return letters, loff, chunks


# ============================================================================ G2P: context tables

_START = _N_CHUNKS  # "previous chunk" of a word's first letter
_CHUNK_MASK = (1 << _CHUNK_BITS) - 1


def _normalize_contexts(contexts) -> tuple[tuple[int, int, int], ...]:
    out = []
    for c in contexts:
        c = tuple(int(v) for v in c)
        if len(c) == 2:
            c = c + (0,)
        if len(c) != 3 or min(c) < 0 or c[2] > 1 or _SYM_BITS * (c[0] + 1 + c[1]) + _CHUNK_BITS * c[2] > 62:
            raise ValueError(f"bad G2P window {c}: (left, right[, history 0/1]), at most 10 letters wide")
        out.append(c)
    if not out or out[-1] != (0, 0, 0):
        raise ValueError("the G2P back-off chain must end with the (0, 0) window")
    for a, b in zip(out, out[1:]):
        if not (b[0] <= a[0] and b[1] <= a[1] and b[2] <= a[2] and a != b):
            raise ValueError(f"G2P windows must shrink along the chain: {a} then {b}")
    return tuple(out)


def _window_codes(padded, pos, left: int, right: int) -> np.ndarray:
    """Codes of the ``left``+``right`` letter windows around ``padded[pos]`` (5 bits a symbol, leftmost highest)."""
    code = np.zeros(pos.size, np.int64)
    for o in range(-left, right + 1):
        code = (code << _SYM_BITS) | padded[pos + o]
    return code


def _sub_codes(codes, ctx_from, ctx_to):
    """Codes of a narrower window ``ctx_to`` cut out of the codes of window ``ctx_from``."""
    lf, rf, hf = ctx_from
    lt, rt, ht = ctx_to
    win = codes >> _CHUNK_BITS if hf else codes
    sub = (win >> (_SYM_BITS * (rf - rt))) & ((1 << (_SYM_BITS * (lt + 1 + rt))) - 1)
    if ht:
        sub = (sub << _CHUNK_BITS) | (codes & _CHUNK_MASK)
    return sub


def _pairs(codes, labels):
    """Distinct ``(context code, chunk)`` pairs in ascending order: their codes, chunks and counts."""
    order = np.lexsort((labels, codes))
    c, h = codes[order], labels[order]
    new = np.ones(c.size, bool)
    new[1:] = (c[1:] != c[:-1]) | (h[1:] != h[:-1])
    starts = np.flatnonzero(new)
    return c[starts], h[starts], np.diff(np.append(starts, c.size))


def _best_chunks(codes: np.ndarray, chunks: np.ndarray):
    """Per distinct context code (ascending): the most frequent chunk (ties: lowest id) and the context's count."""
    if codes.size == 0:
        return codes, chunks, codes
    c, h, cnt = _pairs(codes, chunks)
    order = np.lexsort((h, -cnt, c))
    c, h, cnt = c[order], h[order], cnt[order]
    first = np.ones(c.size, bool)
    first[1:] = c[1:] != c[:-1]
    starts = np.flatnonzero(first)
    return c[starts], h[starts], np.add.reduceat(cnt, starts)


def _smoothed_tables(contexts, padded, pos, prev, labels, min_count: int, kappa: float):
    """Per window of the chain: the contexts to store and the chunk each predicts.

    ``p_k(c | ctx) = (n(ctx, c) + lambda p_{k+1}(c | ctx')) / (N(ctx) + lambda)``, Witten-Bell interpolation with
    the next narrower window ``ctx'`` (``lambda = kappa * distinct chunks of ctx``; the narrowest window is
    ``n / N``).  A context predicts its most probable chunk (ties: the chunk seen there, then the lowest id).  The
    contexts whose prediction the narrower stored windows give anyway are dropped (so a look-up that backs off
    to the widest stored window answers exactly as the unpruned model would).
    """
    levels = [None] * len(contexts)
    for k in range(len(contexts) - 1, -1, -1):
        left, right, hist = contexts[k]
        codes = _window_codes(padded, pos, left, right)
        if hist:
            codes = (codes << _CHUNK_BITS) | prev
        pc, ph, pn = _pairs(codes, labels)
        first = np.ones(pc.size, bool)
        first[1:] = pc[1:] != pc[:-1]
        starts = np.flatnonzero(first)
        total = np.add.reduceat(pn, starts)
        keep_ctx = total >= min_count
        keep = np.repeat(keep_ctx, np.diff(np.append(starts, pc.size)))
        pc, ph, pn = pc[keep], ph[keep], pn[keep].astype(np.float64)
        first = np.ones(pc.size, bool)
        first[1:] = pc[1:] != pc[:-1]
        starts = np.flatnonzero(first)
        row = np.cumsum(first) - 1
        ctx = pc[starts]
        total = np.add.reduceat(pn, starts) if pc.size else pn
        distinct = np.diff(np.append(starts, pc.size)).astype(np.float64)
        if k == len(contexts) - 1:
            p = pn / total[row]
            lower_best = lower_score = None
        else:
            low = levels[k + 1]
            r1 = np.searchsorted(low["ctx"], _sub_codes(ctx, contexts[k], contexts[k + 1]))
            idx = np.searchsorted(low["pair"], (r1[row] << _CHUNK_BITS) | ph)
            lam = kappa * distinct
            p = (pn + lam[row] * low["pair_p"][idx]) / (total[row] + lam[row])
            lower_best = low["best"][r1]
            lower_score = lam * low["best_p"][r1] / (total + lam)
        order = np.lexsort((ph, -p, row))
        firsts = order[np.flatnonzero(np.diff(np.append(-1, row[order])))]
        best, best_p = ph[firsts], p[firsts]
        if lower_best is not None:
            unseen = lower_score > best_p  # only possible for a chunk not seen in this context
            best = np.where(unseen, lower_best, best)
            best_p = np.where(unseen, lower_score, best_p)
        levels[k] = {"ctx": ctx, "best": best, "best_p": best_p, "pair": (row << _CHUNK_BITS) | ph, "pair_p": p}
    # pruning, narrowest first
    tables = [None] * len(contexts)
    for k in range(len(contexts) - 1, -1, -1):
        ctx, best = levels[k]["ctx"], levels[k]["best"]
        below = np.full(ctx.size, -1, np.int64)
        for j in range(k + 1, len(contexts)):
            codes_j, chunks_j = tables[j]
            if codes_j.size == 0:
                continue
            sub = _sub_codes(ctx, contexts[k], contexts[j])
            idx = np.minimum(np.searchsorted(codes_j, sub), codes_j.size - 1)
            hit = (below < 0) & (codes_j[idx] == sub)
            below[hit] = chunks_j[idx[hit]]
        below[below < 0] = 0
        differs = best != below
        tables[k] = (ctx[differs], best[differs].astype(np.int16))
    return tables


class G2P:
    """Letter-to-sound model: letters in context -> CMUdict phones (see the module docstring for the method).

    Build one with :meth:`fit` (from a lexicon) or :meth:`load` (from :meth:`save`'s file).

    Parameters
    ----------
    contexts : sequence of (int, int, int)
        The back-off chain of ``(left, right, history)`` windows, widest first, each inside the one before:
        ``left`` / ``right`` letters around the letter, and (``history`` 1) the chunk of the letter before it.
    tables : sequence of (ndarray, ndarray)
        Per window: ascending int64 context codes and the chunk each predicts.
    fallback : ndarray of int
        Per letter symbol, the chunk used when a whole word came out silent.
    min_count : int
        The ``min_count`` the tables were built with (kept for reference).

    Examples
    --------
    >>> lex = {"ax": [("AE", "K", "S")], "xa": [("K", "S", "AE")], "axe": [("AE", "K", "S")]}
    >>> g2p = G2P.fit(lex)
    >>> g2p.predict("xax"), g2p.predict("xe")
    (('K', 'S', 'AE', 'K', 'S'), ('K', 'S'))
    """

    def __init__(self, contexts, tables, fallback, min_count: int = 1):
        self.contexts = _normalize_contexts(contexts)
        if len(tables) != len(self.contexts):
            raise ValueError("one table per G2P window is needed")
        self.min_count = int(min_count)
        self._codes = [np.ascontiguousarray(c, np.int64) for c, _ in tables]
        self._chunks = [np.ascontiguousarray(h, np.int16) for _, h in tables]
        self._fallback = np.asarray(fallback, np.int16)
        self._max_left, self._max_right = self.contexts[0][0], self.contexts[0][1]
        self._levels = [(_SYM_BITS * (self._max_right - r), (1 << (_SYM_BITS * (l + 1 + r))) - 1, h,
                         dict(zip(c.tolist(), k.tolist())))
                        for (l, r, h), c, k in zip(self.contexts, self._codes, self._chunks)]

    def __repr__(self):
        return f"G2P({sum(c.size for c in self._codes)} contexts, windows {self.contexts})"

    # ------------------------------------------------------------ training
    @classmethod
    def fit(cls, lexicon, *, contexts=DEFAULT_CONTEXTS, min_count: int = 1, iterations: int = 10,
            variants: bool = True, kappa: float = 1.0) -> "G2P":
        """Train on a lexicon.

        Parameters
        ----------
        lexicon : dict of str to list of tuple of str, or Lexicon
            Words (``a``-``z``, ``'``) and their pronunciations (:data:`PHONES`).
        contexts : sequence of (int, int, int), optional
            Back-off chain of ``(left, right, history)`` windows (:data:`DEFAULT_CONTEXTS`).
        min_count : int, optional
            A window is used only when it was seen at least this many times in training.
        iterations : int, optional
            EM iterations of the letter-phone alignment.
        variants : bool, optional
            Learn from every listed pronunciation (default) or only the first of each word.
        kappa : float, optional
            Witten-Bell weight of the narrower window: ``lambda = kappa * (number of distinct chunks seen)``.

        Returns
        -------
        G2P

        Raises
        ------
        LexiconError
            An invalid word or phone, or no word that can be aligned (a letter emits at most two phones).
        """
        contexts = _normalize_contexts(contexts)
        items = lexicon.items() if hasattr(lexicon, "items") else lexicon
        pairs = []
        for word, prons in items:
            _check_word(word)
            for k, pron in enumerate(prons):
                if k and not variants:
                    break
                pron = tuple(pron)
                if not pron or any(p not in _PHONE_ID for p in pron):
                    raise LexiconError(f"bad pronunciation of {word!r}: {pron}")
                pairs.append((word, pron))
        if not pairs:
            raise LexiconError("G2P: the lexicon is empty")
        letters, loff, chunks = _align(pairs, int(iterations))
        lengths = np.diff(loff)
        ok = np.repeat(chunks[loff[1:] - 1] >= 0, lengths)
        if not ok.any():
            raise LexiconError("G2P: no word of the lexicon could be aligned with its pronunciation")
        # every letter in one array, words separated and surrounded by `pad` '#' symbols
        pad = max(max(c[0] for c in contexts), max(c[1] for c in contexts), 1)
        n_words = lengths.size
        in_word = np.arange(letters.size) - np.repeat(loff[:-1], lengths)
        pos = np.repeat(loff[:-1] + pad * (np.arange(n_words) + 1), lengths) + in_word
        padded = np.zeros(letters.size + pad * (n_words + 1), np.int64)
        padded[pos] = letters
        prev = np.where(in_word == 0, _START, np.roll(chunks, 1))
        pos, labels, prev, syms = pos[ok], chunks[ok], prev[ok], letters[ok]
        # fallback: the most frequent non-empty chunk of each letter
        fallback = np.array([_chunk_id((_LETTER_SOUND[chr(ord("a") + s - 2)],)) if s >= 2 else 0
                             for s in range(_N_SYMS)], np.int64)
        nonempty = labels > 0
        if nonempty.any():
            sym, best, _ = _best_chunks(syms[nonempty], labels[nonempty])
            fallback[sym] = best
        tables = _smoothed_tables(contexts, padded, pos, prev, labels, int(min_count), float(kappa))
        return cls(contexts, tables, fallback, min_count)

    # ------------------------------------------------------------ prediction
    def predict(self, word: str) -> tuple[str, ...]:
        """The pronunciation of a word.

        Parameters
        ----------
        word : str
            ``a``-``z`` and ``'``, with at least one letter.

        Returns
        -------
        tuple of str
            At least one phone of :data:`PHONES`.

        Raises
        ------
        LexiconError
            (a ``ValueError``) for an empty or invalid word.

        Examples
        --------
        >>> g2p = G2P.fit({"ax": [("AE", "K", "S")], "xa": [("K", "S", "AE")]})
        >>> g2p.predict("xxa")
        ('K', 'S', 'K', 'S', 'AE')
        >>> g2p.predict("x-ray")
        Traceback (most recent call last):
        ...
        speechlstm.lexicon.LexiconError: cannot pronounce 'x-ray': a word must be made of a-z and ' (with a letter)
        """
        _check_word(word)
        syms = [_SYM[ch] for ch in word]
        ml, mr = self._max_left, self._max_right
        padded = [0] * ml + syms + [0] * mr
        width = ml + 1 + mr
        full_mask = (1 << (_SYM_BITS * width)) - 1
        code = 0
        for s in padded[:width - 1]:
            code = (code << _SYM_BITS) | s
        phones: list[str] = []
        prev = _START
        for i in range(len(syms)):
            code = ((code << _SYM_BITS) | padded[i + width - 1]) & full_mask
            chunk = 0
            for shift, mask, hist, table in self._levels:
                key = (code >> shift) & mask
                c = table.get((key << _CHUNK_BITS) | prev if hist else key)
                if c is not None:
                    chunk = c
                    break
            phones.extend(_CHUNK_PHONES[chunk])
            prev = chunk
        if not phones:
            first = next(s for s in syms if s >= 2)
            phones.extend(_CHUNK_PHONES[int(self._fallback[first])])
        return tuple(phones)

    # ------------------------------------------------------------ files
    def save(self, path) -> Path:
        """Write the model as an ``.npz`` of integer arrays (no pickle), at ``path`` exactly.

        Returns
        -------
        Path
        """
        path = Path(path)
        arrays = {"format": np.array(G2P_FORMAT), "version": np.array(G2P_VERSION, np.int64),
                  "phones": np.array(PHONES), "contexts": np.array(self.contexts, np.int64).reshape(-1, 3),
                  "min_count": np.array(self.min_count, np.int64), "fallback": self._fallback}
        for k, (codes, chunks) in enumerate(zip(self._codes, self._chunks)):
            # ascending codes are stored as differences: small numbers, which compress well
            arrays[f"codes{k}"] = np.diff(codes, prepend=np.int64(0))
            arrays[f"chunks{k}"] = chunks
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "G2P":
        """Read a model written by :meth:`save`.

        Raises
        ------
        LexiconError
            A missing, unreadable or inconsistent file.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise LexiconError(f"{path}: cannot read G2P model: {e}") from None
        try:
            if str(d["format"]) != G2P_FORMAT or int(d["version"]) != G2P_VERSION:
                raise LexiconError(f"{path}: not a {G2P_FORMAT} v{G2P_VERSION} file")
            if tuple(str(p) for p in d["phones"]) != PHONES:
                raise LexiconError(f"{path}: G2P phone set differs from speechlstm.lexicon.PHONES")
            contexts = _normalize_contexts(d["contexts"].tolist())
            tables = []
            for k in range(len(contexts)):
                codes = np.cumsum(d[f"codes{k}"].astype(np.int64))
                chunks = d[f"chunks{k}"].astype(np.int16)
                if codes.shape != chunks.shape or (chunks.size and (chunks.min() < 0 or chunks.max() >= _N_CHUNKS)):
                    raise LexiconError(f"{path}: G2P table {k} is inconsistent")
                tables.append((codes, chunks))
            fallback = d["fallback"]
            if fallback.shape != (_N_SYMS,) or fallback.min() < 0 or fallback.max() >= _N_CHUNKS:
                raise LexiconError(f"{path}: G2P fallback table is inconsistent")
            return cls(contexts, tables, fallback, int(d["min_count"]))
        except LexiconError:
            raise
        except KeyError as e:
            raise LexiconError(f"{path}: G2P file lacks {e}") from None
        except (TypeError, ValueError, IndexError) as e:
            raise LexiconError(f"{path}: bad G2P file: {e}") from None


# ============================================================================ the lexicon


def _lexicon_path(path) -> Path:
    """The lexicon file a ``save``/``load`` path names: a directory means ``dir/lexicon.txt.gz``."""
    p = Path(path)
    return p / LEXICON_FILE if p.is_dir() or not p.suffix else p


def _g2p_name(lexicon_path: Path) -> str:
    """``lexicon.txt.gz`` -> ``lexicon.g2p.npz``: the G2P file written beside a lexicon file."""
    name = lexicon_path.name
    for suffix in (".gz", ".txt", ".dict"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name + ".g2p.npz"


class Lexicon:
    """Word -> pronunciations (tuples of :data:`PHONES`), with an optional :class:`G2P` for the other words.

    Parameters
    ----------
    entries : mapping of str to sequence of sequence of str, optional
        Words (``a``-``z`` and ``'``) and their pronunciations, the preferred one first.
    g2p : G2P or None, optional
        Pronounces the words that are not in ``entries``.

    Raises
    ------
    LexiconError
        An invalid word, a word without pronunciations, or a phone outside :data:`PHONES`.

    Examples
    --------
    >>> lex = Lexicon({"read": [("R", "IY", "D"), ("R", "EH", "D")], "a": [("AH",), ("EY",)]})
    >>> lex.pronunciations("read")
    [('R', 'IY', 'D'), ('R', 'EH', 'D')]
    >>> lex.words_to_phones("read a", boundary="|")
    ['R', 'IY', 'D', '|', 'AH']
    >>> lex.pronounce("book")
    Traceback (most recent call last):
    ...
    speechlstm.lexicon.LexiconError: 'book' is not in the lexicon and there is no G2P model
    """

    def __init__(self, entries: Mapping[str, Sequence[Sequence[str]]] | None = None, g2p: G2P | None = None):
        checked: dict[str, list[tuple[str, ...]]] = {}
        for word, prons in (entries or {}).items():
            _check_word(word)
            if isinstance(prons, (str, bytes)) or not prons:
                raise LexiconError(f"{word!r}: pronunciations must be a non-empty list of phone sequences")
            out: list[tuple[str, ...]] = []
            for pron in prons:
                if isinstance(pron, str):
                    raise LexiconError(f"{word!r}: a pronunciation is a sequence of phones, not the string {pron!r}")
                pron = tuple(pron)
                if not pron or any(p not in _PHONE_ID for p in pron):
                    raise LexiconError(f"{word!r}: bad pronunciation {pron}")
                if pron not in out:
                    out.append(pron)
            checked[word] = out
        self._entries = checked
        self._guessed: dict[str, tuple[str, ...]] = {}
        self.g2p = g2p

    @property
    def g2p(self) -> G2P | None:
        """The G2P model that pronounces the words outside the dictionary (``None``: none)."""
        return self._g2p

    @g2p.setter
    def g2p(self, model: G2P | None):
        if model is not None and not isinstance(model, G2P):
            raise TypeError("g2p must be a G2P model or None")
        self._g2p = model
        self._guessed = {}

    @classmethod
    def _trusted(cls, entries: dict, g2p: G2P | None) -> "Lexicon":
        """A lexicon over already-validated entries (no copy, no checks)."""
        lex = cls.__new__(cls)
        lex._entries = entries
        lex.g2p = g2p
        return lex

    @classmethod
    def from_cmudict(cls, path, g2p=True, **fit_options) -> "Lexicon":
        """The lexicon of a CMUdict file (:func:`read_cmudict`).

        Parameters
        ----------
        path : str or Path
        g2p : bool, G2P, str or Path, optional
            ``True``: train a :class:`G2P` on the dictionary (a few seconds for CMUdict); a G2P model, or the
            path of one saved with :meth:`G2P.save`; ``False`` / ``None``: no G2P.
        **fit_options
            Passed to :meth:`G2P.fit`.

        Returns
        -------
        Lexicon
        """
        entries = read_cmudict(path)
        if g2p is True:
            model = G2P.fit(entries, **fit_options)
        elif g2p is False or g2p is None:
            model = None
        elif isinstance(g2p, G2P):
            model = g2p
        else:
            model = G2P.load(g2p)
        return cls._trusted(entries, model)

    # ------------------------------------------------------------ look-ups
    def __contains__(self, word) -> bool:
        """Whether ``word`` has dictionary pronunciations (G2P guesses do not count)."""
        return word in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __repr__(self):
        return f"Lexicon({len(self)} words, {'with' if self.g2p is not None else 'no'} G2P)"

    def items(self):
        """``(word, list of pronunciations)`` pairs of the dictionary, in its order."""
        return self._entries.items()

    def _guess(self, word: str) -> tuple[str, ...]:
        pron = self._guessed.get(word)
        if pron is None:
            _check_word(word)
            if self.g2p is None:
                raise LexiconError(f"{word!r} is not in the lexicon and there is no G2P model")
            pron = self._guessed[word] = self.g2p.predict(word)
        return pron

    def pronounce(self, word: str) -> tuple[str, ...]:
        """The first dictionary pronunciation of ``word``, else the G2P's.

        Raises
        ------
        LexiconError
            The word is not in the dictionary and there is no G2P, or it is not made of ``a``-``z`` and ``'``.
        """
        prons = self._entries.get(word)
        return prons[0] if prons else self._guess(word)

    def pronunciations(self, word: str) -> list[tuple[str, ...]]:
        """All dictionary pronunciations of ``word`` (a new list), else ``[the G2P's]``; errors as :meth:`pronounce`."""
        prons = self._entries.get(word)
        return list(prons) if prons else [self._guess(word)]

    def subset(self, words) -> "Lexicon":
        """A lexicon of only ``words``, the missing ones pronounced by the G2P (which the subset keeps).

        Parameters
        ----------
        words : iterable of str, or str
            The words (a string is split at whitespace); repeats are ignored.

        Returns
        -------
        Lexicon
            In the order the words are given.

        Raises
        ------
        LexiconError
            A word that cannot be pronounced (see :meth:`pronounce`).

        Examples
        --------
        >>> lex = Lexicon({"cat": [("K", "AE", "T")], "cot": [("K", "AA", "T")], "dog": [("D", "AA", "G")],
        ...                "tag": [("T", "AE", "G")]})
        >>> lex.g2p = G2P.fit(lex)
        >>> sub = lex.subset(["cat", "cog"])
        >>> sub.pronunciations("cog"), len(sub), "dog" in sub, sub.g2p is lex.g2p
        ([('K', 'AA', 'G')], 2, False, True)
        """
        if isinstance(words, str):
            words = words.split()
        entries: dict[str, list[tuple[str, ...]]] = {}
        for word in words:
            if word not in entries:
                entries[word] = self.pronunciations(word)
        return Lexicon._trusted(entries, self.g2p)

    def words_to_phones(self, text: str, boundary: str | None = " ") -> list[str]:
        """Phones of a normalized transcript (words separated by whitespace), ``boundary`` between words.

        Parameters
        ----------
        text : str
            Words of ``a``-``z`` and ``'`` (:func:`speechlstm.text.normalize_text` output).
        boundary : str or None, optional
            Token put between two words (not at the ends); ``None``: nothing.

        Returns
        -------
        list of str

        Raises
        ------
        LexiconError
            A word that cannot be pronounced.
        """
        out: list[str] = []
        for i, word in enumerate(text.split()):
            if i and boundary is not None:
                out.append(boundary)
            out.extend(self.pronounce(word))
        return out

    def labels(self, text: str, tokens: Sequence[str], boundary: str = " ") -> np.ndarray:
        """Token ids of a transcript for a phone model: its words' phones, ``boundary`` between words.

        Text that is not already normalized (a word with characters other than ``a``-``z`` and ``'``) is first
        normalized with :func:`speechlstm.text.normalize_text`.

        Parameters
        ----------
        text : str
        tokens : sequence of str
            The model's output units: phones of :data:`PHONES` and, where words are separated, ``boundary``.
        boundary : str, optional
            The word-boundary token; left out when it is not one of ``tokens``.

        Returns
        -------
        ndarray of int32

        Raises
        ------
        LexiconError
            (a ``ValueError``) a word that cannot be pronounced or a phone that is not a token.

        Examples
        --------
        >>> lex = Lexicon({"hi": [("HH", "AY")], "there": [("DH", "EH", "R")]})
        >>> tokens = ["<blank>", " "] + list(PHONES)
        >>> ids = lex.labels("Hi, there!", tokens)
        >>> [tokens[i] for i in ids]
        ['HH', 'AY', ' ', 'DH', 'EH', 'R']
        """
        words = text.split()
        if not all(_valid_word(w) for w in words):
            from .text import normalize_text

            text = normalize_text(text)
        index = {t: i for i, t in enumerate(tokens)}
        phones = self.words_to_phones(text, boundary if boundary in index else None)
        try:
            return np.fromiter((index[p] for p in phones), dtype=np.int32, count=len(phones))
        except KeyError as e:
            raise LexiconError(f"text {text!r}: phone {e.args[0]!r} is not a token") from None

    # ------------------------------------------------------------ files
    def save(self, path) -> Path:
        """Write the lexicon as gzip'd text and its G2P (if any) beside it.

        Parameters
        ----------
        path : str or Path
            The lexicon file (``.../lexicon.txt.gz``: the G2P goes to ``.../lexicon.g2p.npz``), or a directory
            (then ``dir/lexicon.txt.gz``).

        Returns
        -------
        Path
            The lexicon file.

        Notes
        -----
        The text starts with a ``#`` header naming the G2P file (or ``g2p=none``), then has one
        ``word PH PH ...`` line per pronunciation, in the lexicon's order; the gzip header carries no time stamp,
        so the same lexicon gives the same bytes.
        """
        path = _lexicon_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        g2p_name = _g2p_name(path) if self.g2p is not None else "none"
        lines = [f"{_LEXICON_HEADER} g2p={g2p_name}\n"]
        lines += [f"{word} {' '.join(pron)}\n" for word, prons in self._entries.items() for pron in prons]
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write("".join(lines).encode("utf-8"))
        if self.g2p is not None:
            self.g2p.save(path.parent / g2p_name)
        return path

    @classmethod
    def load(cls, path) -> "Lexicon":
        """Read a lexicon written by :meth:`save` (a lexicon file, or a directory holding ``lexicon.txt.gz``).

        A CMUdict-format file without the header loads too, without a G2P.

        Raises
        ------
        LexiconError
            A missing or malformed lexicon or G2P file.
        """
        path = _lexicon_path(path)
        lines = _open_text(path)
        model = None
        if lines and lines[0].startswith(_LEXICON_HEADER):
            m = re.search(r"\bg2p=(\S+)", lines[0])
            if m and m.group(1) != "none":
                name = m.group(1)
                if "/" in name or "\\" in name:
                    raise LexiconError(f"{path}:1: the G2P file must be a name beside the lexicon (got {name!r})")
                model = G2P.load(path.parent / name)
        return cls._trusted(_parse_lines(lines, path), model)


# ============================================================================ evaluation


def evaluate_g2p(lexicon, holdout_fraction: float = 0.05, seed: int = 0, **fit_options) -> dict:
    """Held-out accuracy of a :class:`G2P` trained on the rest of a lexicon.

    The words are sorted and shuffled with ``numpy.random.default_rng(seed)``; the first
    ``round(holdout_fraction * len)`` (at least one) are held out, the G2P is trained on the others (all their
    pronunciations) and predicts the held-out ones.

    Parameters
    ----------
    lexicon : Lexicon or dict of str to list of tuple of str
    holdout_fraction : float, optional
    seed : int, optional
    **fit_options
        Passed to :meth:`G2P.fit`.

    Returns
    -------
    dict
        ``words`` (held out), ``train_words``, ``word_accuracy`` (the prediction is one of the listed
        pronunciations) and ``phone_error_rate`` (edit distance to the closest listed pronunciation, summed, over
        the summed lengths of those pronunciations).

    Examples
    --------
    >>> toy = {w: [tuple({"a": "AE", "b": "B", "d": "D"}[c] for c in w)] for w in
    ...        ["ab", "ba", "bad", "dab", "abba", "dad", "add", "baba", "bab", "dd"]}
    >>> evaluate_g2p(toy, holdout_fraction=0.2)
    {'words': 2, 'train_words': 8, 'word_accuracy': 1.0, 'phone_error_rate': 0.0}
    """
    from .metrics import edit_distance

    entries = dict(lexicon.items())
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError("holdout_fraction must be between 0 and 1")
    words = sorted(entries)
    if len(words) < 2:
        raise ValueError("evaluate_g2p needs at least two words")
    order = np.random.default_rng(seed).permutation(len(words))
    n_test = min(max(1, int(round(holdout_fraction * len(words)))), len(words) - 1)
    test = sorted(words[i] for i in order[:n_test])
    train = {words[i]: entries[words[i]] for i in sorted(order[n_test:])}
    g2p = G2P.fit(train, **fit_options)
    correct = errors = length = 0
    for word in test:
        hyp = g2p.predict(word)
        refs = [tuple(r) for r in entries[word]]
        correct += hyp in refs
        dist, k = min((edit_distance(r, hyp), k) for k, r in enumerate(refs))
        errors += dist
        length += len(refs[k])
    return {"words": n_test, "train_words": len(train), "word_accuracy": correct / n_test,
            "phone_error_rate": errors / max(length, 1)}
