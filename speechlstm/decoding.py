"""CTC decoding: greedy best path, prefix beam search, and beam search with an n-gram LM and hotwords.

``log_probs`` is always a ``(T, V)`` array of per-frame log-softmax outputs; label ``blank`` (default 0) is
the CTC blank and the other ids are tokens. Results are :class:`Hypothesis` objects holding the collapsed
label sequence with, for every token, the frame it is emitted at and its log-prob there.

:func:`greedy_decode`, :func:`beam_search` and :func:`decode` are acoustic only (Numba kernels in
:mod:`speechlstm.kernels.ctc`). :class:`Decoder` adds word-level shallow fusion with an n-gram language model
(:mod:`speechlstm.lm`) and hotwords (kernel in :mod:`speechlstm.kernels.ctc_lm`): a prefix ranks by

``log p_ctc + alpha * ln p_lm(words) + beta * words + unk_penalty * out-of-vocabulary words + hotword bonus``

where words end at the space token (and at the end of the utterance, which also scores ``</s>``), the unfinished
word is scored through a prefix trie of the LM vocabulary, and hotword phrases earn a bonus as they are spelled
(taken back if the match breaks). The module constants ``DEFAULT_ALPHA``, ``DEFAULT_BETA``,
``DEFAULT_UNK_PENALTY``, ``DEFAULT_HOTWORD_WEIGHT`` and ``DEFAULT_LM_PRUNE`` are the defaults of
:class:`Decoder` (and of the command line).

Examples
--------
>>> import numpy as np
>>> from speechlstm.decoding import decode
>>> probs = np.array([[.1, .8, .1], [.8, .1, .1], [.1, .8, .1], [.1, .1, .8]], np.float32)
>>> decode(np.log(probs), ["_", "a", "b"], beam_width=8).text
'aab'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import LMError

__all__ = ["Hypothesis", "greedy_decode", "beam_search", "tokens_to_text", "decode", "Decoder", "load_lm",
           "parse_hotwords", "HotwordError", "DEFAULT_ALPHA", "DEFAULT_BETA", "DEFAULT_UNK_PENALTY",
           "DEFAULT_HOTWORD_WEIGHT", "DEFAULT_LM_PRUNE"]


@dataclass(eq=False)
class Hypothesis:
    """One decoding result.

    Attributes
    ----------
    token_ids : ndarray, int32
        Collapsed label sequence (no blanks, CTC repeats merged).
    frames : ndarray, int32
        Frame at which each token is emitted: for greedy decoding the first frame of its run on the best path;
        for beam search the frame at which the prefix was extended by it, taken from the extension that
        carried the most probability when alignments of the same prefix merged. Strictly increasing.
    token_scores : ndarray, float32
        Log-prob of each token at its emission frame (``log_probs[frames[i], token_ids[i]]``).
    score : float
        Greedy: log-prob of the best path. Beam search: CTC prefix log-probability of ``token_ids``, the
        log-sum over the alignments the search kept (``logaddexp(p_blank, p_nonblank)`` at the last frame);
        equal to the exact sequence log-probability when no alignment was pruned, a lower bound otherwise.
    text : str
        Filled by :func:`decode` when tokens are given.
    acoustic_score : float or None
        :class:`Decoder` results: the CTC prefix log-probability alone (``score`` is then the fused score,
        acoustic plus language model, word bonus and hotword terms). ``None`` for the other decoders.
    words : list of str or None
        Lexicon decoding (phone models): the word each boundary-delimited group of units stands for, homophones
        resolved by the LM; ``text`` is these words joined by spaces. ``None`` when the units spell the text.

    Examples
    --------
    >>> import numpy as np
    >>> h = Hypothesis(np.array([1], np.int32), np.array([0], np.int32), np.array([-0.1], np.float32), -0.5)
    >>> len(h.token_ids), h.text
    (1, '')
    """

    token_ids: np.ndarray
    frames: np.ndarray
    token_scores: np.ndarray
    score: float
    text: str = ""
    acoustic_score: float | None = None
    words: list | None = None


def _check_log_probs(log_probs, blank):
    lp = np.ascontiguousarray(log_probs, dtype=np.float32)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be 2-D (frames, vocabulary), got shape {lp.shape}")
    if lp.shape[1] < 1:
        raise ValueError("log_probs has an empty vocabulary axis")
    if np.isnan(lp).any():
        raise ValueError("log_probs contains NaN")
    blank = int(blank)
    if not 0 <= blank < lp.shape[1]:
        raise ValueError(f"blank index {blank} out of range for vocabulary size {lp.shape[1]}")
    return lp, blank


def _top_k(token_top_k) -> int:
    """The kernels' ``top_k`` for a ``token_top_k`` argument: a positive integer, or None (0: every label)."""
    if token_top_k is None:
        return 0
    if isinstance(token_top_k, bool) or int(token_top_k) != token_top_k or token_top_k < 1:
        raise ValueError(f"token_top_k must be a positive integer or None, got {token_top_k!r}")
    return int(token_top_k)


def _empty_hypothesis(score: float) -> Hypothesis:
    return Hypothesis(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), score)


def greedy_decode(log_probs, blank: int = 0) -> Hypothesis:
    """Best-path CTC decoding: per-frame argmax, merge repeats, drop blanks.

    Parameters
    ----------
    log_probs : array_like, shape (T, V)
        Per-frame log-softmax outputs (converted to float32). ``T`` may be 0.
    blank : int, optional
        Index of the CTC blank.

    Returns
    -------
    Hypothesis
        ``score`` is the log-prob of the best path (float64 sum of the per-frame maxima); ``frames`` are
        the first frames of the token runs and ``token_scores`` the log-probs there. Ties go to the lower id.

    Examples
    --------
    >>> import numpy as np
    >>> lp = np.log(np.array([[.6, .4], [.3, .7], [.2, .8], [.9, .1]], np.float32))
    >>> h = greedy_decode(lp)
    >>> h.token_ids.tolist(), h.frames.tolist(), round(h.score, 4)
    ([1], [1], -1.196)
    """
    from speechlstm.kernels import ctc

    lp, blank = _check_log_probs(log_probs, blank)
    if lp.shape[0] == 0:
        return _empty_hypothesis(0.0)
    tokens, frames, scores, total = ctc.greedy_kernel(lp, blank)
    return Hypothesis(tokens, frames, scores, float(total))


def beam_search(log_probs, beam_width: int = 16, blank: int = 0, prune_threshold: float | None = -12.0,
                token_top_k: int | None = None) -> list[Hypothesis]:
    """CTC prefix beam search in log space.

    Every prefix keeps ``p_b`` / ``p_nb``, the log-probabilities of its alignments ending in blank / in its
    last token; alignments of the same prefix are merged with log-sum-exp, and a prefix is extended by its
    own last token only from ``p_b`` (the same token right after itself stays in the prefix through
    ``p_nb``). After each frame the ``beam_width`` prefixes with the largest ``logaddexp(p_b, p_nb)`` are kept.

    Parameters
    ----------
    log_probs : array_like, shape (T, V)
        Per-frame log-softmax outputs (converted to float32). ``T`` may be 0.
    beam_width : int, optional
        Number of prefixes kept per frame and the maximum number of results.
    blank : int, optional
        Index of the CTC blank.
    prune_threshold : float or None, optional
        Relative pruning (<= 0): at each frame only tokens with ``log_prob >= max(log_probs[t]) +
        prune_threshold`` start new prefixes. Probability mass of prefixes already in the beam (blank,
        repeats, and an extension that equals another beam prefix) is always added, pruned or not.
        ``None`` (or ``-inf``) disables pruning.
    token_top_k : int or None, optional
        If given, at most this many of the best non-blank tokens per frame start new prefixes.

    Returns
    -------
    list of Hypothesis
        Best first, at most ``beam_width`` entries. ``score`` is the prefix log-probability (exact when the
        search pruned nothing). With ``T == 0`` the single empty hypothesis (score 0.0); empty only if
        every alignment has probability 0.

    Examples
    --------
    >>> import numpy as np
    >>> lp = np.log(np.array([[.5, .3, .2], [.5, .3, .2]], np.float32))
    >>> hyps = beam_search(lp, beam_width=3)
    >>> [(h.token_ids.tolist(), round(float(np.exp(h.score)), 2)) for h in hyps]
    [([1], 0.39), ([], 0.25), ([2], 0.24)]

    The best is ``[1]``: its alignments ``1-``, ``-1``, ``11`` add up to more than ``--``.
    """
    from speechlstm.kernels import ctc

    lp, blank = _check_log_probs(log_probs, blank)
    if isinstance(beam_width, bool) or int(beam_width) != beam_width or beam_width < 1:
        raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
    if prune_threshold is None:
        prune_threshold = -math.inf
    prune_threshold = float(prune_threshold)
    if math.isnan(prune_threshold) or prune_threshold > 0:
        raise ValueError(f"prune_threshold must be <= 0 or None, got {prune_threshold!r}")
    top_k = _top_k(token_top_k)
    if lp.shape[0] == 0:
        return [_empty_hypothesis(0.0)]
    scores, offsets, tokens, frames, token_scores = ctc.beam_search_kernel(
        lp, blank, int(beam_width), prune_threshold, top_k)
    hyps = []
    for i in range(scores.shape[0]):
        a, b = offsets[i], offsets[i + 1]
        hyps.append(Hypothesis(tokens[a:b], frames[a:b], token_scores[a:b], float(scores[i])))
    return hyps


def tokens_to_text(token_ids, tokens: Sequence[str], blank: int | None = None) -> str:
    """Concatenate the strings of ``token_ids``; runs of whitespace become one space, ends are stripped.

    Parameters
    ----------
    token_ids : sequence of int
        Label ids, ``0 <= id < len(tokens)``.
    tokens : sequence of str
        ``tokens[i]`` is the string of id ``i``.
    blank : int or None, optional
        Ids equal to ``blank`` are skipped (decoders never emit it; this is for raw label sequences).

    Returns
    -------
    str

    Examples
    --------
    >>> tokens_to_text([1, 2, 3, 3, 4, 2], ["_", "h", "i", " ", "x"])
    'hi xi'
    """
    n = len(tokens)
    parts = []
    for i in np.asarray(token_ids, dtype=np.int64).reshape(-1).tolist():
        if blank is not None and i == blank:
            continue
        if not 0 <= i < n:
            raise ValueError(f"token id {i} out of range for {n} tokens")
        parts.append(tokens[i])
    return " ".join("".join(parts).split())


def decode(log_probs, tokens: Sequence[str] | None = None, blank: int = 0, beam_width: int = 1,
           **kw) -> Hypothesis:
    """Decode one utterance: greedy for ``beam_width <= 1``, else the best prefix beam search hypothesis.

    Parameters
    ----------
    log_probs : array_like, shape (T, V)
        Per-frame log-softmax outputs.
    tokens : sequence of str or None, optional
        ``tokens[i]`` is the string of id ``i`` (``len(tokens) == V``); fills ``Hypothesis.text``.
    blank : int, optional
        Index of the CTC blank.
    beam_width : int, optional
        1 (or less) means greedy decoding.
    **kw
        ``prune_threshold``, ``token_top_k``: passed to :func:`beam_search` (ignored by greedy decoding).

    Returns
    -------
    Hypothesis

    Examples
    --------
    >>> import numpy as np
    >>> lp = np.log(np.array([[.1, .9, 0], [.1, .9, 0], [.8, .1, .1], [.1, 0, .9]], np.float32) + 1e-6)
    >>> decode(lp, ["_", "o", "k"]).text, decode(lp, ["_", "o", "k"], beam_width=4).text
    ('ok', 'ok')
    """
    unknown = set(kw) - {"prune_threshold", "token_top_k"}
    if unknown:
        raise TypeError(f"decode() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if beam_width is None or beam_width <= 1:
        hyp = greedy_decode(log_probs, blank=blank)
    else:
        hyps = beam_search(log_probs, beam_width=beam_width, blank=blank, **kw)
        hyp = hyps[0] if hyps else _empty_hypothesis(-math.inf)
    if tokens is not None:
        v = np.shape(log_probs)[-1]
        if len(tokens) != v:
            raise ValueError(f"{len(tokens)} tokens for a vocabulary of {v}")
        hyp.text = tokens_to_text(hyp.token_ids, tokens)
    return hyp


# ================================================================================ language model and hotwords

#: LM weight: multiplies natural-log LM probabilities (tuned with ``tools/tune_lm.py``).
DEFAULT_ALPHA = 0.5
#: Word insertion bonus (natural-log units per word).
DEFAULT_BETA = 0.0
#: Penalty (natural log, <= 0) for a word that is not in the LM vocabulary (nor a hotword).
DEFAULT_UNK_PENALTY = -10.0
#: Hotword weight: bonus (natural log) of a matched phrase, earned character by character.
DEFAULT_HOTWORD_WEIGHT = 5.0
#: Pruning of the LM beam search: labels more than this below the frame's best start no new prefix.
DEFAULT_LM_PRUNE = -10.0


class HotwordError(LMError, ValueError):
    """A malformed hotword specification (one line naming the bad item); both an LMError and a ValueError."""


def load_lm(path):
    """Load an n-gram language model: ``lm.bin`` (memory-mapped), ``.arpa`` / ``.arpa.gz``, or a directory holding one.

    Parameters
    ----------
    path : str or PathLike
        A binary model written by :meth:`speechlstm.lm.NGramLM.save` (recognized by its magic bytes), an ARPA
        file (gzip'd when it ends in ``.gz``), or a directory with ``lm.bin``, ``lm.arpa.gz`` or ``lm.arpa``
        (first found).

    Returns
    -------
    speechlstm.lm.NGramLM

    Raises
    ------
    speechlstm.errors.LMError
        One line ``PATH[:LINE]: reason`` for a missing, unreadable or malformed file.

    Examples
    --------
    >>> import os, tempfile
    >>> from speechlstm.lm import build_lm
    >>> d = tempfile.mkdtemp(); build_lm([["a", "b"]], order=2).save(os.path.join(d, "lm.bin"))
    >>> load_lm(d).vocab
    ['<unk>', '<s>', '</s>', 'a', 'b']
    >>> load_lm(os.path.join(d, "nope.arpa"))
    Traceback (most recent call last):
    ...
    speechlstm.errors.LMError: ...nope.arpa: no such language model file
    """
    import os

    from .lm import MAGIC, NGramLM, read_arpa

    p = os.fspath(path)
    if os.path.isdir(p):
        for name in ("lm.bin", "lm.arpa.gz", "lm.arpa"):
            if os.path.isfile(os.path.join(p, name)):
                p = os.path.join(p, name)
                break
        else:
            raise LMError(f"{p}: no lm.bin, lm.arpa.gz or lm.arpa in this directory")
    if not os.path.exists(p):
        raise LMError(f"{p}: no such language model file")
    try:
        with open(p, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as e:
        raise LMError(f"{p}: cannot read language model: {e.strerror or e}") from None
    lm = NGramLM.load(p) if head == MAGIC else read_arpa(p)
    if lm.vocab[:3] != ["<unk>", "<s>", "</s>"]:
        raise LMError(f"{p}: vocabulary must start with <unk> <s> </s>")
    return lm


def _weight(value, item):
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise HotwordError(f"hotwords: {item!r}: weight {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(w) or w <= 0:
        raise HotwordError(f"hotwords: {item!r}: weight must be a positive finite number, got {value!r}")
    return w


def parse_hotwords(spec, default_weight: float = DEFAULT_HOTWORD_WEIGHT) -> list:
    """Parse a hotword specification into ``[(phrase, weight), ...]``.

    Parameters
    ----------
    spec : str or sequence
        ``"word,phrase two:4.0"`` (comma-separated phrases, each optionally ``:weight``), or a sequence whose
        items are such strings (one phrase each) or ``(phrase, weight)`` pairs. Phrases are lowercased and
        their whitespace collapsed; a phrase given twice keeps its largest weight.
    default_weight : float, optional
        Weight of phrases given without one (:data:`DEFAULT_HOTWORD_WEIGHT`). A phrase's weight is the bonus, in
        natural-log units (like ``log p_ctc``), that a hypothesis earns for containing the whole phrase; it is
        earned character by character while the hypothesis spells it (the k-th of n characters earns
        ``weight * k / (n (n + 1) / 2)``) and taken back if it stops short.

    Returns
    -------
    list of (str, float)

    Raises
    ------
    HotwordError
        (an :class:`~speechlstm.errors.LMError` and a ``ValueError``) with one line naming the bad item: an empty
        list, an empty phrase, a weight that is not a positive finite number.

    Examples
    --------
    >>> parse_hotwords("speechlstm, Turn on the  lights:4.0")
    [('speechlstm', 5.0), ('turn on the lights', 4.0)]
    >>> parse_hotwords([("numba", 2), "kernel:1.5"])
    [('numba', 2.0), ('kernel', 1.5)]
    >>> parse_hotwords("lights:loud")
    Traceback (most recent call last):
    ...
    speechlstm.decoding.HotwordError: hotwords: 'lights:loud': weight 'loud' is not a number
    """
    default_weight = _weight(default_weight, "default weight")
    if isinstance(spec, str):
        items = spec.split(",")
        if not spec.strip():
            raise HotwordError("hotwords: the list is empty")
    elif spec is None:
        raise HotwordError("hotwords: the list is empty")
    else:
        try:
            items = list(spec)
        except TypeError:
            raise HotwordError(f"hotwords: expected a string or a list, got {type(spec).__name__}") from None
        if not items:
            raise HotwordError("hotwords: the list is empty")
    out: dict = {}
    for item in items:
        if isinstance(item, (tuple, list)):
            if len(item) != 2 or not isinstance(item[0], str):
                raise HotwordError(f"hotwords: {item!r}: expected (phrase, weight)")
            phrase, w = item[0], _weight(item[1], item)
        elif isinstance(item, str):
            phrase, sep, tail = item.rpartition(":")
            if not sep:
                phrase, w = item, default_weight
            else:
                w = _weight(tail.strip(), item.strip())
        else:
            raise HotwordError(f"hotwords: {item!r}: expected a string or a (phrase, weight) pair")
        words = phrase.lower().split()
        if not words:
            raise HotwordError(f"hotwords: {str(item).strip()!r}: empty phrase")
        phrase = " ".join(words)
        out[phrase] = max(w, out.get(phrase, 0.0))
    return list(out.items())


def _readonly(a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _offsets(keys, V, rows):
    """``first`` with ``keys[first[r]:first[r + 1]]`` the keys ``r * V + w`` (keys sorted), length ``rows + 1``."""
    first = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(np.asarray(keys) // V, minlength=rows), out=first[1:])
    return first


def _lm_tables(lm):
    """The n-gram arrays the kernel takes: ``(vocab_size, order, logp1, bow1, keys, firsts, logps, bows)``.

    ``keys`` / ``firsts`` / ``logps`` / ``bows`` are tuples over orders ``2..MAX_ORDER`` (empty arrays pad the
    orders above the model's); all arrays read-only, memory-mapped ones are not copied (``firsts`` are computed:
    one pass over the keys).
    """
    from .kernels.ctc_lm import MAX_ORDER

    e8, e4 = _readonly(np.zeros(0), np.int64), _readonly(np.zeros(0), np.float32)
    if lm is None:
        z = _readonly(np.zeros(3), np.float32)
        n = MAX_ORDER - 1
        return 3, 1, z, z, (e8,) * n, (e8,) * n, (e4,) * n, (e4,) * n
    a, V = lm.arrays, lm.vocab_size
    keys, firsts, logps, bows = [], [], [], []
    rows = V
    for n in range(2, MAX_ORDER + 1):
        if n <= lm.order:
            k = _readonly(a[f"keys{n}"], np.int64)
            keys.append(k)
            firsts.append(_readonly(_offsets(k, V, rows), np.int64))
            logps.append(_readonly(a[f"logp{n}"], np.float32))
            bows.append(_readonly(a[f"bow{n}"], np.float32) if n < lm.order else e4)
            rows = len(k)
        else:
            keys.append(e8), firsts.append(e8), logps.append(e4), bows.append(e4)
    return (V, lm.order, _readonly(a["logp1"], np.float32), _readonly(a["bow1"], np.float32), tuple(keys),
            tuple(firsts), tuple(logps), tuple(bows))


def _build_trie(seqs, lengths, V):
    """Trie of label sequences (rows of ``seqs``, ``lengths[i]`` labels each) as sorted keys ``parent * V + label``.

    Nodes are numbered depth by depth (root 0), so the concatenated keys are sorted and the child at key index ``i``
    is node ``i + 1``. Returns ``(keys, path, depth_start)``: ``path[i, d]`` is the node of sequence ``i`` after
    ``d + 1`` labels (-1 past its end), ``depth_start[d]`` the first node id of depth ``d`` (``d >= 1``).
    """
    n, maxlen = seqs.shape
    cur = np.zeros(n, np.int64)
    path = np.full((n, maxlen), -1, np.int64)
    parts, next_id, depth_start = [], 1, [0, 1]
    for d in range(maxlen):
        active = np.flatnonzero(lengths > d)
        if not len(active):
            break
        uniq, inv = np.unique(cur[active] * V + seqs[active, d], return_inverse=True)
        cur[active] = next_id + inv.reshape(-1)
        path[active, d] = cur[active]
        parts.append(uniq)
        next_id += len(uniq)
        depth_start.append(next_id)
    keys = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return keys, path, depth_start


class Decoder:
    """CTC prefix beam search with an n-gram language model and hotwords (word-level shallow fusion).

    Built once per model (it holds the LM, a prefix trie of the LM vocabulary over the model's tokens, and the
    hotword trie); :meth:`decode` may then be called from several threads at once.

    Parameters
    ----------
    tokens : sequence of str
        The model's output units (``ModelConfig.tokens``). Tokens that are whitespace are word boundaries; words
        are spelled with the others (single characters, or longest match for multi-character tokens).
    blank : int, optional
        Index of the CTC blank.
    beam_width : int, optional
        Prefixes kept per frame.
    lm : NGramLM, str, PathLike or None, optional
        A language model, or a path for :func:`load_lm`. ``None``: no LM (``alpha``, ``beta`` and
        ``unk_penalty`` are then unused).
    alpha : float, optional
        LM weight (>= 0), applied to natural-log probabilities.
    beta : float, optional
        Word insertion bonus per word.
    unk_penalty : float, optional
        Added (<= 0) for each word that is not in the LM vocabulary (hotwords are exempt); an unfinished word
        that is no prefix of a vocabulary word carries it already.
    hotwords : str, sequence or None, optional
        Phrases to boost, as for :func:`parse_hotwords` (``"speechlstm,turn on the lights:4.0"``). Their words
        count as in-vocabulary.
    prune_threshold : float or None, optional
        Labels more than this (<= 0) below the frame's best start no new prefix; ``None`` keeps all.
    token_top_k : int or None, optional
        At most this many labels per frame start new prefixes.
    lookahead : bool, optional
        Score an unfinished word with the best unigram probability of the vocabulary words it can still become
        (True), or only check that it is a prefix of one (False).
    lexicon : speechlstm.lexicon.Lexicon or None, optional
        Lexicon decoding, for phone models (tokens: CMUdict phones and the boundary ``" "``). The search only
        follows pronunciations of vocabulary words: the LM's words (every lexicon word without an LM) and the
        hotwords' words, G2P pronunciations standing in where the lexicon has none; a word with several
        pronunciations is reached by each. Words that sound alike (homophones) share a path: the search scores
        it as the one with the best unigram probability, and once it is done the LM picks among them for the
        whole sentence (a Viterbi pass over the n-gram states), giving :attr:`Hypothesis.words`.

    Examples
    --------
    >>> import numpy as np
    >>> from speechlstm.lm import build_lm
    >>> tokens = ["_", " ", "a", "c", "t", "o"]
    >>> lm = build_lm([["a", "cot"]] + [["a", "cat"]] * 6, order=2)
    >>> path = "_cc_aa_tt_"
    >>> p = np.full((len(path), len(tokens)), 0.02, np.float32)
    >>> for t, ch in enumerate(path):
    ...     p[t, tokens.index(ch)] = 0.9
    >>> p[4:6, 2], p[4:6, 5] = 0.35, 0.45  # "a" or "o" in the middle: the acoustics lean to "o"
    >>> lp = np.log(p / p.sum(1, keepdims=True))
    >>> Decoder(tokens).decode(lp)[0].text, Decoder(tokens, lm=lm, alpha=1.0, beta=0.0).decode(lp)[0].text
    ('cot', 'cat')
    >>> Decoder(tokens, hotwords="cot:9").decode(lp)[0].text
    'cot'
    """

    def __init__(self, tokens, blank: int = 0, beam_width: int = 8, lm=None, alpha: float = DEFAULT_ALPHA,
                 beta: float = DEFAULT_BETA, unk_penalty: float = DEFAULT_UNK_PENALTY, hotwords=None,
                 prune_threshold: float | None = DEFAULT_LM_PRUNE, token_top_k: int | None = None,
                 lookahead: bool = True, lexicon=None):
        from .lm import NGramLM

        tokens = list(tokens)
        if len(tokens) < 2 or not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokens must be a list of at least 2 strings")
        blank = int(blank)
        if not 0 <= blank < len(tokens):
            raise ValueError(f"blank index {blank} out of range for {len(tokens)} tokens")
        if isinstance(beam_width, bool) or int(beam_width) != beam_width or beam_width < 1:
            raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
        alpha, beta, unk_penalty = (self._number(alpha, "alpha"), self._number(beta, "beta"),
                                    self._number(unk_penalty, "unk_penalty"))
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if unk_penalty > 0:
            raise ValueError(f"unk_penalty must be <= 0, got {unk_penalty!r}")
        prune = -math.inf if prune_threshold is None else self._number(prune_threshold, "prune_threshold")
        if prune > 0:
            raise ValueError(f"prune_threshold must be <= 0 or None, got {prune_threshold!r}")
        top_k = _top_k(token_top_k)
        if lm is not None and not isinstance(lm, NGramLM):
            lm = load_lm(lm)
        if lm is not None and lm.order > 6:
            raise LMError(f"language model order {lm.order} is above the decoder's maximum of 6")
        self.tokens, self.blank, self.beam_width = tokens, blank, int(beam_width)
        self.lm, self.alpha, self.beta, self.unk_penalty = lm, alpha, beta, unk_penalty
        self.prune_threshold, self.token_top_k, self.lookahead = prune, top_k, bool(lookahead)
        self.hotwords = [] if hotwords is None else parse_hotwords(hotwords)
        self.lexicon = lexicon
        self._plain = lm is None and not self.hotwords and lexicon is None
        V = len(tokens)
        self._boundary = np.array([i != blank and t.isspace() and t != "" for i, t in enumerate(tokens)], np.bool_)
        spaces = [i for i, t in enumerate(tokens) if self._boundary[i]]
        self._space = tokens.index(" ") if " " in tokens and tokens.index(" ") != blank else (
            spaces[0] if spaces else -1)
        self._pieces = {t: i for i, t in enumerate(tokens) if i != blank and not self._boundary[i] and t}
        if self._plain:
            return
        self._build(V)

    @staticmethod
    def _number(x, name):
        try:
            v = float(x)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {x!r}") from None
        if isinstance(x, bool) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {x!r}")
        return v

    def _spell(self, words):
        """Label matrix ``(n, maxlen)`` (-1 padded), lengths, and a mask of the words the tokens can spell."""
        n = len(words)
        if n == 0:
            return np.zeros((0, 1), np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
        if all(len(p) == 1 for p in self._pieces):
            arr = np.array(words, dtype=str)
            maxlen = max(1, arr.dtype.itemsize // 4)
            codes = np.ascontiguousarray(arr).view(np.uint32).reshape(n, maxlen)
            lut = np.full(max([ord(c) for c in self._pieces], default=0) + 2, -1, np.int64)
            for c, i in self._pieces.items():
                lut[ord(c)] = i
            seqs = lut[np.minimum(codes, len(lut) - 1)]  # code 0 (padding) and unknown characters -> -1
            lengths = (codes != 0).sum(axis=1).astype(np.int64)
            ok = ((seqs >= 0) == (codes != 0)).all(axis=1) & (lengths > 0)
            return seqs, lengths, ok
        by_len = sorted(self._pieces, key=len, reverse=True)
        rows = []
        for w in words:
            ids, i = [], 0
            while i < len(w):
                for p in by_len:
                    if w.startswith(p, i):
                        ids.append(self._pieces[p])
                        i += len(p)
                        break
                else:
                    ids = None
                    break
            rows.append(ids or [])
        maxlen = max(1, max(len(r) for r in rows))
        seqs = np.full((n, maxlen), -1, np.int64)
        for i, r in enumerate(rows):
            seqs[i, :len(r)] = r
        lengths = np.array([len(r) for r in rows], np.int64)
        return seqs, lengths, lengths > 0

    def _pronounce(self, words, variants: bool = True):
        """Lexicon mode: label rows of the pronunciations of ``words`` (all of them, or the first with
        ``variants=False``; G2P where the lexicon has none). Returns ``(seqs, lengths, owner)``, ``owner[i]`` the
        index in ``words`` of row ``i``; words without a pronunciation the tokens can spell have no row."""
        rows, owner = [], []
        lex, pieces = self.lexicon, self._pieces
        for k, w in enumerate(words):
            try:
                prons = lex.pronunciations(w)
            except ValueError:  # not in the lexicon and no G2P (or not a word it can pronounce)
                continue
            for pr in (prons if variants else prons[:1]):
                ids = [pieces.get(ph, -1) for ph in pr]
                if ids and min(ids) >= 0:
                    rows.append(ids)
                    owner.append(k)
        maxlen = max([len(r) for r in rows], default=1)
        seqs = np.full((len(rows), maxlen), -1, np.int64)
        for i, r in enumerate(rows):
            seqs[i, :len(r)] = r
        return seqs, np.array([len(r) for r in rows], np.int64), np.array(owner, np.int64)

    def _build(self, V):
        lm = self.lm
        (self._lm_vocab, self._lm_order, self._logp1, self._bow1, self._keys, self._firsts, self._logps,
         self._bows) = _lm_tables(lm)
        if lm is None:
            self._alpha_k, self._beta_k, self._unk_k = 0.0, 0.0, 0.0
            vocab_words, vocab_ids = [], np.zeros(0, np.int64)
            if self.lexicon is not None:  # every lexicon word, scored alike
                vocab_words = list(self.lexicon)
                vocab_ids = np.full(len(vocab_words), -2, np.int64)
        else:
            self._alpha_k, self._beta_k, self._unk_k = self.alpha, self.beta, self.unk_penalty
            vocab_words, vocab_ids = lm.vocab[3:], np.arange(3, lm.vocab_size, dtype=np.int64)
        # hotword phrases: labels (spaces between words) and per-label gains
        hot_rows, hot_gains = [], []
        for phrase, w in self.hotwords:
            words = phrase.split()
            if len(words) > 1 and self._space < 0:
                raise HotwordError(f"hotwords: {phrase!r}: the model has no space token for multi-word phrases")
            if self.lexicon is not None:
                seqs, lengths, owner = self._pronounce(words, variants=False)
                if len(owner) < len(words):
                    bad = words[min(set(range(len(words))) - set(owner.tolist()))]
                    raise HotwordError(f"hotwords: {phrase!r}: no pronunciation for {bad!r}")
            else:
                seqs, lengths, ok = self._spell(words)
                if not ok.all():
                    bad = words[int(np.flatnonzero(~ok)[0])]
                    missing = sorted({c for c in bad if c not in self._pieces}) or [bad]
                    raise HotwordError(f"hotwords: {phrase!r}: cannot be spelled with the model's tokens "
                                       f"(no token for {', '.join(repr(c) for c in missing)})")
            row, gain = [], []
            # the k-th of the phrase's n characters earns w * k / (1 + ... + n): a short partial match (a common
            # first letter) earns little, so it displaces few other hypotheses before it is taken back
            n = int(lengths.sum())
            ramp = np.arange(1, n + 1, dtype=np.float64) * (w / (n * (n + 1) / 2))
            j = 0
            for k in range(len(words)):
                if k:
                    row.append(self._space)
                    gain.append(0.0)
                row.extend(seqs[k, :lengths[k]].tolist())
                gain.extend(ramp[j:j + lengths[k]].tolist())
                j += int(lengths[k])
            hot_rows.append(row)
            hot_gains.append(gain)
        # vocabulary trie: LM words, plus the hotwords' words the LM lacks (id -2)
        extra = sorted({w for p, _ in self.hotwords for w in p.split()} - set(vocab_words))
        if lm is not None:
            extra = [w for w in extra if lm.word_id(w) == 0]
        words = list(vocab_words) + extra
        ids = np.concatenate([vocab_ids, np.full(len(extra), -2, np.int64)])
        if self.lexicon is not None:
            seqs, lengths, owner = self._pronounce(words)
            ids = ids[owner]
        else:
            seqs, lengths, ok = self._spell(words)
            seqs, lengths, ids = seqs[ok], lengths[ok], ids[ok]
        keys, path, depth_start = _build_trie(seqs, lengths, V)
        n_nodes = len(keys) + 1
        end = path[np.arange(len(ids)), lengths - 1] if len(ids) else np.zeros(0, np.int64)
        trie_word = np.full(n_nodes, -1, np.int32)
        if self.lexicon is not None and len(ids):
            # homophones end at one node: it keeps the word with the best unigram probability (hotword words the
            # LM lacks rank first: they are what the user asked for); all of them are kept for the final choice
            pref = np.where(ids >= 0, np.asarray(self._logp1, np.float64)[np.maximum(ids, 0)], np.inf)
            order = np.lexsort((-pref, end))  # by node, best first
            e = end[order]
            first_of_node = np.concatenate([[True], e[1:] != e[:-1]])
            trie_word[e[first_of_node]] = ids[order][first_of_node]
            homophones = {}
            for i in order.tolist():
                key = tuple(seqs[i, :lengths[i]].tolist())
                lst = homophones.setdefault(key, [])
                w = words[owner[i]]
                if w not in lst:
                    lst.append(w)
            self._homophones = homophones
        else:
            trie_word[end] = ids
        if self.lookahead and lm is not None:
            best = np.full(n_nodes, -np.inf, np.float64)
            np.maximum.at(best, end, np.asarray(self._logp1, np.float64)[np.maximum(ids, 0)])
            parents = np.concatenate([[0], keys // V])
            for d in range(len(depth_start) - 2, 0, -1):
                nodes = np.arange(depth_start[d], depth_start[d + 1])
                np.maximum.at(best, parents[nodes], best[nodes])
            best[0] = 0.0
            trie_score = np.minimum(best, 0.0).astype(np.float32)
        else:
            trie_score = np.zeros(n_nodes, np.float32)
        self._trie_min = float(trie_score.min(initial=0.0))
        self._oov_score = self._unk_k + self._alpha_k * math.log(10) * self._trie_min
        if self.lexicon is not None:  # units that spell no vocabulary word cannot be written down
            self._unk_k = self._oov_score = -math.inf
        self._trie_keys, self._trie_word, self._trie_score = (_readonly(keys, np.int64), _readonly(trie_word, np.int32),
                                                              _readonly(trie_score, np.float32))
        self._trie_first = _readonly(_offsets(keys, V, n_nodes), np.int64)
        # hotword trie
        if hot_rows:
            maxlen = max(len(r) for r in hot_rows)
            hs = np.full((len(hot_rows), maxlen), -1, np.int64)
            hg = np.zeros((len(hot_rows), maxlen), np.float64)
            for i, (r, g) in enumerate(zip(hot_rows, hot_gains)):
                hs[i, :len(r)], hg[i, :len(g)] = r, g
            hl = np.array([len(r) for r in hot_rows], np.int64)
            hkeys, hpath, _ = _build_trie(hs, hl, V)
            gain = np.zeros(len(hkeys) + 1, np.float64)
            valid = hpath >= 0
            np.maximum.at(gain, hpath[valid], hg[valid])
            hot_end = np.zeros(len(hkeys) + 1, np.bool_)
            hot_end[hpath[np.arange(len(hl)), hl - 1]] = True
        else:
            hkeys, gain, hot_end = np.zeros(0, np.int64), np.zeros(1, np.float64), np.zeros(1, np.bool_)
        self._hot_keys, self._hot_gain, self._hot_end = (_readonly(hkeys, np.int64), _readonly(gain, np.float64),
                                                         _readonly(hot_end, np.bool_))
        self._hot_first = _readonly(_offsets(hkeys, V, len(gain)), np.int64)
        self._boundary = _readonly(self._boundary, np.bool_)

    def with_params(self, alpha=None, beta=None, unk_penalty=None, beam_width=None):
        """A decoder that shares this one's LM and tries, with other weights (cheap: for grid searches).

        Examples
        --------
        >>> from speechlstm.lm import build_lm
        >>> d = Decoder(["_", " ", "a"], lm=build_lm([["a"]], order=2))
        >>> e = d.with_params(alpha=0.1, beam_width=4)
        >>> (e.alpha, e.beta, e.beam_width), (d.alpha, d.beam_width)
        ((0.1, 0.0, 4), (0.5, 8))
        """
        import copy

        new = copy.copy(self)
        if alpha is not None:
            new.alpha = self._number(alpha, "alpha")
            if new.alpha < 0:
                raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if beta is not None:
            new.beta = self._number(beta, "beta")
        if unk_penalty is not None:
            new.unk_penalty = self._number(unk_penalty, "unk_penalty")
            if new.unk_penalty > 0:
                raise ValueError(f"unk_penalty must be <= 0, got {unk_penalty!r}")
        if beam_width is not None:
            if isinstance(beam_width, bool) or int(beam_width) != beam_width or beam_width < 1:
                raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
            new.beam_width = int(beam_width)
        if not self._plain and self.lm is not None:
            new._alpha_k, new._beta_k, new._unk_k = new.alpha, new.beta, new.unk_penalty
            new._oov_score = new._unk_k + new._alpha_k * math.log(10) * self._trie_min
            if self.lexicon is not None:
                new._unk_k = new._oov_score = -math.inf
        return new

    def _lexicon_words(self, token_ids) -> list:
        """The words of a lexicon-decoded label sequence: homophones chosen by the LM over the whole sentence."""
        groups, cur = [], []
        for t in np.asarray(token_ids).tolist():
            if self._boundary[t]:
                if cur:
                    groups.append(tuple(cur))
                cur = []
            else:
                cur.append(t)
        if cur:
            groups.append(tuple(cur))
        cands = [self._homophones.get(g) or ["<unk>"] for g in groups]
        lm = self.lm
        if lm is None or all(len(c) == 1 for c in cands):
            return [c[0] for c in cands]
        keep = lm.order - 1
        states = {(1,)[-keep:] if keep else (): (0.0, [])}  # LM context (last order-1 ids) -> (log10 p, words)
        for c in cands:
            nxt = {}
            for ctx, (score, ws) in states.items():
                for w in c:
                    wid = lm.word_id(w)
                    sc = score + lm.log_prob(list(ctx), wid)
                    key = (ctx + (wid,))[-keep:] if keep else ()
                    if key not in nxt or sc > nxt[key][0]:
                        nxt[key] = (sc, ws + [w])
            states = dict(sorted(nxt.items(), key=lambda kv: -kv[1][0])[:64])
        best = max(states.items(), key=lambda kv: kv[1][0] + lm.log_prob(list(kv[0]), 2))
        return best[1][1]

    def decode(self, log_probs, nbest: int = 1) -> list:
        """Decode one utterance.

        Parameters
        ----------
        log_probs : array_like, shape (T, V)
            Per-frame log-softmax outputs, ``V == len(tokens)``.
        nbest : int, optional
            Number of hypotheses to return (at most ``beam_width``; distinct texts).

        Returns
        -------
        list of Hypothesis
            Best first; ``text`` filled, ``score`` the fused score, ``acoustic_score`` the CTC prefix
            log-probability. Empty only if every alignment has probability 0.
        """
        lp, blank = _check_log_probs(log_probs, self.blank)
        if lp.shape[1] != len(self.tokens):
            raise ValueError(f"log_probs has {lp.shape[1]} labels but the decoder has {len(self.tokens)} tokens")
        if isinstance(nbest, bool) or int(nbest) != nbest or nbest < 1:
            raise ValueError(f"nbest must be a positive integer, got {nbest!r}")
        if self._plain:
            if self.beam_width == 1:
                hyps = [greedy_decode(lp, blank)]
            else:
                hyps = beam_search(lp, beam_width=self.beam_width, blank=blank, prune_threshold=self.prune_threshold,
                                   token_top_k=self.token_top_k or None)
            for h in hyps:
                h.acoustic_score = h.score
        else:
            from .kernels import ctc_lm

            scores, acoustic, offsets, tokens, frames, token_scores = ctc_lm.lm_beam_search_kernel(
                lp, blank, self.beam_width, self.prune_threshold, self.token_top_k, self._boundary, self._alpha_k,
                self._beta_k, self._unk_k, self._oov_score, self._lm_vocab, self._lm_order, self._logp1,
                self._bow1, self._keys, self._firsts, self._logps, self._bows, self._trie_keys, self._trie_first,
                self._trie_word, self._trie_score, self._hot_keys, self._hot_first, self._hot_gain, self._hot_end)
            hyps = []
            for i in range(scores.shape[0]):
                a, b = offsets[i], offsets[i + 1]
                hyps.append(Hypothesis(tokens[a:b], frames[a:b], token_scores[a:b], float(scores[i]),
                                       acoustic_score=float(acoustic[i])))
        out, seen = [], set()
        for h in hyps:
            if self.lexicon is not None and h.score > -math.inf:
                h.words = self._lexicon_words(h.token_ids)
                h.text = " ".join(h.words)
            else:
                h.text = tokens_to_text(h.token_ids, self.tokens)
            if h.text not in seen and h.score > -math.inf:
                seen.add(h.text)
                out.append(h)
                if len(out) == nbest:
                    break
        return out
