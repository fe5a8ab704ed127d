#!/usr/bin/env python
"""Generate non-speech clips (silence, coloured noise, mains hum, tones, clicks, background noise) with a manifest.

The clips have an empty transcript.  They serve two purposes:

* training: a recipe lists the manifest with ``{"nonspeech": true}`` so that the model learns to output only
  blanks for sounds that are not speech (``recipes/english-real2.json``);
* evaluation: ``tools/evaluate_nonspeech.py`` counts the clips that come out with words.  Generate the
  evaluation set with another ``--seed`` than the training set.

Kinds (drawn uniformly unless ``--kinds`` narrows them):

``silence``   digital zeros, or dither at -90 to -70 dBFS
``white``, ``pink``, ``brown``   stationary coloured noise, -65 to -12 dBFS
``hum``       50 or 60 Hz mains hum with random harmonics (and sometimes a little noise)
``tone``      a steady tone or a slow sweep between 200 Hz and 4 kHz (beeps, whistles, engines)
``clicks``    random clicks and pops on a noise floor (keyboard, handling noise)
``background`` a random stretch of a ``kind == "noise"`` file of ``--noise`` (default
              ``shared/data/noise/noise.jsonl``) at a random gain, sometimes with coloured noise added

Usage::

    python tools/make_nonspeech.py --out ../corpus/nonspeech --clips 1500 --seed 1
    python tools/make_nonspeech.py --out ../corpus/nonspeech_eval --clips 300 --seed 2 --kinds silence white pink brown hum tone clicks

Files are 16 kHz 16-bit FLAC; ``manifest.jsonl`` is written last, atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechlstm.data import read_noise_manifest  # noqa: E402

SR = 16000
KINDS = ("silence", "white", "pink", "brown", "hum", "tone", "clicks", "background")


def _db(level_db: float) -> float:
    return float(10.0 ** (level_db / 20.0))


def _coloured(rng, n: int, colour: str) -> np.ndarray:
    """Unit-RMS noise with a 1/f^a power spectrum (white a=0, pink a=1, brown a=2)."""
    a = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    x = rng.standard_normal(n)
    if a:
        spec = np.fft.rfft(x)
        f = np.arange(spec.size, dtype=np.float64)
        f[0] = 1.0
        spec /= f ** (a / 2.0)
        spec[0] = 0.0
        x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def _rms_to(x: np.ndarray, level_db: float) -> np.ndarray:
    return x / (np.sqrt(np.mean(x * x)) + 1e-12) * _db(level_db)


def make_clip(rng: np.random.Generator, kind: str, duration: float, noises: list[str]) -> np.ndarray:
    """One clip of ``kind``, float64 in [-1, 1]."""
    n = max(1, int(round(duration * SR)))
    t = np.arange(n) / SR
    if kind == "silence":
        if rng.random() < 0.3:
            return np.zeros(n)
        return _rms_to(rng.standard_normal(n), rng.uniform(-90, -70))
    if kind in ("white", "pink", "brown"):
        return _rms_to(_coloured(rng, n, kind), rng.uniform(-65, -12))
    if kind == "hum":
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        x = np.zeros(n)
        for h in range(1, int(rng.integers(2, 9))):
            x += rng.uniform(0.05, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
        x = _rms_to(x, rng.uniform(-50, -12))
        if rng.random() < 0.5:
            x += _rms_to(_coloured(rng, n, "white"), rng.uniform(-70, -40))
        return x
    if kind == "tone":
        f1, f2 = rng.uniform(200, 4000, size=2)
        if rng.random() < 0.5:
            f2 = f1
        phase = 2 * np.pi * np.cumsum(np.linspace(f1, f2, n)) / SR
        x = np.sin(phase) + rng.uniform(0, 0.3) * np.sin(2 * phase)
        return _rms_to(x, rng.uniform(-45, -15)) + _rms_to(_coloured(rng, n, "pink"), rng.uniform(-70, -50))
    if kind == "clicks":
        x = _rms_to(_coloured(rng, n, "pink"), rng.uniform(-70, -45))
        for _ in range(int(rng.integers(1, max(2, int(duration * 8))))):
            at = int(rng.integers(0, n))
            width = int(rng.integers(8, 160))
            seg = rng.standard_normal(min(width, n - at)) * np.exp(-np.arange(min(width, n - at)) / (width / 4))
            x[at:at + seg.size] += seg * _db(rng.uniform(-35, -6))
        return x
    if kind == "background":
        if not noises:
            return make_clip(rng, "pink", duration, noises)
        y, sr = sf.read(noises[int(rng.integers(len(noises)))], dtype="float64", always_2d=True)
        y = y[:, 0]
        if sr != SR:
            import soxr

            y = soxr.resample(y, sr, SR)
        if y.size < n:
            y = np.tile(y, int(np.ceil(n / max(y.size, 1))))
        start = int(rng.integers(0, y.size - n + 1))
        x = _rms_to(y[start:start + n], rng.uniform(-50, -15))
        if rng.random() < 0.3:
            x += _rms_to(_coloured(rng, n, "white"), rng.uniform(-70, -40))
        return x
    raise ValueError(f"unknown kind {kind!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--clips", type=int, default=1000, help="number of clips (default 1000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--min-seconds", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=8.0)
    p.add_argument("--noise", default=None,
                   help="noise manifest for 'background' (default: shared/data/noise/noise.jsonl beside the checkout)")
    a = p.parse_args(argv)
    if a.clips < 1 or not 0.05 <= a.min_seconds <= a.max_seconds:
        print("make_nonspeech: --clips must be >= 1 and 0.05 <= --min-seconds <= --max-seconds", file=sys.stderr)
        return 2
    noise = a.noise
    if noise is None:
        here = Path(__file__).resolve().parent
        for d in [here, *here.parents]:
            cand = d / "shared" / "data" / "noise" / "noise.jsonl"
            if cand.is_file():
                noise = str(cand)
                break
    noises = read_noise_manifest(noise)[0] if "background" in a.kinds and noise and os.path.isfile(noise) else []
    out = Path(a.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    rows = []
    for i in range(a.clips):
        kind = a.kinds[int(rng.integers(len(a.kinds)))]
        # log-uniform durations: many short clips (commands), some long ones
        dur = float(np.exp(rng.uniform(np.log(a.min_seconds), np.log(a.max_seconds))))
        x = make_clip(rng, kind, dur, noises)
        if rng.random() < 0.5 and kind != "silence":  # fades: a sound that starts or stops inside the clip
            k = int(rng.integers(1, x.size))
            ramp = np.linspace(0, 1, k)
            if rng.random() < 0.5:
                x[:k] *= ramp
            else:
                x[-k:] *= ramp[::-1]
        x = np.clip(x, -1.0, 1.0)
        name = f"ns{a.seed}_{i:05d}_{kind}.flac"
        sf.write(out / "audio" / name, x.astype(np.float32), SR, subtype="PCM_16")
        rows.append({"id": f"nonspeech_{a.seed}_{i:05d}", "audio": f"audio/{name}", "text": "", "kind": kind,
                     "duration": round(x.size / SR, 3), "sample_rate": SR, "source": "nonspeech", "speaker": None})
    tmp = out / "manifest.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, out / "manifest.jsonl")
    print(f"{len(rows)} clips, {sum(r['duration'] for r in rows) / 60:.1f} min -> {out / 'manifest.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
