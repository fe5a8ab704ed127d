"""Feature front end: log-mel filterbank energies and MFCCs (optionally with deltas), Numba-accelerated.

The convention
--------------
One convention, fully described by :class:`FeatureConfig` (stored in the model's ``config.json`` under
``features``).  With the defaults it is exactly what librosa 0.11 computes with::

    y = x.copy(); y[1:] = x[1:] - 0.97 * x[:-1]                     # pre-emphasis, y[0] = x[0]
    S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400,
                                       window="hann", center=True, pad_mode="constant", power=2.0,
                                       n_mels=80, fmin=0.0, fmax=None, htk=False, norm="slaney")
    logmel = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None).T          # (n_frames, 80)
    mfcc = librosa.feature.mfcc(S=logmel.T, n_mfcc=13, dct_type=2, norm="ortho", lifter=0).T

Step by step:

1. input: mono float32 samples at ``sample_rate`` (16 kHz);
2. pre-emphasis ``y[n] = x[n] - a*x[n-1]`` with ``a = preemphasis`` (0.97; 0 disables) over the whole
   signal, ``y[0] = x[0]`` (the kernel takes the sample before the first one as an argument, so chunked or
   streaming callers can continue a signal);
3. framing with ``center=True``: ``n_fft // 2`` zeros on each side, frame ``t`` starts at ``t * hop_length``
   of the padded signal, ``num_frames = 1 + len // hop_length`` (one frame for an empty signal).  With
   ``center=False`` there is no padding and ``num_frames = 1 + (len - n_fft) // hop_length`` (0 if
   ``len < n_fft``);
4. window: periodic Hann of ``win_length`` (400 = 25 ms), ``0.5 - 0.5*cos(2*pi*n/win_length)``, zero-padded
   centred to ``n_fft`` (512; left padding ``(n_fft - win_length) // 2``); hop 160 = 10 ms;
5. power spectrum ``|rfft(frame)|^2`` (``n_fft // 2 + 1`` bins, no normalisation);
6. mel filterbank, ``n_mels`` (80) triangular filters between ``fmin`` (0) and ``fmax`` (``sample_rate/2``)
   on the Slaney mel scale (linear below 1 kHz, logarithmic above; ``mel_scale="htk"`` gives
   ``2595*log10(1 + f/700)``), Slaney area normalisation ``2 / (f[i+2] - f[i])`` (``mel_norm="none"``
   leaves peaks at 1); weights computed and rounded to float32 exactly as ``librosa.filters.mel`` does;
7. log: ``10 * log10(max(mel_power, log_floor))`` dB with ``log_floor = 1e-10``, no ``top_db`` clipping;
8. MFCC (``kind="mfcc"``): orthonormal DCT-II of the dB log-mel vector, first ``n_mfcc`` (13) coefficients,
   then, if ``lifter > 0``, coefficient ``c`` times ``1 + lifter/2 * sin(pi*(c+1)/lifter)``;
9. deltas (``deltas`` = 1 or 2): regression ``d[t] = sum_{n=1,2} n*(c[t+n] - c[t-n]) / 10`` with the first and
   last frames replicated at the edges; order 2 applies it to the deltas.  Columns are
   ``[static, delta, delta-delta]``, so ``dim = base * (1 + deltas)``.

All arithmetic inside the kernel is float64 (the result is float32): against librosa in float64 the
log-mel agrees to a few 1e-6 dB (float32 output rounding), including bands 100 dB below the frame
energy where a float32 FFT is off by several 1e-3 dB.

Normalisation (:func:`normalize_features`) is a separate step whose mode lives next to ``features`` in the
model configuration: ``"none"``, ``"global"`` (mean/std from training) or ``"utterance"`` (per-utterance
CMVN).

Examples
--------
>>> import numpy as np
>>> from speechlstm.features import FeatureConfig, compute_features
>>> t = np.arange(16000, dtype=np.float32) / 16000
>>> feats = compute_features(0.1 * np.sin(2 * np.pi * 440 * t), FeatureConfig())
>>> feats.shape, feats.dtype
((101, 80), dtype('float32'))
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import AudioError
from .kernels import frontend as _k

__all__ = ["FeatureConfig", "num_frames", "compute_features", "normalize_features", "mel_filterbank",
           "NORMALIZATION_MODES"]

#: Modes accepted by :func:`normalize_features`.
NORMALIZATION_MODES = ("none", "global", "utterance")

_KINDS = ("logmel", "mfcc")
_MEL_SCALES = ("slaney", "htk")
_MEL_NORMS = ("slaney", "none")
_UTTERANCE_STD_FLOOR = 1e-5


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class FeatureConfig:
    """The feature convention of a model (see the module docstring for the exact definition).

    Every field is validated on construction; a bad value raises ``ValueError("features.<field>: <why>")``.

    Attributes
    ----------
    kind : str
        ``"logmel"`` (dB log-mel energies) or ``"mfcc"``.
    sample_rate : int
        Sample rate of the input audio in Hz.
    n_fft : int
        FFT length, a power of two >= 8.
    win_length : int
        Window length in samples, ``1 <= win_length <= n_fft``.
    hop_length : int
        Frame shift in samples.
    window : str
        ``"hann"`` (periodic Hann), the only window supported.
    preemphasis : float
        Pre-emphasis coefficient in ``[0, 1]``; 0 disables.
    n_mels : int
        Number of mel filters.
    fmin, fmax : float
        Filterbank frequency range in Hz; ``fmax=None`` means ``sample_rate / 2``.
    mel_scale : str
        ``"slaney"`` (default, librosa ``htk=False``) or ``"htk"``.
    mel_norm : str
        ``"slaney"`` (area normalisation, librosa ``norm="slaney"``) or ``"none"``.
    log_floor : float
        Power floor before the logarithm (librosa ``amin``).
    n_mfcc : int
        Number of cepstral coefficients kept (``kind="mfcc"``), ``<= n_mels``.
    lifter : int
        Cepstral liftering coefficient, 0 disables.
    deltas : int
        0, 1 (append deltas) or 2 (append deltas and delta-deltas).
    center : bool
        Centre frames by padding ``n_fft // 2`` zeros on each side.

    Examples
    --------
    >>> cfg = FeatureConfig(kind="mfcc", deltas=2)
    >>> cfg.dim
    39
    >>> FeatureConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    kind: str = "logmel"
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    window: str = "hann"
    preemphasis: float = 0.97
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    mel_scale: str = "slaney"
    mel_norm: str = "slaney"
    log_floor: float = 1e-10
    n_mfcc: int = 13
    lifter: int = 0
    deltas: int = 0
    center: bool = True

    def __post_init__(self):
        def fail(name, why):
            raise ValueError(f"features.{name}: {why}")

        def set_(name, value):
            object.__setattr__(self, name, value)

        for name, allowed in (("kind", _KINDS), ("window", ("hann",)), ("mel_scale", _MEL_SCALES),
                              ("mel_norm", _MEL_NORMS)):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in allowed:
                fail(name, f"must be one of {', '.join(repr(a) for a in allowed)} (got {v!r})")
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc", "lifter", "deltas"):
            v = getattr(self, name)
            if not _is_int(v):
                fail(name, f"must be an integer (got {v!r})")
            set_(name, int(v))
        for name in ("preemphasis", "fmin", "log_floor") + (("fmax",) if self.fmax is not None else ()):
            v = getattr(self, name)
            if not _is_num(v) or not math.isfinite(v):
                fail(name, f"must be a finite number (got {v!r})")
            set_(name, float(v))
        if not isinstance(self.center, (bool, np.bool_)):
            fail("center", f"must be true or false (got {self.center!r})")
        set_("center", bool(self.center))

        if self.sample_rate <= 0:
            fail("sample_rate", f"must be positive (got {self.sample_rate})")
        if self.n_fft < 8 or self.n_fft & (self.n_fft - 1):
            fail("n_fft", f"must be a power of two >= 8 (got {self.n_fft})")
        if not 1 <= self.win_length <= self.n_fft:
            fail("win_length", f"must be in [1, n_fft={self.n_fft}] (got {self.win_length})")
        if self.hop_length < 1:
            fail("hop_length", f"must be >= 1 (got {self.hop_length})")
        if not 0.0 <= self.preemphasis <= 1.0:
            fail("preemphasis", f"must be in [0, 1] (got {self.preemphasis})")
        if self.n_mels < 1:
            fail("n_mels", f"must be >= 1 (got {self.n_mels})")
        nyquist = self.sample_rate / 2.0
        if not 0.0 <= self.fmin < nyquist:
            fail("fmin", f"must be in [0, sample_rate/2={nyquist:g}) (got {self.fmin:g})")
        if self.fmax is not None and not self.fmin < self.fmax <= nyquist:
            fail("fmax", f"must be in (fmin={self.fmin:g}, sample_rate/2={nyquist:g}] or null (got {self.fmax:g})")
        if not 1e-300 <= self.log_floor:
            fail("log_floor", f"must be >= 1e-300 (got {self.log_floor:g})")
        if not 1 <= self.n_mfcc <= self.n_mels:
            fail("n_mfcc", f"must be in [1, n_mels={self.n_mels}] (got {self.n_mfcc})")
        if self.lifter < 0:
            fail("lifter", f"must be >= 0 (got {self.lifter})")
        if self.deltas not in (0, 1, 2):
            fail("deltas", f"must be 0, 1 or 2 (got {self.deltas})")

    @property
    def base_dim(self) -> int:
        """Number of static coefficients per frame: ``n_mels`` for log-mel, ``n_mfcc`` for MFCC."""
        return self.n_mels if self.kind == "logmel" else self.n_mfcc

    @property
    def dim(self) -> int:
        """Feature dimension: ``base_dim * (1 + deltas)``."""
        return self.base_dim * (1 + self.deltas)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (``fmax`` may be ``None``).

        Examples
        --------
        >>> FeatureConfig().to_dict()["n_mels"]
        80
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Build and validate a configuration from a dict (e.g. parsed JSON); missing fields take defaults.

        Raises ``ValueError("features.<field>: <why>")`` for unknown fields and invalid values.

        Examples
        --------
        >>> FeatureConfig.from_dict({"kind": "mfcc", "n_mfcc": 20}).dim
        20
        >>> FeatureConfig.from_dict({"n_mel": 40})
        Traceback (most recent call last):
        ...
        ValueError: features.n_mel: unknown field
        """
        if not isinstance(d, dict):
            raise ValueError(f"features: must be an object (got {type(d).__name__})")
        names = {f.name for f in fields(cls)}
        for key in d:
            if key not in names:
                raise ValueError(f"features.{key}: unknown field")
        return cls(**d)


def num_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Number of frames :func:`compute_features` returns for ``n_samples`` samples.

    Examples
    --------
    >>> num_frames(16000, FeatureConfig())
    101
    >>> num_frames(0, FeatureConfig())
    1
    """
    n = int(n_samples)
    if n < 0:
        raise ValueError(f"n_samples must be >= 0 (got {n})")
    if cfg.center:
        return 1 + n // cfg.hop_length
    if n < cfg.n_fft:
        return 0
    return 1 + (n - cfg.n_fft) // cfg.hop_length


def _hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _filterbank_cfg_key(cfg: FeatureConfig):
    return (cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax, cfg.mel_scale, cfg.mel_norm)


@functools.lru_cache(maxsize=16)
def _filterbank(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, mel_norm):
    if fmax is None:
        fmax = sample_rate / 2.0
    htk = mel_scale == "htk"
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # rounded to float32 at the same points as librosa.filters.mel (dtype=float32)
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    if mel_norm == "slaney":
        enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
        weights = (weights.astype(np.float64) * enorm[:, None]).astype(np.float32)
    weights.setflags(write=False)
    return weights


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """The mel filterbank of ``cfg``, shape ``(n_mels, n_fft // 2 + 1)``, float32 (read-only, cached).

    Equal to ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
    htk=(mel_scale == "htk"), norm="slaney" or None)``.

    Examples
    --------
    >>> fb = mel_filterbank(FeatureConfig())
    >>> fb.shape, int((fb > 0).sum(axis=0).max())
    ((80, 257), 2)
    """
    return _filterbank(*_filterbank_cfg_key(cfg))


@functools.lru_cache(maxsize=16)
def _tables(cfg: FeatureConfig):
    """Everything the kernel needs for ``cfg`` (cached per configuration)."""
    n_fft = cfg.n_fft
    window = np.zeros(n_fft, dtype=np.float64)
    lpad = (n_fft - cfg.win_length) // 2
    window[lpad:lpad + cfg.win_length] = 0.5 - 0.5 * np.cos(
        2.0 * np.pi * np.arange(cfg.win_length, dtype=np.float64) / cfg.win_length)
    bitrev, tw_re, tw_im, post_cos, post_sin = _k.fft_tables(n_fft)

    fb = mel_filterbank(cfg).astype(np.float64)
    n_bins = fb.shape[1]
    mel_idx = np.zeros(n_bins, dtype=np.int64)
    mel_w0 = np.zeros(n_bins, dtype=np.float64)
    mel_w1 = np.zeros(n_bins, dtype=np.float64)
    active = []
    for k in range(n_bins):
        nz = np.flatnonzero(fb[:, k])
        if nz.size == 0:
            continue
        if nz.size > 2 or (nz.size == 2 and nz[1] != nz[0] + 1):
            raise ValueError(f"features: FFT bin {k} lies in filters {nz.tolist()}; expected at most 2 adjacent")
        active.append(k)
        mel_idx[k] = nz[0]
        # 0.25: the kernel's half-length FFT split yields 2*X[k]
        mel_w0[k] = 0.25 * fb[nz[0], k]
        if nz.size == 2:
            mel_w1[k] = 0.25 * fb[nz[1], k]
    k_lo, k_hi = (active[0], active[-1] + 1) if active else (0, 0)

    if cfg.kind == "mfcc":
        n = cfg.n_mels
        c = np.arange(cfg.n_mfcc, dtype=np.float64)[:, None]
        m = np.arange(n, dtype=np.float64)[None, :]
        dct = np.sqrt(2.0 / n) * np.cos(np.pi * c * (2.0 * m + 1.0) / (2.0 * n))
        dct[0] *= np.sqrt(0.5)
        if cfg.lifter > 0:
            lift = 1.0 + (cfg.lifter / 2.0) * np.sin(np.pi * np.arange(1, cfg.n_mfcc + 1) / cfg.lifter)
            dct *= lift[:, None]
        dct = np.ascontiguousarray(dct)
    else:
        dct = np.zeros((0, cfg.n_mels), dtype=np.float64)
    return (window, bitrev, tw_re, tw_im, post_cos, post_sin, int(k_lo), int(k_hi), mel_idx, mel_w0, mel_w1,
            dct)


def compute_features(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Feature frames of a mono signal under the convention ``cfg``.

    Parameters
    ----------
    samples : array_like of float, shape (n_samples,)
        Mono audio at ``cfg.sample_rate``, nominally in [-1, 1] (converted to float32).
    cfg : FeatureConfig
        The convention.

    Returns
    -------
    ndarray of float32, shape (num_frames(n_samples, cfg), cfg.dim), C-contiguous

    Raises
    ------
    ValueError
        ``samples`` is not one-dimensional or not floating point.
    AudioError
        ``samples`` contains NaN or Inf.

    Examples
    --------
    >>> import numpy as np
    >>> cfg = FeatureConfig(kind="mfcc", deltas=1)
    >>> compute_features(np.zeros(8000, np.float32), cfg).shape
    (51, 26)
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"samples must be a 1-D (mono) array, got shape {x.shape}")
    if x.dtype.kind != "f":
        if x.size == 0:
            x = x.astype(np.float32)
        else:
            raise ValueError(f"samples must be floating point in [-1, 1], got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not x.flags.writeable:  # keep a single Numba specialisation (read-only arrays are another type)
        x = x.copy()
    return _features_from_tables(x, cfg, lambda: _tables(cfg))


def _features_from_tables(x: np.ndarray, cfg: FeatureConfig, tables) -> np.ndarray:
    """Feature frames of ``x`` (1-D, C-contiguous, writeable float32 samples) with the kernel tables
    ``tables()`` (:func:`_tables` or a warped variant; called only when there is a frame to compute)."""
    if not _k.all_finite(x):
        raise AudioError("audio contains NaN or Inf samples")
    n_frames = num_frames(x.shape[0], cfg)
    out = np.empty((n_frames, cfg.dim), dtype=np.float32)
    if n_frames == 0:
        return out
    (window, bitrev, tw_re, tw_im, post_cos, post_sin, k_lo, k_hi, mel_idx, mel_w0, mel_w1, dct) = tables()
    first = -(cfg.n_fft // 2) if cfg.center else 0
    _k.logmel_frames(x, 0.0, cfg.preemphasis, first, cfg.hop_length, window, bitrev, tw_re, tw_im, post_cos,
                     post_sin, k_lo, k_hi, mel_idx, mel_w0, mel_w1, cfg.n_mels, cfg.log_floor, dct, out)
    if cfg.deltas:
        _k.add_deltas(out, cfg.base_dim, cfg.deltas)
    return out


def normalize_features(feats: np.ndarray, mode: str, mean=None, std=None) -> np.ndarray:
    """Normalise feature frames ``(T, D)``.

    Parameters
    ----------
    feats : array_like, shape (T, D)
        Features, e.g. from :func:`compute_features`.
    mode : str
        ``"none"`` (unchanged), ``"global"`` (``(feats - mean) / std`` with training statistics) or
        ``"utterance"`` (per-utterance CMVN: mean and standard deviation over the T frames of this
        utterance, the standard deviation floored at 1e-5).
    mean, std : array_like, shape (D,), optional
        Required for ``"global"`` (``std`` > 0); ignored otherwise.

    Returns
    -------
    ndarray of float32, shape (T, D), C-contiguous (a new array, except for ``"none"`` when ``feats``
    already is float32 and C-contiguous).

    Examples
    --------
    >>> import numpy as np
    >>> f = np.array([[1.0, 10.0], [3.0, 30.0]], np.float32)
    >>> normalize_features(f, "utterance").tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> normalize_features(f, "global", mean=[2.0, 20.0], std=[1.0, 10.0]).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """
    x = np.asarray(feats)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (frames, dims) array, got shape {x.shape}")
    if mode == "none":
        return np.ascontiguousarray(x, dtype=np.float32)
    if mode == "global":
        if mean is None or std is None:
            raise ValueError("normalization 'global' needs both mean and std")
        d = x.shape[1]
        mu = np.asarray(mean, dtype=np.float64)
        sd = np.asarray(std, dtype=np.float64)
        for name, v in (("mean", mu), ("std", sd)):
            if v.shape != (d,):
                raise ValueError(f"normalization {name} must have shape ({d},) to match the features, "
                                 f"got {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"normalization {name} must be finite")
        if not np.all(sd > 0):
            raise ValueError("normalization std must be positive")
        out = (x - mu.astype(np.float32)) / sd.astype(np.float32)
        return np.ascontiguousarray(out, dtype=np.float32)
    if mode == "utterance":
        if x.shape[0] == 0:
            return np.ascontiguousarray(x, dtype=np.float32).copy()
        x64 = x.astype(np.float64)
        mu = x64.mean(axis=0)
        sd = np.maximum(x64.std(axis=0), _UTTERANCE_STD_FLOOR)
        return np.ascontiguousarray((x64 - mu) / sd, dtype=np.float32)
    raise ValueError(f"normalization mode must be one of {', '.join(NORMALIZATION_MODES)} (got {mode!r})")
