"""Training forward/backward of the network (speechlstm.network, kernels/lstm_grad.py).

The gradient check runs the real kernels in float64 against central finite differences of the real CTC loss;
the float32 path is checked against the float64 one.
"""

import dataclasses

import numba
import numpy as np
import pytest

from speechlstm import network as N
from speechlstm.features import FeatureConfig
from speechlstm.model import ModelConfig


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_log_probs(params, cfg, feats, lengths):
    """Plain NumPy float64 forward pass, one utterance and one step at a time."""
    a = cfg.architecture
    H, k = a.hidden_size, a.frame_stacking
    out = []
    for b in range(feats.shape[0]):
        x = np.asarray(feats[b, :lengths[b]], np.float64)
        T2 = -(-x.shape[0] // k)
        xs = np.zeros((T2 * k, x.shape[1]))
        xs[:len(x)] = x
        x = xs.reshape(T2, -1)
        for layer in range(a.num_layers):
            ys = []
            for d in ("fw", "bw"):
                p = f"lstm.{layer}.{d}."
                w_ih, w_hh, bias = (np.asarray(params[p + n], np.float64) for n in ("w_ih", "w_hh", "bias"))
                h, c, y = np.zeros(H), np.zeros(H), np.zeros((T2, H))
                for t in (range(T2) if d == "fw" else range(T2 - 1, -1, -1)):
                    z = w_ih @ x[t] + w_hh @ h + bias
                    i, f, g, o = _sig(z[:H]), _sig(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), _sig(z[3 * H:])
                    c = f * c + i * g
                    h = o * np.tanh(c)
                    y[t] = h
                ys.append(y)
            x = np.concatenate(ys, axis=1)
        z = x @ np.asarray(params["output.weight"], np.float64).T + params["output.bias"]
        z = z - z.max(axis=1, keepdims=True)
        out.append(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))
    return out


def _small_config(hidden_size, num_layers, frame_stacking, n_mels):
    cfg = ModelConfig.example(hidden_size=hidden_size, num_layers=num_layers, frame_stacking=frame_stacking)
    feats = FeatureConfig(n_mels=n_mels)
    arch = dataclasses.replace(cfg.architecture, input_dim=feats.dim)
    return dataclasses.replace(cfg, features=feats, architecture=arch)


def _params64(cfg, seed):
    return {k: v.astype(np.float64) for k, v in N.init_params(cfg, seed=seed).items()}


def _batch(cfg, lengths, label_rows, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    B, T = len(lengths), max(lengths)
    feats = rng.standard_normal((B, T, cfg.architecture.input_dim)).astype(dtype)
    Lmax = max(len(r) for r in label_rows)
    labels = np.zeros((B, Lmax), np.int32)
    for b, r in enumerate(label_rows):
        labels[b, :len(r)] = r
    return feats, np.array(lengths, np.int32), labels, np.array([len(r) for r in label_rows], np.int32)


def test_init_params():
    cfg = ModelConfig.example(hidden_size=6, num_layers=2, frame_stacking=3)
    p = N.init_params(cfg, seed=1, forget_bias=2.0)
    assert {k: v.shape for k, v in p.items()} == cfg.expected_shapes()
    assert all(v.dtype == np.float32 for v in p.values())
    for d in ("fw", "bw"):
        bias = p[f"lstm.1.{d}.bias"]
        assert np.all(bias[6:12] == 2.0)
        assert np.all(np.abs(np.delete(bias, np.s_[6:12])) <= 1 / np.sqrt(6))
    assert np.abs(p["lstm.0.fw.w_ih"]).max() <= 1 / np.sqrt(6)
    assert not np.array_equal(p["lstm.0.fw.w_ih"], N.init_params(cfg, seed=2)["lstm.0.fw.w_ih"])
    assert np.array_equal(p["output.weight"], N.init_params(cfg, seed=1)["output.weight"])


@pytest.mark.parametrize("hidden, layers, k", [(5, 2, 2), (70, 1, 1)])
def test_forward_matches_numpy_reference(hidden, layers, k):
    # H=5: one block of padded units; H=70: two panels of 64 units (snake order, padded tail), no stacking
    cfg = ModelConfig.example(hidden_size=hidden, num_layers=layers, frame_stacking=k)
    params = _params64(cfg, seed=1)
    feats, lengths, _, _ = _batch(cfg, [13, 7, 13, 1, 10], [[1]] * 5)
    lp, n = N.forward_log_probs(params, cfg, feats, lengths)
    assert lp.dtype == np.float64 and n.dtype == np.int32
    assert n.tolist() == [-(-x // k) for x in lengths]
    ref = _reference_log_probs(params, cfg, feats, lengths)
    for b in range(len(lengths)):
        np.testing.assert_allclose(lp[b, :n[b]], ref[b], rtol=0, atol=1e-12)
        assert np.all(lp[b, n[b]:] == 0)


def test_float32_forward_matches_reference():
    # float32 kernels (rational tanh/sigmoid); the inference engine (speechlstm.model) computes the same network
    cfg = ModelConfig.example(hidden_size=20, num_layers=2, frame_stacking=2)
    params = N.init_params(cfg, seed=4)
    feats, lengths, _, _ = _batch(cfg, [17, 9, 4], [[1]] * 3, dtype=np.float32)
    lp, n = N.forward_log_probs(params, cfg, feats, lengths)
    assert lp.dtype == np.float32
    ref = _reference_log_probs(params, cfg, feats, lengths)
    for b in range(3):
        np.testing.assert_allclose(lp[b, :n[b]], ref[b], rtol=0, atol=2e-5)


def test_gradients_match_finite_differences():
    """Every parameter tensor, real CTC loss, float64: frame stacking, unequal lengths, padded hidden units,
    dropout, and an utterance whose labels cannot fit (infinite loss, no gradient)."""
    cfg = _small_config(hidden_size=5, num_layers=2, frame_stacking=2, n_mels=13)  # 26 inputs: a tile tail
    params = _params64(cfg, seed=3)
    feats, lengths, labels, label_lengths = _batch(cfg, [11, 6, 9, 2], [[3, 4, 4], [5], [7, 8], [9, 10]])

    def run(p):
        return N.forward_backward(p, cfg, feats, lengths, labels, label_lengths, dropout=0.3,
                                  rng=np.random.default_rng(5))

    losses, grads = run(params)
    assert np.isfinite(losses[:3]).all() and np.isposinf(losses[3])
    # the many tiny runs below are dominated by thread wake-ups on a busy machine: one thread
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _check_slopes(run, params, grads)
    finally:
        numba.set_num_threads(threads)


def _check_slopes(run, params, grads):
    assert set(grads) == set(params)
    eps = 1e-4
    rng = np.random.default_rng(1)

    def slope(name, direction):
        moved = []
        for sign in (1, -1):
            p = dict(params)
            p[name] = params[name] + sign * eps * direction
            lo = run(p)[0]
            moved.append(lo[np.isfinite(lo)].sum())
        return (moved[0] - moved[1]) / (2 * eps)

    for name, value in params.items():
        g = grads[name]
        assert g.shape == value.shape and g.dtype == np.float64
        scale = np.abs(g).max()
        assert scale > 0, name
        # two single entries, then a random direction over the whole tensor
        for i in rng.choice(value.size, 2, replace=False):
            e = np.zeros(value.size)
            e[i] = 1.0
            numeric = slope(name, e.reshape(value.shape))
            assert abs(numeric - g.flat[i]) <= 1e-6 * (abs(numeric) + 1e-3 * scale), (name, i, numeric, g.flat[i])
        v = rng.standard_normal(value.shape)
        numeric, analytic = slope(name, v), float(np.sum(g * v))
        assert abs(numeric - analytic) <= 1e-6 * (abs(numeric) + np.abs(g).sum()), (name, numeric, analytic)


def _sum_grads(gs):
    return {k: sum(g[k] for g in gs) for k in gs[0]}


def test_utterances_are_independent_of_batching():
    """An utterance's loss and gradient do not depend on its batch mates or on padding."""
    cfg = ModelConfig.example(hidden_size=7, num_layers=2, frame_stacking=1)
    params = _params64(cfg, seed=2)
    rows = [[3, 4], [5, 6, 7], [8], [9, 9, 10], [11, 12]]
    feats, lengths, labels, label_lengths = _batch(cfg, [9, 14, 3, 12, 14], rows)
    losses, grads = N.forward_backward(params, cfg, feats, lengths, labels, label_lengths)
    singles = []
    for b in range(len(rows)):
        L = lengths[b]
        lb, gb = N.forward_backward(params, cfg, feats[b:b + 1, :L], lengths[b:b + 1], labels[b:b + 1],
                                    label_lengths[b:b + 1])
        np.testing.assert_allclose(lb, losses[b:b + 1], rtol=1e-12)
        singles.append(gb)
    total = _sum_grads(singles)
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-9, atol=1e-12)
    # padding beyond the longest utterance changes nothing either
    padded = np.concatenate([feats, np.full((5, 4, feats.shape[2]), 7.0)], axis=1)
    lp, gp = N.forward_backward(params, cfg, padded, lengths, labels, label_lengths)
    np.testing.assert_allclose(lp, losses, rtol=1e-12)
    for k in grads:
        np.testing.assert_allclose(gp[k], grads[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("hidden, k", [(64, 1), (70, 2)])
def test_float32_matches_float64(hidden, k):
    # shapes with several row chunks / frame chunks in the matrix products, tile tails, several panels
    cfg = ModelConfig.example(hidden_size=hidden, num_layers=2, frame_stacking=k)
    params = N.init_params(cfg, seed=5)
    lengths = [60, 37, 60, 51, 9, 44]
    rng = np.random.default_rng(3)
    rows = [rng.integers(1, 29, n // (4 * k) + 1).tolist() for n in lengths]
    feats, lengths, labels, label_lengths = _batch(cfg, lengths, rows, dtype=np.float32)
    l32, g32 = N.forward_backward(params, cfg, feats, lengths, labels, label_lengths)
    p64 = {k_: v.astype(np.float64) for k_, v in params.items()}
    l64, g64 = N.forward_backward(p64, cfg, feats.astype(np.float64), lengths, labels, label_lengths)
    assert l32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32.values())
    np.testing.assert_allclose(l32, l64, rtol=2e-5)
    for name in g64:
        err = np.linalg.norm(g32[name] - g64[name]) / np.linalg.norm(g64[name])
        assert err < 1e-4, (name, err)


def test_dropout_uses_the_given_generator():
    cfg = ModelConfig.example(hidden_size=6, num_layers=3)
    params = N.init_params(cfg, seed=0)
    feats, lengths, labels, label_lengths = _batch(cfg, [12, 8], [[3, 4], [5]], dtype=np.float32)

    def run(dropout, seed):
        rng = None if seed is None else np.random.default_rng(seed)
        return N.forward_backward(params, cfg, feats, lengths, labels, label_lengths, dropout=dropout, rng=rng)

    l0, g0 = run(0.0, None)
    l0b, _ = run(0.0, 1)  # no dropout: the generator is not used
    np.testing.assert_array_equal(l0, l0b)
    la, ga = run(0.5, 7)
    lb, gb = run(0.5, 7)
    lc, _ = run(0.5, 8)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(ga["lstm.2.fw.w_ih"], gb["lstm.2.fw.w_ih"])
    assert not np.allclose(la, l0) and not np.allclose(la, lc)
    # the first layer's input is never dropped: its w_ih gradient sees every input feature
    assert np.all(np.abs(ga["lstm.0.fw.w_ih"]).sum(axis=0) > 0)
    # a dropped input unit of layer 1 gets no w_ih gradient along it at the dropped frames; about half the
    # (frame, unit) inputs of layer >= 1 are dropped, so some w_ih columns must differ from the no-dropout ones
    assert not np.allclose(ga["lstm.1.fw.w_ih"], g0["lstm.1.fw.w_ih"])


def test_invalid_inputs():
    cfg = ModelConfig.example(hidden_size=4, num_layers=1)
    params = N.init_params(cfg)
    feats, lengths, labels, label_lengths = _batch(cfg, [5, 3], [[3], [4]], dtype=np.float32)
    with pytest.raises(ValueError, match="lengths"):
        N.forward_backward(params, cfg, feats, np.array([6, 3]), labels, label_lengths)
    with pytest.raises(ValueError, match="lengths"):
        N.forward_log_probs(params, cfg, feats, np.array([0, 3]))
    with pytest.raises(ValueError, match="feats"):
        N.forward_log_probs(params, cfg, feats[..., :10], lengths)
    with pytest.raises(ValueError, match="dropout"):
        N.forward_backward(params, cfg, feats, lengths, labels, label_lengths, dropout=1.0)
    bad = dict(params)
    bad["lstm.0.fw.w_hh"] = np.zeros((16, 3), np.float32)
    with pytest.raises(ValueError, match="w_hh"):
        N.forward_log_probs(bad, cfg, feats, lengths)
    with pytest.raises(ValueError, match="labels"):  # the blank is not a label (checked by the CTC kernel)
        N.forward_backward(params, cfg, feats, lengths, np.array([[0], [4]]), label_lengths)


def test_empty_batch():
    cfg = ModelConfig.example(hidden_size=4, num_layers=1, frame_stacking=2)
    params = N.init_params(cfg)
    feats = np.zeros((0, 7, cfg.architecture.input_dim), np.float32)
    losses, grads = N.forward_backward(params, cfg, feats, np.zeros(0, np.int32), np.zeros((0, 3), np.int32),
                                       np.zeros(0, np.int32))
    assert losses.shape == (0,) and all(np.all(g == 0) and g.shape == params[k].shape for k, g in grads.items())
    lp, n = N.forward_log_probs(params, cfg, feats, np.zeros(0, np.int32))
    assert lp.shape == (0, 4, 29) and n.shape == (0,)
