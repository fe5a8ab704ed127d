"""CTC decoding: greedy best path and prefix beam search (Numba kernels in :mod:`speechlstm.kernels.ctc`).

``log_probs`` is always a ``(T, V)`` array of per-frame log-softmax outputs; label ``blank`` (default 0) is
the CTC blank and the other ids are tokens. Results are :class:`Hypothesis` objects holding the collapsed
label sequence with, for every token, the frame it is emitted at and its log-prob there.

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

__all__ = ["Hypothesis", "greedy_decode", "beam_search", "tokens_to_text", "decode"]


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
    if token_top_k is None:
        top_k = 0
    elif isinstance(token_top_k, bool) or int(token_top_k) != token_top_k or token_top_k < 1:
        raise ValueError(f"token_top_k must be a positive integer or None, got {token_top_k!r}")
    else:
        top_k = int(token_top_k)
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
