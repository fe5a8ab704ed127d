"""Benchmark the Numba CTC loss + gradient against torch.nn.functional.ctc_loss on CPU.

Both sides compute the summed CTC loss of a batch *and* its gradient with respect to the unnormalized
logits from the same float32 data: ours is ``ctc_loss_and_grad`` (log-softmax included); torch's is
``log_softmax`` + ``F.ctc_loss(reduction="sum")`` + ``backward()``.  Default shapes: batch 16, T=500 frames
(lengths 400..500), 30 output classes, label lengths 60..100; 2 threads on both sides
(``numba.set_num_threads``, ``torch.set_num_threads``).  The sides run interleaved, best of ``repeats``;
the speedup is torch time / ours.

Usage: ``python tools/bench_ctc_loss.py [--repeats 5] [--batch 16] [--T 500] [--V 30]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_batch(batch=16, T=500, V=30, label_range=(60, 100), seed=0):
    """Random logits (B, T, V) float32, frame lengths in ``[0.8 T, T]`` (one utterance of ``T``), random labels."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((batch, T, V)) * 2.0).astype(np.float32)
    lengths = rng.integers(int(0.8 * T), T + 1, batch).astype(np.int32)
    lengths[0] = T
    label_lengths = rng.integers(label_range[0], label_range[1] + 1, batch).astype(np.int32)
    labels = rng.integers(1, V, (batch, label_range[1])).astype(np.int32)
    return logits, lengths, labels, label_lengths


def bench_ctc_loss(repeats=5, batch=16, T=500, V=30, label_range=(60, 100), threads=2, seed=0):
    """Time CTC loss + gradient w.r.t. the logits: Numba kernel vs torch (CPU).

    Parameters
    ----------
    repeats : int
        Timed runs per side (best is kept); the sides alternate.
    batch, T, V : int
        Utterances, frames (the longest; others have ``0.8 T .. T``), output classes (blank = 0).
    label_range : (int, int)
        Label lengths are drawn uniformly from this closed range.
    threads : int
        Threads for both Numba and torch.
    seed : int
        Seed of the random data.

    Returns
    -------
    dict
        ``numba_ms``, ``torch_ms``, ``ctc_loss_speedup_vs_torch`` (torch / numba), ``threads``; the errors of
        both float32 results against torch in float64: ``loss_rel_err_numba``, ``loss_rel_err_torch`` (summed
        loss), ``grad_max_abs_err_numba``, ``grad_max_abs_err_torch``; ``torch_note`` instead of the torch keys
        when torch cannot be imported.

    Examples
    --------
    >>> r = bench_ctc_loss(repeats=1, batch=2, T=50, V=6, label_range=(5, 10))  # doctest: +SKIP
    >>> r["ctc_loss_speedup_vs_torch"] > 0  # doctest: +SKIP
    True
    """
    import numba

    from speechlstm.kernels.ctc_loss import ctc_loss_and_grad

    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(threads)
    logits, lengths, labels, label_lengths = make_batch(batch, T, V, label_range, seed)
    result = {"threads": threads}

    def ours():
        losses, grad = ctc_loss_and_grad(logits, lengths, labels, label_lengths, blank=0)
        return float(losses.sum()), grad

    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a bench-only peer
        torch = None
        result["torch_note"] = "torch not importable: peer skipped"

    if torch is not None:
        torch.set_num_threads(threads)
        F = torch.nn.functional
        xt = torch.from_numpy(logits).requires_grad_()
        tl = torch.from_numpy(labels.astype(np.int64))
        til = torch.from_numpy(lengths.astype(np.int64))
        ttl = torch.from_numpy(label_lengths.astype(np.int64))

        def peer():
            xt.grad = None
            lp = torch.log_softmax(xt, dim=-1).transpose(0, 1)  # (T, B, V)
            loss = F.ctc_loss(lp, tl, til, ttl, blank=0, reduction="sum", zero_infinity=False)
            loss.backward()
            return float(loss.detach()), xt.grad

    s_ours, g_ours = ours()  # warm-up (compiles on a cold cache)
    t_ours, t_torch = [], []
    if torch is not None:
        s_peer, g_peer = peer()
        # accuracy of both float32 results against torch in float64 (not timed)
        x64 = torch.from_numpy(logits.astype(np.float64)).requires_grad_()
        loss64 = F.ctc_loss(torch.log_softmax(x64, dim=-1).transpose(0, 1), tl, til, ttl, blank=0,
                            reduction="sum", zero_infinity=False)
        loss64.backward()
        s_ref, g_ref = float(loss64.detach()), x64.grad.numpy()
        result["loss_rel_err_numba"] = abs(s_ours - s_ref) / abs(s_ref)
        result["loss_rel_err_torch"] = abs(s_peer - s_ref) / abs(s_ref)
        result["grad_max_abs_err_numba"] = float(np.abs(g_ours - g_ref).max())
        result["grad_max_abs_err_torch"] = float(np.abs(g_peer.numpy() - g_ref).max())
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
        if torch is not None:
            t0 = time.perf_counter()
            peer()
            t_torch.append(time.perf_counter() - t0)
    result["numba_ms"] = 1e3 * min(t_ours)
    if torch is not None:
        result["torch_ms"] = 1e3 * min(t_torch)
        result["ctc_loss_speedup_vs_torch"] = min(t_torch) / min(t_ours)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--V", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    res = bench_ctc_loss(repeats=args.repeats, batch=args.batch, T=args.T, V=args.V, threads=args.threads)
    print(res)


if __name__ == "__main__":
    main()
