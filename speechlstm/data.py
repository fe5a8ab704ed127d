"""Training data pipeline: manifests, length-bucketed batches, on-the-fly features and augmentation.

Manifests
---------
JSON Lines files in the format of ``shared/data/README.md``: one object per line with at least ``id``,
``audio`` (path relative to the manifest's folder, or absolute), ``text`` and ``duration`` (seconds);
``sample_rate``, ``source`` and ``speaker`` are optional.  Lines that are not JSON objects or lack a
field are skipped with a warning and counted (:func:`read_manifest`).  Transcripts outside the model's
token set go through the documented normalizer (:func:`speechlstm.text.normalize_text`); only
characters that are still not tokens after that make an utterance be skipped (``"label chars"``).

Epochs
------
:class:`DataLoader` mixes several manifests with weights: in every epoch each utterance of a manifest of
weight ``w`` is used ``floor(w)`` times, plus a random subset of ``round(frac(w) * n)`` utterances
(``w = 0.5``: half of the manifest, a different half every epoch).  The selection is shuffled,
optionally cut to ``epoch_seconds`` of audio, cut into chunks of ``sort_chunk`` utterances, sorted by
length inside each chunk and packed into batches of at most ``batch_frames`` padded feature frames and
``max_batch`` utterances; the batch order is shuffled.

Everything random about epoch ``e`` -- the selection, the batches, their order and the augmentation of
each utterance -- is a pure function of ``(seed, e)``: the per-utterance generator is seeded with
``(seed, e, position of the utterance in the epoch)``, so batches do not depend on the number of worker
processes, and ``epoch(e, start_batch=k)`` yields exactly batches ``k, k+1, ...`` of ``epoch(e)`` (a
training run killed mid-epoch resumes bit-exactly).

Workers
-------
Audio decoding, augmentation, features and padding run in ``num_workers`` processes (``spawn`` start
method: it is safe with a parent that already runs Numba or BLAS thread pools; each worker calls
``numba.set_num_threads(1)``), one batch per task, a few batches ahead of the consumer.  ``num_workers=0``
does everything in the calling process.

Augmentation (:class:`Augment`), applied per utterance in this order
--------------------------------------------------------------------
1. speed perturbation: the audio is resampled as if it had been recorded at ``speed`` times the rate
   (tempo and pitch change together; ``speed`` 0.9 makes it 11 % longer); one resampling step from the
   file's own rate;
2. reverberation (``rir_prob``): convolution with a ``kind == "rir"`` entry of the noise manifest, aligned
   on the direct path and rescaled to the dry signal's power;
2b. simulated rooms (``sim_rir_prob``, :func:`simulated_rir`), then babble of 1-4 other training utterances
   (``babble_prob``);
3. additive noise (``noise_prob``): a random stretch of a ``kind == "noise"`` entry (looped if shorter),
   scaled to a uniformly drawn SNR in ``snr_db`` (:func:`add_noise`);
3a. spectral tilt (``eq_tilt_prob``, :func:`eq_tilt`), gain with clipping (``gain_db``), and a lossy codec round
   trip (``codec_prob``: Opus, MP3 or GSM, :func:`codec_roundtrip`); 2b and 3a draw from a generator of their own,
   so recipes without them keep their batches;
3b. narrow band (``narrowband_prob``): the noisy signal is resampled down to a rate drawn from
   ``narrowband_rates`` and back up, as if it had been recorded or transmitted at that rate (8 kHz
   telephone-band clips such as FSDD's); the features keep their full filterbank, whose upper bands are then
   empty;
4. vocal tract length perturbation: the mel filterbank reads frequency ``f`` of the spectrum at
   ``warp(f)``, a piecewise linear warp by a factor ``alpha`` drawn from ``vtlp_range`` that keeps
   Nyquist fixed (:func:`vtlp_warp`, Jaitly & Hinton 2013);
5. features and normalization (the model configuration's ``normalization``);
6. SpecAugment (:func:`spec_augment`): time and frequency masks set to 0 (the normalized mean).

Bad input
---------
Nothing about one utterance stops an epoch.  Manifest lines with bad JSON or missing/invalid fields,
utterances whose audio file is missing or unreadable (every header is read when the loader is built;
the header's duration is trusted over the manifest's), longer than ``max_duration``, with an empty
transcript, with characters that are not tokens, or too short for their label (fewer output frames
after frame stacking than ``label length + repeated labels``, which CTC needs) are left out when the
loader is built; audio that still fails (or is too short) when it is decoded is dropped from its
batch.  Each is logged (logger ``speechlstm.data``) and counted in :attr:`DataLoader.stats`, and an
end-of-epoch summary is logged.

Examples
--------
>>> import json, os, tempfile
>>> import numpy as np, soundfile as sf
>>> from speechlstm.model import ModelConfig
>>> d = tempfile.mkdtemp()
>>> t = np.arange(16000) / 16000
>>> sf.write(os.path.join(d, "a.wav"), 0.3 * np.sin(2 * np.pi * 300 * t), 16000)
>>> with open(os.path.join(d, "m.jsonl"), "w") as f:
...     _ = f.write(json.dumps({"id": "a", "audio": "a.wav", "text": "yes", "duration": 1.0}) + "\\n")
>>> loader = DataLoader([(os.path.join(d, "m.jsonl"), 1.0)], ModelConfig.example(), num_workers=0)
>>> batch = next(loader.epoch(0))
>>> batch.feats.shape, batch.labels.tolist(), batch.ids
((1, 101, 80), [[27, 7, 21]], ['a'])
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import json
import logging
import math
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf

from .audio import load_audio
from .errors import AudioError
from .features import FeatureConfig, _features_from_tables, compute_features, normalize_features, num_frames
from .text import text_to_ids

__all__ = ["Utterance", "read_manifest", "Augment", "Batch", "DataLoader", "compute_global_stats",
           "add_noise", "narrowband", "spec_augment", "vtlp_warp", "compute_features_vtlp"]

log = logging.getLogger("speechlstm.data")

#: Fields every manifest line must have.
REQUIRED_FIELDS = ("id", "audio", "text", "duration")
#: Per-reason limit of individual warnings (manifest reading, and per epoch); the rest are only counted.
MAX_WARNINGS_PER_REASON = 10

# Skip reasons (keys of DataLoader.stats and of read_manifest's counts).
BAD_JSON = "bad json"
MISSING_FIELD = "missing field"
BAD_FIELD = "bad field"
MISSING_AUDIO = "missing audio"
UNREADABLE = "unreadable audio"
TOO_SHORT = "too short for label"
TOO_LONG = "too long"
LABEL_CHARS = "label chars"
EMPTY_TEXT = "empty text"


# ============================================================================ manifests


@dataclass
class Utterance:
    """One manifest entry.

    Attributes
    ----------
    id : str
    audio : str
        Absolute path of the audio file.
    text : str
        Transcript as in the manifest.
    duration : float
        Seconds (from the manifest; used for bucketing and the length checks).
    sample_rate : int
        Rate of the file as stated by the manifest (0 when absent); audio is always decoded and resampled
        from the file's own rate.
    source : str
        Corpus name (the manifest's file name without extension when absent).
    speaker : str or None
    """

    id: str
    audio: str
    text: str
    duration: float
    sample_rate: int
    source: str
    speaker: str | None = None


class _Warner:
    """Logs the first few messages per reason, counts all."""

    def __init__(self, enabled: bool = True, limit: int = MAX_WARNINGS_PER_REASON):
        self.enabled, self.limit = enabled, limit
        self.counts: collections.Counter = collections.Counter()

    def __call__(self, reason: str, message: str, n: int = 1):
        self.counts[reason] += n
        if self.enabled and self.counts[reason] - n < self.limit:
            log.warning("skipped (%s): %s", reason, message)

    def summary(self, what: str):
        if self.enabled:
            hidden = {r: c - self.limit for r, c in self.counts.items() if c > self.limit}
            if hidden:
                log.warning("%s: %s more skipped without a message", what,
                            ", ".join(f"{c} {r}" for r, c in sorted(hidden.items())))


def _parse_line(line: str, base: Path, default_source: str):
    """One manifest line -> (Utterance, extra dict) or (None, (reason, why))."""
    try:
        rec = json.loads(line)
    except ValueError as exc:
        return None, (BAD_JSON, str(exc))
    if not isinstance(rec, dict):
        return None, (BAD_JSON, f"not a JSON object ({type(rec).__name__})")
    missing = [k for k in REQUIRED_FIELDS if k not in rec or rec[k] is None]
    if missing:
        return None, (MISSING_FIELD, "no " + ", ".join(repr(k) for k in missing))
    uid, audio, text, dur = rec["id"], rec["audio"], rec["text"], rec["duration"]
    sr, source, speaker = rec.get("sample_rate", 0), rec.get("source", default_source), rec.get("speaker")
    if not isinstance(uid, (str, int)) or isinstance(uid, bool) or uid == "":
        return None, (BAD_FIELD, f"'id' is {uid!r}")
    if not isinstance(audio, str) or not audio:
        return None, (BAD_FIELD, f"'audio' is {audio!r}")
    if not isinstance(text, str):
        return None, (BAD_FIELD, f"'text' is {text!r}")
    if (not isinstance(dur, (int, float)) or isinstance(dur, bool) or not math.isfinite(dur) or dur <= 0):
        return None, (BAD_FIELD, f"'duration' is {dur!r}")
    if sr is None:
        sr = 0
    if not isinstance(sr, int) or isinstance(sr, bool) or sr < 0:
        return None, (BAD_FIELD, f"'sample_rate' is {sr!r}")
    if source is None:
        source = default_source
    path = Path(audio)
    if not path.is_absolute():
        path = base / path
    utt = Utterance(id=str(uid), audio=os.path.abspath(path), text=text, duration=float(dur), sample_rate=sr,
                    source=str(source), speaker=None if speaker is None else str(speaker))
    return utt, rec


def _read(path, warn: bool):
    path = Path(path)
    base = path.resolve().parent
    warner = _Warner(warn)
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            utt, extra = _parse_line(line, base, path.stem)
            if utt is None:
                warner(extra[0], f"{path}:{lineno}: {extra[1]}")
            else:
                out.append((utt, extra))
    warner.summary(str(path))
    return out, dict(warner.counts)


def read_manifest(path, warn: bool = True) -> tuple[list[Utterance], dict]:
    """Read a JSON Lines manifest.

    Blank lines are ignored; lines that are not JSON objects (``"bad json"``), lack one of ``id``,
    ``audio``, ``text``, ``duration`` (``"missing field"``) or have a field of the wrong type or a
    non-positive duration (``"bad field"``) are skipped, each logged as a warning (the first
    ``MAX_WARNINGS_PER_REASON`` per reason) when ``warn``.  Whether the audio exists is not checked here.

    Parameters
    ----------
    path : str or os.PathLike
        The manifest; relative ``audio`` paths are relative to its folder.
    warn : bool, optional
        Log skipped lines.

    Returns
    -------
    utterances : list of Utterance
    skipped : dict
        Number of skipped lines by reason.

    Raises
    ------
    OSError
        The manifest itself cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.jsonl")
    >>> with open(p, "w") as f:
    ...     _ = f.write('{"id": "x", "audio": "x.flac", "text": "hi", "duration": 1.5}\\n{"id": "y"}\\nnot json\\n')
    >>> utts, skipped = read_manifest(p, warn=False)
    >>> [u.id for u in utts], utts[0].audio == os.path.join(os.path.dirname(p), "x.flac"), skipped
    (['x'], True, {'missing field': 1, 'bad json': 1})
    """
    rows, skipped = _read(path, warn)
    return [u for u, _ in rows], skipped


def read_noise_manifest(path) -> tuple[list[str], list[str]]:
    """Audio paths of a noise manifest's ``kind == "noise"`` entries (the default) and ``kind == "rir"`` entries.

    Entries whose file is missing are left out with a warning; ``path`` None gives two empty lists.

    >>> read_noise_manifest(None)
    ([], [])
    """
    if path is None:
        return [], []
    rows, _ = _read(path, warn=True)
    noises, rirs = [], []
    for utt, rec in rows:
        if not os.path.isfile(utt.audio):
            log.warning("noise manifest %s: no file %s", path, utt.audio)
            continue
        kind = rec.get("kind", "noise")
        if kind == "noise":
            noises.append(utt.audio)
        elif kind == "rir":
            rirs.append(utt.audio)
    return noises, rirs


# ============================================================================ augmentation


@dataclass
class Augment:
    """Augmentation settings (see the module docstring for the order of the steps).

    Attributes
    ----------
    speed_factors : tuple of float
        Speed perturbation factors, one drawn uniformly per utterance (``(1.0,)`` disables).  When a factor
        would make the audio too short for its label, 1.0 is used instead.
    noise_prob : float
        Probability of adding noise (needs ``noise_manifest`` with ``kind == "noise"`` entries).
    snr_db : (float, float)
        SNR range in dB, drawn uniformly.
    rir_prob : float
        Probability of convolving with a room impulse response (``kind == "rir"`` entries).
    vtlp_range : (float, float)
        Range of the VTLP warp factor, drawn uniformly; ``(1.0, 1.0)`` disables.
    time_masks, time_mask_max : int
        Number of SpecAugment time masks and their maximum width in frames.
    freq_masks, freq_mask_max : int
        Number of frequency masks and their maximum width in bands (of the static coefficients; the same
        bands are masked in the delta blocks).
    time_mask_max_ratio : float
        A time mask is also at most this fraction of the utterance (keeps 1-second clips readable).
    narrowband_prob : float
        Probability of band-limiting the (noisy) audio by a round trip through a lower sample rate.
    narrowband_rates : tuple of float
        The lower rates, one drawn uniformly (Hz, below the features' sample rate).
    sim_rir_prob : float
        Probability of convolving with a simulated room impulse response (:func:`simulated_rir`: exponentially
        decaying noise, reverberation time drawn from ``rt60_range`` seconds), for rooms beyond the few
        recorded RIRs.
    babble_prob : float
        Probability of mixing in babble: ``babble_speakers`` (low, high) other training utterances summed, at
        an SNR drawn from ``babble_snr_db``.
    gain_db : (float, float)
        Level change drawn uniformly (dB) after the noise; samples beyond full scale are clipped, as a
        recorder would.
    eq_tilt_prob, eq_tilt_db : float, (float, float)
        Probability and range (dB per octave around 1 kHz) of a spectral tilt: bright or muffled microphones.
    codec_prob : float
        Probability of a round trip through a lossy codec drawn from ``codecs`` (``opus`` 8-32 kbit/s,
        ``mp3`` at a random VBR quality, ``gsm``: GSM 06.10 at 8 kHz, which is also telephone band).

    Examples
    --------
    >>> Augment().speed_factors
    (0.9, 1.0, 1.1)
    >>> Augment.none().noise_prob
    0.0
    """

    speed_factors: tuple = (0.9, 1.0, 1.1)
    noise_prob: float = 0.5
    snr_db: tuple = (5.0, 30.0)
    rir_prob: float = 0.0
    vtlp_range: tuple = (0.9, 1.1)
    time_masks: int = 2
    time_mask_max: int = 40
    freq_masks: int = 2
    freq_mask_max: int = 15
    time_mask_max_ratio: float = 0.2
    narrowband_prob: float = 0.0
    narrowband_rates: tuple = (8000.0,)
    sim_rir_prob: float = 0.0
    rt60_range: tuple = (0.15, 0.9)
    babble_prob: float = 0.0
    babble_speakers: tuple = (1, 4)
    babble_snr_db: tuple = (5.0, 25.0)
    gain_db: tuple = (0.0, 0.0)
    eq_tilt_prob: float = 0.0
    eq_tilt_db: tuple = (-4.0, 4.0)
    codec_prob: float = 0.0
    codecs: tuple = ("opus", "mp3", "gsm")

    def __post_init__(self):
        self.speed_factors = tuple(float(s) for s in self.speed_factors)
        self.narrowband_rates = tuple(float(r) for r in self.narrowband_rates)
        if not self.narrowband_rates or any(not (1000.0 <= r <= 48000.0) for r in self.narrowband_rates):
            raise ValueError(f"narrowband_rates must be non-empty, in [1000, 48000] Hz (got {self.narrowband_rates})")
        if not self.speed_factors or any(not (0.25 <= s <= 4.0) for s in self.speed_factors):
            raise ValueError(f"speed_factors must be non-empty, in [0.25, 4] (got {self.speed_factors})")
        self.codecs = tuple(str(c) for c in self.codecs)
        unknown = sorted(set(self.codecs) - set(CODECS))
        if unknown or not self.codecs:
            raise ValueError(f"codecs must be a non-empty subset of {CODECS} (got {self.codecs})")
        for name in ("rt60_range", "babble_speakers", "babble_snr_db", "gain_db", "eq_tilt_db"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != 2 or v[0] > v[1] or not all(math.isfinite(x) for x in v):
                raise ValueError(f"{name} must be (low, high) with low <= high (got {getattr(self, name)})")
            setattr(self, name, v)
        if not 0.05 <= self.rt60_range[0] <= self.rt60_range[1] <= 3.0:
            raise ValueError(f"rt60_range must lie within [0.05, 3] s (got {self.rt60_range})")
        if not 1 <= self.babble_speakers[0] <= self.babble_speakers[1] <= 10:
            raise ValueError(f"babble_speakers must lie within [1, 10] (got {self.babble_speakers})")
        for name in ("noise_prob", "rir_prob", "time_mask_max_ratio", "narrowband_prob", "sim_rir_prob",
                     "babble_prob", "eq_tilt_prob", "codec_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        lo, hi = self.snr_db
        if lo > hi:
            raise ValueError(f"snr_db must be (low, high) (got {self.snr_db})")
        lo, hi = self.vtlp_range
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(f"vtlp_range must be (low, high) within [0.5, 2] (got {self.vtlp_range})")
        for name in ("time_masks", "time_mask_max", "freq_masks", "freq_mask_max"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")

    @classmethod
    def none(cls) -> "Augment":
        """Settings that change nothing (equivalent to ``augment=None``)."""
        return cls(speed_factors=(1.0,), noise_prob=0.0, rir_prob=0.0, vtlp_range=(1.0, 1.0), time_masks=0,
                   freq_masks=0)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float, offset: int = 0) -> np.ndarray:
    """Mix ``noise`` into ``speech`` at a signal-to-noise ratio of ``snr_db`` dB.

    The noise is read from ``offset`` (looped when shorter than the speech) and scaled so that
    ``10 * log10(mean(speech**2) / mean(scaled_noise**2)) == snr_db`` over the length of the speech.
    Silent speech or silent noise is returned unchanged.

    Parameters
    ----------
    speech, noise : ndarray, 1-D
    snr_db : float
    offset : int, optional
        First noise sample used (taken modulo the noise length).

    Returns
    -------
    ndarray of float32, same length as ``speech``

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s, n = rng.standard_normal(16000), rng.standard_normal(4000)
    >>> y = add_noise(s, n, 10.0)
    >>> round(float(10 * np.log10(np.mean(s ** 2) / np.mean((y - s) ** 2))), 3)
    10.0
    """
    x = np.asarray(speech, dtype=np.float32)
    nz = np.asarray(noise, dtype=np.float32)
    if x.size == 0 or nz.size == 0:
        return x.copy()
    start = int(offset) % nz.size
    reps = -(-(start + x.size) // nz.size)
    seg = np.tile(nz, reps)[start:start + x.size] if reps > 1 else nz[start:start + x.size]
    p_speech = float(np.mean(np.square(x, dtype=np.float64)))
    p_noise = float(np.mean(np.square(seg, dtype=np.float64)))
    if p_speech <= 0.0 or p_noise <= 0.0:
        return x.copy()
    gain = math.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (x + np.float32(gain) * seg).astype(np.float32)


def narrowband(x: np.ndarray, sample_rate: float, band_rate: float) -> np.ndarray:
    """Band-limit ``x`` as if it had been sampled at ``band_rate``: a round trip through that rate.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> x = (np.sin(2 * np.pi * 500 * t) + np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    >>> y = narrowband(x, 16000, 8000)
    >>> y.shape == x.shape, y.dtype == np.float32
    (True, True)
    >>> spec = np.abs(np.fft.rfft(y[2000:14000]))
    >>> bool(spec[375] > 100 * spec[4500])   # 500 Hz passes, 6 kHz (above the 4 kHz band edge) does not
    True
    """
    from .audio import resample

    y = resample(resample(np.asarray(x, dtype=np.float32), sample_rate, band_rate), band_rate, sample_rate)
    out = np.zeros(x.size, dtype=np.float32)
    n = min(x.size, y.size)
    out[:n] = y[:n]
    return out


CODECS = ("opus", "mp3", "gsm")


def codec_roundtrip(x: np.ndarray, sample_rate: int, codec: str, quality: float = 0.5) -> np.ndarray:
    """Encode ``x`` with a lossy codec through libsndfile and decode it again (same length, float32).

    ``quality`` in [0, 1] (1 is best): Opus bit rate from about 8 to 32 kbit/s, MP3 VBR quality; GSM 06.10 has
    one rate and runs at 8 kHz (the audio is resampled down and back up).

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    >>> [codec_roundtrip(x, 16000, c).shape for c in CODECS]
    [(16000,), (16000,), (16000,)]
    """
    import io

    import soundfile as sf

    from .audio import resample

    x = np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0)
    q = float(np.clip(quality, 0.0, 1.0))
    rate = int(sample_rate)
    y = x
    if codec == "gsm":
        rate = 8000
        y = resample(x, sample_rate, rate) if sample_rate != rate else x
        kw = dict(format="RAW", subtype="GSM610")
    elif codec == "opus":
        # libsndfile: bit rate ~ 6 + (1 - level) * 250 kbit/s for mono; levels 0.9..1.0 give 6..31 kbit/s
        kw = dict(format="OGG", subtype="OPUS", compression_level=1.0 - 0.1 * (0.1 + 0.9 * q))
    elif codec == "mp3":
        kw = dict(format="MP3", subtype="MPEG_LAYER_III", compression_level=1.0 - q)
    else:
        raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    buf = io.BytesIO()
    try:
        sf.write(buf, y, rate, **kw)
        buf.seek(0)
        if codec == "gsm":
            z, _ = sf.read(buf, dtype="float32", samplerate=rate, channels=1, format="RAW", subtype="GSM610")
        else:
            z, _ = sf.read(buf, dtype="float32")
    except (RuntimeError, TypeError, ValueError, sf.LibsndfileError):  # a libsndfile without this codec
        return x.copy()
    z = np.asarray(z, dtype=np.float32).reshape(-1)
    if rate != sample_rate:
        z = resample(z, rate, sample_rate)
    out = np.zeros(x.size, dtype=np.float32)
    n = min(x.size, z.size)
    out[:n] = z[:n]
    return out


def simulated_rir(rng: np.random.Generator, sample_rate: float, rt60: float) -> np.ndarray:
    """A simple room impulse response: a direct path, then exponentially decaying noise (-60 dB at ``rt60``).

    >>> h = simulated_rir(np.random.default_rng(0), 16000, 0.4)
    >>> int(np.argmax(np.abs(h))), h.size == int(0.4 * 16000)
    (0, True)
    """
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # 6.9078 = ln(1000): -60 dB at rt60
    pre = int(rng.uniform(0.002, 0.01) * sample_rate)  # early reflections start a few ms after the direct path
    tail[:pre] = 0.0
    h = tail * (rng.uniform(0.2, 0.8) / (np.abs(tail).max() + 1e-12))
    h[0] = 1.0
    return h.astype(np.float32)


def eq_tilt(x: np.ndarray, sample_rate: float, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum by ``db_per_octave`` around 1 kHz (positive: brighter), keeping the power.

    >>> rng = np.random.default_rng(0); x = rng.standard_normal(16000).astype(np.float32)
    >>> y = eq_tilt(x, 16000, 6.0); s = np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x))
    >>> bool(s[4000] > 3 * s[250])   # 4 kHz against 250 Hz: 4 octaves apart, 24 dB of tilt
    True
    """
    if x.size < 2 or db_per_octave == 0:
        return np.asarray(x, dtype=np.float32)
    spec = np.fft.rfft(x.astype(np.float64))
    f = np.maximum(np.fft.rfftfreq(x.size, 1.0 / sample_rate), 62.5)
    spec *= 10.0 ** (db_per_octave * np.log2(f / 1000.0) / 20.0)
    y = np.fft.irfft(spec, x.size)
    p_x, p_y = float(np.mean(np.square(x, dtype=np.float64))), float(np.mean(y * y))
    if p_y > 0:
        y *= math.sqrt(p_x / p_y)
    return y.astype(np.float32)


def _reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with an impulse response aligned on its peak; keep the length and the power of ``x``."""
    from scipy.signal import fftconvolve

    if x.size == 0 or rir.size == 0 or not np.any(rir):
        return x
    peak = int(np.argmax(np.abs(rir)))
    y = fftconvolve(x.astype(np.float64), rir.astype(np.float64))[peak:peak + x.size]
    p_x = float(np.mean(np.square(x, dtype=np.float64)))
    p_y = float(np.mean(np.square(y)))
    if p_y > 0:
        y *= math.sqrt(p_x / p_y)
    return y.astype(np.float32)


def spec_augment(feats: np.ndarray, rng: np.random.Generator, time_masks: int = 2, time_mask_max: int = 40,
                 freq_masks: int = 2, freq_mask_max: int = 15, base_dim: int | None = None,
                 time_mask_max_ratio: float = 1.0, fill: float = 0.0) -> np.ndarray:
    """SpecAugment time and frequency masking (Park et al. 2019), in place.

    Each time mask sets ``w ~ U{0..min(time_mask_max, time_mask_max_ratio * T)}`` consecutive frames to
    ``fill``; each frequency mask sets ``w ~ U{0..freq_mask_max}`` consecutive bands of the first
    ``base_dim`` columns, and the same bands of every following block of ``base_dim`` columns (deltas).

    Parameters
    ----------
    feats : ndarray, shape (T, D)
        Modified in place.
    rng : numpy.random.Generator
    time_masks, time_mask_max, freq_masks, freq_mask_max : int
    base_dim : int, optional
        Width of one block of columns (default ``D``).
    time_mask_max_ratio : float, optional
    fill : float, optional

    Returns
    -------
    ndarray
        ``feats``.

    Examples
    --------
    >>> f = np.ones((100, 20), np.float32)
    >>> _ = spec_augment(f, np.random.default_rng(0), time_masks=1, time_mask_max=10, freq_masks=1,
    ...                  freq_mask_max=5)
    >>> bool((f == 0).any()), f.shape
    (True, (100, 20))
    """
    T, D = feats.shape
    base = D if base_dim is None else int(base_dim)
    tmax = min(int(time_mask_max), int(time_mask_max_ratio * T))
    for _ in range(int(time_masks)):
        w = int(rng.integers(0, tmax + 1)) if tmax > 0 else 0
        t0 = int(rng.integers(0, T - w + 1)) if T - w >= 0 else 0
        feats[t0:t0 + w, :] = fill
    fmax = min(int(freq_mask_max), base)
    for _ in range(int(freq_masks)):
        w = int(rng.integers(0, fmax + 1))
        f0 = int(rng.integers(0, base - w + 1))
        for b in range(0, D, base):
            feats[:, b + f0:b + f0 + w] = fill
    return feats


def vtlp_warp(freqs, alpha: float, sample_rate: float, boundary_hz: float = 4800.0) -> np.ndarray:
    """The VTLP frequency warp: ``f -> alpha * f`` up to a boundary, then linear to Nyquist.

    The boundary is ``boundary_hz * min(alpha, 1) / alpha`` (``boundary_hz`` scaled with the sample rate
    relative to 16 kHz); Nyquist maps to itself, so the warp is a monotone map of ``[0, sr/2]`` onto itself.

    Examples
    --------
    >>> vtlp_warp([0.0, 1000.0, 8000.0], 1.1, 16000).round(1).tolist()
    [0.0, 1100.0, 8000.0]
    """
    f = np.asarray(freqs, dtype=np.float64)
    nyq = sample_rate / 2.0
    f_hi = boundary_hz * sample_rate / 16000.0
    knee = f_hi * min(alpha, 1.0) / alpha
    high = nyq - (nyq - f_hi * min(alpha, 1.0)) / (nyq - knee) * (nyq - f)
    return np.where(f <= knee, alpha * f, high)


@functools.lru_cache(maxsize=512)
def _vtlp_tables(cfg: FeatureConfig, alpha: float):
    """The kernel tables of ``cfg`` with the mel weights of the warped filterbank."""
    from . import features as _feat

    base = _feat._tables(cfg)
    if alpha == 1.0:
        return base
    fmax = cfg.sample_rate / 2.0 if cfg.fmax is None else cfg.fmax
    htk = cfg.mel_scale == "htk"
    freqs = vtlp_warp(np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate), alpha, cfg.sample_rate)
    mel_f = _feat._mel_to_hz(np.linspace(_feat._hz_to_mel(cfg.fmin, htk), _feat._hz_to_mel(fmax, htk),
                                         cfg.n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, freqs)
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights = weights.astype(np.float32)
    if cfg.mel_norm == "slaney":
        weights = (weights.astype(np.float64) * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)
    fb = weights.astype(np.float64)
    n_mels, n_bins = fb.shape
    # a monotone warp keeps every bin inside at most two adjacent triangles, as the kernel requires
    nonzero = fb > 0
    active = np.flatnonzero(nonzero.any(axis=0))
    mel_idx = np.argmax(nonzero, axis=0).astype(np.int64)
    cols = np.arange(n_bins)
    mel_w0 = 0.25 * fb[mel_idx, cols]  # 0.25: as in features._tables (half-length FFT split)
    mel_w1 = np.where(mel_idx + 1 < n_mels, 0.25 * fb[np.minimum(mel_idx + 1, n_mels - 1), cols], 0.0)
    mel_idx[~nonzero.any(axis=0)] = 0
    k_lo, k_hi = (int(active[0]), int(active[-1]) + 1) if active.size else (0, 0)
    (window, bitrev, tw_re, tw_im, post_cos, post_sin, _, _, _, _, _, dct) = base
    return (window, bitrev, tw_re, tw_im, post_cos, post_sin, int(k_lo), int(k_hi), mel_idx, mel_w0, mel_w1,
            dct)


def compute_features_vtlp(samples: np.ndarray, cfg: FeatureConfig, alpha: float = 1.0) -> np.ndarray:
    """:func:`speechlstm.features.compute_features` with the filterbank read through :func:`vtlp_warp`.

    ``alpha`` is rounded to 3 decimals (warped tables are cached per value); ``alpha == 1`` is exactly
    ``compute_features``.

    Examples
    --------
    >>> x = (0.1 * np.sin(np.arange(16000) * 0.2)).astype(np.float32)
    >>> cfg = FeatureConfig()
    >>> bool(np.array_equal(compute_features_vtlp(x, cfg, 1.0), compute_features(x, cfg)))
    True
    >>> compute_features_vtlp(x, cfg, 1.1).shape
    (101, 80)
    """
    alpha = round(float(alpha), 3)
    if alpha == 1.0:
        return compute_features(samples, cfg)
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"samples must be a 1-D (mono) array, got shape {x.shape}")
    if not x.flags.writeable:
        x = x.copy()
    return _features_from_tables(x, cfg, lambda: _vtlp_tables(cfg, alpha))


# ============================================================================ batches


@dataclass
class Batch:
    """One padded batch.

    Attributes
    ----------
    feats : ndarray of float32, shape (B, T, D)
        Normalized features, zero beyond each utterance's length.
    lengths : ndarray of int32, shape (B,)
        Feature frames per utterance (before frame stacking).
    labels : ndarray of int32, shape (B, L)
        Token ids, padded with the blank index.
    label_lengths : ndarray of int32, shape (B,)
    ids : list of str
    sources : list of str
    index : int
        Position of the batch in its epoch's plan (``num_batches`` positions); resume with
        ``epoch(e, start_batch=batch.index + 1)``.
    """

    feats: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    label_lengths: np.ndarray
    ids: list
    sources: list
    index: int = -1

    @property
    def size(self) -> int:
        return len(self.ids)


def _header_duration(path: str, sample_rate: int) -> float | None:
    """Seconds of audio in ``path`` from its header; decodes files libsndfile cannot open (None: unreadable)."""
    try:
        info = sf.info(path)
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except Exception:  # libsndfile cannot open it: let load_audio (with its fallbacks) decide
        pass
    try:
        return load_audio(path, sample_rate).size / sample_rate
    except (AudioError, OSError, ValueError, RuntimeError):
        return None


def _manifest_entry(entry) -> tuple[str, float, dict]:
    """``path``, ``(path, weight)`` or ``(path, weight, options)`` -> (path, weight, options), checked.

    ``options`` may hold ``sources`` (a dict: source -> weight multiplier, ``"*"`` for the others) and
    ``nonspeech`` (true: utterances with an empty transcript are kept and trained to output only blanks).

    >>> _manifest_entry(("a.jsonl", 2, {"sources": {"fsdd": 0.5}}))
    ('a.jsonl', 2.0, {'sources': {'fsdd': 0.5}})
    >>> _manifest_entry(("a.jsonl", 1, {"colour": 1}))
    Traceback (most recent call last):
    ...
    ValueError: a.jsonl: unknown manifest option(s) ['colour'] (known: nonspeech, sources)
    """
    if isinstance(entry, (str, os.PathLike)):
        entry = (entry, 1.0)
    path, weight = entry[0], float(entry[1])
    options = dict(entry[2]) if len(entry) > 2 and entry[2] is not None else {}
    unknown = sorted(set(options) - {"sources", "nonspeech"})
    if unknown:
        raise ValueError(f"{path}: unknown manifest option(s) {unknown} (known: nonspeech, sources)")
    if not (weight >= 0 and math.isfinite(weight)):
        raise ValueError(f"manifest weight must be a finite number >= 0 (got {weight} for {path})")
    sw = options.get("sources") or {}
    if not isinstance(sw, dict):
        raise ValueError(f"{path}: 'sources' must map source names to weights")
    for k, v in sw.items():
        if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
            raise ValueError(f"{path}: source weight for {k!r} must be a finite number >= 0 (got {v!r})")
    return path, weight, options


def _needed_frames(labels: np.ndarray) -> int:
    """Output frames CTC needs for ``labels``: one per label plus a blank between repeats."""
    if labels.size == 0:
        return 0
    return int(labels.size + np.count_nonzero(labels[1:] == labels[:-1]))


def _stacked(frames, stacking: int):
    return -(-frames // stacking)


def _num_frames_array(n_samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Vectorised :func:`speechlstm.features.num_frames`."""
    n = np.asarray(n_samples, dtype=np.int64)
    if cfg.center:
        return 1 + n // cfg.hop_length
    return np.where(n < cfg.n_fft, 0, 1 + (n - cfg.n_fft) // cfg.hop_length)


class _Skip(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------- work done per utterance (worker side)

_W: dict = {}  # per-process worker context (see _init_context)


def _init_context(ctx: dict, in_worker: bool):
    if in_worker:
        try:
            import numba

            numba.set_num_threads(1)
        except Exception:  # pragma: no cover - numba always present, but never fail a worker over this
            pass
    _W.clear()
    _W.update(ctx)
    _W["noise_cache"] = {}


def _noise_audio(path: str) -> np.ndarray | None:
    cache = _W["noise_cache"]
    if path not in cache:
        try:
            cache[path] = load_audio(path, _W["features"].sample_rate)
        except (AudioError, OSError, ValueError, RuntimeError) as exc:
            log.warning("noise file %s unusable: %s", path, exc)
            cache[path] = None
    return cache[path]


def _utterance_features(path: str, speed: float, labels: np.ndarray, seed: tuple) -> np.ndarray:
    cfg: FeatureConfig = _W["features"]
    aug: Augment | None = _W["augment"]
    stacking = _W["stacking"]
    sr = cfg.sample_rate
    need = _needed_frames(labels)
    rng = np.random.default_rng(np.random.SeedSequence(seed))

    # all draws up front, in a fixed order
    if aug is not None:
        use_rir = bool(rng.random() < aug.rir_prob) and bool(_W["rirs"])
        rir_pick = int(rng.integers(1 << 30))
        use_noise = bool(rng.random() < aug.noise_prob) and bool(_W["noises"])
        noise_pick, noise_offset = int(rng.integers(1 << 30)), int(rng.integers(1 << 30))
        snr = float(rng.uniform(*aug.snr_db))
        lo, hi = aug.vtlp_range
        alpha = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
        narrow_rate = None
        if aug.narrowband_prob > 0:  # drawn only when enabled: older recipes keep their random streams
            if rng.random() < aug.narrowband_prob:
                narrow_rate = aug.narrowband_rates[int(rng.integers(len(aug.narrowband_rates)))]
            else:
                rng.integers(1)
    else:
        use_rir, use_noise, alpha, narrow_rate = False, False, 1.0, None

    try:
        x = load_audio(path, sr / speed)
        if speed != 1.0 and _stacked(num_frames(x.size, cfg), stacking) < need:
            speed = 1.0
            x = load_audio(path, sr)
    except FileNotFoundError as exc:
        raise _Skip(MISSING_AUDIO, f"{path}: {exc}") from None
    except (AudioError, OSError, ValueError, RuntimeError) as exc:
        reason = MISSING_AUDIO if not os.path.exists(path) else UNREADABLE
        raise _Skip(reason, str(exc)) from None
    if _stacked(num_frames(x.size, cfg), stacking) < need:
        raise _Skip(TOO_SHORT, f"{path}: {x.size / sr:.3f} s of audio for {labels.size} labels")

    if use_rir:
        rir = _noise_audio(_W["rirs"][rir_pick % len(_W["rirs"])])
        if rir is not None:
            x = _reverberate(x, rir)
    if aug is not None:
        x = _channel_augment(x, sr, aug, seed, before_noise=True)
    if use_noise:
        noise = _noise_audio(_W["noises"][noise_pick % len(_W["noises"])])
        if noise is not None:
            x = add_noise(x, noise, snr, noise_offset)
    if aug is not None:
        x = _channel_augment(x, sr, aug, seed, before_noise=False)
    if narrow_rate is not None and narrow_rate < sr:
        x = narrowband(x, sr, narrow_rate)

    feats = compute_features_vtlp(x, cfg, alpha)
    norm = _W["normalization"]
    feats = normalize_features(feats, norm.get("mode", "none"), norm.get("mean"), norm.get("std"))
    if aug is not None and (aug.time_masks or aug.freq_masks):
        if not feats.flags.writeable or not feats.flags.owndata:
            feats = feats.copy()
        fill = 0.0 if norm.get("mode", "none") != "none" else float(feats.mean()) if feats.size else 0.0
        spec_augment(feats, rng, aug.time_masks, aug.time_mask_max, aug.freq_masks, aug.freq_mask_max,
                     base_dim=cfg.base_dim, time_mask_max_ratio=aug.time_mask_max_ratio, fill=fill)
    return feats


def _channel_augment(x: np.ndarray, sr: int, aug: "Augment", seed: tuple, before_noise: bool) -> np.ndarray:
    """The channel augmentations added for real speakers (simulated rooms, babble, gain, tilt, codecs).

    They draw from a generator of their own (seeded by the utterance's seed and a constant), so recipes that
    leave them off keep the random streams, and therefore the exact batches, they had before.
    """
    on = (aug.sim_rir_prob > 0 or aug.babble_prob > 0 or aug.gain_db != (0.0, 0.0) or aug.eq_tilt_prob > 0
          or aug.codec_prob > 0)
    if not on:
        return x
    rng = np.random.default_rng(np.random.SeedSequence((*seed, 0xC4A2, 0 if before_noise else 1)))
    if before_noise:
        if rng.random() < aug.sim_rir_prob:
            x = _reverberate(x, simulated_rir(rng, sr, float(rng.uniform(*aug.rt60_range))))
        if rng.random() < aug.babble_prob and _W.get("babble"):
            pool = _W["babble"]
            lo, hi = int(aug.babble_speakers[0]), int(aug.babble_speakers[1])
            mix = np.zeros(x.size, np.float32)
            for _ in range(int(rng.integers(lo, hi + 1))):
                try:
                    other = load_audio(pool[int(rng.integers(len(pool)))], sr)
                except (AudioError, OSError, ValueError, RuntimeError):
                    continue
                if other.size == 0:
                    continue
                p = float(np.sqrt(np.mean(np.square(other, dtype=np.float64))))
                if p > 0:  # unit power, from a random point, looped to the length of the utterance
                    mix += np.resize(np.roll(other / p, int(rng.integers(other.size))), x.size).astype(np.float32)
            if np.any(mix):
                x = add_noise(x, mix, float(rng.uniform(*aug.babble_snr_db)))
        return x
    if rng.random() < aug.eq_tilt_prob:
        x = eq_tilt(x, sr, float(rng.uniform(*aug.eq_tilt_db)))
    lo, hi = aug.gain_db
    if hi > lo:
        x = np.clip(x * np.float32(10.0 ** (rng.uniform(lo, hi) / 20.0)), -1.0, 1.0).astype(np.float32)
    if rng.random() < aug.codec_prob:
        x = codec_roundtrip(x, sr, aug.codecs[int(rng.integers(len(aug.codecs)))], float(rng.random()))
    return x


def _make_batch(items: list) -> tuple:
    """items: (id, source, path, speed, labels, seed) -> (Batch fields or None, failures)."""
    feats, kept, failures = [], [], []
    for uid, source, path, speed, labels, seed in items:
        try:
            f = _utterance_features(path, speed, labels, seed)
        except _Skip as exc:
            failures.append((uid, exc.reason, str(exc)))
            continue
        feats.append(f)
        kept.append((uid, source, labels))
    if not kept:
        return None, failures
    B = len(kept)
    T = max(f.shape[0] for f in feats)
    L = max(max(lab.size for _, _, lab in kept), 1)
    D = feats[0].shape[1]
    out = np.zeros((B, T, D), np.float32)
    lab = np.full((B, L), _W["blank"], np.int32)
    lengths = np.zeros(B, np.int32)
    label_lengths = np.zeros(B, np.int32)
    for b, (f, (_, _, y)) in enumerate(zip(feats, kept)):
        out[b, :f.shape[0]] = f
        lengths[b] = f.shape[0]
        lab[b, :y.size] = y
        label_lengths[b] = y.size
    return (out, lengths, lab, label_lengths, [k[0] for k in kept], [k[1] for k in kept]), failures


def _worker_batch(items):
    return _make_batch(items)


# ---------------------------------------------------------------- the loader


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0x5EED]))


class DataLoader:
    """Batches of (augmented) features from weighted manifests, computed by worker processes.

    Parameters
    ----------
    manifests : list of (str, float) or (str, float, dict)
        Manifest paths and weights (``w >= 0``; see the module docstring for fractional weights), optionally
        with options: ``{"sources": {source: multiplier, "*": default}}`` weights each ``source`` of the
        manifest by ``w * multiplier``; ``{"nonspeech": true}`` keeps utterances with an empty transcript
        (non-speech clips: silence, noise, hum) as all-blank CTC targets.
    config : speechlstm.model.ModelConfig
        Features, normalization, frame stacking and tokens of the model being trained.
    batch_frames : int, optional
        Maximum ``B * T`` (padded feature frames) of a batch, planned from the durations and
        each utterance's speed factor (to a frame or so per utterance).  A single longer utterance forms a
        batch of its own.
    max_batch : int, optional
        Maximum utterances per batch.
    augment : Augment or None, optional
        ``None``: no augmentation (development/evaluation data).
    noise_manifest : str or None, optional
        Manifest with ``kind`` ``"noise"`` / ``"rir"`` entries (``shared/data/noise/noise.jsonl``).
    num_workers : int, optional
        Worker processes; 0 computes in the calling process.
    seed : int, optional
    max_duration : float, optional
        Longer utterances are skipped (``"too long"``).
    epoch_seconds : float or None, optional
        Cap on the audio of one epoch (after shuffling).
    sort_chunk : int, optional
        Length-sorting window (utterances) of the bucketing.
    prefetch : int or None, optional
        Batches computed ahead of the consumer (default ``2 * num_workers``).
    start_method : str, optional
        multiprocessing start method of the workers (default ``"spawn"``).
    check_audio : bool, optional
        Read every file's header when the loader is built (about 0.15 ms per file): unreadable files are
        skipped up front (``"unreadable audio"``) instead of being dropped from their batch, and the
        header's duration replaces the manifest's for planning and the length checks.
    labeler : callable or None, optional
        ``labeler(text) -> int array`` of token ids, called once per utterance when the loader is built (a
        ``ValueError`` skips the utterance as ``"label chars"``). Default: the characters of ``text`` as
        ``config.tokens`` (:func:`speechlstm.text.text_to_ids`); phone models pass their lexicon's
        (:meth:`speechlstm.lexicon.Lexicon.labels`).

    Attributes
    ----------
    stats : dict
        Skip counts by reason for the latest epoch: manifest lines (``bad json``, ``missing field``,
        ``bad field``) and utterances left out when the loader was built (``missing audio``,
        ``unreadable audio``, ``too long``, ``empty text``, ``label chars``, ``too short for label``) are
        counted once, failures while
        decoding (``unreadable audio``, ``missing audio``, ``too short for label``) per occurrence in the
        epoch.
    summary : dict
        Of the latest epoch: ``batches``, ``utterances``, ``frames`` (feature frames delivered),
        ``audio_seconds`` (the same in seconds, after speed perturbation), ``padded`` (``B * T`` summed over
        batches) and ``padding`` (fraction of padding frames).
    utterances : list of Utterance
        The usable utterances of all manifests.

    Notes
    -----
    With ``num_workers > 0`` and the default ``"spawn"`` start method the workers import the main module
    of the program, so a training script must create and iterate the loader under
    ``if __name__ == "__main__":``.  Worker start-up costs about 1-2 s once per loader (the pool stays up
    across epochs until :meth:`close`).  ``"fork"`` starts faster and also works (the workers never run
    Numba's parallel thread pool), but forking a process that runs threads is unsafe in general.

    A batch whose every utterance fails to decode is not yielded; ``Batch.index`` keeps counting planned
    positions, so resume from ``batch.index + 1`` rather than from a count of yielded batches.

    Examples
    --------
    See the module docstring.
    """

    def __init__(self, manifests: Sequence[tuple[str, float]], config, batch_frames: int = 20000,
                 max_batch: int = 64, augment: Augment | None = None, noise_manifest: str | None = None,
                 num_workers: int = 2, seed: int = 0, max_duration: float = 20.0,
                 epoch_seconds: float | None = None, *, sort_chunk: int = 2000, prefetch: int | None = None,
                 start_method: str = "spawn", check_audio: bool = True, labeler=None):
        if batch_frames < 1 or max_batch < 1:
            raise ValueError("batch_frames and max_batch must be >= 1")
        if num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        self.config = config
        self.features: FeatureConfig = config.features
        self.tokens = list(config.tokens)
        self.blank = int(config.blank_index)
        self.stacking = int(config.architecture.frame_stacking)
        self.normalization = dict(config.normalization or {"mode": "none"})
        self.batch_frames, self.max_batch = int(batch_frames), int(max_batch)
        self.augment = augment
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.max_duration = float(max_duration)
        self.epoch_seconds = epoch_seconds
        self.sort_chunk = max(1, int(sort_chunk))
        self.prefetch = max(1, int(prefetch if prefetch is not None else 2 * max(1, self.num_workers)))
        self.start_method = start_method
        self._executor = None
        self._plan_cache: tuple | None = None

        warner = _Warner(True)
        self.utterances: list[Utterance] = []
        labels, durations, groups = [], [], []
        sr = self.features.sample_rate
        for entry in manifests:
            path, weight, options = _manifest_entry(entry)
            source_weights = options.get("sources") or {}
            allow_empty = bool(options.get("nonspeech", False))
            rows, skipped = _read(path, warn=True)
            for reason, count in skipped.items():
                warner.counts[reason] += count
            members: dict = {}
            for utt, _ in rows:
                where = f"{utt.id} ({path})"
                if not os.path.isfile(utt.audio):
                    warner(MISSING_AUDIO, f"{where}: no file {utt.audio}")
                    continue
                duration = utt.duration
                if check_audio:
                    duration = _header_duration(utt.audio, sr)
                    if duration is None:
                        warner(UNREADABLE, f"{where}: cannot decode {utt.audio}")
                        continue
                if duration > self.max_duration:
                    warner(TOO_LONG, f"{where}: {duration:.2f} s > max_duration {self.max_duration:g} s")
                    continue
                if not utt.text.strip() and not allow_empty:
                    warner(EMPTY_TEXT, f"{where}: empty transcript")
                    continue
                try:
                    y = (text_to_ids(utt.text, self.tokens, self.blank) if labeler is None
                         else np.asarray(labeler(utt.text), dtype=np.int32))
                except ValueError as exc:
                    warner(LABEL_CHARS, f"{where}: {exc}")
                    continue
                if y.size == 0 and not allow_empty:
                    warner(EMPTY_TEXT, f"{where}: transcript {utt.text!r} has no words")
                    continue
                if _stacked(num_frames(int(duration * sr), self.features), self.stacking) < _needed_frames(y):
                    warner(TOO_SHORT, f"{where}: {duration:.3f} s for {y.size} labels")
                    continue
                # one group per source only when per-source weights are asked for: manifests without them keep
                # one group, so fractional weights draw the same subsets (and older recipes the same batches)
                members.setdefault((utt.source or "") if source_weights else "", []).append(len(self.utterances))
                self.utterances.append(utt)
                labels.append(y)
                durations.append(duration)
            for source, idx in members.items():
                w = weight * float(source_weights.get(source, source_weights.get("*", 1.0)))
                groups.append((np.asarray(idx, dtype=np.int64), w))
        warner.summary("manifests")
        self._static_skips = dict(warner.counts)
        self.stats: dict = dict(self._static_skips)
        self.summary: dict = {}
        self._labels = labels
        self._durations = np.asarray(durations, dtype=np.float64)
        self._groups = groups
        self._need = np.array([_needed_frames(y) for y in labels], dtype=np.int64)
        self._noises, self._rirs = read_noise_manifest(noise_manifest)
        if augment is not None and (augment.noise_prob > 0 or augment.rir_prob > 0) and noise_manifest is None:
            log.info("augmentation asks for noise/reverberation but no noise_manifest was given")
        if not self.utterances:
            log.warning("no usable utterances in %s", [_manifest_entry(m)[0] for m in manifests])

    # ------------------------------------------------------------ setup helpers


    def _context(self) -> dict:
        return {"features": self.features, "augment": self.augment, "stacking": self.stacking,
                "normalization": self.normalization, "blank": self.blank, "noises": self._noises,
                "rirs": self._rirs, "babble": self._babble_pool()}

    def _babble_pool(self) -> list:
        """Audio of the speech utterances (babble is made of them), when babble augmentation is on."""
        if self.augment is None or self.augment.babble_prob <= 0:
            return []
        return [u.audio for u, y in zip(self.utterances, self._labels) if y.size]

    def _pool(self):
        if self._executor is None:
            ctx = multiprocessing.get_context(self.start_method)
            self._executor = cf.ProcessPoolExecutor(self.num_workers, mp_context=ctx, initializer=_init_context,
                                                    initargs=(self._context(), True))
        return self._executor

    # ------------------------------------------------------------ planning

    def _plan(self, epoch: int):
        """(batches: list of arrays of positions, selection: utterance index per position)."""
        if self._plan_cache is not None and self._plan_cache[0] == epoch:
            return self._plan_cache[1]
        rng = _epoch_rng(self.seed, epoch)
        parts = []
        for members, weight in self._groups:
            if members.size == 0 or weight == 0:
                continue
            whole = int(math.floor(weight))
            parts.extend([members] * whole)
            k = int(round((weight - whole) * members.size))
            if k:
                parts.append(np.sort(rng.choice(members, size=k, replace=False)))
        sel = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        sel = sel[rng.permutation(sel.size)]
        if self.epoch_seconds is not None and sel.size:
            keep = int(np.searchsorted(np.cumsum(self._durations[sel]), float(self.epoch_seconds), side="right"))
            sel = sel[:max(keep, 1)]
        # speed factors are drawn here so that batches are planned with the perturbed lengths
        speeds = np.ones(sel.size)
        if self.augment is not None and sel.size:
            factors = np.asarray(self.augment.speed_factors, dtype=np.float64)
            speeds = factors[rng.integers(factors.size, size=sel.size)]
        n_samples = (self._durations[sel] * self.features.sample_rate / speeds).astype(np.int64)
        frames = _num_frames_array(n_samples, self.features)
        too_short = _stacked(frames, self.stacking) < self._need[sel]
        speeds[too_short] = 1.0  # a factor that would make the audio too short for its label: none
        frames[too_short] = _num_frames_array(
            (self._durations[sel[too_short]] * self.features.sample_rate).astype(np.int64), self.features)
        batches = []
        for c0 in range(0, sel.size, self.sort_chunk):
            pos = np.arange(c0, min(c0 + self.sort_chunk, sel.size))
            pos = pos[np.argsort(frames[pos], kind="stable")]
            cur, cur_max = [], 0
            for p in pos.tolist():
                f = int(frames[p])
                m = max(cur_max, f)
                if cur and (m * (len(cur) + 1) > self.batch_frames or len(cur) >= self.max_batch):
                    batches.append(np.array(cur, np.int64))
                    cur, m = [], f
                cur.append(p)
                cur_max = m
            if cur:
                batches.append(np.array(cur, np.int64))
        order = rng.permutation(len(batches))
        plan = ([batches[i] for i in order], sel, speeds)
        self._plan_cache = (epoch, plan)
        return plan

    def num_batches(self, epoch: int) -> int:
        """Number of batches planned for ``epoch`` (a batch whose every utterance fails is not yielded)."""
        return len(self._plan(epoch)[0])

    def _items(self, epoch: int, positions: np.ndarray, sel: np.ndarray, speeds: np.ndarray) -> list:
        items = []
        for p in positions.tolist():
            i = int(sel[p])
            u = self.utterances[i]
            items.append((u.id, u.source, u.audio, float(speeds[p]), self._labels[i],
                          (self.seed, int(epoch), 1, p)))
        return items

    # ------------------------------------------------------------ iteration

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Yield the batches of ``epoch`` from position ``start_batch`` on.

        Parameters
        ----------
        epoch : int
        start_batch : int, optional
            First batch position (``Batch.index``); the batches are exactly those of a full pass.

        Yields
        ------
        Batch
        """
        batches, sel, speeds = self._plan(epoch)
        warner = _Warner(True)
        self.stats = dict(self._static_skips)
        delivered = {"batches": 0, "utterances": 0, "audio_seconds": 0.0, "frames": 0, "padded": 0,
                     "padding": 0.0}
        self.summary = delivered

        def finish(b, result):
            fields_, failures = result
            for uid, reason, message in failures:
                warner(reason, f"{uid}: {message}")
                self.stats[reason] = self.stats.get(reason, 0) + 1
            if fields_ is None:
                return None
            batch = Batch(*fields_, index=b)
            delivered["batches"] += 1
            delivered["utterances"] += batch.size
            delivered["frames"] += int(batch.lengths.sum())
            delivered["padded"] += int(batch.feats.shape[0] * batch.feats.shape[1])
            return batch

        todo = range(max(0, int(start_batch)), len(batches))
        if self.num_workers == 0:
            _init_context(self._context(), in_worker=False)
            for b in todo:
                batch = finish(b, _make_batch(self._items(epoch, batches[b], sel, speeds)))
                if batch is not None:
                    yield batch
        else:
            pending = collections.deque()
            it = iter(todo)
            retried = set()

            def submit(b):
                pending.append((b, self._pool().submit(_worker_batch, self._items(epoch, batches[b], sel, speeds))))

            for b in it:
                submit(b)
                if len(pending) >= self.prefetch:
                    break
            while pending:
                b, fut = pending[0]
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    # a worker died (e.g. killed for memory): restart the pool once per batch and redo
                    if b in retried:
                        raise
                    retried.add(b)
                    log.warning("a data worker died; restarting the pool and recomputing %d batches",
                                len(pending))
                    self._shutdown(wait=False)
                    todo_again = [bb for bb, _ in pending]
                    pending.clear()
                    for bb in todo_again:
                        submit(bb)
                    continue
                pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    submit(nxt)
                batch = finish(b, result)
                if batch is not None:
                    yield batch
        warner.summary(f"epoch {epoch}")
        delivered["audio_seconds"] = delivered["frames"] * self.features.hop_length / self.features.sample_rate
        skipped = {r: c for r, c in self.stats.items() if c}
        delivered["padding"] = 1.0 - delivered["frames"] / delivered["padded"] if delivered["padded"] else 0.0
        msg = (f"epoch {epoch}: {delivered['batches']} batches, {delivered['utterances']} utterances, "
               f"padding {delivered['padding']:.1%}, skipped: "
               + (", ".join(f"{c} {r}" for r, c in sorted(skipped.items())) if skipped else "none"))
        (log.warning if skipped else log.info)(msg)

    # ------------------------------------------------------------ cleanup

    def _shutdown(self, wait: bool = True):
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=wait, cancel_futures=True)

    def close(self):
        """Stop the worker processes (the loader can still be used: they restart on demand)."""
        self._shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._shutdown(wait=False)
        except Exception:
            pass


# ============================================================================ global statistics


def compute_global_stats(manifests: Sequence[str], feature_config: FeatureConfig, max_utterances: int = 2000,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of the features of (a sample of) some manifests.

    For ``normalization = {"mode": "global", "mean": ..., "std": ...}``.  Up to ``max_utterances``
    utterances are drawn without replacement (deterministic for a given ``seed``) from all usable
    utterances of the manifests; every frame counts equally.  No augmentation.  Unreadable audio is
    skipped with a warning.

    Parameters
    ----------
    manifests : list of str
    feature_config : FeatureConfig
    max_utterances : int, optional
    seed : int, optional

    Returns
    -------
    mean, std : ndarray of float32, shape (feature_config.dim,)
        ``std`` is floored at 1e-5.

    Raises
    ------
    ValueError
        No usable audio at all.

    Examples
    --------
    >>> mean, std = compute_global_stats(["shared/data/real/train.jsonl"], FeatureConfig())  # doctest: +SKIP
    >>> mean.shape, std.shape  # doctest: +SKIP
    ((80,), (80,))
    """
    utts = []
    for m in manifests:
        utts.extend(u for u in read_manifest(m)[0] if os.path.isfile(u.audio))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57A7]))
    if len(utts) > max_utterances:
        pick = np.sort(rng.choice(len(utts), size=int(max_utterances), replace=False))
        utts = [utts[i] for i in pick]
    D = feature_config.dim
    total = np.zeros(D, np.float64)
    total_sq = np.zeros(D, np.float64)
    count = 0
    shift = None  # shifted sums keep the variance accurate
    warner = _Warner(True)
    for u in utts:
        try:
            x = load_audio(u.audio, feature_config.sample_rate)
        except (AudioError, OSError, ValueError, RuntimeError) as exc:
            warner(UNREADABLE, f"{u.id}: {exc}")
            continue
        f = compute_features(x, feature_config).astype(np.float64)
        if shift is None:
            shift = f.mean(axis=0)
        f -= shift
        total += f.sum(axis=0)
        total_sq += np.square(f).sum(axis=0)
        count += f.shape[0]
    warner.summary("compute_global_stats")
    if count == 0:
        raise ValueError(f"no usable audio in {list(manifests)}")
    mean_s = total / count
    var = np.maximum(total_sq / count - mean_s ** 2, 0.0)
    return (mean_s + shift).astype(np.float32), np.maximum(np.sqrt(var), 1e-5).astype(np.float32)
