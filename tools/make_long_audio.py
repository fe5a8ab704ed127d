"""Build a long test recording from real speech clips, and measure segmentation memory.

Make a 1-hour 44.1 kHz stereo 16-bit WAV by tiling real clips (random order, random
per-channel gains, random pauses between utterances), written incrementally::

    python tools/make_long_audio.py make /tmp/long.wav --minutes 60

Then stream it through ``iter_audio_blocks`` + ``iter_segments`` and report the peak
resident memory and the segment statistics::

    /usr/bin/time -v python tools/make_long_audio.py measure /tmp/long.wav

Write the file outside the repository (it is ~600 MB for one hour).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import glob
import os
import resource
import sys
import time

import numpy as np
import soundfile as sf
import soxr

DEFAULT_CLIPS = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "audio" / "ljspeech" / "*.flac")


def make(out: str, minutes: float, rate: int, channels: int, clips_glob: str, seed: int) -> None:
    paths = sorted(glob.glob(clips_glob))
    if not paths:
        sys.exit(f"no clips match {clips_glob!r}")
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * rate)
    written = 0
    cache: dict[str, np.ndarray] = {}
    with sf.SoundFile(out, "w", samplerate=rate, channels=channels, subtype="PCM_16",
                      format="WAV" if total * channels * 2 < 2**32 - 1000 else "RF64") as snd:
        while written < total:
            path = paths[int(rng.integers(len(paths)))]
            clip = cache.get(path)
            if clip is None:
                x, sr = sf.read(path, dtype="float32", always_2d=True)
                x = x.mean(axis=1)
                if sr != rate:
                    x = soxr.resample(x, sr, rate, quality="HQ")
                clip = cache[path] = x.astype(np.float32)
            gains = rng.uniform(0.3, 1.0, size=channels) * rng.uniform(0.3, 1.0)
            pause = np.zeros((int(rng.uniform(0.05, 0.8) * rate), channels), np.float32)
            pause += rng.normal(0, 1e-3, pause.shape).astype(np.float32)  # room noise
            block = np.concatenate([clip[:, None] * gains[None, :].astype(np.float32), pause])
            block = block[: total - written]
            snd.write(np.clip(block, -1, 1))
            written += block.shape[0]
    print(f"wrote {out}: {written / rate / 60:.1f} min, {rate} Hz, {channels} ch, "
          f"{os.path.getsize(out) / 2**20:.0f} MiB")


def measure(path: str, block_seconds: float) -> None:
    from speechlstm.audio import iter_audio_blocks, iter_segments

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    lengths, cut_db = [], []
    total = 0
    prev_tail = None
    for start, seg in iter_segments(iter_audio_blocks(path, block_seconds=block_seconds)):
        assert start == total
        total += len(seg)
        lengths.append(len(seg) / 16000)
        if prev_tail is not None:  # energy at the cut vs. the segment's median energy
            around = np.concatenate([prev_tail, seg[:200]])
            frames = seg[: (len(seg) // 400) * 400].reshape(-1, 400)
            med = np.median(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
            cut_db.append(10 * np.log10(np.mean(around.astype(np.float64) ** 2) / med + 1e-12))
        prev_tail = seg[-200:]
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"audio: {total / 16000 / 60:.1f} min -> {len(lengths)} segments in {dt:.1f} s")
    print(f"segment length s: min {min(lengths):.1f}  median {np.median(lengths):.1f}  "
          f"max {max(lengths):.1f}")
    if cut_db:
        print(f"energy at cuts vs segment median (dB): median {np.median(cut_db):.1f}  "
              f"worst {max(cut_db):.1f}")
    print(f"peak RSS: {peak:.0f} MiB (after imports: {base:.0f} MiB)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="build a long WAV from real clips")
    mk.add_argument("out")
    mk.add_argument("--minutes", type=float, default=60.0)
    mk.add_argument("--rate", type=int, default=44100)
    mk.add_argument("--channels", type=int, default=2)
    mk.add_argument("--clips", default=DEFAULT_CLIPS)
    mk.add_argument("--seed", type=int, default=0)
    ms = sub.add_parser("measure", help="segment a file and report peak memory")
    ms.add_argument("path")
    ms.add_argument("--block-seconds", type=float, default=30.0)
    args = ap.parse_args(argv)
    if args.cmd == "make":
        make(args.out, args.minutes, args.rate, args.channels, args.clips, args.seed)
    else:
        measure(args.path, args.block_seconds)


if __name__ == "__main__":
    main()
