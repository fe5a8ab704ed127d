"""Tests of the BiLSTM CPU kernels against a float64 NumPy reference.

Error measure: norm-based relative error ``max|y - ref| / max|ref|``, computed per
direction (forward half and backward half of the output separately), must be
<= 1e-5.
"""

import threading

import numpy as np
import pytest

from speechlstm.kernels import lstm

RTOL = 1e-5


# ---------------------------------------------------------------- float64 reference
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def ref_direction(x, length, w_ih, w_hh, bias, reverse):
    """Plain per-step LSTM over x[:length] (float64); rows past length stay 0."""
    H = w_hh.shape[1]
    h = np.zeros(H)
    c = np.zeros(H)
    out = np.zeros((x.shape[0], H))
    frames = range(length - 1, -1, -1) if reverse else range(length)
    for t in frames:
        g = w_ih @ x[t] + w_hh @ h + bias
        i = _sigmoid(g[:H])
        f = _sigmoid(g[H:2 * H])
        gg = np.tanh(g[2 * H:3 * H])
        o = _sigmoid(g[3 * H:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        out[t] = h
    return out


def ref_layer(x, lengths, fw, bw):
    B, T, _ = x.shape
    H = fw[1].shape[1]
    out = np.zeros((B, T, 2 * H))
    x = np.asarray(x, np.float64)
    fw = [np.asarray(a, np.float64) for a in fw]
    bw = [np.asarray(a, np.float64) for a in bw]
    for b in range(B):
        out[b, :, :H] = ref_direction(x[b], lengths[b], *fw, reverse=False)
        out[b, :, H:] = ref_direction(x[b], lengths[b], *bw, reverse=True)
    return out


def rand_direction(rng, In, H, scale=1.0):
    """PyTorch-like init U(-1/sqrt(H), 1/sqrt(H)), float32 values."""
    s = scale / np.sqrt(H)
    return [rng.uniform(-s, s, shape).astype(np.float32)
            for shape in ((4 * H, In), (4 * H, H), (4 * H,))]


def rel_err(y, ref):
    return np.abs(y - ref).max() / np.abs(ref).max()


def assert_close_per_direction(y, ref, H):
    assert y.dtype == np.float32
    assert y.shape == ref.shape
    assert rel_err(y[..., :H], ref[..., :H]) <= RTOL
    assert rel_err(y[..., H:], ref[..., H:]) <= RTOL


def padded_input(rng, lengths, In, T=None):
    """Random (B, T, In) batch whose padded frames hold large garbage values."""
    T = max(lengths) if T is None else T
    x = rng.standard_normal((len(lengths), T, In)).astype(np.float32)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3
    return x


# ---------------------------------------------------------------- bilstm_layer
@pytest.mark.parametrize(
    "H, In, lengths",
    [
        (20, 7, [9]),
        (37, 13, [12, 5, 8]),
        (32, 16, [11, 3, 8, 11, 1]),
        (64, 40, [23, 17, 4]),
        (16, 5, [6, 6, 6, 6, 2]),
    ],
)
def test_single_layer_matches_reference(H, In, lengths):
    rng = np.random.default_rng(H * 100 + In)
    fw, bw = rand_direction(rng, In, H), rand_direction(rng, In, H)
    lengths = np.array(lengths, np.int32)
    x = padded_input(rng, lengths, In, T=max(lengths) + 2)
    y = lstm.bilstm_layer(x, lengths, lstm.pack_direction(*fw), lstm.pack_direction(*bw))
    ref = ref_layer(x, lengths, fw, bw)
    assert_close_per_direction(y, ref, H)
    for b, n in enumerate(lengths):
        assert np.all(y[b, n:] == 0)


@pytest.mark.parametrize("lengths", [[150], [130, 70], [97, 97, 96, 40, 5]])
def test_long_sequences_cross_projection_chunks(lengths):
    # the input projection is computed in chunks of time steps: cross several
    rng = np.random.default_rng(len(lengths))
    H, In = 20, 6
    fw, bw = rand_direction(rng, In, H), rand_direction(rng, In, H)
    lengths = np.array(lengths, np.int32)
    x = padded_input(rng, lengths, In)
    y = lstm.bilstm_layer(x, lengths, lstm.pack_direction(*fw), lstm.pack_direction(*bw))
    assert_close_per_direction(y, ref_layer(x, lengths, fw, bw), H)


def test_saturated_gates_match_reference():
    # large weights: gates and tanh(c) saturate, exercising the clamped branches
    rng = np.random.default_rng(7)
    H, In = 24, 6
    fw, bw = rand_direction(rng, In, H, scale=8.0), rand_direction(rng, In, H, scale=8.0)
    lengths = np.array([15, 9], np.int32)
    x = 4 * padded_input(rng, lengths, In)
    y = lstm.bilstm_layer(x, lengths, lstm.pack_direction(*fw), lstm.pack_direction(*bw))
    assert_close_per_direction(y, ref_layer(x, lengths, fw, bw), H)


def test_forward_and_backward_directions_are_distinct():
    # the backward pass of utterance b starts at frame lengths[b]-1 from h = c = 0:
    # there its output is a closed-form function of that frame alone
    rng = np.random.default_rng(3)
    H, In = 20, 4
    fw = rand_direction(rng, In, H)
    bw = rand_direction(rng, In, H)
    lengths = np.array([7, 4], np.int32)
    x = padded_input(rng, lengths, In, T=9)
    y = lstm.bilstm_layer(x, lengths, lstm.pack_direction(*fw), lstm.pack_direction(*bw))
    ref = ref_layer(x, lengths, fw, bw)
    for b, n in enumerate(lengths):
        g = bw[0].astype(np.float64) @ x[b, n - 1] + bw[2]
        c = _sigmoid(g[:H]) * np.tanh(g[2 * H:3 * H])
        np.testing.assert_allclose(y[b, n - 1, H:], _sigmoid(g[3 * H:]) * np.tanh(c), atol=1e-6)
    assert_close_per_direction(y, ref, H)


def test_three_layer_stack_with_frame_stacking():
    rng = np.random.default_rng(11)
    H, In, k = 37, 10, 2
    lengths = np.array([13, 6, 10], np.int32)
    x = padded_input(rng, lengths, In, T=14)
    layers = []
    d = In * k
    for _ in range(3):
        layers.append((rand_direction(rng, d, H), rand_direction(rng, d, H)))
        d = 2 * H
    xs, ls = lstm.stack_frames(x, lengths, k)
    y = xs
    ref = ref_stack_frames(x.astype(np.float64), lengths, k)
    for fw, bw in layers:
        y = lstm.bilstm_layer(y, ls, lstm.pack_direction(*fw), lstm.pack_direction(*bw))
        ref = ref_layer(ref, ls, fw, bw)
    assert_close_per_direction(y, ref, H)


def test_batch_independence_is_exact():
    rng = np.random.default_rng(5)
    H, In = 37, 9
    fw, bw = lstm.pack_direction(*rand_direction(rng, In, H)), lstm.pack_direction(*rand_direction(rng, In, H))
    lengths = np.array([21, 6, 30, 13, 30, 2, 17], np.int32)
    x = padded_input(rng, lengths, In)
    y = lstm.bilstm_layer(x, lengths, fw, bw)
    for b, n in enumerate(lengths):
        alone = lstm.bilstm_layer(x[b:b + 1, :n], lengths[b:b + 1], fw, bw)
        np.testing.assert_array_equal(alone[0], y[b, :n])
    # reordering the batch does not change any utterance either
    perm = rng.permutation(len(lengths))
    yp = lstm.bilstm_layer(x[perm], lengths[perm], fw, bw)
    np.testing.assert_array_equal(yp, y[perm])


def test_padding_content_is_ignored():
    rng = np.random.default_rng(9)
    H, In = 20, 5
    fw, bw = lstm.pack_direction(*rand_direction(rng, In, H)), lstm.pack_direction(*rand_direction(rng, In, H))
    lengths = np.array([8, 3], np.int32)
    x = padded_input(rng, lengths, In)
    x2 = x.copy()
    x2[1, 3:] = -7.0
    np.testing.assert_array_equal(lstm.bilstm_layer(x, lengths, fw, bw),
                                  lstm.bilstm_layer(x2, lengths, fw, bw))


def test_concurrent_calls_from_threads():
    rng = np.random.default_rng(13)
    H, In = 32, 8
    fw, bw = lstm.pack_direction(*rand_direction(rng, In, H)), lstm.pack_direction(*rand_direction(rng, In, H))
    inputs = []
    for i in range(4):
        lengths = rng.integers(1, 40, size=3).astype(np.int32)
        inputs.append((padded_input(rng, lengths, In), lengths))
    expected = [lstm.bilstm_layer(x, n, fw, bw) for x, n in inputs]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(3):
            results[i] = lstm.bilstm_layer(inputs[i][0], inputs[i][1], fw, bw)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, exp in zip(results, expected):
        np.testing.assert_array_equal(got, exp)


def test_pack_direction_layout_and_validation():
    rng = np.random.default_rng(0)
    H, In = 20, 3
    w_ih, w_hh, b = rand_direction(rng, In, H)
    wih_p, whh_p, b_p = lstm.pack_direction(w_ih, w_hh, b)
    assert wih_p.shape == (2, In, 64) and whh_p.shape == (2, H, 64) and b_p.shape == (2, 64)
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in (wih_p, whh_p, b_p))
    # unit 17, gate g (index 2) lives in block 1, column 2*16 + 1
    np.testing.assert_array_equal(wih_p[1, :, 33], w_ih[2 * H + 17])
    np.testing.assert_array_equal(whh_p[1, :, 33], w_hh[2 * H + 17])
    assert b_p[1, 33] == b[2 * H + 17]
    assert np.all(wih_p[1, :, 4:16] == 0)  # padded units 20..31
    with pytest.raises(ValueError):
        lstm.pack_direction(w_ih, w_hh[:, :-1], b)
    with pytest.raises(ValueError):
        lstm.pack_direction(w_ih[:-1], w_hh, b)
    with pytest.raises(ValueError):
        lstm.pack_direction(w_ih, w_hh, b[:-1])


def test_bilstm_layer_rejects_bad_input():
    rng = np.random.default_rng(0)
    pack = lstm.pack_direction(*rand_direction(rng, 4, 16))
    x = np.zeros((2, 5, 4), np.float32)
    for bad in ([0, 5], [6, 5], [5]):
        with pytest.raises(ValueError):
            lstm.bilstm_layer(x, np.array(bad, np.int32), pack, pack)
    with pytest.raises(ValueError):
        lstm.bilstm_layer(np.zeros((2, 5, 3), np.float32), np.array([5, 5]), pack, pack)


def test_activations_accuracy():
    x = np.linspace(-30, 30, 200001).astype(np.float32)
    t = np.array([lstm._tanh32(v) for v in x[::97]], np.float64)
    s = np.array([lstm._sigmoid32(v) for v in x[::97]], np.float64)
    xd = x[::97].astype(np.float64)
    assert np.abs(t - np.tanh(xd)).max() < 5e-7
    assert np.abs(s - _sigmoid(xd)).max() < 5e-7


# ---------------------------------------------------------------- stack_frames
def ref_stack_frames(x, lengths, k):
    B, T, D = x.shape
    T2 = -(-T // k)
    out = np.zeros((B, T2, D * k), x.dtype)
    for b in range(B):
        for t in range(T2):
            for j in range(k):
                f = t * k + j
                if f < lengths[b]:
                    out[b, t, j * D:(j + 1) * D] = x[b, f]
    return out


@pytest.mark.parametrize("k", [2, 3, 4])
def test_stack_frames(k):
    rng = np.random.default_rng(k)
    lengths = np.array([10, 7, 1, 9], np.int32)
    x = padded_input(rng, lengths, 3, T=10)
    y, n = lstm.stack_frames(x, lengths, k)
    assert y.dtype == np.float32 and y.shape == (4, -(-10 // k), 3 * k)
    np.testing.assert_array_equal(y, ref_stack_frames(x, lengths, k))
    np.testing.assert_array_equal(n, -(-lengths // k))


def test_stack_frames_k1_returns_inputs():
    x = np.ones((1, 4, 2), np.float32)
    lengths = np.array([4], np.int32)
    y, n = lstm.stack_frames(x, lengths, 1)
    assert y is x and n is lengths
    with pytest.raises(ValueError):
        lstm.stack_frames(x, lengths, 0)


# ---------------------------------------------------------------- linear_log_softmax
@pytest.mark.parametrize("V", [5, 29, 64, 100])
def test_linear_log_softmax(V):
    rng = np.random.default_rng(V)
    D = 40
    lengths = np.array([70, 3, 66], np.int32)
    x = padded_input(rng, lengths, D)
    w = rng.standard_normal((V, D)).astype(np.float32) * 0.3
    b = rng.standard_normal(V).astype(np.float32)
    lp = lstm.linear_log_softmax(x, lengths, w, b)
    assert lp.shape == (3, 70, V) and lp.dtype == np.float32
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    ref = z - z.max(-1, keepdims=True)
    ref -= np.log(np.exp(ref).sum(-1, keepdims=True))
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(lp[i, :n], ref[i, :n], rtol=0, atol=2e-5 * np.abs(ref[i, :n]).max())
        np.testing.assert_allclose(np.exp(lp[i, :n].astype(np.float64)).sum(-1), 1.0, atol=1e-5)
        assert np.all(lp[i, n:] == 0)
    # batch independence
    alone = lstm.linear_log_softmax(x[1:2, :3], lengths[1:2], w, b)
    np.testing.assert_array_equal(alone[0], lp[1, :3])


def test_linear_log_softmax_rejects_bad_shapes():
    x = np.zeros((1, 2, 4), np.float32)
    with pytest.raises(ValueError):
        lstm.linear_log_softmax(x, np.array([2]), np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError):
        lstm.linear_log_softmax(x, np.array([2]), np.zeros((3, 4)), np.zeros(2))
