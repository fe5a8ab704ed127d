#!/usr/bin/env python
"""How often a model hears words in sounds that are not speech: the share of non-speech clips with an empty transcript.

Inputs are manifests of non-speech clips: ``shared/data/noise/noise.jsonl`` (its ``kind == "rir"`` rows are
skipped) and sets made by ``tools/make_nonspeech.py`` (use another ``--seed`` than any training set).  Each clip
is transcribed with the shipped default decoder (beam + LM) unless ``--beam``/``--lm`` say otherwise; a clip
passes when no word comes out.  Results are per manifest and per ``kind`` (or per folder for the noise
manifest).

Usage::

    python tools/evaluate_nonspeech.py models/speechlstm-en ../shared/data/noise/noise.jsonl \\
        ../corpus/nonspeech_eval/manifest.jsonl            # add --no-vad to see the acoustic model alone
    python tools/evaluate_nonspeech.py MODEL MANIFEST --json out.json

The last line printed is a JSON summary (``empty_rate`` overall and per group).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _rows(manifest: str):
    """``(audio path, group)`` of a manifest's non-speech clips (RIRs skipped), read by the engine's manifest reader."""
    from speechlstm.data import _read

    for utt, rec in _read(manifest, warn=True)[0]:
        kind = rec.get("kind") or "noise"
        if kind == "rir":
            continue
        # shared/data/noise: group by the folder the clip came from; generated sets: by kind
        yield utt.audio, os.path.basename(os.path.dirname(utt.audio)) if kind == "noise" else kind


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model directory")
    p.add_argument("manifests", nargs="+", help="manifests of non-speech clips")
    p.add_argument("--beam", type=int, default=None, help="beam width (default: the recognizer's)")
    p.add_argument("--lm", default=None, help="LM path or 'none' (default: the model's lm.bin)")
    p.add_argument("--no-vad", action="store_true", help="switch the voice-activity gate off")
    p.add_argument("--show", type=int, default=10, help="print up to N clips that produced words")
    p.add_argument("--json", default=None, help="also write the summary to this file")
    a = p.parse_args(argv)

    from speechlstm.transcribe import DEFAULT_BEAM, Recognizer

    rec = Recognizer(a.model, beam_width=a.beam or DEFAULT_BEAM, lm=a.lm, vad=not a.no_vad)
    total = collections.Counter()
    empty = collections.Counter()
    shown = 0
    for manifest in a.manifests:
        name = os.path.basename(os.path.dirname(os.path.abspath(manifest)))
        for path, group in _rows(manifest):
            key = f"{name}/{group}"
            text = rec.transcribe(path).text.strip()
            total[key] += 1
            if not text:
                empty[key] += 1
            elif shown < a.show:
                shown += 1
                print(f"  words in {path}: {text!r}")
    print(f"{'set/group':40s} {'clips':>6s} {'empty':>7s}")
    for key in sorted(total):
        print(f"{key:40s} {total[key]:6d} {100.0 * empty[key] / total[key]:6.1f}%")
    n, e = sum(total.values()), sum(empty.values())
    summary = {"model": a.model, "vad": not a.no_vad, "clips": n, "empty": e,
               "empty_rate": e / max(n, 1),
               "groups": {k: {"clips": total[k], "empty_rate": empty[k] / total[k]} for k in sorted(total)}}
    print(f"{'all':40s} {n:6d} {100.0 * e / max(n, 1):6.1f}%")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    print(json.dumps({"clips": n, "empty_rate": round(e / max(n, 1), 4), "vad": not a.no_vad}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
