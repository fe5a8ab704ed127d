#!/usr/bin/env python
"""Fit and report word-confidence calibration: expected calibration error before and after, on a manifest.

Usage::

    python tools/calibrate_confidence.py MODEL MANIFEST [--beam 8] [--lm PATH|none] [--sources A,B]
                                         [--max-utterances N] [--write] [--json]

Every utterance is recognized (greedy and beam search) with the model; each hypothesis word is *correct* when the
minimum-edit (WER) alignment of the hypothesis to the normalized reference pairs it with an identical reference
word. The raw confidences (the word's beam posterior; for greedy decoding the geometric mean of its units' peak
posteriors) are compared with a logistic calibration ``sigmoid(w . [1, mean peak log-prob, min peak log-prob,
log beam posterior])`` fitted by Newton's method (see :class:`speechlstm.transcribe.ConfidenceCalibration`).

Reported per decoding mode: words, word accuracy, ECE (15 equal-width bins), Brier score and negative
log-likelihood, for the raw confidence, the calibration fitted on the other half of the utterances (2-fold
cross-validation by utterance: the honest number) and the calibration fitted on everything (in-sample). With
``--write`` the fit on everything is stored in ``MODEL/config.json`` under ``"confidence"`` (atomic rewrite),
which :class:`speechlstm.Recognizer` then applies. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

BINS = 15


def ece(conf, correct, bins: int = BINS) -> float:
    """Expected calibration error: ``sum_b n_b / N * |accuracy_b - mean confidence_b|`` over equal-width bins.

    Examples
    --------
    >>> round(ece([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0]), 6), ece([1.0, 1.0], [1, 0])
    (0.1, 0.5)
    """
    c = np.asarray(conf, np.float64)
    y = np.asarray(correct, np.float64)
    if c.size == 0:
        return 0.0
    idx = np.minimum((c * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / c.size * abs(y[m].mean() - c[m].mean())
    return float(total)


def scores(conf, correct) -> dict:
    c = np.clip(np.asarray(conf, np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(correct, np.float64)
    return {"ece": round(ece(c, y), 4), "brier": round(float(np.mean((c - y) ** 2)), 4),
            "nll": round(float(-np.mean(y * np.log(c) + (1 - y) * np.log(1 - c))), 4)}


def correct_words(ref: str, hyp: str) -> list:
    """For each hypothesis word, whether the minimum-edit alignment pairs it with the same reference word.

    Ties are broken like :mod:`speechlstm.metrics` (substitution, then deletion, then insertion).

    Examples
    --------
    >>> correct_words("the cat sat", "the bat sat down")
    [True, False, True, False]
    """
    r, h = ref.split(), hyp.split()
    n, m = len(r), len(h)
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (r[i - 1] != h[j - 1]), cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    ok = [False] * m
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (r[i - 1] != h[j - 1]):
            ok[j - 1] = r[i - 1] == h[j - 1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return ok


def fit_logistic(x, y, l2: float = 1e-3, iters: int = 100) -> np.ndarray:
    """Weights ``[w0, w1, ...]`` of ``sigmoid(w0 + x @ w[1:])`` by Newton's method (L2 on ``w[1:]``).

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> w = fit_logistic(x, y, l2=1.0)
    >>> bool(w[1] > 0), bool(abs(w[0] + 1.5 * w[1]) < 1e-6)
    (True, True)
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    X = np.hstack([np.ones((x.shape[0], 1)), x])
    w = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -50, 50)))
        g = X.T @ (p - y) + reg * w
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(reg) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def load_items(manifest, sources=None, max_utterances=None):
    """(ids, audio paths, normalized references, sources) of a manifest, optionally of some sources only."""
    from speechlstm.text import normalize_text
    from speechlstm.trainer import _read_manifest_items

    ids, audio, texts, srcs = _read_manifest_items(str(manifest))
    keep = [i for i in range(len(ids)) if not sources or srcs[i] in sources]
    if max_utterances is not None and len(keep) > max_utterances:
        keep = [keep[int(round(k))] for k in np.linspace(0, len(keep) - 1, int(max_utterances))]
    return ([ids[i] for i in keep], [audio[i] for i in keep], [normalize_text(texts[i]) for i in keep],
            [srcs[i] for i in keep])


def iter_log_probs(model, paths, batch_frames: int = 20000):
    """Yield ``(index, log_probs)`` for every readable file, network run in length-sorted batches."""
    from speechlstm.audio import load_audio
    from speechlstm.errors import AudioError

    feats = []
    for i, p in enumerate(paths):
        try:
            feats.append((i, model.featurize(load_audio(p, model.config.sample_rate))))
        except AudioError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    feats.sort(key=lambda x: x[1].shape[0])
    batch = []
    for item in feats + [None]:
        if item is not None and (not batch or (len(batch) + 1) * item[1].shape[0] <= batch_frames):
            batch.append(item)
            continue
        if batch:
            for (i, _), lp in zip(batch, model.log_probs([f for _, f in batch])):
                yield i, lp
        batch = [item] if item is not None else []


def collect(rec, lps, refs, srcs, beam):
    """Per mode: features (words, 3), correct (words,), utterance index, source of every hypothesis word."""
    from speechlstm.transcribe import CONFIDENCE_FEATURES

    out = {}
    for mode, b in (("greedy", 1), ("beam", beam)):
        if mode == "beam" and beam <= 1:
            continue
        F, Y, U, S = [], [], [], []
        for i, lp in lps:
            r = rec._decode_log_probs(lp, 0.0, b)
            ok = correct_words(refs[i], r.text)
            F.append(r.features[:, : len(CONFIDENCE_FEATURES[mode])])
            Y += ok
            U += [i] * len(ok)
            S += [srcs[i]] * len(ok)
        out[mode] = (np.vstack(F) if F else np.zeros((0, 3)), np.array(Y, bool), np.array(U), np.array(S))
    return out


def calibrate(model_dir, manifest, beam=8, lm=None, sources=None, max_utterances=None) -> dict:
    """Run the measurement; returns the summary (fits included)."""
    from speechlstm import Recognizer
    from speechlstm.transcribe import raw_confidence

    t0 = time.perf_counter()
    rec = Recognizer(model_dir, beam_width=beam, lm=lm)
    ids, paths, refs, srcs = load_items(manifest, sources, max_utterances)
    lps = list(iter_log_probs(rec.model, paths))
    data = collect(rec, lps, refs, srcs, beam)
    used = rec._fusion["lm"] if rec._fusion is not None else None
    summary = {"model": str(model_dir), "manifest": str(manifest), "utterances": len(lps), "beam_width": beam,
               "lm": None if used is None else str(getattr(used, "path", None) or lm or "lm.bin"),
               "bins": BINS, "modes": {}, "fits": {}}
    for mode, (F, Y, U, S) in data.items():
        raw = raw_confidence(F, mode)
        w_all = fit_logistic(F, Y)
        cv = np.zeros(len(Y))
        for fold in (0, 1):
            test = U % 2 == fold
            w = fit_logistic(F[~test], Y[~test])
            cv[test] = 1 / (1 + np.exp(-np.clip(w[0] + F[test] @ w[1:], -50, 50)))
        ins = 1 / (1 + np.exp(-np.clip(w_all[0] + F @ w_all[1:], -50, 50)))
        per_source = {}
        for s in sorted(set(S.tolist())):
            m = S == s
            per_source[s] = {"words": int(m.sum()), "accuracy": round(float(Y[m].mean()), 4),
                             "raw": scores(raw[m], Y[m]), "calibrated_cv": scores(cv[m], Y[m])}
        summary["modes"][mode] = {"words": int(len(Y)), "accuracy": round(float(Y.mean()), 4) if len(Y) else None,
                                  "mean_raw_confidence": round(float(raw.mean()), 4) if len(Y) else None,
                                  "raw": scores(raw, Y), "calibrated_cv": scores(cv, Y),
                                  "calibrated_in_sample": scores(ins, Y), "per_source": per_source}
        summary["fits"][mode] = [round(float(v), 6) for v in w_all]
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def write_fit(model_dir, summary) -> str:
    """Store the fit in ``MODEL/config.json`` (validated by loading it back; atomic replace)."""
    from speechlstm.model import ModelConfig

    path = os.path.join(str(model_dir), "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    entry = {"method": "logistic", **summary["fits"],
             "fit": {"manifest": os.path.basename(str(summary["manifest"])), "utterances": summary["utterances"],
                     "beam_width": summary["beam_width"], "lm": summary["lm"],
                     "ece": {m: {"raw": v["raw"]["ece"], "calibrated_cv": v["calibrated_cv"]["ece"]}
                             for m, v in summary["modes"].items()}}}
    cfg["confidence"] = entry
    ModelConfig.from_dict(cfg, where=path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def format_report(s: dict) -> str:
    lines = [f"model {s['model']} on {s['manifest']}: {s['utterances']} utterances, beam {s['beam_width']}, "
             f"LM {s['lm'] or 'none'}, ECE with {s['bins']} bins ({s['seconds']} s)", ""]
    head = f"{'mode':<8} {'subset':<28} {'words':>6} {'acc':>7} {'ECE raw':>8} {'ECE cal(cv)':>12} {'ECE cal(in)':>12}"
    lines += [head, "-" * len(head)]
    for mode, v in s["modes"].items():
        lines.append(f"{mode:<8} {'all':<28} {v['words']:>6} {v['accuracy']:>7.2%} {v['raw']['ece']:>8.4f} "
                     f"{v['calibrated_cv']['ece']:>12.4f} {v['calibrated_in_sample']['ece']:>12.4f}")
        for src, p in v["per_source"].items():
            lines.append(f"{'':<8} {src[:28]:<28} {p['words']:>6} {p['accuracy']:>7.2%} {p['raw']['ece']:>8.4f} "
                         f"{p['calibrated_cv']['ece']:>12.4f}")
    lines.append("")
    for mode, w in s["fits"].items():
        lines.append(f"fit {mode}: {w}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory")
    ap.add_argument("manifest", help="JSON Lines manifest (id, audio, text, source)")
    ap.add_argument("--beam", type=int, default=8, help="beam width (default 8)")
    ap.add_argument("--lm", default=None,
                    help="language model for the beam search, or 'none' (default: as the Recognizer: the model "
                         "directory's lm.bin if it has one)")
    ap.add_argument("--sources", help="comma-separated sources to use (default: all)")
    ap.add_argument("--max-utterances", type=int, help="an evenly spaced subset of this many utterances")
    ap.add_argument("--write", action="store_true", help="store the fit in MODEL/config.json")
    args = ap.parse_args(argv)
    from speechlstm.errors import SpeechlstmError

    try:
        s = calibrate(args.model, args.manifest, beam=args.beam, lm=args.lm,
                      sources=set(args.sources.split(",")) if args.sources else None,
                      max_utterances=args.max_utterances)
        if args.write:
            s["written"] = write_fit(args.model, s)
    except (SpeechlstmError, OSError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(format_report(s))
    if args.write:
        print(f"calibration written to {s['written']}")
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
