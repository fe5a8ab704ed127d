#!/usr/bin/env python3
"""Compare model variants (size, frame rate, ...) by training each one the same short way and measuring dev error.

Every variant is the base recipe with a few fields overridden (``--set`` syntax of ``tools/train.py``), trained
from scratch for the same audio budget (``--steps`` optimizer steps of the recipe's frame-budgeted batches, with
the learning-rate schedule compressed to those steps) in its own run directory, then scored on the recipe's dev
manifest (greedy CER/WER per source). Runs resume, so the sweep can be stopped and started again; finished
variants are not trained twice. The table goes to standard output (Markdown) and ``OUT/sweep.json``.

A short budget favours models that learn fast over models that end best, so read the table as "what to train
when compute is this scarce", not as the ranking at convergence.

Usage::

    python tools/sweep.py --recipe recipes/english.json --out ../runs/sweep --steps 700 \\
        --variant base= --variant 2x256="model.num_layers=2" --variant 20ms="model.frame_stacking=2" \\
        --variant 40ms="model.frame_stacking=4" --variant 3x384="model.hidden_size=384"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"name=a.b=1;c.d=2"`` -> ``("name", ["a.b=1", "c.d=2"])``.

    >>> parse_variant("20ms=model.frame_stacking=2;optim.lr=0.002")
    ('20ms', ['model.frame_stacking=2', 'optim.lr=0.002'])
    >>> parse_variant("base=")
    ('base', [])
    """
    name, _, sets = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=SECTION.KEY=VALUE;...")
    return name, [s for s in sets.split(";") if s]


def epoch_seconds_for(steps: int, epochs: int, seconds_per_step: float) -> float:
    """Audio seconds per epoch so that ``epochs`` epochs make about ``steps`` optimizer steps.

    >>> epoch_seconds_for(700, 2, 96.0)
    33600.0
    """
    return float(round(steps / epochs * seconds_per_step))


def run_variant(name, sets, args) -> dict:
    run_dir = Path(args.out) / name
    log_csv = run_dir / "log.csv"
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--recipe", args.recipe, "--run-dir", str(run_dir),
           "--resume", "--no-progress", "--quiet", "--epochs", str(args.epochs),
           "--set", f"data.epoch_seconds={epoch_seconds_for(args.steps, args.epochs, args.seconds_per_step)}",
           "--set", f"optim.warmup_steps={max(1, args.steps // 10)}",
           "--set", "run.average_last=1", "--set", f"data.num_workers={args.workers}"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    done = (run_dir / "model" / "config.json").exists()
    if not done:
        print(f"[sweep] {name}: {' '.join(sets) or '(base recipe)'}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"sweep: variant {name} failed (exit {proc.returncode}); see {run_dir}/train.log")
    rows = log_csv.read_text(encoding="utf-8").splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    rec = dict(zip(header, last))
    ckpt_meta = json.loads((run_dir / "model" / "config.json").read_text(encoding="utf-8"))
    arch = ckpt_meta["architecture"]
    return {"name": name, "sets": sets, "hidden_size": arch["hidden_size"], "num_layers": arch["num_layers"],
            "frame_ms": 10 * arch["frame_stacking"], "steps": int(rec["step"]),
            "train_seconds": float(rec["seconds"]), "loss": float(rec["loss"]),
            "dev_cer": float(rec["dev_cer"]) if rec.get("dev_cer") else None,
            "dev_wer": float(rec["dev_wer"]) if rec.get("dev_wer") else None,
            "wall_seconds_this_call": round(time.time() - t0, 1)}


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def markdown(results: list[dict]) -> str:
    """The sweep as a Markdown table."""
    lines = ["| variant | layers x hidden | frame | steps | train min | final loss | dev CER | dev WER |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['num_layers']} x {r['hidden_size']} | {r['frame_ms']} ms | {r['steps']} | "
                     f"{r['train_seconds'] / 60:.1f} | {r['loss']:.3f} | {_pct(r['dev_cer'])} | "
                     f"{_pct(r['dev_wer'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", required=True)
    p.add_argument("--out", required=True, help="folder for one run directory per variant and sweep.json")
    p.add_argument("--variant", action="append", type=parse_variant, required=True,
                   help="NAME=SECTION.KEY=VALUE;... (repeatable; 'base=' is the recipe as it is)")
    p.add_argument("--steps", type=int, default=700, help="optimizer steps per variant (approximate)")
    p.add_argument("--epochs", type=int, default=2, help="the steps are split into this many epochs (dev "
                                                          "scored after each)")
    p.add_argument("--seconds-per-step", type=float, default=96.0,
                   help="audio seconds in one batch of the recipe (sets data.epoch_seconds)")
    p.add_argument("--workers", type=int, default=1, help="data loader processes per run")
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = []
    for name, sets in args.variant:
        results.append(run_variant(name, sets, args))
        (Path(args.out) / "sweep.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(markdown(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
