#!/usr/bin/env python
"""Compare language models (order, pruning, text) and their weights on a dev manifest, per source.

The acoustic model's log-probabilities are computed once (``--cache`` keeps them between runs); each LM is then
decoded with the LM beam search for every (alpha, beta) pair. Prints WER per source, the corpus WER over all
utterances and the macro average over sources (every source has a target of its own, so the macro average is what
``best`` minimizes), and the LM file's size (a shipped model directory must stay under 25 MB).

Usage::

    python tools/compare_lms.py MODEL ../shared/data/real/dev.jsonl \\
        --lm shipped=models/speechlstm-en/lm.bin --lm o4=../corpus/lm/o4p0111/lm.bin \\
        --alphas 0.3 0.5 0.7 --betas 0 1 --beam 32 --cache ../runs/dev_lp.npz [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def per_source_wer(refs, hyps, sources) -> dict:
    """``{"all": wer, "macro": mean over sources, source: wer, ...}`` (corpus-level WER per group).

    >>> per_source_wer(["a b", "c"], ["a b", "d"], ["x", "y"])
    {'all': 0.3333, 'macro': 0.5, 'x': 0.0, 'y': 1.0}
    """
    from speechlstm.metrics import ErrorCounter

    counter = ErrorCounter()
    for r, h, s in zip(refs, hyps, sources):
        counter.add(r, h, group=s)
    d = counter.to_dict()
    per = {s: round(g["wer"], 4) for s, g in d.get("groups", {}).items()}
    out = {"all": round(d["wer"], 4), "macro": round(sum(per.values()) / max(len(per), 1), 4)}
    out.update(per)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("manifest")
    ap.add_argument("--lm", action="append", required=True, metavar="NAME=PATH", help="an LM to compare (repeatable)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--beam", type=int, default=32)
    ap.add_argument("--max-utterances", type=int)
    ap.add_argument("--cache", help="cache the log-probabilities in this .npz")
    ap.add_argument("--json", help="write the results to this file")
    a = ap.parse_args(argv)

    from speechlstm.decoding import Decoder, load_lm
    from tune_lm import manifest_log_probs, score

    data = manifest_log_probs(a.model, a.manifest, a.max_utterances, None, cache=a.cache)
    lps, refs, sources = data["log_probs"], data["refs"], data["sources"]
    tokens, blank, lexicon = data["tokens"], data["blank"], data["lexicon"]
    rows = []

    def run(name, size, dec, alpha=None, beta=None):
        _, _, hyps, seconds = score(dec, lps, refs)
        w = per_source_wer(refs, hyps, sources)
        rows.append({"lm": name, "mb": size, "alpha": alpha, "beta": beta, "seconds": round(seconds, 1), **w})
        print(f"{name:14s} {size:6.1f} {'' if alpha is None else alpha:>5} {'' if beta is None else beta:>5} "
              + " ".join(f"{100 * w[k]:6.1f}" for k in keys), flush=True)

    keys = ["all", "macro"] + sorted(set(sources))
    print(f"{len(lps)} utterances; columns: " + ", ".join(keys))
    print(f"{'lm':14s} {'MB':>6s} {'alpha':>5s} {'beta':>5s} " + " ".join(f"{k[:6]:>6s}" for k in keys))
    run("greedy", 0.0, Decoder(tokens, blank=blank, beam_width=1, lexicon=lexicon))
    run(f"beam{a.beam}", 0.0, Decoder(tokens, blank=blank, beam_width=a.beam, lexicon=lexicon))
    for spec in a.lm:
        name, _, path = spec.partition("=")
        if not path:
            name, path = Path(spec).parent.name, spec
        size = os.path.getsize(path) / 1e6
        base = Decoder(tokens, blank=blank, beam_width=a.beam, lm=load_lm(path), lexicon=lexicon)
        for alpha in a.alphas:
            for beta in a.betas:
                run(name, size, base.with_params(alpha=alpha, beta=beta), alpha, beta)
    lm_rows = [r for r in rows if r["alpha"] is not None]
    best = min(lm_rows, key=lambda r: (r["macro"], r["all"]))
    print(f"best (macro): {best['lm']} alpha {best['alpha']} beta {best['beta']}: macro {100 * best['macro']:.1f}%, "
          f"all {100 * best['all']:.1f}%")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"model": a.model, "beam": a.beam, "rows": rows, "best": best}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
