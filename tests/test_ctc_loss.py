"""CTC loss and gradient (speechlstm.kernels.ctc_loss): brute force, finite differences, torch, edge cases."""

import itertools
import math

import numpy as np
import pytest

from speechlstm.kernels.ctc_loss import ctc_loss, ctc_loss_and_grad, ctc_min_frames


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _collapse(path, blank):
    out, prev = [], None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def brute_force(logits, label, blank):
    """Loss and gradient w.r.t. logits of one utterance by enumerating all V**T paths (float64)."""
    lp = _log_softmax(logits)
    T, V = lp.shape
    label = list(label)
    scores, paths = [], []
    for path in itertools.product(range(V), repeat=T):
        if _collapse(path, blank) == label:
            scores.append(sum(lp[t, c] for t, c in enumerate(path)))
            paths.append(path)
    if not paths:
        return np.inf, np.zeros((T, V))
    scores = np.array(scores)
    m = scores.max()
    logz = m + np.log(np.exp(scores - m).sum())
    post = np.exp(scores - logz)
    occ = np.zeros((T, V))
    for w, path in zip(post, paths):
        occ[np.arange(T), path] += w
    return -logz, np.exp(lp) - occ


def _pad(labels):
    L = max([len(x) for x in labels] + [1])
    out = np.full((len(labels), L), -1, np.int32)  # padding must be ignored, even when invalid
    for b, x in enumerate(labels):
        out[b, :len(x)] = x
    return out, np.array([len(x) for x in labels], np.int32)


@pytest.mark.parametrize("blank", [0, 2])
def test_brute_force_loss_and_grad(blank):
    rng = np.random.default_rng(1 + blank)
    T, V = 6, 4
    others = [c for c in range(V) if c != blank]
    a, b, c = others
    cases = [  # (frames, labels)
        (6, [a, b]), (6, [a, a]), (5, [b, b, b]), (6, []), (3, [a, a]), (4, [a, b, c, a]),
        (1, [c]), (2, [a, a]), (6, [c, a, c]), (4, [b, c, c]),
    ]
    B = len(cases)
    logits = rng.standard_normal((B, T, V)) * 1.5
    lengths = np.array([n for n, _ in cases], np.int32)
    labels, label_lengths = _pad([lab for _, lab in cases])
    loss64, grad64 = ctc_loss_and_grad(logits, lengths, labels, label_lengths, blank=blank)
    loss32, grad32 = ctc_loss_and_grad(logits.astype(np.float32), lengths, labels, label_lengths, blank=blank)
    assert loss64.dtype == grad64.dtype == np.float64
    assert loss32.dtype == grad32.dtype == np.float32
    for i, (n, lab) in enumerate(cases):
        ref_loss, ref_grad = brute_force(logits[i, :n], lab, blank)
        if np.isinf(ref_loss):  # (2, [a, a]): needs three frames
            assert np.isinf(loss64[i]) and np.isinf(loss32[i])
            assert not grad64[i].any() and not grad32[i].any()
            continue
        np.testing.assert_allclose(loss64[i], ref_loss, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(grad64[i, :n], ref_grad, rtol=0, atol=1e-13)
        np.testing.assert_allclose(loss32[i], ref_loss, rtol=1e-6)
        np.testing.assert_allclose(grad32[i, :n], ref_grad, rtol=0, atol=1e-6)
        assert not grad64[i, n:].any() and not grad32[i, n:].any()
    # the loss-only entry point on log-probabilities agrees
    lp = _log_softmax(logits)
    np.testing.assert_allclose(ctc_loss(lp, lengths, labels, label_lengths, blank=blank), loss64, rtol=1e-14)


def test_finite_differences():
    rng = np.random.default_rng(7)
    B, T, V = 3, 10, 5
    logits = rng.standard_normal((B, T, V)) * 2.0
    lengths = np.array([10, 8, 9], np.int32)
    labels, label_lengths = _pad([[1, 2, 2, 3], [4, 4], [3, 1, 4, 1, 2]])
    loss, grad = ctc_loss_and_grad(logits, lengths, labels, label_lengths)
    assert np.all(np.isfinite(loss))
    h = 1e-5
    fd = np.zeros_like(logits)
    for idx in np.ndindex(*logits.shape):
        xp = logits.copy()
        xp[idx] += h
        xm = logits.copy()
        xm[idx] -= h
        fp = ctc_loss_and_grad(xp, lengths, labels, label_lengths)[0].sum()
        fm = ctc_loss_and_grad(xm, lengths, labels, label_lengths)[0].sum()
        fd[idx] = (fp - fm) / (2 * h)
    err = np.abs(grad - fd).max() / np.abs(fd).max()
    assert err < 1e-4, err
    for b in range(B):  # padded frames: no influence on the loss, zero gradient
        assert not grad[b, lengths[b]:].any()
        assert not fd[b, lengths[b]:].any()
    # rows of valid frames sum to zero (softmax - occupancy, both sum to one)
    valid = np.arange(T)[None, :] < lengths[:, None]
    np.testing.assert_allclose(grad.sum(-1)[valid], 0.0, atol=1e-12)


def test_infeasible_labels_do_not_disturb_the_batch():
    rng = np.random.default_rng(3)
    B, T, V = 4, 7, 6
    logits = rng.standard_normal((B, T, V)).astype(np.float32)
    lengths = np.array([7, 3, 7, 5], np.int32)
    labels, label_lengths = _pad([[1, 2, 3], [2, 2, 5], [1, 2, 3, 4, 5, 1, 2, 3], [5, 5, 5]])
    # utterance 1: 3 labels + 1 repeat > 3 frames; 2: 8 labels > 7 frames; 3: 3 + 2 repeats = 5 frames fits
    np.testing.assert_array_equal(ctc_min_frames(labels, label_lengths), [3, 4, 8, 5])
    loss, grad = ctc_loss_and_grad(logits, lengths, labels, label_lengths)
    assert np.isinf(loss[1]) and loss[1] > 0 and np.isinf(loss[2])
    assert not grad[1].any() and not grad[2].any()
    assert np.isfinite(loss[0]) and np.isfinite(loss[3])
    assert np.count_nonzero(np.isinf(loss)) == 2
    for b in (0, 3):  # bit-identical to the utterance on its own
        lb, gb = ctc_loss_and_grad(logits[b:b + 1], lengths[b:b + 1], labels[b:b + 1], label_lengths[b:b + 1])
        assert lb[0] == loss[b]
        np.testing.assert_array_equal(gb[0], grad[b])
    assert np.isinf(ctc_loss(_log_softmax(logits), lengths, labels, label_lengths)[[1, 2]]).all()


def test_empty_labels_and_frames():
    logits = np.random.default_rng(0).standard_normal((3, 4, 3)).astype(np.float32)
    loss, grad = ctc_loss_and_grad(logits, [4, 0, 0], np.zeros((3, 0), np.int32), [0, 0, 0])
    lp = _log_softmax(logits[0])
    np.testing.assert_allclose(loss[0], -lp[:, 0].sum(), rtol=1e-6)  # all blanks
    assert loss[1] == 0.0 and loss[2] == 0.0 and not grad[1:].any()
    loss, grad = ctc_loss_and_grad(logits[:1], [0], [[1]], [1])
    assert np.isinf(loss[0]) and not grad.any()
    loss, grad = ctc_loss_and_grad(np.zeros((0, 5, 3), np.float32), [], np.zeros((0, 2), np.int32), [])
    assert loss.shape == (0,) and grad.shape == (0, 5, 3)


def test_peaky_wrong_network_stays_finite():
    """Log space: a confident network that says 'blank' everywhere still gets a finite loss and gradient."""
    T, V, L = 200, 8, 40
    logits = np.full((1, T, V), -60.0, np.float32)
    logits[0, :, 0] = 60.0  # log p(label) = -120 per frame: p(labels) ~ exp(-4800), far below float64's range
    labels = (np.arange(L) % (V - 1) + 1)[None, :]
    loss, grad = ctc_loss_and_grad(logits, [T], labels, [L])
    # blank frames cost ~0, label frames 120 nats; C(T, L) ways to place the L label frames (no adjacent repeats)
    expected = 120.0 * L - (math.lgamma(T + 1) - math.lgamma(L + 1) - math.lgamma(T - L + 1))
    np.testing.assert_allclose(loss[0], expected, rtol=1e-6)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0].sum(-1), 0.0, atol=1e-5)
    loss64 = ctc_loss_and_grad(logits.astype(np.float64), [T], labels, [L])[0]
    np.testing.assert_allclose(loss, loss64, rtol=1e-7)


def test_vectorizable_exp_and_log_are_accurate():
    from speechlstm.kernels import ctc_loss as m

    x = np.concatenate([np.linspace(-707.9, 0.0, 20001), [-708.5, -1e4, -np.inf]])
    y = np.array([m._exp(v) for v in x])
    ref = np.exp(x)
    ok = x > -708
    np.testing.assert_allclose(y[ok], ref[ok], rtol=5e-16, atol=0)
    assert not y[~ok].any()
    u = np.linspace(1.0, 3.0, 20001)
    np.testing.assert_allclose([m._log13(v) for v in u], np.log(u), rtol=0, atol=5e-16)
    assert m._lse3(-np.inf, -np.inf, -np.inf) == -np.inf and m._lse2(-np.inf, 2.5) == 2.5
    np.testing.assert_allclose(m._lse3(1.0, -np.inf, 0.5), np.logaddexp(1.0, 0.5), rtol=1e-15)


def test_bad_arguments():
    x = np.zeros((1, 4, 3), np.float32)
    with pytest.raises(ValueError, match="blank"):
        ctc_loss_and_grad(x, [4], [[0, 1]], [2])  # a label equal to blank
    with pytest.raises(ValueError, match="labels"):
        ctc_loss_and_grad(x, [4], [[3]], [1])  # out of range
    with pytest.raises(ValueError, match="lengths"):
        ctc_loss_and_grad(x, [5], [[1]], [1])
    with pytest.raises(ValueError, match="label_lengths"):
        ctc_loss_and_grad(x, [4], [[1]], [2])
    with pytest.raises(ValueError, match="reduction"):
        ctc_loss_and_grad(x, [4], [[1]], [1], reduction="mean")
    with pytest.raises(ValueError, match="shape"):
        ctc_loss_and_grad(x[0], [4], [[1]], [1])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    B, T, V = 5, 60, 12
    logits = (rng.standard_normal((B, T, V)) * 3).astype(np.float32)
    lengths = np.array([60, 55, 41, 60, 30], np.int64)
    label_lengths = np.array([20, 25, 12, 1, 14], np.int64)
    labels = rng.integers(1, 4, (B, 25))  # few classes: many adjacent repeats
    labels[3] = rng.integers(1, V, 25)

    def peer(x):
        xt = torch.from_numpy(x).requires_grad_()
        lp = torch.log_softmax(xt, -1).transpose(0, 1)
        loss = F.ctc_loss(lp, torch.from_numpy(labels), torch.from_numpy(lengths), torch.from_numpy(label_lengths),
                          blank=0, reduction="none", zero_infinity=False)
        loss.sum().backward()
        return loss.detach().numpy(), xt.grad.numpy()

    ref_loss, ref_grad = peer(logits.astype(np.float64))
    assert np.all(np.isfinite(ref_loss))
    loss64, grad64 = ctc_loss_and_grad(logits.astype(np.float64), lengths, labels, label_lengths)
    np.testing.assert_allclose(loss64, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad64, ref_grad, rtol=0, atol=1e-10)
    loss32, grad32 = ctc_loss_and_grad(logits, lengths, labels, label_lengths)
    np.testing.assert_allclose(loss32, ref_loss, rtol=1e-4)
    assert np.abs(grad32 - ref_grad).max() < 1e-4 * np.abs(ref_grad).max()
    lp = torch.log_softmax(torch.from_numpy(logits), -1).numpy()
    np.testing.assert_allclose(ctc_loss(lp, lengths, labels, label_lengths), ref_loss, rtol=1e-4)
