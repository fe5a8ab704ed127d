"""The acoustic model as a trainable network: forward pass, CTC loss and backward pass (BPTT) of every weight.

The network is the one of :mod:`speechlstm.model`: frame stacking (``k`` consecutive frames concatenated, time
subsampled by ``k``), ``L`` bidirectional LSTM layers, a linear output layer and CTC over its log-softmax.
Parameters are a dict of arrays named and shaped as in a model's ``weights.npz`` (``lstm.{l}.{fw|bw}.w_ih``
(4H, In_l), ``w_hh`` (4H, H), ``bias`` (4H,), ``output.weight`` (V, 2H), ``output.bias`` (V,); gate order i, f,
g, o), so a trained dict is saved as is with :func:`speechlstm.model.save_model`.

The arithmetic runs in the Numba kernels of :mod:`speechlstm.kernels.lstm_grad` (layouts described there) and
the CTC kernels of :mod:`speechlstm.kernels.ctc_loss`.  Work is float32; float64 inputs run the same kernels in
float64 (for gradient checks).

Dropout (``dropout > 0``): inverted dropout on the input of every LSTM layer but the first (each element kept
with probability ``1 - dropout`` and scaled by ``1 / (1 - dropout)``), masks drawn from ``rng``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import ModelConfig, random_weights

__all__ = ["init_params", "forward_log_probs", "forward_backward"]

_P = 64  # panel width of the kernels (hidden units are padded to a multiple of it)


def init_params(config: ModelConfig, seed: int = 0, forget_bias: float = 1.0) -> dict:
    """Fresh parameters: uniform in ``+-1/sqrt(H)`` (PyTorch's LSTM initialization), forget-gate bias set.

    Parameters
    ----------
    config : ModelConfig
    seed : int
        Seed of ``numpy.random.default_rng``.
    forget_bias : float
        Value of the forget-gate bias of every LSTM direction (rows ``H .. 2H-1`` of ``bias``).

    Returns
    -------
    dict of str to numpy.ndarray
        float32 arrays named and shaped as :meth:`ModelConfig.expected_shapes`.

    Examples
    --------
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=2)
    >>> p = init_params(cfg, seed=0)
    >>> p["lstm.1.fw.w_ih"].shape, float(p["lstm.0.bw.bias"][8]), p["output.bias"].dtype
    ((32, 16), 1.0, dtype('float32'))
    """
    H = config.architecture.hidden_size
    out = random_weights(config, seed=seed)
    for name, w in out.items():
        if name.endswith(".bias") and name.startswith("lstm."):
            w[H:2 * H] = forget_bias
    return out


# ---------------------------------------------------------------- layout of one batch
@dataclass
class _Batch:
    B: int
    T: int            # frames per utterance after stacking (padded)
    R: int            # B * T; row R of every buffer is the zero row
    lengths: np.ndarray   # (B,) int64 after stacking
    order: np.ndarray     # utterances by decreasing length
    rows: np.ndarray      # valid rows b*T + t, t < lengths[b]
    hrows_f: np.ndarray   # row of h_{t-1} for each valid row (R at t = 0)
    hrows_b: np.ndarray   # row of h_{t+1} (R at the last frame)
    pad_rows: np.ndarray  # rows of padded frames, and R


def _batch_layout(lengths: np.ndarray, T: int) -> _Batch:
    B = lengths.shape[0]
    R = B * T
    b = np.repeat(np.arange(B), lengths)
    t = np.arange(b.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = b * T + t
    hf = np.where(t > 0, rows - 1, R)
    hb = np.where(t < lengths[b] - 1, rows + 1, R)
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    valid = np.zeros(R + 1, bool)
    valid[rows] = True
    return _Batch(B, T, R, lengths, order, rows.astype(np.int64), hf.astype(np.int64), hb.astype(np.int64),
                  np.flatnonzero(~valid))


def _buffer(lay: _Batch, width: int, dtype) -> np.ndarray:
    """(R + 1, width) buffer, uninitialized at the valid rows, zero at padded frames and the zero row."""
    a = np.empty((lay.R + 1, width), dtype)
    a[lay.pad_rows] = 0
    return a


def _stack(feats: np.ndarray, lengths: np.ndarray, k: int):
    """Frame stacking (zeros past each utterance's end) -> (x (B, T2, D*k), lengths2)."""
    B, T, D = feats.shape
    if k == 1:
        return feats, lengths
    T2 = -(-T // k)
    x = np.zeros((B, T2 * k, D), feats.dtype)
    x[:, :T] = feats
    x[np.arange(T2 * k)[None, :] >= lengths[:, None]] = 0
    return x.reshape(B, T2, k * D), (lengths + k - 1) // k


# ---------------------------------------------------------------- weights in the kernels' layout
@dataclass
class _Layer:
    wih: np.ndarray    # (2Gp/64, In, 64) panels of [W_ih_fw; W_ih_bw]^T (packed gate columns)
    bias: np.ndarray   # (2Gp/64, 64)
    whh: tuple         # per direction (Hp/16, Hp, 64): panels of W_hh^T
    whh_t: tuple       # per direction (Hp/64, Gp, 64): panels of W_hh
    wcat_t: np.ndarray | None  # (In/64, 2Gp, 64): panels of [W_ih_fw; W_ih_bw] (for dX; layers > 0)
    in_map: np.ndarray  # natural input column -> internal column
    n_in: int           # internal input width


def _gate_rows(w: np.ndarray, H: int, Hp: int, dtype) -> np.ndarray:
    """(4H, n) natural gate rows -> (4Hp, n) in the kernels' packed gate order (zero rows for padded units)."""
    n = w.shape[1]
    out = np.zeros((4, Hp, n), dtype)
    out[:, :H] = w.reshape(4, H, n)
    return out.reshape(4, Hp // 16, 16, n).transpose(1, 0, 2, 3).reshape(4 * Hp, n)


def _hidden_cols(w: np.ndarray, H: int, Hp: int, dtype) -> np.ndarray:
    """(m, 2H) columns [fw | bw] -> (m, 2Hp) internal layout (zero columns for padded units)."""
    if H == Hp:
        return np.asarray(w, dtype)
    out = np.zeros((w.shape[0], 2 * Hp), dtype)
    out[:, :H] = w[:, :H]
    out[:, Hp:Hp + H] = w[:, H:]
    return out


def _pack(params: dict, config: ModelConfig, dtype):
    a = config.architecture
    H = a.hidden_size
    Hp = -(-H // _P) * _P
    from .kernels.lstm_grad import gate_columns, panels

    perm = gate_columns(H, Hp)
    hid_map = np.concatenate([np.arange(H), Hp + np.arange(H)])
    layers = []
    for layer in range(a.num_layers):
        if layer == 0:
            n_in = a.input_dim * a.frame_stacking
            in_map = np.arange(n_in)
        else:
            n_in, in_map = 2 * Hp, hid_map
        wcat, bcat, whh, whh_t = [], [], [], []
        for name in ("fw", "bw"):
            p = f"lstm.{layer}.{name}."
            w_ih = params[p + "w_ih"]
            wcat.append(_gate_rows(w_ih if layer == 0 else _hidden_cols(w_ih, H, Hp, dtype), H, Hp, dtype))
            bcat.append(_gate_rows(np.reshape(params[p + "bias"], (-1, 1)), H, Hp, dtype)[:, 0])
            w = _gate_rows(params[p + "w_hh"], H, Hp, dtype)  # (Gp, H)
            w_sq = np.zeros((4 * Hp, Hp), dtype)
            w_sq[:, :H] = w
            whh.append(panels(w_sq.T))
            whh_t.append(panels(w_sq))
        wcat = np.concatenate(wcat)
        wcat_t = panels(wcat) if layer > 0 else None
        layers.append(_Layer(panels(wcat.T), np.concatenate(bcat).reshape(-1, _P), tuple(whh), tuple(whh_t),
                             wcat_t, in_map, n_in))
    V = config.num_outputs
    Vp = -(-V // _P) * _P
    wout = np.zeros((Vp, 2 * Hp), dtype)
    wout[:V] = _hidden_cols(params["output.weight"], H, Hp, dtype)
    bout = np.zeros(Vp, dtype)
    bout[:V] = params["output.bias"]
    return layers, (panels(wout.T), bout.reshape(-1, _P), panels(wout)), H, Hp, perm, hid_map


# ---------------------------------------------------------------- passes
def _check(params, config, feats, lengths):
    feats = np.asarray(feats)
    dtype = np.float64 if feats.dtype == np.float64 else np.float32
    feats = np.ascontiguousarray(feats, dtype=dtype)
    a = config.architecture
    if feats.ndim != 3 or feats.shape[2] != a.input_dim:
        raise ValueError(f"feats must have shape (B, T, {a.input_dim}), got {feats.shape}")
    B, T, _ = feats.shape
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or (B and not np.issubdtype(lengths.dtype, np.integer)):
        raise ValueError(f"lengths must be {B} integers, got shape {lengths.shape} dtype {lengths.dtype}")
    lengths = lengths.astype(np.int64)
    if B and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [1, {T}]")
    missing = [k for k in config.expected_shapes() if k not in params]
    if missing:
        raise ValueError(f"params lack {', '.join(missing[:3])}")
    for k, shape in config.expected_shapes().items():
        if np.shape(params[k]) != shape:
            raise ValueError(f"params['{k}'] has shape {np.shape(params[k])}, expected {shape}")
    return feats, lengths, dtype


def _forward(params, config, feats, lengths, dtype, dropout=0.0, rng=None, keep=False):
    """Run the network; returns (logits (B, T2, V), state for the backward pass)."""
    from .kernels import lstm_grad as K

    layers, (woutp, boutp, wout_t), H, Hp, perm, hid_map = _pack(params, config, dtype)
    x, lengths2 = _stack(feats, lengths, config.architecture.frame_stacking)
    B, T = x.shape[0], x.shape[1]
    lay = _batch_layout(lengths2, T)
    R = lay.R
    X = x.reshape(R, -1)
    saved = []
    for li, L in enumerate(layers):
        mask = None
        if li > 0 and dropout > 0.0:
            keep_m = rng.random((R, 2 * H), dtype=np.float32) >= dropout
            scale = dtype(1.0 / (1.0 - dropout))
            mask = np.zeros((R + 1, 2 * Hp), dtype)
            np.multiply(keep_m[:, :H], scale, out=mask[:R, :H])
            np.multiply(keep_m[:, H:], scale, out=mask[:R, Hp:Hp + H])
            X = X * mask
        Gp = 4 * Hp
        Z = _buffer(lay, 2 * Gp, dtype)
        Y = _buffer(lay, 2 * Hp, dtype)
        C = _buffer(lay, 2 * Hp, dtype)
        K.matmul_rows(X, lay.rows, L.wih, L.bias, Z)
        K.lstm_forward(Z, Y, C, T, lay.lengths, lay.order, L.whh[0], L.whh[1])
        if keep:
            saved.append((X, Z, Y, C, mask))
        X = Y
    V = config.num_outputs
    out = _buffer(lay, woutp.shape[0] * _P, dtype)
    K.matmul_rows(X, lay.rows, woutp, boutp, out)
    logits = np.zeros((B, T, V), dtype)
    logits.reshape(R, V)[lay.rows] = out[lay.rows, :V]
    state = (layers, wout_t, H, Hp, perm, hid_map, lay, saved, X)
    return logits, lengths2, state


def forward_log_probs(params: dict, config: ModelConfig, feats, lengths):
    """Per-frame CTC log-probabilities of a padded batch (evaluation: no dropout).

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        The network's weights (see the module docstring).
    config : ModelConfig
    feats : numpy.ndarray, shape (B, T, D)
        Normalized feature frames, float32 (float64 runs in float64).
    lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance, ``1 <= lengths[b] <= T``.

    Returns
    -------
    log_probs : numpy.ndarray, shape (B, ceil(T / k), V)
        ``log_softmax`` of the output layer; zero at padded frames.
    out_lengths : numpy.ndarray, shape (B,), int32
        ``ceil(lengths / k)`` (``k`` the frame stacking).

    Examples
    --------
    >>> import numpy as np
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=1, frame_stacking=2)
    >>> feats = np.zeros((2, 5, cfg.architecture.input_dim), np.float32)
    >>> lp, n = forward_log_probs(init_params(cfg), cfg, feats, np.array([5, 2], np.int32))
    >>> lp.shape, n.tolist(), bool(np.allclose(np.exp(lp[0]).sum(-1), 1, atol=1e-5))
    ((2, 3, 29), [3, 1], True)
    """
    feats, lengths, dtype = _check(params, config, feats, lengths)
    if feats.shape[0] == 0:
        k = config.architecture.frame_stacking
        return np.zeros((0, -(-feats.shape[1] // k), config.num_outputs), dtype), np.zeros(0, np.int32)
    logits, lengths2, state = _forward(params, config, feats, lengths, dtype)
    lay = state[6]
    lp = np.zeros_like(logits)
    z = logits.reshape(lay.R, -1)[lay.rows]
    z = z - z.max(axis=1, keepdims=True)
    lp.reshape(lay.R, -1)[lay.rows] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return lp, lengths2.astype(np.int32)


def forward_backward(params: dict, config: ModelConfig, feats, lengths, labels, label_lengths,
                     dropout: float = 0.0, rng: np.random.Generator | None = None):
    """CTC losses of a batch and the gradient of their sum with respect to every parameter.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        The network's weights (see the module docstring).
    config : ModelConfig
    feats : numpy.ndarray, shape (B, T, D)
        Normalized feature frames, float32 (float64 runs the same kernels in float64).
    lengths : numpy.ndarray, shape (B,), int
        Valid frames per utterance, ``1 <= lengths[b] <= T``.
    labels : numpy.ndarray, shape (B, Lmax), int
        Token ids (never the blank), padded after ``label_lengths[b]``.
    label_lengths : numpy.ndarray, shape (B,), int
    dropout : float
        Inverted-dropout probability on the inputs of LSTM layers ``1 ..``; ``0`` disables it.
    rng : numpy.random.Generator, optional
        Source of the dropout masks (a fresh unseeded generator when omitted).

    Returns
    -------
    losses : numpy.ndarray, shape (B,)
        CTC negative log-likelihood per utterance, ``+inf`` where the labels cannot fit the
        ``ceil(lengths[b] / k)`` output frames (such utterances contribute no gradient).
    grads : dict of str to numpy.ndarray
        Same keys and shapes as ``params``: the gradient of the sum of the finite losses.

    Examples
    --------
    >>> import numpy as np
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=2)
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.standard_normal((2, 12, cfg.architecture.input_dim)).astype(np.float32)
    >>> labels = np.array([[3, 4, 5], [6, 7, 0]], np.int32)
    >>> losses, grads = forward_backward(init_params(cfg), cfg, feats, np.array([12, 9]), labels,
    ...                                  np.array([3, 2]), dropout=0.1, rng=rng)
    >>> losses.shape, grads["lstm.1.bw.w_hh"].shape, bool(np.isfinite(losses).all())
    ((2,), (32, 8), True)
    """
    from .kernels import lstm_grad as K
    from .kernels.ctc_loss import ctc_loss_and_grad

    feats, lengths, dtype = _check(params, config, feats, lengths)
    dropout = float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if dropout > 0.0 and rng is None:
        rng = np.random.default_rng()
    if feats.shape[0] == 0:
        return np.zeros(0, dtype), {k: np.zeros(s, dtype) for k, s in config.expected_shapes().items()}
    logits, lengths2, state = _forward(params, config, feats, lengths, dtype, dropout, rng, keep=True)
    layers, wout_t, H, Hp, perm, hid_map, lay, saved, Ytop = state
    losses, g = ctc_loss_and_grad(logits, lengths2, labels, label_lengths, blank=config.blank_index)
    R, T, V = lay.R, lay.T, config.num_outputs
    Vp = wout_t.shape[1]
    Gp = 4 * Hp
    grads = {}

    # output layer
    dlog = np.zeros((R + 1, Vp), dtype)
    dlog[:R, :V] = g.reshape(R, V)
    dwo = np.zeros((2 * Hp, Vp), dtype)
    dbo = np.zeros(Vp, dtype)
    K.weight_grads(dlog, lay.rows, Ytop, 2 * Hp, dwo, db=dbo)
    grads["output.weight"] = np.ascontiguousarray(dwo[hid_map, :V].T)
    grads["output.bias"] = dbo[:V].copy()
    dY = _buffer(lay, 2 * Hp, dtype)
    K.matmul_rows(dlog, lay.rows, wout_t, np.zeros((wout_t.shape[0], _P), dtype), dY)

    # LSTM layers, top down
    for li in range(len(layers) - 1, -1, -1):
        L = layers[li]
        X, Z, Y, C, mask = saved[li]
        K.lstm_backward(Z, C, dY, T, lay.lengths, lay.order, L.whh_t[0], L.whh_t[1])
        dwx = np.zeros((L.n_in, 2 * Gp), dtype)
        dwh = np.zeros((Hp, 2 * Gp), dtype)
        db = np.zeros(2 * Gp, dtype)
        K.weight_grads(Z, lay.rows, X, L.n_in, dwx, Y, lay.hrows_f, lay.hrows_b, Hp, dwh, db)
        for d, name in enumerate(("fw", "bw")):
            cols = d * Gp + perm
            p = f"lstm.{li}.{name}."
            grads[p + "w_ih"] = np.ascontiguousarray(dwx[L.in_map][:, cols].T)
            grads[p + "w_hh"] = np.ascontiguousarray(dwh[:H][:, cols].T)
            grads[p + "bias"] = db[cols]
        if li > 0:
            dX = _buffer(lay, 2 * Hp, dtype)
            K.matmul_rows(Z, lay.rows, L.wcat_t, np.zeros((L.wcat_t.shape[0], _P), dtype), dX)
            if mask is not None:
                dX *= mask
            dY = dX
    grads = {k: grads[k] for k in config.expected_shapes()}
    return losses, grads
