#!/usr/bin/env python
"""Benchmark: CTC beam search with an n-gram LM, speechlstm's Decoder vs pyctcdecode 0.5.0 (+ kenlm).

Usage::

    python tools/bench_lm.py [--model DIR] [--manifest M] [--source ljspeech] [--lm LM.arpa(.gz)] [--beam 8]
                             [--alpha A] [--beta B] [--repeats 3] [--json]

Both decoders get the same log-probabilities, the same ARPA file (ours reads it with
:func:`speechlstm.lm.read_arpa`, pyctcdecode with kenlm), the same beam width, the same ``alpha`` / ``beta`` (both
apply ``alpha`` to natural-log LM probabilities and add ``beta`` per word, score ``</s>``, and penalize
out-of-vocabulary words) and their default pruning. Timed: decoding every utterance once, single thread, best of
``--repeats``; LM loading is not timed. Also reported: WER of both, and of greedy / no-LM beam search.

Inputs: with ``--model``, the model's log-probabilities of the manifest's utterances (default: the LJSpeech part of
``shared/data/real/dev.jsonl``); without, deterministic synthetic "peaky" log-probabilities spelling the dev
transcripts with noise and character confusions (:func:`synthetic_log_probs`). LM: ``--lm``, else a 3-gram built
from ``shared/data/text/*.txt`` (counts of 1 pruned above unigrams) and cached in ``.bench/lm3``, or the model
directory's ``lm.bin`` written as ARPA into ``.bench/`` when it has one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

CHARS = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]


def synthetic_log_probs(texts, tokens=CHARS, blank=0, seed=0, sub_prob=0.06, noise=0.5):
    """Peaky CTC log-probabilities that spell ``texts``, with noise and confusions (deterministic for a seed).

    Each character gets 1-3 frames (a blank frame before it with probability 0.4, always between repeated
    characters); each frame's target scores ``uniform(2, 7)`` above ``normal(0, noise)`` logits. With probability
    ``sub_prob`` a character's frames favour another letter (by 0-1.5) while the true one stays close behind,
    with probability ``sub_prob / 2`` it is dropped to a weak blank-ish frame, so greedy decoding makes character
    errors that a language model can repair.

    Examples
    --------
    >>> lps = synthetic_log_probs(["hi there"], seed=1)
    >>> lps[0].shape[1], bool(np.allclose(np.exp(lps[0]).sum(1), 1, atol=1e-4))
    (29, True)
    """
    rng = np.random.default_rng(seed)
    index = {t: i for i, t in enumerate(tokens)}
    letters = [index[c] for c in "abcdefghijklmnopqrstuvwxyz" if c in index]
    out = []
    for text in texts:
        targets, rivals = [], []  # per frame: label to favour, and a rival (or -1)
        prev = None
        for ch in text:
            lab = index[ch]
            if rng.random() < 0.4 or lab == prev:
                targets.append(blank)
                rivals.append(-1)
            r = rng.random()
            if ch != " " and r < sub_prob:
                other = int(rng.choice(letters))
                for _ in range(int(rng.integers(1, 4))):
                    targets.append(other)
                    rivals.append(lab)
            elif ch != " " and r < 1.5 * sub_prob:
                targets.append(blank)
                rivals.append(lab)
            else:
                for _ in range(int(rng.integers(1, 4))):
                    targets.append(lab)
                    rivals.append(-1)
            prev = lab
        targets.append(blank)
        rivals.append(-1)
        T = len(targets)
        x = rng.normal(0.0, noise, size=(T, len(tokens)))
        margin = rng.uniform(2.0, 7.0, size=T)
        x[np.arange(T), targets] += margin
        has = np.array(rivals) >= 0
        rv = np.array(rivals)[has]
        x[np.flatnonzero(has), rv] = x[np.flatnonzero(has), np.array(targets)[has]] - rng.uniform(0, 1.5, has.sum())
        x -= x.max(1, keepdims=True)
        out.append((x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float32))
    return out


def dev_texts(source="ljspeech"):
    from speechlstm.text import normalize_text

    path = SHARED / "real" / "dev.jsonl"
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [normalize_text(r["text"]) for r in rows if source is None or r.get("source") == source]


def shipped_model():
    """Directory of the shipped model, or None when the package ships none."""
    try:
        from speechlstm.errors import ModelError
        from speechlstm.transcribe import default_model_dir

        return str(default_model_dir())
    except ModelError:
        return None


def default_lm(model=None):
    """The model directory's ``lm.bin`` as ARPA (written once into .bench/), else a 3-gram ARPA of
    shared/data/text/*.txt (built once into .bench/lm3)."""
    if model and (Path(model) / "lm.bin").is_file():
        from speechlstm.lm import NGramLM, write_arpa

        src = Path(model) / "lm.bin"
        arpa = ROOT / ".bench" / f"model-lm-{int(src.stat().st_mtime)}.arpa.gz"
        if not arpa.is_file():
            arpa.parent.mkdir(parents=True, exist_ok=True)
            tmp = arpa.with_name("tmp-" + arpa.name)
            write_arpa(NGramLM.load(src), tmp)
            tmp.replace(arpa)
        return arpa
    out = ROOT / ".bench" / "lm3"
    arpa = out / "lm.arpa.gz"
    if not arpa.is_file():
        from speechlstm.lm import build_lm, read_sentences, write_arpa

        out.mkdir(parents=True, exist_ok=True)
        lm = build_lm(read_sentences(sorted((SHARED / "text").glob("*.txt"))), order=3, prune=[0, 1, 1])
        tmp = out / "lm.tmp.arpa.gz"
        write_arpa(lm, tmp)
        tmp.replace(arpa)
    return arpa


def _wer(refs, hyps):
    from speechlstm.metrics import ErrorCounter

    c = ErrorCounter()
    for r, h in zip(refs, hyps):
        c.add(r, h)
    return c.wer


def bench_lm(model=None, manifest=None, source="ljspeech", lm_path=None, beam=8, alpha=None, beta=None,
             repeats=3, max_utterances=None) -> dict:
    """Run the comparison; returns the ``beam_lm_*`` keys of ``tools/bench.py --json``."""
    import numba

    from speechlstm.decoding import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_UNK_PENALTY, Decoder
    from speechlstm.lm import read_arpa

    alpha = DEFAULT_ALPHA if alpha is None else alpha
    beta = DEFAULT_BETA if beta is None else beta
    if model:
        from tune_lm import manifest_log_probs

        data = manifest_log_probs(model, manifest or SHARED / "real" / "dev.jsonl", max_utterances, source)
        lps, refs, tokens, blank = data["log_probs"], data["refs"], data["tokens"], data["blank"]
        what = f"model {Path(model).name}: {len(lps)} {source or 'dev'} utterances"
    else:
        refs = dev_texts(source)[:max_utterances]
        tokens, blank = CHARS, 0
        lps = synthetic_log_probs(refs, tokens, blank)
        what = f"synthetic log-probs of {len(refs)} dev transcripts"
    lm_path = Path(lm_path) if lm_path else default_lm(model)
    res = {"beam_lm_input": what, "beam_lm_beam": beam, "beam_lm_alpha": alpha, "beam_lm_beta": beta,
           "beam_lm_frames": int(sum(len(x) for x in lps)), "beam_lm_arpa": lm_path.name}
    numba.set_num_threads(1)
    lm = read_arpa(lm_path)
    ours = Decoder(tokens, blank=blank, beam_width=beam, lm=lm, alpha=alpha, beta=beta,
                   unk_penalty=DEFAULT_UNK_PENALTY)
    greedy = Decoder(tokens, blank=blank, beam_width=1)
    plain = Decoder(tokens, blank=blank, beam_width=beam)
    ours.decode(lps[0])  # compile / warm up
    res["beam_lm_greedy_wer"] = _wer(refs, [greedy.decode(x)[0].text for x in lps])
    res["beam_lm_nolm_wer"] = _wer(refs, [plain.decode(x)[0].text for x in lps])
    fns = {"ours": lambda x: ours.decode(x)[0].text}
    try:
        import kenlm  # noqa: F401
        from pyctcdecode import build_ctcdecoder
    except ImportError as exc:
        res["beam_lm_note"] = (f"pyctcdecode/kenlm not installed ({exc}): pip install kenlm pygtrie and "
                               "pip install --no-deps pyctcdecode==0.5.0")
    else:
        import logging

        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
        labels = ["" if i == blank else t for i, t in enumerate(tokens)]
        peer = build_ctcdecoder(labels, kenlm_model_path=str(lm_path), unigrams=lm.vocab[3:], alpha=alpha,
                                beta=beta, unk_score_offset=DEFAULT_UNK_PENALTY)
        peer.decode(lps[0], beam_width=beam)
        fns["peer"] = lambda x: " ".join(peer.decode(x, beam_width=beam).split())
    best, hyps = {k: float("inf") for k in fns}, {}
    for _ in range(repeats):  # interleaved, best of `repeats` each
        for k, fn in fns.items():
            t0 = time.perf_counter()
            hyps[k] = [fn(x) for x in lps]
            best[k] = min(best[k], time.perf_counter() - t0)
    res["beam_lm_ms"] = 1e3 * best["ours"]
    res["beam_lm_wer"] = _wer(refs, hyps["ours"])
    if "peer" in fns:
        res["beam_lm_pyctcdecode_ms"] = 1e3 * best["peer"]
        res["beam_lm_pyctcdecode_wer"] = _wer(refs, hyps["peer"])
        res["beam_lm_speedup_vs_pyctcdecode"] = best["peer"] / best["ours"]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model directory (default: synthetic log-probs)")
    ap.add_argument("--manifest", help="manifest (default: shared/data/real/dev.jsonl)")
    ap.add_argument("--source", default="ljspeech", help="manifest source to use ('' for all)")
    ap.add_argument("--lm", help="ARPA file (default: a 3-gram of shared/data/text, cached in .bench/lm3)")
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--alpha", type=float)
    ap.add_argument("--beta", type=float)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-utterances", type=int)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = bench_lm(args.model, args.manifest, args.source or None, args.lm, args.beam, args.alpha, args.beta,
                 args.repeats, args.max_utterances)
    for k, v in r.items():
        print(f"{k:36s} {v:.4g}" if isinstance(v, float) else f"{k:36s} {v}")
    if args.json:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
