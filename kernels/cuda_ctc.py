"""``numba.cuda`` kernels of the output side: log-softmax, greedy CTC decoding, CTC loss and its gradient.

Arithmetic only; :mod:`speechlstm.gpu` allocates the buffers and launches.  Inputs are the time-major
logits of :mod:`speechlstm.kernels.cuda_lstm` (row ``t * B + b``).  CPU references:
:func:`speechlstm.kernels.lstm.linear_log_softmax`, :func:`speechlstm.kernels.ctc.greedy_kernel` and
:func:`speechlstm.kernels.ctc_loss.ctc_loss_and_grad`.

* :func:`log_softmax_out_kernel` -- inference: ``log_softmax`` of each valid row into a batch-major
  (B, T, V) array (zero rows at padded frames), plus the per-frame argmax and its log-probability for
  greedy decoding.  One thread per row (the output layer has a few dozen characters).
* :func:`greedy_collapse_kernel` -- greedy (best path) decoding from those argmaxes: repeats merged,
  blanks dropped, first frame of each run and its log-probability, path score (float64 sum); one thread
  per utterance.  Only the decoded tokens go back to the host.
* :func:`log_softmax_train_kernel` -- training: log-probabilities (time-major) and the softmax written into
  the gradient buffer, zero rows at padded frames.
* :func:`ctc_kernel` -- one block per utterance.  The forward variables (log space, **float64** as on the
  CPU) over the extended label sequence ``blank l1 blank ... lL blank`` (``S = 2L + 1`` states) are computed
  frame by frame, threads over states, with a block barrier per frame; rows double-buffered in shared
  memory and stored to a global scratch ``alpha`` (B, T, S).  The backward variables (excluding the
  emission of their own frame) follow from the last frame down, and at each frame the per-class
  occupancies ``exp(alpha + beta - log Z)`` are summed (labels with shared-memory atomics, the blank states
  by a block reduction) and subtracted from the softmax: ``grad = softmax - occupancy``, the derivative of
  ``-log Z`` w.r.t. the logits.  An utterance whose labels cannot fit its frames gets ``+inf`` and a zero
  gradient.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from .cuda_lstm import SIMULATOR

__all__ = ["log_softmax_out_kernel", "greedy_collapse_kernel", "log_softmax_train_kernel", "ctc_kernel",
           "CTC_THREADS", "ROW_THREADS", "ctc_smem_doubles"]

#: threads of a :func:`ctc_kernel` block (a power of two) and of the row-wise kernels
CTC_THREADS = 4 if SIMULATOR else 128
ROW_THREADS = 4 if SIMULATOR else 128

_NEG_INF = -np.inf
_ZERO32 = np.float32(0.0)


@cuda.jit(cache=True)
def log_softmax_out_kernel(logits, lengths, B, out, best, bestv):
    """``out[b, t] = log_softmax(logits[t*B + b])`` for ``t < lengths[b]`` (zeros past it); ``best[b, t]`` the
    argmax (lowest index on ties), ``bestv[b, t]`` its log-probability.  Any grid (grid-stride over rows)."""
    T = out.shape[1]
    V = out.shape[2]
    for row in range(cuda.grid(1), T * B, cuda.gridsize(1)):
        t = row // B
        b = row - t * B
        if t < lengths[b]:
            mx = logits[row, 0]
            arg = 0
            for v in range(1, V):
                x = logits[row, v]
                if x > mx:
                    mx = x
                    arg = v
            s = _ZERO32
            for v in range(V):
                s += math.exp(logits[row, v] - mx)
            lse = mx + math.log(s)
            for v in range(V):
                out[b, t, v] = logits[row, v] - lse
            best[b, t] = arg
            bestv[b, t] = out[b, t, arg]
        else:
            for v in range(V):
                out[b, t, v] = 0
            best[b, t] = -1
            bestv[b, t] = 0


@cuda.jit(cache=True)
def greedy_collapse_kernel(best, bestv, lengths, blank, tokens, frames, scores, counts, totals):
    """Best path of each utterance ``b`` (one thread each): ``tokens/frames/scores[b, :counts[b]]`` and the
    float64 path score ``totals[b]``."""
    b = cuda.grid(1)
    if b < best.shape[0]:
        n = 0
        prev = -1
        total = 0.0
        for t in range(lengths[b]):
            k = best[b, t]
            total += float64(bestv[b, t])
            if k != blank and k != prev:
                tokens[b, n] = k
                frames[b, n] = t
                scores[b, n] = bestv[b, t]
                n += 1
            prev = k
        counts[b] = n
        totals[b] = total


@cuda.jit(cache=True)
def log_softmax_train_kernel(logits, lengths, B, M, lp, sm):
    """Time-major ``lp[row] = log_softmax(logits[row])`` and ``sm[row] = softmax(logits[row])`` for valid rows;
    zero rows at padded frames.  Any grid."""
    V = logits.shape[1]
    for row in range(cuda.grid(1), M, cuda.gridsize(1)):
        t = row // B
        b = row - t * B
        if t < lengths[b]:
            mx = logits[row, 0]
            for v in range(1, V):
                x = logits[row, v]
                if x > mx:
                    mx = x
            s = _ZERO32
            for v in range(V):
                e = math.exp(logits[row, v] - mx)
                sm[row, v] = e
                s += e
            lse = mx + math.log(s)
            inv = np.float32(1.0) / s
            for v in range(V):
                lp[row, v] = logits[row, v] - lse
                sm[row, v] = sm[row, v] * inv
        else:
            for v in range(V):
                lp[row, v] = 0
                sm[row, v] = 0


@cuda.jit(device=True)
def _lse2(a, b):
    m = a if a > b else b
    if m == _NEG_INF:
        return _NEG_INF
    return m + math.log(math.exp(a - m) + math.exp(b - m))


@cuda.jit(device=True)
def _lse3(a, b, c):
    m = a if a > b else b
    m = m if m > c else c
    if m == _NEG_INF:
        return _NEG_INF
    return m + math.log(math.exp(a - m) + math.exp(b - m) + math.exp(c - m))


@cuda.jit(device=True)
def _label(labels, b, s, blank):
    """Class of extended state ``s``: blank at even states, label ``(s - 1) / 2`` at odd ones."""
    if s % 2 == 0:
        return blank
    return labels[b, (s - 1) // 2]


@cuda.jit(device=True)
def _skip(labels, b, s, blank):
    """May state ``s`` be entered from state ``s - 2`` (a label differing from the label before it)?"""
    if s % 2 == 0 or s < 3:
        return False
    return labels[b, (s - 1) // 2] != labels[b, (s - 3) // 2]


def ctc_smem_doubles(S_max, V, threads):
    """float64 words of dynamic shared memory of :func:`ctc_kernel`."""
    return 2 * S_max + V + threads


@cuda.jit(cache=True)
def ctc_kernel(lp, lengths, labels, label_lengths, B, blank, with_grad, alpha, grad, losses):
    """CTC loss of utterance ``blockIdx.x`` and (``with_grad``) its gradient w.r.t. the logits (in place:
    ``grad`` holds the softmax on entry).  ``lp`` (T*B, V) time-major log-probabilities; ``alpha`` (B, T,
    S_max) float64 scratch; dynamic shared memory :func:`ctc_smem_doubles` float64 words; a power-of-two
    number of threads."""
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    V = lp.shape[1]
    L = label_lengths[b]
    Tb = lengths[b]
    S = 2 * L + 1
    Smax = alpha.shape[2]
    sh = cuda.shared.array(0, float64)
    buf0 = sh[0:Smax]
    buf1 = sh[Smax:2 * Smax]
    occ = sh[2 * Smax:2 * Smax + V]
    red = sh[2 * Smax + V:2 * Smax + V + nt]
    if Tb == 0:
        if tid == 0:
            losses[b] = 0.0 if L == 0 else math.inf
        return
    # ---- forward variables
    for s in range(tid, S, nt):
        v = _NEG_INF
        if s < 2:
            v = float64(lp[b, _label(labels, b, s, blank)])
        buf0[s] = v
        alpha[b, 0, s] = v
    cuda.syncthreads()
    for t in range(1, Tb):
        if t % 2 == 1:
            prev = buf0
            cur = buf1
        else:
            prev = buf1
            cur = buf0
        row = t * B + b
        for s in range(tid, S, nt):
            a1 = prev[s - 1] if s >= 1 else _NEG_INF
            a2 = prev[s - 2] if _skip(labels, b, s, blank) else _NEG_INF
            v = _lse3(prev[s], a1, a2) + float64(lp[row, _label(labels, b, s, blank)])
            cur[s] = v
            alpha[b, t, s] = v
        cuda.syncthreads()
    last = buf0 if (Tb - 1) % 2 == 0 else buf1
    logz = last[S - 1]
    if S >= 2:
        logz = _lse2(logz, last[S - 2])
    if not logz > _NEG_INF:
        if tid == 0:
            losses[b] = math.inf if logz == _NEG_INF else logz
        if with_grad:
            for e in range(tid, Tb * V, nt):
                t = e // V
                grad[t * B + b, e - t * V] = 0
        return
    if tid == 0:
        losses[b] = -logz
    if not with_grad:
        return
    # ---- backward variables and the gradient, from the last frame down
    cuda.syncthreads()  # every thread has read `last` (it becomes a beta row below)
    for s in range(tid, S, nt):
        buf0[s] = 0.0 if s >= S - 2 else _NEG_INF
    for t in range(Tb - 1, -1, -1):
        k = Tb - 1 - t
        if k % 2 == 0:
            cur = buf0
            nxt = buf1
        else:
            cur = buf1
            nxt = buf0
        if t < Tb - 1:
            row1 = (t + 1) * B + b
            for s in range(tid, S, nt):
                v = nxt[s] + float64(lp[row1, _label(labels, b, s, blank)])
                w = nxt[s + 1] + float64(lp[row1, _label(labels, b, s + 1, blank)]) if s + 1 < S else _NEG_INF
                x = _NEG_INF
                if s + 2 < S:
                    if _skip(labels, b, s + 2, blank):
                        x = nxt[s + 2] + float64(lp[row1, _label(labels, b, s + 2, blank)])
                cur[s] = _lse3(v, w, x)
        for v in range(tid, V, nt):
            occ[v] = 0.0
        cuda.syncthreads()
        blank_sum = 0.0
        for s in range(tid, S, nt):
            e = math.exp(alpha[b, t, s] + cur[s] - logz)
            if s % 2 == 0:
                blank_sum += e
            else:
                cuda.atomic.add(occ, labels[b, (s - 1) // 2], e)
        red[tid] = blank_sum
        cuda.syncthreads()
        stride = nt // 2
        while stride > 0:
            if tid < stride:
                red[tid] += red[tid + stride]
            cuda.syncthreads()
            stride //= 2
        row = t * B + b
        for v in range(tid, V, nt):
            o = occ[v]
            if v == blank:
                o += red[0]
            grad[row, v] = grad[row, v] - o
        cuda.syncthreads()
