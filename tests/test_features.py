"""Tests of the feature front end: parity with librosa, deltas, normalisation, configuration, edge cases."""

import json
from pathlib import Path
import os
import warnings

import numpy as np
import pytest

from speechlstm.errors import AudioError
from speechlstm.features import (FeatureConfig, compute_features, mel_filterbank, normalize_features,
                                 num_frames)
from speechlstm.kernels import frontend as kernels

librosa = pytest.importorskip("librosa")

SPEECH = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "audio" / "ljspeech" / "LJ001-0017.flac")


def _speech():
    if not os.path.exists(SPEECH):
        pytest.skip(f"real speech clip {SPEECH} not available")
    import soundfile as sf

    x, sr = sf.read(SPEECH, dtype="float32")
    assert sr == 16000
    return x


def _signal(name):
    rng = np.random.default_rng(1234)
    if name == "speech":
        return _speech()
    if name == "noise":
        return (0.3 * rng.standard_normal(16000)).astype(np.float32)
    if name == "tone":  # silence, a pure tone, silence: bands ~140 dB below the tone's energy
        x = np.zeros(24000, np.float32)
        t = np.arange(12000) / 16000
        x[6000:18000] = 0.5 * np.sin(2 * np.pi * 440.0 * t)
        return x
    if name == "loud":  # full-scale square wave, a worst case for dynamic range
        return np.sign(np.sin(2 * np.pi * 97.0 * np.arange(8000) / 16000)).astype(np.float32)
    if name.startswith("short"):  # very short signals: shorter than one window, or just one sample
        n = int(name[5:])
        return (0.2 * rng.standard_normal(n)).astype(np.float32)
    raise KeyError(name)


SIGNALS = ["speech", "noise", "tone", "loud", "short0", "short1", "short100", "short399", "short513"]

CONFIGS = {
    "default": FeatureConfig(),
    "htk-nonorm-band": FeatureConfig(n_fft=1024, win_length=800, hop_length=200, n_mels=64, mel_scale="htk",
                                     mel_norm="none", fmin=50.0, fmax=7000.0),
    "8k-no-preemph": FeatureConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40,
                                   preemphasis=0.0),
    "not-centered": FeatureConfig(n_fft=256, win_length=256, hop_length=128, n_mels=40, center=False),
}


def librosa_logmel(x, cfg):
    """librosa configured to the convention, in float64 (the float32 path of librosa itself carries
    rounding errors of several 1e-3 dB in low-energy bands, so it cannot serve as a 1e-3 dB reference)."""
    x = np.asarray(x, np.float64)
    y = x.copy()
    y[1:] = x[1:] - cfg.preemphasis * x[:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_fft too large for input signal" on the short signals
        S = librosa.feature.melspectrogram(
            y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
            window="hann", center=cfg.center, pad_mode="constant", power=2.0, n_mels=cfg.n_mels, fmin=cfg.fmin,
            fmax=cfg.fmax, htk=cfg.mel_scale == "htk", norm="slaney" if cfg.mel_norm == "slaney" else None)
    return librosa.power_to_db(S, ref=1.0, amin=cfg.log_floor, top_db=None).T


def librosa_mfcc(x, cfg):
    return librosa.feature.mfcc(S=librosa_logmel(x, cfg).T, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho",
                                lifter=cfg.lifter).T


def _replace(cfg, **kw):
    return FeatureConfig.from_dict({**cfg.to_dict(), **kw})


# ---------------------------------------------------------------------------------------------- parity

@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("cname", list(CONFIGS))
def test_logmel_matches_librosa(signal, cname):
    cfg = CONFIGS[cname]
    x = _signal(signal)
    if not cfg.center and x.size < cfg.n_fft:
        assert compute_features(x, cfg).shape == (0, cfg.dim)
        return
    ours = compute_features(x, cfg)
    ref = librosa_logmel(x, cfg)
    assert ours.shape == ref.shape == (num_frames(x.size, cfg), cfg.n_mels)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    assert np.abs(ours - ref).max() <= 1e-3


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("n_mfcc,lifter", [(13, 0), (20, 22), (40, 0)])
def test_mfcc_matches_librosa(signal, n_mfcc, lifter):
    cfg = FeatureConfig(kind="mfcc", n_mfcc=n_mfcc, lifter=lifter)
    x = _signal(signal)
    ours = compute_features(x, cfg)
    ref = librosa_mfcc(x, cfg)
    assert ours.shape == ref.shape == (num_frames(x.size, cfg), n_mfcc)
    err = np.abs(ours.astype(np.float64) - ref)
    assert err.max() <= 1e-4 * np.abs(ref).max()
    # per coefficient too, so that small higher-order coefficients are held to the same relative accuracy
    assert np.all(err.max(axis=0) <= 1e-4 * np.maximum(np.abs(ref).max(axis=0), 1.0))


@pytest.mark.parametrize("n_mels", [64, 42, 23])  # the kernel's DCT loop takes mel rows 4 at a time
def test_mfcc_other_config_matches_librosa(n_mels):
    cfg = _replace(CONFIGS["htk-nonorm-band"], kind="mfcc", n_mfcc=min(24, n_mels), lifter=12, n_mels=n_mels)
    x = _signal("noise")
    ref = librosa_mfcc(x, cfg)
    assert np.abs(compute_features(x, cfg) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_filterbank_equals_librosa():
    for cfg in CONFIGS.values():
        ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                  fmax=cfg.fmax, htk=cfg.mel_scale == "htk",
                                  norm="slaney" if cfg.mel_norm == "slaney" else None)
        ours = mel_filterbank(cfg)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        assert np.abs(ours - ref).max() <= 1e-7 * np.abs(ref).max()
        assert (np.count_nonzero(ours, axis=0) <= 2).all()


def test_fft_kernel_matches_numpy():
    # the blocked real FFT + power, checked directly through a one-filter-per-bin "filterbank"
    for n_fft in (8, 16, 64, 512, 1024):
        rng = np.random.default_rng(n_fft)
        n_frames = 2 * kernels.BLOCK + 3
        hop = n_fft // 2
        x = rng.standard_normal(hop * (n_frames - 1) + n_fft).astype(np.float32)
        n_bins = n_fft // 2 + 1
        rev, twr, twi, pc, ps = kernels.fft_tables(n_fft)
        window = np.ones(n_fft)
        idx = np.arange(n_bins, dtype=np.int64)
        w0 = np.full(n_bins, 0.25)
        w1 = np.zeros(n_bins)
        out = np.empty((n_frames, n_bins), np.float32)
        kernels.logmel_frames(x, 0.0, 0.0, 0, hop, window, rev, twr, twi, pc, ps, 0, n_bins, idx, w0, w1,
                              n_bins, 1e-30, np.zeros((0, n_bins)), out)
        frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), n_fft)[::hop]
        ref = 10 * np.log10(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, 1e-30))
        assert np.abs(out - ref).max() < 1e-3, n_fft


# ------------------------------------------------------------------------------------ shapes & input

@pytest.mark.parametrize("n", [0, 1, 159, 160, 161, 399, 400, 511, 512, 513, 16000, 16001])
@pytest.mark.parametrize("center", [True, False])
def test_num_frames_matches_output(n, center):
    cfg = FeatureConfig(center=center, kind="mfcc", deltas=1)
    x = np.zeros(n, np.float32)
    out = compute_features(x, cfg)
    assert out.shape == (num_frames(n, cfg), 26)
    if center:
        assert out.shape[0] == 1 + n // 160
    else:
        assert out.shape[0] == (0 if n < 512 else 1 + (n - 512) // 160)


def test_silence_is_the_floor():
    out = compute_features(np.zeros(4000, np.float32), FeatureConfig())
    assert np.all(out == np.float32(-100.0))


def test_input_forms_agree():
    x = _signal("noise")
    cfg = FeatureConfig()
    ref = compute_features(x, cfg)
    big = np.zeros(2 * x.size, np.float32)
    big[::2] = x
    ro = x.copy()
    ro.setflags(write=False)
    for other in (x.astype(np.float64), big[::2], ro):
        np.testing.assert_array_equal(compute_features(other, cfg), ref)
    np.testing.assert_array_equal(compute_features(list(x[:1000]), cfg), compute_features(x[:1000], cfg))


def test_bad_input():
    cfg = FeatureConfig()
    with pytest.raises(ValueError, match="1-D"):
        compute_features(np.zeros((2, 100), np.float32), cfg)
    with pytest.raises(ValueError, match="floating point"):
        compute_features(np.zeros(100, np.int16), cfg)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(1000, np.float32)
        x[777] = bad
        with pytest.raises(AudioError, match="NaN or Inf"):
            compute_features(x, cfg)


def test_all_finite_kernel():
    x = np.linspace(-3e38, 3e38, 1001).astype(np.float32)
    assert kernels.all_finite(x)
    for bad in (np.nan, np.inf, -np.inf):
        for pos in (0, 17, 1000):
            y = x.copy()
            y[pos] = bad
            assert not kernels.all_finite(y)


def test_streaming_with_previous_sample():
    # frames of the second half of a signal, computed from that half alone plus the sample before it,
    # equal the frames of the whole signal (center=False so no padding enters the comparison)
    cfg = FeatureConfig(center=False)
    x = _signal("noise")
    full = compute_features(x, cfg)
    from speechlstm.features import _tables

    (window, rev, twr, twi, pc, ps, k_lo, k_hi, idx, w0, w1, dct) = _tables(cfg)
    split = 50 * cfg.hop_length + 7
    t0 = -(-split // cfg.hop_length)  # first frame starting at or after the split
    part = x[split:]
    out = np.empty((full.shape[0] - t0, cfg.n_mels), np.float32)
    kernels.logmel_frames(part, float(x[split - 1]), cfg.preemphasis, t0 * cfg.hop_length - split,
                          cfg.hop_length, window, rev, twr, twi, pc, ps, k_lo, k_hi, idx, w0, w1, cfg.n_mels,
                          cfg.log_floor, dct, out)
    np.testing.assert_allclose(out, full[t0:], rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------ deltas

def numpy_deltas(c):
    T = c.shape[0]
    idx = np.arange(T)
    get = lambda k: c[np.clip(idx + k, 0, T - 1)].astype(np.float64)  # noqa: E731
    return ((get(1) - get(-1)) + 2 * (get(2) - get(-2))) / 10.0


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
@pytest.mark.parametrize("n", [0, 160, 320, 480, 16000])
def test_deltas_match_numpy(kind, n):
    x = _signal("noise")[:n] if n else np.zeros(0, np.float32)
    base_cfg = FeatureConfig(kind=kind)
    static = compute_features(x, base_cfg)
    for order in (1, 2):
        cfg = _replace(base_cfg, deltas=order)
        out = compute_features(x, cfg)
        b = base_cfg.dim
        assert out.shape == (static.shape[0], b * (1 + order)) == (num_frames(n, cfg), cfg.dim)
        np.testing.assert_array_equal(out[:, :b], static)
        d1 = numpy_deltas(static)
        np.testing.assert_allclose(out[:, b:2 * b], d1, rtol=1e-5, atol=1e-4)
        if order == 2:
            d2 = numpy_deltas(out[:, b:2 * b])
            np.testing.assert_allclose(out[:, 2 * b:], d2, rtol=1e-5, atol=1e-4)


def test_deltas_of_a_ramp():
    f = np.zeros((6, 3), np.float32)
    f[:, 0] = np.arange(6)
    kernels.add_deltas(f, 1, 2)
    np.testing.assert_allclose(f[:, 1], [0.5, 0.8, 1.0, 1.0, 0.8, 0.5], rtol=1e-6)
    np.testing.assert_allclose(f[:, 2], numpy_deltas(f[:, 1:2])[:, 0], rtol=1e-6)


# ----------------------------------------------------------------------------------- normalisation

def test_normalize_none_global_utterance():
    rng = np.random.default_rng(5)
    f = (rng.standard_normal((50, 4)) * [1, 2, 3, 4] + [10, -5, 0, 3]).astype(np.float32)
    out = normalize_features(f, "none")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, f)

    mean, std = np.array([1, 2, 3, 4.0]), np.array([2, 4, 8, 16.0])
    g = normalize_features(f, "global", mean=mean, std=std)
    assert g.dtype == np.float32 and g.flags.c_contiguous
    np.testing.assert_allclose(g, (f - mean) / std, rtol=1e-6, atol=1e-6)

    u = normalize_features(f.astype(np.float64), "utterance")
    assert u.dtype == np.float32
    np.testing.assert_allclose(u.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(u.std(axis=0), 1, atol=1e-5)


def test_normalize_utterance_constant_and_empty():
    f = np.full((7, 3), 4.0, np.float32)
    assert np.all(normalize_features(f, "utterance") == 0)
    one = np.array([[1.0, 2.0]], np.float32)
    assert np.all(normalize_features(one, "utterance") == 0)
    assert normalize_features(np.zeros((0, 3), np.float32), "utterance").shape == (0, 3)
    # std floor: a nearly constant column is not blown up beyond (x - mean) / 1e-5
    f = np.zeros((2, 1), np.float32)
    f[1, 0] = 1e-7
    assert np.abs(normalize_features(f, "utterance")).max() <= 0.5e-7 / 1e-5 * 1.0001


def test_normalize_errors():
    f = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="mode"):
        normalize_features(f, "cmvn")
    with pytest.raises(ValueError, match="mean and std"):
        normalize_features(f, "global", mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"mean must have shape \(3,\)"):
        normalize_features(f, "global", mean=np.zeros(4), std=np.ones(3))
    with pytest.raises(ValueError, match=r"std must have shape \(3,\)"):
        normalize_features(f, "global", mean=np.zeros(3), std=np.ones((3, 1)))
    with pytest.raises(ValueError, match="positive"):
        normalize_features(f, "global", mean=np.zeros(3), std=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="2-D"):
        normalize_features(np.zeros(5, np.float32), "utterance")


# ----------------------------------------------------------------------------------- configuration

def test_config_dim_and_roundtrip():
    assert FeatureConfig().dim == 80
    assert FeatureConfig(kind="mfcc").dim == 13
    assert FeatureConfig(kind="mfcc", deltas=2).dim == 39
    assert FeatureConfig(deltas=1).dim == 160
    for cfg in list(CONFIGS.values()) + [FeatureConfig(kind="mfcc", lifter=22, deltas=2)]:
        d = json.loads(json.dumps(cfg.to_dict()))
        assert FeatureConfig.from_dict(d) == cfg
        assert hash(FeatureConfig.from_dict(d)) == hash(cfg)
    assert FeatureConfig.from_dict({}) == FeatureConfig()
    # integers are accepted where floats are expected, and normalised
    cfg = FeatureConfig.from_dict({"preemphasis": 0, "fmax": 8000})
    assert isinstance(cfg.preemphasis, float) and isinstance(cfg.fmax, float)


@pytest.mark.parametrize("field,value", [
    ("kind", "mel"), ("kind", None), ("sample_rate", 0), ("sample_rate", 16000.0), ("n_fft", 500),
    ("n_fft", 4), ("win_length", 0), ("win_length", 513), ("hop_length", 0), ("window", "hamming"),
    ("preemphasis", -0.1), ("preemphasis", 1.5), ("preemphasis", "0.97"), ("preemphasis", float("nan")),
    ("n_mels", 0), ("fmin", -1.0), ("fmin", 8000.0), ("fmax", 9000.0), ("fmax", 0.0), ("mel_scale", "bark"),
    ("mel_norm", "l2"), ("log_floor", 0.0), ("n_mfcc", 0), ("n_mfcc", 81), ("lifter", -1), ("deltas", 3),
    ("deltas", True), ("center", 1), ("n_mel", 40),
])
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=rf"^features\.{field}: "):
        FeatureConfig.from_dict({field: value})


def test_config_from_dict_rejects_non_dict():
    with pytest.raises(ValueError, match="^features: "):
        FeatureConfig.from_dict([("kind", "mfcc")])
