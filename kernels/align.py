"""CTC alignment kernels: Viterbi forced alignment of one label sequence, and the forward probability of every
label sequence of a prefix trie (grammar scoring).

Arithmetic only; argument checking and result objects live in :mod:`speechlstm.transcribe` and
:mod:`speechlstm.grammar`. Both kernels work on ``(T, V)`` float32 log-probabilities and accumulate in float64.

CTC topology: a label sequence ``l1 .. lL`` is matched by the state sequence ``blank l1 blank l2 ... lL blank``;
every frame sits in one state, a state may repeat, the next state follows, and a blank between two labels may be
skipped unless the two labels are equal.
"""

import numpy as np
from numba import njit

from .ctc import _logaddexp as _lae  # one log-sum-exp for all CTC kernels

_NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def viterbi_align_kernel(log_probs, labels, blank):
    """Most likely CTC alignment (best path) of ``labels`` to ``log_probs``.

    Parameters
    ----------
    log_probs : ndarray, float32, shape (T, V)
    labels : ndarray, int32, shape (L,)
        Labels, none equal to ``blank``.
    blank : int

    Returns
    -------
    first, last : ndarray, int32, shape (L,)
        First and last frame the best path spends in each label (``-1`` when there is no alignment).
    peak : ndarray, float32, shape (L,)
        Largest log-prob of the label over its frames on the best path.
    score : float
        Log-prob of the best path (``-inf`` when ``T`` is too short for the labels).

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[.8, .1, .1], [.1, .8, .1], [.1, .7, .2], [.7, .2, .1], [.1, .1, .8]], np.float32)
    >>> first, last, peak, score = viterbi_align_kernel(np.log(p), np.array([1, 2], np.int32), 0)
    >>> first.tolist(), last.tolist(), [round(float(v), 2) for v in np.exp(peak)], round(float(np.exp(score)), 4)
    ([1, 4], [2, 4], [0.8, 0.8], 0.2509)
    """
    T = log_probs.shape[0]
    L = labels.shape[0]
    S = 2 * L + 1
    first = np.full(L, -1, np.int32)
    last = np.full(L, -1, np.int32)
    peak = np.full(L, _NEG_INF, np.float32)
    if T == 0:
        if L == 0:
            return first, last, peak, 0.0
        return first, last, peak, _NEG_INF
    prev = np.full(S, _NEG_INF)
    cur = np.empty(S)
    bp = np.zeros((T, S), np.int8)  # 0: stay, 1: from s - 1, 2: from s - 2
    prev[0] = log_probs[0, blank]
    if L > 0:
        prev[1] = log_probs[0, labels[0]]
    for t in range(1, T):
        for s in range(S):
            best = prev[s]
            arg = 0
            if s >= 1 and prev[s - 1] > best:
                best = prev[s - 1]
                arg = 1
            if s >= 2 and s % 2 == 1 and labels[s // 2] != labels[s // 2 - 1] and prev[s - 2] > best:
                best = prev[s - 2]
                arg = 2
            e = log_probs[t, blank] if s % 2 == 0 else log_probs[t, labels[s // 2]]
            cur[s] = best + e
            bp[t, s] = arg
        for s in range(S):
            prev[s] = cur[s]
    s = S - 1
    if L > 0 and prev[S - 2] > prev[S - 1]:
        s = S - 2
    score = prev[s]
    if score == _NEG_INF:
        return first, last, peak, score
    for t in range(T - 1, -1, -1):
        if s % 2 == 1:
            k = s // 2
            if last[k] < 0:
                last[k] = t
            first[k] = t
            v = log_probs[t, labels[k]]
            if v > peak[k]:
                peak[k] = v
        s -= bp[t, s]
    return first, last, peak, score


@njit(cache=True, nogil=True)
def trie_forward_kernel(log_probs, parent, label, blank):
    """CTC forward log-probability of the label sequence of every node of a prefix trie.

    Node 0 is the root (the empty sequence); node ``n > 0`` extends ``parent[n]`` (``< n``) by ``label[n]``.
    Sequences sharing a prefix share its forward variables, so a grammar costs ``T`` times its number of trie
    nodes, not times the total length of its phrases.

    Parameters
    ----------
    log_probs : ndarray, float32, shape (T, V), ``T >= 1``
    parent : ndarray, int32, shape (N,)
    label : ndarray, int32, shape (N,)
        ``label[0]`` is unused.
    blank : int

    Returns
    -------
    ndarray, float64, shape (N,)
        ``log p(sequence of node n | log_probs)``, summed over all its alignments (``-inf`` if it cannot fit).

    Examples
    --------
    >>> import numpy as np
    >>> lp = np.log(np.full((2, 2), 0.5, np.float32))          # two frames, {blank, a} equally likely
    >>> out = trie_forward_kernel(lp, np.array([0, 0, 1], np.int32), np.array([0, 1, 1], np.int32), 0)
    >>> np.round(np.exp(out), 4).tolist()                       # "", "a" (3 of 4 paths), "aa" (cannot fit)
    [0.25, 0.75, 0.0]
    """
    T = log_probs.shape[0]
    N = parent.shape[0]
    ab = np.full(N, _NEG_INF)  # alignments of node n's sequence ending in blank
    al = np.full(N, _NEG_INF)  # ... ending in its last label
    nb = np.empty(N)
    nl = np.empty(N)
    ab[0] = log_probs[0, blank]
    for n in range(1, N):
        if parent[n] == 0:
            al[n] = log_probs[0, label[n]]
    for t in range(1, T):
        eb = log_probs[t, blank]
        nb[0] = ab[0] + eb
        nl[0] = _NEG_INF
        for n in range(1, N):
            p = parent[n]
            nb[n] = _lae(ab[n], al[n]) + eb
            x = _lae(al[n], ab[p])
            if p != 0 and label[p] != label[n]:
                x = _lae(x, al[p])
            nl[n] = x + log_probs[t, label[n]]
        for n in range(N):
            ab[n] = nb[n]
            al[n] = nl[n]
    out = np.empty(N)
    for n in range(N):
        out[n] = _lae(ab[n], al[n])
    return out
