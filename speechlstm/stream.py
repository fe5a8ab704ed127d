"""Streaming recognition: feed audio as it arrives, get partial text and final utterances back.

::

    s = recognizer.stream()                  # speechlstm.Recognizer.stream(**options)
    for block in blocks:                     # float32 (or int16) mono samples, any block size
        for event in s.accept(block):
            if isinstance(event, Partial): show(event.text)          # the open utterance so far
            else: print(event.text, event.start, event.end)        # Final: one finished utterance
    for event in s.finish(): ...             # the utterance still open at the end

How it works
------------
* **Front end, incrementally.**  Log-mel (or MFCC, with deltas) frames are computed as soon as the samples
  under their window have arrived, with the same kernel and convention as the offline path (the kernel
  takes the sample before its buffer for the pre-emphasis, so chunk boundaries change nothing: the frames are
  bit-identical; deltas wait for their +-2 frame context, delta-deltas for +-4).  ``"global"`` normalization is exact per frame; ``"utterance"``
  normalization uses a running estimate (mean/variance of the frames of all utterances so far, with a
  30 s memory).
* **Voice activity and endpointing.**  Energy per 10 ms against an adaptive noise floor (falls at once to
  any quieter frame, rises slowly), with a margin and an absolute floor.  An utterance opens after
  ``min_speech`` seconds of speech (and starts ``pre_roll`` seconds earlier), and closes after
  ``trailing_silence`` seconds without speech, or at ``max_utterance`` seconds, where it is cut at the
  quietest 150 ms of its last third and the rest opens the next utterance.  An utterance that ends in a pause
  spans up to ``post_roll`` seconds after its last speech frame (the rest of the pause only detects the end).
* **Partials (every ``partial_interval`` seconds of audio): a latency-controlled BiLSTM.**  The open
  utterance's frames are processed in chunks of ``N`` network frames plus ``R`` right-context frames
  (``chunk_seconds``, ``right_context_seconds``): in every layer the forward direction continues from the
  state it had after the previous chunk's ``N`` frames, the backward direction runs over the chunk plus its
  right context from a zero state, the outputs of the ``N`` frames are kept and those of the ``R`` frames
  are recomputed with the next chunk (:func:`speechlstm.kernels.lstm.bilstm_chunk`).  The frames after the
  last full chunk (fewer than ``N + R``) are run provisionally from the carried state, so a partial covers
  all audio received so far; the kept plus provisional frames are decoded by the recognizer's decoder (beam
  search with its language model and hotwords, ``partial_beam`` wide; 1 = greedy).  The network's cost per
  second of audio is bounded (it does not grow with the utterance).  ``partials="redecode"`` instead
  re-runs the full BiLSTM over the open utterance at every partial (cost growing with its length);
  ``partials="none"`` computes none.
* **Finals.**  With ``final_pass=True`` (default) a closed utterance is re-decoded from its audio by
  :meth:`Recognizer.transcribe` -- the offline path, full BiLSTM and beam search (language model and
  hotwords included) -- so a final is what the offline path gives for the utterance's audio; with
  ``final_pass=False`` the LC-BLSTM's own outputs are decoded instead.

Memory is bounded: the stream keeps the open utterance (at most ``max_utterance`` seconds) and
``pre_roll`` seconds before it.  Measured choices and costs are in BENCHMARKS.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import AudioError

__all__ = ["Partial", "Final", "StreamingRecognizer", "transcribe_stream", "DEFAULTS"]

#: Default options of :class:`StreamingRecognizer` (seconds unless stated).
DEFAULTS = dict(
    partials="lc",
    chunk_seconds=0.96,
    right_context_seconds=1.5,
    partial_interval=0.2,
    partial_beam=None,
    trailing_silence=0.6,
    max_utterance=20.0,
    min_speech=0.05,
    pre_roll=0.1,
    post_roll=0.1,
    threshold_db=12.0,
    min_db=-60.0,
    final_pass=True,
)
_PARTIAL_MODES = ("lc", "redecode", "none")
_FLOOR_RISE_DB_PER_S = 1.5
_NORM_MEMORY_FRAMES = 3000  # running normalization statistics: ~30 s memory at 10 ms frames
_CUT_SMOOTH_FRAMES = 15  # quietest-point search for max_utterance cuts: 150 ms mean energy


@dataclass
class Partial:
    """The open utterance's text so far; replaced by the next Partial or the Final of the utterance.

    Attributes
    ----------
    text : str
    start : float
        Stream time (seconds) where the open utterance starts.
    """

    text: str
    start: float = 0.0


@dataclass
class Final:
    """A finished utterance (one for every utterance the endpointer closes; ``text`` may be empty when
    nothing was recognized in it, e.g. a noise).

    Attributes
    ----------
    text : str
    words : list of speechlstm.transcribe.Word
        With start/end times in seconds of stream time (from the first sample accepted).
    start, end : float
        The utterance's span in stream time.
    """

    text: str
    words: list = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready dict (times rounded to milliseconds)."""
        return {"text": self.text, "start": round(self.start, 3), "end": round(self.end, 3),
                "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                           "confidence": round(w.confidence, 4)} for w in self.words]}


# ------------------------------------------------------------------------------------------- helpers
def _as_mono_float(samples) -> np.ndarray:
    """1-D float32 samples from a float or integer array, ``(n,)`` or ``(n, channels)``."""
    a = np.asarray(samples)
    if a.dtype.kind == "i" and a.dtype.itemsize in (1, 2, 4, 8):
        a = a.astype(np.float64 if a.dtype.itemsize > 2 else np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))
    elif a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif a.dtype.kind != "f":
        if a.size == 0:
            return np.zeros(0, np.float32)
        raise AudioError(f"stream: unsupported sample type {a.dtype} (use float32 or int16)")
    if a.ndim == 2:
        a = a.mean(axis=1)
    elif a.ndim != 1:
        raise AudioError(f"stream: expected samples of shape (n,) or (n, channels), got {a.shape}")
    x = np.ascontiguousarray(a, dtype=np.float32)
    if x.size and not np.isfinite(x.sum(dtype=np.float64)) and not np.isfinite(x).all():
        raise AudioError("stream: audio contains NaN or infinite samples")
    return x


class _FeatureStream:
    """Feature frames of a signal that arrives in pieces; equal (to float rounding) to computing them offline.

    :meth:`push` returns the frames whose window (and delta context) is complete, :meth:`flush` the rest
    (the signal's end is zero-padded exactly as :func:`speechlstm.features.compute_features` does).
    """

    def __init__(self, cfg):
        from .features import _tables
        from .kernels import frontend

        self.cfg = cfg
        self._k = frontend
        self._tables = _tables(cfg)
        self.hop = cfg.hop_length
        self.pad = cfg.n_fft // 2 if cfg.center else 0
        self.base = cfg.base_dim
        self.ctx = 2 * cfg.deltas
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute index of _buf[0]
        self._x_prev = 0.0  # the sample before _buf[0]
        self.n_samples = 0
        self._next_static = 0
        self._hist = np.zeros((0, self.base), np.float32)  # static frames kept for the delta context
        self._hist_start = 0
        self.n_frames = 0  # frames returned so far

    def _static(self, t1: int) -> None:
        """Compute static frames [_next_static, t1) and append them to the history."""
        t0 = self._next_static
        if t1 <= t0:
            return
        cfg = self.cfg
        (window, bitrev, tw_re, tw_im, post_cos, post_sin, k_lo, k_hi, mel_idx, mel_w0, mel_w1, dct) = self._tables
        out = np.empty((t1 - t0, self.base), np.float32)
        first = t0 * self.hop - self.pad - self._buf_start
        self._k.logmel_frames(self._buf, self._x_prev, cfg.preemphasis, first, self.hop, window, bitrev, tw_re,
                              tw_im, post_cos, post_sin, k_lo, k_hi, mel_idx, mel_w0, mel_w1, cfg.n_mels,
                              cfg.log_floor, dct, out)
        self._next_static = t1
        self._hist = out if self._hist.shape[0] == 0 else np.concatenate([self._hist, out])
        # drop samples no later frame needs (keep the pre-emphasis predecessor as _x_prev)
        keep = min(max(0, t1 * self.hop - self.pad), self.n_samples)
        if keep > self._buf_start:
            cut = keep - self._buf_start
            self._x_prev = float(self._buf[cut - 1])
            self._buf = self._buf[cut:].copy()
            self._buf_start = keep

    def _emit(self, t1: int, at_end: bool) -> np.ndarray:
        """Frames [n_frames, t1) with deltas (their context must be in the history)."""
        t0 = self.n_frames
        if t1 <= t0:
            return np.zeros((0, self.cfg.dim), np.float32)
        h0 = self._hist_start
        if self.ctx == 0:
            out = np.ascontiguousarray(self._hist[t0 - h0:t1 - h0])
        else:
            a = max(0, t0 - self.ctx)
            b = self._next_static if at_end else t1 + self.ctx
            win = np.zeros((b - a, self.cfg.dim), np.float32)
            win[:, :self.base] = self._hist[a - h0:b - h0]
            self._k.add_deltas(win, self.base, self.cfg.deltas)
            out = np.ascontiguousarray(win[t0 - a:t1 - a])
        self.n_frames = t1
        keep = max(0, t1 - self.ctx)
        if keep > h0:
            self._hist = self._hist[keep - h0:].copy()
            self._hist_start = keep
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0]:
            self._buf = np.concatenate([self._buf, x]) if self._buf.shape[0] else x.copy()
            self.n_samples += x.shape[0]
            if not self._k.all_finite(x):
                raise AudioError("stream: audio contains NaN or infinite samples")
        # frame t is complete when its window [t*hop - pad, t*hop - pad + n_fft) has arrived
        t1 = max(0, (self.n_samples + self.pad - self.cfg.n_fft) // self.hop + 1)
        self._static(t1)
        return self._emit(max(self.n_frames, self._next_static - self.ctx), at_end=False)

    def flush(self) -> np.ndarray:
        from .features import num_frames

        self._static(num_frames(self.n_samples, self.cfg))
        return self._emit(self._next_static, at_end=True)


class _RunningNorm:
    """Feature normalization for streaming: fixed (global / none) or a running utterance-style estimate."""

    def __init__(self, normalization: dict, dim: int):
        self.mode = normalization["mode"]
        if self.mode == "global":
            self.mean = np.asarray(normalization["mean"], np.float32)
            self.std = np.asarray(normalization["std"], np.float32)
        self._n = 0.0
        self._s1 = np.zeros(dim)
        self._s2 = np.zeros(dim)

    def __call__(self, f: np.ndarray) -> np.ndarray:
        if self.mode == "none" or f.shape[0] == 0:
            return np.ascontiguousarray(f, dtype=np.float32)
        if self.mode == "global":
            return np.ascontiguousarray((f - self.mean) / self.std, dtype=np.float32)
        # "utterance": statistics of the frames seen so far (these included), forgetting over ~30 s
        decay = (1.0 - 1.0 / _NORM_MEMORY_FRAMES) ** f.shape[0]
        f64 = f.astype(np.float64)
        self._n = self._n * decay + f.shape[0]
        self._s1 = self._s1 * decay + f64.sum(axis=0)
        self._s2 = self._s2 * decay + (f64 * f64).sum(axis=0)
        mu = self._s1 / self._n
        sd = np.sqrt(np.maximum(self._s2 / self._n - mu * mu, 0.0))
        return np.ascontiguousarray((f64 - mu) / np.maximum(sd, 1e-5), dtype=np.float32)


class _LCBLSTM:
    """Latency-controlled BiLSTM over one utterance: chunks of N kept + R right-context network frames."""

    def __init__(self, model, n_keep: int, n_right: int):
        from .kernels import lstm

        self._lstm = lstm
        a = model.config.architecture
        self.k = a.frame_stacking
        self.in_dim = a.input_dim
        packed = getattr(model, "_packed", None)
        if packed is None:
            w = model.weights
            packed = [tuple(lstm.pack_direction(w[f"lstm.{l}.{d}.w_ih"], w[f"lstm.{l}.{d}.w_hh"],
                                                w[f"lstm.{l}.{d}.bias"]) for d in ("fw", "bw"))
                      for l in range(a.num_layers)]
        self.layers = packed
        self.out = lstm.pack_output(model.weights["output.weight"], model.weights["output.bias"])
        self.V = self.out[2]
        self.N, self.R = n_keep, n_right
        self.states = [None] * len(packed)
        self._feat = np.zeros((0, self.in_dim), np.float32)  # feature frames not yet stacked
        self._x = np.zeros((0, self.in_dim * self.k), np.float32)  # stacked frames from the commit point on
        self.kept = []  # log-prob arrays of kept (final for this path) network frames
        self.n_kept = 0

    def push(self, feats: np.ndarray) -> None:
        f = np.concatenate([self._feat, feats]) if self._feat.shape[0] else feats
        n = f.shape[0] // self.k
        if n:
            st = f[:n * self.k].reshape(n, self.in_dim * self.k)
            self._x = np.concatenate([self._x, st]) if self._x.shape[0] else np.ascontiguousarray(st)
        self._feat = np.ascontiguousarray(f[n * self.k:])

    def _layers(self, x: np.ndarray, keep: int | None):
        """Run all layers over x from the carried states; save the new states when keep is given."""
        h = x
        for i, (fw, bw) in enumerate(self.layers):
            h, st = self._lstm.bilstm_chunk(h, fw, bw, state=self.states[i], keep=keep)
            if keep is not None:
                self.states[i] = st
        return self._lstm.output_log_softmax(h, self.out)

    def run(self) -> np.ndarray:
        """Commit every full chunk; return the provisional log-probs of the frames after the commit point."""
        N, R = self.N, self.R
        provisional = np.zeros((0, self.V), np.float32)
        while self._x.shape[0] >= N + R:
            lp = self._layers(self._x[:N + R], keep=N)
            self.kept.append(lp[:N])
            self.n_kept += N
            provisional = lp[N:]
            self._x = self._x[N:]
        if self._x.shape[0] and self._x.shape[0] != provisional.shape[0]:
            provisional = self._layers(self._x, keep=None)
        return provisional

    def close(self) -> None:
        """End of the utterance: the partial last stacked frame (zero padded) and everything pending is kept."""
        if self._feat.shape[0]:
            pad = np.zeros((self.k - self._feat.shape[0], self.in_dim), np.float32)
            self.push(pad)
        if self._x.shape[0]:
            lp = self._layers(self._x, keep=self._x.shape[0])
            self.kept.append(lp)
            self.n_kept += lp.shape[0]
            self._x = self._x[:0]

    def kept_log_probs(self) -> np.ndarray:
        if len(self.kept) > 1:
            self.kept = [np.concatenate(self.kept)]
        return self.kept[0] if self.kept else np.zeros((0, self.V), np.float32)


def _plain_words(lp, cfg, beam: int, offset: float) -> list:
    """Words of the best CTC hypothesis, timed by their units' emission frames (fallback decoding)."""
    from .decoding import decode
    from .transcribe import Word

    hyp = decode(lp, cfg.tokens, blank=cfg.blank_index, beam_width=beam)
    words, cur = [], []
    fs = cfg.frame_seconds
    units = list(zip(hyp.token_ids.tolist(), hyp.frames.tolist(), hyp.token_scores.tolist()))
    for tid, fr, sc in units + [(-1, 0, 0.0)]:
        if tid < 0 or cfg.tokens[tid].isspace():
            if cur:
                conf = float(np.exp(np.mean([c[2] for c in cur])))
                words.append(Word("".join(cfg.tokens[c[0]] for c in cur), offset + cur[0][1] * fs,
                                  offset + (cur[-1][1] + 1) * fs, min(1.0, conf)))
            cur = []
        else:
            cur.append((tid, fr, sc))
    return words


# ------------------------------------------------------------------------------------------ the stream
class StreamingRecognizer:
    """Incremental recognition of one audio stream (see the module docstring); made by :meth:`Recognizer.stream`.

    Parameters
    ----------
    recognizer : speechlstm.Recognizer
    sample_rate : int, optional
        Rate of the samples given to :meth:`accept` (default: the model's); other rates are resampled
        continuously with soxr.
    partials : {"lc", "redecode", "none"}
        How partial results are computed: latency-controlled BiLSTM (bounded cost), full re-decoding of the
        open utterance (cost grows with its length), or not at all.
    chunk_seconds, right_context_seconds : float
        LC-BLSTM chunk (kept) and right-context lengths, rounded to network frames (at least one).
    partial_interval : float
        Audio seconds between partial updates; a :class:`Partial` is returned when the text changed.
    partial_beam : int, optional
        Beam of the partials' decoding, with the recognizer's language model and hotwords if it has them
        (default: ``beam_width``); 1 is greedy decoding without them.
    trailing_silence : float
        Seconds without speech that end an utterance.
    max_utterance : float
        Longest utterance in seconds (cut at its quietest point in the last third).
    min_speech : float
        Seconds of speech that open an utterance (shorter clicks are ignored).
    pre_roll, post_roll : float
        Audio kept before the detected speech onset, and after the last speech frame of an utterance that
        ends in a pause (the utterance's span, what its final decodes).
    threshold_db, min_db : float
        A 10 ms frame is speech when its energy exceeds both the noise floor plus ``threshold_db`` and
        ``min_db`` dBFS.
    final_pass : bool
        Re-decode each closed utterance offline (full BiLSTM, beam search); else use the LC-BLSTM outputs.
    beam_width : int, optional
        Beam of the final decoding (default: the recognizer's).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from speechlstm import Recognizer
    >>> from speechlstm.model import ModelConfig, random_weights, save_model
    >>> d = tempfile.mkdtemp(); cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> save_model(d, cfg, random_weights(cfg))
    >>> s = Recognizer(d).stream(trailing_silence=0.3)
    >>> rng = np.random.default_rng(0)
    >>> audio = np.concatenate([np.zeros(8000), 0.3 * rng.standard_normal(8000), np.zeros(16000)])
    >>> events = []
    >>> for i in range(0, len(audio), 1600):            # 100 ms blocks
    ...     events += s.accept(audio[i:i + 1600].astype(np.float32))
    >>> events += s.finish()
    >>> finals = [e for e in events if isinstance(e, Final)]
    >>> len(finals), round(finals[0].start, 2), round(finals[0].end, 2)   # speech 0.5-1.0 s, +-0.1 s
    (1, 0.4, 1.1)
    """

    def __init__(self, recognizer, sample_rate: int | None = None, beam_width: int | None = None, **options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown stream option(s): {', '.join(sorted(unknown))}")
        o = {**DEFAULTS, **options}
        if o["partials"] not in _PARTIAL_MODES:
            raise ValueError(f"partials must be one of {', '.join(_PARTIAL_MODES)} (got {o['partials']!r})")
        for key in ("chunk_seconds", "partial_interval", "trailing_silence", "max_utterance"):
            if not (isinstance(o[key], (int, float)) and math.isfinite(o[key]) and o[key] > 0):
                raise ValueError(f"{key} must be a positive number of seconds (got {o[key]!r})")
        for key in ("right_context_seconds", "min_speech", "pre_roll", "post_roll"):
            if not (isinstance(o[key], (int, float)) and math.isfinite(o[key]) and o[key] >= 0):
                raise ValueError(f"{key} must be a number of seconds >= 0 (got {o[key]!r})")
        for key in ("threshold_db", "min_db"):
            if not (isinstance(o[key], (int, float)) and math.isfinite(o[key])):
                raise ValueError(f"{key} must be a finite number of dB (got {o[key]!r})")
        self.recognizer = recognizer
        self.model = recognizer.model
        cfg = self.model.config
        self.sr = cfg.sample_rate
        self.options = o
        self.beam_width = recognizer.beam_width if beam_width is None else int(beam_width)
        if self.beam_width < 1:
            raise ValueError("beam_width must be >= 1")
        pb = o["partial_beam"]
        if pb is not None and (isinstance(pb, bool) or not isinstance(pb, int) or pb < 1):
            raise ValueError(f"partial_beam must be a positive integer or None (got {pb!r})")
        self._partial_beam = self.beam_width if pb is None else pb
        fcfg = cfg.features
        self.hop = fcfg.hop_length
        self.frame_s = self.hop / self.sr
        k = cfg.architecture.frame_stacking
        net_frame_s = cfg.frame_seconds
        self._n_keep = max(1, int(round(o["chunk_seconds"] / net_frame_s)))
        self._n_right = max(0, int(round(o["right_context_seconds"] / net_frame_s)))
        self._k = k
        self._tick = max(1, int(round(o["partial_interval"] / self.frame_s)))
        self._trail = max(1, int(round(o["trailing_silence"] / self.frame_s)))
        self._max = max(4 * _CUT_SMOOTH_FRAMES, int(round(o["max_utterance"] / self.frame_s)))
        self._min_speech = max(1, int(round(o["min_speech"] / self.frame_s)))
        self._pre = int(round(o["pre_roll"] / self.frame_s))
        self._post = int(round(o["post_roll"] / self.frame_s))
        self._floor_rise = _FLOOR_RISE_DB_PER_S * self.frame_s

        self._resampler = None
        if sample_rate is not None and not (isinstance(sample_rate, (int, float)) and math.isfinite(sample_rate)
                                            and sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive number (got {sample_rate!r})")
        if sample_rate is not None and sample_rate != self.sr:
            import soxr

            from .audio import RESAMPLE_QUALITY

            self._resampler = soxr.ResampleStream(sample_rate, self.sr, 1, dtype="float32",
                                                  quality=RESAMPLE_QUALITY)
        self._fs = _FeatureStream(fcfg)
        self._norm = _RunningNorm(cfg.normalization, fcfg.dim)
        # raw samples kept from absolute index _s0 (the open utterance and the pre-roll before it)
        self._audio = np.zeros(0, np.float32)
        self._s0 = 0
        self._n = 0  # samples accepted (at the model rate)
        # normalized feature frames kept from absolute frame _f0
        self._feats = np.zeros((0, fcfg.dim), np.float32)
        self._f0 = 0
        # voice activity, per 10 ms frame
        self._vad_next = 0  # next VAD frame
        self._floor = o["min_db"]
        self._elog = []  # energies (dB) of the VAD frames from _e0 on
        self._e0 = 0
        self._run = 0  # consecutive speech frames while idle
        self._u_start = None  # open utterance: first frame, or None
        self._last_speech = 0
        self._last_end = 0  # end frame of the previous utterance
        self._lc = None
        self._lc_fed = 0  # next absolute feature frame to feed the LC-BLSTM
        self._last_tick = 0
        self._partial_text = ""
        self._closed = False
        self.timings = {"features": 0.0, "partials": 0.0, "finals": 0.0}

    # ----------------------------------------------------------------- public
    @property
    def time(self) -> float:
        """Seconds of audio accepted so far (at the model's rate)."""
        return self._n / self.sr

    @property
    def in_utterance(self) -> bool:
        """Whether an utterance is open (speech detected and not yet ended)."""
        return self._u_start is not None

    def accept(self, samples) -> list:
        """Feed samples; returns the events they produced (:class:`Partial` and :class:`Final`), in order.

        Parameters
        ----------
        samples : array_like
            Mono ``(n,)`` (or ``(n, channels)``, averaged) float samples in [-1, 1], or integer PCM
            (int16 is scaled by 1/32768), at the stream's ``sample_rate``.
        """
        if self._closed:
            raise RuntimeError("accept() after finish(): make a new stream")
        x = _as_mono_float(samples)
        if self._resampler is not None and x.shape[0]:
            x = self._resampler.resample_chunk(x)
        events = []
        self._push(x, events)
        self._maybe_partial(events)
        return events

    def finish(self) -> list:
        """End of the stream: flush everything and close the open utterance; returns the last events."""
        if self._closed:
            return []
        events = []
        if self._resampler is not None:
            self._push(np.ascontiguousarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True),
                                            dtype=np.float32), events)
        t0 = time.perf_counter()
        self._add_feats(self._fs.flush())
        self.timings["features"] += time.perf_counter() - t0
        if self._u_start is not None:
            self._end_utterance(-(-self._n // self.hop), events, trim=True)
        self._closed = True
        return events

    # ---------------------------------------------------------------- internals
    def _push(self, x: np.ndarray, events: list) -> None:
        if x.shape[0] == 0:
            return
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._audio = np.concatenate([self._audio, x]) if self._audio.shape[0] else x.copy()
        self._n += x.shape[0]
        t0 = time.perf_counter()
        self._add_feats(self._fs.push(x))
        self.timings["features"] += time.perf_counter() - t0
        # voice activity on the complete 10 ms frames
        n_vad = self._n // self.hop
        if n_vad > self._vad_next:
            a = self._vad_next * self.hop - self._s0
            seg = self._audio[a:a + (n_vad - self._vad_next) * self.hop].astype(np.float64)
            power = (seg.reshape(-1, self.hop) ** 2).mean(axis=1)
            energy = 10.0 * np.log10(power + 1e-12)
            for e in energy.tolist():
                self._elog.append(e)
                self._vad_frame(self._vad_next, e, events)
                self._vad_next += 1
        self._trim()

    def _add_feats(self, f: np.ndarray) -> None:
        if f.shape[0]:
            self._feats = np.concatenate([self._feats, f]) if self._feats.shape[0] else f

    def _vad_frame(self, i: int, e: float, events: list) -> None:
        o = self.options
        speech = e > max(self._floor + o["threshold_db"], o["min_db"])
        if e < self._floor:
            self._floor = e
        else:
            self._floor = min(e, self._floor + self._floor_rise)
        if self._u_start is None:
            self._run = self._run + 1 if speech else 0
            if self._run >= self._min_speech:
                onset = i + 1 - self._run
                self._start_utterance(max(onset - self._pre, self._last_end, self._s0 // self.hop,
                                          self._f0, self._e0), i)
            return
        if speech:
            self._last_speech = i
        if i - self._last_speech >= self._trail:
            self._end_utterance(i + 1, events, trim=True)
        elif i + 1 - self._u_start >= self._max:
            self._cut_utterance(i, events)

    def _start_utterance(self, start: int, i: int) -> None:
        self._u_start = start
        self._last_speech = i
        self._run = 0
        self._partial_text = ""
        self._last_tick = i + 1
        if self.options["partials"] == "lc":
            self._lc = _LCBLSTM(self.model, self._n_keep, self._n_right)
            self._lc_fed = start

    def _cut_utterance(self, i: int, events: list) -> None:
        """max_utterance reached: end at the quietest point of the last third, the rest opens the next one."""
        e = np.asarray(self._elog[self._u_start - self._e0:i + 1 - self._e0], np.float64)
        n = e.shape[0]
        lo = n - n // 3
        w = _CUT_SMOOTH_FRAMES
        smooth = np.convolve(10.0 ** (e / 10.0), np.ones(w) / w, mode="same")
        cut = self._u_start + lo + int(np.argmin(smooth[lo:n - w // 2]))
        self._end_utterance(cut, events)
        self._start_utterance(cut, i)
        self._last_tick = cut

    def _end_utterance(self, end: int, events: list, trim: bool = False) -> None:
        """Close the open utterance at frame ``end``; with ``trim`` (an endpoint after a pause) its audio stops
        ``post_roll`` after the last speech frame: the rest of the pause only served to detect the end."""
        start = self._u_start
        self._u_start = None
        self._run = 0
        self._last_end = end
        if trim:
            end = max(start + 1, min(end, self._last_speech + 1 + self._post))
        t0 = time.perf_counter()
        a, b = start * self.hop - self._s0, min(end * self.hop, self._n) - self._s0
        seg = self._audio[max(0, a):max(0, b)]
        offset = (self._s0 + max(0, a)) / self.sr
        words, text = [], ""
        if self.options["final_pass"] and seg.shape[0]:
            tr = self.recognizer.transcribe(seg, sample_rate=self.sr, beam_width=self.beam_width)
            from .transcribe import Word

            words = [Word(w.word, w.start + offset, w.end + offset, w.confidence) for w in tr.words]
            text = tr.text
        elif not self.options["final_pass"]:
            words = self._lc_final(start, end)
            text = " ".join(w.word for w in words)
        self._lc = None
        self.timings["finals"] += time.perf_counter() - t0
        events.append(Final(text, words, start * self.frame_s, min(end * self.hop, self._n) / self.sr))

    def _lc_final(self, start: int, end: int) -> list:
        if self._lc is None:  # partials were off: build the LC-BLSTM now
            self._lc = _LCBLSTM(self.model, self._n_keep, self._n_right)
            self._lc_fed = start
        self._feed_lc(end)
        self._lc.close()
        lp = self._lc.kept_log_probs()
        if lp.shape[0] == 0:
            return []
        dec = getattr(self.recognizer, "_decode_log_probs", None)
        if dec is not None:  # the recognizer's own decoding (LM fusion, calibrated confidences)
            return list(dec(lp, start * self.frame_s, self.beam_width).words)
        return _plain_words(lp, self.model.config, self.beam_width, start * self.frame_s)

    def _feed_lc(self, upto: int | None = None) -> None:
        """Give the LC-BLSTM the normalized frames [_lc_fed, min(upto, available))."""
        avail = self._f0 + self._feats.shape[0]
        stop = avail if upto is None else min(upto, avail)
        if stop > self._lc_fed:
            f = self._feats[self._lc_fed - self._f0:stop - self._f0]
            self._lc.push(self._norm(f))
            self._lc_fed = stop

    def _maybe_partial(self, events: list) -> None:
        mode = self.options["partials"]
        if self._u_start is None or mode == "none" or self._vad_next - self._last_tick < self._tick:
            return
        self._last_tick = self._vad_next
        t0 = time.perf_counter()
        cfg = self.model.config
        from .decoding import greedy_decode, tokens_to_text

        if mode == "lc":
            self._feed_lc()
            prov = self._lc.run()
            lp = self._lc.kept_log_probs()
            if prov.shape[0]:
                lp = np.concatenate([lp, prov]) if lp.shape[0] else prov
        else:
            a = self._u_start * self.hop - self._s0
            seg = self._audio[max(0, a):]
            lp = self.model.log_probs([self.model.featurize(seg)])[0] if seg.shape[0] else np.zeros((0, 1))
        text = ""
        if lp.shape[0]:
            hyps = getattr(self.recognizer, "_hypotheses", None)
            if (self._partial_beam > 1 or cfg.units != "chars") and hyps is not None:
                # the recognizer's decoder: beam (+ LM, hotwords); phone models always go through their lexicon
                text = hyps(lp, self._partial_beam, 1)[0].text
            else:
                text = tokens_to_text(greedy_decode(lp, blank=cfg.blank_index).token_ids, cfg.tokens)
        self.timings["partials"] += time.perf_counter() - t0
        if text != self._partial_text:
            self._partial_text = text
            events.append(Partial(text, self._u_start * self.frame_s))

    def _trim(self) -> None:
        """Drop audio and frames nothing needs any more (before the open utterance or the pre-roll)."""
        if self._u_start is not None:
            keep_frame = self._u_start
        else:
            keep_frame = max(0, self._vad_next - self._pre - self._run - 1)
        keep_sample = keep_frame * self.hop
        if keep_sample - self._s0 > 16 * self.hop:
            self._audio = self._audio[keep_sample - self._s0:].copy()
            self._s0 = keep_sample
        if keep_frame - self._e0 > 16:
            del self._elog[:keep_frame - self._e0]
            self._e0 = keep_frame
        if self._lc is not None:
            keep_frame = min(keep_frame, self._lc_fed)
        if keep_frame - self._f0 > 16:
            drop = min(keep_frame - self._f0, self._feats.shape[0])
            self._feats = self._feats[drop:].copy()
            self._f0 += drop


# ------------------------------------------------------------------------------------- files
def transcribe_stream(recognizer, source, progress=None, block_seconds: float = 0.5, **options):
    """Transcribe a file (or anything :func:`speechlstm.audio.iter_audio_blocks` reads) through the stream.

    The audio is fed in blocks of ``block_seconds``, as a live source would; memory stays flat whatever the
    length.  Returns a :class:`speechlstm.transcribe.Transcript` whose segments are the stream's utterances.

    Parameters
    ----------
    recognizer : speechlstm.Recognizer
    source : str, PathLike, bytes or file object
    progress : callable, optional
        Called with the audio seconds of each block processed.
    block_seconds : float
    **options
        Stream options (:class:`StreamingRecognizer`).

    Examples
    --------
    >>> import numpy as np, tempfile, os, soundfile as sf
    >>> from speechlstm import Recognizer
    >>> from speechlstm.model import ModelConfig, random_weights, save_model
    >>> d = tempfile.mkdtemp(); cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> save_model(d, cfg, random_weights(cfg))
    >>> wav = os.path.join(d, "a.wav"); sf.write(wav, np.zeros(24000, np.float32), 16000)
    >>> t = transcribe_stream(Recognizer(d), wav)
    >>> t.text, t.duration
    ('', 1.5)
    """
    from .audio import iter_audio_blocks
    from .transcribe import Transcript

    t_start = time.perf_counter()
    sr = recognizer.sample_rate
    blocks = iter_audio_blocks(source, sr, block_seconds=block_seconds)
    s = StreamingRecognizer(recognizer, **{"partials": "none", **options})
    finals = []
    t_audio = 0.0
    while True:
        t0 = time.perf_counter()
        block = next(blocks, None)
        t_audio += time.perf_counter() - t0
        if block is None:
            break
        finals += [e for e in s.accept(block) if isinstance(e, Final)]
        if progress is not None:
            progress(block.shape[0] / sr)
    finals += [e for e in s.finish() if isinstance(e, Final)]
    words = [w for f in finals for w in f.words]
    timings = {"audio": t_audio, **s.timings, "total": time.perf_counter() - t_start}
    return Transcript(text=" ".join(f.text for f in finals), words=words, duration=s.time, score=0.0,
                      segments=[{"start": round(f.start, 3), "end": round(f.end, 3), "text": f.text}
                                for f in finals],
                      model=recognizer.model.config.name, timings=timings)
