"""``numba.cuda`` kernels of the stacked bidirectional LSTM: inference, training forward and BPTT (float32).

Arithmetic only: buffers, launch configurations and the choice between the designs below are made by
:mod:`speechlstm.gpu`.  The CPU reference is :mod:`speechlstm.kernels.lstm` (inference) and
:mod:`speechlstm.kernels.lstm_grad` (training); the GPU results agree with it to float32 rounding.

Layout
------
Everything on the device is **time-major**: row ``t * B + b`` of a 2-D buffer is frame ``t`` of utterance
``b`` of a padded batch, so the rows one recurrence step touches are contiguous.  Per layer:

``X``  (T*B, In)   layer input (stacked features for layer 0, the previous layer's ``Y`` above);
``Z``  (T*B, 8H)   gates of both directions, direction ``d`` at columns ``d*4H ..`` in PyTorch's natural
                   order ``i, f, g, o`` (column ``d*4H + g*H + u``).  The input projection writes the
                   pre-activations; in training the forward recurrence overwrites them with the activations
                   and the backward recurrence with ``dZ``, the gradient w.r.t. the pre-activations;
``Y``  (T*B, 2H)   hidden states ``[forward | backward]`` (the layer output), zero at padded frames;
``C``  (T*B, 2H)   cell states (training only), zero at padded frames.

Direction ``d = 1`` reads frame ``t`` at step ``T - 1 - t``; an utterance is active at frame ``t`` when
``t < lengths[b]``, and inactive rows get ``h = c = 0`` written at every step.  So the previous hidden state
of frame ``t`` is simply row ``t -+ 1`` of ``Y`` (zero at the padded frame after an utterance's end, where
the backward direction starts), and the padded frames contribute exact zeros to every product.

Kernels
-------
* :func:`gemm_kernel` -- ``C = op(A) @ B (+ bias)``: tiled shared-memory matrix product (block tile
  ``GEMM_BM x GEMM_BN``, k-tiles of ``GEMM_BK``, a ``GEMM_TM x GEMM_TN`` register micro-tile per thread with
  strided rows/columns so shared-memory reads are conflict-free and global writes coalesced).  ``op(A)`` is
  ``A`` or, for the weight gradients ``X^T dZ``, ``A^T``.  It computes the input projection of all frames of
  both directions in one product, the output layer, ``dX = dZ W_ih``, ``dY = dlogits W_out`` and the weight
  gradients.  Blocks loop over tiles (grid-stride), so any grid size is correct.
* **Persistent recurrence** (small batches, ``B <= PERSIST_MAXB``): :func:`lstm_persistent_kernel` runs a
  whole layer, both directions, in ONE launch.  Block ``j`` of direction ``d`` owns hidden units
  ``[j*U, (j+1)*U)``: it copies its ``4U x H`` slice of ``W_hh`` into shared memory once (rows padded to
  ``H + 1`` floats: conflict-free) and keeps its cell states in shared memory for all ``T`` steps.  Per step
  it reads the previous hidden states of its direction (``B x H`` floats from ``Y``, L2-resident), computes
  its ``4U`` gate rows as split-k dot products (partials reduced through shared memory), applies the fused
  gate non-linearities and the cell update, and writes its slice of ``h``.  The step boundary is a grid-wide
  barrier, ``cuda.cg.this_grid().sync()``, which is only safe when every block is resident at once: the
  kernel is launched cooperatively (Numba does so for any kernel that uses grid groups) and the host checks
  ``max_cooperative_grid_blocks`` (the occupancy API) for the block size and dynamic shared memory first.
  Where it does not fit, or grid groups are unavailable, the same step body runs one launch per step
  (:func:`lstm_persistent_step_kernel`: the kernel boundary is the barrier) or the batched design below.
  Under the simulator (blocks run one after another, ``grid.sync()`` is a block barrier) the persistent
  kernel is launched with one block per direction: the two directions are independent, so that is exact.
* **Batched recurrence** (large batches): :func:`lstm_step_kernel`, one launch per step for both
  directions (grid z = direction).  The step is a tiled product ``h_{t-1} (B x H) @ W_hh^T`` whose weight
  columns are packed per tile of ``STEP_BU`` units as ``[i | f | g | o]`` (:func:`pack_step_weights`), so
  each thread's register tile holds all four gates of its units and the cell update is fused in the
  epilogue (cell states in a small global state buffer).
* :func:`lstm_backward_step_kernel` -- one BPTT step of both directions: ``dh = dY + dZ_next @ W_hh``
  (tiled product, ``K = 4H``) with the derivative of the cell fused in the epilogue; ``dc`` is carried in a
  state buffer.  Weight gradients are then three products per layer: ``X^T dZ`` and, per direction,
  ``Y_shifted^T dZ`` (the shift is a row offset of ``B`` in the time-major layout), and the bias gradient is
  a column sum (:func:`colsum_kernel`).
* :func:`stack_frames_kernel`, :func:`mul_kernel` -- frame stacking into the time-major layout, dropout masks.

Gate non-linearities use CUDA's ``expf``/``tanhf`` (the CPU kernels use a rational approximation; the two
differ by < 1e-6).  Kernels are compiled on first use and cached on disk (``cache=True``).  The builtins
``min``/``max`` are avoided in device code (the CUDA target of some Numba versions fails to type them).  Every
kernel also runs under ``NUMBA_ENABLE_CUDASIM=1``, where the tile sizes below are made small (the simulator runs
one Python thread per CUDA thread); ``tools/gpu_check.py --ptx`` compiles them all for sm_90 without a GPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32
from numba.core import config as _nb_config

__all__ = ["SIMULATOR", "gemm_kernel", "lstm_persistent_kernel", "lstm_persistent_step_kernel", "lstm_step_kernel",
           "lstm_backward_step_kernel", "stack_frames_kernel", "mul_kernel", "colsum_kernel", "pack_step_weights",
           "persistent_smem_floats", "fill_kernel"]

#: True when Numba's CUDA simulator is in use (tile sizes are then tiny: one Python thread per CUDA thread)
SIMULATOR = bool(_nb_config.ENABLE_CUDASIM)

if SIMULATOR:
    GEMM_BM, GEMM_BN, GEMM_BK, GEMM_TM, GEMM_TN = 8, 8, 4, 4, 4
    STEP_BM, STEP_BU, STEP_BK, STEP_TM, STEP_TU = 2, 2, 4, 1, 1
    PERSIST_THREADS = 4
    PERSIST_MAXB = 3
    ELEM_THREADS = 4
else:
    GEMM_BM, GEMM_BN, GEMM_BK, GEMM_TM, GEMM_TN = 64, 64, 16, 4, 4
    STEP_BM, STEP_BU, STEP_BK, STEP_TM, STEP_TU = 16, 16, 16, 2, 2
    PERSIST_THREADS = 256
    PERSIST_MAXB = 8
    ELEM_THREADS = 256

_GT_M = GEMM_BM // GEMM_TM
_GT_N = GEMM_BN // GEMM_TN
#: threads of a :func:`gemm_kernel` block
GEMM_THREADS = _GT_M * _GT_N
_ST_M = STEP_BM // STEP_TM
_ST_U = STEP_BU // STEP_TU
#: threads of a :func:`lstm_step_kernel` / :func:`lstm_backward_step_kernel` block
STEP_THREADS = _ST_M * _ST_U
_SBN = 4 * STEP_BU
_GBM1 = GEMM_BM + 1
_SBM1 = STEP_BM + 1

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


# ---------------------------------------------------------------- matrix product
@cuda.jit(cache=True)
def gemm_kernel(A, ta, Bm, bias, has_bias, C, M, N, K):
    """``C[m, n] = sum_k op(A)[m, k] * Bm[k, n] (+ bias[n])`` for ``m < M, n < N``.

    ``op(A)`` is ``A`` (M, K) when ``ta == 0`` and ``A.T`` with ``A`` stored (K, M) when ``ta == 1``.
    ``Bm`` is (K, N).  Any strides; launch with ``GEMM_THREADS`` threads and any number of blocks.
    """
    As = cuda.shared.array((GEMM_BK, _GBM1), float32)
    Bs = cuda.shared.array((GEMM_BK, GEMM_BN), float32)
    acc = cuda.local.array((GEMM_TM, GEMM_TN), float32)
    av = cuda.local.array(GEMM_TM, float32)
    tid = cuda.threadIdx.x
    tx = tid % _GT_N
    ty = tid // _GT_N
    tiles_n = (N + GEMM_BN - 1) // GEMM_BN
    tiles = tiles_n * ((M + GEMM_BM - 1) // GEMM_BM)
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        m0 = (tile // tiles_n) * GEMM_BM
        n0 = (tile % tiles_n) * GEMM_BN
        for i in range(GEMM_TM):
            for j in range(GEMM_TN):
                acc[i, j] = 0
        for k0 in range(0, K, GEMM_BK):
            for e in range(tid, GEMM_BM * GEMM_BK, GEMM_THREADS):
                if ta:
                    mm = e % GEMM_BM
                    kk = e // GEMM_BM
                    m = m0 + mm
                    k = k0 + kk
                    As[kk, mm] = A[k, m] if (m < M and k < K) else _ZERO
                else:
                    kk = e % GEMM_BK
                    mm = e // GEMM_BK
                    m = m0 + mm
                    k = k0 + kk
                    As[kk, mm] = A[m, k] if (m < M and k < K) else _ZERO
            for e in range(tid, GEMM_BK * GEMM_BN, GEMM_THREADS):
                nn = e % GEMM_BN
                kk = e // GEMM_BN
                n = n0 + nn
                k = k0 + kk
                Bs[kk, nn] = Bm[k, n] if (n < N and k < K) else _ZERO
            cuda.syncthreads()
            for kk in range(GEMM_BK):
                for i in range(GEMM_TM):
                    av[i] = As[kk, ty + i * _GT_M]
                for j in range(GEMM_TN):
                    bv = Bs[kk, tx + j * _GT_N]
                    for i in range(GEMM_TM):
                        acc[i, j] += av[i] * bv
            cuda.syncthreads()
        for i in range(GEMM_TM):
            m = m0 + ty + i * _GT_M
            if m < M:
                for j in range(GEMM_TN):
                    n = n0 + tx + j * _GT_N
                    if n < N:
                        v = acc[i, j]
                        if has_bias:
                            v += bias[n]
                        C[m, n] = v


@cuda.jit(cache=True)
def colsum_kernel(A, M, N, out):
    """``out[n] += sum_m A[m, n]`` (``out`` zeroed by the caller): threads over columns, blocks over row chunks
    (``gridDim.y``), partial sums added atomically."""
    n = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if n < N:
        s = _ZERO
        for m in range(cuda.blockIdx.y, M, cuda.gridDim.y):
            s += A[m, n]
        cuda.atomic.add(out, n, s)


# ---------------------------------------------------------------- element-wise
@cuda.jit(cache=True)
def stack_frames_kernel(feats, lengths, k, T2, X):
    """``X[t*B + b, j*D + d] = feats[b, t*k + j, d]`` (zero at or past ``lengths[b]``): frame stacking by ``k``
    into the time-major layout.  ``feats`` is (B, T, D); any grid (grid-stride loop)."""
    B = feats.shape[0]
    T = feats.shape[1]
    D = feats.shape[2]
    W = D * k
    total = T2 * B * W
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        col = e % W
        row = e // W
        t = row // B
        b = row - t * B
        j = col // D
        dd = col - j * D
        f = t * k + j
        X[row, col] = feats[b, f, dd] if (f < lengths[b] and f < T) else _ZERO


@cuda.jit(cache=True)
def mul_kernel(A, Mk, out, R, N):
    """``out[r, n] = A[r, n] * Mk[r, n]`` for ``r < R, n < N`` (dropout masks; ``out`` may be ``A``); any grid."""
    for e in range(cuda.grid(1), R * N, cuda.gridsize(1)):
        r = e // N
        n = e - r * N
        out[r, n] = A[r, n] * Mk[r, n]


# ---------------------------------------------------------------- the LSTM cell
@cuda.jit(device=True)
def _sigmoid(x):
    return _ONE / (_ONE + math.exp(-x))


@cuda.jit(device=True)
def _cell_store(Z, Y, C, train, row, d, H, u, ai, af, ag, ao, cp):
    """Gates ``Z[row] + a`` of unit ``u`` of direction ``d``: activations, c, h; returns the new c."""
    zc = d * 4 * H + u
    ig = _sigmoid(Z[row, zc] + ai)
    fg = _sigmoid(Z[row, zc + H] + af)
    gg = math.tanh(Z[row, zc + 2 * H] + ag)
    og = _sigmoid(Z[row, zc + 3 * H] + ao)
    c = fg * cp + ig * gg
    Y[row, d * H + u] = og * math.tanh(c)
    if train:
        C[row, d * H + u] = c
        Z[row, zc] = ig
        Z[row, zc + H] = fg
        Z[row, zc + 2 * H] = gg
        Z[row, zc + 3 * H] = og
    return c


@cuda.jit(device=True)
def _cell_or_pad(Z, Y, C, train, lengths, t, b, B, d, H, u, ai, af, ag, ao, cp):
    """:func:`_cell_store` for frame ``t`` of row ``b``, or zeros (state, output, stored cell) past its length."""
    row = t * B + b
    if t < lengths[b]:
        return _cell_store(Z, Y, C, train, row, d, H, u, ai, af, ag, ao, cp)
    Y[row, d * H + u] = 0
    if train:
        C[row, d * H + u] = 0
    return _ZERO


@cuda.jit(device=True)
def _step_frames(d, T, s):
    """Frame processed at step ``s`` by direction ``d`` and the frame of its previous state (-1 or T: none)."""
    if d == 0:
        return s, s - 1
    return T - 1 - s, T - s


# ---------------------------------------------------------------- persistent recurrence
def persistent_smem_floats(B, H, U, threads):
    """float32 words of dynamic shared memory of :func:`lstm_persistent_kernel` for ``U`` units per block."""
    R4 = 4 * U
    P = max(1, threads // R4)
    return R4 * (H + 1) + B * H + P * B * R4 + B * R4 + B * U


@cuda.jit(device=True)
def _persist_setup(W, cst, d, H, B, u0, U, Ws, cs):
    """Copy this block's ``4U x H`` slice of ``W_hh`` (rows ``g*U + uu`` <- natural row ``g*H + u0 + uu``)
    into shared memory, and the cell states of its units."""
    R4 = 4 * U
    HS = H + 1
    for e in range(cuda.threadIdx.x, R4 * H, cuda.blockDim.x):
        r = e // H
        k = e - r * H
        g = r // U
        u = u0 + r - g * U
        Ws[r * HS + k] = W[d, g * H + u, k] if u < H else _ZERO
    for e in range(cuda.threadIdx.x, B * U, cuda.blockDim.x):
        b = e // U
        u = u0 + e - b * U
        cs[e] = cst[d, b, u] if u < H else _ZERO
    cuda.syncthreads()


@cuda.jit(device=True)
def _persist_finish(cst, d, H, B, u0, U, cs):
    for e in range(cuda.threadIdx.x, B * U, cuda.blockDim.x):
        b = e // U
        u = u0 + e - b * U
        if u < H:
            cst[d, b, u] = cs[e]


@cuda.jit(device=True)
def _persist_step(Z, Y, C, train, lengths, T, B, H, d, u0, U, s, Ws, hs, ps, gs, cs):
    """One time step of this block's units (see the module docstring)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    R4 = 4 * U
    HS = H + 1
    P = nt // R4
    if P < 1:
        P = 1
    t, tp = _step_frames(d, T, s)
    have_prev = tp >= 0 and tp < T
    # previous hidden states of every row of the batch (all units of this direction)
    for e in range(tid, B * H, nt):
        b = e // H
        k = e - b * H
        hs[e] = Y[tp * B + b, d * H + k] if have_prev else _ZERO
    cuda.syncthreads()
    # split-k partial dot products: item (gate row r, part p)
    KC = (H + P - 1) // P
    acc = cuda.local.array(PERSIST_MAXB, float32)
    for item in range(tid, R4 * P, nt):
        r = item % R4
        p = item // R4
        for b in range(PERSIST_MAXB):
            acc[b] = 0
        k1 = (p + 1) * KC
        if k1 > H:
            k1 = H
        for k in range(p * KC, k1):
            w = Ws[r * HS + k]
            for b in range(PERSIST_MAXB):
                if b < B:
                    acc[b] += w * hs[b * H + k]
        for b in range(PERSIST_MAXB):
            if b < B:
                ps[(p * B + b) * R4 + r] = acc[b]
    cuda.syncthreads()
    for item in range(tid, B * R4, nt):
        b = item // R4
        r = item - b * R4
        sacc = _ZERO
        for p in range(P):
            sacc += ps[(p * B + b) * R4 + r]
        gs[item] = sacc
    cuda.syncthreads()
    # fused gates and cell update of the units this block owns
    for item in range(tid, B * U, nt):
        b = item // U
        uu = item - b * U
        u = u0 + uu
        if u < H:
            q = b * R4 + uu
            cs[item] = _cell_or_pad(Z, Y, C, train, lengths, t, b, B, d, H, u, gs[q], gs[q + U], gs[q + 2 * U],
                                    gs[q + 3 * U], cs[item])


@cuda.jit(device=True)
def _persist_views(sm, B, H, U):
    R4 = 4 * U
    P = cuda.blockDim.x // R4
    if P < 1:
        P = 1
    o1 = R4 * (H + 1)
    o2 = o1 + B * H
    o3 = o2 + P * B * R4
    o4 = o3 + B * R4
    return sm[0:o1], sm[o1:o2], sm[o2:o3], sm[o3:o4], sm[o4:o4 + B * U]


@cuda.jit(cache=True)
def lstm_persistent_kernel(Z, Y, C, train, W, cst, lengths, T, B, H, U, nblk, s0, s1):
    """Steps ``s0 .. s1-1`` of one layer, both directions, in one cooperative launch.

    Grid: ``2 * nblk`` blocks (block ``j`` of direction ``d`` is ``d * nblk + j``, units ``[j*U, (j+1)*U)``),
    dynamic shared memory :func:`persistent_smem_floats` words.  ``W`` is ``W_hh`` of both directions,
    (2, 4H, H) natural layout; ``cst`` (2, B, H) the cell states in and out; ``train`` (0/1) also stores the
    activations in ``Z`` and the cell states in ``C``.  Steps are separated by ``this_grid().sync()``: every
    block must be co-resident (cooperative launch, checked with the occupancy API by the caller).
    """
    sm = cuda.shared.array(0, float32)
    d = cuda.blockIdx.x // nblk
    u0 = (cuda.blockIdx.x - d * nblk) * U
    Ws, hs, ps, gs, cs = _persist_views(sm, B, H, U)
    _persist_setup(W, cst, d, H, B, u0, U, Ws, cs)
    grid = cuda.cg.this_grid()
    for s in range(s0, s1):
        if s > s0:
            grid.sync()
        _persist_step(Z, Y, C, train, lengths, T, B, H, d, u0, U, s, Ws, hs, ps, gs, cs)
    _persist_finish(cst, d, H, B, u0, U, cs)


@cuda.jit(cache=True)
def lstm_persistent_step_kernel(Z, Y, C, train, W, cst, lengths, T, B, H, U, nblk, s):
    """Step ``s`` of :func:`lstm_persistent_kernel` as an ordinary (non-cooperative) launch: the same step
    body, the kernel boundary as the barrier (fallback where a cooperative grid does not fit)."""
    sm = cuda.shared.array(0, float32)
    d = cuda.blockIdx.x // nblk
    u0 = (cuda.blockIdx.x - d * nblk) * U
    Ws, hs, ps, gs, cs = _persist_views(sm, B, H, U)
    _persist_setup(W, cst, d, H, B, u0, U, Ws, cs)
    _persist_step(Z, Y, C, train, lengths, T, B, H, d, u0, U, s, Ws, hs, ps, gs, cs)
    _persist_finish(cst, d, H, B, u0, U, cs)


# ---------------------------------------------------------------- batched recurrence
def pack_step_weights(w_hh):
    """``W_hh`` of both directions (2, 4H, H) -> the operand of :func:`lstm_step_kernel`, (2, H, 4 Hp).

    Column ``(u // STEP_BU) * 4 STEP_BU + g * STEP_BU + u % STEP_BU`` holds gate ``g`` of unit ``u``
    (transposed: row = input unit); units padded to ``Hp``, a multiple of ``STEP_BU``, with zeros.
    """
    w = np.asarray(w_hh, np.float32)
    H = w.shape[2]
    nb = -(-H // STEP_BU)
    Hp = nb * STEP_BU
    out = np.zeros((2, 4, Hp, H), np.float32)
    out[:, :, :H] = w.reshape(2, 4, H, H)
    # (2, g, nb, BU, k) -> (2, k, nb, g, BU)
    out = out.reshape(2, 4, nb, STEP_BU, H).transpose(0, 4, 2, 1, 3).reshape(2, H, 4 * Hp)
    return np.ascontiguousarray(out)


@cuda.jit(cache=True)
def lstm_step_kernel(Z, Y, C, train, WP, cst, lengths, T, B, H, s):
    """Step ``s`` of one layer, both directions (grid ``(ceil(H/STEP_BU), ceil(B/STEP_BM), 2)``,
    ``STEP_THREADS`` threads): ``gates = Z[t] + h_prev @ W_hh^T`` as a tiled product with the cell fused.

    ``WP`` from :func:`pack_step_weights`; ``cst`` (2, B, H) holds the cell states between steps.
    """
    hsm = cuda.shared.array((STEP_BK, _SBM1), float32)
    wsm = cuda.shared.array((STEP_BK, _SBN), float32)
    acc = cuda.local.array((STEP_TM, 4, STEP_TU), float32)
    hv = cuda.local.array(STEP_TM, float32)
    d = cuda.blockIdx.z
    t, tp = _step_frames(d, T, s)
    have_prev = tp >= 0 and tp < T
    m0 = cuda.blockIdx.y * STEP_BM
    ub = cuda.blockIdx.x
    n0 = ub * _SBN
    tid = cuda.threadIdx.x
    tx = tid % _ST_U
    ty = tid // _ST_U
    for i in range(STEP_TM):
        for g in range(4):
            for j in range(STEP_TU):
                acc[i, g, j] = 0
    for k0 in range(0, H, STEP_BK):
        for e in range(tid, STEP_BM * STEP_BK, STEP_THREADS):
            kk = e % STEP_BK
            mm = e // STEP_BK
            b = m0 + mm
            k = k0 + kk
            hsm[kk, mm] = Y[tp * B + b, d * H + k] if (have_prev and b < B and k < H) else _ZERO
        for e in range(tid, STEP_BK * _SBN, STEP_THREADS):
            nn = e % _SBN
            kk = e // _SBN
            k = k0 + kk
            wsm[kk, nn] = WP[d, k, n0 + nn] if k < H else _ZERO
        cuda.syncthreads()
        for kk in range(STEP_BK):
            for i in range(STEP_TM):
                hv[i] = hsm[kk, ty + i * _ST_M]
            for g in range(4):
                for j in range(STEP_TU):
                    w = wsm[kk, g * STEP_BU + tx + j * _ST_U]
                    for i in range(STEP_TM):
                        acc[i, g, j] += hv[i] * w
        cuda.syncthreads()
    for i in range(STEP_TM):
        b = m0 + ty + i * _ST_M
        if b < B:
            for j in range(STEP_TU):
                u = ub * STEP_BU + tx + j * _ST_U
                if u < H:
                    cst[d, b, u] = _cell_or_pad(Z, Y, C, train, lengths, t, b, B, d, H, u, acc[i, 0, j],
                                                acc[i, 1, j], acc[i, 2, j], acc[i, 3, j], cst[d, b, u])


# ---------------------------------------------------------------- backward through time
@cuda.jit(cache=True)
def lstm_backward_step_kernel(Z, C, dY, W, dcst, lengths, T, B, H, s):
    """Step ``s`` of the backward pass of one layer, both directions (grid ``(ceil(H/STEP_BU),
    ceil(B/STEP_BM), 2)``, ``STEP_THREADS`` threads).

    Direction ``d`` handles frame ``t = T-1-s`` (forward direction) or ``t = s``; ``dh = dY[t] + dZ[t_next] @
    W_hh`` where ``t_next`` is the frame processed at the previous step.  On entry ``Z[t]`` holds the gate
    activations; on exit ``dZ[t]`` (zero at padded frames).  ``W`` is ``W_hh`` (2, 4H, H) natural layout;
    ``dcst`` (2, B, H) carries ``dc`` (zeroed by the caller before step 0).
    """
    asm = cuda.shared.array((STEP_BK, _SBM1), float32)
    wsm = cuda.shared.array((STEP_BK, STEP_BU), float32)
    acc = cuda.local.array((STEP_TM, STEP_TU), float32)
    hv = cuda.local.array(STEP_TM, float32)
    d = cuda.blockIdx.z
    if d == 0:
        t = T - 1 - s
        tn = t + 1
        tc0 = t - 1
    else:
        t = s
        tn = t - 1
        tc0 = t + 1
    have_next = tn >= 0 and tn < T
    have_cprev = tc0 >= 0 and tc0 < T
    G = 4 * H
    m0 = cuda.blockIdx.y * STEP_BM
    u0 = cuda.blockIdx.x * STEP_BU
    tid = cuda.threadIdx.x
    tx = tid % _ST_U
    ty = tid // _ST_U
    for i in range(STEP_TM):
        for j in range(STEP_TU):
            acc[i, j] = 0
    for k0 in range(0, G, STEP_BK):
        for e in range(tid, STEP_BM * STEP_BK, STEP_THREADS):
            kk = e % STEP_BK
            mm = e // STEP_BK
            b = m0 + mm
            k = k0 + kk
            asm[kk, mm] = Z[tn * B + b, d * G + k] if (have_next and b < B and k < G) else _ZERO
        for e in range(tid, STEP_BK * STEP_BU, STEP_THREADS):
            nn = e % STEP_BU
            kk = e // STEP_BU
            k = k0 + kk
            u = u0 + nn
            wsm[kk, nn] = W[d, k, u] if (k < G and u < H) else _ZERO
        cuda.syncthreads()
        for kk in range(STEP_BK):
            for i in range(STEP_TM):
                hv[i] = asm[kk, ty + i * _ST_M]
            for j in range(STEP_TU):
                w = wsm[kk, tx + j * _ST_U]
                for i in range(STEP_TM):
                    acc[i, j] += hv[i] * w
        cuda.syncthreads()
    for i in range(STEP_TM):
        b = m0 + ty + i * _ST_M
        if b < B:
            row = t * B + b
            for j in range(STEP_TU):
                u = u0 + tx + j * _ST_U
                if u < H:
                    zc = d * G + u
                    if t < lengths[b]:
                        ig = Z[row, zc]
                        fg = Z[row, zc + H]
                        gg = Z[row, zc + 2 * H]
                        og = Z[row, zc + 3 * H]
                        c = C[row, d * H + u]
                        cp = C[tc0 * B + b, d * H + u] if have_cprev else _ZERO
                        tc = math.tanh(c)
                        dh = acc[i, j] + dY[row, d * H + u]
                        dcn = dcst[d, b, u] + dh * og * (_ONE - tc * tc)
                        Z[row, zc] = dcn * gg * (ig - ig * ig)
                        Z[row, zc + H] = dcn * cp * (fg - fg * fg)
                        Z[row, zc + 2 * H] = dcn * ig * (_ONE - gg * gg)
                        Z[row, zc + 3 * H] = dh * tc * (og - og * og)
                        dcst[d, b, u] = dcn * fg
                    else:
                        Z[row, zc] = 0
                        Z[row, zc + H] = 0
                        Z[row, zc + 2 * H] = 0
                        Z[row, zc + 3 * H] = 0
                        dcst[d, b, u] = 0


@cuda.jit(cache=True)
def fill_kernel(a, n, value):
    """``a[:n] = value`` (1-D); any grid."""
    for e in range(cuda.grid(1), n, cuda.gridsize(1)):
        a[e] = value
