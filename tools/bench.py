#!/usr/bin/env python
"""speechlstm benchmarks against peers, all measured in ONE run on the same data.

Usage::

    python tools/bench.py            # table
    python tools/bench.py --json     # table, then one JSON object on the last line

Keys (ratios > 1 mean speechlstm is faster):

- ``frontend_speedup_vs_librosa``: the same log-mel features, one thread on both sides (tools/bench_frontend.py);
- ``bilstm_speedup_vs_torch_b1`` / ``_b16``: 3 x 320 BiLSTM, 40 inputs, T=1000, 2 threads, torch.nn.LSTM peer
  (tools/bench_bilstm.py; skipped with a note when torch is absent: ``pip install -e '.[bench]'``);
- ``pipeline_rtf``: processing seconds per audio second of the whole ``Recognizer.transcribe`` path (file decode,
  features, 3 x 320 BiLSTM, beam search 8) on 60 s of real speech, 2 threads;
- ``cli_startup_s``: wall clock of ``speechlstm transcribe`` on a 1 s file with a warm Numba cache (best of 5);
- ``ctc_loss_speedup_vs_torch``: CTC loss + gradient w.r.t. the logits, batch 16, T=500, 30 classes, 2 threads,
  peer torch log_softmax + F.ctc_loss + backward (tools/bench_ctc_loss.py);
- ``train_step_speedup_vs_torch``: forward + CTC + backward + Adam, 3 x 320 BiLSTM, batch 16, T=500, 30 classes,
  2 threads, peer torch.nn.LSTM + F.ctc_loss + torch.optim.Adam (tools/bench_train.py);
- ``stream_partial_latency_ms`` / ``stream_cpu_fraction``: streaming recognition fed in 50 ms real-time chunks:
  median time from the end of a word in the audio to its first appearance in a partial result (Speech Commands
  dev words), and CPU seconds per audio second (60 s of speech) (tools/bench_stream.py; the shipped model, or
  without one a random 3 x 256 model for the CPU cost and the hand-set burst model for the latency);
- ``beam_lm_speedup_vs_pyctcdecode``: CTC beam search with a 3-gram ARPA LM (alpha/beta fusion, beam 8), peer
  pyctcdecode 0.5.0 + kenlm on the same log-probs, ARPA file and beam width, one thread; ``beam_lm_wer`` and
  ``beam_lm_pyctcdecode_wer`` are both WERs (tools/bench_lm.py: log-probs of the shipped model on the LJSpeech dev
  clips when a model ships, else synthetic log-probs of the dev transcripts).
- ``gpu_*`` (only when a CUDA GPU is present, not the simulator): the numba.cuda backend against PyTorch on the
  same GPU -- ``gpu_bilstm_throughput_ratio_b64``, ``gpu_bilstm_latency_ratio_b1``, ``gpu_ctc_speedup_vs_torch``,
  ``gpu_train_step_speedup_vs_torch``, ``gpu_bilstm_tflops_b64``, ``gpu_peak_fp32_tflops``, ``gpu_device``
  (tools/gpu_check.py, which also checks the GPU results against the CPU kernels at these sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def bench_model_dir(dst: Path, hidden: int = 320, layers: int = 3) -> Path:
    """A random-weight model of benchmark size (until the shipped model exists)."""
    from speechlstm.model import ModelConfig, random_weights, save_model

    cfg = ModelConfig.example(hidden_size=hidden, num_layers=layers)
    cfg.name = f"bench-random-{layers}x{hidden}"
    save_model(dst, cfg, random_weights(cfg, seed=0))
    return dst


def bench_pipeline(model_dir: Path, seconds: float = 60.0, repeats: int = 3) -> dict:
    import numba
    import soundfile as sf
    from bench_frontend import speech_signal

    from speechlstm import Recognizer

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.flac"
        sf.write(wav, speech_signal(seconds)[0], 16000)
        rec = Recognizer(model_dir, device="cpu", beam_width=8)
        rec.transcribe(speech_signal(2.0)[0], sample_rate=16000)  # compile / warm up
        best, timings = float("inf"), None
        for _ in range(repeats):
            t0 = time.perf_counter()
            tr = rec.transcribe(str(wav))
            dt = time.perf_counter() - t0
            if dt < best:
                best, timings = dt, tr.timings
    return {"pipeline_rtf": best / seconds, "pipeline_seconds_audio": seconds,
            "pipeline_breakdown_s": {k: round(v, 3) for k, v in timings.items()}}


def bench_cli_startup(model_dir: Path, repeats: int = 5) -> dict:
    import soundfile as sf
    from bench_frontend import speech_signal

    exe = shutil.which("speechlstm")
    cmd = [exe] if exe else [sys.executable, "-m", "speechlstm"]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "one.wav"
        sf.write(wav, speech_signal(1.0)[0], 16000)
        full = cmd + ["transcribe", str(wav), "--model", str(model_dir)]
        subprocess.run(full, check=True, capture_output=True)  # warm the Numba cache
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(full, check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
    return {"cli_startup_s": best}


def _prefixed(prefix: str, d: dict) -> dict:
    """Prefix a sub-benchmark's generic keys (numba_ms, torch_ms, ...) so they do not collide."""
    return {k if k.startswith(prefix) else f"{prefix}_{k}": v for k, v in d.items()}


def gpu_present() -> bool:
    """A real CUDA GPU (``numba.cuda.is_available()``, never the simulator)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "").strip() not in ("", "0"):
        return False
    from speechlstm.gpu import cuda_available

    return cuda_available()


def bench_gpu(quick: bool) -> dict:
    """The ``gpu_*`` keys of tools/gpu_check.py (benchmarks against torch on the same GPU)."""
    from gpu_check import run

    res = run(checks=False, bench=True, repeats=2 if quick else 5)
    out = {k: v for k, v in res.items() if k.startswith("gpu_")}
    out["gpu_device"] = res.get("device")
    return out


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and shorter inputs (smoke test)")
    args = ap.parse_args(argv)

    from bench_bilstm import bench_bilstm
    from bench_ctc_loss import bench_ctc_loss
    from bench_frontend import bench_frontend
    from bench_lm import bench_lm, shipped_model
    from bench_train import bench_train_step
    from bench_stream import bench_stream

    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    reps = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = bench_model_dir(Path(tmp) / "model")
        steps = [
            ("front end vs librosa", lambda: bench_frontend(seconds=10.0 if args.quick else 60.0, repeats=reps)),
            ("BiLSTM vs torch", lambda: bench_bilstm(T=200 if args.quick else 1000, repeats=2 if args.quick else 3)),
            ("pipeline", lambda: bench_pipeline(model_dir, seconds=10.0 if args.quick else 60.0,
                                                repeats=1 if args.quick else 3)),
            ("CLI start-up", lambda: bench_cli_startup(model_dir, repeats=2 if args.quick else 5)),
            ("CTC loss vs torch", lambda: _prefixed("ctc_loss", bench_ctc_loss(repeats=2 if args.quick else 5))),
            ("training step vs torch", lambda: _prefixed("train_step", bench_train_step(
                repeats=1 if args.quick else 3, T=100 if args.quick else 500))),
            ("streaming", lambda: bench_stream(seconds=20.0 if args.quick else 60.0)),
            ("LM beam search vs pyctcdecode", lambda: bench_lm(
                model=shipped_model(), repeats=1 if args.quick else 3, max_utterances=20 if args.quick else None)),
        ]
        if gpu_present():
            steps.append(("GPU vs torch (tools/gpu_check.py)", lambda: bench_gpu(args.quick)))
        for label, fn in steps:
            print(f"... {label}", file=sys.stderr, flush=True)
            results.update(fn())

    rows = [
        ("front end speed-up vs librosa (1 thread)", "frontend_speedup_vs_librosa", "x", ">= 3"),
        ("BiLSTM speed-up vs torch, batch 1", "bilstm_speedup_vs_torch_b1", "x", ">= 1.0"),
        ("BiLSTM speed-up vs torch, batch 16", "bilstm_speedup_vs_torch_b16", "x", ">= 1.0"),
        ("pipeline real-time factor (2 threads)", "pipeline_rtf", "", "lower is better"),
        ("CLI start-up, warm cache", "cli_startup_s", "s", "<= 1.5 s"),
        ("CTC loss+grad speed-up vs torch", "ctc_loss_speedup_vs_torch", "x", ">= 1.0"),
        ("training step speed-up vs torch", "train_step_speedup_vs_torch", "x", ">= 1.0"),
        ("LM beam search speed-up vs pyctcdecode", "beam_lm_speedup_vs_pyctcdecode", "x", ">= 5"),
        ("  WER of the LM beam search (ours)", "beam_lm_wer", "", "<= pyctcdecode's"),
        ("  WER of pyctcdecode", "beam_lm_pyctcdecode_wer", "", ""),
        ("streaming: partial latency (median)", "stream_partial_latency_ms", " ms", "<= 300 ms"),
        ("streaming: CPU per audio second", "stream_cpu_fraction", "", "<= 0.25"),
    ]
    if "gpu_device" in results:
        rows += [
            ("GPU BiLSTM throughput b64 vs cuDNN", "gpu_bilstm_throughput_ratio_b64", "x", ">= 0.5"),
            ("GPU BiLSTM latency b1 vs cuDNN", "gpu_bilstm_latency_ratio_b1", "x", ">= 0.5"),
            ("GPU CTC loss+grad vs torch", "gpu_ctc_speedup_vs_torch", "x", ">= 0.5"),
            ("GPU training step vs torch", "gpu_train_step_speedup_vs_torch", "x", ""),
            ("GPU BiLSTM b64 TFLOP/s", "gpu_bilstm_tflops_b64", "", "vs gpu_peak_fp32_tflops"),
        ]
    print(f"speechlstm benchmarks  {results['date']}  {results['machine']}")
    print(f"{'measure':44s} {'value':>10s}  target")
    for label, key, unit, target in rows:
        v = results.get(key)
        shown = f"{v:.3f}{unit}" if isinstance(v, (int, float)) else "skipped"
        print(f"{label:44s} {shown:>10s}  {target}")
    for k, v in results.items():
        if k.endswith("_note"):
            print(f"note: {v}")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
