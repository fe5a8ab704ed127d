"""Benchmark one training step of the speechlstm network against PyTorch on CPU.

One step = forward + CTC loss + backward + Adam update of every parameter, on a batch of 16 utterances of
500 frames x 40 features (all the same length, so both sides compute exactly the same function), a 3 x 320
bidirectional LSTM, 30 output classes (blank = 0), label lengths 70..90, 2 threads on both sides
(``numba.set_num_threads(2)``, ``torch.set_num_threads(2)``).

* speechlstm: :func:`speechlstm.network.forward_backward` + :class:`speechlstm.optim.Adam`;
* torch: ``torch.nn.LSTM(40, 320, 3, bidirectional=True, batch_first=True)`` + ``Linear`` + ``log_softmax``
  + ``F.ctc_loss(reduction="sum")`` + ``torch.optim.Adam``, starting from the same weights.

The sides run interleaved, best of ``repeats``; the speedup is torch time / ours.  The untimed warm-up
step of each side also checks that they agree (losses and gradients from the same weights).

Usage: ``python tools/bench_train.py [--repeats 3] [--batch 16] [--T 500] [--hidden 320]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _config(input_dim, hidden, layers, classes):
    from speechlstm.features import FeatureConfig
    from speechlstm.model import Architecture, ModelConfig

    feats = FeatureConfig(n_mels=input_dim)
    tokens = ["<blank>"] + [f"t{i}" for i in range(1, classes)]
    arch = Architecture(input_dim=feats.dim, hidden_size=hidden, num_layers=layers)
    return ModelConfig(name="bench", features=feats, architecture=arch, tokens=tokens)


def make_batch(batch=16, T=500, input_dim=40, classes=30, label_range=(70, 90), seed=0):
    """Random features (B, T, D) float32, lengths all ``T``, random labels in ``1 .. classes-1``."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((batch, T, input_dim)).astype(np.float32)
    lengths = np.full(batch, T, np.int32)
    label_lengths = rng.integers(label_range[0], label_range[1] + 1, batch).astype(np.int32)
    labels = rng.integers(1, classes, (batch, label_range[1])).astype(np.int32)
    return feats, lengths, labels, label_lengths


def bench_train_step(repeats=3, batch=16, T=500, input_dim=40, hidden=320, layers=3, classes=30,
                     label_range=(70, 90), threads=2, lr=1e-4, seed=0):
    """Time one training step (forward, CTC, backward, Adam): speechlstm vs torch (CPU, float32).

    Parameters
    ----------
    repeats : int
        Timed steps per side (best is kept); the sides alternate.
    batch, T, input_dim, hidden, layers, classes : int
        Utterances, frames per utterance, features, hidden units per direction, BiLSTM layers, output
        classes (blank = 0).
    label_range : (int, int)
        Label lengths are drawn uniformly from this closed range.
    threads : int
        Threads for both Numba and torch.
    lr : float
        Adam learning rate (both sides).
    seed : int
        Seed of the weights and the data.

    Returns
    -------
    dict
        ``numba_ms``, ``torch_ms``, ``train_step_speedup_vs_torch`` (torch / numba), ``threads``;
        ``loss_rel_diff`` (summed loss of the warm-up step, ours vs torch) and ``grad_rel_diff`` (largest
        ``|g_ours - g_torch| / |g_torch|`` over the parameter tensors); ``torch_note`` instead of the torch
        keys when torch cannot be imported.

    Examples
    --------
    >>> r = bench_train_step(repeats=1, batch=2, T=40, hidden=32, layers=2, label_range=(5, 8))  # doctest: +SKIP
    >>> r["train_step_speedup_vs_torch"] > 0  # doctest: +SKIP
    True
    """
    import numba

    from speechlstm.network import forward_backward, init_params
    from speechlstm.optim import Adam

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    cfg = _config(input_dim, hidden, layers, classes)
    params = init_params(cfg, seed=seed)
    feats, lengths, labels, label_lengths = make_batch(batch, T, input_dim, classes, label_range, seed)
    out = {"threads": threads}

    # ---- speechlstm side
    ours_params = {k: v.copy() for k, v in params.items()}
    opt = Adam(ours_params, lr=lr)

    def ours_step():
        losses, grads = forward_backward(ours_params, cfg, feats, lengths, labels, label_lengths)
        opt.step(grads)
        return losses, grads

    # ---- torch side
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:  # pragma: no cover
        torch = None
        out["torch_note"] = f"torch not available ({exc})"
    if torch is not None:
        torch.set_num_threads(threads)
        lstm = torch.nn.LSTM(input_dim, hidden, layers, bidirectional=True, batch_first=True)
        lin = torch.nn.Linear(2 * hidden, classes)
        with torch.no_grad():
            for layer in range(layers):
                for d, sfx in (("fw", ""), ("bw", "_reverse")):
                    p = f"lstm.{layer}.{d}."
                    getattr(lstm, f"weight_ih_l{layer}{sfx}").copy_(torch.from_numpy(params[p + "w_ih"]))
                    getattr(lstm, f"weight_hh_l{layer}{sfx}").copy_(torch.from_numpy(params[p + "w_hh"]))
                    getattr(lstm, f"bias_ih_l{layer}{sfx}").copy_(torch.from_numpy(params[p + "bias"]))
                    getattr(lstm, f"bias_hh_l{layer}{sfx}").zero_()
            lin.weight.copy_(torch.from_numpy(params["output.weight"]))
            lin.bias.copy_(torch.from_numpy(params["output.bias"]))
        topt = torch.optim.Adam(list(lstm.parameters()) + list(lin.parameters()), lr=lr)
        x = torch.from_numpy(feats)
        tl = torch.from_numpy(lengths.astype(np.int64))
        tlab = torch.from_numpy(labels.astype(np.int64))
        tll = torch.from_numpy(label_lengths.astype(np.int64))

        def torch_step():
            topt.zero_grad(set_to_none=True)
            y, _ = lstm(x)
            lp = F.log_softmax(lin(y), dim=-1)
            loss = F.ctc_loss(lp.transpose(0, 1), tlab, tl, tll, blank=0, reduction="sum")
            loss.backward()
            grads = {}
            for layer in range(layers):
                for d, sfx in (("fw", ""), ("bw", "_reverse")):
                    p = f"lstm.{layer}.{d}."
                    grads[p + "w_ih"] = getattr(lstm, f"weight_ih_l{layer}{sfx}").grad
                    grads[p + "w_hh"] = getattr(lstm, f"weight_hh_l{layer}{sfx}").grad
                    grads[p + "bias"] = getattr(lstm, f"bias_ih_l{layer}{sfx}").grad
            grads["output.weight"] = lin.weight.grad
            grads["output.bias"] = lin.bias.grad
            topt.step()
            return float(loss.detach()), grads

    # warm-up (compilation, first-touch) and agreement check, from the same weights
    losses, grads = ours_step()
    if torch is not None:
        tloss, tgrads = torch_step()
        ours = float(np.sum(losses, dtype=np.float64))
        out["loss_rel_diff"] = abs(ours - tloss) / abs(tloss)
        out["grad_rel_diff"] = max(
            float(np.linalg.norm(grads[k] - tgrads[k].numpy()) / np.linalg.norm(tgrads[k].numpy()))
            for k in grads)

    best_ours = best_torch = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours_step()
        best_ours = min(best_ours, time.perf_counter() - t0)
        if torch is not None:
            t0 = time.perf_counter()
            torch_step()
            best_torch = min(best_torch, time.perf_counter() - t0)
    out["numba_ms"] = best_ours * 1e3
    if torch is not None:
        out["torch_ms"] = best_torch * 1e3
        out["train_step_speedup_vs_torch"] = best_torch / best_ours
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--hidden", type=int, default=320)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    r = bench_train_step(repeats=args.repeats, batch=args.batch, T=args.T, hidden=args.hidden,
                         layers=args.layers, threads=args.threads)
    for k, v in r.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
