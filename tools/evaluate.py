#!/usr/bin/env python
"""Evaluate a model directory on a manifest: WER and CER, greedy and beam search, per source, worst utterances.

Usage::

    python tools/evaluate.py MODEL MANIFEST [--beam 8] [--max-utterances N] [--worst 10] [--threads N]

MODEL is a model directory (``speechlstm.model.load_model`` format, e.g. ``runs/tiny/model``), MANIFEST a JSON
Lines manifest (``shared/data/real/dev.jsonl`` format). References are the manifest's ``text`` put through
:func:`speechlstm.text.normalize_text`. Rates are corpus-level: edits summed over utterances divided by the
reference words/characters summed over utterances (:mod:`speechlstm.metrics`).

Prints a table (overall and per ``source``, greedy and beam), the worst utterances by CER (of the beam search
result, or greedy with ``--beam 1``), and as the **last line** a JSON summary::

    {"model", "manifest", "n", "unreadable", "beam_width",
     "greedy": {"wer", "cer"}, "beam": {"wer", "cer"},
     "per_source": {SOURCE: {"n", "greedy": {"wer", "cer"}, "beam": {"wer", "cer"}}},
     "worst": [{"id", "source", "cer", "wer", "ref", "hyp"}], "seconds", "audio_seconds"}

(``beam`` repeats ``greedy`` with ``--beam 1``.) Phone models are decoded through their lexicon at both widths
(width 1 is then a lexicon-constrained search, not best-path decoding), with no LM: ``tools/compare_lms.py``
adds the LM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory")
    ap.add_argument("manifest", help="JSON Lines manifest (id, audio, text, source, ...)")
    ap.add_argument("--beam", type=int, default=8, help="beam width of the beam search pass (default 8; 1: greedy only)")
    ap.add_argument("--max-utterances", type=int, help="evaluate an evenly spaced subset of this many utterances")
    ap.add_argument("--worst", type=int, default=10, help="how many worst utterances to list (default 10)")
    ap.add_argument("--batch-frames", type=int, default=40000, help="padded frames per network batch")
    ap.add_argument("--threads", type=int, help="Numba threads")
    return ap.parse_args(argv)


def evaluate(model_dir, manifest, beam: int = 8, max_utterances=None, worst: int = 10,
             batch_frames: int = 40000) -> dict:
    """Run the evaluation; returns the JSON summary described in the module docstring.

    Examples
    --------
    >>> import json, os, tempfile, numpy as np, soundfile as sf
    >>> from speechlstm.model import ModelConfig, random_weights, save_model
    >>> d = tempfile.mkdtemp(); cfg = ModelConfig.example(hidden_size=4, num_layers=1)
    >>> save_model(os.path.join(d, "m"), cfg, random_weights(cfg))
    >>> sf.write(os.path.join(d, "a.wav"), np.zeros(8000), 16000)
    >>> with open(os.path.join(d, "x.jsonl"), "w") as f:
    ...     _ = f.write(json.dumps({"id": "a", "audio": "a.wav", "text": "hi", "duration": 0.5}) + "\\n")
    >>> s = evaluate(os.path.join(d, "m"), os.path.join(d, "x.jsonl"), beam=2)
    >>> s["n"], sorted(s["per_source"]), s["beam_width"]
    (1, ['x'], 2)
    """
    from speechlstm.audio import load_audio
    from speechlstm.errors import AudioError
    from speechlstm.model import load_model
    from speechlstm.text import normalize_text
    from speechlstm.trainer import _read_manifest_items, evaluate_log_probs

    t0 = time.perf_counter()
    model = load_model(model_dir)
    cfg = model.config
    ids, audio, texts, sources = _read_manifest_items(str(manifest), max_utterances)
    feats, keep, audio_seconds = [], [], 0.0
    for i, path in enumerate(audio):
        try:
            x = load_audio(path, cfg.sample_rate)
        except AudioError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            continue
        audio_seconds += len(x) / cfg.sample_rate
        feats.append(model.featurize(x))
        keep.append(i)
    refs = [normalize_text(texts[i]) for i in keep]
    srcs = [sources[i] for i in keep]
    widths = (1,) if beam <= 1 else (1, int(beam))
    res = evaluate_log_probs(model.log_probs, feats, refs, cfg.tokens, blank=cfg.blank_index, groups=srcs,
                             beam_widths=widths, batch_frames=batch_frames, ids=[ids[i] for i in keep],
                             lexicon=model.lexicon)
    g, b = res["results"][1], res["results"][widths[-1]]

    def rates(d):
        return {"wer": d["wer"], "cer": d["cer"]}

    per_source = {}
    for src in sorted(set(srcs)):
        per_source[src] = {"n": g["groups"][src]["n"], "greedy": rates(g["groups"][src]),
                           "beam": rates(b["groups"][src])}
    main = widths[-1]
    ranked = sorted(res["utterances"], key=lambda u: (-u["cer"][main], u["id"]))[:max(worst, 0)]
    worst_list = [{"id": u["id"], "source": u.get("group", ""), "cer": u["cer"][main], "wer": u["wer"][main],
                   "ref": u["ref"], "hyp": u["hyp"][main]} for u in ranked]
    return {"model": str(model_dir), "manifest": str(manifest), "n": res["n"], "unreadable": len(audio) - len(keep),
            "beam_width": widths[-1], "greedy": rates(g), "beam": rates(b), "per_source": per_source,
            "worst": worst_list, "seconds": round(time.perf_counter() - t0, 2),
            "audio_seconds": round(audio_seconds, 2)}


def format_table(s: dict) -> str:
    """The human-readable report of a summary from :func:`evaluate`."""
    bw = s["beam_width"]
    head = f"{'subset':<28} {'n':>6} {'greedy WER':>11} {'greedy CER':>11} {f'beam{bw} WER':>11} {f'beam{bw} CER':>11}"
    lines = [f"model {s['model']} on {s['manifest']}: {s['n']} utterances "
             f"({s['audio_seconds'] / 60:.1f} min of audio, {s['unreadable']} unreadable), {s['seconds']:.1f} s", "",
             head, "-" * len(head)]

    def row(name, n, gr, br):
        return (f"{name:<28} {n:>6} {gr['wer']:>11.2%} {gr['cer']:>11.2%} {br['wer']:>11.2%} {br['cer']:>11.2%}")

    lines.append(row("all", s["n"], s["greedy"], s["beam"]))
    for src, v in s["per_source"].items():
        lines.append(row(src[:28], v["n"], v["greedy"], v["beam"]))
    if s["worst"]:
        lines += ["", f"worst {len(s['worst'])} by CER ({'beam' if bw > 1 else 'greedy'}):"]
        for u in s["worst"]:
            lines.append(f"  {u['cer']:7.1%}  {u['id']}")
            lines.append(f"           ref: {u['ref']}")
            lines.append(f"           hyp: {u['hyp']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from speechlstm.errors import SpeechlstmError

    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    try:
        summary = evaluate(args.model, args.manifest, beam=args.beam, max_utterances=args.max_utterances,
                           worst=args.worst, batch_frames=args.batch_frames)
    except (SpeechlstmError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(summary))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
