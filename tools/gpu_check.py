#!/usr/bin/env python
"""Check the numba.cuda kernels against the CPU kernels at real sizes, then benchmark them against PyTorch on the
same GPU, all in ONE run.

Usage::

    python tools/gpu_check.py                 # checks + benchmarks, table
    python tools/gpu_check.py --json          # ... then one JSON object on the last line
    python tools/gpu_check.py --markdown      # ... then a BENCHMARKS.md section (device, date, table)
    python tools/gpu_check.py --checks-only   # correctness at real sizes only (no torch needed)
    NUMBA_ENABLE_CUDASIM=1 python tools/gpu_check.py --tiny   # smoke test of this script in the simulator
    python tools/gpu_check.py --ptx           # no GPU needed: compile every kernel to PTX (sm_90) with the CUDA
                                              # toolkit's NVVM, report registers/spills from ptxas

Checks (GPU vs the Numba CPU kernels, the GPU results must agree to 1e-4 relative and give the same greedy
transcripts): the acoustic model (3 x 320 BiLSTM, 40 inputs, 30 classes, T=1000) at batch 1 and 64 with every
recurrence design, greedy decoding on the device, CTC loss + gradient (B=16, T=500, V=30, labels 60-100) and
one training forward/backward (B=16, T=500).

Benchmarks (same GPU, the two sides interleaved, best of N; ratios > 1 mean speechlstm is faster):

* ``gpu_bilstm_throughput_ratio_b64`` -- log-probabilities of 64 x 1000 frames, host features in, host
  log-probabilities out, vs ``torch.nn.LSTM`` (cuDNN) + ``Linear`` + ``log_softmax`` doing the same copies;
  target >= 0.5;
* ``gpu_bilstm_latency_ratio_b1`` -- the same at batch 1 (torch time / ours: >= 0.5 means "at most 2x
  cuDNN"); target >= 0.5;
* ``gpu_ctc_speedup_vs_torch`` -- CTC loss + gradient w.r.t. the logits on device tensors vs ``log_softmax`` +
  ``F.ctc_loss`` + ``backward``; target >= 0.5;
* ``gpu_train_step_speedup_vs_torch`` -- forward + CTC + backward (+ the host Adam our trainer uses) vs
  torch's whole step on the GPU (LSTM + Linear + CTC + backward + ``optim.Adam``);
* ``gpu_bilstm_tflops_b64`` and ``gpu_peak_fp32_tflops`` -- achieved FLOP/s of the batch-64 forward against the
  FP32 FMA peak measured by a kernel of this script (and ``gpu_torch_matmul_tflops``, torch's FP32 matmul).

torch runs in FP32 (``allow_tf32 = False`` for cuDNN and matmul: ours is FP32); its TF32 times are reported
as well (``*_tf32_ms``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _rel(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0


def _config(input_dim, hidden, layers, classes):
    from speechlstm.features import FeatureConfig
    from speechlstm.model import Architecture, ModelConfig

    feats = FeatureConfig(n_mels=input_dim, n_mfcc=min(13, input_dim))
    tokens = ["<blank>"] + [f"t{i}" for i in range(1, classes)]
    arch = Architecture(input_dim=feats.dim, hidden_size=hidden, num_layers=layers)
    return ModelConfig(name="gpu-check", features=feats, architecture=arch, tokens=tokens)


def _best(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def device_info() -> dict:
    import numba
    from numba import cuda

    info = {"date": time.strftime("%Y-%m-%d"), "numba": numba.__version__,
            "numba_cuda": getattr(cuda, "implementation", "?")}
    from speechlstm.kernels.cuda_lstm import SIMULATOR

    if SIMULATOR:
        info.update(device="numba CUDA simulator", sms=0)
        return info
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    info.update(device=name, compute_capability=".".join(map(str, dev.compute_capability)),
                sms=int(dev.MULTIPROCESSOR_COUNT))
    try:
        free, total = cuda.current_context().get_memory_info()
        info["memory_gib"] = round(total / 2 ** 30, 1)
    except Exception:
        pass
    return info


# ---------------------------------------------------------------- peak FP32
def measure_peak_tflops(sms: int, iters: int = 4096, threads: int = 256) -> float:
    """FP32 FMA throughput of a kernel with 16 independent FMA chains per thread (TFLOP/s)."""
    global cuda  # a module global, as the simulator expects of kernels
    from numba import cuda, float32

    @cuda.jit
    def peak(out, n, x, y):
        i = cuda.grid(1)
        a0 = float32(i) * float32(1e-6)
        a1, a2, a3, a4, a5, a6, a7 = a0 + 1, a0 + 2, a0 + 3, a0 + 4, a0 + 5, a0 + 6, a0 + 7
        b0, b1, b2, b3, b4, b5, b6, b7 = a0 - 1, a0 - 2, a0 - 3, a0 - 4, a0 - 5, a0 - 6, a0 - 7, a0 - 8
        for _ in range(n):
            a0 = cuda.fma(a0, x, y)
            a1 = cuda.fma(a1, x, y)
            a2 = cuda.fma(a2, x, y)
            a3 = cuda.fma(a3, x, y)
            a4 = cuda.fma(a4, x, y)
            a5 = cuda.fma(a5, x, y)
            a6 = cuda.fma(a6, x, y)
            a7 = cuda.fma(a7, x, y)
            b0 = cuda.fma(b0, x, y)
            b1 = cuda.fma(b1, x, y)
            b2 = cuda.fma(b2, x, y)
            b3 = cuda.fma(b3, x, y)
            b4 = cuda.fma(b4, x, y)
            b5 = cuda.fma(b5, x, y)
            b6 = cuda.fma(b6, x, y)
            b7 = cuda.fma(b7, x, y)
        out[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7

    blocks = max(1, sms) * 8 if sms else 1
    out = cuda.device_array(threads * blocks, np.float32)
    x, y = np.float32(0.999), np.float32(1e-3)
    peak[blocks, threads](out, 8, x, y)
    cuda.synchronize()

    def run():
        peak[blocks, threads](out, iters, x, y)
        cuda.synchronize()

    dt = _best(run, 3)
    return 2.0 * 16 * iters * threads * blocks / dt / 1e12


def bilstm_flops(B, T, D, H, layers, V) -> float:
    """FLOPs of one forward pass (multiply-adds x 2): input projections, recurrences, output layer."""
    M = B * T
    f = 0.0
    for layer in range(layers):
        In = D if layer == 0 else 2 * H
        f += 2.0 * M * In * 8 * H + 2.0 * M * H * 8 * H
    return f + 2.0 * M * 2 * H * V


# ---------------------------------------------------------------- checks
def check_inference(model, feats_list, modes) -> dict:
    from speechlstm.decoding import greedy_decode
    from speechlstm.gpu import CudaAcousticModel

    ref = model.log_probs(feats_list)
    ref_greedy = [greedy_decode(r).token_ids.tolist() for r in ref]
    out = {}
    B = len(feats_list)
    for mode in modes:
        g = CudaAcousticModel(model, recurrence=mode)
        lp = g.log_probs(feats_list)
        key = f"b{B}_{mode}"
        out[f"check_{key}_rel_err"] = max(_rel(a, b) for a, b in zip(lp, ref))
        out[f"check_{key}_used"] = g.engine.last_recurrence
        if g.engine.coop_error:
            out[f"check_{key}_coop_note"] = g.engine.coop_error
        hyps = g.greedy_decode(feats_list)
        out[f"check_{key}_greedy_same"] = [h.token_ids.tolist() for h in hyps] == ref_greedy
        out[f"check_{key}_transcripts_same"] = [greedy_decode(x).token_ids.tolist() for x in lp] == ref_greedy
    return out


def check_ctc(B, T, V, label_range) -> dict:
    from numba import cuda

    from speechlstm.gpu import GpuEngine
    from speechlstm.kernels.ctc_loss import ctc_loss_and_grad

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((B, T, V)).astype(np.float32)
    lengths = rng.integers(int(0.8 * T), T + 1, B).astype(np.int32)
    lengths[0] = T
    ll = rng.integers(label_range[0], label_range[1] + 1, B).astype(np.int32)
    labels = rng.integers(1, V, (B, label_range[1])).astype(np.int32)
    ref_l, ref_g = ctc_loss_and_grad(logits, lengths, labels, ll)
    eng = GpuEngine()
    tm = np.ascontiguousarray(logits.transpose(1, 0, 2).reshape(T * B, V))
    Lmax = int(label_range[1])
    losses, g = eng.ctc(cuda.to_device(tm), cuda.to_device(lengths), cuda.to_device(labels), cuda.to_device(ll),
                        B, T, V, 2 * Lmax + 1, 0)
    gl = losses.copy_to_host()
    gg = g.copy_to_host().reshape(T, B, V).transpose(1, 0, 2)
    fin = np.isfinite(ref_l)
    return {"check_ctc_loss_rel_err": _rel(gl[fin], ref_l[fin]),
            "check_ctc_grad_max_abs_err": float(np.max(np.abs(gg - ref_g))),
            "check_ctc_inf_same": bool(np.array_equal(np.isinf(gl), np.isinf(ref_l)))}


def check_training(config, B, T, label_range) -> dict:
    from speechlstm.gpu import GpuNetwork
    from speechlstm.network import forward_backward, init_params

    rng = np.random.default_rng(1)
    D, V = config.architecture.input_dim, config.num_outputs
    feats = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = np.full(B, T, np.int32)
    lengths[1:] = rng.integers(int(0.8 * T), T + 1, B - 1)
    ll = rng.integers(label_range[0], label_range[1] + 1, B).astype(np.int32)
    labels = rng.integers(1, V, (B, label_range[1])).astype(np.int32)
    params = init_params(config, seed=0)
    ref_l, ref_g = forward_backward(params, config, feats, lengths, labels, ll)
    net = GpuNetwork()
    l, g = net.forward_backward(params, config, feats, lengths, labels, ll)
    fin = np.isfinite(ref_l)
    grad = max(float(np.max(np.abs(g[k] - ref_g[k])) / max(1e-12, float(np.max(np.abs(ref_g[k]))))) for k in ref_g)
    return {"check_train_loss_rel_err": _rel(l[fin], ref_l[fin]), "check_train_grad_rel_err": grad,
            "check_train_recurrence": net.engine.last_recurrence}


# ---------------------------------------------------------------- benchmarks
def _torch():
    try:
        import torch
    except Exception as exc:  # pragma: no cover
        return None, f"torch not available ({exc})"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA device here"
    return torch, None


def bench_inference(model, config, B, T, repeats, torch) -> dict:
    from speechlstm.gpu import CudaAcousticModel

    a = config.architecture
    D, H, L, V = a.input_dim, a.hidden_size, a.num_layers, config.num_outputs
    rng = np.random.default_rng(2)
    feats = [rng.standard_normal((T, D)).astype(np.float32) for _ in range(B)]
    g = CudaAcousticModel(model)
    g.log_probs(feats)  # compile, allocate
    out = {}
    ours = _best(lambda: g.log_probs(feats), repeats)
    out[f"gpu_bilstm_b{B}_ms"] = ours * 1e3
    out[f"gpu_bilstm_b{B}_recurrence"] = g.engine.last_recurrence
    out[f"gpu_bilstm_tflops_b{B}"] = bilstm_flops(B, T, D, H, L, V) / ours / 1e12
    if torch is None:
        return out
    dev = torch.device("cuda")
    lstm = torch.nn.LSTM(D, H, L, bidirectional=True, batch_first=True).to(dev)
    lin = torch.nn.Linear(2 * H, V).to(dev)
    w = model.weights
    with torch.no_grad():
        for layer in range(L):
            for d, sfx in (("fw", ""), ("bw", "_reverse")):
                p = f"lstm.{layer}.{d}."
                getattr(lstm, f"weight_ih_l{layer}{sfx}").copy_(torch.from_numpy(w[p + "w_ih"]))
                getattr(lstm, f"weight_hh_l{layer}{sfx}").copy_(torch.from_numpy(w[p + "w_hh"]))
                getattr(lstm, f"bias_ih_l{layer}{sfx}").copy_(torch.from_numpy(w[p + "bias"]))
                getattr(lstm, f"bias_hh_l{layer}{sfx}").zero_()
        lin.weight.copy_(torch.from_numpy(w["output.weight"]))
        lin.bias.copy_(torch.from_numpy(w["output.bias"]))
    x_host = torch.from_numpy(np.stack(feats))

    def torch_run():
        with torch.no_grad():
            y, _ = lstm(x_host.to(dev, non_blocking=False))
            lp = torch.log_softmax(lin(y), dim=-1).cpu()
        return lp

    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        ref = torch_run()
        t = _best(torch_run, repeats)
        out[f"gpu_torch_bilstm_b{B}{'_tf32' if tf32 else ''}_ms"] = t * 1e3
        if not tf32:
            mine = np.stack(g.log_probs(feats))
            out[f"gpu_bilstm_b{B}_max_rel_vs_torch"] = _rel(mine, ref.numpy())
            # interleave once more so neither side profits from a quieter moment
            ours = min(ours, _best(lambda: g.log_probs(feats), repeats))
            t = min(t, _best(torch_run, repeats))
            out[f"gpu_bilstm_b{B}_ms"] = ours * 1e3
            out[f"gpu_torch_bilstm_b{B}_ms"] = t * 1e3
            out[f"gpu_bilstm_tflops_b{B}"] = bilstm_flops(B, T, D, H, L, V) / ours / 1e12
            key = "gpu_bilstm_throughput_ratio_b64" if B >= 64 else f"gpu_bilstm_latency_ratio_b{B}"
            out[key] = t / ours
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def bench_ctc(B, T, V, label_range, repeats, torch) -> dict:
    from numba import cuda

    from speechlstm.gpu import GpuEngine

    rng = np.random.default_rng(3)
    logits = rng.standard_normal((B, T, V)).astype(np.float32)
    lengths = rng.integers(int(0.8 * T), T + 1, B).astype(np.int32)
    lengths[0] = T
    ll = rng.integers(label_range[0], label_range[1] + 1, B).astype(np.int32)
    labels = rng.integers(1, V, (B, label_range[1])).astype(np.int32)
    eng = GpuEngine()
    tm = cuda.to_device(np.ascontiguousarray(logits.transpose(1, 0, 2).reshape(T * B, V)))
    args = (tm, cuda.to_device(lengths), cuda.to_device(labels), cuda.to_device(ll), B, T, V, 2 * label_range[1] + 1, 0)

    def ours_run():
        eng.ctc(*args)
        eng.synchronize()

    ours_run()
    out = {"gpu_ctc_ms": _best(ours_run, repeats) * 1e3}
    if torch is None:
        return out
    F = torch.nn.functional
    dev = torch.device("cuda")
    x = torch.from_numpy(logits).to(dev)
    tl = torch.from_numpy(lengths.astype(np.int64)).to(dev)
    tlab = torch.from_numpy(labels.astype(np.int64)).to(dev)
    tll = torch.from_numpy(ll.astype(np.int64)).to(dev)

    def torch_run():
        xx = x.detach().requires_grad_(True)
        loss = F.ctc_loss(F.log_softmax(xx, -1).transpose(0, 1), tlab, tl, tll, blank=0, reduction="sum")
        loss.backward()
        torch.cuda.synchronize()

    torch_run()
    t = _best(torch_run, repeats)
    ours = min(out["gpu_ctc_ms"] / 1e3, _best(ours_run, repeats))
    out.update(gpu_ctc_ms=ours * 1e3, gpu_torch_ctc_ms=t * 1e3, gpu_ctc_speedup_vs_torch=t / ours)
    return out


def bench_train(config, B, T, label_range, repeats, torch) -> dict:
    from speechlstm.gpu import GpuNetwork
    from speechlstm.network import init_params
    from speechlstm.optim import Adam

    a = config.architecture
    D, H, L, V = a.input_dim, a.hidden_size, a.num_layers, config.num_outputs
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = np.full(B, T, np.int32)
    ll = rng.integers(label_range[0], label_range[1] + 1, B).astype(np.int32)
    labels = rng.integers(1, V, (B, label_range[1])).astype(np.int32)
    params = init_params(config, seed=0)
    net = GpuNetwork()
    opt = Adam(params, lr=1e-4)

    def fb():
        return net.forward_backward(params, config, feats, lengths, labels, ll)

    def step():
        _, grads = fb()
        opt.step(grads, 1e-4)

    step()
    out = {"gpu_train_fb_ms": _best(fb, repeats) * 1e3, "gpu_train_step_ms": _best(step, repeats) * 1e3}
    if torch is None:
        return out
    F = torch.nn.functional
    dev = torch.device("cuda")
    lstm = torch.nn.LSTM(D, H, L, bidirectional=True, batch_first=True).to(dev)
    lin = torch.nn.Linear(2 * H, V).to(dev)
    topt = torch.optim.Adam(list(lstm.parameters()) + list(lin.parameters()), lr=1e-4)
    x = torch.from_numpy(feats).to(dev)
    tl = torch.from_numpy(lengths.astype(np.int64)).to(dev)
    tlab = torch.from_numpy(labels.astype(np.int64)).to(dev)
    tll = torch.from_numpy(ll.astype(np.int64)).to(dev)

    def torch_step():
        topt.zero_grad(set_to_none=True)
        y, _ = lstm(x)
        loss = F.ctc_loss(F.log_softmax(lin(y), -1).transpose(0, 1), tlab, tl, tll, blank=0, reduction="sum")
        loss.backward()
        topt.step()
        torch.cuda.synchronize()

    torch_step()
    t = _best(torch_step, repeats)
    ours = min(out["gpu_train_step_ms"] / 1e3, _best(step, repeats))
    out.update(gpu_train_step_ms=ours * 1e3, gpu_torch_train_step_ms=t * 1e3, gpu_train_step_speedup_vs_torch=t / ours)
    return out


# ---------------------------------------------------------------- compile-only check (no GPU needed)
def compile_all_ptx(cc=(9, 0)) -> dict:
    """Compile every kernel for compute capability ``cc`` (NVVM of the CUDA toolkit; no GPU or driver needed)
    and, where ``ptxas`` is found, assemble it: ``{kernel: {"ptx_chars", "registers", "spill_bytes",
    "stack_bytes"}}`` (register/spill keys only with ptxas).  Catches code the simulator accepts but the CUDA
    target does not."""
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    from numba import cuda
    from numba import types as T

    if not cuda.is_available():  # device functions ask for the current device's compute capability
        import numba.cuda.dispatcher as _disp

        class _Dev:
            compute_capability = tuple(cc)

        _disp.get_current_device = lambda: _Dev()
    from speechlstm.kernels import cuda_ctc as KC
    from speechlstm.kernels import cuda_lstm as KL

    f2, f2a, f1, f3 = T.float32[:, ::1], T.Array(T.float32, 2, "A"), T.float32[::1], T.float32[:, :, ::1]
    i1, i2, i64, d1, d3 = T.int32[::1], T.int32[:, ::1], T.int64, T.float64[::1], T.float64[:, :, ::1]
    sigs = {
        "gemm": (KL.gemm_kernel, (f2, i64, f2, f1, i64, f2, i64, i64, i64)),
        "gemm_strided": (KL.gemm_kernel, (f2a, i64, f2a, f1, i64, f2, i64, i64, i64)),
        "colsum": (KL.colsum_kernel, (f2, i64, i64, f1)),
        "stack_frames": (KL.stack_frames_kernel, (f3, i1, i64, i64, f2)),
        "mul": (KL.mul_kernel, (f2, f2, f2, i64, i64)),
        "fill": (KL.fill_kernel, (f1, i64, T.float64)),
        "lstm_persistent": (KL.lstm_persistent_kernel, (f2, f2, f2, i64, f3, f3, i1) + (i64,) * 7),
        "lstm_persistent_step": (KL.lstm_persistent_step_kernel, (f2, f2, f2, i64, f3, f3, i1) + (i64,) * 6),
        "lstm_step": (KL.lstm_step_kernel, (f2, f2, f2, i64, f3, f3, i1) + (i64,) * 4),
        "lstm_backward_step": (KL.lstm_backward_step_kernel, (f2, f2, f2, f3, f3, i1) + (i64,) * 4),
        "log_softmax_out": (KC.log_softmax_out_kernel, (f2, i1, i64, f3, i2, f2)),
        "greedy_collapse": (KC.greedy_collapse_kernel, (i2, f2, i1, i64, i2, i2, f2, i1, d1)),
        "log_softmax_train": (KC.log_softmax_train_kernel, (f2, i1, i64, i64, f2, f2)),
        "ctc": (KC.ctc_kernel, (f2, i1, i2, i1, i64, i64, i64, d3, f2, d1)),
    }
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    ptxas = shutil.which("ptxas") or (os.path.join(home, "bin", "ptxas") if os.path.exists(
        os.path.join(home, "bin", "ptxas")) else None)
    out = {}
    arch = f"sm_{cc[0]}{cc[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kernel, sig) in sigs.items():
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=tuple(cc))
            r = {"ptx_chars": len(ptx)}
            if ptxas:
                path = os.path.join(tmp, name + ".ptx")
                with open(path, "w") as f:
                    f.write(ptx)
                p = subprocess.run([ptxas, f"-arch={arch}", "-c", "-v", path, "-o", os.devnull], capture_output=True,
                                   text=True)
                if p.returncode != 0:
                    raise RuntimeError(f"ptxas failed on {name}: {p.stderr.strip()[-500:]}")
                m = re.search(r"Used (\d+) registers", p.stderr)
                sp = re.search(r"(\d+) bytes spill stores", p.stderr)
                st = re.search(r"(\d+) bytes stack frame", p.stderr)
                r.update(registers=int(m.group(1)) if m else None, spill_bytes=int(sp.group(1)) if sp else None,
                         stack_bytes=int(st.group(1)) if st else None)
            out[name] = r
    return out


# ---------------------------------------------------------------- main
TARGETS = [
    ("BiLSTM throughput, batch 64 (torch cuDNN / ours)", "gpu_bilstm_throughput_ratio_b64", ">= 0.5"),
    ("BiLSTM latency, batch 1 (torch cuDNN / ours)", "gpu_bilstm_latency_ratio_b1", ">= 0.5 (<= 2x cuDNN)"),
    ("CTC loss + grad (torch / ours)", "gpu_ctc_speedup_vs_torch", ">= 0.5"),
    ("training step (torch / ours)", "gpu_train_step_speedup_vs_torch", ""),
    ("BiLSTM batch 64 TFLOP/s (ours)", "gpu_bilstm_tflops_b64", ""),
    ("measured FP32 FMA peak TFLOP/s", "gpu_peak_fp32_tflops", ""),
]


def run(tiny: bool = False, checks: bool = True, bench: bool = True, repeats: int = 5) -> dict:
    from speechlstm.gpu import require_cuda
    from speechlstm.model import AcousticModel, random_weights

    require_cuda()
    if tiny:
        D, H, L, V, T, Bbig, ctc = 6, 5, 2, 7, 6, 4, (4, 8, 7, (2, 3))
        train = (3, 6, (1, 2))
        repeats = 1
    else:
        D, H, L, V, T, Bbig, ctc = 40, 320, 3, 30, 1000, 64, (16, 500, 30, (60, 100))
        train = (16, 500, (60, 100))
    config = _config(D, H, L, V)
    model = AcousticModel(config, random_weights(config, seed=0))
    res = device_info()
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()
    if checks:
        modes = ("persistent", "persistent-steps", "batched")
        res.update(check_inference(model, [rng.standard_normal((T, D)).astype(np.float32)], modes))
        lens = rng.integers(T // 2, T + 1, Bbig)
        lens[0] = T
        res.update(check_inference(model, [rng.standard_normal((int(n), D)).astype(np.float32) for n in lens],
                                   ("auto",)))
        res.update(check_ctc(*ctc))
        res.update(check_training(config, *train))
        errs = [v for k, v in res.items() if k.startswith("check_") and k.endswith("_rel_err")]
        same = [v for k, v in res.items() if k.startswith("check_") and k.endswith("_same")]
        res["checks_passed"] = bool(max(errs) < 1e-4 and all(same) and res["check_ctc_grad_max_abs_err"] < 1e-4)
    if bench:
        torch, note = _torch()
        if note:
            res["gpu_torch_note"] = note
        else:
            res["torch"] = torch.__version__
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            n = 4096 if not tiny else 64
            a = torch.randn(n, n, device="cuda")
            torch.cuda.synchronize()

            def mm():
                a @ a
                torch.cuda.synchronize()

            mm()
            res["gpu_torch_matmul_tflops"] = 2.0 * n ** 3 / _best(mm, 5) / 1e12
        if not res.get("sms"):
            res["gpu_peak_fp32_tflops"] = measure_peak_tflops(0, iters=4, threads=2)  # simulator
        else:
            res["gpu_peak_fp32_tflops"] = measure_peak_tflops(res["sms"])
        res.update(bench_inference(model, config, 1, T, repeats, torch))
        res.update(bench_inference(model, config, Bbig, T, repeats, torch))
        if f"gpu_bilstm_tflops_b{Bbig}" in res:
            res["gpu_bilstm_tflops_b64"] = res.pop(f"gpu_bilstm_tflops_b{Bbig}")
        res.update(bench_ctc(*ctc, repeats, torch))
        res.update(bench_train(config, *train, max(1, repeats // 2), torch))
        if res.get("gpu_peak_fp32_tflops"):
            res["gpu_bilstm_fraction_of_peak_b64"] = res["gpu_bilstm_tflops_b64"] / res["gpu_peak_fp32_tflops"]
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def markdown(res: dict) -> str:
    lines = [f"## {res['date']} — GPU: {res.get('device')} ({res.get('sms', '?')} SMs, "
             f"cc {res.get('compute_capability', '?')}), numba {res['numba']} ({res['numba_cuda']} numba.cuda), "
             f"torch {res.get('torch', 'absent')}", "",
             "Command: `python tools/gpu_check.py --markdown` (checks, then both sides interleaved on the same GPU, "
             "torch in FP32: `allow_tf32 = False`).", "",
             "| measure | speechlstm | torch | ratio | target |", "|---|---:|---:|---:|---|"]

    def row(label, ours, theirs, ratio, target):
        f = (lambda v: f"{v:.2f} ms" if isinstance(v, float) else "—")
        r = f"**{res[ratio]:.2f}×**" if isinstance(res.get(ratio), float) else "—"
        lines.append(f"| {label} | {f(res.get(ours))} | {f(res.get(theirs))} | {r} | {target} |")

    row("BiLSTM 3×320 + output layer, T=1000, batch 64, host to host", "gpu_bilstm_b64_ms",
        "gpu_torch_bilstm_b64_ms", "gpu_bilstm_throughput_ratio_b64", "≥ 0.5×")
    row("same, batch 1 (latency)", "gpu_bilstm_b1_ms", "gpu_torch_bilstm_b1_ms", "gpu_bilstm_latency_ratio_b1",
        "≥ 0.5× (≤ 2× cuDNN)")
    row("CTC loss + gradient, B=16, T=500, V=30", "gpu_ctc_ms", "gpu_torch_ctc_ms", "gpu_ctc_speedup_vs_torch",
        "≥ 0.5×")
    row("training step, B=16, T=500 (ours: + host Adam)", "gpu_train_step_ms", "gpu_torch_train_step_ms",
        "gpu_train_step_speedup_vs_torch", "")
    nan = float("nan")
    verdict = {True: "passed", False: "FAILED"}.get(res.get("checks_passed"), "not run")
    worst = max([v for k, v in res.items() if k.endswith("_rel_err")] or [nan])
    lines += ["", f"Achieved {res.get('gpu_bilstm_tflops_b64', nan):.2f} TFLOP/s at batch 64 against a measured "
              f"FP32 FMA peak of {res.get('gpu_peak_fp32_tflops', nan):.1f} TFLOP/s (torch FP32 matmul "
              f"{res.get('gpu_torch_matmul_tflops', nan):.1f}); recurrence designs used: batch 1 "
              f"{res.get('gpu_bilstm_b1_recurrence')}, batch 64 {res.get('gpu_bilstm_b64_recurrence')}.",
              f"Checks at these sizes: {verdict} (largest relative error {worst:.1e})."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    ap.add_argument("--checks-only", action="store_true", help="correctness checks only")
    ap.add_argument("--bench-only", action="store_true", help="benchmarks only")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (smoke test, e.g. under the simulator)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ptx", action="store_true", help="compile-only check of every kernel (no GPU needed)")
    args = ap.parse_args(argv)
    if args.ptx:
        res = compile_all_ptx()
        for name, r in res.items():
            print(f"{name:24s} " + "  ".join(f"{k} {v}" for k, v in r.items()))
        if args.json:
            print(json.dumps(res, sort_keys=True))
        return 0
    from speechlstm.errors import DeviceError

    try:
        res = run(tiny=args.tiny, checks=not args.bench_only, bench=not args.checks_only, repeats=args.repeats)
    except DeviceError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    print(f"GPU check  {res['date']}  {res.get('device')}  numba {res['numba']} ({res['numba_cuda']})")
    for k, v in res.items():
        if k.startswith("check_"):
            print(f"  {k:52s} {v}")
    for label, key, target in TARGETS:
        v = res.get(key)
        print(f"{label:52s} {f'{v:.3f}' if isinstance(v, float) else 'skipped':>10s}  {target}")
    for k, v in res.items():
        if k.endswith("_note"):
            print(f"note: {k}: {v}")
    if args.markdown:
        print(markdown(res))
    if args.json:
        print(json.dumps(res, sort_keys=True, default=str))
    return 0 if res.get("checks_passed", True) else 1


if __name__ == "__main__":
    sys.exit(main())
