"""Numba kernels of the feature front end: framing, real FFT, power, sparse mel, log, DCT, deltas.

Arithmetic only; the configuration, the tables (window, filterbank, DCT) and the input checks live in
:mod:`speechlstm.features`, which is the module to call.  The convention these kernels implement is
documented there.

Design
------
Frames are processed in blocks of :data:`BLOCK` (32) frames.  Inside a block every buffer is laid out
``[row, lane]`` with the frame index in the innermost ("lane") dimension, so each step (windowing, each
FFT butterfly, the power spectrum, the mel accumulation, the logarithm, the DCT) is an elementwise
operation on 32 contiguous float64 values that LLVM turns into AVX/AVX-512 vector code.  All arithmetic is
float64 (only the output is float32): float32 FFTs cannot meet a 1e-3 dB parity on the low-energy mel
bands of real speech or of a pure tone, float64 does with a large margin.

Per block:

1. framing: pre-emphasis ``y[n] = x[n] - a*x[n-1]`` (computed on the fly, the sample before ``x[0]`` is
   the caller's ``x_prev``), zero padding outside ``[0, len(x))``, window; even/odd samples are written
   as real/imaginary part of a half-length complex sequence, directly in bit-reversed order;
2. complex FFT of length ``n_fft/2`` (radix-4 stages, one radix-2 stage first when needed), in place;
3. split into the ``n_fft/2 + 1`` bins of the real FFT, power ``|X|^2`` and scatter into the (at most)
   two mel filters each bin belongs to (the filterbank is stored as one filter index and two weights
   per bin, so the mel step costs 2 multiply-adds per bin instead of ``n_mels``);
4. ``10*log10(max(mel, floor))`` with a vectorisable logarithm (exponent from the bits, then an
   atanh series; absolute error < 1e-11 dB), then either a transposed store or the DCT.

Compilation: ``@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})``.  Integer
indices that address the lane buffers are unsigned so that Numba emits no negative-index wrap-around, and
``error_model="numpy"`` drops the division-by-zero checks; either would otherwise stop LLVM from
vectorising the lane loops.  ``contract`` only allows fused multiply-adds (no reassociation).  Each kernel
has one specialisation in normal use (float32 samples, float64 tables, int64 scalars).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["BLOCK", "fft_tables", "logmel_frames", "add_deltas", "all_finite"]

#: Number of frames processed together (the SIMD dimension): 32 float64 = four AVX-512 registers, enough
#: work per loop iteration to hide Numba's per-iteration index overhead; the block's FFT buffers (128 KiB)
#: live in L2.
BLOCK = 32

_UB = np.uint64(BLOCK)
_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


def fft_tables(n_fft: int):
    """Tables of the blocked real FFT of length ``n_fft`` (a power of two, >= 8).

    Parameters
    ----------
    n_fft : int
        FFT length.

    Returns
    -------
    bitrev : ndarray of int64, shape (n_fft // 2,)
        Bit reversal permutation of the half-length complex FFT.
    tw_re, tw_im : ndarray of float64, shape (n_fft // 2,)
        ``tw[h + j] = exp(-i*pi*j/h)`` for every power of two ``h < n_fft // 2`` and ``0 <= j < h``.
    post_cos, post_sin : ndarray of float64, shape (n_fft // 2 + 1,)
        ``cos`` and ``sin`` of ``2*pi*k/n_fft``, used to split the half-length FFT into real-FFT bins.

    Examples
    --------
    >>> rev, twr, twi, pc, ps = fft_tables(16)
    >>> rev.tolist()
    [0, 4, 2, 6, 1, 5, 3, 7]
    """
    n_fft = int(n_fft)
    if n_fft < 8 or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft must be a power of two >= 8, got {n_fft}")
    half = n_fft // 2
    bits = half.bit_length() - 1
    idx = np.arange(half, dtype=np.int64)
    rev = np.zeros(half, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    tw_re = np.zeros(half, dtype=np.float64)
    tw_im = np.zeros(half, dtype=np.float64)
    h = 1
    while h < half:
        ang = np.pi * np.arange(h, dtype=np.float64) / h
        tw_re[h:2 * h] = np.cos(ang)
        tw_im[h:2 * h] = -np.sin(ang)
        h *= 2
    k = np.arange(half + 1, dtype=np.float64)
    post_cos = np.cos(2.0 * np.pi * k / n_fft)
    post_sin = np.sin(2.0 * np.pi * k / n_fft)
    # exact values at the quarter points (cos(pi/2) is not exactly 0 in floating point)
    post_cos[half // 2] = 0.0
    post_sin[half // 2] = 1.0
    post_cos[half] = -1.0
    post_sin[half] = 0.0
    return rev, tw_re, tw_im, post_cos, post_sin


@njit(**_OPTS)
def _fft_block(zr, zi, tw_re, tw_im, half):
    """In-place complex FFT of BLOCK sequences of length ``half`` stored ``[row, lane]``, input bit-reversed."""
    h = 1
    log2 = 0
    t = half
    while t > 1:
        t >>= 1
        log2 += 1
    if log2 % 2 == 1:
        # one radix-2 stage (h = 1, twiddle 1) so that the rest is radix 4
        for start in range(0, half, 2):
            a = np.uint64(start * BLOCK)
            b = a + _UB
            for l in range(_UB):
                ar = zr[a + l]
                ai = zi[a + l]
                br = zr[b + l]
                bi = zi[b + l]
                zr[a + l] = ar + br
                zi[a + l] = ai + bi
                zr[b + l] = ar - br
                zi[b + l] = ai - bi
        h = 2
    while h < half:
        for start in range(0, half, 4 * h):
            for j in range(h):
                w1r = tw_re[h + j]
                w1i = tw_im[h + j]
                w2r = tw_re[2 * h + j]
                w2i = tw_im[2 * h + j]
                a = np.uint64((start + j) * BLOCK)
                b = np.uint64((start + j + h) * BLOCK)
                c = np.uint64((start + j + 2 * h) * BLOCK)
                d = np.uint64((start + j + 3 * h) * BLOCK)
                for l in range(_UB):
                    ar = zr[a + l]
                    ai = zi[a + l]
                    br = zr[b + l]
                    bi = zi[b + l]
                    cr = zr[c + l]
                    ci = zi[c + l]
                    dr = zr[d + l]
                    di = zi[d + l]
                    # radix-2 stage h on (a, b) and (c, d), twiddle w1
                    tbr = w1r * br - w1i * bi
                    tbi = w1r * bi + w1i * br
                    tdr = w1r * dr - w1i * di
                    tdi = w1r * di + w1i * dr
                    a1r = ar + tbr
                    a1i = ai + tbi
                    b1r = ar - tbr
                    b1i = ai - tbi
                    c1r = cr + tdr
                    c1i = ci + tdi
                    d1r = cr - tdr
                    d1i = ci - tdi
                    # radix-2 stage 2h on (a, c) with w2 and (b, d) with -i*w2
                    tcr = w2r * c1r - w2i * c1i
                    tci = w2r * c1i + w2i * c1r
                    ter = w2r * d1i + w2i * d1r
                    tei = w2i * d1i - w2r * d1r
                    zr[a + l] = a1r + tcr
                    zi[a + l] = a1i + tci
                    zr[c + l] = a1r - tcr
                    zi[c + l] = a1i - tci
                    zr[b + l] = b1r + ter
                    zi[b + l] = b1i + tei
                    zr[d + l] = b1r - ter
                    zi[d + l] = b1i - tei
        h *= 4


@njit(**_OPTS)
def _frame_block(x, x_prev, preemph, s0, hop, nb, window, bitrev, j_lo, j_hi, zr, zi):
    """Pre-emphasis + zero padding + window of frames ``s0 + l*hop`` (l < nb) into bit-reversed lanes."""
    n_x = x.shape[0]
    half = bitrev.shape[0]
    for j in range(0, j_lo):
        r = np.uint64(bitrev[j] * BLOCK)
        for l in range(_UB):
            zr[r + l] = 0.0
            zi[r + l] = 0.0
    for j in range(j_hi, half):
        r = np.uint64(bitrev[j] * BLOCK)
        for l in range(_UB):
            zr[r + l] = 0.0
            zi[r + l] = 0.0
    first = s0 + 2 * j_lo - 1               # earliest sample read (the pre-emphasis predecessor)
    last = s0 + (nb - 1) * hop + 2 * j_hi   # one past the latest sample read
    if nb == BLOCK and first >= 0 and last <= n_x:
        # interior block: no bounds to check, lanes gathered with stride hop
        uhop = np.uint64(hop)
        for j in range(j_lo, j_hi):
            r = np.uint64(bitrev[j] * BLOCK)
            we = window[2 * j]
            wo = window[2 * j + 1]
            base = np.uint64(s0 + 2 * j - 1)
            for l in range(_UB):
                n = base + l * uhop
                x0 = np.float64(x[n])
                x1 = np.float64(x[n + np.uint64(1)])
                x2 = np.float64(x[n + np.uint64(2)])
                zr[r + l] = (x1 - preemph * x0) * we
                zi[r + l] = (x2 - preemph * x1) * wo
        return
    for l in range(BLOCK):
        s = s0 + l * hop
        for j in range(j_lo, j_hi):
            r = bitrev[j] * BLOCK + l
            if l >= nb:
                zr[r] = 0.0
                zi[r] = 0.0
                continue
            for e in range(2):
                n = s + 2 * j + e
                v = 0.0
                if 0 <= n < n_x:
                    v = np.float64(x[n])
                    if n >= 1:
                        v -= preemph * np.float64(x[n - 1])
                    else:
                        v -= preemph * x_prev
                v *= window[2 * j + e]
                if e == 0:
                    zr[r] = v
                else:
                    zi[r] = v


@njit(**_OPTS)
def _log_db(buf, mant, expo, n, log_floor):
    """``buf[:n] = 10*log10(max(buf[:n], log_floor))`` in place, vectorisable (``log_floor`` > 0, normal)."""
    for i in range(n):
        v = buf[i]
        buf[i] = v if v > log_floor else log_floor
    ibuf = buf.view(np.int64)
    imant = mant.view(np.int64)
    for i in range(n):
        u = ibuf[i]
        imant[i] = (u & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
        expo[i] = np.float64((u >> 52) - 1023)
    for i in range(n):
        m = mant[i]                  # in [1, 2)
        e = expo[i]
        big = m > 1.4142135623730951
        m = 0.5 * m if big else m    # now in [0.707, 1.414]
        e = e + 1.0 if big else e
        s = (m - 1.0) / (m + 1.0)    # |s| <= 0.1716
        z = s * s
        p = 1.0 + z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (
            1.0 / 9.0 + z * (1.0 / 11.0 + z * (1.0 / 13.0 + z * (1.0 / 15.0)))))))
        # 10/ln(10) * (e*ln2 + ln m)
        buf[i] = 4.342944819032518 * (e * 0.6931471805599453 + 2.0 * s * p)


@njit(**_OPTS)
def logmel_frames(x, x_prev, preemph, first, hop, window, bitrev, tw_re, tw_im, post_cos, post_sin,
                  k_lo, k_hi, mel_idx, mel_w0, mel_w1, n_mels, log_floor, dct, out):
    """Log-mel (dB) or MFCC of ``out.shape[0]`` frames of ``x``, written into ``out[:, :n_coef]``.

    Parameters
    ----------
    x : float32[::1]
        Raw (not pre-emphasised) samples.
    x_prev : float
        The sample before ``x[0]`` (0.0 at the start of a signal), used by the pre-emphasis.
    preemph : float
        Pre-emphasis coefficient ``a`` in ``y[n] = x[n] - a*x[n-1]`` (0 disables).
    first : int
        Index in ``x`` of the first sample of frame 0 (``-n_fft//2`` for centred frames); frame ``t``
        covers ``x[first + t*hop : first + t*hop + n_fft]``, samples outside ``[0, len(x))`` are zero.
    hop : int
        Hop length in samples.
    window : float64[::1], shape (n_fft,)
        Analysis window, zero-padded to ``n_fft``.
    bitrev, tw_re, tw_im, post_cos, post_sin : arrays
        From :func:`fft_tables`.
    k_lo, k_hi : int
        Range of FFT bins with a nonzero mel weight.
    mel_idx : int64[::1], shape (n_fft//2 + 1,)
        Per bin: first mel filter the bin contributes to.
    mel_w0, mel_w1 : float64[::1], shape (n_fft//2 + 1,)
        Per bin: weights of filters ``mel_idx[k]`` and ``mel_idx[k] + 1`` (already multiplied by 1/4,
        the scale of the half-length FFT split).
    n_mels : int
        Number of mel filters.
    log_floor : float
        Power floor before the logarithm.
    dct : float64[:, ::1], shape (n_coef, n_mels)
        DCT matrix (lifter folded in) for MFCC, or shape (0, n_mels) for log-mel output.
    out : float32[:, ::1], shape (n_frames, >= n_coef)
        Output; columns ``[0, n_coef)`` are written (``n_coef = n_mels`` for log-mel).

    Examples
    --------
    See :func:`speechlstm.features.compute_features`, which prepares all arguments.
    """
    n_fft = window.shape[0]
    half = n_fft // 2
    n_frames = out.shape[0]
    zr = np.zeros(half * BLOCK)
    zi = np.zeros(half * BLOCK)
    mel = np.zeros((n_mels + 1) * BLOCK)
    mant = np.zeros(n_mels * BLOCK)
    expo = np.zeros(n_mels * BLOCK)
    acc = np.zeros(BLOCK)
    n_dct = dct.shape[0]
    # support of the window, in complex rows
    j_lo = 0
    while j_lo < half and window[2 * j_lo] == 0.0 and window[2 * j_lo + 1] == 0.0:
        j_lo += 1
    j_hi = half
    while j_hi > j_lo and window[2 * j_hi - 1] == 0.0 and window[2 * j_hi - 2] == 0.0:
        j_hi -= 1
    n_val = n_mels * BLOCK
    uhalf = np.uint64(half)
    umask = np.uint64(half - 1)
    for f0 in range(0, n_frames, BLOCK):
        nb = min(BLOCK, n_frames - f0)
        _frame_block(x, x_prev, preemph, first + f0 * hop, hop, nb, window, bitrev, j_lo, j_hi, zr, zi)
        _fft_block(zr, zi, tw_re, tw_im, half)
        for i in range(mel.shape[0]):
            mel[i] = 0.0
        # real-FFT bins X[k] from Z[k] and Z[half-k]:
        # 2X = (Z[k] + conj Z[half-k]) - i W^k (Z[k] - conj Z[half-k]),  W = exp(-2 pi i / n_fft)
        for k in range(np.uint64(k_lo), np.uint64(k_hi)):
            ka = (k & umask) * _UB
            kb = ((uhalf - k) & umask) * _UB
            c = post_cos[k]
            s = post_sin[k]
            m0 = np.uint64(mel_idx[k]) * _UB
            m1 = m0 + _UB
            w0 = mel_w0[k]
            w1 = mel_w1[k]
            for l in range(_UB):
                ar = zr[ka + l]
                ai = zi[ka + l]
                br = zr[kb + l]
                bi = zi[kb + l]
                dr = ar - br
                di = ai + bi
                xr = (ar + br) + c * di - s * dr
                xi = (ai - bi) - c * dr - s * di
                p = xr * xr + xi * xi
                mel[m0 + l] += w0 * p
                mel[m1 + l] += w1 * p
        _log_db(mel, mant, expo, n_val, log_floor)
        if n_dct == 0:
            for l in range(nb):
                for m in range(n_mels):
                    out[f0 + l, m] = mel[m * BLOCK + l]
        else:
            # mfcc[cc, lane] = sum_m dct[cc, m] * logmel[m, lane]; four mel rows per pass over acc
            m4 = n_mels - n_mels % 4
            for cc in range(n_dct):
                for l in range(_UB):
                    acc[l] = 0.0
                for m in range(0, m4, 4):
                    d0 = dct[cc, m]
                    d1 = dct[cc, m + 1]
                    d2 = dct[cc, m + 2]
                    d3 = dct[cc, m + 3]
                    r0 = np.uint64(m * BLOCK)
                    r1 = r0 + _UB
                    r2 = r1 + _UB
                    r3 = r2 + _UB
                    for l in range(_UB):
                        acc[l] += (d0 * mel[r0 + l] + d1 * mel[r1 + l]) + (d2 * mel[r2 + l] + d3 * mel[r3 + l])
                for m in range(m4, n_mels):
                    dv = dct[cc, m]
                    mm = np.uint64(m * BLOCK)
                    for l in range(_UB):
                        acc[l] += dv * mel[mm + l]
                for l in range(nb):
                    out[f0 + l, cc] = acc[l]


@njit(**_OPTS)
def add_deltas(feats, n_base, order):
    """Regression deltas (N=2, edge frames replicated) in place: columns ``[n_base, 2n_base)`` get the
    deltas of ``[0, n_base)``, and for ``order == 2`` columns ``[2n_base, 3n_base)`` the deltas of those.

    ``d[t] = sum_{n=1..2} n * (c[t+n] - c[t-n]) / 10`` with ``c[t]`` clamped to the first/last frame.

    Parameters
    ----------
    feats : float32[:, ::1], shape (n_frames, >= (1 + order) * n_base)
        Features; the static part is read from the first ``n_base`` columns.
    n_base : int
        Number of static coefficients.
    order : int
        1 or 2 (0 does nothing).

    Examples
    --------
    >>> import numpy as np
    >>> f = np.zeros((5, 2), np.float32); f[:, 0] = np.arange(5)
    >>> add_deltas(f, 1, 1)
    >>> f[:, 1].tolist()
    [0.5, 0.800000011920929, 1.0, 0.800000011920929, 0.5]
    """
    n_frames = feats.shape[0]
    last = n_frames - 1
    for o in range(order):
        src = o * n_base
        dst = src + n_base
        for t in range(n_frames):
            tm1 = max(t - 1, 0)
            tm2 = max(t - 2, 0)
            tp1 = min(t + 1, last)
            tp2 = min(t + 2, last)
            for c in range(n_base):
                v = (np.float64(feats[tp1, src + c]) - np.float64(feats[tm1, src + c])
                     + 2.0 * (np.float64(feats[tp2, src + c]) - np.float64(feats[tm2, src + c])))
                feats[t, dst + c] = v * 0.1


@njit(**_OPTS)
def all_finite(x):
    """True when no sample of the float32 array ``x`` is NaN or +-Inf (exponent bits all ones).

    Examples
    --------
    >>> import numpy as np
    >>> all_finite(np.array([0.0, 1.0], np.float32)), all_finite(np.array([0.0, np.nan], np.float32))
    (True, False)
    """
    bits = x.view(np.uint32)
    bad = np.uint32(0)
    for i in range(bits.shape[0]):
        bad |= np.uint32((bits[i] & np.uint32(0x7F800000)) == np.uint32(0x7F800000))
    return bad == 0


@njit(cache=True, nogil=True)
def biquad(x, b0, b1, b2, a1, a2):
    """One second-order IIR section over ``x`` (float64), direct form II transposed, zero initial state.

    The recursion of ``scipy.signal.sosfilt`` for one section, without importing ``scipy.signal`` (which costs
    a noticeable part of the command line's start-up); used by :mod:`speechlstm.vad` for its high-pass.
    """
    y = np.empty_like(x)
    z1 = 0.0
    z2 = 0.0
    for n in range(x.shape[0]):
        xn = x[n]
        yn = b0 * xn + z1
        z1 = b1 * xn - a1 * yn + z2
        z2 = b2 * xn - a2 * yn
        y[n] = yn
    return y
