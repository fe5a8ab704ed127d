"""Offline voice-activity detection: which 10 ms frames of a recording hold speech-like energy.

The offline recognizer uses it as a gate (:class:`speechlstm.transcribe.Recognizer`, ``vad=True``): a segment
with no speech frames is not decoded at all. That keeps silence, steady noise and mains hum from coming out as
words, whatever the acoustic model does. Words are not filtered by time: a BiLSTM's CTC spikes can sit far
from the sound (the shipped stage-2 model emits a 1-second command word in its first frames).

Method
------
Frame energies are measured in the speech band (a 2nd-order 100 Hz high-pass removes DC and most mains hum;
energy in dB over 25 ms windows every 10 ms).  The noise floor is a low percentile of the frame energies of the
whole segment, so it adapts to any steady background.  A frame is speech when it is both ``threshold_db``
above that floor and above the absolute ``min_db``; isolated runs shorter than ``min_speech`` seconds are
discarded.  Steady sounds (silence, dither, white, pink or brown noise, hum) have a small spread of frame
energies and therefore no speech frames; speech has syllable-rate modulation of 15-40 dB.  This is the
offline counterpart of the adaptive-floor detector in :mod:`speechlstm.stream`; its threshold is lower
(8 dB against 12) because the floor here is a percentile of the whole segment: trimmed clips of one short
word (8 kHz digits) spread only 11-14 dB between their 5th and 95th percentile frames. So the gate removes
what is steady; the acoustic model, trained on non-speech clips, must stay silent on the rest (clatter, animals).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> sr = 16000
>>> noise = 0.05 * rng.standard_normal(3 * sr).astype(np.float32)
>>> bool(speech_frames(noise, sr).any())
False
>>> burst = noise.copy(); burst[sr:sr + 8000] += 0.5 * np.sin(2 * np.pi * 300 * np.arange(8000) / sr)
>>> m = speech_frames(burst, sr)
>>> bool(m.any()), round(float(m.sum()) * FRAME_SECONDS, 1)
(True, 0.5)
>>> bool(speech_frames(np.zeros(sr, np.float32), sr).any())
False
"""

from __future__ import annotations

import math

import numpy as np

FRAME_SECONDS = 0.01
WINDOW_SECONDS = 0.025
DEFAULT_THRESHOLD_DB = 8.0
DEFAULT_MIN_DB = -60.0
DEFAULT_MIN_SPEECH = 0.05
FLOOR_PERCENTILE = 5.0
HIGHPASS_HZ = 100.0


def _highpass(x: np.ndarray, sample_rate: float) -> np.ndarray:
    """2nd-order Butterworth high-pass at ``HIGHPASS_HZ`` (the coefficients of ``scipy.signal.butter(2, f,
    "highpass")``: bilinear transform with pre-warping), run by a Numba kernel rather than ``scipy.signal``."""
    from .kernels.frontend import biquad

    if x.size == 0 or sample_rate <= 2 * HIGHPASS_HZ:
        return x
    k = math.tan(math.pi * HIGHPASS_HZ / float(sample_rate))
    norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
    return biquad(np.ascontiguousarray(x, dtype=np.float64), norm, -2.0 * norm, norm, 2.0 * (k * k - 1.0) * norm,
                  (1.0 - math.sqrt(2.0) * k + k * k) * norm)


def frame_energies(samples, sample_rate: float) -> np.ndarray:
    """Energy in dB (full scale: a sine of amplitude 1 is about -3 dB) of 25 ms windows every 10 ms.

    >>> frame_energies(np.ones(1600, np.float32), 16000).shape
    (10,)
    """
    x = _highpass(np.asarray(samples, dtype=np.float64).reshape(-1), sample_rate)
    hop = max(1, int(round(FRAME_SECONDS * sample_rate)))
    win = max(hop, int(round(WINDOW_SECONDS * sample_rate)))
    n = x.size // hop
    if n == 0:
        return np.zeros(0)
    padded = np.concatenate([x, np.zeros(win)])
    c = np.concatenate([[0.0], np.cumsum(padded * padded)])
    starts = np.arange(n) * hop
    power = (c[starts + win] - c[starts]) / win
    return 10.0 * np.log10(power + 1e-12)


def speech_frames(samples, sample_rate: float, threshold_db: float = DEFAULT_THRESHOLD_DB,
                  min_db: float = DEFAULT_MIN_DB, min_speech: float = DEFAULT_MIN_SPEECH) -> np.ndarray:
    """Boolean mask, one entry per 10 ms frame: True where the frame holds speech-like energy.

    Parameters
    ----------
    samples : array_like
        Mono audio, float in [-1, 1].
    sample_rate : float
    threshold_db : float
        How far above the segment's noise floor (its 5th percentile of frame energies) a frame must be.
    min_db : float
        Absolute floor: quieter frames are never speech.
    min_speech : float
        Runs of speech frames shorter than this (seconds) are discarded (clicks).
    """
    e = frame_energies(samples, sample_rate)
    if e.size == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.percentile(e, FLOOR_PERCENTILE))
    mask = (e > floor + threshold_db) & (e > min_db)
    shortest = max(1, int(round(min_speech / FRAME_SECONDS)))
    if shortest > 1 and mask.any():
        d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        for s, t in zip(starts, ends):
            if t - s < shortest:
                mask[s:t] = False
    return mask
