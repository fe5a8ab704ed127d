"""Adam/AdamW, gradient clipping, learning-rate schedules and weight averaging (speechlstm.optim)."""

import math

import numpy as np
import pytest

from speechlstm.optim import Adam, LRSchedule, average_params, clip_global_norm, global_norm


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((5, 3)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}


def _grads(rng):
    return {"w": rng.standard_normal((5, 3)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}


def _reference_adam(params, grad_seq, lrs, b1, b2, eps, wd, decoupled):
    """Textbook Adam / AdamW in float64 (weight decay on matrices only, as documented)."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t, (g, lr) in enumerate(zip(grad_seq, lrs), start=1):
        for k in p:
            d = wd if p[k].ndim >= 2 else 0.0
            gk = g[k].astype(np.float64) + (0.0 if decoupled else d * p[k])
            m[k] = b1 * m[k] + (1 - b1) * gk
            v2[k] = b2 * v2[k] + (1 - b2) * gk * gk
            upd = (m[k] / (1 - b1 ** t)) / (np.sqrt(v2[k] / (1 - b2 ** t)) + eps)
            if decoupled:
                upd = upd + d * p[k]
            p[k] = p[k] - lr * upd
    return p


@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_matches_reference(decoupled, wd):
    params = _params()
    start = {k: v.copy() for k, v in params.items()}
    rng = np.random.default_rng(1)
    grads = [_grads(rng) for _ in range(6)]
    lrs = [0.01 * (i + 1) for i in range(6)]
    opt = Adam(params, lr=0.5, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd, decoupled=decoupled)
    for g, lr in zip(grads, lrs):
        opt.step(g, lr)
    ref = _reference_adam(start, grads, lrs, 0.8, 0.99, 1e-6, wd, decoupled)
    for k in params:
        assert params[k].dtype == np.float32
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-5, atol=1e-6)
    assert opt.num_steps == 6


def test_weight_decay_spares_biases():
    params = {"w": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)}
    opt = Adam(params, lr=0.1, weight_decay=0.5, decoupled=True)
    opt.step({"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)})
    np.testing.assert_allclose(params["w"], 0.95)  # w -= lr * wd * w
    np.testing.assert_array_equal(params["b"], 1.0)


def test_adam_minimizes_quadratic():
    target = np.linspace(-2, 2, 7).astype(np.float32)
    params = {"x": np.zeros(7, np.float32)}
    opt = Adam(params, lr=0.1)
    for _ in range(400):
        opt.step({"x": 2 * (params["x"] - target)})
    np.testing.assert_allclose(params["x"], target, atol=1e-2)


def test_state_dict_resume_is_bitwise_exact():
    rng = np.random.default_rng(3)
    grads = [_grads(rng) for _ in range(8)]
    straight = _params()
    opt = Adam(straight, lr=0.01, weight_decay=0.01)
    for g in grads:
        opt.step(g)

    first = _params()
    opt1 = Adam(first, lr=0.01, weight_decay=0.01)
    for g in grads[:3]:
        opt1.step(g)
    state = opt1.state_dict()
    opt1.step(grads[3])  # the saved state must be a copy, unaffected by later steps
    resumed = {k: v.copy() for k, v in first.items()}
    # rebuild the parameters at step 3 by replaying, then continue from the saved state
    replay = _params()
    opt_r = Adam(replay, lr=0.01, weight_decay=0.01)
    for g in grads[:3]:
        opt_r.step(g)
    opt2 = Adam(replay, lr=123.0)
    opt2.load_state_dict(state)
    assert opt2.num_steps == 3 and opt2.lr == 0.01 and opt2.weight_decay == 0.01
    for g in grads[3:]:
        opt2.step(g)
    for k in straight:
        assert np.array_equal(straight[k], replay[k]), k
    assert not np.array_equal(resumed["w"], straight["w"])


def test_adam_rejects_bad_input():
    with pytest.raises(TypeError):
        Adam({"w": np.zeros(3, np.float64)})
    with pytest.raises(TypeError):
        Adam({"w": np.zeros((3, 4), np.float32)[:, ::2]})
    opt = Adam({"w": np.zeros(3, np.float32)})
    with pytest.raises(KeyError):
        opt.step({})
    with pytest.raises(ValueError):
        opt.step({"w": np.zeros(4, np.float32)})
    with pytest.raises(ValueError):
        Adam({"w": np.zeros(3, np.float32)}, betas=(1.0, 0.9))


def test_clip_global_norm():
    rng = np.random.default_rng(0)
    g = _grads(rng)
    raw = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values()))
    assert global_norm(g) == pytest.approx(raw, rel=1e-12)
    before = {k: v.copy() for k, v in g.items()}
    norm = clip_global_norm(g, max_norm=raw * 2)  # no clipping needed
    assert norm == pytest.approx(raw, rel=1e-12)
    for k in g:
        assert np.array_equal(g[k], before[k])
    norm = clip_global_norm(g, max_norm=1.0)
    assert norm == pytest.approx(raw, rel=1e-12)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-5)
    for k in g:  # direction kept
        np.testing.assert_allclose(g[k], before[k] / raw, rtol=1e-5, atol=1e-7)


def test_clip_with_scale_and_disabled():
    g = {"a": np.array([30.0, 40.0], np.float32)}
    assert clip_global_norm(g, None, scale=0.1) == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [3.0, 4.0], rtol=1e-6)
    assert clip_global_norm(g, 0.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [3.0, 4.0], rtol=1e-6)


def test_clip_non_finite_leaves_grads():
    g = {"a": np.array([1.0, np.nan], np.float32), "b": np.array([2.0], np.float32)}
    assert math.isnan(clip_global_norm(g, 1.0, scale=0.5))
    assert g["b"][0] == 2.0 and g["a"][0] == 1.0
    g = {"a": np.array([np.inf], np.float32)}
    assert math.isinf(clip_global_norm(g, 1.0))


def test_schedule_warmup_and_cosine():
    s = LRSchedule(warmup_steps=10, peak_lr=1e-3, decay="cosine", total_steps=110, min_lr=1e-5)
    lrs = [s(i) for i in range(130)]
    np.testing.assert_allclose(lrs[:10], [1e-3 * (i + 1) / 10 for i in range(10)])
    assert lrs[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[110] == pytest.approx(1e-5) and lrs[129] == pytest.approx(1e-5)
    assert lrs[60] == pytest.approx((1e-3 + 1e-5) / 2)


def test_schedule_exponential_and_noam_and_linear():
    s = LRSchedule(warmup_steps=0, peak_lr=1.0, decay="exponential", total_steps=100, min_lr=0.01)
    assert s(0) == pytest.approx(1.0) and s(50) == pytest.approx(0.1) and s(100) == pytest.approx(0.01)
    assert s(500) == pytest.approx(0.01)
    s = LRSchedule(warmup_steps=0, peak_lr=1.0, decay="exponential", decay_rate=0.5)
    assert s(3) == pytest.approx(0.125)
    s = LRSchedule(warmup_steps=100, peak_lr=2.0, decay="noam")
    assert s(99) == pytest.approx(2.0) and s(399) == pytest.approx(1.0)
    s = LRSchedule(warmup_steps=0, peak_lr=1.0, decay="constant")
    assert s(0) == s(10 ** 6) == 1.0
    s = LRSchedule(warmup_steps=0, peak_lr=1.0, decay="linear", total_steps=4, min_lr=0.2)
    assert [s(i) for i in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError):
        LRSchedule(decay="step")
    with pytest.raises(ValueError):
        LRSchedule(decay="exponential", peak_lr=1.0, min_lr=0.0, total_steps=10)
    with pytest.raises(ValueError):
        LRSchedule(warmup_steps=-1)


def test_average_params():
    a = {"w": np.array([[1.0, 2.0]], np.float32), "b": np.array([0.0], np.float32)}
    b = {"w": np.array([[3.0, 6.0]], np.float32), "b": np.array([1.0], np.float32)}
    c = {"w": np.array([[2.0, 1.0]], np.float32), "b": np.array([2.0], np.float32)}
    avg = average_params([a, b, c])
    assert avg["w"].dtype == np.float32
    np.testing.assert_allclose(avg["w"], [[2.0, 3.0]])
    np.testing.assert_allclose(avg["b"], [1.0])
    with pytest.raises(ValueError):
        average_params([])
    with pytest.raises(KeyError):
        average_params([a, {"w": a["w"]}])
