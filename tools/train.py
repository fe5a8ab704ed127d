#!/usr/bin/env python
"""Train a speechlstm acoustic model from a recipe (Numba forward/backward, Adam, exact resume).

Usage::

    python tools/train.py --recipe recipes/tiny.json --run-dir runs/tiny            # new run
    python tools/train.py --run-dir runs/tiny --resume                              # continue exactly
    python tools/train.py --recipe recipes/base.json --run-dir runs/base --resume \\
        --time-limit 170                                                            # one session's share
    python tools/train.py --recipe recipes/tiny.json --run-dir runs/x --set optim.lr=0.002 --seed 3
    python tools/train.py --recipe recipes/base.json --run-dir runs/gpu --device cuda    # forward/backward on the GPU

``--resume`` continues from ``RUN_DIR/checkpoint.npz`` when there is one (the recipe stored there is used;
``--epochs`` may raise the number of epochs) and starts a new run from ``--recipe`` otherwise, so the same
command line can be repeated across sessions until training is done. Without ``--resume`` an existing
checkpoint is an error.

A checkpoint is written every ``--checkpoint-minutes`` (recipe ``run.checkpoint_minutes``), at the end of every
epoch and when training stops: after ``--max-steps`` steps in total, after ``--time-limit`` minutes, or on
SIGTERM/SIGINT (the current batch finishes first; a second Ctrl-C aborts). Checkpoints are written to a temporary
file and renamed, so even a hard kill leaves the previous one intact. When the last epoch is done the model is
exported to ``RUN_DIR/model`` (and ``--export DIR``), in the format ``speechlstm transcribe --model`` reads.

Progress: a tqdm bar per epoch, ``RUN_DIR/log.csv`` (per epoch: loss, learning rate, gradient norm, dev CER/WER,
seconds), ``RUN_DIR/steps.csv`` and ``RUN_DIR/train.log``. The last line printed to standard output is a JSON
summary. Exit status: 0 done or stopped cleanly, 1 bad arguments or data, 3 training diverged (repeated NaN/Inf).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--recipe", help="recipe JSON file (recipes/*.json)")
    ap.add_argument("--run-dir", required=True, help="folder for checkpoints, logs and the exported model")
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.npz if it exists")
    ap.add_argument("--seed", type=int, help="override the recipe's seed (new runs only)")
    ap.add_argument("--epochs", type=int, help="override run.epochs")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a recipe field (value as JSON), e.g. optim.lr=0.002; new runs only")
    ap.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many optimizer steps in total")
    ap.add_argument("--time-limit", type=float, help="stop (with a checkpoint) after this many minutes")
    ap.add_argument("--checkpoint-minutes", type=float, help="override run.checkpoint_minutes")
    ap.add_argument("--export", metavar="DIR", help="also write the final model to DIR")
    ap.add_argument("--export-only", action="store_true", help="export the checkpoint's model and exit")
    ap.add_argument("--export-lm", metavar="LM", help="with --export: put this word LM (lm.bin, ARPA or a folder "
                    "holding one) into the exported model as its default lm.bin (phone models: with the LM words' "
                    "pronunciations in their lexicon)")
    ap.add_argument("--export-dtype", choices=("float32", "float16"), default="float32",
                    help="weights dtype of the --export copy (float16: half the size; RUN_DIR/model stays float32)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--quiet", action="store_true", help="log to RUN_DIR/train.log only")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                    help="where forward/backward run: cpu (default), cuda (numba.cuda GPU kernels) or auto")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from speechlstm.errors import DeviceError
    from speechlstm.trainer import CHECKPOINT, Trainer, TrainingDiverged, apply_override, load_recipe

    run_dir = Path(args.run_dir)
    have_ckpt = (run_dir / CHECKPOINT).is_file()
    if args.export_lm is not None:  # checked now, not after hours of training
        from speechlstm.decoding import load_lm
        from speechlstm.errors import LMError

        if not args.export:
            print("error: --export-lm needs --export DIR", file=sys.stderr)
            return 1
        try:
            load_lm(args.export_lm)
        except LMError as exc:
            print(f"error: --export-lm: {exc}", file=sys.stderr)
            return 1
    progress, verbose = not args.no_progress, not args.quiet
    try:
        if have_ckpt and (args.resume or args.export_only):
            if args.set or args.seed is not None:
                print("error: --set and --seed apply to new runs; a resumed run keeps its recipe", file=sys.stderr)
                return 1
            trainer = Trainer.resume(run_dir, progress=progress, verbose=verbose, epochs=args.epochs,
                                     device=args.device)
            if args.checkpoint_minutes is not None:
                trainer.recipe["run"]["checkpoint_minutes"] = args.checkpoint_minutes
        elif have_ckpt:
            print(f"error: {run_dir / CHECKPOINT} exists; add --resume to continue it, or pick another --run-dir",
                  file=sys.stderr)
            return 1
        elif args.export_only:
            print(f"error: no checkpoint in {run_dir}", file=sys.stderr)
            return 1
        else:
            if not args.recipe:
                print("error: a new run needs --recipe", file=sys.stderr)
                return 1
            recipe, base_dir = load_recipe(args.recipe)
            for assignment in args.set:
                apply_override(recipe, assignment)
            if args.seed is not None:
                recipe["seed"] = args.seed
            if args.epochs is not None:
                recipe["run"]["epochs"] = args.epochs
            if args.checkpoint_minutes is not None:
                recipe["run"]["checkpoint_minutes"] = args.checkpoint_minutes
            trainer = Trainer(recipe, run_dir, base_dir=base_dir, progress=progress, verbose=verbose,
                              device=args.device)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    if args.export_only:
        out = trainer.export(args.export, dtype=np.dtype(args.export_dtype) if args.export else np.float32,
                             lm=args.export_lm if args.export else None)
        print(json.dumps({"status": "exported", "model_dir": str(out)}))
        return 0

    def request_stop(signum, frame):
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        print(f"\nsignal {signum}: stopping after this batch (checkpoint follows)", file=sys.stderr)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        result = trainer.train(max_steps=args.max_steps,
                               time_limit=None if args.time_limit is None else args.time_limit * 60.0)
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"status": "diverged", "step": trainer.state["step"], "epoch": trainer.state["epoch"]}))
        return 3
    if args.export and "model_dir" in result:
        trainer.export(args.export, dtype=np.dtype(args.export_dtype), lm=args.export_lm)
        result["export"] = str(args.export)
    summary = {k: result[k] for k in ("status", "step", "epoch", "batch")}
    if result["history"]:
        last = result["history"][-1]
        summary.update({"loss": last["loss"], "dev_cer": last["dev_cer"], "dev_wer": last["dev_wer"]})
    for k in ("model_dir", "export"):
        if k in result:
            summary[k] = result[k]
    print(json.dumps(summary))
    return 130 if result["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
