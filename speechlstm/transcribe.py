"""High-level transcription: :class:`Recognizer` turns audio into a :class:`Transcript`."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DeviceError, ModelError
from .model import AcousticModel, load_model

DEVICES = ("cpu", "cuda", "auto")
DEFAULT_BEAM = 8


@dataclass
class Word:
    """A recognized word with its time span in seconds and a confidence in [0, 1].

    The span runs from the frame where the word's first unit is emitted to the end of the frame of its last unit.
    The confidence is the geometric mean of its units' posterior probabilities at their emission frames.
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
    """

    text: str
    words: list = field(default_factory=list)
    duration: float = 0.0
    score: float = 0.0
    segments: list = field(default_factory=list)
    model: str = ""
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration"] = round(self.duration, 3)
        d["words"] = [{**w, "start": round(w["start"], 3), "end": round(w["end"], 3),
                       "confidence": round(w["confidence"], 4)} for w in d["words"]]
        d["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return d


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
    """Map ``cpu|cuda|auto`` to the backend that will run; raises :class:`DeviceError` for an unusable choice."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: choose cpu, cuda or auto")
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cpu"  # only the CPU backend exists so far; auto silently uses it
    raise DeviceError("device 'cuda': the numba.cuda backend is not part of this version yet; use --device cpu")


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
    """

    def __init__(self, model=None, device: str = "auto", beam_width: int = DEFAULT_BEAM,
                 segment_seconds: float = 30.0):
        self.device = resolve_device(device)
        if isinstance(model, AcousticModel):
            self.model = model
        else:
            self.model = load_model(default_model_dir() if model is None else model)
        if int(beam_width) < 1:
            raise ValueError("beam_width must be >= 1")
        if not segment_seconds >= 1.0:
            raise ValueError("segment_seconds must be >= 1")
        self.beam_width = int(beam_width)
        self.segment_seconds = float(segment_seconds)

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    def transcribe(self, audio, sample_rate: int | None = None, beam_width: int | None = None,
                   progress=None) -> Transcript:
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

        words, pieces, total_score, n_samples = [], [], 0.0, 0
        while True:
            t0 = time.perf_counter()
            nxt = next(segments, None)
            timings["audio"] += time.perf_counter() - t0
            if nxt is None:
                break
            start, seg = nxt
            n_samples = start + len(seg)
            text, seg_words, score = self._transcribe_segment(seg, start / sr, beam, timings)
            total_score += score
            words.extend(seg_words)
            pieces.append({"start": round(start / sr, 3), "end": round((start + len(seg)) / sr, 3), "text": text})
            if progress is not None:
                progress(len(seg) / sr)
        text = " ".join(p["text"] for p in pieces if p["text"])
        return Transcript(text=text, words=words, duration=n_samples / sr, score=total_score, segments=pieces,
                          model=self.model.config.name, timings=timings)

    def _transcribe_segment(self, samples, offset, beam, timings):
        from .decoding import decode

        cfg = self.model.config
        t0 = time.perf_counter()
        feats = self.model.featurize(samples)
        t1 = time.perf_counter()
        lp = self.model.log_probs([feats])[0]
        t2 = time.perf_counter()
        hyp = decode(lp, cfg.tokens, blank=cfg.blank_index, beam_width=beam)
        words = _words(hyp, cfg.tokens, cfg.frame_seconds, offset)
        t3 = time.perf_counter()
        timings["features"] += t1 - t0
        timings["model"] += t2 - t1
        timings["decoding"] += t3 - t2
        return " ".join(w.word for w in words), words, float(hyp.score)


def _words(hyp, tokens, frame_seconds, offset) -> list:
    """Group a hypothesis' units into words at space units, with times and confidences."""
    words, cur, frames, scores = [], [], [], []

    def flush():
        if cur:
            start = offset + frames[0] * frame_seconds
            end = offset + (frames[-1] + 1) * frame_seconds
            conf = float(np.exp(np.mean(scores)))
            words.append(Word("".join(cur), start, end, min(1.0, max(0.0, conf))))
        cur.clear(), frames.clear(), scores.clear()

    for tid, fr, sc in zip(hyp.token_ids, hyp.frames, hyp.token_scores):
        piece = tokens[int(tid)]
        if piece.isspace():
            flush()
        else:
            cur.append(piece)
            frames.append(int(fr))
            scores.append(float(sc))
    flush()
    return words


def output_path(output_dir, source, fmt: str) -> str:
    """Where ``--output-dir`` writes the transcript of ``source`` in format ``fmt``."""
    stem = "stdin" if str(source) == "-" else Path(str(source)).stem or "audio"
    return os.path.join(str(output_dir), f"{stem}.{fmt}")
