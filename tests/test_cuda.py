"""The numba.cuda backend: every kernel against the CPU kernels under Numba's CUDA simulator, and device choice.

The simulator must be switched on before Numba is imported, so the kernel checks run once in a subprocess
(``tests/cuda_sim_checks.py`` with ``NUMBA_ENABLE_CUDASIM=1``, tiny shapes) and the tests below assert on what
it measured.  The rest of this session keeps the real ``numba.cuda`` (no GPU here: ``--device cuda`` must
fail with one line).  On a machine with a GPU, ``tools/gpu_check.py`` runs the same comparisons at real sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

REL = 1e-4  # relative agreement asked of the GPU log-probabilities and gradients


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda_sim") / "results.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    p = subprocess.run([sys.executable, str(HERE / "cuda_sim_checks.py"), str(out)], env=env, capture_output=True,
                       text=True, timeout=1200, cwd=str(REPO))
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def _part(sim, name):
    r = sim[name]
    assert "error" not in r, r.get("traceback", r.get("error"))
    return r


def test_gemm_and_elementwise_kernels(sim):
    r = _part(sim, "gemm")
    for key in ("gemm", "gemm_ta", "gemm_strided", "colsum"):
        assert r[key] < 1e-5, (key, r[key])
    assert r["mul"] == 0.0 and r["fill"] == 0.0


def test_stack_frames_kernel(sim):
    r = _part(sim, "stack")
    assert r["stack"] == 0.0
    assert r["lengths"] == [3, 2, 1]


@pytest.mark.parametrize("mode", ["persistent", "persistent-steps", "batched"])
def test_acoustic_model_on_gpu_matches_cpu(sim, mode):
    r = _part(sim, "inference")
    assert r[mode + "_used"] == mode
    assert r[mode + "_shapes"]
    assert r[mode] < REL


def test_device_buffers_are_reused(sim):
    r = _part(sim, "inference")
    assert r["reuse"] < REL
    assert r["new_buffers"] == 0  # a smaller second call reuses the device buffers


def test_greedy_decoding_on_device_matches_cpu(sim):
    r = _part(sim, "inference")
    assert r["greedy_same_tokens"]
    assert r["greedy_scores"] < REL


def test_ctc_loss_and_gradient_match_cpu(sim):
    r = _part(sim, "ctc")
    assert r["loss"] < 1e-6
    assert r["inf_same"] and r["infeasible_grad_zero"]
    assert r["grad"] < 1e-6


@pytest.mark.parametrize("mode", ["persistent", "batched"])
def test_training_forward_backward_matches_cpu(sim, mode):
    r = _part(sim, "training")
    assert r[mode + "_used"] == mode
    assert r[mode + "_keys"]
    assert r[mode + "_inf_same"]
    assert r[mode + "_loss"] < 1e-5
    assert r[mode + "_grad"] < REL
    assert r["log_probs"] < REL and r["log_probs_lengths"]


def test_recognizer_on_cuda_gives_the_cpu_transcript(sim):
    r = _part(sim, "recognizer")
    assert r["on_gpu"]
    assert r["cpu_text"] == "a a a"
    assert r["gpu_text"] == r["cpu_text"]
    assert r["words_same"] and r["times_same"]
    assert r["log_probs"] < REL and r["calls"] == 1
    assert r["auto_device"] == "cuda"  # the user set NUMBA_ENABLE_CUDASIM: auto takes it


def test_trainer_gpu_step_equals_cpu_step(sim):
    r = _part(sim, "trainer")
    assert r["device"] == "cuda"
    assert r["steps"] == [1, 1]
    assert r["loss_value"] > 0 and r["loss"] < 1e-5
    assert r["grad_norm_value"] > 0 and r["grad_norm"] < 1e-4
    # Adam's first step is lr * sign(g) almost everywhere: the updates must agree to rounding
    assert r["update_max_abs_diff_over_lr"] < 1e-3


# ---------------------------------------------------------------- without the simulator
def _no_gpu():
    from speechlstm.gpu import cuda_available

    return not cuda_available()


def test_unknown_device_is_an_error():
    from speechlstm.errors import DeviceError
    from speechlstm.transcribe import resolve_device

    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(not _no_gpu(), reason="a CUDA GPU is present")
def test_cuda_without_gpu_is_one_line_error(tmp_path, burst_model_dir, burst_wav):
    from speechlstm.errors import DeviceError
    from speechlstm.transcribe import Recognizer, resolve_device

    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match=r"^device 'cuda': no CUDA GPU is available"):
        Recognizer(burst_model_dir, device="cuda")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    p = subprocess.run([sys.executable, "-m", "speechlstm", "transcribe", str(burst_wav), "--model",
                        str(burst_model_dir), "--device", "cuda"], capture_output=True, text=True, env=env)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert lines == ["speechlstm: error: device 'cuda': no CUDA GPU is available (numba.cuda.is_available() is "
                     "False); use --device cpu"]
    # training: the same message, exit status 1, before any work
    p = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "--recipe",
                        str(REPO / "recipes" / "tiny.json"), "--run-dir", str(tmp_path / "run"), "--device", "cuda"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith("error: device 'cuda': no CUDA GPU is available")
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.skipif(not _no_gpu(), reason="a CUDA GPU is present")
def test_auto_probe_does_not_import_numba_cuda():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys; from speechlstm.transcribe import resolve_device; d = resolve_device('auto'); "
            "print(d, 'numba.cuda' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["cpu", "False"]


def test_step_weight_packing_layout():
    from speechlstm.kernels import cuda_lstm as K

    H = K.STEP_BU + 3  # a partial unit tile
    w = np.arange(2 * 4 * H * H, dtype=np.float32).reshape(2, 4 * H, H)
    P = K.pack_step_weights(w)
    Hp = -(-H // K.STEP_BU) * K.STEP_BU
    assert P.shape == (2, H, 4 * Hp)
    for d, g, u, k in ((0, 0, 0, 0), (1, 3, H - 1, 2), (0, 2, K.STEP_BU, H - 1)):
        col = (u // K.STEP_BU) * 4 * K.STEP_BU + g * K.STEP_BU + u % K.STEP_BU
        assert P[d, k, col] == w[d, g * H + u, k]
    assert np.count_nonzero(P) == np.count_nonzero(w)  # padded units are zero columns


def test_kernels_compile_for_the_cuda_target():
    """The simulator runs kernels as Python: compile each one for a real GPU (sm_90 PTX through the CUDA toolkit's
    NVVM, assembled by ptxas) to catch what only the CUDA target rejects.  Needs the toolkit, not a GPU."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    p = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--ptx", "--json"], capture_output=True,
                       text=True, env=env, timeout=900)
    if p.returncode != 0 and ("NVVM" in p.stderr or "nvvm" in p.stderr) and "cannot be found" in p.stderr:
        pytest.skip("no CUDA toolkit (libNVVM) on this machine")
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(res) == 14
    for name, r in res.items():
        assert r["ptx_chars"] > 1000, name
        if "spill_bytes" in r:  # ptxas found: register tiles stay in registers
            assert r["spill_bytes"] == 0 and r["stack_bytes"] == 0, (name, r)
