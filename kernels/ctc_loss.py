"""CTC loss and its gradient with respect to the logits (Numba CPU kernels).

Method
------
The utterances of a batch are spread over the Numba threads (``prange`` over workers, each with its own
scratch memory, largest utterances first onto the least loaded worker).  Per utterance:

1. ``log_softmax`` of the logits frame by frame (float64); the softmax is written to the gradient rows and
   the emission log-probabilities of blank (``EB[t]``) and of every label (``EL[t, k]``) are gathered.
2. Forward variables in **log space** over the extended label sequence ``blank l1 blank l2 ... lL blank``
   (``2L + 1`` states), kept as two tables: ``AB[t, i]`` (the blank before label ``i``, or the final
   blank) and ``AL[t, k]`` (label ``k - 1``; slot 0 is a ``-inf`` sentinel).  A label state may be entered
   from the previous label state (skipping the blank) only when the two labels differ: repeated labels
   need a blank between them (additive mask ``SK``: 0 or ``-inf``).
3. Backward variables (excluding the emission of their own frame), one row at a time from the last frame
   down; at each frame the state occupancies ``exp(alpha + beta - log Z)`` are summed per output class and
   the gradient row becomes ``softmax - occupancy``: the exact derivative of ``-log Z`` through the
   log-softmax, since the occupancies of a frame sum to one.

All recursions accumulate in float64, whatever the input dtype.  Log-sum-exp uses the largest term as
pivot, so only ``exp`` of non-positive numbers and ``log`` of numbers in ``[1, 3]`` are needed; both are
branch-free polynomial kernels (``exp``: Cody-Waite reduction and a degree-12 Taylor polynomial; ``log``:
fdlibm's kernel on a reduced argument), accurate to a few ulp, which lets LLVM vectorize the loops over
states (8 doubles per AVX-512 register).  Rows are padded with ``-inf`` states to a multiple of 8 so those
loops have no scalar remainder, and ``-inf`` (unreachable states, forbidden skips) is exact throughout.

An utterance whose labels cannot fit its frames (``T_b < L_b + number of adjacent repeated labels``,
see :func:`ctc_min_frames`) gets loss ``+inf`` and an all-zero gradient; the other utterances of the
batch are unaffected.  Count them with ``np.isinf(losses)``.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .lstm import launch_parallel

__all__ = ["ctc_loss_and_grad", "ctc_loss", "ctc_min_frames"]

# fused multiply-add only (no reassociation): results do not depend on the vector width
_FM = {"contract"}
_NEG_INF = -np.inf


# ---------------------------------------------------------------- scalar math (vectorizable)
@intrinsic
def _bits_to_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[0], sig.args[0], types.int64)
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(x), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_LO = -708.0
_SQRT2 = 1.4142135623730951
# 1/k! for the Taylor polynomial of exp on |r| <= ln(2)/2 (truncation error < 2e-16)
_E12 = 1.0 / 479001600.0
_E11 = 1.0 / 39916800.0
_E10 = 1.0 / 3628800.0
_E9 = 1.0 / 362880.0
_E8 = 1.0 / 40320.0
_E7 = 1.0 / 5040.0
_E6 = 1.0 / 720.0
_E5 = 1.0 / 120.0
_E4 = 1.0 / 24.0
_E3 = 1.0 / 6.0
_E2 = 0.5
# fdlibm e_log.c
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _exp(x):
    """``exp(x)`` in float64 for ``x <= 709``; 0 for ``x < -708`` (and ``-inf``); branch-free, a few ulp."""
    xc = x if x > _EXP_LO else _EXP_LO  # also maps NaN to a finite number (no poison in the int conversion)
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _E12
    p = p * r + _E11
    p = p * r + _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + 1.0
    p = p * r + 1.0
    y = p * _bits_to_f64((np.int64(n) + 1023) << 52)
    return y if x >= _EXP_LO else 0.0


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _log13(x):
    """``log(x)`` in float64 for ``1 <= x < 4`` (fdlibm's kernel, a few ulp); branch-free."""
    big = x > _SQRT2
    m = x * 0.5 if big else x
    k = 1.0 if big else 0.0
    big = m > _SQRT2
    m = m * 0.5 if big else m
    k = k + 1.0 if big else k
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + t1 + t2) + k * _LN2_LO)) - f)


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def _lse2(a, b):
    """``log(exp(a) + exp(b))``, exact ``-inf`` handling."""
    hi = a if a > b else b
    lo = b if a > b else a
    r = hi + _log13(1.0 + _exp(lo - hi))
    return r if hi > _NEG_INF else _NEG_INF


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def _lse3(a, b, c):
    """``log(exp(a) + exp(b) + exp(c))``, exact ``-inf`` handling."""
    ab_hi = a if a > b else b
    ab_lo = b if a > b else a
    hi = ab_hi if ab_hi > c else c
    mid0 = c if ab_hi > c else ab_hi  # min(max(a, b), c)
    mid = ab_lo if ab_lo > mid0 else mid0
    lo = mid0 if ab_lo > mid0 else ab_lo
    r = hi + _log13(1.0 + _exp(mid - hi) + _exp(lo - hi))
    return r if hi > _NEG_INF else _NEG_INF


# ---------------------------------------------------------------- per-utterance kernels
# Row layout (length W = NB + 2, NB = L + 1 rounded up to a multiple of 8, so the vector loops have no
# scalar remainder): blank state i (extended position 2i) at index i; label j (position 2j + 1) at index
# k = j + 1, index 0 being a permanent -inf sentinel.  Every slot past the real states holds -inf and the
# emissions of padded label slots are -inf, so padded slots stay -inf and the recursions need no edge cases.
_LANES = 8


@njit(cache=True, nogil=True, error_model="numpy")
def _prepare_labels(labels_b, L, W, lab, SK):
    """Label of each slot (``lab[k]``, k = 1..L) and the additive skip mask ``SK[k]`` (0 where the label of
    slot ``k`` may follow the label of slot ``k - 1`` without a blank in between, else -inf).

    Returns the number of adjacent repeated labels.
    """
    rep = 0
    for k in range(W):
        SK[k] = _NEG_INF
        lab[k] = 0
    for k in range(1, L + 1):
        lab[k] = labels_b[k - 1]
        if k > 1:
            if lab[k] == lab[k - 1]:
                rep += 1
            else:
                SK[k] = 0.0
    return rep


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _alpha_step(pa, pl, EB, EL, t, SK, NB, ca, cl):
    """Forward recursion, frame ``t - 1`` (``pa``, ``pl``) -> frame ``t`` (``ca``, ``cl``)."""
    eb = EB[t]
    for i in range(NB):
        ca[i] = _lse2(pa[i], pl[i]) + eb
    for k in range(1, NB + 1):
        cl[k] = _lse3(pl[k], pa[k - 1], pl[k - 1] + SK[k]) + EL[t, k]


@njit(cache=True, nogil=True, error_model="numpy")
def _fill(a, n, value):
    for k in range(n):
        a[k] = value


@njit(cache=True, nogil=True, error_model="numpy")
def _store_row(A, t, row, n):
    for k in range(n):
        A[t, k] = row[k]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _beta_step(nb, nl, EB, EL, t1, SK, NB, cb, cl):
    """Backward recursion, frame ``t1 = t + 1`` (``nb``, ``nl``) -> frame ``t`` (``cb``, ``cl``).

    Beta excludes the emission of its own frame, so the emissions of frame ``t1`` enter here.
    """
    eb = EB[t1]
    for i in range(NB):
        cb[i] = _lse2(nb[i] + eb, nl[i + 1] + EL[t1, i + 1])
    for k in range(1, NB + 1):
        cl[k] = _lse3(nl[k] + EL[t1, k], nb[k] + eb, nl[k + 1] + EL[t1, k + 1] + SK[k + 1])


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _occupancy(AB, AL, t, bb, bl, logz, L, NB, lab, blank, tb, tl, occ):
    """Per-class occupancy of frame ``t``: ``occ[c] = sum over states s of class c of exp(alpha + beta - log Z)``."""
    for i in range(NB):
        tb[i] = _exp(AB[t, i] + bb[i] - logz)
    for k in range(1, NB + 1):
        tl[k] = _exp(AL[t, k] + bl[k] - logz)
    for v in range(occ.shape[0]):
        occ[v] = 0.0
    s = 0.0
    for i in range(NB):
        s += tb[i]
    occ[blank] = s
    for k in range(1, L + 1):
        occ[lab[k]] += tl[k]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _log_softmax_gather(x, Tb, L, W, lab, blank, tv, EB, EL, g):
    """Per frame: softmax into ``g[t]``, ``EB[t] = log p(blank)``, ``EL[t, k] = log p(label of slot k)``
    (-inf in the sentinel and padding slots)."""
    V = x.shape[1]
    for t in range(Tb):
        mx = np.float64(x[t, 0])
        for v in range(1, V):
            mx = max(mx, np.float64(x[t, v]))
        for v in range(V):
            tv[v] = _exp(np.float64(x[t, v]) - mx)
        s = 0.0
        for v in range(V):
            s += tv[v]
        lse = mx + np.log(s)
        inv = 1.0 / s
        for v in range(V):
            g[t, v] = tv[v] * inv
        EB[t] = np.float64(x[t, blank]) - lse
        for k in range(W):
            EL[t, k] = _NEG_INF
        for k in range(1, L + 1):
            EL[t, k] = np.float64(x[t, lab[k]]) - lse


@njit(cache=True, nogil=True, error_model="numpy")
def _gather_log_probs(x, Tb, L, W, lab, blank, EB, EL):
    """``EB[t] = x[t, blank]``, ``EL[t, k] = x[t, lab[k]]`` for inputs that are log-probabilities already."""
    for t in range(Tb):
        EB[t] = np.float64(x[t, blank])
        for k in range(W):
            EL[t, k] = _NEG_INF
        for k in range(1, L + 1):
            EL[t, k] = np.float64(x[t, lab[k]])


@njit(cache=True, nogil=True, error_model="numpy")
def _worker(w, owner, x, lengths, labels, label_lengths, blank, with_grad, losses, grad):
    """All utterances ``b`` with ``owner[b] == w``, one after the other, sharing one set of scratch arrays."""
    B, T, V = x.shape
    Lmax = 0
    for b in range(B):
        Lmax = max(Lmax, label_lengths[b])
    Wmax = (Lmax + 1 + _LANES - 1) // _LANES * _LANES + 2
    lab = np.empty(Wmax, np.int64)
    SK = np.empty(Wmax, np.float64)
    EB = np.empty(T, np.float64)
    EL = np.empty((T, Wmax), np.float64)
    AB = np.empty((T, Wmax), np.float64)
    AL = np.empty((T, Wmax), np.float64)
    r0 = np.empty(Wmax, np.float64)
    r1 = np.empty(Wmax, np.float64)
    r2 = np.empty(Wmax, np.float64)
    r3 = np.empty(Wmax, np.float64)
    tb = np.empty(Wmax, np.float64)
    tl = np.empty(Wmax, np.float64)
    tv = np.empty(V, np.float64)
    occ = np.empty(V, np.float64)
    for b in range(B):
        if owner[b] != w:
            continue
        Tb = lengths[b]
        L = label_lengths[b]
        NB = (L + 1 + _LANES - 1) // _LANES * _LANES
        W = NB + 2
        rep = _prepare_labels(labels[b], L, W, lab, SK)
        g = grad[b]
        if Tb < L + rep or Tb == 0:  # the labels cannot fit the frames / empty input and labels
            losses[b] = np.inf if Tb < L + rep else 0.0
            if with_grad:
                g[:, :] = 0.0
            continue
        if with_grad:
            _log_softmax_gather(x[b], Tb, L, W, lab, blank, tv, EB, EL, g)
        else:
            _gather_log_probs(x[b], Tb, L, W, lab, blank, EB, EL)
        # forward: rows of alpha computed in r0/r1 (blank) and r2/r3 (label slots), copied to AB/AL (reading and
        # writing rows of one table in a loop makes LLVM's hoisted overlap check fail: scalar code)
        pa, ca, pl, cl = r0, r1, r2, r3
        _fill(pa, W, _NEG_INF)
        _fill(ca, W, _NEG_INF)
        _fill(pl, W, _NEG_INF)
        _fill(cl, W, _NEG_INF)
        ca[0] = EB[0]
        cl[1] = EL[0, 1]  # -inf when L == 0
        for t in range(Tb):
            if t > 0:
                pa, ca = ca, pa
                pl, cl = cl, pl
                _alpha_step(pa, pl, EB, EL, t, SK, NB, ca, cl)
            _store_row(AB, t, ca, W)
            _store_row(AL, t, cl, W)
        logz = _lse2(ca[L], cl[L])  # cl[0] is the -inf sentinel when L == 0
        if not logz > _NEG_INF:  # -inf (zero probability) or NaN (non-finite inputs)
            losses[b] = np.inf if logz == _NEG_INF else logz
            if with_grad:
                g[:, :] = 0.0 if logz == _NEG_INF else np.nan
            continue
        losses[b] = -logz
        if not with_grad:
            continue
        # backward, from the last frame; g holds the softmax and gets the occupancies subtracted row by row
        cb, nb, cl, nl = r0, r1, r2, r3
        _fill(cb, W, _NEG_INF)
        _fill(nb, W, _NEG_INF)
        _fill(cl, W, _NEG_INF)
        _fill(nl, W, _NEG_INF)
        cb[L] = 0.0
        if L > 0:
            cl[L] = 0.0
        for t in range(Tb - 1, -1, -1):
            if t < Tb - 1:
                nb, cb = cb, nb
                nl, cl = cl, nl
                _beta_step(nb, nl, EB, EL, t + 1, SK, NB, cb, cl)
            _occupancy(AB, AL, t, cb, cl, logz, L, NB, lab, blank, tb, tl, occ)
            for v in range(V):
                g[t, v] = g[t, v] - occ[v]
        g[Tb:, :] = 0.0


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _loss_grad_kernel(x, lengths, labels, label_lengths, blank, with_grad, owner, nw, losses, grad):
    """Loss (and, when ``with_grad``, gradient w.r.t. logits) of every utterance, in place.

    ``with_grad`` false: ``x`` holds log-probabilities and only the forward pass runs.  Utterance ``b`` is
    processed by worker ``owner[b]`` of ``nw`` (one ``prange`` task each, with its own scratch memory).
    """
    for w in prange(nw):
        _worker(np.int64(w), owner, x, lengths, labels, label_lengths, blank, with_grad, losses, grad)


# ---------------------------------------------------------------- Python API
def _assign(lengths, label_lengths, V):
    """Spread the utterances over the threads, largest first onto the least loaded: ``(owner, n_workers)``."""
    B = lengths.shape[0]
    nw = max(1, min(numba.get_num_threads(), B))
    cost = lengths * (2.0 * label_lengths + 1.0 + 0.25 * V)
    owner = np.zeros(B, np.int64)
    load = np.zeros(nw)
    for b in np.argsort(-cost, kind="stable"):
        w = int(np.argmin(load))
        owner[b] = w
        load[w] += cost[b]
    return owner, nw


def _run(x, xl, lab, ll, blank, with_grad, grad):
    """Losses (float64 accumulation, returned in the dtype of ``x``); fills ``grad`` when ``with_grad``.

    float32 runs on all Numba threads (``prange`` over utterances); float64, meant for gradient checks,
    runs on the calling thread (one compiled specialization fewer of the parallel kernel).
    """
    B = x.shape[0]
    losses = np.empty(B, np.float64)
    if B == 0:
        return losses.astype(x.dtype)
    if x.dtype == np.float32:
        owner, nw = _assign(xl, ll, x.shape[2])
        launch_parallel(_loss_grad_kernel, x, xl, lab, ll, blank, with_grad, owner, nw, losses, grad)
    else:
        _worker(0, np.zeros(B, np.int64), x, xl, lab, ll, blank, with_grad, losses, grad)
    return losses.astype(x.dtype)


def _check_inputs(x, x_lengths, labels, label_lengths, blank, name):
    x = np.asarray(x)
    if x.dtype != np.float64:
        x = x.astype(np.float32, copy=False)
    x = np.ascontiguousarray(x)
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (B, T, V), got {x.shape}")
    B, T, V = x.shape
    blank = int(blank)
    if not 0 <= blank < V:
        raise ValueError(f"blank must be in [0, {V}), got {blank}")
    x_lengths = np.asarray(x_lengths)
    label_lengths = np.asarray(label_lengths)
    labels = np.asarray(labels)
    if labels.ndim == 1 and B == 1:
        labels = labels[None, :]
    for a, what in ((x_lengths, "lengths"), (label_lengths, "label_lengths"), (labels, "labels")):
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{what} must be integers, got {a.dtype}")
    if x_lengths.shape != (B,) or label_lengths.shape != (B,):
        raise ValueError(f"lengths and label_lengths must have shape ({B},), got {x_lengths.shape} and "
                         f"{label_lengths.shape}")
    if labels.ndim != 2 or labels.shape[0] != B:
        raise ValueError(f"labels must have shape ({B}, Lmax), got {labels.shape}")
    if B and (x_lengths.min() < 0 or x_lengths.max() > T):
        raise ValueError(f"lengths must be in [0, {T}]")
    if B and (label_lengths.min() < 0 or label_lengths.max() > labels.shape[1]):
        raise ValueError(f"label_lengths must be in [0, {labels.shape[1]}]")
    x_lengths = x_lengths.astype(np.int64)
    label_lengths = label_lengths.astype(np.int64)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    valid = np.arange(labels.shape[1])[None, :] < label_lengths[:, None]
    used = labels[valid]
    if used.size and (used.min() < 0 or used.max() >= V or np.any(used == blank)):
        raise ValueError(f"labels must be in [0, {V}) and differ from blank ({blank})")
    return x, x_lengths, labels, label_lengths, blank


def ctc_loss_and_grad(logits, logit_lengths, labels, label_lengths, blank=0, reduction="sum"):
    """CTC negative log-likelihood of each utterance and its gradient w.r.t. the unnormalized logits.

    The log-softmax over the last axis is part of the loss, so ``grad[b, t] = softmax(logits[b, t]) -
    occupancy[b, t]`` where ``occupancy[b, t, k]`` is the posterior probability that frame ``t`` emits
    class ``k`` given the labels.

    Parameters
    ----------
    logits : numpy.ndarray, shape (B, T, V)
        Network outputs before the softmax, float32: utterances run in parallel on the Numba threads.
        float64 is accepted too, for gradient checks: it runs on the calling thread and the outputs are
        float64.  Values at padded frames are ignored.
    logit_lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance, ``0 <= logit_lengths[b] <= T``.
    labels : numpy.ndarray, shape (B, Lmax), int
        Label sequences, padded after ``label_lengths[b]`` with anything; labels are in ``[0, V)`` and
        never ``blank``.
    label_lengths : numpy.ndarray, shape (B,), int
        ``0 <= label_lengths[b] <= Lmax``.
    blank : int, optional
        Index of the blank class.
    reduction : {"sum"}, optional
        The gradient is that of ``sum(losses)``; scale it yourself for a mean.

    Returns
    -------
    losses : numpy.ndarray, shape (B,)
        ``-log p(labels[b] | logits[b])`` (float64 accumulation, returned in the dtype of ``logits``);
        ``+inf`` for an utterance whose labels cannot fit its frames (``logit_lengths[b] <
        ctc_min_frames(labels, label_lengths)[b]``).
    grad : numpy.ndarray, shape (B, T, V)
        ``d losses[b] / d logits[b]``; zero at padded frames and for utterances with an infinite loss.
        Non-finite logits in an utterance make its loss and gradient NaN.

    Notes
    -----
    The alpha/beta recursions run in log space with float64 accumulation, so peaky networks whose
    probability of the labels is far below float64's range (``exp(-5000)``) still get exact losses; the
    float32 gradient agrees with a float64 computation to about 1e-7.

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.zeros((2, 3, 3), np.float32)          # uniform over {blank, a, b}
    >>> labels = np.array([[1, 2], [1, 1]], np.int32)
    >>> losses, grad = ctc_loss_and_grad(logits, np.array([3, 2]), labels, np.array([2, 2]))
    >>> round(float(losses[0]), 4), float(losses[1])  # 5 of 27 paths give "ab"; "aa" needs 3 frames
    (1.6864, inf)
    >>> grad.shape, bool(np.all(grad[1] == 0)), bool(np.allclose(grad[0].sum(-1), 0, atol=1e-6))
    ((2, 3, 3), True, True)
    """
    if reduction != "sum":
        raise ValueError(f"only reduction='sum' is supported, got {reduction!r}")
    x, xl, lab, ll, blank = _check_inputs(logits, logit_lengths, labels, label_lengths, blank, "logits")
    B, T, V = x.shape
    grad = np.empty((B, T, V), x.dtype)
    return _run(x, xl, lab, ll, blank, True, grad), grad


def ctc_loss(log_probs, lengths, labels, label_lengths, blank=0):
    """CTC negative log-likelihood of each utterance from log-probabilities (no gradient).

    Parameters
    ----------
    log_probs : numpy.ndarray, shape (B, T, V)
        Per-frame log-probabilities (e.g. the output of a log-softmax), float32 or float64.
    lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance.
    labels : numpy.ndarray, shape (B, Lmax), int
        Padded label sequences (see :func:`ctc_loss_and_grad`).
    label_lengths : numpy.ndarray, shape (B,), int
    blank : int, optional

    Returns
    -------
    numpy.ndarray, shape (B,)
        ``-log p(labels[b] | log_probs[b])``, float64 accumulation returned in the input dtype; ``+inf``
        where the labels cannot fit the frames.

    Examples
    --------
    >>> import numpy as np
    >>> lp = np.log(np.full((1, 2, 2), 0.5, np.float32))   # two frames, {blank, a} equally likely
    >>> loss = ctc_loss(lp, [2], [[1]], [1])                # "a": 3 of 4 paths
    >>> loss.dtype, round(float(loss[0]), 6), round(float(-np.log(3 / 4)), 6)
    (dtype('float32'), 0.287682, 0.287682)
    """
    x, xl, lab, ll, blank = _check_inputs(log_probs, lengths, labels, label_lengths, blank, "log_probs")
    return _run(x, xl, lab, ll, blank, False, np.empty((x.shape[0], 0, 0), x.dtype))


def ctc_min_frames(labels, label_lengths):
    """Fewest frames that can carry each label sequence: ``L + number of adjacent repeated labels``.

    Parameters
    ----------
    labels : numpy.ndarray, shape (B, Lmax), int
    label_lengths : numpy.ndarray, shape (B,), int

    Returns
    -------
    numpy.ndarray, shape (B,), int64
        An utterance with fewer frames has an infinite CTC loss.

    Examples
    --------
    >>> ctc_min_frames([[1, 1, 2, 2, 0], [3, 4, 4, 0, 0]], [4, 2]).tolist()
    [6, 2]
    """
    labels = np.asarray(labels)
    label_lengths = np.asarray(label_lengths, dtype=np.int64)
    if labels.ndim != 2 or label_lengths.shape != (labels.shape[0],):
        raise ValueError("labels must be (B, Lmax) and label_lengths (B,)")
    if labels.shape[1] < 2:
        return label_lengths.copy()
    pos = np.arange(1, labels.shape[1])[None, :]
    rep = (labels[:, 1:] == labels[:, :-1]) & (pos < label_lengths[:, None])
    return label_lengths + rep.sum(axis=1)
