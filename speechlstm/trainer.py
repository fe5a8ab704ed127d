"""Training loop: a recipe, the data loader, the network's forward/backward pass and Adam, resumable exactly.

A *recipe* is a JSON object (``recipes/*.json``) with five sections; every field has a default
(:data:`DEFAULT_RECIPE`) and unknown fields are errors::

    name      model name written into the exported model
    seed      seeds parameter initialization, data order/augmentation and dropout
    model     hidden_size, num_layers, frame_stacking, features (FeatureConfig fields), normalization
              ("utterance", "global" or "none"), tokens ("chars", "phones" or an explicit list of characters,
              blank first), lexicon (phone models: the CMUdict file their labels and lexicon come from),
              forget_bias, init (a model directory to start from instead of random weights: fine-tuning or a
              warm restart; its architecture and features must match, except that a larger hidden_size grows
              it without changing its outputs (:func:`widen_params`), and its normalization statistics are
              kept), init_layers ("all": the tokens must match too; "encoder": the LSTM layers only, with a new
              output layer, e.g. to start a phone model from a character model's encoder)
    data      train: [[manifest, weight], ...], an entry optionally with options as a third element:
              {"sources": {source: multiplier}, "nonspeech": bool} (per-source weights; empty transcripts kept);
              dev: manifest or null; noise: noise manifest or null;
              batch_frames, max_batch, max_duration, num_workers, epoch_seconds, augment (Augment fields or
              null), global_stats_utterances, dev_max_utterances, dev_batch_frames
    optim     lr (peak), betas, eps, weight_decay, decoupled, warmup_steps, decay, min_lr, decay_rate,
              clip_norm, dropout, loss_normalization ("tokens" or "utterances")
    run       epochs, checkpoint_minutes, average_last, max_nonfinite, log_every

Relative paths in a recipe are resolved against the recipe's folder, except paths starting with
``shared/``, ``corpus/`` or ``runs/``: those are looked up in the nearest such folder found in that folder or
one of its parents (the project's data lives in ``shared/`` beside the checkout; generated TTS corpora go to
``corpus/`` and training runs to ``runs/`` beside it too, outside the repository).

The gradient
------------
:func:`speechlstm.network.forward_backward` returns the gradient of the **sum** of the finite per-utterance
CTC losses. With ``loss_normalization = "tokens"`` (default) the trainer divides it by the number of label
tokens of those utterances (the loss per output character, which keeps the gradient scale independent of how
many utterances a frame-budgeted batch holds; a non-speech utterance, whose label is empty, counts as one
token); with ``"utterances"`` by their number. The logged ``loss`` is
normalized the same way. The scaled gradient is clipped to global norm ``clip_norm``, then Adam(W) steps with
the learning rate of :class:`speechlstm.optim.LRSchedule` (warm-up, then ``decay`` over all the steps of
``run.epochs`` epochs).

Bad batches
-----------
Utterances with a ``+inf`` loss (labels that cannot fit their frames) are left out of the batch and counted as
``infeasible``. A batch with a NaN or ``-inf`` loss, or a non-finite gradient norm, is skipped (no update) and
reported; ``max_nonfinite`` consecutive skipped batches stop training with :class:`TrainingDiverged`, and the
last checkpoint written before the streak began is left as it is (no checkpoint is written during a streak).

Checkpoints and resume
----------------------
``run_dir/checkpoint.npz`` holds the parameters, Adam's moments and a JSON record of everything else: recipe,
model config (with global normalization statistics), optimizer step, schedule, epoch, index of the next batch
of that epoch, running epoch sums, history and elapsed time. It is written to a temporary file, flushed to
disk and renamed, so a kill never leaves a broken one. It is written every ``checkpoint_minutes``, at the end
of every epoch and when training stops. The data loader is deterministic given ``(seed, epoch)`` and the
dropout masks of a batch come from a generator seeded with ``(seed, epoch, batch)``, so a resumed run makes
exactly the updates an uninterrupted one makes: the parameters are bitwise identical.

Files in ``run_dir``: ``checkpoint.npz``, ``log.csv`` (one row per epoch: epoch, step, loss, lr, grad_norm,
dev_cer, dev_wer, seconds, skipped, infeasible), ``dev.csv`` (the dev error per source after each epoch: epoch,
step, source, utterances, cer, wer; source ``all`` is the whole set), ``steps.csv`` (every ``log_every`` steps),
``train.log``,
``snapshots/epoch-NNNN.npz`` (parameters at the end of the last ``average_last`` epochs, averaged at export),
``model/`` (the exported model directory, :func:`speechlstm.model.load_model` format) and, for phone models,
``lexicon.txt.gz`` (the pronunciation lexicon and G2P the run labels with, copied into the exported model).

Examples
--------
>>> r = merge_recipe(DEFAULT_RECIPE, {"optim": {"lr": 0.01}})
>>> r["optim"]["lr"], r["optim"]["clip_norm"]
(0.01, 5.0)
>>> apply_override(r, "run.epochs=3")["run"]["epochs"]
3
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import SpeechlstmError
from .features import FeatureConfig
from .model import Architecture, ModelConfig, save_model
from .optim import Adam, LRSchedule, average_params, clip_global_norm

__all__ = ["DEFAULT_RECIPE", "Trainer", "TrainingDiverged", "load_recipe", "merge_recipe", "apply_override",
           "resolve_path", "CHECKPOINT", "load_checkpoint", "evaluate_log_probs"]

CHECKPOINT = "checkpoint.npz"
CHECKPOINT_FORMAT = "speechlstm-checkpoint"
CHECKPOINT_VERSION = 1
CHAR_TOKENS = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
#: File name of a phone model's pronunciation lexicon in its model directory (and in the run directory).
LEXICON_FILE = "lexicon.txt.gz"
EPOCH_COLUMNS = ["epoch", "step", "loss", "lr", "grad_norm", "dev_cer", "dev_wer", "seconds", "skipped",
                 "infeasible"]
STEP_COLUMNS = ["step", "epoch", "batch", "loss", "lr", "grad_norm", "utterances", "frames", "seconds"]
DEV_COLUMNS = ["epoch", "step", "source", "utterances", "cer", "wer"]

DEFAULT_RECIPE = {
    "name": "speechlstm",
    "seed": 0,
    "model": {
        "hidden_size": 256,
        "num_layers": 3,
        "frame_stacking": 3,
        "features": {},
        "normalization": "utterance",
        "tokens": "chars",
        "forget_bias": 1.0,
        "init": None,
        "init_layers": "all",
        "lexicon": "shared/data/text/cmudict.dict",
    },
    "data": {
        "train": [],
        "dev": None,
        "noise": None,
        "batch_frames": 20000,
        "max_batch": 64,
        "max_duration": 20.0,
        "num_workers": 2,
        "epoch_seconds": None,
        "augment": None,
        "global_stats_utterances": 2000,
        "dev_max_utterances": None,
        "dev_batch_frames": 40000,
    },
    "optim": {
        "lr": 1e-3,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled": True,
        "warmup_steps": 500,
        "decay": "cosine",
        "min_lr": 1e-5,
        "decay_rate": None,
        "clip_norm": 5.0,
        "dropout": 0.0,
        "loss_normalization": "tokens",
    },
    "run": {
        "epochs": 10,
        "checkpoint_minutes": 10.0,
        "average_last": 1,
        "max_nonfinite": 5,
        "log_every": 10,
    },
}


class TrainingDiverged(SpeechlstmError):
    """Too many consecutive batches with a NaN/Inf loss or gradient; the last good checkpoint is kept."""


# ---------------------------------------------------------------- recipes
def merge_recipe(base: dict, overrides: dict, where: str = "recipe") -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``; unknown keys are errors.

    Sections that are free-form (``model.features``, ``data.augment``) are taken as given.

    Examples
    --------
    >>> merge_recipe(DEFAULT_RECIPE, {"run": {"epochs": 2}})["run"]["epochs"]
    2
    >>> merge_recipe(DEFAULT_RECIPE, {"run": {"epoch": 2}})
    Traceback (most recent call last):
    ...
    ValueError: recipe: unknown field 'run.epoch'
    """
    out = copy.deepcopy(base)

    def merge(dst, src, prefix):
        for k, v in src.items():
            key = f"{prefix}{k}"
            if k not in dst:
                raise ValueError(f"{where}: unknown field '{key}'")
            if isinstance(dst[k], dict) and key not in ("model.features",) and isinstance(v, dict):
                merge(dst[k], v, key + ".")
            else:
                dst[k] = copy.deepcopy(v)

    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: must be a JSON object")
    merge(out, overrides, "")
    return out


def apply_override(recipe: dict, assignment: str) -> dict:
    """Apply ``"section.key=value"`` (value parsed as JSON, else taken as a string) to a recipe in place.

    Examples
    --------
    >>> r = copy.deepcopy(DEFAULT_RECIPE)
    >>> apply_override(r, "optim.decay=noam")["optim"]["decay"]
    'noam'
    """
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r}: expected section.key=value")
    key, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = {}
    cur = node
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value
    merged = merge_recipe(recipe, node, where=f"override {assignment!r}")
    recipe.clear()
    recipe.update(merged)
    return recipe


def load_recipe(path) -> tuple[dict, str]:
    """Read a recipe file; returns ``(recipe merged with the defaults, folder for relative paths)``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "r.json")
    >>> _ = open(p, "w").write('{"name": "x", "run": {"epochs": 1}}')
    >>> r, base = load_recipe(p)
    >>> r["name"], r["run"]["epochs"], base == os.path.dirname(os.path.abspath(p))
    ('x', 1, True)
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: cannot read recipe ({exc})") from None
    raw.pop("comment", None)
    return merge_recipe(DEFAULT_RECIPE, raw, where=str(p)), str(p.resolve().parent)


def resolve_path(path, base_dir) -> str | None:
    """Resolve a recipe path (see the module docstring); ``None`` stays ``None``.

    Examples
    --------
    >>> resolve_path("/abs/x.jsonl", "/somewhere")
    '/abs/x.jsonl'
    >>> resolve_path("data/x.jsonl", "/r")
    '/r/data/x.jsonl'
    """
    if path is None:
        return None
    p = Path(path)
    if p.is_absolute():
        return str(p)
    if p.parts and p.parts[0] in ("shared", "corpus", "runs"):
        for d in [Path(base_dir).resolve(), *Path(base_dir).resolve().parents]:
            if (d / p.parts[0]).is_dir():
                return str(d / p)
    return str(Path(base_dir) / p)


def build_config(recipe: dict) -> ModelConfig:
    """The :class:`ModelConfig` a recipe describes (normalization statistics are filled in later).

    Examples
    --------
    >>> cfg = build_config(merge_recipe(DEFAULT_RECIPE, {"model": {"hidden_size": 8, "num_layers": 1}}))
    >>> cfg.num_outputs, cfg.architecture.input_dim, cfg.normalization
    (29, 80, {'mode': 'utterance'})
    """
    m = recipe["model"]
    feats = FeatureConfig.from_dict(dict(m["features"]))
    units, lexicon_file = "chars", None
    if m["tokens"] == "phones":
        from .lexicon import PHONES

        tokens, units, lexicon_file = ["<blank>", " "] + list(PHONES), "phones", LEXICON_FILE
    else:
        tokens = CHAR_TOKENS if m["tokens"] == "chars" else list(m["tokens"])
    arch = Architecture(input_dim=feats.dim, hidden_size=int(m["hidden_size"]), num_layers=int(m["num_layers"]),
                        frame_stacking=int(m["frame_stacking"]))
    if m["normalization"] not in ("utterance", "global", "none"):
        raise ValueError("model.normalization must be 'utterance', 'global' or 'none'")
    if m["init_layers"] not in ("all", "encoder"):
        raise ValueError("model.init_layers must be 'all' or 'encoder'")
    cfg = ModelConfig(name=recipe["name"], features=feats, architecture=arch, tokens=tokens, blank_index=0,
                      normalization={"mode": m["normalization"]}, units=units, lexicon_file=lexicon_file)
    ModelConfig.from_dict(cfg.to_dict() if m["normalization"] != "global" else
                          {**cfg.to_dict(), "normalization": {"mode": "none"}})  # validate
    return cfg


# ---------------------------------------------------------------- checkpoint files
def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_savez(path: Path, arrays: dict) -> None:
    """``np.savez`` to a temporary file in the same folder, fsync, rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def widen_params(params: dict, H_from: int, fresh: dict, H_to: int, num_layers: int) -> dict:
    """Grow a BiLSTM from ``H_from`` to ``H_to`` units per direction without changing what it computes.

    The old weights keep their places (gate blocks ``i, f, g, o`` of ``H_to`` rows each; a layer above reads
    ``[forward h, backward h]`` of ``H_to`` each); the new units take their incoming weights and biases from
    ``fresh`` (a freshly initialized parameter set of the wide shape) and get zero outgoing weights, so the old
    units and the output layer see exactly what they saw before and the new units start contributing as training
    gives those weights values (Net2WiderNet-style growth, with zeros instead of copies so that the new units are
    not replicas of old ones).

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        The narrow model's weights (``H_from`` units per direction).
    H_from, H_to : int
        Old and new hidden sizes, ``H_from <= H_to``.
    fresh : dict of str to numpy.ndarray
        Weights of the wide shape (e.g. :func:`speechlstm.network.init_params`): the new units' incoming weights.
    num_layers : int

    Returns
    -------
    dict of str to numpy.ndarray
        float32 weights of the wide shape.

    Examples
    --------
    >>> from speechlstm.model import ModelConfig
    >>> from speechlstm.network import init_params
    >>> narrow = init_params(ModelConfig.example(hidden_size=4, num_layers=2), seed=0)
    >>> wide = widen_params(narrow, 4, init_params(ModelConfig.example(hidden_size=6, num_layers=2), seed=1), 6, 2)
    >>> wide["lstm.1.fw.w_hh"].shape, float(abs(wide["output.weight"][:, 4:6]).max())
    ((24, 6), 0.0)
    """
    if H_from > H_to:
        raise ValueError(f"cannot narrow a model ({H_from} -> {H_to} units)")
    old_rows = np.concatenate([g * H_to + np.arange(H_from) for g in range(4)])
    old_units = np.concatenate([np.arange(H_from), H_to + np.arange(H_from)])  # columns of [fw h, bw h]
    new_units = np.setdiff1d(np.arange(2 * H_to), old_units)
    out = {}
    for l in range(num_layers):
        for d in ("fw", "bw"):
            p = f"lstm.{l}.{d}."
            w_ih = np.array(fresh[p + "w_ih"], dtype=np.float32)
            w_hh = np.array(fresh[p + "w_hh"], dtype=np.float32)
            bias = np.array(fresh[p + "bias"], dtype=np.float32)
            cols = np.arange(w_ih.shape[1]) if l == 0 else old_units
            if l > 0:
                w_ih[np.ix_(old_rows, new_units)] = 0.0
            w_ih[np.ix_(old_rows, cols)] = params[p + "w_ih"]
            w_hh[np.ix_(old_rows, np.arange(H_from, H_to))] = 0.0
            w_hh[np.ix_(old_rows, np.arange(H_from))] = params[p + "w_hh"]
            bias[old_rows] = params[p + "bias"]
            out[p + "w_ih"], out[p + "w_hh"], out[p + "bias"] = w_ih, w_hh, bias
    w_out = np.zeros((params["output.weight"].shape[0], 2 * H_to), np.float32)
    w_out[:, old_units] = params["output.weight"]
    out["output.weight"] = w_out
    out["output.bias"] = np.array(params["output.bias"], dtype=np.float32)
    return out


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def load_checkpoint(path) -> tuple[dict, dict, dict, dict]:
    """Read a checkpoint: ``(meta, params, exp_avg, exp_avg_sq)``.

    Parameters
    ----------
    path : str or PathLike
        A run directory or the ``checkpoint.npz`` file itself.

    Examples
    --------
    >>> load_checkpoint("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/checkpoint.npz: no checkpoint
    """
    p = Path(path)
    if p.is_dir() or p.suffix != ".npz":
        p = p / CHECKPOINT
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no checkpoint")
    params, m, v = {}, {}, {}
    with np.load(p, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode("utf-8"))
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{p}: not a speechlstm checkpoint (version {CHECKPOINT_VERSION})")
        for k in z.files:
            if k.startswith("param/"):
                params[k[6:]] = z[k]
            elif k.startswith("adam_m/"):
                m[k[7:]] = z[k]
            elif k.startswith("adam_v/"):
                v[k[7:]] = z[k]
    return meta, params, m, v


# ---------------------------------------------------------------- evaluation
def _batches_by_frames(lengths, batch_frames: int, max_batch: int = 64):
    """Index groups of similar length (sorted, longest first) whose padded size fits ``batch_frames``."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    groups, cur = [], []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and ((len(cur) + 1) * longest > batch_frames or len(cur) >= max_batch):
            groups.append(cur)
            cur = []
        cur.append(int(i))
    if cur:
        groups.append(cur)
    return groups


def evaluate_log_probs(log_probs_fn, feats: list, refs: list, tokens, blank: int = 0, groups=None,
                       beam_widths=(1,), batch_frames: int = 40000, ids=None, lexicon=None) -> dict:
    """Decode utterances and score them: corpus WER/CER per beam width, per group, and per utterance.

    Parameters
    ----------
    log_probs_fn : callable
        ``log_probs_fn(list of (T, D) arrays) -> list of (T', V) log-prob arrays``.
    feats : list of ndarray
        Normalized features of each utterance.
    refs : list of str
        Reference transcripts.
    tokens : list of str
        Output units (``tokens[blank]`` is the blank).
    groups : list of str, optional
        Group (e.g. data source) of each utterance, for a breakdown.
    beam_widths : tuple of int
        1 is greedy decoding; larger values use prefix beam search.
    batch_frames : int
        Frames per batch (padded) given to ``log_probs_fn``.
    ids : list of str, optional
        Utterance ids, copied into the per-utterance records.
    lexicon : speechlstm.lexicon.Lexicon, optional
        Phone models: decode words through the lexicon (:class:`speechlstm.decoding.Decoder`, no LM) at each beam
        width (1 included) instead of spelling the units.

    Returns
    -------
    dict
        ``{"n": N, "results": {beam: ErrorCounter.to_dict()}, "utterances": [{"id", "ref", "hyp": {beam:
        text}, "cer": {beam: c}, "wer": {beam: w}, "group"}]}``.

    Examples
    --------
    >>> import numpy as np
    >>> lp = np.log(np.array([[.1, .8, .1], [.8, .1, .1], [.1, .1, .8]], np.float32))
    >>> r = evaluate_log_probs(lambda fs: [lp for f in fs], [np.zeros((3, 2), np.float32)], ["ab"], ["_", "a", "b"])
    >>> r["results"][1]["cer"], r["utterances"][0]["hyp"][1]
    (0.0, 'ab')
    """
    from .decoding import Decoder, decode
    from .metrics import ErrorCounter

    lex_decoders = {} if lexicon is None else {b: Decoder(tokens, blank=blank, beam_width=b, lexicon=lexicon)
                                               for b in beam_widths}

    n = len(feats)
    counters = {b: ErrorCounter() for b in beam_widths}
    hyps = {b: [""] * n for b in beam_widths}
    lengths = [f.shape[0] for f in feats]
    for idx in _batches_by_frames(lengths, batch_frames):
        lps = log_probs_fn([feats[i] for i in idx])
        for i, lp in zip(idx, lps):
            for b in beam_widths:
                if lexicon is not None:
                    best = lex_decoders[b].decode(lp)
                    hyps[b][i] = best[0].text if best else ""
                else:
                    hyps[b][i] = decode(lp, tokens, blank=blank, beam_width=b).text
    utts = []
    for i in range(n):
        rec = {"id": ids[i] if ids is not None else str(i), "ref": refs[i], "hyp": {}, "cer": {}, "wer": {}}
        if groups is not None:
            rec["group"] = groups[i]
        for b in beam_widths:
            c, w = counters[b].add(refs[i], hyps[b][i], group=None if groups is None else groups[i])
            rec["hyp"][b], rec["cer"][b], rec["wer"][b] = hyps[b][i], c, w
        utts.append(rec)
    return {"n": n, "results": {b: counters[b].to_dict() for b in beam_widths}, "utterances": utts}


def _read_manifest_items(path: str, max_items: int | None = None):
    """(ids, audio paths, texts, sources) of a manifest via :func:`speechlstm.data.read_manifest`."""
    from .data import read_manifest

    utts, _skipped = read_manifest(path)
    if max_items is not None and len(utts) > max_items:
        # an evenly spaced subset keeps every source represented and is the same every time
        pick = np.linspace(0, len(utts) - 1, int(max_items)).round().astype(int)
        utts = [utts[i] for i in pick]
    base = Path(path).parent
    ids, audio, texts, sources = [], [], [], []
    for u in utts:
        a = Path(u.audio)
        ids.append(u.id)
        audio.append(str(a if a.is_absolute() else base / a))
        texts.append(u.text)
        sources.append(u.source or "")
    return ids, audio, texts, sources


def featurize_files(paths, config: ModelConfig):
    """Normalized features of audio files for ``config``; returns ``(features, indices that could be read)``."""
    from .audio import load_audio
    from .errors import AudioError

    feats, ok = [], []
    for i, p in enumerate(paths):
        try:
            x = load_audio(p, config.sample_rate)
        except AudioError:
            continue
        feats.append(config.featurize(x))
        ok.append(i)
    return feats, ok


# ---------------------------------------------------------------- trainer
class Trainer:
    """Trains a model from a recipe into ``run_dir`` (see the module docstring).

    Parameters
    ----------
    recipe : dict
        A complete recipe (e.g. from :func:`load_recipe` or :func:`merge_recipe`).
    run_dir : str or PathLike
        Where checkpoints, logs and the exported model go. Must not hold a checkpoint already (use
        :meth:`resume`).
    base_dir : str, optional
        Folder relative recipe paths are resolved against (default: the current directory).
    progress : bool
        Show a tqdm progress bar per epoch.
    verbose : bool
        Print log lines to standard error (they always go to ``run_dir/train.log``).
    device : {"cpu", "cuda", "auto"}
        Where the forward/backward passes run (:class:`speechlstm.gpu.GpuNetwork` on ``cuda``; the optimizer
        and checkpoints stay on the host).  ``auto`` picks the GPU when one is usable; ``cuda`` without one
        raises :class:`~speechlstm.errors.DeviceError`.

    Examples
    --------
    >>> Trainer.resume("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/checkpoint.npz: no checkpoint
    """

    def __init__(self, recipe: dict, run_dir, base_dir: str | None = None, progress: bool = False,
                 verbose: bool = True, _checkpoint=None, device: str = "cpu"):
        self.device = _resolve_train_device(device)
        self._gpu = None
        self.recipe = merge_recipe(DEFAULT_RECIPE, recipe)
        self.run_dir = Path(run_dir)
        self.base_dir = str(Path(base_dir or ".").resolve())
        self.progress = progress
        self.verbose = verbose
        self.stop_requested = False
        self._dev = None
        self._lexicon = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        r = self.recipe
        if r["optim"]["loss_normalization"] not in ("tokens", "utterances"):
            raise ValueError("optim.loss_normalization must be 'tokens' or 'utterances'")
        if not r["data"]["train"]:
            raise ValueError("data.train: no training manifests")
        if _checkpoint is None:
            if (self.run_dir / CHECKPOINT).exists():
                raise FileExistsError(f"{self.run_dir / CHECKPOINT} exists: resume it, or use another run directory")
            self._fresh_start()
        else:
            self._restore(*_checkpoint)

    # ------------------------------------------------------------ set-up
    def _path(self, p):
        return resolve_path(p, self.base_dir)

    @property
    def lexicon(self):
        """A phone model's pronunciation lexicon with its G2P (``None`` for character models).

        Built from the recipe's ``model.lexicon`` (CMUdict) the first time and kept as ``run_dir/lexicon.txt.gz``,
        so that a resumed run labels its utterances exactly as before and the export ships the same lexicon.
        """
        if self.config.units != "phones":
            return None
        if self._lexicon is None:
            from .lexicon import Lexicon

            kept = self.run_dir / LEXICON_FILE
            if kept.exists():
                self._lexicon = Lexicon.load(kept)
            else:
                src = self._path(self.recipe["model"]["lexicon"])
                if src is None or not Path(src).is_file():
                    raise ValueError(f"model.lexicon: {self.recipe['model']['lexicon']}: no such file")
                self._log(f"building the pronunciation lexicon and G2P from {src} ...")
                self._lexicon = Lexicon.from_cmudict(src, g2p=True)
                self._lexicon.save(kept)
        return self._lexicon

    def _labeler(self):
        lex = self.lexicon
        if lex is None:
            return None
        tokens = self.config.tokens
        return lambda text: lex.labels(text, tokens)

    def _scoring_tokens(self):
        """``(tokens to decode with, reference -> scored text)`` for dev scoring.

        Character models are scored as they are. A phone model's greedy output is scored against the reference
        transcript's phones (lexicon pronunciations, G2P for the rest), every phone written as one character, so
        the "CER" column is the phone error rate and the "WER" column counts words as phone sequences.
        """
        tokens, lex = list(self.config.tokens), self.lexicon
        if lex is None:
            return tokens, None
        blank = self.config.blank_index
        glyph = [t if (i == blank or t.isspace()) else chr(0x100 + i) for i, t in enumerate(tokens)]

        def ref(text):
            return "".join(glyph[i] for i in lex.labels(text, tokens))

        return glyph, ref

    def _train_manifests(self):
        from .data import _manifest_entry

        out = []
        for item in self.recipe["data"]["train"]:
            path, weight, options = _manifest_entry(item)
            out.append((self._path(path), weight, options))
        return out

    def _fresh_start(self):
        from .network import init_params

        r = self.recipe
        self.config = build_config(r)
        init = r["model"].get("init")
        if init is not None:
            self.params = self._init_from(init)
        elif r["model"]["init_layers"] != "all":
            raise ValueError("model.init_layers 'encoder' needs model.init")
        elif r["model"]["normalization"] == "global":
            from .data import compute_global_stats

            self._log("computing global feature statistics ...")
            mean, std = compute_global_stats([m[0] for m in self._train_manifests()], self.config.features,
                                             max_utterances=int(r["data"]["global_stats_utterances"]))
            self.config.normalization = {"mode": "global", "mean": [float(x) for x in np.asarray(mean)],
                                         "std": [float(x) for x in np.asarray(std)]}
        if init is None:
            self.params = init_params(self.config, int(r["seed"]), forget_bias=float(r["model"]["forget_bias"]))
        self.params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.params.items()}
        o = r["optim"]
        self.optimizer = Adam(self.params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                              weight_decay=o["weight_decay"], decoupled=o["decoupled"])
        loader = self._make_loader()
        try:
            total = sum(int(loader.num_batches(e)) for e in range(int(r["run"]["epochs"])))
        finally:
            loader.close()
        self.schedule = LRSchedule(warmup_steps=int(o["warmup_steps"]), peak_lr=float(o["lr"]), decay=o["decay"],
                                   total_steps=total, min_lr=float(o["min_lr"]), decay_rate=o["decay_rate"])
        self.state = {
            "step": 0, "epoch": 0, "batch": 0, "elapsed": 0.0, "nonfinite_streak": 0,
            "totals": {"skipped": 0, "infeasible": 0, "batches": 0},
            "acc": self._new_acc(), "history": [], "snapshots": [],
            "data_summary": self._data_summary(),
        }
        self._truncate_logs()
        self._log(f"new run in {self.run_dir}: {sum(v.size for v in self.params.values()):,} parameters, "
                  f"{total} steps planned over {r['run']['epochs']} epochs")

    def _init_from(self, init) -> dict:
        """Parameters (and normalization statistics) of the model directory ``init`` for a warm start."""
        from .model import load_model

        path = self._path(init)
        if path is None or not Path(path).is_dir():
            raise ValueError(f"model.init: {init}: no such model directory")
        src = load_model(path)
        mine, theirs = self.config.to_dict(), src.config.to_dict()
        encoder_only = self.recipe["model"]["init_layers"] == "encoder"
        H_from, H_to = src.config.architecture.hidden_size, self.config.architecture.hidden_size
        if H_from < H_to:  # a wider recipe: grow the init model (same function), then compare the rest
            theirs["architecture"] = {**theirs["architecture"], "hidden_size": H_to}
        for key in ("features", "architecture") + (() if encoder_only else ("tokens", "blank_index")):
            if mine.get(key) != theirs.get(key):
                raise ValueError(f"model.init: {path}: its {key} differ from the recipe's "
                                 f"({theirs.get(key)!r} vs {mine.get(key)!r})")
        want = self.recipe["model"]["normalization"]
        if src.config.normalization.get("mode") != want:
            raise ValueError(f"model.init: {path}: normalization {src.config.normalization.get('mode')!r}, "
                             f"the recipe asks for {want!r}")
        self.config.normalization = dict(src.config.normalization)
        params = {k: np.asarray(v, dtype=np.float32) for k, v in src.weights.items()}
        from .network import init_params

        fresh = init_params(self.config, int(self.recipe["seed"]),
                            forget_bias=float(self.recipe["model"]["forget_bias"]))
        if H_from < H_to:
            params = widen_params(params, H_from, fresh, H_to, self.config.architecture.num_layers)
        if encoder_only:
            params = {k: (fresh[k] if k.startswith("output.") else v) for k, v in params.items()}
        self._log(f"initialized from {path}" + (" (LSTM layers; new output layer)" if encoder_only else "")
                  + (f", widened from {H_from} to {H_to} units per direction (the new units start with zero "
                     "outgoing weights)" if H_from < H_to else ""))
        return params

    def _restore(self, meta, params, m, v):
        self.config = ModelConfig.from_dict(meta["config"])
        self.params = {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in params.items()}
        od = meta["optimizer"]
        self.optimizer = Adam(self.params, lr=od["lr"], betas=tuple(od["betas"]), eps=od["eps"],
                              weight_decay=od["weight_decay"], decoupled=od["decoupled"])
        self.optimizer.load_state_dict({**od, "exp_avg": m, "exp_avg_sq": v})
        self.schedule = LRSchedule(**meta["schedule"])
        self.state = meta["state"]
        self._truncate_logs()
        s = self.state
        self._log(f"resumed {self.run_dir} at epoch {s['epoch']}, batch {s['batch']}, step {s['step']}")

    @classmethod
    def resume(cls, run_dir, progress: bool = False, verbose: bool = True, epochs: int | None = None,
               device: str = "cpu") -> "Trainer":
        """Continue a run from ``run_dir/checkpoint.npz`` (``epochs`` may raise the number of epochs).

        The recipe, configuration and schedule are those of the checkpoint; raising ``epochs`` lets training go
        on at the schedule's final learning rate (``min_lr`` for the decaying schedules).
        """
        meta, params, m, v = load_checkpoint(run_dir)
        recipe = meta["recipe"]
        if epochs is not None:
            recipe["run"]["epochs"] = int(epochs)
        return cls(recipe, run_dir, base_dir=meta["base_dir"], progress=progress, verbose=verbose,
                   _checkpoint=(meta, params, m, v), device=device)

    def _make_loader(self):
        from .data import Augment, DataLoader

        d = self.recipe["data"]
        augment = Augment(**d["augment"]) if d["augment"] else None
        return DataLoader(self._train_manifests(), self.config, batch_frames=int(d["batch_frames"]),
                          max_batch=int(d["max_batch"]), augment=augment, noise_manifest=self._path(d["noise"]),
                          num_workers=int(d["num_workers"]), seed=int(self.recipe["seed"]),
                          max_duration=float(d["max_duration"]), epoch_seconds=d["epoch_seconds"],
                          labeler=self._labeler())

    def _data_summary(self) -> dict:
        from .data import read_manifest

        out = {"train": [], "dev": None}
        for (path, weight, options), item in zip(self._train_manifests(), self.recipe["data"]["train"]):
            shown = item if isinstance(item, str) else item[0]  # as written in the recipe (no local paths)
            utts, _ = read_manifest(path, warn=False)
            per = {}
            for u in utts:
                s = per.setdefault(u.source or "", [0, 0.0])
                s[0] += 1
                s[1] += float(u.duration or 0.0)
            out["train"].append({"manifest": shown, "weight": weight, **({"options": options} if options else {}),
                                 "utterances": len(utts),
                                 "hours": sum(x[1] for x in per.values()) / 3600,
                                 "sources": {k: {"utterances": n, "hours": h / 3600} for k, (n, h) in sorted(per.items())}})
        dev = self._path(self.recipe["data"]["dev"])
        if dev:
            utts, _ = read_manifest(dev, warn=False)
            out["dev"] = {"manifest": self.recipe["data"]["dev"], "utterances": len(utts),
                          "hours": sum(float(u.duration or 0.0) for u in utts) / 3600}
        return out

    # ------------------------------------------------------------ logging
    def _log(self, msg: str) -> None:
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        with open(self.run_dir / "train.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.verbose:
            try:
                from tqdm import tqdm

                tqdm.write(msg, file=sys.stderr)
            except ImportError:  # pragma: no cover
                print(msg, file=sys.stderr)

    def _truncate_logs(self):
        """Drop CSV rows written after the checkpoint being resumed (or all rows for a fresh run)."""
        s = getattr(self, "state", None)
        for name, cols, keep in (
                ("log.csv", EPOCH_COLUMNS, lambda row: s is not None and int(row["epoch"]) < s["epoch"]),
                ("steps.csv", STEP_COLUMNS, lambda row: s is not None and int(row["step"]) <= s["step"])):
            p = self.run_dir / name
            rows = []
            if p.exists() and s is not None:
                with open(p, newline="", encoding="utf-8") as f:
                    rows = [row for row in csv.DictReader(f) if keep(row)]
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
            tmp = p.with_name(name + ".tmp")
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.replace(tmp, p)
        # dev.csv is rewritten from the checkpoint's history (runs from before it existed get it too)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=DEV_COLUMNS)
        w.writeheader()
        for hist in (s["history"] if s is not None else []):
            w.writerows(_dev_rows(hist))
        tmp = self.run_dir / "dev.csv.tmp"
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, self.run_dir / "dev.csv")

    def _append_csv(self, name, cols, row):
        with open(self.run_dir / name, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=cols).writerow(row)

    @staticmethod
    def _new_acc():
        return {"loss": 0.0, "denom": 0.0, "grad_norm": 0.0, "steps": 0, "skipped": 0, "infeasible": 0,
                "lr": 0.0, "win_loss": 0.0, "win_denom": 0.0, "win_norm": 0.0, "win_steps": 0,
                "utterances": 0, "frames": 0}

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``run_dir/checkpoint.npz`` atomically (temporary file, fsync, rename)."""
        opt = self.optimizer.state_dict()
        meta = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "recipe": self.recipe, "base_dir": self.base_dir, "config": self.config.to_dict(),
            "optimizer": {k: opt[k] for k in ("lr", "betas", "eps", "weight_decay", "decoupled", "num_steps")},
            "schedule": self.schedule.to_dict(), "state": self.state,
        }
        arrays = {"meta": _meta_array(meta)}
        for k in self.params:
            arrays["param/" + k] = self.params[k]
            arrays["adam_m/" + k] = opt["exp_avg"][k]
            arrays["adam_v/" + k] = opt["exp_avg_sq"][k]
        path = self.run_dir / CHECKPOINT
        _atomic_savez(path, arrays)
        self._last_checkpoint = time.monotonic()
        return path

    def _save_snapshot(self, epoch: int):
        keep = int(self.recipe["run"]["average_last"])
        if keep <= 1:
            return
        d = self.run_dir / "snapshots"
        d.mkdir(exist_ok=True)
        name = f"epoch-{epoch:04d}.npz"
        _atomic_savez(d / name, self.params)
        snaps = [s for s in self.state["snapshots"] if s != name] + [name]
        for old in snaps[:-keep]:
            try:
                (d / old).unlink()
            except FileNotFoundError:
                pass
        self.state["snapshots"] = snaps[-keep:]

    # ------------------------------------------------------------ one step
    def _train_step(self, batch) -> bool:
        """Forward/backward and one Adam step on a batch; False when the batch was skipped."""
        if self.device == "cuda":
            forward_backward = self._gpu_network().forward_backward
        else:
            from .network import forward_backward

        r, s, acc = self.recipe, self.state, self.state["acc"]
        o = r["optim"]
        rng = np.random.default_rng([int(r["seed"]), s["epoch"], s["batch"]])
        losses, grads = forward_backward(self.params, self.config, batch.feats, batch.lengths, batch.labels,
                                         batch.label_lengths, dropout=float(o["dropout"]), rng=rng)
        losses = np.asarray(losses, dtype=np.float64)
        infeasible = np.isposinf(losses)
        finite = np.isfinite(losses)
        n_inf = int(infeasible.sum())
        acc["infeasible"] += n_inf
        s["totals"]["infeasible"] += n_inf
        s["totals"]["batches"] += 1
        bad = bool(np.any(np.isnan(losses) | np.isneginf(losses)))
        if not bad and not finite.any():
            self._log(f"epoch {s['epoch']} batch {s['batch']}: every utterance infeasible, batch skipped "
                      f"(ids {list(batch.ids)[:4]})")
            acc["skipped"] += 1
            s["totals"]["skipped"] += 1
            return False
        norm = float("nan")
        if not bad:
            label_lengths = np.asarray(batch.label_lengths)
            if o["loss_normalization"] == "tokens":
                # an utterance with an empty label (a non-speech clip) counts as one token, so that a batch of
                # mostly silence does not divide its whole loss by a handful of tokens
                denom = float(max(int(label_lengths[finite].sum()) + int(np.sum(label_lengths[finite] == 0)), 1))
            else:
                denom = float(finite.sum())
            norm = clip_global_norm(grads, o["clip_norm"], scale=1.0 / denom)
            bad = not math.isfinite(norm)
        if bad:
            s["nonfinite_streak"] += 1
            acc["skipped"] += 1
            s["totals"]["skipped"] += 1
            self._log(f"epoch {s['epoch']} batch {s['batch']}: non-finite loss or gradient (norm {norm}), batch "
                      f"skipped [{s['nonfinite_streak']} in a row] (ids {list(batch.ids)[:4]})")
            if s["nonfinite_streak"] >= int(r["run"]["max_nonfinite"]):
                raise TrainingDiverged(
                    f"{s['nonfinite_streak']} consecutive batches with NaN/Inf loss or gradient at step {s['step']}; "
                    f"stopped, last good checkpoint kept in {self.run_dir / CHECKPOINT}")
            return False
        lr = self.schedule(s["step"])
        self.optimizer.step(grads, lr)
        s["step"] += 1
        s["nonfinite_streak"] = 0
        loss_sum = float(losses[finite].sum())
        for pre in ("", "win_"):
            acc[pre + "loss"] += loss_sum
            acc[pre + "denom"] += denom
            acc[pre + ("grad_norm" if pre == "" else "norm")] += norm
            acc[pre + "steps"] += 1
        acc["lr"] = lr
        acc["utterances"] += int(finite.sum())
        acc["frames"] += int(np.asarray(batch.lengths).sum())
        self._last_loss = loss_sum / denom
        return True

    def _gpu_network(self):
        """The GPU forward/backward backend (created on first use; keeps its device buffers)."""
        if self._gpu is None:
            from .gpu import GpuNetwork

            self._gpu = GpuNetwork()
        return self._gpu

    # ------------------------------------------------------------ loop
    def train(self, max_steps: int | None = None, time_limit: float | None = None) -> dict:
        """Train until ``run.epochs`` epochs are done, ``max_steps`` optimizer steps have been made in total,
        ``time_limit`` seconds have passed in this call, or :attr:`stop_requested` is set (e.g. by a signal
        handler). A checkpoint is written whenever it stops; at the end of the last epoch the model is exported.

        Returns
        -------
        dict
            ``{"status": "finished" | "max_steps" | "time_limit" | "interrupted", "step", "epoch", "batch",
            "history", "model_dir" (when exported)}``.

        Raises
        ------
        TrainingDiverged
            After ``run.max_nonfinite`` consecutive non-finite batches.
        """
        r, s = self.recipe, self.state
        epochs = int(r["run"]["epochs"])
        ckpt_every = float(r["run"]["checkpoint_minutes"]) * 60.0
        log_every = max(int(r["run"]["log_every"]), 1)
        t0 = time.monotonic()
        self._last_checkpoint = t0
        elapsed0 = s["elapsed"]
        status = "finished"

        def now_elapsed():
            return elapsed0 + (time.monotonic() - t0)

        def should_stop():
            nonlocal status
            if max_steps is not None and s["step"] >= max_steps:
                status = "max_steps"
            elif time_limit is not None and time.monotonic() - t0 >= time_limit:
                status = "time_limit"
            elif self.stop_requested:
                status = "interrupted"
            else:
                return False
            return True

        loader = None
        stopped = should_stop()
        try:
            while not stopped and s["epoch"] < epochs:
                if loader is None:
                    loader = self._make_loader()
                epoch = s["epoch"]
                n_batches = int(loader.num_batches(epoch))
                bar = self._bar(n_batches, s["batch"], epoch)
                it = loader.epoch(epoch, start_batch=s["batch"]) if s["batch"] < n_batches else iter(())
                try:
                    for batch in it:
                        stepped = self._train_step(batch)
                        # the batch's planned position: a batch the loader could not build is skipped, not lost
                        s["batch"] = int(batch.index) + 1
                        s["elapsed"] = now_elapsed()
                        acc = s["acc"]
                        if stepped and s["step"] % log_every == 0:
                            self._append_csv("steps.csv", STEP_COLUMNS, {
                                "step": s["step"], "epoch": epoch, "batch": s["batch"],
                                "loss": _fmt(acc["win_loss"] / max(acc["win_denom"], 1e-12)),
                                "lr": _fmt(acc["lr"]), "grad_norm": _fmt(acc["win_norm"] / max(acc["win_steps"], 1)),
                                "utterances": len(batch.ids), "frames": int(np.asarray(batch.lengths).sum()),
                                "seconds": round(s["elapsed"], 2)})
                            acc["win_loss"] = acc["win_denom"] = acc["win_norm"] = 0.0
                            acc["win_steps"] = 0
                        if bar is not None:
                            bar.update(1)
                            if stepped:
                                bar.set_postfix(loss=f"{self._last_loss:.3f}", lr=f"{acc['lr']:.2e}", refresh=False)
                        if should_stop():
                            stopped = True
                            break
                        if (time.monotonic() - self._last_checkpoint >= ckpt_every
                                and s["nonfinite_streak"] == 0):
                            self.save_checkpoint()
                    else:  # the loader is exhausted: the epoch is over even if its last batches were unbuildable
                        s["batch"] = n_batches
                finally:
                    if hasattr(it, "close"):
                        it.close()
                    if bar is not None:
                        bar.close()
                if s["batch"] >= n_batches:
                    self._end_epoch(epoch)
                    stopped = stopped or should_stop()
        finally:
            if loader is not None:
                loader.close()
        if s["epoch"] >= epochs:
            status = "finished"
        if s["nonfinite_streak"] == 0:
            self.save_checkpoint()
        result = {"status": status, "step": s["step"], "epoch": s["epoch"], "batch": s["batch"],
                  "history": s["history"]}
        if s["epoch"] >= epochs and status == "finished":
            result["model_dir"] = str(self.export())
        self._log(f"stopped ({status}) at epoch {s['epoch']}, batch {s['batch']}, step {s['step']}, "
                  f"{s['elapsed']:.0f} s of training")
        return result

    def _bar(self, total, initial, epoch):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True,
                    leave=False, file=sys.stderr)

    def _end_epoch(self, epoch: int):
        s = self.state
        acc = s["acc"]
        dev = self.evaluate_dev() if self.recipe["data"]["dev"] else None
        row = {
            "epoch": epoch, "step": s["step"],
            "loss": _fmt(acc["loss"] / acc["denom"]) if acc["denom"] else "",
            "lr": _fmt(acc["lr"]), "grad_norm": _fmt(acc["grad_norm"] / acc["steps"]) if acc["steps"] else "",
            "dev_cer": _fmt(dev["cer"]) if dev else "", "dev_wer": _fmt(dev["wer"]) if dev else "",
            "seconds": round(s["elapsed"], 1), "skipped": acc["skipped"], "infeasible": acc["infeasible"],
        }
        self._append_csv("log.csv", EPOCH_COLUMNS, row)
        hist = dict(row)
        if dev:
            hist["dev"] = dev
            for r in _dev_rows(hist):
                self._append_csv("dev.csv", DEV_COLUMNS, r)
        s["history"].append(hist)
        self._log(f"epoch {epoch} done: step {s['step']}, loss {row['loss']}, lr {row['lr']}, "
                  f"grad norm {row['grad_norm']}, dev CER {row['dev_cer']} WER {row['dev_wer']}, "
                  f"skipped {acc['skipped']}, infeasible {acc['infeasible']}")
        self._save_snapshot(epoch)
        s["epoch"] = epoch + 1
        s["batch"] = 0
        s["acc"] = self._new_acc()
        if s["nonfinite_streak"] == 0:
            self.save_checkpoint()

    # ------------------------------------------------------------ dev evaluation and export
    def log_probs_fn(self, params=None):
        """``list of (T, D) features -> list of (T', V) log-probs`` with ``params`` (default: current)."""
        if self.device == "cuda":
            forward_log_probs = self._gpu_network().forward_log_probs
        else:
            from .network import forward_log_probs

        params = self.params if params is None else params
        D = self.config.architecture.input_dim

        def fn(feats):
            lengths = np.array([f.shape[0] for f in feats], np.int32)
            x = np.zeros((len(feats), int(lengths.max()), D), np.float32)
            for b, f in enumerate(feats):
                x[b, :f.shape[0]] = f
            lp, out_len = forward_log_probs(params, self.config, x, lengths)
            return [lp[b, :int(out_len[b])] for b in range(len(feats))]

        return fn

    def _dev_set(self):
        if self._dev is None:
            d = self.recipe["data"]
            ids, audio, texts, sources = _read_manifest_items(self._path(d["dev"]), d["dev_max_utterances"])
            feats, ok = featurize_files(audio, self.config)
            self._dev = (feats, [texts[i] for i in ok], [sources[i] for i in ok], [ids[i] for i in ok])
            if len(ok) < len(ids):
                self._log(f"dev: {len(ids) - len(ok)} unreadable file(s) left out")
        return self._dev

    def evaluate_dev(self, params=None, beam_widths=(1,)) -> dict | None:
        """Greedy (or beam) CER/WER on the recipe's dev manifest: ``{"cer", "wer", "n", "groups"}``."""
        if not self.recipe["data"]["dev"]:
            return None
        feats, refs, sources, ids = self._dev_set()
        if not feats:
            return None
        tokens, to_ref = self._scoring_tokens()
        if to_ref is not None:
            refs = [to_ref(t) for t in refs]
        res = evaluate_log_probs(self.log_probs_fn(params), feats, refs, tokens,
                                 blank=self.config.blank_index, groups=sources, beam_widths=beam_widths,
                                 batch_frames=int(self.recipe["data"]["dev_batch_frames"]), ids=ids)
        out = res["results"][beam_widths[0]]
        return {"cer": out["cer"], "wer": out["wer"], "n": out["n"],
                "groups": {g: {"cer": v["cer"], "wer": v["wer"], "n": v["n"]}
                           for g, v in out.get("groups", {}).items()}}

    def final_params(self) -> tuple[dict, int]:
        """Parameters to export: the mean of the last ``average_last`` epoch snapshots, or the current ones."""
        snaps = self.state["snapshots"]
        keep = int(self.recipe["run"]["average_last"])
        if keep > 1 and len(snaps) > 1:
            dicts = []
            for name in snaps[-keep:]:
                with np.load(self.run_dir / "snapshots" / name, allow_pickle=False) as z:
                    dicts.append({k: z[k] for k in z.files})
            return average_params(dicts), len(dicts)
        return {k: v.copy() for k, v in self.params.items()}, 1

    def export(self, out_dir=None, dtype=np.float32, lm=None) -> Path:
        """Write the model directory (default ``run_dir/model``) with a model card; returns its path.

        ``dtype`` float16 halves the weights file (widened to float32 at load). ``lm`` (an ``lm.bin``, ARPA file or
        directory, see :func:`speechlstm.decoding.load_lm`) is written into the directory as ``lm.bin``, the LM
        the recognizer uses by default; a phone model's lexicon then also gets the pronunciations of the LM's
        words it lacks (from its G2P), so that decoding needs no G2P at start-up.
        """
        out = Path(out_dir) if out_dir is not None else self.run_dir / "model"
        word_lm = None
        if lm is not None:
            from .decoding import load_lm

            word_lm = load_lm(lm)
        params, n_avg = self.final_params()
        dev = self.state["history"][-1].get("dev") if self.state["history"] else None
        if n_avg > 1 and self.recipe["data"]["dev"]:
            dev = self.evaluate_dev(params)
        Path(out).mkdir(parents=True, exist_ok=True)
        if word_lm is not None:
            word_lm.save(Path(out) / "lm.bin")
        if self.lexicon is not None:  # before config.json, which names it
            lexicon = self.lexicon
            if word_lm is not None:
                from .lexicon import _valid_word

                extra = [w for w in word_lm.vocab if w not in lexicon and _valid_word(w)]
                if extra and lexicon.g2p is not None:
                    lexicon = lexicon.subset(list(lexicon) + extra)
                    self._log(f"lexicon: {len(extra)} LM words pronounced by the G2P")
            lexicon.save(Path(out) / self.config.lexicon_file)
        save_model(out, self.config, params, card=self._model_card(dev, n_avg), dtype=dtype)
        self._log(f"exported model to {out}" + (f" (average of the last {n_avg} epochs)" if n_avg > 1 else ""))
        return out

    def _model_card(self, dev, n_avg) -> str:
        r, s, c = self.recipe, self.state, self.config
        a = c.architecture
        ds = s["data_summary"]
        n_params = sum(v.size for v in self.params.values())
        lines = [f"# {c.name}", "",
                 f"{'Phone' if c.units == 'phones' else 'Character'}-level CTC acoustic model ({a.num_layers} x BiLSTM, hidden {a.hidden_size} per direction, "
                 f"frame stacking x{a.frame_stacking}, {n_params:,} parameters, {c.features.kind} features "
                 f"{c.features.dim} dims, {c.normalization['mode']} normalization), trained "
                 + (f"from the weights of `{r['model']['init']}` (a warm start; see that model's card for how it "
                    "was trained)" if r["model"].get("init") else "from scratch")
                 + " with speechlstm's Numba trainer (`tools/train.py`).", "", "## Training data", ""]
        total_h = 0.0
        for m in ds["train"]:
            total_h += m["hours"]
            lines.append(f"- `{m['manifest']}` (weight {m['weight']}): {m['utterances']} utterances, "
                         f"{m['hours']:.2f} h")
            for src, v in m["sources"].items():
                lines.append(f"  - {src}: {v['utterances']} utterances, {v['hours']:.2f} h")
        lines.append(f"- total: {total_h:.2f} h")
        aug = r["data"]["augment"]
        lines += ["", "## Training", "",
                  f"- {s['epoch']} epochs, {s['step']} optimizer steps, {s['elapsed'] / 60:.1f} min of training "
                  f"(this machine: {os.cpu_count()} CPU cores), seed {r['seed']}",
                  f"- {'AdamW' if r['optim']['decoupled'] and r['optim']['weight_decay'] > 0 else 'Adam'} "
                  f"peak lr {r['optim']['lr']}, {r['optim']['decay']} decay after {r['optim']['warmup_steps']} "
                  f"warm-up steps, weight decay {r['optim']['weight_decay']}, clip norm {r['optim']['clip_norm']}, "
                  f"dropout {r['optim']['dropout']}, batches of up to {r['data']['batch_frames']} frames",
                  f"- augmentation: {json.dumps(aug) if aug else 'none'}",
                  f"- skipped batches (non-finite or all infeasible): {s['totals']['skipped']}; infeasible "
                  f"utterances: {s['totals']['infeasible']}"]
        if n_avg > 1:
            lines.append(f"- exported weights: average of the last {n_avg} epoch snapshots")
        lines += ["", "## Results", ""]
        if dev:
            total_dev = ds["dev"]["utterances"] if ds["dev"] else dev["n"]
            subset = f"{dev['n']} utterances" if dev["n"] >= total_dev else \
                f"an evenly spaced subset of {dev['n']} of its {total_dev} utterances"
            lines.append(f"Dev set `{r['data']['dev']}` ({subset}), greedy decoding, no language model "
                         "(full evaluation: `tools/evaluate.py MODEL MANIFEST`):")
            if c.units == "phones":
                lines.append("(phone models: CER is the phone error rate against the reference's lexicon "
                             "pronunciations, WER counts words as phone sequences; word WER needs the lexicon "
                             "decoder of `tools/evaluate.py`)")
            lines += ["", "| subset | utterances | CER | WER |", "|---|---|---|---|",
                      f"| all | {dev['n']} | {dev['cer']:.2%} | {dev['wer']:.2%} |"]
            for g, v in dev.get("groups", {}).items():
                lines.append(f"| {g} | {v['n']} | {v['cer']:.2%} | {v['wer']:.2%} |")
            curve = [h for h in s["history"] if h.get("dev")]
            if len(curve) > 1:
                groups = sorted(curve[-1]["dev"].get("groups", {}))
                lines += ["", "Dev curve (greedy CER / WER after each epoch, from `dev.csv`):", "",
                          "| epoch | step | all | " + " | ".join(groups) + " |",
                          "|---|---|---|" + "---|" * len(groups)]
                for h in curve:
                    d, gs = h["dev"], h["dev"].get("groups", {})
                    cells = [f"{d['cer']:.1%} / {d['wer']:.1%}"] + [
                        f"{gs[g]['cer']:.1%} / {gs[g]['wer']:.1%}" if g in gs else "" for g in groups]
                    lines.append(f"| {h['epoch']} | {h['step']} | " + " | ".join(cells) + " |")
        else:
            lines.append("No dev set was configured: accuracy not measured.")
        lines += ["", "## Recipe", "", "```json", json.dumps(r, indent=2), "```", ""]
        return "\n".join(lines)


def _dev_rows(hist: dict) -> list:
    """``dev.csv`` rows of one epoch's history entry: the whole dev set (``all``), then each source."""
    dev = hist.get("dev")
    if not dev:
        return []
    rows = [{"epoch": hist["epoch"], "step": hist["step"], "source": "all", "utterances": dev["n"],
             "cer": _fmt(dev["cer"]), "wer": _fmt(dev["wer"])}]
    for g, v in sorted(dev.get("groups", {}).items()):
        rows.append({"epoch": hist["epoch"], "step": hist["step"], "source": g, "utterances": v["n"],
                     "cer": _fmt(v["cer"]), "wer": _fmt(v["wer"])})
    return rows


def _resolve_train_device(device: str) -> str:
    """``cpu|cuda|auto`` -> ``cpu`` or ``cuda`` (``DeviceError`` for ``cuda`` without a GPU; an unknown name is a
    ``ValueError`` here, a bad training argument)."""
    from .transcribe import DEVICES, resolve_device

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: choose cpu, cuda or auto")
    return resolve_device(device)


def _fmt(x) -> str:
    return f"{float(x):.6g}"
