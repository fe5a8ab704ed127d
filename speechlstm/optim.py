"""Optimization: Adam/AdamW, global-norm gradient clipping, learning-rate schedules, weight averaging.

Parameters and gradients are dicts of name -> float32 array (the names of :mod:`speechlstm.model`).  The
arithmetic over all parameters runs in Numba kernels (float32, one serial loop per array, so results are
bitwise reproducible run to run and across a checkpoint/resume).

Examples
--------
>>> import numpy as np
>>> from speechlstm.optim import Adam, LRSchedule, clip_global_norm
>>> params = {"w": np.ones(3, np.float32)}
>>> opt = Adam(params, lr=0.1)
>>> grads = {"w": np.array([3.0, 4.0, 0.0], np.float32)}
>>> float(clip_global_norm(grads, max_norm=1.0))       # norm before clipping
5.0
>>> opt.step(grads)
>>> params["w"].astype(float).round(3).tolist()        # Adam's first step moves each weight by lr * sign(g)
[0.9, 0.9, 1.0]
>>> LRSchedule(warmup_steps=10, peak_lr=1e-3, decay="cosine", total_steps=100)(4)
0.0005
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

__all__ = ["Adam", "clip_global_norm", "global_norm", "LRSchedule", "average_params", "DECAYS"]

DECAYS = ("constant", "cosine", "exponential", "noam", "linear")


# ---------------------------------------------------------------- kernels
@njit(cache=True, nogil=True, error_model="numpy")
def _adam_kernel(p, g, m, v, lr, beta1, one_m_beta1, beta2, one_m_beta2, inv_bc1, inv_sqrt_bc2, eps, wd,
                 decoupled):
    """One Adam(W) update of the flat float32 arrays ``p`` (in place), with moments ``m``, ``v``.

    ``update = (m / bc1) / (sqrt(v / bc2) + eps)``; coupled weight decay (L2) adds ``wd * p`` to the
    gradient before the moments, decoupled (AdamW) subtracts ``lr * wd * p`` from the weight.
    """
    for i in range(p.size):
        pi = p[i]
        gi = g[i]
        if not decoupled:
            gi = gi + wd * pi
        mi = beta1 * m[i] + one_m_beta1 * gi
        vi = beta2 * v[i] + one_m_beta2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        upd = (mi * inv_bc1) / (np.sqrt(vi) * inv_sqrt_bc2 + eps)
        if decoupled:
            upd = upd + wd * pi
        p[i] = pi - lr * upd


@njit(cache=True, nogil=True, error_model="numpy")
def _sum_squares(g):
    """Sum of squares of a flat float32 array, accumulated in float64 (sequential: reproducible)."""
    s = 0.0
    for i in range(g.size):
        x = np.float64(g[i])
        s += x * x
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_inplace(g, factor):
    for i in range(g.size):
        g[i] = g[i] * factor


def _flat(a: np.ndarray, name: str) -> np.ndarray:
    if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous):
        raise TypeError(f"'{name}' must be a C-contiguous float32 array")
    return a.reshape(-1)


# ---------------------------------------------------------------- Adam
class Adam:
    """Adam (``decoupled=False``: L2 weight decay added to the gradient) or AdamW (``decoupled=True``).

    Parameters
    ----------
    params : dict of str to ndarray
        C-contiguous float32 arrays, updated **in place** by :meth:`step`.
    lr : float
        Default learning rate (a schedule usually passes ``lr`` to every :meth:`step`).
    betas : tuple of float
        Decay rates of the first and second moment estimates.
    eps : float
        Added to ``sqrt(v_hat)`` in the denominator.
    weight_decay : float
        Decay coefficient. It applies only to matrices (``ndim >= 2``): biases are never decayed.
    decoupled : bool
        True for AdamW (``w -= lr * weight_decay * w``, independent of the gradient scale), False for the
        classic L2 penalty folded into the gradient.

    Examples
    --------
    >>> import numpy as np
    >>> p = {"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)}
    >>> opt = Adam(p, lr=0.01)
    >>> for _ in range(3):
    ...     opt.step({"w": np.ones((2, 2), np.float32), "b": -np.ones(2, np.float32)})
    >>> opt.num_steps, p["w"].astype(float).round(4).tolist()[0], p["b"].astype(float).round(4).tolist()
    (3, [-0.03, -0.03], [0.03, 0.03])
    """

    def __init__(self, params: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = True):
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        for k, a in params.items():
            _flat(a, k)
        self.params = params
        self.lr = float(lr)
        self.betas = (b1, b2)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.decoupled = bool(decoupled)
        self.num_steps = 0
        self.exp_avg = {k: np.zeros_like(a) for k, a in params.items()}
        self.exp_avg_sq = {k: np.zeros_like(a) for k, a in params.items()}

    def step(self, grads: dict, lr: float | None = None) -> None:
        """Apply one update with ``grads`` (same keys and shapes as the parameters).

        Parameters
        ----------
        grads : dict of str to ndarray
            Gradients; they are read, not modified.
        lr : float, optional
            Learning rate of this step (default: the ``lr`` given at construction).
        """
        missing = set(self.params) - set(grads)
        if missing:
            raise KeyError(f"no gradient for parameter(s): {', '.join(sorted(missing))}")
        lr = self.lr if lr is None else float(lr)
        self.num_steps += 1
        t = self.num_steps
        b1, b2 = self.betas
        f32 = np.float32
        inv_bc1 = f32(1.0 / (1.0 - b1 ** t))
        inv_sqrt_bc2 = f32(1.0 / math.sqrt(1.0 - b2 ** t))
        for k, p in self.params.items():
            g = grads[k]
            if g.shape != p.shape:
                raise ValueError(f"gradient '{k}' has shape {g.shape}, parameter has {p.shape}")
            g = np.ascontiguousarray(g, dtype=np.float32).reshape(-1)
            wd = self.weight_decay if p.ndim >= 2 else 0.0
            _adam_kernel(p.reshape(-1), g, self.exp_avg[k].reshape(-1), self.exp_avg_sq[k].reshape(-1),
                         f32(lr), f32(b1), f32(1.0 - b1), f32(b2), f32(1.0 - b2), inv_bc1, inv_sqrt_bc2,
                         f32(self.eps), f32(wd), self.decoupled)

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: hyper-parameters, step count and copies of the moments.

        Examples
        --------
        >>> import numpy as np
        >>> opt = Adam({"w": np.zeros(2, np.float32)})
        >>> sorted(opt.state_dict())
        ['betas', 'decoupled', 'eps', 'exp_avg', 'exp_avg_sq', 'lr', 'num_steps', 'weight_decay']
        """
        return {
            "lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay,
            "decoupled": self.decoupled, "num_steps": self.num_steps,
            "exp_avg": {k: a.copy() for k, a in self.exp_avg.items()},
            "exp_avg_sq": {k: a.copy() for k, a in self.exp_avg_sq.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (moments are copied into the existing buffers).

        Examples
        --------
        >>> import numpy as np
        >>> a = Adam({"w": np.zeros(2, np.float32)}); a.step({"w": np.ones(2, np.float32)})
        >>> b = Adam({"w": np.zeros(2, np.float32)}); b.load_state_dict(a.state_dict())
        >>> b.num_steps, b.exp_avg["w"].tolist() == a.exp_avg["w"].tolist()
        (1, True)
        """
        for name in ("exp_avg", "exp_avg_sq"):
            src = state[name]
            if set(src) != set(self.params):
                raise KeyError(f"optimizer state '{name}' does not match the parameters")
            for k, buf in getattr(self, name).items():
                a = np.asarray(src[k])
                if a.shape != buf.shape:
                    raise ValueError(f"optimizer state '{name}.{k}' has shape {a.shape}, expected {buf.shape}")
                buf[...] = a
        self.lr = float(state["lr"])
        self.betas = tuple(float(b) for b in state["betas"])
        self.eps = float(state["eps"])
        self.weight_decay = float(state["weight_decay"])
        self.decoupled = bool(state["decoupled"])
        self.num_steps = int(state["num_steps"])


# ---------------------------------------------------------------- clipping
def global_norm(grads: dict) -> float:
    """L2 norm of all gradients together (float64 accumulation, in the dict's order).

    Examples
    --------
    >>> import numpy as np
    >>> global_norm({"a": np.array([3.0], np.float32), "b": np.array([[4.0]], np.float32)})
    5.0
    """
    total = 0.0
    for k, g in grads.items():
        total += _sum_squares(np.ascontiguousarray(g, dtype=np.float32).reshape(-1))
    return math.sqrt(total)


def clip_global_norm(grads: dict, max_norm: float | None, scale: float = 1.0) -> float:
    """Scale gradients in place so that their global L2 norm is at most ``max_norm``.

    Parameters
    ----------
    grads : dict of str to ndarray
        C-contiguous float32 arrays, modified in place.
    max_norm : float or None
        Largest allowed global norm; ``None`` or ``<= 0`` disables clipping.
    scale : float, optional
        A factor applied first (e.g. ``1 / number of label tokens`` to turn the gradient of a summed loss
        into that of a mean); clipping looks at the scaled norm. One pass over the arrays does both.

    Returns
    -------
    float
        Global norm of ``scale * grads`` **before** clipping. When it is not finite the gradients are left
        untouched (the caller should skip the step).

    Examples
    --------
    >>> import numpy as np
    >>> g = {"w": np.array([6.0, 8.0], np.float32)}
    >>> clip_global_norm(g, max_norm=5.0, scale=0.5), g["w"].tolist()
    (5.0, [3.0, 4.0])
    >>> clip_global_norm(g, max_norm=1.0), g["w"].tolist()
    (5.0, [0.6000000238418579, 0.800000011920929])
    """
    flats = [_flat(g, k) for k, g in grads.items()]
    total = 0.0
    for f in flats:
        total += _sum_squares(f)
    norm = math.sqrt(total) * abs(float(scale))
    if not math.isfinite(norm):
        return norm
    factor = float(scale)
    if max_norm is not None and max_norm > 0 and norm > max_norm:
        factor *= max_norm / norm
    if factor != 1.0:
        f32 = np.float32(factor)
        for f in flats:
            _scale_inplace(f, f32)
    return norm


# ---------------------------------------------------------------- schedule
@dataclass
class LRSchedule:
    """Learning rate as a function of the optimizer step: linear warm-up, then a decay.

    ``lr(step)`` is the rate of the update made when ``step`` updates have already been made (0-based).
    Warm-up: ``peak_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Then, with
    ``s = step - warmup_steps`` and ``n = total_steps - warmup_steps``:

    ``"constant"``     ``peak_lr``
    ``"cosine"``       ``min_lr + (peak_lr - min_lr) * (1 + cos(pi * min(s / n, 1))) / 2``
    ``"linear"``       ``peak_lr + (min_lr - peak_lr) * min(s / n, 1)``
    ``"exponential"``  ``max(min_lr, peak_lr * gamma ** s)``, ``gamma = decay_rate`` if given, else chosen
                       so that the rate reaches ``min_lr`` (``> 0``) at ``total_steps``
    ``"noam"``         ``max(min_lr, peak_lr * sqrt(warmup_steps / (step + 1)))`` (inverse square root)

    Examples
    --------
    >>> s = LRSchedule(warmup_steps=2, peak_lr=1.0, decay="linear", total_steps=6, min_lr=0.0)
    >>> [round(s(i), 3) for i in range(7)]
    [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    >>> LRSchedule(4, 1.0, "noam")(15)
    0.5
    """

    warmup_steps: int = 0
    peak_lr: float = 1e-3
    decay: str = "cosine"
    total_steps: int = 0
    min_lr: float = 0.0
    decay_rate: float | None = None

    def __post_init__(self):
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {', '.join(DECAYS)} (got {self.decay!r})")
        if self.warmup_steps < 0 or not self.peak_lr >= 0 or not self.min_lr >= 0:
            raise ValueError("warmup_steps, peak_lr and min_lr must be >= 0")
        if self.decay == "exponential" and self.decay_rate is None and not (
                self.min_lr > 0 and self.total_steps > self.warmup_steps):
            raise ValueError("exponential decay needs decay_rate, or min_lr > 0 and total_steps > warmup_steps")
        if self.decay_rate is not None and not 0 < self.decay_rate <= 1:
            raise ValueError("decay_rate must be in (0, 1]")

    def __call__(self, step: int) -> float:
        step = int(step)
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        s = step - self.warmup_steps
        n = max(self.total_steps - self.warmup_steps, 1)
        if self.decay == "constant":
            return self.peak_lr
        if self.decay == "cosine":
            frac = min(s / n, 1.0)
            return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
        if self.decay == "linear":
            return self.peak_lr + (self.min_lr - self.peak_lr) * min(s / n, 1.0)
        if self.decay == "exponential":
            gamma = self.decay_rate
            if gamma is None:
                gamma = (self.min_lr / self.peak_lr) ** (1.0 / n) if self.peak_lr > 0 else 1.0
            return max(self.min_lr, self.peak_lr * gamma ** s)
        # noam
        return max(self.min_lr, self.peak_lr * math.sqrt(max(self.warmup_steps, 1) / (step + 1)))

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- averaging
def average_params(param_dicts) -> dict:
    """Element-wise mean of several parameter dicts (e.g. the last checkpoints), float64 sum, float32 result.

    Examples
    --------
    >>> import numpy as np
    >>> average_params([{"w": np.array([1.0], np.float32)}, {"w": np.array([2.0], np.float32)}])["w"].tolist()
    [1.5]
    """
    dicts = list(param_dicts)
    if not dicts:
        raise ValueError("average_params needs at least one parameter dict")
    keys = list(dicts[0])
    for d in dicts[1:]:
        if set(d) != set(keys):
            raise KeyError("parameter dicts have different names")
    out = {}
    for k in keys:
        acc = np.zeros(np.shape(dicts[0][k]), np.float64)
        for d in dicts:
            if np.shape(d[k]) != acc.shape:
                raise ValueError(f"parameter '{k}' has different shapes")
            acc += d[k]
        out[k] = (acc / len(dicts)).astype(np.float32)
    return out
