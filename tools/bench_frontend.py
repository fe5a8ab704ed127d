"""Benchmark of the feature front end against librosa computing the same log-mel features.

One thread on both sides (``numba.set_num_threads(1)`` and a threadpoolctl limit of 1 for numpy/BLAS), the
same float32 signal (real speech clips concatenated to the requested length, or seeded noise when no clips
are found), pre-emphasis counted on both sides, warm-up first, then ``repeats`` interleaved runs and the best
time of each side.  The librosa peer is::

    y = x.copy(); y[1:] = x[1:] - 0.97 * x[:-1]
    S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=80, htk=False,
                                       norm="slaney")
    librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)

Run ``python tools/bench_frontend.py`` (10 s and 60 s) or ``python tools/bench_frontend.py --seconds 60``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import glob
import json
import os
import time

import numpy as np

DEFAULT_AUDIO_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "audio" / "ljspeech")


def speech_signal(seconds: float, sample_rate: int = 16000, audio_dir: str | None = DEFAULT_AUDIO_DIR):
    """float32 signal of ``seconds``: speech clips from ``audio_dir`` concatenated (and repeated), else noise.

    Returns ``(signal, description)``. Used by tools/bench.py too, so every benchmark reads the same speech.
    """
    n = int(round(seconds * sample_rate))
    files = sorted(glob.glob(os.path.join(audio_dir, "*.flac")) + glob.glob(os.path.join(audio_dir, "*.wav"))) \
        if audio_dir and os.path.isdir(audio_dir) else []
    parts, total = [], 0
    if files:
        import soundfile as sf

        for path in files:
            x, sr = sf.read(path, dtype="float32", always_2d=True)
            if sr != sample_rate:
                continue
            parts.append(x.mean(axis=1).astype(np.float32))
            total += parts[-1].size
            if total >= n:
                break
    if total == 0:
        rng = np.random.default_rng(0)
        return (0.1 * rng.standard_normal(n)).astype(np.float32), "white noise (no speech clips found)"
    sig = np.concatenate(parts)
    if sig.size < n:
        sig = np.tile(sig, n // sig.size + 1)
    return np.ascontiguousarray(sig[:n]), f"{len(parts)} speech clip(s) from {audio_dir}"


def _librosa_logmel(x: np.ndarray, cfg) -> np.ndarray:
    import librosa

    y = x.copy()
    y[1:] = x[1:] - np.float32(cfg.preemphasis) * x[:-1]
    S = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                       win_length=cfg.win_length, window="hann", center=True, pad_mode="constant",
                                       power=2.0, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=False,
                                       norm="slaney")
    return librosa.power_to_db(S, ref=1.0, amin=cfg.log_floor, top_db=None)


def bench_frontend(seconds: float = 60.0, repeats: int = 5, audio_dir: str | None = DEFAULT_AUDIO_DIR) -> dict:
    """Time ``compute_features`` (default log-mel config) against librosa on the same signal, one thread each.

    Parameters
    ----------
    seconds : float
        Signal length.
    repeats : int
        Interleaved timed runs per side (best of ``repeats`` is reported).
    audio_dir : str or None
        Directory of 16 kHz speech clips (``*.flac``/``*.wav``) concatenated into the signal; seeded white
        noise when it has none.

    Returns
    -------
    dict
        ``frontend_speedup_vs_librosa`` (librosa time / speechlstm time), ``frontend_ms_speechlstm``,
        ``frontend_ms_librosa``, ``frontend_seconds``, ``frontend_frames``, ``frontend_repeats``,
        ``frontend_signal`` and ``frontend_max_abs_db_vs_librosa`` (largest difference to the float32 librosa
        output, which itself carries float32 rounding of a few 1e-3 dB in low-energy bands).

    Examples
    --------
    >>> r = bench_frontend(seconds=1.0, repeats=1)   # doctest: +SKIP
    >>> r["frontend_speedup_vs_librosa"] > 1          # doctest: +SKIP
    True
    """
    import numba
    from threadpoolctl import threadpool_limits

    from speechlstm.features import FeatureConfig, compute_features

    cfg = FeatureConfig()
    x, what = speech_signal(seconds, cfg.sample_rate, audio_dir)
    numba.set_num_threads(1)
    with threadpool_limits(limits=1):
        ours = compute_features(x, cfg)      # warm-up (and compilation / cache load)
        ref = _librosa_logmel(x, cfg)
        t_ours, t_lib = [], []
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            _librosa_logmel(x, cfg)
            t1 = time.perf_counter()
            compute_features(x, cfg)
            t2 = time.perf_counter()
            t_lib.append(t1 - t0)
            t_ours.append(t2 - t1)
    best_ours, best_lib = min(t_ours), min(t_lib)
    return {
        "frontend_speedup_vs_librosa": best_lib / best_ours,
        "frontend_ms_speechlstm": 1e3 * best_ours,
        "frontend_ms_librosa": 1e3 * best_lib,
        "frontend_seconds": float(seconds),
        "frontend_frames": int(ours.shape[0]),
        "frontend_repeats": int(repeats),
        "frontend_signal": what,
        "frontend_max_abs_db_vs_librosa": float(np.abs(ours - ref.T).max()),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0], help="signal length(s) in seconds")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--audio-dir", default=DEFAULT_AUDIO_DIR)
    args = p.parse_args(argv)
    for s in args.seconds:
        print(json.dumps(bench_frontend(s, args.repeats, args.audio_dir)))


if __name__ == "__main__":
    main()
