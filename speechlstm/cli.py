"""Command-line interface: ``speechlstm transcribe`` and ``speechlstm info``.

Errors a user can cause (bad audio, bad model, bad option) print one line on stderr and exit with status 2; no
traceback, no partial output file. With several input files, the good ones are still transcribed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FORMATS = ("txt", "json")


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2 (argparse's own behaviour, minus the usage block)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="speechlstm", description="Numba-accelerated speech recognition (BiLSTM + CTC).")
    p.add_argument("--version", action="version", version=f"speechlstm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser(
        "transcribe", help="transcribe audio files",
        description="Transcribe audio files (WAV, FLAC, OGG, MP3, ... any rate and channel count; '-' reads\n"
                    "standard input) and print the text, or write one file per input with --output-dir.\n"
                    "Bad inputs are reported one line each on stderr (exit status 2); the others are still done.",
        epilog="examples:\n  speechlstm transcribe talk.wav\n  speechlstm transcribe a.flac b.mp3 --format json\n"
               "  cat a.wav | speechlstm transcribe -\n  speechlstm transcribe *.wav --output-dir out/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("files", nargs="+", metavar="FILE", help="audio file(s); '-' for standard input")
    t.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    t.add_argument("--format", choices=FORMATS, default="txt",
                   help="txt: the text; json: text, words with times and confidences, segments (default: txt)")
    t.add_argument("--beam", type=_positive_int, default=None, metavar="N",
                   help="beam width of the CTC prefix beam search; 1 = greedy (default: 8)")
    t.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="where the acoustic model runs (default: auto)")
    t.add_argument("--output-dir", metavar="DIR",
                   help="write <name>.<format> per input into DIR instead of printing")
    t.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    i = sub.add_parser("info", help="print a model's configuration and parameter count",
                       description="Validate a model directory and print its configuration and parameter count.")
    i.add_argument("model", nargs="?", metavar="MODEL", help="model directory (default: the shipped model)")
    i.add_argument("--json", action="store_true", help="print config.json plus parameter count as JSON")
    return p


def _err(msg: str) -> None:
    print(f"speechlstm: error: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)


def _write_atomic(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".speechlstm-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _render(transcript, source: str, fmt: str) -> str:
    if fmt == "json":
        d = {"file": source, **transcript.to_dict()}
        return json.dumps(d, ensure_ascii=False) + "\n"
    return transcript.text + "\n"


def cmd_transcribe(args) -> int:
    from .errors import SpeechlstmError
    from .transcribe import DEFAULT_BEAM, Recognizer, output_path

    if args.output_dir is not None:
        if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
            _err(f"{args.output_dir}: --output-dir exists and is not a directory")
            return EXIT_USAGE
        try:
            os.makedirs(args.output_dir, exist_ok=True)
        except OSError as exc:
            _err(f"{args.output_dir}: cannot create output directory ({exc.strerror})")
            return EXIT_USAGE
    if args.files.count("-") > 1:
        _err("'-' (standard input) can be given only once")
        return EXIT_USAGE
    try:
        rec = Recognizer(args.model, device=args.device, beam_width=args.beam or DEFAULT_BEAM)
    except SpeechlstmError as exc:
        _err(exc)
        return EXIT_USAGE

    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        from .audio import audio_duration

        total = 0.0
        for source in args.files:
            try:
                total += (audio_duration(source) or 0.0) if source != "-" else 0.0
            except Exception:  # unreadable files are reported when their turn comes
                pass
        bar = tqdm(total=round(total, 1) or None, unit="s", unit_scale=False, file=sys.stderr, leave=False,
                   desc="transcribing", bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
                   "[{elapsed}<{remaining}]" if total else None)
    failed = 0
    many = len(args.files) > 1
    for source in args.files:
        try:
            tr = rec.transcribe(source, progress=(lambda s: bar.update(s)) if bar is not None else None)
            out = _render(tr, source, args.format)
            if args.output_dir is not None:
                _write_atomic(output_path(args.output_dir, source, args.format), out)
            else:
                if many and args.format == "txt":
                    out = f"{source}: {out}"
                if bar is not None:
                    bar.clear()
                sys.stdout.write(out)
                sys.stdout.flush()
        except SpeechlstmError as exc:
            failed += 1
            if bar is not None:
                bar.clear()
            _err(exc)
        except OSError as exc:  # e.g. writing the output file
            failed += 1
            _err(f"{source}: {exc.strerror or exc}")
    if bar is not None:
        bar.close()
    return EXIT_USAGE if failed else EXIT_OK


def cmd_info(args) -> int:
    from .errors import SpeechlstmError
    from .model import load_model
    from .transcribe import default_model_dir

    try:
        model = load_model(args.model if args.model else default_model_dir())
    except SpeechlstmError as exc:
        _err(exc)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({**model.config.to_dict(), "parameters": model.num_parameters}, indent=2))
    else:
        print(model.summary())
    return EXIT_OK


def main(argv=None) -> int:
    """Entry point of the ``speechlstm`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "transcribe":
            return cmd_transcribe(args)
        return cmd_info(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug of ours: still one line, but say so
        _err(f"internal error: {type(exc).__name__}: {exc} (please report; set SPEECHLSTM_DEBUG=1 for a traceback)")
        if os.environ.get("SPEECHLSTM_DEBUG"):
            raise
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
