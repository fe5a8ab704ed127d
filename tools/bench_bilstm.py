"""Benchmark the Numba BiLSTM kernels against torch.nn.LSTM on CPU.

3 layers, 320 hidden units per direction, 40 inputs, T frames, 2 threads on both
sides (``numba.set_num_threads(2)``, ``torch.set_num_threads(2)``), same weights.
Both sides run interleaved, best of ``repeats``; the speedup is torch time / ours.

Usage: ``python tools/bench_bilstm.py [--T 1000] [--repeats 3] [--batch 1 16]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _make_weights(rng, layers, inp, hidden):
    """Random PyTorch-style weights: per layer a (fw, bw) pair of (w_ih, w_hh, bias)."""
    s = 1.0 / np.sqrt(hidden)
    out = []
    for layer in range(layers):
        In = inp if layer == 0 else 2 * hidden
        pair = []
        for _ in range(2):
            w_ih = rng.uniform(-s, s, (4 * hidden, In)).astype(np.float32)
            w_hh = rng.uniform(-s, s, (4 * hidden, hidden)).astype(np.float32)
            b_ih = rng.uniform(-s, s, 4 * hidden).astype(np.float32)
            b_hh = rng.uniform(-s, s, 4 * hidden).astype(np.float32)
            pair.append((w_ih, w_hh, b_ih, b_hh))
        out.append(pair)
    return out


def bench_bilstm(batch_sizes=(1, 16), T=1000, repeats=3, layers=3, hidden=320, inp=40,
                 threads=2, seed=0):
    """Time a 3-layer BiLSTM stack: Numba kernels vs torch.nn.LSTM (CPU, inference mode).

    Parameters
    ----------
    batch_sizes : sequence of int
        Batch sizes to time (all utterances have ``T`` frames).
    T : int
        Frames per utterance.
    repeats : int
        Timed runs per side and batch size (best is kept); runs are interleaved.
    layers, hidden, inp : int
        Model shape: stacked layers, hidden units per direction, input features.
    threads : int
        Threads for both Numba and torch.
    seed : int
        Seed of the random weights and inputs.

    Returns
    -------
    dict
        ``numba_ms_b{B}``, ``torch_ms_b{B}``, ``bilstm_speedup_vs_torch_b{B}``,
        ``max_abs_diff_b{B}`` per batch size; ``torch_note`` instead of the torch
        keys when torch cannot be imported.

    Examples
    --------
    >>> r = bench_bilstm(batch_sizes=(1,), T=20, repeats=1, hidden=32)  # doctest: +SKIP
    >>> sorted(r)[:2]  # doctest: +SKIP
    ['bilstm_speedup_vs_torch_b1', 'max_abs_diff_b1']
    """
    import numba

    from speechlstm.kernels import lstm

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(seed)
    weights = _make_weights(rng, layers, inp, hidden)
    packs = [tuple(lstm.pack_direction(w_ih, w_hh, b_ih + b_hh) for (w_ih, w_hh, b_ih, b_hh) in pair)
             for pair in weights]

    def ours(x, lengths):
        for fw, bw in packs:
            x = lstm.bilstm_layer(x, lengths, fw, bw)
        return x

    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a bench-only peer
        torch = None
    result = {}
    model = None
    if torch is None:
        result["torch_note"] = "torch not importable: peer skipped"
    else:
        torch.set_num_threads(threads)
        model = torch.nn.LSTM(inp, hidden, layers, bidirectional=True, batch_first=True)
        with torch.no_grad():
            for layer, pair in enumerate(weights):
                for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(pair):
                    sfx = f"_l{layer}" + ("_reverse" if d else "")
                    getattr(model, "weight_ih" + sfx).copy_(torch.from_numpy(w_ih))
                    getattr(model, "weight_hh" + sfx).copy_(torch.from_numpy(w_hh))
                    getattr(model, "bias_ih" + sfx).copy_(torch.from_numpy(b_ih))
                    getattr(model, "bias_hh" + sfx).copy_(torch.from_numpy(b_hh))
        model.eval()

    for B in batch_sizes:
        x = rng.standard_normal((B, T, inp)).astype(np.float32)
        lengths = np.full(B, T, np.int32)
        y = ours(x, lengths)  # warm-up (compiles on a cold cache)
        t_ours = []
        t_torch = []
        if model is not None:
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                yt = model(xt)[0].numpy()
            result[f"max_abs_diff_b{B}"] = float(np.abs(yt - y).max())
        for _ in range(repeats):
            t0 = time.perf_counter()
            ours(x, lengths)
            t_ours.append(time.perf_counter() - t0)
            if model is not None:
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    model(xt)
                    t_torch.append(time.perf_counter() - t0)
        result[f"numba_ms_b{B}"] = 1e3 * min(t_ours)
        if model is not None:
            result[f"torch_ms_b{B}"] = 1e3 * min(t_torch)
            result[f"bilstm_speedup_vs_torch_b{B}"] = min(t_torch) / min(t_ours)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    args = ap.parse_args(argv)
    res = bench_bilstm(batch_sizes=tuple(args.batch), T=args.T, repeats=args.repeats)
    for k, v in res.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
