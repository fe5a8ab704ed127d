"""GPU backend (``numba.cuda``): device detection, the acoustic model on the GPU, and GPU training steps.

Nothing here imports ``numba.cuda`` at module import: :func:`cuda_available` first looks for an NVIDIA driver
(cheap file checks) and only then asks ``numba.cuda.is_available()``; the kernels
(:mod:`speechlstm.kernels.cuda_lstm`, :mod:`speechlstm.kernels.cuda_ctc`, design described there) are
imported when a GPU object is created.  Setting ``NUMBA_ENABLE_CUDASIM=1`` before Python starts runs
everything in Numba's CUDA simulator (slow: for tests on tiny shapes).

* :class:`CudaAcousticModel` -- an :class:`~speechlstm.model.AcousticModel` whose :meth:`log_probs` runs on
  the GPU: weights uploaded once, device buffers kept and reused across calls (grown when a batch is
  larger), and the only host-device copies per call are the features in and the log-probabilities (or,
  with :meth:`CudaAcousticModel.greedy_decode`, the decoded tokens) out.
* :class:`GpuNetwork` -- ``forward_backward`` with the signature and results of
  :func:`speechlstm.network.forward_backward` (the trainer's step on ``--device cuda``); parameters go up and
  gradients come back per step (the optimizer stays on the host, where checkpoints live).

Recurrence designs (``recurrence=``): ``"persistent"`` (one cooperative launch per layer, weights kept in
shared memory, grid-wide barrier between steps; batches up to ``PERSIST_MAXB`` rows), ``"batched"`` (one
launch per step, tiled product with the cell fused), ``"persistent-steps"`` (the persistent step body, one
launch per step: the fallback that needs no cooperative launch), ``"auto"`` (persistent for small batches
when the cooperative grid fits on the device, else batched).  :attr:`GpuEngine.last_recurrence` tells which
one ran.
"""

from __future__ import annotations

import glob
import os
import threading

import numpy as np

from .errors import DeviceError
from .model import AcousticModel

__all__ = ["cuda_available", "require_cuda", "CudaAcousticModel", "on_gpu", "GpuNetwork", "GpuEngine",
           "NO_GPU_MESSAGE"]

NO_GPU_MESSAGE = ("device 'cuda': no CUDA GPU is available (numba.cuda.is_available() is False); "
                  "use --device cpu")
RECURRENCES = ("auto", "persistent", "persistent-steps", "batched")

_probe_lock = threading.Lock()
_probe_result: bool | None = None


def _simulator_requested() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "").strip() not in ("", "0")


def _driver_present() -> bool:
    """Cheap look for an NVIDIA driver (device nodes, /proc entry or the driver library) without loading it."""
    if os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version"):
        return True
    if os.path.exists("/usr/lib/wsl/lib/libcuda.so") or os.path.exists("/usr/lib/wsl/lib/libcuda.so.1"):
        return True
    pats = ("/usr/lib/x86_64-linux-gnu/libcuda.so*", "/usr/lib/aarch64-linux-gnu/libcuda.so*",
            "/usr/lib64/libcuda.so*", "/usr/lib/libcuda.so*")
    if any(glob.glob(p) for p in pats):
        return True
    lib = os.environ.get("NUMBA_CUDA_DRIVER")
    return bool(lib) and os.path.exists(lib)


def cuda_available() -> bool:
    """Whether the GPU backend can run here: ``numba.cuda.is_available()``, asked only where an NVIDIA driver
    is installed (so a machine without one never imports ``numba.cuda``), or where the user set
    ``NUMBA_ENABLE_CUDASIM`` (Numba's CUDA simulator).  The answer is cached.

    Examples
    --------
    >>> isinstance(cuda_available(), bool)
    True
    """
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            ok = False
            if _simulator_requested() or _driver_present():
                try:
                    from numba import cuda

                    ok = bool(cuda.is_available())
                except Exception:  # a broken driver or toolkit: the CPU it is
                    ok = False
            _probe_result = ok
        return _probe_result


def require_cuda() -> None:
    """Raise :class:`~speechlstm.errors.DeviceError` (one line) unless :func:`cuda_available`.

    Examples
    --------
    >>> try:
    ...     require_cuda()
    ... except DeviceError as exc:
    ...     print(str(exc).startswith("device 'cuda'"))
    ... else:
    ...     print(True)
    True
    """
    if not cuda_available():
        raise DeviceError(NO_GPU_MESSAGE)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------- the engine: buffers and launches
class GpuEngine:
    """A CUDA stream, a pool of reusable device buffers and the kernel launches of the network.

    Parameters
    ----------
    recurrence : {"auto", "persistent", "persistent-steps", "batched"}
        Recurrence design (module docstring).
    persist_blocks : int, optional
        Blocks per direction of the persistent designs (default: the fewest whose weight slices fit in
        shared memory; under the simulator 1).  Tests use it to exercise the multi-block split.

    Examples
    --------
    >>> eng = GpuEngine(recurrence="batched")       # doctest: +SKIP
    >>> eng.buf("Z", (4, 8)).shape                  # doctest: +SKIP
    (4, 8)
    """

    def __init__(self, recurrence: str = "auto", persist_blocks: int | None = None):
        require_cuda()
        if recurrence not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {', '.join(RECURRENCES)}, got {recurrence!r}")
        from numba import cuda

        from .kernels import cuda_ctc, cuda_lstm

        self.cuda = cuda
        self.KL = cuda_lstm
        self.KC = cuda_ctc
        self.sim = cuda_lstm.SIMULATOR
        self.recurrence = recurrence
        self.persist_blocks = persist_blocks
        self.stream = cuda.stream()
        self.lock = threading.RLock()
        self._bufs: dict = {}
        self._coop: dict = {}
        #: why the cooperative persistent kernel could not be used (None: it could, or was not tried)
        self.coop_error: str | None = None
        #: the recurrence design used by the last forward pass
        self.last_recurrence: str | None = None
        self._dummy = cuda.device_array(1, np.float32)

    # ------------------------------------------------------------ buffers
    def buf(self, name: str, shape, dtype=np.float32):
        """A device array of ``shape`` backed by the pooled buffer ``name`` (reallocated only to grow)."""
        shape = tuple(int(s) for s in shape)
        n = int(np.prod(shape)) if shape else 1
        b = self._bufs.get(name)
        if b is None or b.size < n or b.dtype != np.dtype(dtype):
            b = self.cuda.device_array(max(1, n + n // 4), dtype)
            self._bufs[name] = b
        return b[:n].reshape(shape) if shape else b[:1]

    def upload(self, name: str, host: np.ndarray, dtype=np.float32):
        """Copy a host array into the pooled buffer ``name`` (on the engine's stream)."""
        host = np.ascontiguousarray(host, dtype=dtype)
        d = self.buf(name, host.shape if host.ndim else (1,), dtype)
        if host.size:
            d.copy_to_device(host.reshape(d.shape), stream=self.stream)
        return d

    def device_bytes(self) -> int:
        """Bytes held by the buffer pool."""
        return int(sum(b.size * b.dtype.itemsize for b in self._bufs.values()))

    def synchronize(self) -> None:
        self.stream.synchronize()

    # ------------------------------------------------------------ launch helpers
    def _grid(self, n: int, threads: int) -> int:
        """Blocks for a grid-stride kernel over ``n`` items (capped; two blocks under the simulator)."""
        return max(1, min(_cdiv(n, threads), 2 if self.sim else 8192))

    def fill(self, a, value=0.0) -> None:
        flat = a.reshape(a.size) if a.ndim != 1 else a
        n = flat.size
        if n:
            t = self.KL.ELEM_THREADS
            self.KL.fill_kernel[self._grid(n, t), t, self.stream](flat, n, value)

    def gemm(self, A, Bm, C, M: int, N: int, K: int, bias=None, ta: bool = False) -> None:
        """``C[:M, :N] = op(A) @ Bm (+ bias)`` (``op(A) = A.T`` with ``ta``)."""
        if M == 0 or N == 0:
            return
        KL = self.KL
        tiles = _cdiv(M, KL.GEMM_BM) * _cdiv(N, KL.GEMM_BN)
        blocks = min(tiles, 2) if self.sim else tiles
        KL.gemm_kernel[blocks, KL.GEMM_THREADS, self.stream](A, 1 if ta else 0, Bm,
                                                             self._dummy if bias is None else bias,
                                                             0 if bias is None else 1, C, M, N, K)

    def colsum(self, A, M: int, N: int, out) -> None:
        """``out[:N] = A[:M, :N].sum(0)``."""
        self.fill(out, 0.0)
        if M == 0:
            return
        t = self.KL.ELEM_THREADS
        chunks = 1 if self.sim else max(1, min(64, M // 256))
        self.KL.colsum_kernel[(_cdiv(N, t), chunks), t, self.stream](A, M, N, out)

    def mul(self, A, Mk, R: int, N: int, out=None) -> None:
        """``out[:R, :N] = A * Mk`` element-wise (in place when ``out`` is omitted)."""
        if R * N:
            t = self.KL.ELEM_THREADS
            self.KL.mul_kernel[self._grid(R * N, t), t, self.stream](A, Mk, A if out is None else out, R, N)

    def stack(self, feats_d, lengths_d, k: int, T2: int, X) -> None:
        n = X.shape[0] * X.shape[1]
        t = self.KL.ELEM_THREADS
        self.KL.stack_frames_kernel[self._grid(n, t), t, self.stream](feats_d, lengths_d, k, T2, X)

    # ------------------------------------------------------------ recurrence
    def _specialized(self, kernel, args):
        """``kernel`` specialized to the types of ``args`` (Numba caches it): launches in the per-step loops
        then skip the per-call type dispatch (the simulator has nothing to specialize)."""
        return kernel if self.sim else kernel.specialize(*args)

    def _persistent_plan(self, B: int, H: int):
        KL = self.KL
        threads = KL.PERSIST_THREADS
        if self.persist_blocks is not None:
            nblk = max(1, min(H, int(self.persist_blocks)))
        elif self.sim:
            nblk = 1
        else:
            limit = 48 * 1024 // 4  # float32 words of dynamic shared memory without opt-in
            nblk = next((n for n in range(1, H + 1)
                         if KL.persistent_smem_floats(B, H, _cdiv(H, n), threads) <= limit), H)
        U = _cdiv(H, nblk)
        nblk = _cdiv(H, U)
        return nblk, U, threads, 4 * KL.persistent_smem_floats(B, H, U, threads)

    def _coop_fits(self, args, nblk: int, threads: int, smem: int) -> bool:
        """Can ``2 * nblk`` blocks of the cooperative kernel be co-resident? (occupancy API; cached)."""
        if self.sim:
            return True  # blocks run one after another there; one block per direction (see cuda_lstm)
        key = (nblk, threads, smem)
        if key not in self._coop:
            try:
                spec = self._specialized(self.KL.lstm_persistent_kernel, args)
                kern = next(iter(spec.overloads.values()))
                maxb = kern.max_cooperative_grid_blocks(threads, smem)
                self._coop[key] = 2 * nblk <= maxb
                if not self._coop[key]:
                    self.coop_error = f"cooperative grid of {2 * nblk} blocks does not fit (max {maxb})"
            except Exception as exc:  # no grid-group support (e.g. cudadevrt not found)
                self._coop[key] = False
                self.coop_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        return self._coop[key]

    def recurrence_forward(self, Z, Y, C, train: bool, W, WP, lengths_d, T: int, B: int, H: int,
                           mode: str | None = None) -> str:
        """Run one layer's recurrence (both directions); returns the design used."""
        KL = self.KL
        mode = mode or self.recurrence
        cst = self.buf("cst", (2, B, H))
        self.fill(cst, 0.0)
        tr = 1 if train else 0
        Cx = C if train else Y  # not written when tr == 0
        if mode == "auto":
            mode = "persistent" if B <= KL.PERSIST_MAXB else "batched"
        if mode in ("persistent", "persistent-steps") and B > KL.PERSIST_MAXB:
            raise ValueError(f"the persistent recurrence handles at most {KL.PERSIST_MAXB} utterances per batch")
        if mode == "persistent":
            nblk, U, threads, smem = self._persistent_plan(B, H)
            args = (Z, Y, Cx, tr, W, cst, lengths_d, T, B, H, U, nblk, 0, T)
            if self._coop_fits(args, nblk, threads, smem):
                try:
                    kern = self._specialized(KL.lstm_persistent_kernel, args)
                    kern[2 * nblk, threads, self.stream, smem](*args)
                    self.last_recurrence = "persistent"
                    return "persistent"
                except Exception as exc:  # cooperative launch refused: use the per-step design from now on
                    if self.sim:
                        raise
                    self.coop_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                    self._coop[(nblk, threads, smem)] = False
                    self.fill(cst, 0.0)
            mode = "batched"
        if mode == "persistent-steps":
            nblk, U, threads, smem = self._persistent_plan(B, H)
            kern = self._specialized(KL.lstm_persistent_step_kernel, (Z, Y, Cx, tr, W, cst, lengths_d, T, B, H, U,
                                                                      nblk, 0))
            for s in range(T):
                kern[2 * nblk, threads, self.stream, smem](Z, Y, Cx, tr, W, cst, lengths_d, T, B, H, U, nblk, s)
        else:
            grid = (_cdiv(H, KL.STEP_BU), _cdiv(B, KL.STEP_BM), 2)
            kern = self._specialized(KL.lstm_step_kernel, (Z, Y, Cx, tr, WP, cst, lengths_d, T, B, H, 0))
            for s in range(T):
                kern[grid, KL.STEP_THREADS, self.stream](Z, Y, Cx, tr, WP, cst, lengths_d, T, B, H, s)
        self.last_recurrence = mode
        return mode

    def recurrence_backward(self, Z, C, dY, W, lengths_d, T: int, B: int, H: int) -> None:
        """BPTT of one layer (both directions): ``Z`` activations in, ``dZ`` out."""
        KL = self.KL
        dc = self.buf("dcst", (2, B, H))
        self.fill(dc, 0.0)
        grid = (_cdiv(H, KL.STEP_BU), _cdiv(B, KL.STEP_BM), 2)
        kern = self._specialized(KL.lstm_backward_step_kernel, (Z, C, dY, W, dc, lengths_d, T, B, H, 0))
        for s in range(T):
            kern[grid, KL.STEP_THREADS, self.stream](Z, C, dY, W, dc, lengths_d, T, B, H, s)

    # ------------------------------------------------------------ output side
    def log_softmax_out(self, logits, lengths_d, B: int, T: int, V: int):
        """Batch-major log-probabilities (B, T, V) plus per-frame argmax and its value (device arrays)."""
        KC = self.KC
        out = self.buf("lp_out", (B, T, V))
        best = self.buf("best", (B, T), np.int32)
        bestv = self.buf("bestv", (B, T))
        t = KC.ROW_THREADS
        KC.log_softmax_out_kernel[self._grid(B * T, t), t, self.stream](logits, lengths_d, B, out, best, bestv)
        return out, best, bestv

    def greedy(self, best, bestv, lengths_d, B: int, T: int, blank: int):
        """Collapse per-frame argmaxes into tokens on the device; returns host arrays."""
        KC = self.KC
        tokens = self.buf("g_tokens", (B, T), np.int32)
        frames = self.buf("g_frames", (B, T), np.int32)
        scores = self.buf("g_scores", (B, T))
        counts = self.buf("g_counts", (B,), np.int32)
        totals = self.buf("g_totals", (B,), np.float64)
        t = KC.ROW_THREADS
        KC.greedy_collapse_kernel[_cdiv(B, t), t, self.stream](best, bestv, lengths_d, blank, tokens, frames, scores,
                                                               counts, totals)
        n = counts.copy_to_host(stream=self.stream)
        tot = totals.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        tk = tokens.copy_to_host(stream=self.stream)
        fr = frames.copy_to_host(stream=self.stream)
        sc = scores.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return [(tk[b, :n[b]].astype(np.int32), fr[b, :n[b]].astype(np.int32), sc[b, :n[b]].astype(np.float32),
                 float(tot[b])) for b in range(B)]

    def ctc(self, logits, lengths_d, labels_d, label_lengths_d, B: int, T: int, V: int, S_max: int, blank: int,
            with_grad: bool = True):
        """CTC losses (device float64 (B,)) and, with ``with_grad``, the gradient w.r.t. ``logits`` (device
        (T*B, V), time-major)."""
        KC = self.KC
        M = T * B
        lp = self.buf("ctc_lp", (M, V))
        g = self.buf("ctc_grad", (M, V))
        t = KC.ROW_THREADS
        KC.log_softmax_train_kernel[self._grid(M, t), t, self.stream](logits, lengths_d, B, M, lp, g)
        alpha = self.buf("ctc_alpha", (B, T, S_max), np.float64)
        losses = self.buf("ctc_losses", (B,), np.float64)
        nt = KC.CTC_THREADS
        smem = 8 * KC.ctc_smem_doubles(S_max, V, nt)
        KC.ctc_kernel[B, nt, self.stream, smem](lp, lengths_d, labels_d, label_lengths_d, B, blank,
                                                1 if with_grad else 0, alpha, g, losses)
        return losses, g


# ---------------------------------------------------------------- weights in the device layout
def _layer_arrays(weights: dict, layer: int, H: int):
    """Host arrays of one layer: W_ih^T of both directions (In, 8H), bias (8H,), W_hh (2, 4H, H)."""
    wih = np.concatenate([weights[f"lstm.{layer}.fw.w_ih"], weights[f"lstm.{layer}.bw.w_ih"]])  # (8H, In)
    bias = np.concatenate([weights[f"lstm.{layer}.fw.bias"], weights[f"lstm.{layer}.bw.bias"]])
    whh = np.stack([weights[f"lstm.{layer}.fw.w_hh"], weights[f"lstm.{layer}.bw.w_hh"]])
    return (np.ascontiguousarray(wih, np.float32), np.ascontiguousarray(bias, np.float32),
            np.ascontiguousarray(whh, np.float32))


class _DeviceWeights:
    """A network's weights on the device (pooled buffers ``w:*`` of an engine); re-uploadable in place."""

    def __init__(self, eng: GpuEngine, config, weights: dict, training: bool = False):
        self.eng = eng
        self.config = config
        self.training = training
        self.load(weights)

    def load(self, weights: dict) -> None:
        eng, a = self.eng, self.config.architecture
        H = a.hidden_size
        self.layers = []
        for layer in range(a.num_layers):
            wih, bias, whh = _layer_arrays(weights, layer, H)
            p = f"w:{layer}:"
            entry = {
                "wihT": eng.upload(p + "wihT", wih.T),
                "bias": eng.upload(p + "bias", bias),
                "whh": eng.upload(p + "whh", whh),
                "in": wih.shape[1],
            }
            entry["whhP"] = eng.upload(p + "whhP", eng.KL.pack_step_weights(whh))
            if self.training:
                entry["wih"] = eng.upload(p + "wih", wih)
            self.layers.append(entry)
        wo = np.ascontiguousarray(weights["output.weight"], np.float32)
        self.woT = eng.upload("w:outT", wo.T)
        self.bo = eng.upload("w:outb", weights["output.bias"])
        self.wo = eng.upload("w:out", wo) if self.training else None

def _pad_batch(features, D: int):
    lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
    if lengths.size and lengths.min() < 1:
        raise ValueError("every feature matrix needs at least one frame")
    B, T = len(features), int(lengths.max())
    x = np.zeros((B, T, D), dtype=np.float32)
    for b, f in enumerate(features):
        if f.ndim != 2 or f.shape[1] != D:
            raise ValueError(f"features must be (T, {D}), got {f.shape}")
        x[b, : f.shape[0]] = f
    return x, lengths


def _forward(eng: GpuEngine, W: _DeviceWeights, feats: np.ndarray, lengths: np.ndarray, train: bool = False,
             masks=None, mode: str | None = None):
    """Network forward on the device: returns (logits (T2*B, V) device, lengths2 (host), lengths2 device,
    T2, saved per-layer buffers when ``train``)."""
    a = W.config.architecture
    k, H = a.frame_stacking, a.hidden_size
    B, T, D = feats.shape
    T2 = _cdiv(T, k)
    M = T2 * B
    lengths2 = ((lengths.astype(np.int64) + k - 1) // k).astype(np.int32)
    feats_d = eng.upload("in:feats", feats)
    len_d = eng.upload("in:lengths", lengths, np.int32)
    len2_d = eng.upload("in:lengths2", lengths2, np.int32)
    X = eng.buf("X0", (M, D * k))
    eng.stack(feats_d, len_d, k, T2, X)
    saved = []
    for li, L in enumerate(W.layers):
        if train and masks is not None and masks[li] is not None:
            Xm = eng.buf(f"Xm{li}", (M, 2 * H))
            eng.mul(X, eng.upload(f"mask{li}", masks[li]), M, 2 * H, out=Xm)
            X = Xm
        Z = eng.buf(f"Z{li}" if train else "Z", (M, 8 * H))
        Y = eng.buf(f"Y{li}" if train else f"Y{li % 2}", (M, 2 * H))
        C = eng.buf(f"C{li}", (M, 2 * H)) if train else None
        eng.gemm(X, L["wihT"], Z, M, 8 * H, L["in"], bias=L["bias"])
        eng.recurrence_forward(Z, Y, C, train, L["whh"], L["whhP"], len2_d, T2, B, H, mode=mode)
        if train:
            saved.append((X, Z, Y, C))
        X = Y
    V = W.config.num_outputs
    logits = eng.buf("logits", (M, V))
    eng.gemm(X, W.woT, logits, M, V, 2 * H, bias=W.bo)
    return logits, lengths2, len2_d, T2, saved


# ---------------------------------------------------------------- inference
class CudaAcousticModel(AcousticModel):
    """An :class:`~speechlstm.model.AcousticModel` whose BiLSTM, output layer and log-softmax run on the GPU.

    Parameters
    ----------
    model : AcousticModel
        A loaded model (its configuration and weights are shared, not copied, on the host side).
    recurrence : str
        Recurrence design (see the module docstring); ``"auto"`` by default.

    Notes
    -----
    One instance may be used from several threads: calls are serialized on its CUDA stream.  Results equal
    the CPU's to float32 rounding (``1e-4`` relative on the log-probabilities, tested).

    Examples
    --------
    >>> from speechlstm.model import ModelConfig, random_weights
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> m = AcousticModel(cfg, random_weights(cfg, seed=0))
    >>> g = CudaAcousticModel(m)                      # doctest: +SKIP
    >>> lp = g.log_probs([m.featurize(np.zeros(16000, np.float32))])[0]   # doctest: +SKIP
    >>> lp.shape                                      # doctest: +SKIP
    (101, 29)
    """

    def __init__(self, model: AcousticModel, recurrence: str = "auto", persist_blocks: int | None = None):
        self.__dict__.update(model.__dict__)
        self.engine = GpuEngine(recurrence=recurrence, persist_blocks=persist_blocks)
        with self.engine.lock:
            self._dw = _DeviceWeights(self.engine, self.config, self.weights)
            self.engine.synchronize()

    def _run(self, features):
        a = self.config.architecture
        x, lengths = _pad_batch(features, a.input_dim)
        logits, lengths2, len2_d, T2, _ = _forward(self.engine, self._dw, x, lengths)
        return logits, lengths2, len2_d, T2

    def log_probs(self, features) -> list:
        """CTC log-probabilities ``(T', V)`` per feature matrix (as :meth:`AcousticModel.log_probs`), on the GPU."""
        if len(features) == 0:
            return []
        with self.engine.lock:
            logits, lengths2, len2_d, T2 = self._run(features)
            B, V = len(features), self.config.num_outputs
            out, _, _ = self.engine.log_softmax_out(logits, len2_d, B, T2, V)
            host = out.copy_to_host(stream=self.engine.stream)
            self.engine.synchronize()
        return [host[b, : lengths2[b]] for b in range(B)]

    def greedy_decode(self, features) -> list:
        """Greedy CTC decoding on the GPU: one :class:`~speechlstm.decoding.Hypothesis` per feature matrix
        (``text`` filled), equal to :func:`speechlstm.decoding.greedy_decode` of :meth:`log_probs`; only the
        decoded tokens are copied back."""
        from .decoding import Hypothesis, tokens_to_text

        if len(features) == 0:
            return []
        cfg = self.config
        with self.engine.lock:
            logits, lengths2, len2_d, T2 = self._run(features)
            B = len(features)
            _, best, bestv = self.engine.log_softmax_out(logits, len2_d, B, T2, cfg.num_outputs)
            res = self.engine.greedy(best, bestv, len2_d, B, T2, cfg.blank_index)
        out = []
        for tk, fr, sc, total in res:
            h = Hypothesis(tk, fr, sc, total)
            h.text = tokens_to_text(tk, cfg.tokens, blank=cfg.blank_index)
            out.append(h)
        return out


def on_gpu(model: AcousticModel, recurrence: str = "auto") -> CudaAcousticModel:
    """``model`` running on the GPU (:class:`CudaAcousticModel`); raises :class:`DeviceError` without one.

    Examples
    --------
    >>> from speechlstm.model import ModelConfig, random_weights
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> m = on_gpu(AcousticModel(cfg, random_weights(cfg)))   # doctest: +SKIP
    """
    if isinstance(model, CudaAcousticModel):
        return model
    require_cuda()
    return CudaAcousticModel(model, recurrence=recurrence)


# ---------------------------------------------------------------- training
class GpuNetwork:
    """Forward/backward of the network on the GPU: the trainer's step on ``--device cuda``.

    Parameters
    ----------
    recurrence : str
        Design of the forward recurrence (the backward pass uses the batched step kernel).

    Examples
    --------
    >>> net = GpuNetwork()                                   # doctest: +SKIP
    >>> losses, grads = net.forward_backward(params, cfg, feats, lengths, labels, label_lengths)  # doctest: +SKIP
    """

    def __init__(self, recurrence: str = "auto", persist_blocks: int | None = None):
        self.engine = GpuEngine(recurrence=recurrence, persist_blocks=persist_blocks)
        self._weights = None

    def _load(self, params, config):
        if self._weights is None or self._weights.config is not config:
            self._weights = _DeviceWeights(self.engine, config, params, training=True)
        else:
            self._weights.load(params)
        return self._weights

    def forward_log_probs(self, params: dict, config, feats, lengths):
        """As :func:`speechlstm.network.forward_log_probs`, on the GPU."""
        from .network import _check

        feats, lengths, _ = _check(params, config, feats, lengths)
        B, V = feats.shape[0], config.num_outputs
        k = config.architecture.frame_stacking
        if B == 0:
            return np.zeros((0, _cdiv(feats.shape[1], k), V), np.float32), np.zeros(0, np.int32)
        with self.engine.lock:
            W = self._load(params, config)
            logits, lengths2, len2_d, T2, _ = _forward(self.engine, W, feats.astype(np.float32), lengths)
            out, _, _ = self.engine.log_softmax_out(logits, len2_d, B, T2, V)
            host = out.copy_to_host(stream=self.engine.stream)
            self.engine.synchronize()
        return host, lengths2

    def forward_backward(self, params: dict, config, feats, lengths, labels, label_lengths, dropout: float = 0.0,
                         rng: np.random.Generator | None = None):
        """As :func:`speechlstm.network.forward_backward` (same arguments, results and dropout masks for the
        same ``rng``), on the GPU.  float32 only."""
        from .network import _check

        feats, lengths, _ = _check(params, config, feats, lengths)
        feats = feats.astype(np.float32, copy=False)
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if dropout > 0.0 and rng is None:
            rng = np.random.default_rng()
        B = feats.shape[0]
        if B == 0:
            return np.zeros(0, np.float32), {k: np.zeros(s, np.float32) for k, s in config.expected_shapes().items()}
        a = config.architecture
        H, V, k = a.hidden_size, config.num_outputs, a.frame_stacking
        T2 = _cdiv(feats.shape[1], k)
        M = T2 * B
        labels = np.asarray(labels)
        label_lengths = np.asarray(label_lengths).astype(np.int32)
        if labels.ndim == 1 and B == 1:
            labels = labels[None, :]
        if labels.ndim != 2 or labels.shape[0] != B or label_lengths.shape != (B,):
            raise ValueError(f"labels must be ({B}, Lmax) and label_lengths ({B},)")
        if label_lengths.min() < 0 or label_lengths.max() > labels.shape[1]:
            raise ValueError(f"label_lengths must be in [0, {labels.shape[1]}]")
        valid = np.arange(labels.shape[1])[None, :] < label_lengths[:, None]
        used = labels[valid]
        if used.size and (used.min() < 0 or used.max() >= V or np.any(used == config.blank_index)):
            raise ValueError(f"labels must be in [0, {V}) and differ from blank ({config.blank_index})")
        masks = [None] * a.num_layers
        if dropout > 0.0:
            scale = np.float32(1.0 / (1.0 - dropout))
            for li in range(1, a.num_layers):  # the CPU's draw order: one (B*T2, 2H) array per layer
                keep = rng.random((B * T2, 2 * H), dtype=np.float32) >= dropout
                mask = keep.astype(np.float32) * scale
                masks[li] = np.ascontiguousarray(mask.reshape(B, T2, 2 * H).transpose(1, 0, 2).reshape(M, 2 * H))
        eng = self.engine
        with eng.lock:
            W = self._load(params, config)
            logits, lengths2, len2_d, T2, saved = _forward(eng, W, feats, lengths, train=True, masks=masks)
            Lmax = max(1, int(label_lengths.max()))
            lab = np.zeros((B, Lmax), np.int32)
            lab[:, :labels.shape[1]] = labels[:, :Lmax]
            lab_d = eng.upload("in:labels", lab, np.int32)
            ll_d = eng.upload("in:label_lengths", label_lengths, np.int32)
            losses_d, g = eng.ctc(logits, len2_d, lab_d, ll_d, B, T2, V, 2 * Lmax + 1, config.blank_index)
            grads_d = {}
            # output layer
            Ytop = saved[-1][2]
            dWoT = eng.buf("g:outT", (2 * H, V))
            eng.gemm(Ytop, g, dWoT, 2 * H, V, M, ta=True)
            dbo = eng.buf("g:outb", (V,))
            eng.colsum(g, M, V, dbo)
            grads_d["out"] = (dWoT, dbo)
            dY = eng.buf("dY", (M, 2 * H))
            eng.gemm(g, W.wo, dY, M, 2 * H, V)
            for li in range(a.num_layers - 1, -1, -1):
                X, Z, Y, C = saved[li]
                L = W.layers[li]
                eng.recurrence_backward(Z, C, dY, L["whh"], len2_d, T2, B, H)
                n_in = L["in"]
                dWihT = eng.buf(f"g:{li}:wihT", (n_in, 8 * H))
                eng.gemm(X, Z, dWihT, n_in, 8 * H, M, ta=True)
                dWhhT = eng.buf(f"g:{li}:whhT", (2, H, 4 * H))
                if T2 > 1:
                    R = (T2 - 1) * B
                    eng.gemm(Y[0:R, 0:H], Z[B:M, 0:4 * H], dWhhT[0], H, 4 * H, R, ta=True)
                    eng.gemm(Y[B:M, H:2 * H], Z[0:R, 4 * H:8 * H], dWhhT[1], H, 4 * H, R, ta=True)
                else:
                    eng.fill(dWhhT, 0.0)
                db = eng.buf(f"g:{li}:bias", (8 * H,))
                eng.colsum(Z, M, 8 * H, db)
                grads_d[li] = (dWihT, dWhhT, db)
                if li > 0:
                    dX = eng.buf(f"dX{li}", (M, 2 * H))
                    eng.gemm(Z, L["wih"], dX, M, 2 * H, 8 * H)
                    if masks[li] is not None:
                        eng.mul(dX, eng.buf(f"mask{li}", (M, 2 * H)), M, 2 * H)
                    dY = dX
            host = {}
            for key, arrs in grads_d.items():
                host[key] = tuple(x.copy_to_host(stream=eng.stream) for x in arrs)
            losses = losses_d.copy_to_host(stream=eng.stream)
            eng.synchronize()
        grads = {}
        for li in range(a.num_layers):
            dWihT, dWhhT, db = host[li]
            for d, name in enumerate(("fw", "bw")):
                p = f"lstm.{li}.{name}."
                grads[p + "w_ih"] = np.ascontiguousarray(dWihT[:, d * 4 * H:(d + 1) * 4 * H].T)
                grads[p + "w_hh"] = np.ascontiguousarray(dWhhT[d].T)
                grads[p + "bias"] = np.ascontiguousarray(db[d * 4 * H:(d + 1) * 4 * H])
        dWoT, dbo = host["out"]
        grads["output.weight"] = np.ascontiguousarray(dWoT.T)
        grads["output.bias"] = np.ascontiguousarray(dbo)
        grads = {k2: grads[k2] for k2 in config.expected_shapes()}
        return losses.astype(np.float32), grads
