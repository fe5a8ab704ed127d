#!/usr/bin/env python
"""Command grammar accuracy and false accepts on a manifest of single words (Speech Commands, FSDD digits).

Usage::

    python tools/evaluate_grammar.py MODEL MANIFEST [--grammar FILE | --preset commands|digits|speechcommands35]
                                     [--sources A,B] [--threshold X] [--beam 16] [--max-utterances N]

An utterance is *in grammar* when its normalized reference is one of the grammar's phrases, else *out of
grammar*. Every utterance is matched with :meth:`speechlstm.grammar.Grammar.match` (threshold 0, so that the
confidence of the best phrase is known), then for each threshold in a sweep:

* accuracy: in-grammar utterances accepted with the right phrase / in-grammar utterances,
* false rejects: in-grammar utterances whose best phrase fell below the threshold,
* substitutions: in-grammar utterances accepted with a wrong phrase,
* false accepts: out-of-grammar utterances accepted (with any phrase) / out-of-grammar utterances.

Presets: ``commands`` = yes no up down left right on off stop go (the ten Speech Commands core words);
``digits`` = zero .. nine; ``speechcommands35`` = all 35 words of Speech Commands v0.02 (every Speech Commands and FSDD clip is then in
grammar: this preset measures accuracy; add ``--sources`` with sentence sources to count false accepts). Default sources: speechcommands_v0.02_test and fsdd. The last line printed is a JSON
summary (per threshold, and ``best``: the threshold of the sweep with the highest accuracy whose false-accept rate
is at most ``--max-false-accept``, default 1%).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SPEECH_COMMANDS_35 = ["backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
                      "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
                      "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero"]
PRESETS = {"commands": ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"],
           "digits": ["{digit}"],
           "speechcommands35": SPEECH_COMMANDS_35}
DEFAULT_SOURCES = ("speechcommands_v0.02_test", "fsdd")
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def rates(results, threshold: float) -> dict:
    """Accuracy / false-reject / substitution / false-accept rates of ``(ref, phrase, confidence, in_grammar)``.

    Examples
    --------
    >>> r = [("yes", "yes", 0.9, True), ("no", "go", 0.8, True), ("up", "up", 0.2, True), ("cat", "up", 0.6, False)]
    >>> d = rates(r, 0.5)
    >>> d["accuracy"], d["false_reject"], d["substitution"], d["false_accept"], d["in_grammar"], d["out_of_grammar"]
    (0.3333, 0.3333, 0.3333, 1.0, 3, 1)
    """
    ins = [r for r in results if r[3]]
    oog = [r for r in results if not r[3]]
    acc = sum(1 for ref, ph, c, _ in ins if c >= threshold and ph == ref)
    rej = sum(1 for _, _, c, _ in ins if c < threshold)
    sub = sum(1 for ref, ph, c, _ in ins if c >= threshold and ph != ref)
    fa = sum(1 for _, _, c, _ in oog if c >= threshold)

    def frac(a, n):
        return round(a / n, 4) if n else None

    return {"threshold": threshold, "in_grammar": len(ins), "accuracy": frac(acc, len(ins)),
            "false_reject": frac(rej, len(ins)), "substitution": frac(sub, len(ins)), "out_of_grammar": len(oog),
            "false_accept": frac(fa, len(oog))}


def evaluate_grammar(model_dir, manifest, grammar, sources=DEFAULT_SOURCES, beam=16, max_utterances=None,
                     threshold=None, max_false_accept=0.01) -> dict:
    from calibrate_confidence import iter_log_probs, load_items

    from speechlstm.grammar import DEFAULT_GRAMMAR_THRESHOLD, load_grammar
    from speechlstm.model import load_model

    t0 = time.perf_counter()
    model = load_model(model_dir)
    cfg = model.config
    g = load_grammar(grammar)
    ids, paths, refs, srcs = load_items(manifest, set(sources) if sources else None, max_utterances)
    results, per_source = [], {}
    for i, lp in iter_log_probs(model, paths):
        m = g.match(lp, cfg.tokens, cfg.blank_index, threshold=0.0, filler_beam=beam, lexicon=model.lexicon)
        r = (refs[i], m.phrase, m.confidence, refs[i] in g)
        results.append(r)
        per_source.setdefault(srcs[i], []).append(r)
    sweep = [rates(results, t) for t in THRESHOLDS]
    best = max((s for s in sweep if s["accuracy"] is not None and (s["false_accept"] or 0.0) <= max_false_accept),
               key=lambda s: (s["accuracy"], -s["threshold"]), default=None)
    t = DEFAULT_GRAMMAR_THRESHOLD if threshold is None else float(threshold)
    return {"model": str(model_dir), "manifest": str(manifest), "grammar": repr(g), "phrases": len(g),
            "utterances": len(results), "filler_beam": beam, "threshold": t, "at_threshold": rates(results, t),
            "per_source": {s: rates(r, t) for s, r in sorted(per_source.items())},
            "sweep": sweep, "max_false_accept": max_false_accept, "best": best,
            "seconds": round(time.perf_counter() - t0, 1)}


def format_report(s: dict) -> str:
    a = s["at_threshold"]

    def pct(x):
        return "   -  " if x is None else f"{x:6.1%}"

    lines = [f"{s['grammar']} on {s['manifest']}: {s['utterances']} utterances ({a['in_grammar']} in grammar, "
             f"{a['out_of_grammar']} out), model {s['model']}, filler beam {s['filler_beam']} ({s['seconds']} s)", "",
             f"{'threshold':>9} {'accuracy':>9} {'false rej':>9} {'subst':>7} {'false acc':>9}"]
    for r in s["sweep"]:
        mark = " <- default" if abs(r["threshold"] - s["threshold"]) < 1e-12 else ""
        lines.append(f"{r['threshold']:>9.2f} {pct(r['accuracy']):>9} {pct(r['false_reject']):>9} "
                     f"{pct(r['substitution']):>7} {pct(r['false_accept']):>9}{mark}")
    b = s["best"]
    if b is not None:
        lines += ["", f"best threshold with false accepts <= {s['max_false_accept']:.1%}: {b['threshold']} "
                      f"(accuracy {pct(b['accuracy']).strip()}, false accepts {pct(b['false_accept']).strip()})"]
    lines += ["", f"at threshold {s['threshold']}, per source:"]
    for src, r in s["per_source"].items():
        lines.append(f"  {src:<28} in {r['in_grammar']:>4}: accuracy {pct(r['accuracy'])}   "
                     f"out {r['out_of_grammar']:>4}: false accepts {pct(r['false_accept'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory")
    ap.add_argument("manifest", help="JSON Lines manifest")
    grp = ap.add_mutually_exclusive_group()
    grp.add_argument("--grammar", help="grammar file")
    grp.add_argument("--preset", choices=sorted(PRESETS), default="commands", help="built-in grammar")
    ap.add_argument("--sources", default=",".join(DEFAULT_SOURCES), help="comma-separated sources ('' = all)")
    ap.add_argument("--threshold", type=float, help="threshold to report (default: the library default)")
    ap.add_argument("--beam", type=int, default=16, help="filler beam width (default 16)")
    ap.add_argument("--max-false-accept", type=float, default=0.01,
                    help="false-accept rate allowed when picking the best threshold (default 0.01)")
    ap.add_argument("--max-utterances", type=int, help="an evenly spaced subset of this many utterances")
    args = ap.parse_args(argv)
    from speechlstm.errors import SpeechlstmError

    try:
        s = evaluate_grammar(args.model, args.manifest, args.grammar or PRESETS[args.preset],
                             sources=[x for x in args.sources.split(",") if x], beam=args.beam,
                             max_utterances=args.max_utterances, threshold=args.threshold,
                             max_false_accept=args.max_false_accept)
    except (SpeechlstmError, OSError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(format_report(s))
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
