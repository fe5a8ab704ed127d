"""Numba CPU kernels of the stacked bidirectional LSTM acoustic model (float32).

Layout
------
The kernels work on a *packed* copy of each direction's weights, made once by
:func:`pack_direction`.  The 4H gate rows (PyTorch order i, f, g, o) are regrouped
into blocks of 16 hidden units; block ``nb`` owns the 64 gate columns
``[i(16) | f(16) | g(16) | o(16)]`` of units ``16*nb .. 16*nb + 15``.  Every block is
one contiguous, k-major panel, so a register tile of 4 rows x 64 columns (16 zmm
accumulators) streams its weights linearly and the four gates of 16 units come out
of the same registers, where the cell update is fused.  H is padded to a multiple
of 16 with zero weights: padded units keep c = h = 0 exactly and are never written.

Per layer and direction (the two directions run concurrently, one per thread):

* the input projection ``x @ W_ih^T + b`` of a chunk of time steps of all
  utterances is one matrix product (register-blocked micro-kernel, 4 x 64 tile);
* the recurrence ``h @ W_hh^T`` of all active utterances of one step is a
  (rows x H) @ (H x 4H) product with the same micro-kernel, the gate
  non-linearities and the ``c``/``h`` update fused in its epilogue.

Utterances are processed sorted by length, longest first, so the active rows of a
step are a prefix.  Each row's arithmetic (accumulation order, rounding) is the same
whatever tile it falls in, so an utterance's output does not depend on what it is
batched with (bit-identical).  Accumulation is float32 with fused multiply-adds;
``tanh`` and ``sigmoid`` use a rational approximation (absolute error < 4e-7).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.extending import intrinsic

from .activations import HALF as _HALF
from .activations import ONE as _ONE
from .activations import sigmoid32 as _sigmoid32
from .activations import tanh32 as _tanh32

__all__ = ["pack_direction", "bilstm_layer", "bilstm_chunk", "stack_frames", "linear_log_softmax", "pack_output",
           "output_log_softmax"]

#: hidden units per block; gate columns per block (4 gates x 16 units)
_U = 16
_NW = 64
#: rows of a register tile and its accumulator count (4 x 64 floats = 16 zmm registers)
_MR = 4
_NACC = _MR * _NW
_NACC2 = 2 * _NW
#: time steps whose input projection is computed in one matrix product
_TCHUNK = 64
#: rows (utterance x step) of one input-projection chunk: keeps it in L2
_CHUNK_ROWS = 64

# fused multiply-add only: no reassociation, so every row is accumulated in k order
_FM = {"contract"}


@intrinsic
def _stack_f32(typingctx, n):
    """Pointer to ``n`` float32 on the stack (``n`` a compile-time constant).

    Used for register-tile accumulators: an ``alloca`` that LLVM promotes to
    vector registers once the tile loops are unrolled.
    """
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = n.literal_value

    def codegen(context, builder, sig, args):
        # entry-block alloca, not zero-filled (cgutils.alloca_once would store zeros,
        # which costs a store-forwarding stall per tile)
        with builder.goto_entry_block():
            ptr = builder.alloca(ir.ArrayType(ir.FloatType(), size))
            ptr.align = 64
        return builder.bitcast(ptr, ir.PointerType(ir.FloatType()))

    return types.CPointer(types.float32)(n), codegen


# ---------------------------------------------------------------- micro-kernels
# Code-generation notes (checked with ``inspect_asm``: the k loops are 16 zmm
# ``vfmadd231ps`` with broadcast operands, accumulators held in registers):
# * indices computed from arguments are signed for Numba, which then emits a
#   negative-index wrap-around per element, and LLVM falls back to gathers and
#   scalar stores; the kernels index row *views* (made once per tile) with
#   ``range`` loop variables only, which LLVM knows to be non-negative;
# * tile rows are written out explicitly (no loop over rows) so that every
#   accumulator access has a constant offset and SROA keeps the tile in registers;
# * ``error_model="numpy"`` drops the division-by-zero branch that would stop the
#   activations from vectorizing.

@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def _fma_tile4(acc, x0, x1, x2, x3, W):
    """``acc[q] += x_q @ W`` for the 4 rows of a register tile (k loop of the 4 x 64 micro-kernel)."""
    for k in range(W.shape[0]):
        a0 = x0[k]
        a1 = x1[k]
        a2 = x2[k]
        a3 = x3[k]
        for j in range(_NW):
            w = W[k, j]
            acc[0, j] += a0 * w
            acc[1, j] += a1 * w
            acc[2, j] += a2 * w
            acc[3, j] += a3 * w


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _gemm_tile4(X, rows, m0, Wp, nb, bias, Y):
    """Y[m0:m0+4, 64nb:64nb+64] = bias[nb] + X[rows[m0:m0+4]] @ Wp[nb]."""
    acc = carray(_stack_f32(_NACC), (_MR, _NW))
    bv = bias[nb]
    for j in range(_NW):
        b = bv[j]
        acc[0, j] = b
        acc[1, j] = b
        acc[2, j] = b
        acc[3, j] = b
    x0 = X[rows[m0]]
    x1 = X[rows[m0 + 1]]
    x2 = X[rows[m0 + 2]]
    x3 = X[rows[m0 + 3]]
    _fma_tile4(acc, x0, x1, x2, x3, Wp[nb])
    c0 = nb * _NW
    y0 = Y[m0, c0:c0 + _NW]
    y1 = Y[m0 + 1, c0:c0 + _NW]
    y2 = Y[m0 + 2, c0:c0 + _NW]
    y3 = Y[m0 + 3, c0:c0 + _NW]
    for j in range(_NW):
        y0[j] = acc[0, j]
        y1[j] = acc[1, j]
        y2[j] = acc[2, j]
        y3[j] = acc[3, j]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _gemm_row(X, rows, m, Wp, nb, bias, Y):
    """One row of :func:`_gemm_tile4` (same arithmetic per element)."""
    acc = carray(_stack_f32(_NW), (_NW,))
    bv = bias[nb]
    for j in range(_NW):
        acc[j] = bv[j]
    x0 = X[rows[m]]
    W = Wp[nb]
    for k in range(W.shape[0]):
        a0 = x0[k]
        for j in range(_NW):
            acc[j] += a0 * W[k, j]
    c0 = nb * _NW
    y = Y[m, c0:c0 + _NW]
    for j in range(_NW):
        y[j] = acc[j]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _gemm_rows(X, rows, Wp, bias, Y):
    """Y[m] = bias + X[rows[m]] @ Wp (packed panels) for all m, single thread."""
    M = rows.shape[0]
    M4 = M - M % _MR
    for nb in range(Wp.shape[0]):
        for m0 in range(0, M4, _MR):
            _gemm_tile4(X, rows, m0, Wp, nb, bias, Y)
        for m in range(M4, M):
            _gemm_row(X, rows, m, Wp, nb, bias, Y)


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def _cells(acc, q, c, pos, u0, hnext):
    """Fused LSTM cell on the 16 units of accumulator row ``acc[q]`` (gates i|f|g|o).

    Vectorized over the 16 units; ``acc[q, :32]`` is reused for the new c and h.
    """
    cv = c[pos, u0:u0 + _U]
    hv = hnext[pos, u0:u0 + _U]
    for j in range(_U):
        ig = _sigmoid32(acc[q, j])
        fg = _sigmoid32(acc[q, _U + j])
        gg = _tanh32(acc[q, 2 * _U + j])
        og = _sigmoid32(acc[q, 3 * _U + j])
        cn = fg * cv[j] + ig * gg
        acc[q, j] = cn
        acc[q, _U + j] = og * _tanh32(cn)
    for j in range(_U):
        cv[j] = acc[q, j]
    for j in range(_U):
        hv[j] = acc[q, _U + j]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _lstm_tile4(hprev, pos0, Whh, nb, xp, m0, c, hnext):
    """Gates of rows pos0..pos0+3, hidden block nb: xp + hprev @ Whh[nb], fused cell."""
    acc = carray(_stack_f32(_NACC), (_MR, _NW))
    c0 = nb * _NW
    xv0 = xp[m0, c0:c0 + _NW]
    xv1 = xp[m0 + 1, c0:c0 + _NW]
    xv2 = xp[m0 + 2, c0:c0 + _NW]
    xv3 = xp[m0 + 3, c0:c0 + _NW]
    for j in range(_NW):
        acc[0, j] = xv0[j]
        acc[1, j] = xv1[j]
        acc[2, j] = xv2[j]
        acc[3, j] = xv3[j]
    h0 = hprev[pos0]
    h1 = hprev[pos0 + 1]
    h2 = hprev[pos0 + 2]
    h3 = hprev[pos0 + 3]
    _fma_tile4(acc, h0, h1, h2, h3, Whh[nb])
    u0 = nb * _U
    _cells(acc, 0, c, pos0, u0, hnext)
    _cells(acc, 1, c, pos0 + 1, u0, hnext)
    _cells(acc, 2, c, pos0 + 2, u0, hnext)
    _cells(acc, 3, c, pos0 + 3, u0, hnext)


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _lstm_row2(hprev, pos, Whh, nb, xp, m, c, hnext):
    """One row, hidden blocks nb and nb+1 (8 independent accumulator chains)."""
    acc = carray(_stack_f32(_NACC2), (2, _NW))
    c0 = nb * _NW
    xv = xp[m, c0:c0 + 2 * _NW]
    for j in range(_NW):
        acc[0, j] = xv[j]
        acc[1, j] = xv[_NW + j]
    h0 = hprev[pos]
    W0 = Whh[nb]
    W1 = Whh[nb + 1]
    for k in range(W0.shape[0]):
        a0 = h0[k]
        for j in range(_NW):
            acc[0, j] += a0 * W0[k, j]
            acc[1, j] += a0 * W1[k, j]
    _cells(acc, 0, c, pos, nb * _U, hnext)
    _cells(acc, 1, c, pos, nb * _U + _U, hnext)


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _lstm_row1(hprev, pos, Whh, nb, xp, m, c, hnext):
    """One row, one hidden block."""
    acc = carray(_stack_f32(_NW), (1, _NW))
    c0 = nb * _NW
    xv = xp[m, c0:c0 + _NW]
    for j in range(_NW):
        acc[0, j] = xv[j]
    h0 = hprev[pos]
    W = Whh[nb]
    for k in range(W.shape[0]):
        a0 = h0[k]
        for j in range(_NW):
            acc[0, j] += a0 * W[k, j]
    _cells(acc, 0, c, pos, nb * _U, hnext)


# ---------------------------------------------------------------- one direction
@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _run_direction(X2, T, lengths, order, reverse, Wih, Whh, bias, out, col0):
    """Run one LSTM direction over a batch, writing h into ``out[..., col0:col0+H]``.

    X2 is the layer input as (B*T, In); order lists utterances by decreasing length.
    Step s of utterance b reads frame s (forward) or lengths[b]-1-s (backward).
    """
    B = lengths.shape[0]
    NB = Whh.shape[0]
    H = Whh.shape[1]
    Hp = NB * _U
    G = NB * _NW
    Tmax = lengths[order[0]]
    TC = max(1, min(_TCHUNK, _CHUNK_ROWS // B, Tmax))
    h = np.zeros((2, B, Hp), np.float32)
    c = np.zeros((B, Hp), np.float32)
    xp = np.empty((TC * B, G), np.float32)
    src = np.empty(TC * B, np.int64)
    rowoff = np.empty(TC + 1, np.int64)
    nact_of = np.empty(TC, np.int64)
    nact = B
    for s0 in range(0, Tmax, TC):
        s1 = min(s0 + TC, Tmax)
        # rows of the chunk: step-major, active utterances of each step
        m = 0
        for s in range(s0, s1):
            while lengths[order[nact - 1]] <= s:
                nact -= 1
            nact_of[s - s0] = nact
            rowoff[s - s0] = m
            for pos in range(nact):
                b = order[pos]
                f = lengths[b] - 1 - s if reverse else s
                src[m] = b * T + f
                m += 1
        _gemm_rows(X2, src[:m], Wih, bias, xp)
        for s in range(s0, s1):
            na = nact_of[s - s0]
            m0 = rowoff[s - s0]
            hp = h[s & 1]
            hn = h[1 - (s & 1)]
            # blocks in snake order (reversed on odd steps): W_hh does not fit in
            # L2, and the panels used last in one step are the first of the next
            n4 = na - na % _MR
            if n4 > 0:
                for i in range(NB):
                    nb = NB - 1 - i if s & 1 else i
                    for p0 in range(0, n4, _MR):
                        _lstm_tile4(hp, p0, Whh, nb, xp, m0 + p0, c, hn)
            for pos in range(n4, na):
                if s & 1:
                    if NB & 1:
                        _lstm_row1(hp, pos, Whh, NB - 1, xp, m0 + pos, c, hn)
                    nb = NB - 2 - (NB & 1)
                    while nb >= 0:
                        _lstm_row2(hp, pos, Whh, nb, xp, m0 + pos, c, hn)
                        nb -= 2
                else:
                    for nb in range(0, NB - 1, 2):
                        _lstm_row2(hp, pos, Whh, nb, xp, m0 + pos, c, hn)
                    if NB & 1:
                        _lstm_row1(hp, pos, Whh, NB - 1, xp, m0 + pos, c, hn)
            for pos in range(na):
                b = order[pos]
                f = lengths[b] - 1 - s if reverse else s
                ov = out[b, f, col0:col0 + H]
                hv = hn[pos]
                for j in range(H):
                    ov[j] = hv[j]


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _bilstm_kernel(x, lengths, order, wih_f, whh_f, b_f, wih_b, whh_b, b_b):
    B, T, In = x.shape
    H = whh_f.shape[1]
    out = np.zeros((B, T, 2 * H), np.float32)
    X2 = x.reshape(B * T, In)
    for d in prange(2):
        wih, whh, b = (wih_f, whh_f, b_f) if d == 0 else (wih_b, whh_b, b_b)
        _run_direction(X2, T, lengths, order, d == 1, wih, whh, b, out, d * H)
    return out


# ------------------------------------------------- one utterance, carried state
@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _run_direction_one(X, reverse, Wih, Whh, bias, h0, c0, save, h_save, c_save, out, col0):
    """One direction over the T frames of ONE utterance ``X`` (T, In), starting from ``(h0, c0)``.

    The arithmetic is :func:`_run_direction`'s with a batch of one (same micro-kernels, same time chunks and
    block order), so from a zero state the output is bit-identical to it.  After ``save`` steps (``0 < save
    <= T``) the state is copied into ``h_save``/``c_save``.
    """
    T = X.shape[0]
    NB = Whh.shape[0]
    H = Whh.shape[1]
    Hp = NB * _U
    G = NB * _NW
    TC = max(1, min(_TCHUNK, _CHUNK_ROWS, T))
    h = np.zeros((2, 1, Hp), np.float32)
    c = np.zeros((1, Hp), np.float32)
    for j in range(H):
        h[0, 0, j] = h0[j]
        c[0, j] = c0[j]
    xp = np.empty((TC, G), np.float32)
    src = np.empty(TC, np.int64)
    for s0 in range(0, T, TC):
        s1 = min(s0 + TC, T)
        for s in range(s0, s1):
            src[s - s0] = T - 1 - s if reverse else s
        _gemm_rows(X, src[:s1 - s0], Wih, bias, xp)
        for s in range(s0, s1):
            m = s - s0
            hp = h[s & 1]
            hn = h[1 - (s & 1)]
            if s & 1:
                if NB & 1:
                    _lstm_row1(hp, 0, Whh, NB - 1, xp, m, c, hn)
                nb = NB - 2 - (NB & 1)
                while nb >= 0:
                    _lstm_row2(hp, 0, Whh, nb, xp, m, c, hn)
                    nb -= 2
            else:
                for nb in range(0, NB - 1, 2):
                    _lstm_row2(hp, 0, Whh, nb, xp, m, c, hn)
                if NB & 1:
                    _lstm_row1(hp, 0, Whh, NB - 1, xp, m, c, hn)
            f = T - 1 - s if reverse else s
            ov = out[f, col0:col0 + H]
            hv = hn[0]
            for j in range(H):
                ov[j] = hv[j]
            if s + 1 == save:
                for j in range(H):
                    h_save[j] = hv[j]
                    c_save[j] = c[0, j]


@njit(cache=True, nogil=True, error_model="numpy")
def _bilstm_chunk_kernel(x, wih_f, whh_f, b_f, wih_b, whh_b, b_b, h0, c0, save):
    T = x.shape[0]
    H = whh_f.shape[1]
    out = np.zeros((T, 2 * H), np.float32)
    h_save = h0.copy()
    c_save = c0.copy()
    _run_direction_one(x, False, wih_f, whh_f, b_f, h0, c0, save, h_save, c_save, out, 0)
    zero = np.zeros(H, np.float32)
    _run_direction_one(x, True, wih_b, whh_b, b_b, zero, zero, 0, zero, zero, out, H)
    return out, h_save, c_save


# ---------------------------------------------------------------- public API
_LAUNCH_LOCK = threading.Lock()


def launch_parallel(kernel, *args):
    """Call a ``parallel=True`` kernel from any Python thread.

    Numba's OpenMP and TBB threading layers accept concurrent launches; its
    fallback "workqueue" layer aborts the process on them, so there (and before
    the first launch has chosen a layer) launches are serialized.
    """
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = ""
    if layer in ("omp", "tbb"):
        return kernel(*args)
    with _LAUNCH_LOCK:
        return kernel(*args)


def _as_pack(pack, name):
    """The three packed arrays, as float32 C-contiguous writeable arrays (one kernel signature)."""
    if len(pack) != 3:
        raise ValueError(f"{name} must be the 3-tuple returned by pack_direction")
    out = []
    for a, nd in zip(pack, (3, 3, 2)):
        a = np.asarray(a)
        if a.ndim != nd or a.shape[-1] != _NW:
            raise ValueError(f"{name} must be the 3-tuple returned by pack_direction")
        if a.dtype != np.float32 or not a.flags.c_contiguous or not a.flags.writeable:
            a = np.array(a, dtype=np.float32, order="C")
        out.append(a)
    wih, whh, b = out
    if whh.shape[0] != wih.shape[0] or b.shape[0] != wih.shape[0] or whh.shape[0] != -(-whh.shape[1] // _U):
        raise ValueError(f"{name} has inconsistent shapes")
    return wih, whh, b


def pack_direction(w_ih, w_hh, bias):
    """Pack one LSTM direction's weights into the kernels' blocked layout.

    Parameters
    ----------
    w_ih : array_like, shape (4H, In)
        Input weights, gate order i, f, g, o (PyTorch's ``weight_ih_l{k}``).
    w_hh : array_like, shape (4H, H)
        Recurrent weights (PyTorch's ``weight_hh_l{k}``).
    bias : array_like, shape (4H,)
        Combined bias ``b_ih + b_hh``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(w_ih_packed (NB, In, 64), w_hh_packed (NB, H, 64), bias_packed (NB, 64))``,
        float32, C-contiguous, with ``NB = ceil(H / 16)``; block ``nb`` holds the
        columns ``[i | f | g | o]`` of hidden units ``16*nb .. 16*nb + 15`` (zero
        padded).  Treat it as opaque; pass it to :func:`bilstm_layer`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> H, In = 20, 8
    >>> pack = pack_direction(rng.standard_normal((4 * H, In)),
    ...                       rng.standard_normal((4 * H, H)), np.zeros(4 * H))
    >>> [p.shape for p in pack]
    [(2, 8, 64), (2, 20, 64), (2, 64)]
    """
    w_ih = np.asarray(w_ih, dtype=np.float32)
    w_hh = np.asarray(w_hh, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1] or w_hh.shape[1] < 1:
        raise ValueError(f"w_hh must have shape (4H, H), got {w_hh.shape}")
    H = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != 4 * H or w_ih.shape[1] < 1:
        raise ValueError(f"w_ih must have shape ({4 * H}, In), got {w_ih.shape}")
    if bias.shape != (4 * H,):
        raise ValueError(f"bias must have shape ({4 * H},), got {bias.shape}")
    In = w_ih.shape[1]
    NB = -(-H // _U)
    Hp = NB * _U

    def blocked(w, k):  # (4H, k) -> (NB, k, 64)
        wp = np.zeros((4, Hp, k), np.float32)
        wp[:, :H] = w.reshape(4, H, k)
        return np.ascontiguousarray(wp.reshape(4, NB, _U, k).transpose(1, 3, 0, 2).reshape(NB, k, _NW))

    bp = np.zeros((4, Hp), np.float32)
    bp[:, :H] = bias.reshape(4, H)
    bp = np.ascontiguousarray(bp.reshape(4, NB, _U).transpose(1, 0, 2).reshape(NB, _NW))
    return blocked(w_ih, In), blocked(w_hh, H), bp


def _check_lengths(lengths, B, T):
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},), got {lengths.shape}")
    if B and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [1, {T}]")
    return lengths


def bilstm_layer(x, lengths, fw_pack, bw_pack):
    """One bidirectional LSTM layer over a padded batch.

    Parameters
    ----------
    x : numpy.ndarray, shape (B, T, In), float32
        Input frames; frames ``t >= lengths[b]`` are ignored.
    lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance, ``1 <= lengths[b] <= T``.
    fw_pack, bw_pack : tuple
        Packed weights of the forward and backward direction (:func:`pack_direction`).

    Returns
    -------
    numpy.ndarray, shape (B, T, 2H), float32
        ``[..., :H]`` forward and ``[..., H:]`` backward hidden states (h0 = c0 = 0;
        the backward direction of utterance ``b`` starts at frame ``lengths[b] - 1``);
        zeros at padded frames.  Each utterance's output does not depend on the
        rest of the batch.  The two directions run on two threads (Numba's
        parallel layer); the call releases the GIL.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> H, In = 20, 8
    >>> mk = lambda: pack_direction(rng.standard_normal((4 * H, In)) * 0.3,
    ...                             rng.standard_normal((4 * H, H)) * 0.3, np.zeros(4 * H))
    >>> x = rng.standard_normal((2, 5, In)).astype(np.float32)
    >>> y = bilstm_layer(x, np.array([5, 3], np.int32), mk(), mk())
    >>> y.shape, bool(np.all(y[1, 3:] == 0))
    ((2, 5, 40), True)
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, In), got {x.shape}")
    B, T, In = x.shape
    wih_f, whh_f, b_f = _as_pack(fw_pack, "fw_pack")
    wih_b, whh_b, b_b = _as_pack(bw_pack, "bw_pack")
    if wih_f.shape[1] != In or wih_b.shape[1] != In:
        raise ValueError(f"x has {In} features, the weights expect {wih_f.shape[1]}")
    if whh_f.shape != whh_b.shape:
        raise ValueError("forward and backward hidden sizes differ")
    lengths = _check_lengths(lengths, B, T)
    H = whh_f.shape[1]
    if B == 0 or T == 0:
        return np.zeros((B, T, 2 * H), np.float32)
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    return launch_parallel(_bilstm_kernel, x, lengths, order, wih_f, whh_f, b_f, wih_b, whh_b, b_b)


def bilstm_chunk(x, fw_pack, bw_pack, state=None, keep=None):
    """One bidirectional LSTM layer over a chunk of ONE utterance, the forward state carried across chunks.

    The building block of a latency-controlled BiLSTM (LC-BLSTM): the forward direction starts from
    ``state`` (the state it had after the previous chunk's kept frames) and the backward direction runs over
    the chunk alone from a zero state, so it sees only the chunk's frames as future context.  Of a chunk of
    ``N`` kept frames plus ``R`` right-context frames, pass ``keep=N``: the returned state is the forward
    state after frame ``N``, where the next chunk starts (the ``R`` frames' outputs are provisional and are
    recomputed with the next chunk).

    Parameters
    ----------
    x : numpy.ndarray, shape (T, In), float32
        The chunk's input frames, ``T >= 1``.
    fw_pack, bw_pack : tuple
        Packed weights (:func:`pack_direction`).
    state : tuple of numpy.ndarray, optional
        ``(h, c)``, each shape ``(H,)``: the forward direction's state before ``x[0]``; zeros when omitted.
    keep : int, optional
        Frames after which the forward state is returned, ``1 <= keep <= T`` (default ``T``).

    Returns
    -------
    out : numpy.ndarray, shape (T, 2H), float32
        ``[:, :H]`` forward, ``[:, H:]`` backward hidden states.  With a zero state and ``keep = T`` this is
        bit-identical to :func:`bilstm_layer` on the same frames (the same arithmetic, one thread).
    state : tuple of numpy.ndarray
        ``(h, c)`` of the forward direction after ``keep`` frames, float32 ``(H,)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> H, In = 20, 8
    >>> mk = lambda: pack_direction(rng.standard_normal((4 * H, In)) * 0.3,
    ...                             rng.standard_normal((4 * H, H)) * 0.3, np.zeros(4 * H))
    >>> fw, bw = mk(), mk()
    >>> x = rng.standard_normal((10, In)).astype(np.float32)
    >>> full = bilstm_layer(x[None], np.array([10]), fw, bw)[0]
    >>> a, st = bilstm_chunk(x[:6], fw, bw, keep=4)      # frames 0-3 kept, 4-5 right context
    >>> b, _ = bilstm_chunk(x[4:], fw, bw, state=st)      # continues at frame 4
    >>> bool(np.array_equal(np.concatenate([a[:4, :H], b[:, :H]]), full[:, :H]))   # forward: exact
    True
    >>> bool(np.array_equal(b[:, H:], bilstm_layer(x[None, 4:], np.array([6]), fw, bw)[0][:, H:]))
    True
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (T, In) with T >= 1, got {x.shape}")
    if not x.flags.writeable:
        x = x.copy()
    T, In = x.shape
    wih_f, whh_f, b_f = _as_pack(fw_pack, "fw_pack")
    wih_b, whh_b, b_b = _as_pack(bw_pack, "bw_pack")
    if wih_f.shape[1] != In or wih_b.shape[1] != In:
        raise ValueError(f"x has {In} features, the weights expect {wih_f.shape[1]}")
    if whh_f.shape != whh_b.shape:
        raise ValueError("forward and backward hidden sizes differ")
    H = whh_f.shape[1]
    if state is None:
        h0 = np.zeros(H, np.float32)
        c0 = np.zeros(H, np.float32)
    else:
        if len(state) != 2:
            raise ValueError("state must be a pair (h, c)")
        h0, c0 = (np.array(s, dtype=np.float32, order="C").reshape(-1) for s in state)
        if h0.shape != (H,) or c0.shape != (H,):
            raise ValueError(f"state arrays must have shape ({H},)")
    keep = T if keep is None else int(keep)
    if not 1 <= keep <= T:
        raise ValueError(f"keep must lie in [1, {T}], got {keep}")
    out, h, c = _bilstm_chunk_kernel(x, wih_f, whh_f, b_f, wih_b, whh_b, b_b, h0, c0, keep)
    return out, (h, c)


@njit(cache=True, nogil=True, error_model="numpy")
def _stack_kernel(x, lengths, k, T2):
    B, T, D = x.shape
    out = np.zeros((B, T2, D * k), np.float32)
    for b in range(B):
        L = lengths[b]
        for t in range(T2):
            for j in range(k):
                f = t * k + j
                if f < L:
                    for d in range(D):
                        out[b, t, j * D + d] = x[b, f, d]
    return out


def stack_frames(x, lengths, k):
    """Stack ``k`` consecutive frames into one and subsample time by ``k``.

    Parameters
    ----------
    x : numpy.ndarray, shape (B, T, D), float32
    lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance (``1 <= lengths[b] <= T``).
    k : int
        Stacking factor, ``k >= 1``.

    Returns
    -------
    stacked : numpy.ndarray, shape (B, ceil(T / k), D * k), float32
        ``stacked[b, t] = concat(x[b, t*k + j] for j in range(k))``; source frames
        at or past ``lengths[b]`` contribute zeros.
    new_lengths : numpy.ndarray, shape (B,), int32
        ``ceil(lengths / k)``.  With ``k == 1`` the inputs are returned unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10, dtype=np.float32).reshape(1, 5, 2)
    >>> y, n = stack_frames(x, np.array([5], np.int32), 2)
    >>> y[0].tolist(), n.tolist()
    ([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 0.0, 0.0]], [3])
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k == 1:
        return x, lengths
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, D), got {x.shape}")
    B, T, _ = x.shape
    lengths64 = _check_lengths(lengths, B, T)
    T2 = -(-T // k)
    out = _stack_kernel(x, lengths64, k, T2)
    return out, ((lengths64 + k - 1) // k).astype(np.int32)


_NEG_INF = np.float32(-np.inf)
_EXP_LO = np.float32(-87.0)
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_E5 = np.float32(1.9875691500e-4)
_E4 = np.float32(1.3981999507e-3)
_E3 = np.float32(8.3334519073e-3)
_E2 = np.float32(4.1665795894e-2)
_E1 = np.float32(1.6666665459e-1)
_E0 = np.float32(5.0000001201e-1)
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = (np.float32(2.0 ** -(1 << i)) for i in range(7))


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def _exp_neg32(x):
    """float32 exp for x <= 0 (relative error < 1e-7 above -87, vectorizable).

    Cephes-style: x = n ln2 + r, polynomial for exp(r); 2^-n, 0 <= n <= 126, is
    built from its bits by exact multiplications (no integer/float bit casts,
    which would not vectorize in Numba).
    """
    x = max(x, _EXP_LO)
    n = np.floor(x * _LOG2E + _HALF)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _E1
    p = p * r + _E0
    e = p * (r * r) + r + _ONE
    k = np.int32(-n)
    f = _P0 if k & 1 else _ONE
    f = f * (_P1 if k & 2 else _ONE)
    f = f * (_P2 if k & 4 else _ONE)
    f = f * (_P3 if k & 8 else _ONE)
    f = f * (_P4 if k & 16 else _ONE)
    f = f * (_P5 if k & 32 else _ONE)
    f = f * (_P6 if k & 64 else _ONE)
    return e * f


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _log_softmax_row(y, V, o):
    """o[:V] = log_softmax(y[:V]); y has a multiple of 16 entries (V <= len(y))."""
    G = y.shape[0]
    lanes = carray(_stack_f32(_U), (_U,))
    for j in range(_U):
        lanes[j] = _NEG_INF
    for v0 in range(0, G, _U):
        yv = y[v0:v0 + _U]
        for j in range(_U):
            lanes[j] = max(lanes[j], yv[j] if v0 + j < V else _NEG_INF)
    mx = lanes[0]
    for j in range(1, _U):
        mx = max(mx, lanes[j])
    for j in range(_U):
        lanes[j] = 0
    for v0 in range(0, G, _U):
        yv = y[v0:v0 + _U]
        for j in range(_U):
            lanes[j] += _exp_neg32(yv[j] - mx) if v0 + j < V else 0
    s = 0.0
    for j in range(_U):
        s += lanes[j]
    lse = mx + np.float32(np.log(s))
    for v in range(V):
        o[v] = y[v] - lse


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _linear_lsm_kernel(x, lengths, Wp, bp, V):
    B, T, D = x.shape
    X2 = x.reshape(B * T, D)
    G = Wp.shape[0] * _NW
    out = np.zeros((B, T, V), np.float32)
    nblk = -(-T // _TCHUNK)
    for job in prange(B * nblk):
        b = job // nblk
        t0 = (job % nblk) * _TCHUNK
        t1 = min(t0 + _TCHUNK, lengths[b])
        if t1 <= t0:
            continue
        rows = np.arange(b * T + t0, b * T + t1)
        y = np.empty((t1 - t0, G), np.float32)
        _gemm_rows(X2, rows, Wp, bp, y)
        for i in range(t1 - t0):
            _log_softmax_row(y[i], V, out[b, t0 + i])
    return out


def linear_log_softmax(x, lengths, weight, bias):
    """Output layer: ``log_softmax(x @ weight.T + bias)`` over the last axis.

    Parameters
    ----------
    x : numpy.ndarray, shape (B, T, D), float32
    lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance.
    weight : numpy.ndarray, shape (V, D)
    bias : numpy.ndarray, shape (V,)

    Returns
    -------
    numpy.ndarray, shape (B, T, V), float32
        Log-probabilities; rows at padded frames are 0.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((1, 3, 6)).astype(np.float32)
    >>> lp = linear_log_softmax(x, np.array([3]), rng.standard_normal((5, 6)), np.zeros(5))
    >>> lp.shape, bool(np.allclose(np.exp(lp).sum(-1), 1.0))
    ((1, 3, 5), True)
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, D), got {x.shape}")
    B, T, D = x.shape
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    if weight.ndim != 2 or weight.shape[1] != D or weight.shape[0] < 1:
        raise ValueError(f"weight must have shape (V, {D}), got {weight.shape}")
    V = weight.shape[0]
    if bias.shape != (V,):
        raise ValueError(f"bias must have shape ({V},), got {bias.shape}")
    lengths = _check_lengths(lengths, B, T)
    Wp, bp, V = pack_output(weight, bias)
    return launch_parallel(_linear_lsm_kernel, x, lengths, Wp, bp, V)


def pack_output(weight, bias):
    """Pack the output layer ``(V, D)``, ``(V,)`` into the kernels' layout, for :func:`output_log_softmax`.

    Returns ``(weight_packed (NB, D, 64), bias_packed (NB, 64), V)`` with ``NB = ceil(V / 64)``, zero padded.

    Examples
    --------
    >>> [getattr(a, "shape", a) for a in pack_output(np.ones((29, 8)), np.zeros(29))]
    [(1, 8, 64), (1, 64), 29]
    """
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    if weight.ndim != 2 or weight.shape[0] < 1 or bias.shape != (weight.shape[0],):
        raise ValueError(f"weight must have shape (V, D) and bias (V,), got {weight.shape} and {bias.shape}")
    V, D = weight.shape
    NB = -(-V // _NW)
    Wp = np.zeros((NB * _NW, D), np.float32)
    Wp[:V] = weight
    Wp = np.ascontiguousarray(Wp.reshape(NB, _NW, D).transpose(0, 2, 1))
    bp = np.zeros(NB * _NW, np.float32)
    bp[:V] = bias
    return Wp, bp.reshape(NB, _NW), V


@njit(cache=True, nogil=True, error_model="numpy")
def _output_lsm_kernel(x, Wp, bp, V):
    T = x.shape[0]
    G = Wp.shape[0] * _NW
    out = np.zeros((T, V), np.float32)
    y = np.empty((min(T, _TCHUNK), G), np.float32)
    for t0 in range(0, T, _TCHUNK):
        t1 = min(t0 + _TCHUNK, T)
        _gemm_rows(x, np.arange(t0, t1), Wp, bp, y)
        for i in range(t1 - t0):
            _log_softmax_row(y[i], V, out[t0 + i])
    return out


def output_log_softmax(x, out_pack):
    """:func:`linear_log_softmax` of ONE utterance's frames on the calling thread (no parallel launch).

    For short inputs, e.g. the chunks of a streaming recognizer, where waking the parallel layer's threads
    costs more than the arithmetic.  Same arithmetic, so the same result bit for bit.

    Parameters
    ----------
    x : numpy.ndarray, shape (T, D), float32
    out_pack : tuple
        From :func:`pack_output`.

    Returns
    -------
    numpy.ndarray, shape (T, V), float32

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((70, 6)).astype(np.float32)
    >>> w, b = rng.standard_normal((5, 6)), np.zeros(5)
    >>> lp = output_log_softmax(x, pack_output(w, b))
    >>> bool(np.array_equal(lp, linear_log_softmax(x[None], np.array([70]), w, b)[0]))
    True
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    Wp, bp, V = out_pack
    if x.ndim != 2 or x.shape[1] != Wp.shape[1]:
        raise ValueError(f"x must have shape (T, {Wp.shape[1]}), got {x.shape}")
    if not x.flags.writeable:
        x = x.copy()
    if x.shape[0] == 0:
        return np.zeros((0, V), np.float32)
    return _output_lsm_kernel(x, Wp, bp, V)
