"""High-level transcription: :class:`Recognizer` turns audio into a :class:`Transcript`."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DeviceError, ModelError
from .model import AcousticModel, load_model

DEVICES = ("cpu", "cuda", "auto")
DEFAULT_BEAM = 32  # with the LM: dev WER 41.0 % against 43.9 % at 8, same real-time factor (model card)


@dataclass
class Word:
    """A recognized word with its time span in seconds and a confidence in [0, 1].

    The span comes from a Viterbi forced alignment of the chosen hypothesis to the network's output (the CTC
    best path of exactly those units): it runs from the first frame of the word's first unit to the end of the
    last frame of its last unit. The confidence is an estimate of the probability that the word is right: a
    logistic calibration (fitted on held-out data by ``tools/calibrate_confidence.py`` and stored in the model's
    ``config.json``) of the word's posterior in the beam and its units' peak posteriors along the alignment;
    without a calibration, the beam posterior (or, for greedy decoding, the geometric mean of the peak
    posteriors). In grammar mode every word carries the phrase's confidence.
    """

    word: str
    start: float
    end: float
    confidence: float


@dataclass
class Transcript:
    """Result of :meth:`Recognizer.transcribe`.

    Attributes
    ----------
    text : str
        The transcription (lowercase words separated by single spaces for character models).
    words : list of Word
    duration : float
        Audio duration in seconds.
    score : float
        Sum over segments of the CTC log-probability of the chosen hypothesis.
    segments : list of dict
        ``{"start", "end", "text"}`` for each piece the audio was processed in (cut at low-energy points).
    model : str
        Name of the model that produced it.
    timings : dict
        Wall-clock seconds spent in ``audio``, ``features``, ``model`` and ``decoding``.
    alternatives : list of dict
        With ``nbest > 1``: the best ``nbest`` transcriptions, ``{"text", "score"}`` (``score``: log-probability,
        summed over segments), best first; in grammar mode the best phrases ``{"text", "score",
        "confidence"}``. Empty otherwise.
    matched : bool or None
        Grammar mode: whether the speech matched a phrase (``text`` is then the phrase, else ``""``).
        ``None`` outside grammar mode.
    confidence : float or None
        Grammar mode: the best phrase's confidence (its posterior against the other phrases and the free
        decoding), compared with the threshold. ``None`` outside grammar mode.
    """

    text: str
    words: list = field(default_factory=list)
    duration: float = 0.0
    score: float = 0.0
    segments: list = field(default_factory=list)
    model: str = ""
    timings: dict = field(default_factory=dict)
    alternatives: list = field(default_factory=list)
    matched: bool | None = None
    confidence: float | None = None

    def to_dict(self) -> dict:
        """JSON-able dict; ``alternatives`` only when there are some, ``matched`` and ``confidence`` only in
        grammar mode.

        Examples
        --------
        >>> sorted(Transcript("hi", words=[Word("hi", 0.1, 0.3, 0.9)]).to_dict())
        ['duration', 'model', 'score', 'segments', 'text', 'timings', 'words']
        """
        d = asdict(self)
        d["duration"] = round(self.duration, 3)
        d["words"] = [{**w, "start": round(w["start"], 3), "end": round(w["end"], 3),
                       "confidence": round(w["confidence"], 4)} for w in d["words"]]
        d["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        d["score"] = _finite(self.score)
        if not self.alternatives:
            del d["alternatives"]
        else:
            d["alternatives"] = [{**a, "score": _finite(a["score"]),
                                  **({"confidence": round(a["confidence"], 4)} if "confidence" in a else {})}
                                 for a in self.alternatives]
        if self.matched is None:
            del d["matched"], d["confidence"]
        else:
            d["confidence"] = round(float(self.confidence), 4)
        return d


def _finite(x):
    """A float for JSON: rounded, and None for -inf / NaN (JSON has no infinities)."""
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None


def default_model_dir() -> Path:
    """Directory of the model shipped in ``speechlstm.models`` (the first one, by name).

    Raises
    ------
    ModelError
        When the installed package ships no model.
    """
    root = resources.files("speechlstm.models")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())
    if not found:
        raise ModelError("no model is shipped with this version of speechlstm yet: pass a model directory "
                         "(--model DIR, or Recognizer('DIR'))")
    return Path(str(root / found[0]))


def resolve_device(device: str) -> str:
    """Map ``cpu|cuda|auto`` to the backend that will run; raises :class:`DeviceError` for an unusable choice.

    ``auto`` is ``cuda`` when :func:`speechlstm.gpu.cuda_available` (a CUDA GPU, or Numba's simulator when the
    user set ``NUMBA_ENABLE_CUDASIM``), else ``cpu``, silently; ``cuda`` without a GPU is a one-line
    :class:`DeviceError`.  Without an NVIDIA driver the probe is a few file checks (no ``numba.cuda`` import).

    Examples
    --------
    >>> resolve_device("cpu"), resolve_device("auto") in ("cpu", "cuda")
    ('cpu', True)
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: choose cpu, cuda or auto")
    if device == "cpu":
        return "cpu"
    from .gpu import cuda_available, require_cuda

    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    require_cuda()
    return "cuda"


class Recognizer:
    """Speech recognizer: loads a model once, then transcribes files or arrays.

    Parameters
    ----------
    model : str, PathLike or AcousticModel, optional
        A model directory, or an already loaded model. Default: the model shipped with the package.
    device : {"auto", "cpu", "cuda"}
        Where the acoustic model runs; ``auto`` picks the GPU when one is usable, else the CPU.
    beam_width : int
        CTC prefix beam search width; 1 means greedy decoding.
    segment_seconds : float
        Longest piece of audio processed at once; longer audio is cut at low-energy points, which keeps memory
        flat for long recordings.
    lm : None, "none", str, PathLike or NGramLM, keyword-only
        n-gram language model fused into the beam search (shallow fusion). ``None`` (default): the model
        directory's ``lm.bin`` when there is one, else no LM; ``"none"``: no LM; a path: an ``lm.bin`` or ARPA
        file; or a loaded :class:`speechlstm.lm.NGramLM`.
    alpha, beta : float, keyword-only
        LM weight and word insertion bonus (default: ``speechlstm.decoding.DEFAULT_ALPHA`` / ``DEFAULT_BETA``).
    hotwords : str or list, keyword-only
        Words or phrases to favour, e.g. ``"speechlstm,turn on the lights:4.0"`` (``phrase[:weight]``, comma
        separated; default weight ``speechlstm.decoding.DEFAULT_HOTWORD_WEIGHT``).
    grammar : list of str, str, PathLike or Grammar, keyword-only
        Command grammar mode: the phrases (or a grammar file, see :mod:`speechlstm.grammar`). The transcript's
        ``text`` is then always one of the phrases or ``""`` (no match), with ``matched`` and ``confidence``.
    grammar_threshold : float, keyword-only
        Smallest phrase confidence accepted in grammar mode (default
        :data:`speechlstm.grammar.DEFAULT_GRAMMAR_THRESHOLD`).
    nbest : int, keyword-only
        Number of alternative transcriptions in ``Transcript.alternatives`` (1: none); the beam is widened to
        at least ``nbest``.
    vad : bool, keyword-only
        Voice-activity gate (:mod:`speechlstm.vad`, default on): a segment without speech-like energy is not
        decoded, so silence, steady noise and hum give an empty transcript. (Words are not filtered by their
        times: a BiLSTM's CTC spikes may sit well away from the sound of the word, up to the clip's edge.)

    Notes
    -----
    A Recognizer holds no per-call state: one instance may be used from several threads at once.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from speechlstm.model import ModelConfig, random_weights, save_model
    >>> d = tempfile.mkdtemp(); cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> save_model(d, cfg, random_weights(cfg))
    >>> r = Recognizer(d, beam_width=4)
    >>> t = r.transcribe(np.zeros(8000, np.float32), sample_rate=16000)
    >>> round(t.duration, 2)
    0.5
    >>> g = Recognizer(d, grammar=["yes", "no"]).transcribe(np.zeros(8000, np.float32), sample_rate=16000)
    >>> g.text in ("", "yes", "no"), isinstance(g.matched, bool), 0.0 <= g.confidence <= 1.0
    (True, True, True)
    """

    def __init__(self, model=None, device: str = "auto", beam_width: int = DEFAULT_BEAM,
                 segment_seconds: float = 30.0, *, lm=None, alpha: float | None = None,
                 beta: float | None = None, hotwords=None, grammar=None, grammar_threshold: float | None = None,
                 nbest: int = 1, vad: bool = True):
        self.device = resolve_device(device)
        self.vad = bool(vad)
        if isinstance(model, AcousticModel):
            self.model = model
        else:
            self.model = load_model(default_model_dir() if model is None else model)
        if self.device == "cuda":  # the acoustic model's BiLSTM, output layer and log-softmax on the GPU
            from .gpu import on_gpu
            self.model = on_gpu(self.model)
        if int(beam_width) < 1:
            raise ValueError("beam_width must be >= 1")
        if not segment_seconds >= 1.0:
            raise ValueError("segment_seconds must be >= 1")
        self.beam_width = int(beam_width)
        self.segment_seconds = float(segment_seconds)
        self.nbest = _check_nbest(nbest)
        self._fusion = self._resolve_fusion(lm, alpha, beta, hotwords)
        self._decoders: dict = {}
        self._lock = threading.Lock()
        if self._fusion is not None:
            self._decoder(self.beam_width)  # bad hotwords (e.g. unspellable) are reported now
        self.grammar = None
        if grammar is not None:
            from .grammar import DEFAULT_GRAMMAR_THRESHOLD, load_grammar

            self.grammar = load_grammar(grammar)
            self.grammar.compile(self.model.config.tokens, self.model.config.blank_index,
                                 getattr(self.model, "lexicon", None))  # errors now, not later
            t = DEFAULT_GRAMMAR_THRESHOLD if grammar_threshold is None else grammar_threshold
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= float(t) <= 1.0:
                raise ValueError(f"grammar_threshold must be a number in [0, 1], got {grammar_threshold!r}")
            self.grammar_threshold = float(t)
        elif grammar_threshold is not None:
            raise ValueError("grammar_threshold needs a grammar")
        self.calibration = ConfidenceCalibration.from_config(self.model.config)

    def _resolve_fusion(self, lm, alpha, beta, hotwords):
        """Options of the LM / hotword decoder, or None when plain CTC decoding does."""
        for name, v in (("alpha", alpha), ("beta", beta)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if lm is None:
            where = getattr(self.model, "path", None)
            found = Path(where) / "lm.bin" if where else None
            lm = str(found) if found is not None and found.is_file() else None
        elif lm is False or (isinstance(lm, str) and lm.strip().lower() == "none"):
            lm = None
        lexicon = getattr(self.model, "lexicon", None)  # phone models always decode through their lexicon
        if lm is None and hotwords is None and lexicon is None:
            return None
        from . import decoding

        if isinstance(lm, (str, os.PathLike)):
            lm = decoding.load_lm(lm)
        if isinstance(hotwords, str):
            hotwords = decoding.parse_hotwords(hotwords)
        opts = {"lm": lm, "hotwords": hotwords}
        if lexicon is not None:
            opts["lexicon"] = lexicon
        if alpha is not None:
            opts["alpha"] = float(alpha)
        if beta is not None:
            opts["beta"] = float(beta)
        return opts

    def _decoder(self, beam: int):
        dec = self._decoders.get(beam)
        if dec is None:
            from .decoding import Decoder

            cfg = self.model.config
            with self._lock:
                dec = self._decoders.get(beam)
                if dec is None:
                    if self._decoders:  # share the LM and the tries: only the beam width differs
                        dec = next(iter(self._decoders.values())).with_params(beam_width=beam)
                    else:
                        dec = Decoder(cfg.tokens, cfg.blank_index, beam_width=beam, **self._fusion)
                    self._decoders[beam] = dec
        return dec

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    def transcribe(self, audio, sample_rate: int | None = None, beam_width: int | None = None,
                   progress=None, nbest: int | None = None) -> Transcript:
        """Transcribe a file path, ``"-"`` (standard input), bytes, or an array of samples.

        Parameters
        ----------
        audio : str, PathLike, bytes, file-like or ndarray
            Any format libsndfile (or, failing that, audioread) decodes; any rate and channel count. An array
            needs ``sample_rate``; it may be ``(n,)``, ``(n, channels)``, integer or float.
        sample_rate : int, optional
            Rate of ``audio`` when it is an array.
        beam_width : int, optional
            Overrides the recognizer's beam width for this call.
        progress : callable, optional
            Called with the number of audio seconds just processed, after each segment.
        nbest : int, optional
            Overrides the recognizer's number of alternatives for this call.

        Returns
        -------
        Transcript

        Raises
        ------
        speechlstm.errors.AudioError
            For audio that cannot be read or used (one line naming the input and the reason).
        """
        from . import audio as audio_mod

        sr = self.sample_rate
        beam = self.beam_width if beam_width is None else int(beam_width)
        if beam < 1:
            raise ValueError("beam_width must be >= 1")
        k = self.nbest if nbest is None else _check_nbest(nbest)
        beam = max(beam, k)
        timings = {"audio": 0.0, "features": 0.0, "model": 0.0, "decoding": 0.0}
        t0 = time.perf_counter()
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ValueError("sample_rate is required when audio is an array")
            samples = audio_mod.prepare_array(audio, sample_rate, sr)
            segments = iter(audio_mod.segment_array(samples, sr, max_seconds=self.segment_seconds,
                                                    min_seconds=self.segment_seconds / 3))
        else:
            blocks = audio_mod.iter_audio_blocks(audio, sr, block_seconds=self.segment_seconds)
            segments = audio_mod.iter_segments(blocks, sr, max_seconds=self.segment_seconds,
                                               min_seconds=self.segment_seconds / 3)
        timings["audio"] += time.perf_counter() - t0

        if self.vad:
            from .vad import speech_frames
        words, pieces, total_score, n_samples = [], [], 0.0, 0
        alternatives = [("", 0.0)] if k > 1 else []
        grammar_lps = []  # grammar mode: (start sample, log-probs) of every segment, matched at the end
        while True:
            t0 = time.perf_counter()
            nxt = next(segments, None)
            timings["audio"] += time.perf_counter() - t0
            if nxt is None:
                break
            start, seg = nxt
            n_samples = start + len(seg)
            piece = {"start": round(start / sr, 3), "end": round((start + len(seg)) / sr, 3), "text": ""}
            mask = None
            if self.vad:
                t0 = time.perf_counter()
                mask = speech_frames(seg, sr)
                timings["features"] += time.perf_counter() - t0
            if mask is not None and not mask.any():
                pass  # no speech in this segment: nothing to decode
            elif self.grammar is not None:
                grammar_lps.append((start, self._log_probs(seg, timings)))
            else:
                lp = self._log_probs(seg, timings)
                t0 = time.perf_counter()
                r = self._decode_log_probs(lp, start / sr, beam, k)
                timings["decoding"] += time.perf_counter() - t0
                total_score += r.score
                words.extend(r.words)
                piece["text"] = r.text
                if k > 1:
                    alternatives = _merge_alternatives(alternatives, r.alternatives, k)
            pieces.append(piece)
            if progress is not None:
                progress(len(seg) / sr)
        duration = n_samples / sr
        name = self.model.config.name
        if self.grammar is not None:
            t0 = time.perf_counter()
            tr = self._match_grammar(grammar_lps, pieces, beam, k)
            timings["decoding"] += time.perf_counter() - t0
            tr.duration, tr.model, tr.timings = duration, name, timings
            return tr
        text = " ".join(p["text"] for p in pieces if p["text"])
        alts = [{"text": t, "score": sc} for t, sc in alternatives] if k > 1 else []
        return Transcript(text=text, words=words, duration=duration, score=total_score, segments=pieces,
                          model=name, timings=timings, alternatives=alts)

    def _log_probs(self, samples, timings):
        t0 = time.perf_counter()
        feats = self.model.featurize(samples)
        t1 = time.perf_counter()
        lp = self.model.log_probs([feats])[0]
        timings["features"] += t1 - t0
        timings["model"] += time.perf_counter() - t1
        return lp

    def _hypotheses(self, lp, beam: int, want: int) -> list:
        """Up to ``want`` hypotheses of one segment, best first, with ``text`` filled (at least one)."""
        from .decoding import _empty_hypothesis, beam_search, greedy_decode, tokens_to_text

        cfg = self.model.config
        if self._fusion is not None:
            hyps = list(self._decoder(beam).decode(lp, nbest=max(1, min(want, beam))))
        elif beam <= 1:
            hyps = [greedy_decode(lp, blank=cfg.blank_index)]
        else:
            hyps = beam_search(lp, beam_width=beam, blank=cfg.blank_index)[:want]
        if not hyps:
            hyps = [greedy_decode(lp, blank=cfg.blank_index)]
            if cfg.units != "chars":  # units that spell no lexicon word are not written down
                hyps = [_empty_hypothesis(hyps[0].score)]
                hyps[0].words = []
        for h in hyps:
            if h.words is None:
                h.text = tokens_to_text(h.token_ids, cfg.tokens)
        return hyps

    def _decode_log_probs(self, lp, offset: float = 0.0, beam: int | None = None, nbest: int = 1) -> "SegmentResult":
        """Decode one segment's log-probabilities: text, timed words with confidences, alternatives.

        Also returns the raw confidence features (what ``tools/calibrate_confidence.py`` fits).
        """
        cfg = self.model.config
        beam = self.beam_width if beam is None else int(beam)
        mode = "beam" if beam > 1 else "greedy"
        hyps = self._hypotheses(lp, beam, beam if mode == "beam" else 1)
        best = hyps[0]
        spans = word_spans(lp, best.token_ids, cfg.tokens, cfg.blank_index, fallback_frames=best.frames)
        if best.words is not None and len(best.words) == len(spans):  # lexicon decoding: the words, not the units
            spans = [(w, *rest) for w, (_, *rest) in zip(best.words, spans)]
        feats = np.zeros((len(spans), 3), np.float64)
        for i, (_, _, _, f_mean, f_min) in enumerate(spans):
            feats[i, 0], feats[i, 1] = f_mean, f_min
        if mode == "beam":
            feats[:, 2] = np.log(np.maximum(word_posteriors(hyps, [w for w, *_ in spans]), 1e-9))
        conf = self.calibration.confidence(feats, mode)
        fs = cfg.frame_seconds
        words = [Word(w, offset + first * fs, offset + (last + 1) * fs, float(c))
                 for (w, first, last, _, _), c in zip(spans, conf)]
        alts = []
        if nbest > 1:
            seen = set()
            for h in hyps:
                if h.text not in seen:
                    seen.add(h.text)
                    alts.append((h.text, float(h.score)))
                if len(alts) == nbest:
                    break
        return SegmentResult(" ".join(w.word for w in words), words, float(best.score), alts, feats, mode)

    def _match_grammar(self, lps, pieces, beam, nbest) -> Transcript:
        """Grammar mode: match the whole audio (its segments' log-probabilities end to end) against the grammar."""
        from .grammar import DEFAULT_FILLER_BEAM

        cfg = self.model.config
        fs, sr = cfg.frame_seconds, self.sample_rate
        if lps:
            lp = np.concatenate([x for _, x in lps]) if len(lps) > 1 else lps[0][1]
            times = np.concatenate([s / sr + np.arange(x.shape[0]) * fs for s, x in lps])
        else:
            lp, times = np.zeros((0, len(cfg.tokens)), np.float32), np.zeros(0)
        m = self.grammar.match(lp, cfg.tokens, cfg.blank_index, threshold=self.grammar_threshold, nbest=nbest,
                               filler_beam=max(DEFAULT_FILLER_BEAM, beam), lexicon=getattr(self.model, "lexicon", None))
        words = []
        if m.matched:
            spans = word_spans(lp, m.label_ids, cfg.tokens, cfg.blank_index)
            phrase_words = m.text.split()
            if len(spans) == len(phrase_words):  # a phone model's spans are phones: write the phrase's words
                spans = [(w, *rest) for w, (_, *rest) in zip(phrase_words, spans)]
            for w, first, last, _, _ in spans:
                words.append(Word(w, float(times[first]), float(times[last] + fs), m.confidence))
            for p in pieces:
                p["text"] = " ".join(w.word for w in words if p["start"] <= w.start < p["end"])
        alts = m.alternatives if nbest > 1 else []
        return Transcript(text=m.text, words=words, score=m.score, segments=pieces, alternatives=alts,
                          matched=m.matched, confidence=m.confidence)

    def stream(self, **options):
        """A :class:`speechlstm.stream.StreamingRecognizer` on this recognizer: ``accept(samples)`` returns
        ``Partial``/``Final`` events, ``finish()`` the last ones (options: see :mod:`speechlstm.stream`)."""
        from .stream import StreamingRecognizer

        return StreamingRecognizer(self, **options)


@dataclass
class SegmentResult:
    """What :meth:`Recognizer._decode_log_probs` returns for one segment."""

    text: str
    words: list
    score: float
    alternatives: list  # (text, score), best first
    features: np.ndarray  # (words, 3): mean and min peak log-prob of the word's units, log beam posterior
    mode: str  # "beam" or "greedy"


CONFIDENCE_FEATURES = {"greedy": ("mean_peak_logp", "min_peak_logp"),
                       "beam": ("mean_peak_logp", "min_peak_logp", "log_beam_posterior")}
"""Inputs of the logistic confidence calibration, per decoding mode (columns of SegmentResult.features)."""


@dataclass
class ConfidenceCalibration:
    """Word confidence = ``sigmoid(w[0] + w[1:] . features)``, one weight vector per decoding mode.

    Stored in a model's ``config.json`` as ``"confidence": {"method": "logistic", "greedy": [w0, w1, w2],
    "beam": [w0, w1, w2, w3]}`` (features: :data:`CONFIDENCE_FEATURES`); fitted by
    ``tools/calibrate_confidence.py``. A mode without weights uses the raw confidence: the word's beam
    posterior, or for greedy decoding the geometric mean of its units' peak posteriors.

    Examples
    --------
    >>> c = ConfidenceCalibration(beam=[0.0, 0.0, 0.0, 1.0])
    >>> f = np.array([[-0.1, -0.2, np.log(0.5)]])
    >>> round(float(c.confidence(f, "beam")[0]), 3), round(float(c.confidence(f, "greedy")[0]), 3)
    (0.333, 0.905)
    """

    greedy: list | None = None
    beam: list | None = None

    @classmethod
    def from_config(cls, config) -> "ConfidenceCalibration":
        d = getattr(config, "confidence", None) or {}
        return cls(greedy=d.get("greedy"), beam=d.get("beam"))

    def confidence(self, features, mode: str) -> np.ndarray:
        """Confidences in [0, 1] of words with raw ``features`` (rows as in :attr:`SegmentResult.features`)."""
        f = np.asarray(features, np.float64)
        if f.shape[0] == 0:
            return np.zeros(0)
        w = self.greedy if mode == "greedy" else self.beam
        if w is None:
            return raw_confidence(f, mode)
        x = f[:, : len(CONFIDENCE_FEATURES[mode])]
        z = float(w[0]) + x @ np.asarray(w[1:], np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def raw_confidence(features, mode: str) -> np.ndarray:
    """Uncalibrated confidence: the beam posterior (``mode="beam"``) or ``exp(mean peak log-prob)`` (greedy)."""
    f = np.asarray(features, np.float64)
    return np.clip(np.exp(f[:, 2] if mode == "beam" else f[:, 0]), 0.0, 1.0)


def _check_nbest(nbest) -> int:
    if isinstance(nbest, bool) or not isinstance(nbest, (int, np.integer)) or nbest < 1:
        raise ValueError(f"nbest must be a positive integer, got {nbest!r}")
    return int(nbest)


def _merge_alternatives(acc, seg, k):
    """k best (text, score) of the concatenation of two independent k-best lists (scores add)."""
    seg = seg or [("", 0.0)]
    out = {}
    for ta, sa in acc:
        for tb, sb in seg:
            t = f"{ta} {tb}" if ta and tb else ta or tb
            s = sa + sb
            if t not in out or s > out[t]:
                out[t] = s
    return sorted(out.items(), key=lambda x: -x[1])[:k]


def word_spans(log_probs, token_ids, tokens, blank: int, fallback_frames=None) -> list:
    """Words of a unit sequence with their frame spans from a CTC forced alignment, and peak log-probs.

    Parameters
    ----------
    log_probs : ndarray, shape (T, V)
    token_ids : sequence of int
        The hypothesis (no blanks); whitespace units separate words.
    tokens : sequence of str
    blank : int
    fallback_frames : sequence of int, optional
        Emission frame of each unit, used when the units cannot be aligned (never for a decoder's own output).

    Returns
    -------
    list of tuple
        ``(word, first_frame, last_frame, mean_peak_logp, min_peak_logp)``: first frame of its first unit, last
        frame of its last unit on the best path, and the mean / min over its units of the largest log-prob
        the unit has on its frames.

    Examples
    --------
    >>> p = np.array([[.1, .8, .05, .05], [.8, .1, .05, .05], [.05, .05, .8, .1], [.1, .1, .1, .7]], np.float32)
    >>> [(w, a, b) for w, a, b, _, _ in word_spans(np.log(p), [1, 2, 1], ["_", "o", " ", "x"], 0)]
    [('o', 0, 0), ('o', 3, 3)]
    """
    from .kernels import align

    ids = np.ascontiguousarray(token_ids, dtype=np.int32)
    if ids.size == 0:
        return []
    lp = np.ascontiguousarray(log_probs, dtype=np.float32)
    first, last, peak, score = align.viterbi_align_kernel(lp, ids, int(blank))
    if not np.isfinite(score):
        if fallback_frames is None or len(fallback_frames) != ids.size:
            return []
        first = last = np.asarray(fallback_frames, np.int64)
        peak = lp[first, ids]
    peak = np.maximum(np.asarray(peak, np.float64), -30.0)
    spans, cur = [], []
    for i, tid in enumerate(ids.tolist()):
        piece = tokens[tid]
        if piece.isspace():
            if cur:
                spans.append(cur)
            cur = []
        else:
            cur.append(i)
    if cur:
        spans.append(cur)
    out = []
    for idx in spans:
        pk = peak[idx]
        out.append(("".join(tokens[ids[i]] for i in idx).strip(), int(first[idx[0]]), int(last[idx[-1]]),
                    float(pk.mean()), float(pk.min())))
    return out


def word_posteriors(hyps, words) -> np.ndarray:
    """Posterior of each word of the best hypothesis: the share of the beam's probability carried by the
    hypotheses that have the same word at the same place (words matched with :class:`difflib.SequenceMatcher`).

    Examples
    --------
    >>> from types import SimpleNamespace as H
    >>> hyps = [H(text="a b c", score=np.log(0.5)), H(text="a d c", score=np.log(0.3)),
    ...         H(text="a b", score=np.log(0.2))]
    >>> word_posteriors(hyps, ["a", "b", "c"]).round(2).tolist()
    [1.0, 0.7, 0.8]
    """
    from difflib import SequenceMatcher

    n = len(words)
    post = np.zeros(n)
    if n == 0 or not hyps:
        return post
    scores = np.array([h.score for h in hyps], np.float64)
    if not np.isfinite(scores[0]):
        return np.ones(n)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    w = np.exp(scores - scores.max())
    w /= w.sum()
    for h, wk in zip(hyps, w):
        other = h.text.split()
        if other == list(words):
            post += wk
            continue
        sm = SequenceMatcher(None, list(words), other, autojunk=False)
        for a, _, size in sm.get_matching_blocks():
            post[a:a + size] += wk
    return np.clip(post, 0.0, 1.0)


def output_path(output_dir, source, fmt: str) -> str:
    """Where ``--output-dir`` writes the transcript of ``source`` in format ``fmt``."""
    stem = "stdin" if str(source) == "-" else Path(str(source)).stem or "audio"
    return os.path.join(str(output_dir), f"{stem}.{fmt}")
