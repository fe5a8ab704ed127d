#!/usr/bin/env python
"""Streaming benchmark: partial-result latency and CPU cost of ``speechlstm.stream``, and (with a trained
model and the dev set) partial-vs-final agreement and WER of the streaming finals against the offline path.

Audio is fed in real-time chunks (``--block`` seconds, 50 ms like ``speechlstm listen``) through a simulated
real-time clock: chunk ``c`` arrives when the audio reaches its end, its processing starts at
``max(arrival, end of the previous processing)`` and its events are "seen" when that processing ends (the
measured wall time of ``accept``).  So nothing sleeps, and a slow recognizer accumulates delay as it would live.

* ``stream_partial_latency_ms``: median over words of (the time the word first appears in a partial, aligned
  to its final with difflib) minus (the end of the word in the audio).  A word that never appears in a partial
  counts with the time its final is seen.  The end of a word must be known independently of the model (CTC
  spikes and alignments of a BiLSTM can sit anywhere near the word), so with a trained model the signal is
  isolated words -- Speech Commands dev clips joined by 1 s pauses -- and the end of each word is the end of
  its clip's speech by energy (last 10 ms frame above peak - 40 dB); for sentences (``--accuracy``) only the
  last word of each clip is measured that way.  Without a trained model: a hand-built "burst" model (says
  ``a`` per noise burst, like tests/conftest.py) on bursts of 0.1-0.5 s whose ends are known.
* ``stream_cpu_fraction``: process CPU seconds (all threads) per audio second over ``--seconds`` of real
  speech (tools/bench_frontend.speech_signal), with the trained model, else a random-weight model of the
  shipped size (3 x 256, frame stacking 3).

The trained model is ``--model DIR``, else ``$SPEECHLSTM_BENCH_MODEL``, else the shipped model.  (The burst model
says ``a`` as soon as a burst starts, so its latency is negative: it checks the machinery, not a real model.)

Usage::

    python tools/bench_stream.py [--model DIR] [--seconds 60] [--json]
    python tools/bench_stream.py --model DIR --accuracy [--clips 80]   # + WER / agreement on dev clips
    python tools/bench_stream.py --model DIR --sweep                   # modes and chunk sizes, one table
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEV_MANIFEST = HERE.parents[1] / "shared" / "data" / "real" / "dev.jsonl"
SR = 16000


# ---------------------------------------------------------------------------------------- models
def random_model_dir(dst: Path, hidden: int = 256, layers: int = 3, stacking: int = 3) -> Path:
    """Random weights, the shipped architecture (3 x 256 BiLSTM, frame stacking 3, global normalization)."""
    from bench_frontend import speech_signal

    from speechlstm.features import compute_features
    from speechlstm.model import ModelConfig, random_weights, save_model

    cfg = ModelConfig.example(hidden_size=hidden, num_layers=layers, frame_stacking=stacking)
    f = compute_features(speech_signal(10.0)[0], cfg.features)
    cfg.normalization = {"mode": "global", "mean": f.mean(0).tolist(), "std": np.maximum(f.std(0), 1e-3).tolist()}
    cfg.name = f"bench-random-{layers}x{hidden}-k{stacking}"
    save_model(dst, cfg, random_weights(cfg, seed=0))
    return dst


def burst_model_dir(dst: Path) -> Path:
    """The hand-set 'burst' model of the tests: says 'a' while the input is loud, space while it is quiet."""
    from speechlstm.model import ModelConfig, save_model

    cfg = ModelConfig.example(hidden_size=4, num_layers=1)
    cfg.name = "burst-test"
    H, D, V = 4, cfg.features.dim, cfg.num_outputs
    w = {}
    for d in ("fw", "bw"):
        w_ih = np.zeros((4 * H, D), np.float32)
        w_ih[2 * H:3 * H] = 0.5
        bias = np.zeros(4 * H, np.float32)
        bias[0:H], bias[H:2 * H], bias[3 * H:] = 20.0, -20.0, 20.0
        w[f"lstm.0.{d}.w_ih"], w[f"lstm.0.{d}.w_hh"], w[f"lstm.0.{d}.bias"] = \
            w_ih, np.zeros((4 * H, H), np.float32), bias
    out = np.zeros((V, 2 * H), np.float32)
    out[cfg.tokens.index("a")], out[cfg.tokens.index(" ")] = 10.0, -10.0
    w["output.weight"], w["output.bias"] = out, np.zeros(V, np.float32)
    save_model(dst, cfg, w)
    return dst


def burst_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts of 0.1-0.5 s separated by 0.15-0.45 s gaps, with a 1 s pause every few bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = (rng.standard_normal(n) * 1e-4).astype(np.float32)
    t = 0.5
    k = 0
    while True:
        d = rng.uniform(0.1, 0.5)
        if t + d > seconds - 1.0:
            break
        a, b = int(t * SR), int((t + d) * SR)
        x[a:b] += (rng.standard_normal(b - a) * rng.uniform(0.05, 0.3)).astype(np.float32)
        k += 1
        t += d + (1.0 if k % 4 == 0 else rng.uniform(0.15, 0.45))
    return x


def find_trained_model() -> str | None:
    """``$SPEECHLSTM_BENCH_MODEL`` if set, else the shipped model if the package has one, else None."""
    if os.environ.get("SPEECHLSTM_BENCH_MODEL"):
        return os.environ["SPEECHLSTM_BENCH_MODEL"]
    try:
        from speechlstm.transcribe import default_model_dir

        return str(default_model_dir())
    except Exception:
        return None


# ------------------------------------------------------------------------------------ simulation
def simulate(rec, signal: np.ndarray, block_seconds: float = 0.05, **options) -> dict:
    """Feed ``signal`` in real-time chunks; events with the (simulated) time they are seen, CPU and wall time."""
    from speechlstm.stream import Final

    s = rec.stream(**options)
    blk = int(round(block_seconds * SR))
    clock = 0.0
    seen = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(0, len(signal), blk):
        arrival = min(i + blk, len(signal)) / SR
        t0 = time.perf_counter()
        ev = s.accept(signal[i:i + blk])
        clock = max(arrival, clock) + (time.perf_counter() - t0)
        seen += [(clock, e) for e in ev]
    t0 = time.perf_counter()
    ev = s.finish()
    clock = max(len(signal) / SR, clock) + (time.perf_counter() - t0)
    seen += [(clock, e) for e in ev]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finals = [e for _, e in seen if isinstance(e, Final)]
    return {"seen": seen, "finals": finals, "cpu_s": cpu, "wall_s": wall, "audio_s": len(signal) / SR,
            "timings": dict(s.timings)}


def speech_end(x: np.ndarray) -> float:
    """Seconds from the start of clip ``x`` to the end of its speech: the end of the last 10 ms frame whose energy
    is above both the clip's peak - 40 dB and its noise floor (10th percentile) + 10 dB."""
    n = len(x) // 160
    if n == 0:
        return len(x) / SR
    e = 10 * np.log10((x[:n * 160].astype(np.float64).reshape(n, 160) ** 2).mean(axis=1) + 1e-12)
    thr = max(e.max() - 40.0, np.percentile(e, 10) + 10.0)
    loud = np.flatnonzero(e > thr)
    return (loud[-1] + 1) * 0.01 if loud.size else len(x) / SR


def clip_end_refs(finals: list, spans: list) -> list:
    """Per final: end times for its words -- the speech end of the clip for the last word of the (last) clip
    it covers, None for the other words (no objective end is known for them)."""
    refs = []
    for f in finals:
        ends = [None] * len(f.words)
        if f.words:
            best = None
            for a, b, _, x in spans:
                if a / SR < f.end and b / SR > f.start:
                    best = a / SR + speech_end(x)
            ends[-1] = best
        refs.append(ends)
    return refs


def latencies(seen: list, ends: list | None = None) -> tuple[list, int]:
    """Per word of every final: the time it is first seen in a partial (aligned to the final's words with
    difflib) minus its end time in the audio (s); and how many of these words were first seen only in their
    final (they count with the final's time).  ``ends``: per final, the word end times (default: the words'
    own ``end``); words whose end is None are left out."""
    from speechlstm.stream import Final

    out, only_final = [], 0
    partials = []
    n_final = 0
    for t, e in seen:
        if not isinstance(e, Final):
            partials.append((t, e.text.split()))
            continue
        words = [w.word for w in e.words]
        word_ends = ends[n_final] if ends is not None else [w.end for w in e.words]
        n_final += 1
        first = [None] * len(words)
        for tp, pw in partials:
            sm = difflib.SequenceMatcher(None, words, pw, autojunk=False)
            for a, _, size in sm.get_matching_blocks():
                for j in range(a, a + size):
                    if first[j] is None:
                        first[j] = tp
        for j, end in enumerate(word_ends):
            if end is None:
                continue
            if first[j] is None:
                only_final += 1
                first[j] = t
            out.append(first[j] - end)
        partials = []
    return out, only_final


def agreement(seen: list) -> dict:
    """Partial-vs-final agreement: WER of the last partial of each utterance against its final, and the share
    of partial words (all partials, the last word of each excluded: it may still be growing) found in the final."""
    from speechlstm.metrics import ErrorCounter
    from speechlstm.stream import Final

    last = ""
    c = ErrorCounter()
    kept = total = 0
    pending = []
    for _, e in seen:
        if isinstance(e, Final):
            if e.text or last:
                c.add(e.text, last)
            fw = e.text.split()
            for pw in pending:
                body = pw[:-1]
                total += len(body)
                sm = difflib.SequenceMatcher(None, fw, body, autojunk=False)
                kept += sum(size for _, _, size in sm.get_matching_blocks())
            last, pending = "", []
        else:
            last = e.text
            pending.append(e.text.split())
    return {"last_partial_wer_vs_final": c.wer, "partial_word_stability": kept / total if total else 1.0}


# ------------------------------------------------------------------------------------ benchmarks
def bench_stream(model_dir: str | None = None, seconds: float = 60.0, block_seconds: float = 0.05,
                 latency_source: str = "speechcommands_v0.02_test", latency_clips: int = 80, **options) -> dict:
    """The two headline numbers (see the module docstring) plus context keys."""
    import numba
    from bench_frontend import speech_signal

    from speechlstm import Recognizer

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    model_dir = model_dir or find_trained_model()
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        cpu_dir = model_dir or str(random_model_dir(Path(tmp) / "random"))
        rec = Recognizer(cpu_dir, device="cpu")
        speech, _ = speech_signal(seconds)
        simulate(rec, speech[: 5 * SR], block_seconds, **options)  # compile / warm up
        r = simulate(rec, speech, block_seconds, **options)
        res["stream_cpu_fraction"] = r["cpu_s"] / r["audio_s"]
        res["stream_cpu_model"] = rec.model.config.name
        res["stream_cpu_breakdown_s"] = {k: round(v, 3) for k, v in r["timings"].items()}
        res["stream_cpu_utterances"] = len(r["finals"])
        if model_dir and DEV_MANIFEST.is_file():
            # isolated dev words: the speech end of each clip (energy) is the end of its word
            sig, spans = dev_stream(latency_clips, latency_source)
            lr = simulate(rec, sig, block_seconds, **options)
            lat_seen, lat_ends = lr["seen"], clip_end_refs(lr["finals"], spans)
            lat_model = f"{rec.model.config.name} on {len(spans)} {latency_source} dev clips"
        else:
            brec = Recognizer(str(burst_model_dir(Path(tmp) / "burst")), device="cpu")
            sig = burst_signal(seconds)
            simulate(brec, sig[: 5 * SR], block_seconds, **options)
            lat_seen, lat_ends = simulate(brec, sig, block_seconds, **options)["seen"], None
            lat_model = "burst-test (hand-set, no trained model found)"  # word ends: the forced alignment of 'a'
    lat, only_final = latencies(lat_seen, lat_ends)
    lat_ms = np.asarray(lat) * 1000.0
    res["stream_partial_latency_ms"] = float(np.median(lat_ms)) if lat_ms.size else float("nan")
    res["stream_partial_latency_p90_ms"] = float(np.percentile(lat_ms, 90)) if lat_ms.size else float("nan")
    res["stream_latency_words"] = int(lat_ms.size)
    res["stream_latency_words_final_only"] = int(only_final)
    res["stream_latency_model"] = lat_model
    res["stream_block_s"] = block_seconds
    return res


def dev_stream(n_clips: int, source: str = "ljspeech", pause: float = 1.0):
    """``n_clips`` dev clips of ``source`` joined by ``pause`` seconds of faint white noise (-70 dBFS):
    (signal, [(start, end, ref, clip)])."""
    import soundfile as sf

    from speechlstm.audio import resample

    rows = [json.loads(line) for line in open(DEV_MANIFEST, encoding="utf-8")]
    rows = [r for r in rows if r["source"] == source][:n_clips]
    if not rows:
        raise SystemExit(f"no dev clips of source {source!r} in {DEV_MANIFEST}")
    rng = np.random.default_rng(0)
    parts, spans, t = [], [], 0
    for r in rows:
        x, sr = sf.read(DEV_MANIFEST.parent / r["audio"], dtype="float32")
        x = resample(x, sr, SR)
        gap = (rng.standard_normal(int(pause * SR)) * 3e-4).astype(np.float32)  # a quiet microphone, -70 dBFS
        parts += [x, gap]
        spans.append((t, t + len(x), r["text"], x))
        t += len(x) + len(gap)
    return np.concatenate(parts), spans


def bench_accuracy(model_dir: str, n_clips: int = 80, block_seconds: float = 0.05, source: str = "ljspeech",
                   **options) -> dict:
    """Streaming finals vs the offline path on dev clips of one source joined by pauses (one stream)."""
    from speechlstm import Recognizer
    from speechlstm.metrics import ErrorCounter

    rec = Recognizer(model_dir, device="cpu")
    sig, spans = dev_stream(n_clips, source)
    offline = ErrorCounter()
    off_text = []
    for _, _, ref, x in spans:
        h = rec.transcribe(x, sample_rate=SR).text
        offline.add(ref, h)
        off_text.append(h)
    r = simulate(rec, sig, block_seconds, **options)
    ref_all = " ".join(ref for _, _, ref, _ in spans)
    stream_all = " ".join(f.text for f in r["finals"])
    st = ErrorCounter()
    st.add(ref_all, stream_all)
    vs = ErrorCounter()
    vs.add(" ".join(off_text), stream_all)
    whole = ErrorCounter()  # the offline path on the very signal the stream got (cut at pauses, <= 30 s)
    whole.add(ref_all, rec.transcribe(sig, sample_rate=SR).text)
    lat, only_final = latencies(r["seen"], clip_end_refs(r["finals"], spans))
    out = {"source": source, "clips": len(spans), "audio_s": round(r["audio_s"], 1), "utterances": len(r["finals"]),
           "offline_wer": offline.wer, "offline_same_signal_wer": whole.wer, "stream_final_wer": st.wer,
           "stream_final_vs_offline_wer": vs.wer,
           "cpu_fraction": r["cpu_s"] / r["audio_s"],
           "partial_latency_ms": float(np.median(lat) * 1000) if lat else float("nan"),
           "partial_latency_p90_ms": float(np.percentile(lat, 90) * 1000) if lat else float("nan"),
           "words_final_only": only_final, **agreement(r["seen"])}
    return out


SWEEP = [
    {"partials": "lc", "chunk_seconds": 0.24, "right_context_seconds": 0.24},
    {"partials": "lc", "chunk_seconds": 0.48, "right_context_seconds": 0.48},
    {"partials": "lc", "chunk_seconds": 0.48, "right_context_seconds": 0.96},
    {},  # the defaults: lc, chunk 0.96 s, right context 1.5 s, partials every 0.2 s, beam 8 (+ LM)
    {"partial_interval": 0.1},
    {"partial_beam": 1},
    {"partials": "redecode"},
    {"final_pass": False},
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="trained model directory (default: the shipped model, if any)")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio for the CPU/latency measure (default 60)")
    ap.add_argument("--block", type=float, default=0.05, help="real-time chunk in seconds (default 0.05)")
    ap.add_argument("--accuracy", action="store_true", help="also WER/agreement on dev clips (needs --model)")
    ap.add_argument("--clips", type=int, default=80, help="dev clips per source for --accuracy/--sweep (default 80)")
    ap.add_argument("--sources", default="speechcommands_v0.02_test,fsdd,ljspeech",
                    help="dev sources for --accuracy/--sweep, comma separated (default: all three)")
    ap.add_argument("--sweep", action="store_true", help="accuracy, latency and CPU per mode / chunk size")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)
    res = bench_stream(args.model, seconds=args.seconds, block_seconds=args.block)
    for k, v in res.items():
        print(f"{k:34s} {v:.3f}" if isinstance(v, float) else f"{k:34s} {v}")
    if (args.accuracy or args.sweep) and not (args.model or find_trained_model()):
        print("--accuracy / --sweep need a trained model (--model DIR)", file=sys.stderr)
        return 2
    model = args.model or find_trained_model()
    sources = [x for x in args.sources.split(",") if x]
    if args.accuracy:
        res["accuracy"] = [bench_accuracy(model, args.clips, args.block, source=src) for src in sources]
        for a in res["accuracy"]:
            print(json.dumps(a), flush=True)
    if args.sweep:
        res["sweep"] = []
        for opts in SWEEP:
            for src in sources:
                a = bench_accuracy(model, args.clips, args.block, source=src, **opts)
                res["sweep"].append({"options": opts, **a})
                print(json.dumps(res["sweep"][-1]), flush=True)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
