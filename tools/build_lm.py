"""Build a word n-gram LM (interpolated modified Kneser-Ney) from text files: writes lm.arpa.gz and lm.bin.

Usage::

    python tools/build_lm.py --order 4 --prune 0 0 1 1 --out models/x/lm ../shared/data/text/*.txt

Text files: one normalized sentence per line. ``--prune k1 .. kN`` drops n-grams of order n with raw count <= kn
(unigrams are never pruned). ``lm.bin`` loads memory-mapped with ``speechlstm.lm.NGramLM.load``.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechlstm.errors import SpeechlstmError  # noqa: E402
from speechlstm.lm import NGramLM, build_lm, read_sentences, write_arpa  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("texts", nargs="+", help="text files, one sentence per line")
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--prune", type=int, nargs="+", default=None, help="per-order count thresholds (<= k dropped)")
    ap.add_argument("--out", required=True, help="output directory (lm.arpa.gz, lm.bin)")
    ap.add_argument("--no-arpa", action="store_true", help="write only lm.bin")
    args = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        sents = read_sentences(args.texts)
        print(f"read {len(sents)} sentences, {sum(map(len, sents))} words in {time.perf_counter() - t0:.1f} s",
              flush=True)
        lm = build_lm(sents, order=args.order, prune=args.prune, verbose=True)
        del sents
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        t1 = time.perf_counter()
        lm.save(out / "lm.bin")
        print(f"wrote {out / 'lm.bin'} ({(out / 'lm.bin').stat().st_size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t1:.1f} s", flush=True)
        if not args.no_arpa:
            t1 = time.perf_counter()
            write_arpa(lm, out / "lm.arpa.gz")
            print(f"wrote {out / 'lm.arpa.gz'} ({(out / 'lm.arpa.gz').stat().st_size / 1e6:.1f} MB) in "
                  f"{time.perf_counter() - t1:.1f} s", flush=True)
        t1 = time.perf_counter()
        NGramLM.load(out / "lm.bin")
        print(f"n-grams per order {lm.num_ngrams()}; binary load {1e3 * (time.perf_counter() - t1):.1f} ms; "
              f"total {time.perf_counter() - t0:.1f} s")
    except SpeechlstmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
