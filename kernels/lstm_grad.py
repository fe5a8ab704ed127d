"""Numba CPU kernels for *training* the stacked bidirectional LSTM: forward with stored activations, BPTT.

Layout
------
Everything works on row-major 2-D buffers whose row ``b * T + t`` is frame ``t`` of utterance ``b`` of a
padded batch, plus one trailing all-zero row (index ``B * T``) that stands for "no previous step" (``h0 =
c0 = 0``) and "no next step".  Hidden units are padded to ``Hp`` (a multiple of 64) with zero weights;
padded units keep ``c = h = 0`` and get zero gradients.  Per layer:

``Z``  (B*T + 1, 2*Gp)   gate buffer of both directions (direction ``d`` at columns ``d*Gp ..``,
                         ``Gp = 4 * Hp``).  Gate columns are *packed*: block ``nb`` of 64 columns holds gates
                         ``[i(16) | f(16) | g(16) | o(16)]`` of hidden units ``16*nb .. 16*nb + 15``
                         (:func:`gate_columns`).  The input projection writes pre-activations, the forward
                         recurrence overwrites them with the activations, the backward recurrence with the
                         gradients with respect to the pre-activations (``dZ``).
``Y``  (B*T + 1, 2*Hp)   hidden states (direction ``d`` at columns ``d*Hp ..``), the layer's output.
``C``  (B*T + 1, 2*Hp)   cell states.

Weights are packed into 64-column panels, ``P[panel, k, j]`` (:func:`panels`), the operand layout of the
register-blocked matrix products: a tile of 4 rows x 64 columns (16 AVX-512 accumulators) streams one
contiguous panel.  The products:

* :func:`matmul_rows` -- ``Y[rows] = bias + A[rows] @ P``: input projection, output layer, ``dX = dZ @ W_ih``
  and ``dY = dlogits @ W_out`` (threads split the rows);
* :func:`lstm_forward` / :func:`lstm_backward` -- the recurrences, one direction per thread, ``h @ W_hh`` (or
  ``dZ @ W_hh^T``) of the active utterances of a step with the cell (or its derivative) fused in the tile's
  epilogue;
* :func:`weight_grads` -- ``dW^T = A^T @ dZ`` summed over frames, with the bias gradients: ``A`` (the layer
  input, or the previous step's hidden states) is first gathered transposed so that the same register tile
  applies, 512 frames of a 64-column panel of ``dZ`` are packed at a time, threads split the panels.

Utterances of unequal length: step ``s`` of utterance ``b`` is frame ``s`` (forward direction) or
``lengths[b] - 1 - s`` (backward direction); frames at or past ``lengths[b]`` are never read or written.

float32 is the working type; the same kernels also compile for float64 (used by the finite-difference
gradient checks).  float32 uses rational approximations of ``tanh`` / ``sigmoid`` (absolute error < 4e-7,
as the inference kernels); float64 uses ``np.tanh``.  The backward pass differentiates the activations
through their outputs (``s' = s (1 - s)``, ``tanh' = 1 - tanh^2``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .activations import HALF as _HALF
from .activations import ONE as _ONE
from .activations import tanh32 as _tanh32
from .lstm import _fma_tile4, launch_parallel

__all__ = ["gate_columns", "panels", "matmul_rows", "lstm_forward", "lstm_backward", "weight_grads",
           "PANEL"]

#: columns of a weight panel / a register tile; hidden units per gate block; rows of a tile
PANEL = 64
_NW = 64
_U = 16
_MR = 4
#: sizes of stack buffers (must be plain constants: they are typed as literals)
_NACC = 256
_NT2 = 32
_NT5 = 80
#: frames of dZ packed per step of :func:`weight_grads`
_KC = 512

_FM = {"contract"}
_OPTS = dict(cache=True, nogil=True, fastmath=_FM, error_model="numpy")


@intrinsic
def _stack_buf(typingctx, n, like):
    """Pointer to ``n`` elements of ``like.dtype`` on the stack (``n`` a compile-time constant).

    Entry-block ``alloca`` (not zero-filled), promoted to registers once the tile loops are unrolled.
    """
    if not isinstance(n, types.IntegerLiteral) or not isinstance(like, types.Array):
        return None
    size = n.literal_value
    dt = like.dtype

    def codegen(context, builder, sig, args):
        lty = context.get_value_type(dt)
        with builder.goto_entry_block():
            ptr = builder.alloca(ir.ArrayType(lty, size))
            ptr.align = 64
        return builder.bitcast(ptr, lty.as_pointer())

    return types.CPointer(dt)(n, like), codegen


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch the cache line of ``arr[idx]`` (1-D contiguous ``arr``); never faults."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
            and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, high locality, data cache
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@njit(**_OPTS, inline="always")
def _pf(a, start, n):
    """Prefetch ``a[start:start + n]`` (a 1-D row) into the caches."""
    for o in range(0, n, _U):
        _prefetch(a, start + o)
    _prefetch(a, start + n - 1)


# ---------------------------------------------------------------- activations
# Scalar activations used inside the kernels; the overloads below specialize them per dtype (float32: the
# rational approximation, float64: exact).  The Python bodies only run outside Numba.
def _tanh(x):  # pragma: no cover
    return np.tanh(x)


def _gate(x, is_g):  # pragma: no cover
    return np.tanh(x) if is_g else 0.5 * np.tanh(0.5 * x) + 0.5


def _1m(x):  # pragma: no cover
    return 1 - x


@overload(_tanh, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _tanh_ov(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    if x == types.float64:
        return lambda x: np.tanh(x)
    return None


@overload(_gate, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _gate_ov(x, is_g):
    """tanh (g gate) or sigmoid (i, f, o): ``s tanh(s x) + 1 - s`` with ``s = 1`` or ``1/2`` (one tanh to inline)."""
    if x == types.float32:
        def impl(x, is_g):
            s = _ONE if is_g else _HALF
            return s * _tanh32(s * x) + (_ONE - s)
        return impl
    if x == types.float64:
        def impl(x, is_g):
            s = 1.0 if is_g else 0.5
            return s * np.tanh(s * x) + (1.0 - s)
        return impl
    return None


@overload(_1m)
def _1m_ov(x):
    """``1 - x`` in the type of ``x`` (an integer literal would widen float32 to float64)."""
    if x == types.float32:
        return lambda x: np.float32(1) - x
    if x == types.float64:
        return lambda x: 1.0 - x
    return None


# ---------------------------------------------------------------- generic matrix product tiles
@njit(**_OPTS)
def _nn_tile(a0, a1, a2, a3, W, i0, i1, i2, i3, y0, y1, y2, y3):
    """y_q[:64] = i_q[:64] + a_q[:K] @ W[:K, :64] for the 4 rows q (init read before any store)."""
    acc = carray(_stack_buf(_NACC, W), (_MR, _NW))
    for j in range(_NW):
        acc[0, j] = i0[j]
        acc[1, j] = i1[j]
        acc[2, j] = i2[j]
        acc[3, j] = i3[j]
    _fma_tile4(acc, a0, a1, a2, a3, W)
    for j in range(_NW):
        y0[j] = acc[0, j]
        y1[j] = acc[1, j]
        y2[j] = acc[2, j]
        y3[j] = acc[3, j]


@njit(**_OPTS, parallel=True)
def _matmul_rows_kernel(A, rows, P, bias, Y, mc):
    M = rows.shape[0]
    NP = P.shape[0]
    K = P.shape[1]
    nch = (M + mc - 1) // mc
    for ch in prange(nch):
        m0 = ch * mc
        m1 = min(M, m0 + mc)
        for pn in range(NP):
            c0 = pn * _NW
            W = P[pn]
            bv = bias[pn]
            for t0 in range(m0, m1, _MR):
                nv = min(_MR, m1 - t0)
                r0 = rows[t0]
                r1 = rows[t0 + min(1, nv - 1)]
                r2 = rows[t0 + min(2, nv - 1)]
                r3 = rows[t0 + min(3, nv - 1)]
                _nn_tile(A[r0, :K], A[r1, :K], A[r2, :K], A[r3, :K], W, bv, bv, bv, bv,
                         Y[r0, c0:c0 + _NW], Y[r1, c0:c0 + _NW], Y[r2, c0:c0 + _NW], Y[r3, c0:c0 + _NW])


def matmul_rows(A, rows, P, bias, Y):
    """``Y[r, :64*NP] = bias.ravel() + A[r, :K] @ W`` for every row ``r`` in ``rows`` (in place).

    Parameters
    ----------
    A : numpy.ndarray, shape (R, >= K)
        Left operand, C-contiguous, float32 or float64.
    rows : numpy.ndarray of int64
        Rows of ``A`` and ``Y`` to compute (any order, no repeats); other rows of ``Y`` are untouched.
    P : numpy.ndarray, shape (NP, K, 64)
        The right operand ``W`` (K, 64*NP) as panels (:func:`panels`), same dtype as ``A``.
    bias : numpy.ndarray, shape (NP, 64)
    Y : numpy.ndarray, shape (R', >= 64*NP)
        Output, C-contiguous.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A, W = rng.standard_normal((5, 3)), rng.standard_normal((3, 70))
    >>> Y = np.zeros((5, 128))
    >>> matmul_rows(A, np.arange(5), panels(W), np.ones((2, 64)), Y)
    >>> bool(np.allclose(Y[:, :70], 1 + A @ W))
    True
    """
    K = P.shape[1]
    mc = max(16, min(128, (131072 // max(K, 1)) // _MR * _MR))
    launch_parallel(_matmul_rows_kernel, A, np.ascontiguousarray(rows, dtype=np.int64), P, bias, Y, mc)


def panels(W):
    """Split a matrix ``W`` (K, N) into 64-column panels ``(ceil(N/64), K, 64)`` (zero-padded), C-contiguous.

    ``panels(W)[p, k, j] = W[k, 64 p + j]``: the right operand of :func:`matmul_rows`.

    Examples
    --------
    >>> import numpy as np
    >>> P = panels(np.arange(6.0).reshape(3, 2))
    >>> P.shape, P[0, :, :3].tolist()
    ((1, 3, 64), [[0.0, 1.0, 0.0], [2.0, 3.0, 0.0], [4.0, 5.0, 0.0]])
    """
    W = np.asarray(W)
    K, N = W.shape
    NP = -(-N // _NW)
    out = np.zeros((NP, K, _NW), W.dtype)
    for p in range(NP):
        out[p, :, :min(_NW, N - p * _NW)] = W[:, p * _NW:(p + 1) * _NW]
    return out


def gate_columns(H, Hp):
    """Packed column (in a direction's ``Gp = 4 Hp`` gate columns) of each natural gate row ``0 .. 4H-1``.

    Natural row ``g * H + u`` (gate ``g`` in i, f, g, o order, unit ``u``) goes to column
    ``64 * (u // 16) + 16 * g + u % 16``.

    Examples
    --------
    >>> gate_columns(2, 64).tolist()
    [0, 1, 16, 17, 32, 33, 48, 49]
    """
    g, u = np.divmod(np.arange(4 * H), H)
    return ((u // _U) * _NW + g * _U + u % _U).astype(np.int64)


@njit(**_OPTS, inline="always")
def _copy_tile4(acc, e):
    """``e[:4] = acc[:4]`` (4 x 64 tile), with constant row indices."""
    for j in range(_NW):
        e[0, j] = acc[0, j]
        e[1, j] = acc[1, j]
        e[2, j] = acc[2, j]
        e[3, j] = acc[3, j]


# ---------------------------------------------------------------- forward recurrence
@njit(**_OPTS, inline="always")
def _fwd_cells(a, zv, cp, cn, hn):
    """Cell of 16 units from the pre-activations ``a[:64]`` (i|f|g|o): activations to ``zv``, c, h."""
    t = carray(_stack_buf(_NT2, a), (2, _U))
    for j in range(_NW):
        v = _gate(a[j], j >= 2 * _U and j < 3 * _U)
        a[j] = v
        zv[j] = v
    for j in range(_U):
        c = a[_U + j] * cp[j] + a[j] * a[2 * _U + j]
        t[0, j] = c
        t[1, j] = a[3 * _U + j] * _tanh(c)
    for j in range(_U):
        cn[j] = t[0, j]
    for j in range(_U):
        hn[j] = t[1, j]


@njit(**_OPTS)
def _fwd_tile(Z, Y, C, W, nb, zc0, yc0, r0, r1, r2, r3, p0, p1, p2, p3, nv):
    """Gates of block ``nb`` for rows r_q (previous-step rows p_q): Z[r] + Y[p] @ W[nb], fused cell."""
    acc = carray(_stack_buf(_NACC, Z), (_MR, _NW))
    Hp = W.shape[1]
    c0 = zc0 + nb * _NW
    z0 = Z[r0, c0:c0 + _NW]
    z1 = Z[r1, c0:c0 + _NW]
    z2 = Z[r2, c0:c0 + _NW]
    z3 = Z[r3, c0:c0 + _NW]
    for j in range(_NW):
        acc[0, j] = z0[j]
        acc[1, j] = z1[j]
        acc[2, j] = z2[j]
        acc[3, j] = z3[j]
    h0 = Y[p0, yc0:yc0 + Hp]
    h1 = Y[p1, yc0:yc0 + Hp]
    h2 = Y[p2, yc0:yc0 + Hp]
    h3 = Y[p3, yc0:yc0 + Hp]
    _fma_tile4(acc, h0, h1, h2, h3, W[nb])
    # epilogue on a copy (so that acc, indexed with constants only, stays in registers above)
    e = carray(_stack_buf(_NACC, Z), (_MR, _NW))
    _copy_tile4(acc, e)
    rr = (r0, r1, r2, r3)
    pp = (p0, p1, p2, p3)
    u0 = yc0 + nb * _U
    u1 = u0 + _U
    for q in range(nv):
        r = rr[q]
        p = pp[q]
        _fwd_cells(e[q], Z[r, c0:c0 + _NW], C[p, u0:u1], C[r, u0:u1], Y[r, u0:u1])


@njit(**_OPTS)
def _fwd_direction(Z, Y, C, T, lengths, order, d, W):
    B = lengths.shape[0]
    NB = W.shape[0]
    Hp = W.shape[1]
    zc0 = d * NB * _NW
    yc0 = d * Hp
    zero = Z.shape[0] - 1
    rows = np.empty(B, np.int64)
    prev = np.empty(B, np.int64)
    nact = B
    for s in range(lengths[order[0]]):
        while lengths[order[nact - 1]] <= s:
            nact -= 1
        for pos in range(nact):
            b = order[pos]
            r = b * T + (lengths[b] - 1 - s if d == 1 else s)
            rows[pos] = r
            prev[pos] = zero if s == 0 else (r + 1 if d == 1 else r - 1)
        # blocks in snake order: W_hh may not fit in L2, the panels used last are the first of the next step
        for i in range(NB):
            nb = NB - 1 - i if s & 1 else i
            # the rows of a step are far apart (and the pre-activations were written long ago): prefetch what
            # the next block needs -- the next block of this step, or this block of the next step
            if i + 1 < NB:
                nbn = nb - 1 if s & 1 else nb + 1
                shift = 0
            else:
                nbn = nb
                shift = -1 if d == 1 else 1
            for pos in range(nact):
                r = rows[pos] + shift
                _pf(Z[r], zc0 + nbn * _NW, _NW)
                _pf(Y[r], yc0 + nbn * _U, _U)
                _pf(C[r], yc0 + nbn * _U, _U)
            for p0 in range(0, nact, _MR):
                nv = min(_MR, nact - p0)
                q1 = p0 + min(1, nv - 1)
                q2 = p0 + min(2, nv - 1)
                q3 = p0 + min(3, nv - 1)
                _fwd_tile(Z, Y, C, W, nb, zc0, yc0, rows[p0], rows[q1], rows[q2], rows[q3],
                          prev[p0], prev[q1], prev[q2], prev[q3], nv)




def lstm_forward(Z, Y, C, T, lengths, order, whh_f, whh_b):
    """Both directions' recurrences of one layer (in place), storing what the backward pass needs.

    Parameters
    ----------
    Z : numpy.ndarray, shape (B*T + 1, 2*Gp)
        On entry the pre-activations ``x @ W_ih^T + b`` of every valid frame (packed gate columns,
        :func:`gate_columns`); on exit the gate activations ``i, f, g, o``.
    Y, C : numpy.ndarray, shape (B*T + 1, 2*Hp)
        Outputs: hidden and cell states at the valid frames.  Their last row must be zero.
    T : int
        Padded frames per utterance.
    lengths : numpy.ndarray, shape (B,), int64
        Valid frames, ``1 <= lengths[b] <= T``.
    order : numpy.ndarray, shape (B,), int64
        Utterances by decreasing length.
    whh_f, whh_b : numpy.ndarray, shape (Hp/16, Hp, 64)
        Recurrent weights: the transposed packed-gate matrix ``W_hh^T`` (Hp, Gp) as panels (:func:`panels`).

    Examples
    --------
    >>> import numpy as np
    >>> Hp = 64; Z = np.zeros((3, 8 * Hp), np.float32); Y = np.zeros((3, 2 * Hp), np.float32); C = Y.copy()
    >>> W = np.zeros((Hp // 16, Hp, 64), np.float32)
    >>> lstm_forward(Z, Y, C, 2, np.array([2]), np.array([0]), W, W)
    >>> float(Z[0, 0]), float(C[1, 0])   # sigmoid(0); c = 0.5 * 0 + 0.5 * tanh(0)
    (0.5, 0.0)
    """
    launch_parallel(_recurrence_kernel, False, Z, Y, C, T, lengths, order, whh_f, whh_b)


# ---------------------------------------------------------------- backward recurrence
@njit(**_OPTS, inline="always")
def _bwd_cells(a, zv, ct, cp, dy, dc):
    """Derivative of the cell of 16 units: dZ to ``zv`` (gates i|f|g|o on entry), carry ``dc``.

    ``a[:16]`` holds ``dZ_next @ W_hh`` for these units, ``dy`` the gradient of the layer output, ``dc``
    the gradient of ``c`` from the next step (updated in place to the one for ``c_prev``).
    """
    t = carray(_stack_buf(_NT5, a), (5, _U))
    for j in range(_U):
        ig = zv[j]
        fg = zv[_U + j]
        gg = zv[2 * _U + j]
        og = zv[3 * _U + j]
        tc = _tanh(ct[j])
        dh = a[j] + dy[j]
        dcn = dc[j] + dh * og * _1m(tc * tc)
        t[0, j] = dcn * gg * (ig - ig * ig)
        t[1, j] = dcn * cp[j] * (fg - fg * fg)
        t[2, j] = dcn * ig * _1m(gg * gg)
        t[3, j] = dh * tc * (og - og * og)
        t[4, j] = dcn * fg
    for j in range(_U):
        zv[j] = t[0, j]
    for j in range(_U):
        zv[_U + j] = t[1, j]
    for j in range(_U):
        zv[2 * _U + j] = t[2, j]
    for j in range(_U):
        zv[3 * _U + j] = t[3, j]
    for j in range(_U):
        dc[j] = t[4, j]


@njit(**_OPTS, inline="always")
def _bwd_row(a, Z, C, dY, dc, kb, zc0, yc0, r, p, pos):
    for sb in range(4):
        c0 = zc0 + (4 * kb + sb) * _NW
        u0 = yc0 + kb * _NW + sb * _U
        v0 = kb * _NW + sb * _U
        _bwd_cells(a[sb * _U:sb * _U + _U], Z[r, c0:c0 + _NW], C[r, u0:u0 + _U], C[p, u0:u0 + _U],
                   dY[r, u0:u0 + _U], dc[pos, v0:v0 + _U])


@njit(**_OPTS)
def _bwd_tile(Z, C, dY, dc, W, kb, zc0, yc0, r0, r1, r2, r3, n0, n1, n2, n3, p0, p1, p2, p3, pos0, nv):
    """Units ``64 kb ..`` of rows r_q: dh = Z[n_q] @ W[kb] (next step's dZ), fused cell derivative."""
    acc = carray(_stack_buf(_NACC, Z), (_MR, _NW))
    for j in range(_NW):
        acc[0, j] = 0
        acc[1, j] = 0
        acc[2, j] = 0
        acc[3, j] = 0
    Gp = W.shape[1]
    a0 = Z[n0, zc0:zc0 + Gp]
    a1 = Z[n1, zc0:zc0 + Gp]
    a2 = Z[n2, zc0:zc0 + Gp]
    a3 = Z[n3, zc0:zc0 + Gp]
    _fma_tile4(acc, a0, a1, a2, a3, W[kb])
    # epilogue on a copy (so that acc, indexed with constants only, stays in registers above)
    e = carray(_stack_buf(_NACC, Z), (_MR, _NW))
    _copy_tile4(acc, e)
    rr = (r0, r1, r2, r3)
    pp = (p0, p1, p2, p3)
    for q in range(nv):
        _bwd_row(e[q], Z, C, dY, dc, kb, zc0, yc0, rr[q], pp[q], pos0 + q)


@njit(**_OPTS)
def _bwd_direction(Z, C, dY, T, lengths, order, d, W):
    B = lengths.shape[0]
    KB = W.shape[0]
    Gp = W.shape[1]
    Hp = KB * _NW
    zc0 = d * Gp
    yc0 = d * Hp
    zero = Z.shape[0] - 1
    rows = np.empty(B, np.int64)
    nxt = np.empty(B, np.int64)
    prev = np.empty(B, np.int64)
    dc = np.zeros((B, Hp), Z.dtype)
    Tmax = lengths[order[0]]
    nact = 0
    for s in range(Tmax - 1, -1, -1):
        n_next = nact
        while nact < B and lengths[order[nact]] > s:
            nact += 1
        for pos in range(nact):
            b = order[pos]
            r = b * T + (lengths[b] - 1 - s if d == 1 else s)
            nxt[pos] = rows[pos] if pos < n_next else zero
            rows[pos] = r
            prev[pos] = zero if s == 0 else (r + 1 if d == 1 else r - 1)
        for i in range(KB):
            kb = KB - 1 - i if s & 1 else i
            # prefetch what the next block's epilogue reads (next block of this step, or this block of the next)
            if i + 1 < KB:
                kbn = kb - 1 if s & 1 else kb + 1
                shift = 0
            else:
                kbn = kb
                shift = 1 if d == 1 else -1
            for pos in range(nact):
                r = rows[pos] + shift
                rp = r + 1 if d == 1 else r - 1
                _pf(Z[r], zc0 + 4 * kbn * _NW, 4 * _NW)
                _pf(C[r], yc0 + kbn * _NW, _NW)
                _pf(C[rp], yc0 + kbn * _NW, _NW)
                _pf(dY[r], yc0 + kbn * _NW, _NW)
            for p0 in range(0, nact, _MR):
                nv = min(_MR, nact - p0)
                q1 = p0 + min(1, nv - 1)
                q2 = p0 + min(2, nv - 1)
                q3 = p0 + min(3, nv - 1)
                _bwd_tile(Z, C, dY, dc, W, kb, zc0, yc0, rows[p0], rows[q1], rows[q2], rows[q3],
                          nxt[p0], nxt[q1], nxt[q2], nxt[q3], prev[p0], prev[q1], prev[q2], prev[q3], p0, nv)


@njit(**_OPTS, parallel=True)
def _recurrence_kernel(backward, Z, Y, C, T, lengths, order, W_f, W_b):
    """The two directions of :func:`lstm_forward` (``Y`` = h) or :func:`lstm_backward` (``Y`` = dY) in parallel."""
    for d in prange(2):
        W = W_f if d == 0 else W_b
        if backward:
            _bwd_direction(Z, C, Y, T, lengths, order, d, W)
        else:
            _fwd_direction(Z, Y, C, T, lengths, order, d, W)


def lstm_backward(Z, C, dY, T, lengths, order, whh_t_f, whh_t_b):
    """Backpropagation through time of one layer, both directions (in place).

    Parameters
    ----------
    Z : numpy.ndarray, shape (B*T + 1, 2*Gp)
        On entry the gate activations left by :func:`lstm_forward`; on exit ``dZ``, the gradient with
        respect to the gate pre-activations at every valid frame.  The last row must be zero.
    C : numpy.ndarray, shape (B*T + 1, 2*Hp)
        Cell states from :func:`lstm_forward` (last row zero).
    dY : numpy.ndarray, shape (B*T + 1, 2*Hp)
        Gradient of the loss with respect to the layer output (zero in padded hidden columns).
    T, lengths, order
        As for :func:`lstm_forward`.
    whh_t_f, whh_t_b : numpy.ndarray, shape (Hp/64, Gp, 64)
        The packed-gate matrix ``W_hh`` (Gp, Hp) as panels (:func:`panels`).

    Examples
    --------
    >>> import numpy as np
    >>> Hp = 64; Z = np.zeros((2, 8 * Hp)); C = np.zeros((2, 2 * Hp)); dY = np.zeros((2, 2 * Hp))
    >>> Z[0] = 0.5; dY[0, 0] = 1.0       # one frame, gates i = f = g = o = 0.5, c = 0, dL/dh = 1
    >>> W = np.zeros((1, 4 * Hp, 64))
    >>> lstm_backward(Z, C, dY, 1, np.array([1]), np.array([0]), W, W)
    >>> float(Z[0, 0]), float(Z[0, 48])  # dc = o = 0.5, dz_i = dc g i (1 - i); dz_o = tanh(c) o (1 - o)
    (0.0625, 0.0)
    """
    launch_parallel(_recurrence_kernel, True, Z, dY, C, T, lengths, order, whh_t_f, whh_t_b)


# ---------------------------------------------------------------- weight gradients
@njit(**_OPTS, parallel=True)
def _gather_t_kernel(A, rows, col0, ncols, out):
    """out[i, k] = A[rows[k], col0 + i] (a transposed gather), blocks of 64 rows per task."""
    K = rows.shape[0]
    for kb in prange((K + _NW - 1) // _NW):
        k0 = kb * _NW
        k1 = min(K, k0 + _NW)
        for i0 in range(0, ncols, _U):
            m = min(_U, ncols - i0)
            for k in range(k0, k1):
                src = A[rows[k], col0 + i0:col0 + i0 + m]
                for i in range(m):
                    out[i0 + i, k] = src[i]


@njit(**_OPTS)
def _tn_cols(AT, k0, n, Bp, CT, pc0):
    """CT[i, pc0:pc0+64] += AT[i, k0:k0+n] @ Bp[:n] for every row i of AT and CT."""
    ncols = AT.shape[0]
    W = Bp[:n]
    for i0 in range(0, ncols, _MR):
        nv = min(_MR, ncols - i0)
        i1 = i0 + min(1, nv - 1)
        i2 = i0 + min(2, nv - 1)
        i3 = i0 + min(3, nv - 1)
        y0 = CT[i0, pc0:pc0 + _NW]
        y1 = CT[i1, pc0:pc0 + _NW]
        y2 = CT[i2, pc0:pc0 + _NW]
        y3 = CT[i3, pc0:pc0 + _NW]
        _nn_tile(AT[i0, k0:k0 + n], AT[i1, k0:k0 + n], AT[i2, k0:k0 + n], AT[i3, k0:k0 + n], W,
                 y0, y1, y2, y3, y0, y1, y2, y3)


@njit(**_OPTS, parallel=True)
def _weight_grads_kernel(dZ, rows, XT, CTx, YTf, YTb, CTh, db):
    NP = dZ.shape[1] // _NW
    half = NP // 2
    K = rows.shape[0]
    for pn in prange(NP):
        pc0 = pn * _NW
        Bp = np.empty((_KC, _NW), dZ.dtype)
        sums = np.zeros(_NW, np.float64)
        YT = YTb if pn >= half else YTf
        for k0 in range(0, K, _KC):
            n = min(_KC, K - k0)
            for k in range(n):
                src = dZ[rows[k0 + k], pc0:pc0 + _NW]
                dst = Bp[k]
                for j in range(_NW):
                    dst[j] = src[j]
                for j in range(_NW):
                    sums[j] += src[j]
            _tn_cols(XT, k0, n, Bp, CTx, pc0)
            _tn_cols(YT, k0, n, Bp, CTh, pc0)
        for j in range(_NW):
            db[pc0 + j] += sums[j]


def _gather_t(A, rows, col0, ncols):
    out = np.empty((ncols, rows.shape[0]), A.dtype)
    if ncols and rows.shape[0]:
        launch_parallel(_gather_t_kernel, A, rows, col0, ncols, out)
    return out


def weight_grads(dZ, rows, X, nx, CTx, Yh=None, hrows_f=None, hrows_b=None, nh=0, CTh=None, db=None):
    """Accumulate weight and bias gradients ``CTx += X^T dZ``, ``CTh += Yprev^T dZ``, ``db += sum dZ``.

    Parameters
    ----------
    dZ : numpy.ndarray, shape (R, 64*NP)
        Gradients with respect to the pre-activations (C-contiguous).
    rows : numpy.ndarray of int64
        Rows of ``dZ`` (and of ``X``) to sum over.
    X : numpy.ndarray, shape (R, >= nx)
        Input of the product; ``CTx[i, c] += sum_k X[rows[k], i] * dZ[rows[k], c]`` for ``i < nx``.
    nx : int
        Columns of ``X`` used.
    CTx : numpy.ndarray, shape (>= nx, 64*NP)
        Accumulator of the transposed weight gradient (C-contiguous, same dtype as ``dZ``).
    Yh, hrows_f, hrows_b, nh, CTh : optional
        Recurrent part: ``CTh[i, c] += sum_k Yh[hrows_d[k], d*nh + i] * dZ[rows[k], c]`` where ``d = 0`` for
        the first half of the columns of ``dZ`` and ``1`` for the second (``nh = 0``: skipped).
    db : numpy.ndarray, shape (64*NP,), optional
        ``db[c] += sum_k dZ[rows[k], c]`` (a new zero array when omitted).

    Returns
    -------
    numpy.ndarray
        ``db``.  The frames are summed in float32 products with float64 bias sums; threads split the
        64-column panels of ``dZ``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> dZ, X = rng.standard_normal((6, 128)), rng.standard_normal((6, 5))
    >>> CT, db = np.zeros((5, 128)), np.zeros(128)
    >>> _ = weight_grads(dZ, np.arange(6), X, 5, CT, db=db)
    >>> bool(np.allclose(CT, X.T @ dZ)), bool(np.allclose(db, dZ.sum(0)))
    (True, True)
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if db is None:
        db = np.zeros(dZ.shape[1], dZ.dtype)
    XT = _gather_t(X, rows, 0, nx)
    if nh:
        YTf = _gather_t(Yh, np.ascontiguousarray(hrows_f, dtype=np.int64), 0, nh)
        YTb = _gather_t(Yh, np.ascontiguousarray(hrows_b, dtype=np.int64), nh, nh)
    else:
        YTf = YTb = XT[:0]
        CTh = CTx[:0]
    launch_parallel(_weight_grads_kernel, dZ, rows, XT, CTx[:nx], YTf, YTb, CTh[:nh], db)
    return db
