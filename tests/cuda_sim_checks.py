"""Checks of the numba.cuda kernels against the CPU kernels, run by ``tests/test_cuda.py`` in a subprocess with
``NUMBA_ENABLE_CUDASIM=1`` (the variable must be set before Numba is imported, so not in the test process).

``python tests/cuda_sim_checks.py OUT.json [CHECK ...]`` writes ``{check: {measure: value}}``; the test module
asserts on the values.  Shapes are tiny: the simulator runs one Python thread per CUDA thread.  Importing this
module does nothing (pytest's doctest collection imports every file under tests/).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rel(a, b):
    import numpy as np

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0


def check_gemm():
    """gemm_kernel (plain, transposed A, strided views, bias), colsum, mul, fill against NumPy."""
    import numpy as np
    from numba import cuda

    from speechlstm.gpu import GpuEngine

    eng = GpuEngine()
    rng = np.random.default_rng(0)
    A = rng.standard_normal((11, 7)).astype(np.float32)
    Bm = rng.standard_normal((7, 10)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    C = cuda.device_array((11, 10), np.float32)
    eng.gemm(cuda.to_device(A), cuda.to_device(Bm), C, 11, 10, 7, bias=cuda.to_device(bias))
    out = {"gemm": _rel(C.copy_to_host(), A @ Bm + bias)}
    At = np.ascontiguousarray(A.T)  # (7, 11): op(A) = At.T
    C2 = cuda.device_array((11, 10), np.float32)
    eng.gemm(cuda.to_device(At), cuda.to_device(Bm), C2, 11, 10, 7, ta=True)
    out["gemm_ta"] = _rel(C2.copy_to_host(), A @ Bm)
    big = rng.standard_normal((9, 12)).astype(np.float32)
    dbig = cuda.to_device(big)
    C3 = cuda.device_array((4, 5), np.float32)  # big[2:9, 1:5].T @ big[2:9, 6:11]
    eng.gemm(dbig[2:9, 1:5], dbig[2:9, 6:11], C3, 4, 5, 7, ta=True)
    out["gemm_strided"] = _rel(C3.copy_to_host(), big[2:9, 1:5].T @ big[2:9, 6:11])
    s = cuda.device_array(12, np.float32)
    eng.colsum(dbig, 9, 12, s)
    out["colsum"] = _rel(s.copy_to_host(), big.sum(0))
    m = rng.standard_normal((9, 12)).astype(np.float32)
    o = cuda.device_array((9, 12), np.float32)
    eng.mul(dbig, cuda.to_device(m), 9, 12, out=o)
    out["mul"] = _rel(o.copy_to_host(), big * m)
    eng.fill(o, 2.5)
    out["fill"] = _rel(o.copy_to_host(), np.full((9, 12), 2.5))
    return out


def check_stack():
    """stack_frames_kernel against kernels.lstm.stack_frames (time-major)."""
    import numpy as np
    from numba import cuda

    from speechlstm.gpu import GpuEngine
    from speechlstm.kernels.lstm import stack_frames

    eng = GpuEngine()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, 4)).astype(np.float32)
    lengths = np.array([7, 5, 2], np.int32)
    ref, n = stack_frames(x, lengths, 3)
    X = cuda.device_array((3 * 3, 12), np.float32)
    eng.stack(cuda.to_device(x), cuda.to_device(lengths), 3, 3, X)
    got = X.copy_to_host().reshape(3, 3, 12).transpose(1, 0, 2)
    return {"stack": _rel(got, ref), "lengths": n.tolist()}


def _model(H=5, layers=2, k=2, seed=1):
    from speechlstm.model import AcousticModel, ModelConfig, random_weights

    cfg = ModelConfig.example(hidden_size=H, num_layers=layers, frame_stacking=k)
    return AcousticModel(cfg, random_weights(cfg, seed=seed, scale=0.5))


def check_inference():
    """Whole acoustic model (stacking, input projections, each recurrence design, output layer, log-softmax)
    and greedy decoding on the device against the CPU."""
    import numpy as np

    from speechlstm.decoding import greedy_decode
    from speechlstm.gpu import CudaAcousticModel

    m = _model()
    rng = np.random.default_rng(0)
    D = m.config.architecture.input_dim
    feats = [rng.standard_normal((n, D)).astype(np.float32) for n in (7, 4, 1)]
    ref = m.log_probs(feats)
    out = {}
    for mode, blocks in (("persistent", None), ("persistent-steps", 2), ("batched", None)):
        g = CudaAcousticModel(m, recurrence=mode, persist_blocks=blocks)
        lp = g.log_probs(feats)
        out[mode] = max(_rel(a, b) for a, b in zip(lp, ref))
        out[mode + "_shapes"] = all(a.shape == b.shape for a, b in zip(lp, ref))
        out[mode + "_used"] = g.engine.last_recurrence
        if mode == "persistent":
            # buffers are reused: a second, smaller call gives the same numbers and allocates nothing new
            n_bufs = len(g.engine._bufs)
            lp2 = g.log_probs(feats[1:2])
            out["reuse"] = _rel(lp2[0], ref[1])
            out["new_buffers"] = len(g.engine._bufs) - n_bufs
    hyps = g.greedy_decode(feats)
    same = True
    score = 0.0
    for h, r in zip(hyps, ref):
        c = greedy_decode(r)
        same &= h.token_ids.tolist() == c.token_ids.tolist() and h.frames.tolist() == c.frames.tolist()
        score = max(score, abs(h.score - c.score) / max(1.0, abs(c.score)))
        score = max(score, _rel(h.token_scores, c.token_scores))
    out["greedy_same_tokens"] = bool(same)
    out["greedy_scores"] = score
    return out


def check_ctc():
    """CTC loss and gradient against kernels.ctc_loss.ctc_loss_and_grad (repeats, an infeasible utterance,
    an empty label sequence, padded frames)."""
    import numpy as np
    from numba import cuda

    from speechlstm.gpu import GpuEngine
    from speechlstm.kernels.ctc_loss import ctc_loss_and_grad

    eng = GpuEngine()
    rng = np.random.default_rng(2)
    B, T, V = 4, 6, 5
    logits = (rng.standard_normal((B, T, V)) * 2).astype(np.float32)
    lengths = np.array([6, 5, 2, 3], np.int32)
    labels = np.array([[1, 2, 2], [3, 1, 0], [4, 4, 4], [0, 0, 0]], np.int32)
    ll = np.array([3, 2, 3, 0], np.int32)
    ref_l, ref_g = ctc_loss_and_grad(logits, lengths, labels, ll, blank=0)
    tm = np.ascontiguousarray(logits.transpose(1, 0, 2).reshape(T * B, V))
    losses, g = eng.ctc(cuda.to_device(tm), cuda.to_device(lengths), cuda.to_device(labels), cuda.to_device(ll),
                        B, T, V, 7, 0)
    gl = losses.copy_to_host()
    gg = g.copy_to_host().reshape(T, B, V).transpose(1, 0, 2)
    fin = np.isfinite(ref_l)
    return {"loss": _rel(gl[fin], ref_l[fin]), "inf_same": bool(np.array_equal(np.isinf(gl), np.isinf(ref_l))),
            "grad": float(np.max(np.abs(gg - ref_g))), "infeasible_grad_zero": bool(np.all(gg[2] == 0))}


def check_training():
    """GpuNetwork.forward_backward (dropout, unequal lengths, an infeasible utterance) against
    network.forward_backward, with the persistent and the batched forward recurrence; forward_log_probs."""
    import numpy as np

    from speechlstm.gpu import GpuNetwork
    from speechlstm.model import ModelConfig
    from speechlstm.network import forward_backward, forward_log_probs, init_params

    cfg = ModelConfig.example(hidden_size=4, num_layers=2, frame_stacking=2)
    params = init_params(cfg, seed=3)
    rng = np.random.default_rng(0)
    B, T = 3, 9
    feats = rng.standard_normal((B, T, cfg.architecture.input_dim)).astype(np.float32)
    lengths = np.array([9, 6, 3])
    labels = np.array([[3, 4, 4], [5, 6, 0], [7, 7, 7]], np.int32)
    ll = np.array([3, 2, 3])  # the third cannot fit its 2 output frames
    ref_l, ref_g = forward_backward(params, cfg, feats, lengths, labels, ll, dropout=0.3,
                                    rng=np.random.default_rng(5))
    out = {}
    for mode in ("persistent", "batched"):
        net = GpuNetwork(recurrence=mode)
        l, g = net.forward_backward(params, cfg, feats, lengths, labels, ll, dropout=0.3, rng=np.random.default_rng(5))
        fin = np.isfinite(ref_l)
        out[mode + "_loss"] = _rel(l[fin], ref_l[fin])
        out[mode + "_inf_same"] = bool(np.array_equal(np.isinf(l), np.isinf(ref_l)))
        out[mode + "_grad"] = max(float(np.max(np.abs(g[k] - ref_g[k])) / max(1e-6, np.max(np.abs(ref_g[k]))))
                                  for k in ref_g)
        out[mode + "_keys"] = sorted(g) == sorted(ref_g) and all(g[k].shape == ref_g[k].shape for k in g)
        out[mode + "_used"] = net.engine.last_recurrence
    lp_c, n_c = forward_log_probs(params, cfg, feats, lengths)
    lp_g, n_g = net.forward_log_probs(params, cfg, feats, lengths)
    out["log_probs"] = _rel(lp_g, lp_c)
    out["log_probs_lengths"] = n_g.tolist() == n_c.tolist()
    return out


def check_recognizer():
    """Recognizer(device='cuda') on the burst model of tests/conftest.py: the CPU's transcript."""
    import tempfile

    import numpy as np

    sys.path.insert(0, str(HERE))
    from conftest import SR, burst_audio, burst_weights

    from speechlstm import Recognizer
    from speechlstm.gpu import CudaAcousticModel
    from speechlstm.model import ModelConfig, save_model

    cfg = ModelConfig.example(hidden_size=4, num_layers=1)
    cfg.name = "burst-test"
    d = tempfile.mkdtemp()
    save_model(d, cfg, burst_weights(cfg))
    x = burst_audio()
    cpu_rec = Recognizer(d, device="cpu", beam_width=1)
    cpu = cpu_rec.transcribe(x, sample_rate=SR)
    rec = Recognizer(d, device="cuda", beam_width=1)
    seen = []  # what the GPU model was asked and answered during transcribe
    gpu_log_probs = rec.model.log_probs
    rec.model.log_probs = lambda feats: seen.append((feats, gpu_log_probs(feats))) or seen[-1][1]
    gpu = rec.transcribe(x, sample_rate=SR)
    feats, lp_g = seen[0]
    lp_c = cpu_rec.model.log_probs(feats)
    return {"cpu_text": cpu.text, "gpu_text": gpu.text, "on_gpu": isinstance(rec.model, CudaAcousticModel),
            "auto_device": Recognizer(d).device, "log_probs": max(_rel(a, b) for a, b in zip(lp_g, lp_c)),
            "calls": len(seen),
            "words_same": [w.word for w in gpu.words] == [w.word for w in cpu.words],
            "times_same": bool(np.allclose([w.start for w in gpu.words], [w.start for w in cpu.words]))}


def check_trainer():
    """One Trainer step on device='cuda' against one on 'cpu' (same recipe, data, seed)."""
    import tempfile

    import numpy as np
    import soundfile as sf

    from speechlstm.trainer import Trainer

    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(4)
    with open(root / "train.jsonl", "w", encoding="utf-8") as f:
        for i, text in enumerate(("ab", "ba")):
            n = int(0.28 * 16000)
            x = (rng.standard_normal(n) * 0.1).astype(np.float32)
            sf.write(root / f"{i}.flac", x, 16000, subtype="PCM_16")
            f.write(json.dumps({"id": str(i), "audio": f"{i}.flac", "text": text, "duration": n / 16000}) + "\n")
    recipe = {"name": "t", "seed": 1,
              "model": {"hidden_size": 4, "num_layers": 2, "frame_stacking": 3, "features": {"n_mels": 13},
                        "normalization": "utterance"},
              "data": {"train": [[str(root / "train.jsonl"), 1.0]], "batch_frames": 200, "max_batch": 2,
                       "num_workers": 0, "max_duration": 5.0},
              "optim": {"lr": 0.01, "warmup_steps": 0, "dropout": 0.2},
              "run": {"epochs": 1, "checkpoint_minutes": 60.0}}
    res = {}
    for device in ("cpu", "cuda"):
        tr = Trainer(recipe, root / f"run_{device}", verbose=False, device=device)
        p0 = {k: v.copy() for k, v in tr.params.items()}
        tr.train(max_steps=1)
        res[device] = (tr, {k: tr.params[k] - p0[k] for k in p0})
    (c, dc), (g, dg) = res["cpu"], res["cuda"]
    diff = np.concatenate([(dg[k] - dc[k]).ravel() for k in dc])
    return {"device": g.device, "steps": [c.state["step"], g.state["step"]],
            "loss": _rel(g._last_loss, c._last_loss),
            "loss_value": c._last_loss,
            "grad_norm": _rel(float(g.state["history"][-1]["grad_norm"]), float(c.state["history"][-1]["grad_norm"])),
            "grad_norm_value": float(c.state["history"][-1]["grad_norm"]),
            "update_max_abs_diff_over_lr": float(np.max(np.abs(diff)) / 0.01),
            "update_mean_abs_diff_over_lr": float(np.mean(np.abs(diff)) / 0.01)}


CHECKS = {"gemm": check_gemm, "stack": check_stack, "inference": check_inference, "ctc": check_ctc,
          "training": check_training, "recognizer": check_recognizer, "trainer": check_trainer}


def main(argv):
    # the simulator's block barriers poll for threads that wait on an event: switch threads often
    sys.setswitchinterval(5e-5)
    from numba.core import config

    if not config.ENABLE_CUDASIM:
        raise SystemExit("run with NUMBA_ENABLE_CUDASIM=1")
    out_path, names = argv[0], argv[1:] or list(CHECKS)
    results = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            results[name] = CHECKS[name]()
        except Exception as exc:  # reported to the test, which fails with the message
            import traceback

            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        results[name]["seconds"] = round(time.perf_counter() - t0, 2)
    Path(out_path).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
