"""Acoustic model: the model directory format and the bidirectional LSTM forward pass.

A model is a directory::

    my-model/
      config.json    format version, sample rate, features, normalization, architecture, tokens
      weights.npz    float32 or float16 arrays (names below)
      README.md      model card: data, training, measured accuracy

``config.json`` fields (all validated at load time):

``format``          the string ``"speechlstm-model"``
``format_version``  ``1`` (character models), ``2`` (models with a ``units`` field: phone models)
``name``            a short model name
``sample_rate``     audio rate the model expects (Hz); must equal ``features.sample_rate``
``features``        a :class:`speechlstm.features.FeatureConfig` as a dict
``normalization``   ``{"mode": "none"}``, ``{"mode": "utterance"}`` (per-utterance CMVN) or
                    ``{"mode": "global", "mean": [...], "std": [...]}`` (one value per feature dim)
``architecture``    ``{"type": "bilstm", "input_dim": D, "frame_stacking": k, "hidden_size": H,
                    "num_layers": L}``
``tokens``          list of output units; ``tokens[blank_index]`` is the CTC blank, every other entry is the
                    text it stands for (one character for character models)
``blank_index``     index of the CTC blank in ``tokens``
``weights``         file name of the weights inside the directory (default ``"weights.npz"``)
``units``           (version 2) ``"chars"`` or ``"phones"``: what the non-blank tokens spell. Phone models output
                    CMUdict phones (no stress) and a word-boundary token ``" "``; words come from a
                    pronunciation lexicon (:mod:`speechlstm.lexicon`)
``lexicon``         (phone models) file name of the pronunciation lexicon inside the directory, with its
                    grapheme-to-phoneme model beside it (:meth:`speechlstm.lexicon.Lexicon.load`)

Weights (``V = len(tokens)``, ``In_0 = D * k``, ``In_l = 2H`` for ``l > 0``, gate order i, f, g, o)::

    lstm.{l}.{fw|bw}.w_ih   (4H, In_l)
    lstm.{l}.{fw|bw}.w_hh   (4H, H)
    lstm.{l}.{fw|bw}.bias   (4H,)        b_ih + b_hh in PyTorch terms
    output.weight           (V, 2H)
    output.bias             (V,)

The network: frame stacking with subsampling by ``k`` (concatenate ``k`` consecutive normalized frames, keep every
``k``-th group, zero-padding the last one), ``L`` bidirectional LSTM layers (forward and backward outputs
concatenated), a linear layer to ``V`` outputs and a log-softmax.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelError
from .features import FeatureConfig, compute_features, normalize_features

FORMAT = "speechlstm-model"
FORMAT_VERSION = 2
#: Format versions this speechlstm reads (character models are still written as version 1).
FORMAT_VERSIONS = (1, 2)
#: Output units a model may spell words with.
UNITS = ("chars", "phones")
NORMALIZATION_MODES = ("none", "utterance", "global")


@dataclass(frozen=True)
class Architecture:
    """Shape of the stacked bidirectional LSTM.

    Examples
    --------
    >>> Architecture(input_dim=80, hidden_size=320, num_layers=3).to_dict()["type"]
    'bilstm'
    """

    input_dim: int
    hidden_size: int
    num_layers: int
    frame_stacking: int = 1
    type: str = "bilstm"

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "input_dim": self.input_dim,
            "frame_stacking": self.frame_stacking,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
        }


@dataclass
class ModelConfig:
    """Everything in ``config.json`` except the weights.

    Examples
    --------
    >>> cfg = ModelConfig.from_dict(ModelConfig.example().to_dict())
    >>> cfg.num_outputs
    29
    """

    name: str
    features: FeatureConfig
    architecture: Architecture
    tokens: list
    blank_index: int = 0
    normalization: dict = field(default_factory=lambda: {"mode": "utterance"})
    weights_file: str = "weights.npz"
    confidence: dict | None = None  # optional word-confidence calibration (speechlstm.transcribe), see from_dict
    units: str = "chars"
    lexicon_file: str | None = None  # phone models: the pronunciation lexicon inside the model directory

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def num_outputs(self) -> int:
        return len(self.tokens)

    @property
    def frame_seconds(self) -> float:
        """Duration of one output frame of the network (hop times frame stacking), in seconds."""
        return self.features.hop_length * self.architecture.frame_stacking / self.features.sample_rate

    def featurize(self, samples: np.ndarray) -> np.ndarray:
        """Normalized feature frames ``(T, D)`` of mono float32 audio at :attr:`sample_rate`.

        Examples
        --------
        >>> ModelConfig.example().featurize(np.zeros(1600, np.float32)).shape
        (11, 80)
        """
        n = self.normalization
        return normalize_features(compute_features(samples, self.features), n["mode"], n.get("mean"), n.get("std"))

    def to_dict(self) -> dict:
        phones = self.units != "chars"
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION if phones else 1,  # character models stay readable by older versions
            "name": self.name,
            "sample_rate": self.sample_rate,
            "features": self.features.to_dict(),
            "normalization": self.normalization,
            "architecture": self.architecture.to_dict(),
            "tokens": list(self.tokens),
            "blank_index": self.blank_index,
            "weights": self.weights_file,
            **({"confidence": self.confidence} if self.confidence is not None else {}),
            **({"units": self.units, "lexicon": self.lexicon_file} if phones else {}),
        }

    @classmethod
    def example(cls, hidden_size: int = 32, num_layers: int = 2, frame_stacking: int = 1) -> "ModelConfig":
        """A character-level configuration (blank, space, apostrophe, a-z) with small default sizes."""
        feats = FeatureConfig()
        tokens = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
        arch = Architecture(input_dim=feats.dim, hidden_size=hidden_size, num_layers=num_layers,
                            frame_stacking=frame_stacking)
        return cls(name="example", features=feats, architecture=arch, tokens=tokens)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config.json") -> "ModelConfig":
        """Validate a parsed ``config.json``; raises :class:`ModelError` naming the offending field."""

        def fail(msg):
            raise ModelError(f"{where}: {msg}")

        if not isinstance(d, dict):
            fail("top level must be a JSON object")
        if d.get("format") != FORMAT:
            fail(f"'format' must be {FORMAT!r} (got {d.get('format')!r})")
        version = d.get("format_version")
        if not _is_int(version) or version not in FORMAT_VERSIONS:
            fail(f"unsupported format_version {version!r} (this speechlstm reads versions "
                 f"{', '.join(map(str, FORMAT_VERSIONS))})")
        for key in ("name", "sample_rate", "features", "normalization", "architecture", "tokens", "blank_index"):
            if key not in d:
                fail(f"missing field '{key}'")
        name = d["name"]
        if not isinstance(name, str) or not name:
            fail("'name' must be a non-empty string")
        if not isinstance(d["features"], dict):
            fail("'features' must be an object")
        try:
            feats = FeatureConfig.from_dict(d["features"])
        except (ValueError, TypeError) as exc:
            fail(str(exc))
        if not _is_int(d["sample_rate"]) or d["sample_rate"] != feats.sample_rate:
            fail(f"'sample_rate' ({d['sample_rate']!r}) must equal features.sample_rate ({feats.sample_rate})")

        a = d["architecture"]
        if not isinstance(a, dict):
            fail("'architecture' must be an object")
        if a.get("type") != "bilstm":
            fail(f"architecture.type must be 'bilstm' (got {a.get('type')!r})")
        for key in ("input_dim", "hidden_size", "num_layers", "frame_stacking"):
            if not _is_int(a.get(key)) or a[key] < 1:
                fail(f"architecture.{key} must be a positive integer (got {a.get(key)!r})")
        unknown = set(a) - {"type", "input_dim", "hidden_size", "num_layers", "frame_stacking"}
        if unknown:
            fail(f"architecture has unknown field(s): {', '.join(sorted(unknown))}")
        if a["input_dim"] != feats.dim:
            fail(f"architecture.input_dim ({a['input_dim']}) does not match the feature dimension ({feats.dim})")
        arch = Architecture(input_dim=a["input_dim"], hidden_size=a["hidden_size"], num_layers=a["num_layers"],
                            frame_stacking=a["frame_stacking"])

        tokens = d["tokens"]
        if not isinstance(tokens, list) or len(tokens) < 2 or not all(isinstance(t, str) for t in tokens):
            fail("'tokens' must be a list of at least 2 strings")
        blank = d["blank_index"]
        if not _is_int(blank) or not 0 <= blank < len(tokens):
            fail(f"'blank_index' must be an integer in [0, {len(tokens)})")
        if any(t == "" for i, t in enumerate(tokens) if i != blank):
            fail("'tokens' has an empty string for a non-blank unit")
        if len(set(tokens)) != len(tokens):
            fail("'tokens' has duplicate entries")

        norm = d["normalization"]
        if not isinstance(norm, dict) or norm.get("mode") not in NORMALIZATION_MODES:
            fail(f"normalization.mode must be one of {', '.join(NORMALIZATION_MODES)}")
        if norm["mode"] == "global":
            for key in ("mean", "std"):
                vals = norm.get(key)
                if not isinstance(vals, list) or len(vals) != feats.dim or not all(_is_num(v) for v in vals):
                    fail(f"normalization.{key} must be a list of {feats.dim} numbers")
            if any(v <= 0 for v in norm["std"]):
                fail("normalization.std must be positive")

        weights_file = d.get("weights", "weights.npz")
        if not isinstance(weights_file, str) or not weights_file or os.sep in weights_file or "/" in weights_file:
            fail("'weights' must be a file name inside the model directory")
        conf = d.get("confidence")
        if conf is not None:  # {"method": "logistic", "greedy": [3 numbers], "beam": [4 numbers], "fit": {...}}
            if not isinstance(conf, dict) or conf.get("method") != "logistic":
                fail("'confidence' must be an object with \"method\": \"logistic\"")
            unknown = set(conf) - {"method", "greedy", "beam", "fit"}
            if unknown:
                fail(f"confidence has unknown field(s): {', '.join(sorted(unknown))}")
            for key, n in (("greedy", 3), ("beam", 4)):
                w = conf.get(key)
                if w is not None and (not isinstance(w, list) or len(w) != n or not all(_is_num(v) for v in w)):
                    fail(f"confidence.{key} must be a list of {n} numbers")
            conf = dict(conf)
        units, lexicon_file = d.get("units", "chars"), d.get("lexicon")
        if version < 2 and ("units" in d or "lexicon" in d):
            fail("'units' and 'lexicon' need format_version 2")
        if units not in UNITS:
            fail(f"'units' must be one of {', '.join(UNITS)} (got {units!r})")
        if units == "phones":
            if not isinstance(lexicon_file, str) or not lexicon_file or os.sep in lexicon_file or "/" in lexicon_file:
                fail("a phone model needs 'lexicon': a file name inside the model directory")
            from .lexicon import PHONES

            bad = [t for i, t in enumerate(tokens) if i != blank and not t.isspace() and t not in PHONES]
            if bad:
                fail(f"'tokens' of a phone model must be CMUdict phones or a space (not {bad[0]!r})")
            if " " not in tokens:
                fail("'tokens' of a phone model need the word boundary \" \"")
        elif lexicon_file is not None:
            fail("'lexicon' is only for phone models (\"units\": \"phones\")")
        return cls(name=name, features=feats, architecture=arch, tokens=list(tokens), blank_index=blank,
                   normalization=dict(norm), weights_file=weights_file, confidence=conf, units=units,
                   lexicon_file=lexicon_file)

    def expected_shapes(self) -> dict:
        """Name -> shape of every weight array this configuration needs."""
        a = self.architecture
        H, shapes = a.hidden_size, {}
        for layer in range(a.num_layers):
            in_dim = a.input_dim * a.frame_stacking if layer == 0 else 2 * H
            for d in ("fw", "bw"):
                shapes[f"lstm.{layer}.{d}.w_ih"] = (4 * H, in_dim)
                shapes[f"lstm.{layer}.{d}.w_hh"] = (4 * H, H)
                shapes[f"lstm.{layer}.{d}.bias"] = (4 * H,)
        shapes["output.weight"] = (self.num_outputs, 2 * H)
        shapes["output.bias"] = (self.num_outputs,)
        return shapes


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


class AcousticModel:
    """A loaded model: front end, normalization and BiLSTM with its weights packed for the kernels.

    Parameters
    ----------
    config : ModelConfig
    weights : dict of str to ndarray
        Arrays named as in the module docstring (validated here; float16 is widened to float32).
    path : str, optional
        Directory it was loaded from, for messages.
    lexicon : speechlstm.lexicon.Lexicon, optional
        A phone model's pronunciation lexicon (:func:`load_model` reads it from the directory); the decoders
        write words through it.

    Examples
    --------
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> m = AcousticModel(cfg, random_weights(cfg, seed=0))
    >>> lp = m.log_probs([m.featurize(np.zeros(16000, np.float32))])[0]
    >>> lp.shape
    (101, 29)
    """

    def __init__(self, config: ModelConfig, weights: dict, path: str | None = None, lexicon=None):
        self.config = config
        self.path = path
        self.lexicon = lexicon
        where = f"{path}/{config.weights_file}" if path else config.weights_file
        self.weights = _validate_weights(config, weights, where)
        from .kernels import lstm as _lstm

        self._lstm = _lstm
        a = config.architecture
        self._packed = []
        for layer in range(a.num_layers):
            packs = []
            for d in ("fw", "bw"):
                p = f"lstm.{layer}.{d}."
                packs.append(_lstm.pack_direction(self.weights[p + "w_ih"], self.weights[p + "w_hh"],
                                                  self.weights[p + "bias"]))
            self._packed.append(tuple(packs))
        self._out_w = np.ascontiguousarray(self.weights["output.weight"])
        self._out_b = np.ascontiguousarray(self.weights["output.bias"])

    @property
    def num_parameters(self) -> int:
        return int(sum(w.size for w in self.weights.values()))

    def featurize(self, samples: np.ndarray) -> np.ndarray:
        """Normalized feature frames ``(T, D)`` of mono float32 audio at the model's sample rate."""
        return self.config.featurize(samples)

    def log_probs(self, features: Sequence[np.ndarray]) -> list:
        """CTC log-probabilities ``(T', V)`` for each feature matrix, computed as one padded batch.

        Each result is independent of what it is batched with.
        """
        if len(features) == 0:
            return []
        a = self.config.architecture
        lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
        if lengths.min() < 1:
            raise ValueError("every feature matrix needs at least one frame")
        B, T = len(features), int(lengths.max())
        x = np.zeros((B, T, a.input_dim), dtype=np.float32)
        for b, f in enumerate(features):
            if f.ndim != 2 or f.shape[1] != a.input_dim:
                raise ValueError(f"features must be (T, {a.input_dim}), got {f.shape}")
            x[b, : f.shape[0]] = f
        # the kernels serialize their own parallel launches where Numba's threading layer needs it
        x, lengths = self._lstm.stack_frames(x, lengths, a.frame_stacking)
        for fw, bw in self._packed:
            x = self._lstm.bilstm_layer(x, lengths, fw, bw)
        lp = self._lstm.linear_log_softmax(x, lengths, self._out_w, self._out_b)
        return [lp[b, : lengths[b]] for b in range(B)]

    def summary(self) -> str:
        """Human-readable description: config and parameter count (used by ``speechlstm info``)."""
        c, a = self.config, self.config.architecture
        f = c.features
        lines = [
            f"model:        {c.name}" + (f"  ({self.path})" if self.path else ""),
            f"format:       {FORMAT} v{2 if c.units != 'chars' else 1}",
            f"sample rate:  {c.sample_rate} Hz",
            f"features:     {f.kind}, {f.dim} dims ({f.n_mels} mels"
            + (f", {f.n_mfcc} MFCC" if f.kind == "mfcc" else "")
            + (f", deltas {f.deltas}" if f.deltas else "")
            + f"), window {f.win_length}, hop {f.hop_length}, n_fft {f.n_fft}, pre-emphasis {f.preemphasis}",
            f"normalization: {c.normalization['mode']}",
            f"architecture: {a.num_layers} x BiLSTM, hidden {a.hidden_size} per direction, "
            f"frame stacking x{a.frame_stacking} ({c.frame_seconds * 1000:.0f} ms per output frame)",
            f"tokens:       {c.num_outputs} (blank at {c.blank_index}): "
            + ("".join(t if i != c.blank_index else "" for i, t in enumerate(c.tokens)).replace(" ", "\u2423")
               if c.units == "chars" else
               "CMUdict phones " + " ".join(t.replace(" ", "\u2423") for i, t in enumerate(c.tokens)
                                            if i != c.blank_index) + f", lexicon {c.lexicon_file}"),
            f"parameters:   {self.num_parameters:,}",
        ]
        return "\n".join(lines)


def _validate_weights(config: ModelConfig, weights: dict, where: str) -> dict:
    expected = config.expected_shapes()
    missing = [k for k in expected if k not in weights]
    if missing:
        raise ModelError(f"{where}: missing array(s) {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else ""))
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise ModelError(f"{where}: unexpected array(s) {', '.join(extra[:4])} for this architecture")
    out = {}
    for k, shape in expected.items():
        w = np.asarray(weights[k])
        if w.shape != shape:
            raise ModelError(f"{where}: array '{k}' has shape {w.shape}, config.json implies {shape}")
        if w.dtype not in (np.float32, np.float16):
            raise ModelError(f"{where}: array '{k}' has dtype {w.dtype}; float32 or float16 expected")
        w = np.ascontiguousarray(w, dtype=np.float32)
        if not np.all(np.isfinite(w)):
            raise ModelError(f"{where}: array '{k}' contains NaN or infinite values")
        out[k] = w
    return out


def load_model(path) -> AcousticModel:
    """Load and validate a model directory.

    Parameters
    ----------
    path : str or PathLike
        The model directory (holding ``config.json`` and the weights file).

    Raises
    ------
    ModelError
        With one line naming the file and what is wrong with it.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> save_model(d, cfg, random_weights(cfg))
    >>> load_model(d).config.architecture.hidden_size
    8
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such model directory")
    if not p.is_dir():
        raise ModelError(f"{p}: a model is a directory holding config.json and weights")
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"{cfg_path}: missing (not a speechlstm model directory)")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{cfg_path}: not valid JSON ({_one_line(exc)})") from None
    config = ModelConfig.from_dict(raw, where=str(cfg_path))
    w_path = p / config.weights_file
    if not w_path.is_file():
        raise ModelError(f"{w_path}: missing weights file")
    try:
        with np.load(w_path, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelError(f"{w_path}: corrupt or not a .npz file ({_one_line(exc)})") from None
    lexicon = None
    if config.units == "phones":
        from .lexicon import Lexicon, LexiconError

        lex_path = p / config.lexicon_file
        if not lex_path.is_file():
            raise ModelError(f"{lex_path}: missing pronunciation lexicon")
        try:
            lexicon = Lexicon.load(lex_path)
        except (LexiconError, ValueError, OSError, EOFError, KeyError) as exc:
            raise ModelError(f"{lex_path}: corrupt lexicon ({_one_line(exc)})") from None
    return AcousticModel(config, weights, path=str(p), lexicon=lexicon)


def save_model(path, config: ModelConfig, weights: dict, card: str | None = None, dtype=np.float32) -> None:
    """Write a model directory (``config.json``, weights, ``README.md`` model card).

    Files are written to temporary names and renamed, so an interrupted save never leaves a broken model.

    Examples
    --------
    >>> import tempfile
    >>> cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    >>> save_model(tempfile.mkdtemp(), cfg, random_weights(cfg))
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    _validate_weights(config, weights, config.weights_file)
    arrays = {k: np.asarray(v, dtype=dtype) for k, v in weights.items()}
    tmp_w = p / (config.weights_file + ".tmp.npz")
    np.savez(tmp_w, **arrays)
    os.replace(tmp_w, p / config.weights_file)
    tmp_c = p / "config.json.tmp"
    tmp_c.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_c, p / "config.json")
    if card is None and not (p / "README.md").exists():
        card = (f"# {config.name}\n\nUntrained or test model written by speechlstm.save_model: no training data, "
                "no measured accuracy.\n")
    if card is not None:
        (p / "README.md").write_text(card, encoding="utf-8")


def random_weights(config: ModelConfig, seed: int = 0, scale: float | None = None) -> dict:
    """Random weights of the right shapes (uniform in +-1/sqrt(H), PyTorch's LSTM init), for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    s = scale if scale is not None else 1.0 / np.sqrt(config.architecture.hidden_size)
    return {k: rng.uniform(-s, s, size=shape).astype(np.float32) for k, shape in config.expected_shapes().items()}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
