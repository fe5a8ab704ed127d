#!/usr/bin/env python
"""Grid-search the LM weight (alpha) and word bonus (beta) of the LM beam search on a dev manifest.

Usage::

    python tools/tune_lm.py MODEL MANIFEST --lm LM [--alphas 0.3 0.5 0.8] [--betas 0 1 2] [--beam 8]
                            [--unk-penalty -10] [--no-lookahead] [--prune -10] [--source ljspeech] [--max-utterances N]
                            [--hotwords SPEC] [--show ID ...] [--cache FILE.npz] [--json]

The model's log-probabilities are computed once (optionally cached in an .npz); then every (alpha, beta) pair
decodes all utterances with :class:`speechlstm.decoding.Decoder` (the LM and its vocabulary trie are shared). Prints
a table of WER / CER per pair, the greedy and no-LM beam search baselines, and the best pair by WER (ties: CER).
``--hotwords`` decodes the best pair once more with those hotwords (how much they change the unrelated text);
``--show ID`` prints the hypotheses of some utterances. References are the manifest's ``text`` put through
:func:`speechlstm.text.normalize_text`; rates are corpus level (:mod:`speechlstm.metrics`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def manifest_log_probs(model_dir, manifest, max_utterances=None, source=None, batch_frames=40000, cache=None):
    """Log-probabilities of a manifest's utterances under a model (computed once; cached in ``cache`` if given).

    Returns
    -------
    dict
        ``ids``, ``refs`` (normalized), ``sources``, ``log_probs`` (list of (T, V) float32), ``tokens``, ``blank``,
        ``frame_seconds``, ``audio_seconds``.
    """
    from speechlstm.audio import load_audio
    from speechlstm.errors import AudioError
    from speechlstm.model import load_model
    from speechlstm.text import normalize_text
    from speechlstm.trainer import _batches_by_frames, _read_manifest_items

    model = load_model(model_dir)
    cfg = model.config
    key = {"model": str(Path(model_dir).resolve()), "manifest": str(Path(manifest).resolve()),
           "max_utterances": max_utterances, "source": source,
           "weights_mtime": (Path(model_dir) / "weights.npz").stat().st_mtime}
    if cache and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as z:
            if json.loads(str(z["key"])) == key:
                meta = json.loads(str(z["meta"]))
                lps = [z[f"lp{i}"] for i in range(len(meta["ids"]))]
                return {**meta, "log_probs": lps, "lexicon": model.lexicon}
    ids, audio, texts, sources = _read_manifest_items(str(manifest))
    keep = [i for i in range(len(ids)) if source is None or sources[i] == source]
    if max_utterances is not None and len(keep) > max_utterances:
        keep = [keep[int(j)] for j in np.linspace(0, len(keep) - 1, int(max_utterances)).round().astype(int)]
    feats, ok, audio_seconds = [], [], 0.0
    for i in keep:
        try:
            x = load_audio(audio[i], cfg.sample_rate)
        except AudioError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            continue
        audio_seconds += len(x) / cfg.sample_rate
        feats.append(model.featurize(x))
        ok.append(i)
    lps = [None] * len(feats)
    for group in _batches_by_frames([len(f) for f in feats], batch_frames):
        for j, lp in zip(group, model.log_probs([feats[j] for j in group])):
            lps[j] = np.ascontiguousarray(lp, np.float32)
    meta = {"ids": [ids[i] for i in ok], "refs": [normalize_text(texts[i]) for i in ok],
            "sources": [sources[i] for i in ok], "tokens": list(cfg.tokens), "blank": int(cfg.blank_index),
            "frame_seconds": float(cfg.frame_seconds), "audio_seconds": audio_seconds}
    if cache:
        tmp = Path(str(cache) + ".tmp.npz")
        np.savez(tmp, key=json.dumps(key), meta=json.dumps(meta), **{f"lp{i}": lp for i, lp in enumerate(lps)})
        tmp.replace(cache)
    return {**meta, "log_probs": lps, "lexicon": model.lexicon}


def score(decoder, log_probs, refs):
    """Corpus WER and CER of a decoder's best hypotheses, the hypotheses, and the decoding seconds."""
    from speechlstm.metrics import ErrorCounter

    counter = ErrorCounter()
    hyps = []
    t0 = time.perf_counter()
    for lp in log_probs:
        h = decoder.decode(lp)
        hyps.append(h[0].text if h else "")
    seconds = time.perf_counter() - t0
    for ref, hyp in zip(refs, hyps):
        counter.add(ref, hyp)
    d = counter.to_dict()
    return d["wer"], d["cer"], hyps, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory")
    ap.add_argument("manifest", help="JSON Lines manifest (dev set)")
    ap.add_argument("--lm", required=True, help="lm.bin, .arpa(.gz), or a directory holding one")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.2, 0.35, 0.5, 0.7, 1.0])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0])
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--unk-penalty", type=float, default=None)
    ap.add_argument("--no-lookahead", action="store_true", help="score unfinished words by the prefix check only")
    ap.add_argument("--prune", type=float, default=None, help="prune threshold of the LM beam search (default -10)")
    ap.add_argument("--source", help="only utterances of this manifest source (e.g. ljspeech)")
    ap.add_argument("--max-utterances", type=int)
    ap.add_argument("--hotwords", help="also decode the best pair with these hotwords")
    ap.add_argument("--show", nargs="+", default=[], help="print the hypotheses of these utterance ids")
    ap.add_argument("--cache", help="cache the log-probabilities in this .npz")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    args = ap.parse_args(argv)

    from speechlstm.decoding import DEFAULT_UNK_PENALTY, Decoder, load_lm
    from speechlstm.errors import SpeechlstmError

    try:
        t0 = time.perf_counter()
        data = manifest_log_probs(args.model, args.manifest, args.max_utterances, args.source, cache=args.cache)
        lps, refs = data["log_probs"], data["refs"]
        if not lps:
            raise SpeechlstmError(f"{args.manifest}: no utterances to decode")
        print(f"{len(lps)} utterances, {data['audio_seconds'] / 60:.1f} min of audio, log-probs in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        lm = load_lm(args.lm)
        unk = DEFAULT_UNK_PENALTY if args.unk_penalty is None else args.unk_penalty
        tokens, blank = data["tokens"], data["blank"]
        fusion = {"unk_penalty": unk, "lookahead": not args.no_lookahead, "lexicon": data["lexicon"]}
        if args.prune is not None:
            fusion["prune_threshold"] = args.prune
        base = Decoder(tokens, blank=blank, beam_width=args.beam, lm=lm, **fusion)
        greedy = score(Decoder(tokens, blank=blank, beam_width=1, lexicon=data["lexicon"]), lps, refs)
        plain = score(Decoder(tokens, blank=blank, beam_width=args.beam, lexicon=data["lexicon"]), lps, refs)
        print(f"greedy:           WER {greedy[0]:7.2%}  CER {greedy[1]:7.2%}")
        print(f"beam {args.beam:<3d} no LM:    WER {plain[0]:7.2%}  CER {plain[1]:7.2%}  ({plain[3]:.2f} s)")
        print(f"\n{'alpha':>6} {'beta':>6} {'WER':>8} {'CER':>8} {'seconds':>8}")
        grid, best, best_hyps = [], None, None
        for a in args.alphas:
            for b in args.betas:
                wer, cer, hyps, sec = score(base.with_params(alpha=a, beta=b), lps, refs)
                grid.append({"alpha": a, "beta": b, "wer": wer, "cer": cer, "seconds": sec})
                print(f"{a:6.2f} {b:6.2f} {wer:8.2%} {cer:8.2%} {sec:8.2f}", flush=True)
                if best is None or (wer, cer) < (best["wer"], best["cer"]):
                    best, best_hyps = grid[-1], hyps
        print(f"\nbest: alpha {best['alpha']} beta {best['beta']}: WER {best['wer']:.2%} CER {best['cer']:.2%} "
              f"(no LM {plain[0]:.2%} / {plain[1]:.2%})")
        summary = {"model": str(args.model), "manifest": str(args.manifest), "lm": str(args.lm), "n": len(lps),
                   "beam": args.beam, "unk_penalty": unk, "greedy": {"wer": greedy[0], "cer": greedy[1]},
                   "beam_no_lm": {"wer": plain[0], "cer": plain[1]}, "grid": grid,
                   "best": {"alpha": best["alpha"], "beta": best["beta"], "wer": best["wer"], "cer": best["cer"]}}
        tuned = base.with_params(alpha=best["alpha"], beta=best["beta"])
        hot_hyps = None
        if args.hotwords:
            hot = Decoder(tokens, blank=blank, beam_width=args.beam, lm=lm, alpha=best["alpha"], beta=best["beta"],
                          hotwords=args.hotwords, **fusion)
            wer, cer, hot_hyps, _ = score(hot, lps, refs)
            changed = [i for i in range(len(refs)) if hot_hyps[i] != best_hyps[i]]
            print(f"with hotwords {args.hotwords!r}: WER {wer:.2%} CER {cer:.2%}; {len(changed)} of {len(refs)} "
                  f"hypotheses changed")
            for i in changed:
                print(f"  {data['ids'][i]}\n    ref: {refs[i]}\n    was: {best_hyps[i]}\n    now: {hot_hyps[i]}")
            summary["hotwords"] = {"spec": args.hotwords, "wer": wer, "cer": cer, "changed": len(changed)}
        for uid in args.show:
            if uid not in data["ids"]:
                print(f"--show: no utterance {uid!r}", file=sys.stderr)
                continue
            i = data["ids"].index(uid)
            print(f"\n{uid}\n  ref:     {refs[i]}\n  greedy:  {greedy[2][i]}\n  beam:    {plain[2][i]}\n"
                  f"  LM:      {best_hyps[i]}" + (f"\n  hotword: {hot_hyps[i]}" if hot_hyps else ""))
        del tuned
    except (SpeechlstmError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
