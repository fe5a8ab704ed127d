#!/usr/bin/env python
"""Side-by-side evaluation: speechlstm and pocketsphinx on the same manifest, WER/CER and real-time factor.

Usage::

    python tools/evaluate_peers.py shared/data/real/dev.jsonl [--model DIR] [--beam 8] [--max-utterances N]
        [--source ljspeech] [--peer-cache ps.jsonl] [--json]

Both engines get the same 16 kHz mono audio (decoded and resampled once, outside the timed region). speechlstm
runs its :class:`speechlstm.Recognizer` (the shipped model by default, with whatever decoder options are given);
pocketsphinx (PyPI ``pocketsphinx``) runs with its bundled US English acoustic model, dictionary and 3-gram
language model, in its default configuration. Both hypotheses and the references go through
:func:`speechlstm.text.normalize_text` (so "2" and "two" are the same word), and rates are corpus-level per
``source``. The real-time factor is processing seconds (one thread each, as far as the engines allow) divided
by audio seconds. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _shared(path: str) -> str:
    p = Path(path)
    if p.exists() or p.is_absolute() or not p.parts or p.parts[0] != "shared":
        return str(p)
    for d in [ROOT, *ROOT.parents]:
        if (d / p).exists():
            return str(d / p)
    return str(p)


def read_items(manifest: str, max_utterances=None, sources=None):
    """``(id, audio path, reference text, source)`` for the manifest's lines (an even subset if asked)."""
    base = Path(manifest).resolve().parent
    items = []
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            src = r.get("source", Path(manifest).stem)
            if sources and src not in sources:
                continue
            items.append((r["id"], str(base / r["audio"]), r["text"], src))
    if max_utterances and len(items) > max_utterances:
        idx = np.linspace(0, len(items) - 1, max_utterances).round().astype(int)
        items = [items[i] for i in idx]
    return items


class PocketSphinx:
    """pocketsphinx 5 with its bundled en-us model: ``transcribe(int16 samples at 16 kHz) -> text``."""

    name = "pocketsphinx"

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise SystemExit(f"evaluate_peers: pocketsphinx is not installed ({exc}); pip install pocketsphinx")
        self._decoder = Decoder(loglevel="FATAL")

    def transcribe(self, samples16: np.ndarray) -> str:
        d = self._decoder
        d.start_utt()
        d.process_raw(samples16.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


class Speechlstm:
    """speechlstm's Recognizer on float32 samples at 16 kHz."""

    def __init__(self, model=None, beam=8, **decoder_options):
        from speechlstm import Recognizer

        self._rec = Recognizer(model, device="cpu", beam_width=beam, **decoder_options)
        self.name = "speechlstm"
        self._rec.transcribe(np.zeros(16000, np.float32), sample_rate=16000)  # compile / warm up outside timing

    def transcribe(self, samples: np.ndarray) -> str:
        return self._rec.transcribe(samples, sample_rate=16000).text


def _read_peer_cache(path) -> dict:
    """``{(id, audio path): (hypothesis, seconds)}`` from a ``--peer-cache`` file (JSON Lines; bad lines skipped)."""
    out = {}
    if path and Path(path).is_file():
        for line in open(path, encoding="utf-8"):
            try:
                r = json.loads(line)
                out[(r["id"], r["audio"])] = (str(r["hyp"]), float(r["seconds"]))
            except (ValueError, KeyError, TypeError):
                continue
    return out


def evaluate(manifest, model=None, beam=8, max_utterances=None, sources=None, engines=("speechlstm", "pocketsphinx"),
             decoder_options=None, peer_cache=None) -> dict:
    """Run every engine on the manifest; returns ``{engine: {"wer", "cer", "rtf", "per_source": {...}}}``.

    ``peer_cache``: a JSON Lines file of pocketsphinx hypotheses and their processing seconds per utterance (id and
    audio path); utterances found there are not decoded again (pocketsphinx runs at about 0.36 x real time, so
    the 83-minute dev set costs half an hour), new ones are appended as they are decoded.
    """
    from speechlstm.audio import load_audio
    from speechlstm.metrics import ErrorCounter
    from speechlstm.text import normalize_text

    items = read_items(manifest, max_utterances, sources)
    audio = []
    for _id, path, _ref, _src in items:
        audio.append(load_audio(path, 16000))
    total_audio = float(sum(len(a) for a in audio)) / 16000
    out = {"manifest": manifest, "n": len(items), "audio_seconds": round(total_audio, 2), "engines": {}}
    for name in engines:
        if name == "pocketsphinx":
            eng = PocketSphinx()
        else:
            eng = Speechlstm(model, beam, **(decoder_options or {}))
        counter = ErrorCounter()
        t_proc = 0.0
        cached = _read_peer_cache(peer_cache) if name == "pocketsphinx" else {}
        cache_file = open(peer_cache, "a", encoding="utf-8") if name == "pocketsphinx" and peer_cache else None
        try:
            for (uid, path, ref, src), samples in zip(items, audio):
                if (uid, str(path)) in cached:
                    hyp, sec = cached[(uid, str(path))]
                else:
                    x = (np.clip(samples, -1, 1) * 32767).astype(np.int16) if name == "pocketsphinx" else samples
                    t0 = time.perf_counter()
                    hyp = eng.transcribe(x)
                    sec = time.perf_counter() - t0
                    if cache_file is not None:
                        cache_file.write(json.dumps({"id": uid, "audio": str(path), "hyp": hyp, "seconds": sec}) + "\n")
                        cache_file.flush()
                t_proc += sec
                counter.add(normalize_text(ref), normalize_text(hyp), group=src)
        finally:
            if cache_file is not None:
                cache_file.close()
        d = counter.to_dict()
        out["engines"][name] = {
            "wer": round(d["wer"], 4), "cer": round(d["cer"], 4), "rtf": round(t_proc / max(total_audio, 1e-9), 4),
            "per_source": {g: {"n": c["n"], "wer": round(c["wer"], 4), "cer": round(c["cer"], 4)}
                           for g, c in d.get("groups", {}).items()}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", help="JSON Lines manifest (e.g. shared/data/real/dev.jsonl)")
    ap.add_argument("--model", help="speechlstm model directory (default: the shipped model)")
    ap.add_argument("--beam", type=int, default=8, help="speechlstm beam width (default 8)")
    ap.add_argument("--max-utterances", type=int, help="an evenly spaced subset of this many utterances")
    ap.add_argument("--source", action="append", help="only this manifest source (repeatable)")
    ap.add_argument("--engines", default="speechlstm,pocketsphinx", help="comma-separated (default: both)")
    ap.add_argument("--peer-cache", metavar="FILE.jsonl",
                    help="reuse (and extend) pocketsphinx hypotheses stored in this file: they do not depend on the model")
    ap.add_argument("--json", action="store_true", help="print only the JSON summary")
    a = ap.parse_args(argv)
    res = evaluate(_shared(a.manifest), a.model, a.beam, a.max_utterances, a.source, tuple(a.engines.split(",")),
                   peer_cache=a.peer_cache)
    if not a.json:
        print(f"{res['n']} utterances, {res['audio_seconds']:.0f} s of audio")
        srcs = sorted({s for e in res["engines"].values() for s in e["per_source"]})
        print(f"{'engine':<14}{'RTF':>8}{'WER':>8}{'CER':>8}" + "".join(f"{s[:14]:>16}" for s in srcs))
        for name, e in res["engines"].items():
            print(f"{name:<14}{e['rtf']:>8.3f}{100 * e['wer']:>7.1f}%{100 * e['cer']:>7.1f}%"
                  + "".join(f"{100 * e['per_source'].get(s, {}).get('wer', float('nan')):>15.1f}%" for s in srcs))
        print("(per-source columns: WER)")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
