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
FORMATS = ("txt", "json", "srt", "vtt")
HOTWORD_WEIGHT_HELP = "5.0"  # speechlstm.decoding.DEFAULT_HOTWORD_WEIGHT (not imported: start-up time; a test checks)
GRAMMAR_THRESHOLD_HELP = "0.3"  # speechlstm.grammar.DEFAULT_GRAMMAR_THRESHOLD (a test checks)


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return v


def _finite_float(text):
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return v


def _unit_float(text):
    v = _finite_float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]: {text!r}")
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
               "  cat a.wav | speechlstm transcribe -\n  speechlstm transcribe *.wav --output-dir out/\n"
               "  speechlstm transcribe talk.wav --format srt > talk.srt\n"
               "  speechlstm transcribe cmd.wav --grammar commands.txt\n"
               "  speechlstm transcribe a.wav --nbest 5 --hotwords 'speechlstm,turn on the lights:4.0'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("files", nargs="+", metavar="FILE", help="audio file(s); '-' for standard input")
    t.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    t.add_argument("--format", choices=FORMATS, default="txt",
                   help="txt: the text; json: text, words with times and confidences, segments; srt / vtt: "
                        "subtitles (default: txt)")
    t.add_argument("--beam", type=_positive_int, default=None, metavar="N",
                   help="beam width of the CTC prefix beam search; 1 = greedy (default: 32)")
    t.add_argument("--nbest", type=_positive_int, default=1, metavar="K",
                   help="K best transcriptions: txt prints K lines, json adds 'alternatives' (default: 1)")
    t.add_argument("--lm", metavar="PATH|none", default=None,
                   help="n-gram language model (lm.bin or ARPA) fused into the beam search, or 'none' "
                        "(default: the model directory's lm.bin if it has one)")
    t.add_argument("--alpha", type=_finite_float, default=None, metavar="X", help="language model weight")
    t.add_argument("--beta", type=_finite_float, default=None, metavar="X", help="word insertion bonus")
    t.add_argument("--hotwords", metavar="SPEC", default=None,
                   help="words or phrases to favour, comma separated, each with an optional ':weight' (default "
                        f"weight {HOTWORD_WEIGHT_HELP}), e.g. 'speechlstm,turn on the lights:4.0'")
    t.add_argument("--grammar", metavar="FILE", default=None,
                   help="command grammar mode: one phrase per line ({number}, {digit} and user slots); the "
                        "output is one of the phrases or 'no match'")
    t.add_argument("--grammar-threshold", type=_unit_float, default=None, metavar="X",
                   help="smallest confidence (0..1) at which a phrase is accepted in grammar mode "
                        f"(default: {GRAMMAR_THRESHOLD_HELP})")
    t.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="where the acoustic model runs (default: auto)")
    t.add_argument("--output-dir", metavar="DIR",
                   help="write <name>.<format> per input into DIR instead of printing")
    t.add_argument("--no-vad", action="store_true",
                   help="decode every segment, even where the voice-activity gate finds no speech")
    t.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    t.add_argument("--stream", action="store_true", help="run the streaming path (as `listen` does) over the file")

    i = sub.add_parser("info", help="print a model's configuration and parameter count",
                       description="Validate a model directory and print its configuration and parameter count.")
    i.add_argument("model", nargs="?", metavar="MODEL", help="model directory (default: the shipped model)")
    i.add_argument("--json", action="store_true", help="print config.json plus parameter count as JSON")
    _add_listen_parser(sub)
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
    from .formats import render

    return render(transcript, fmt, source=source if fmt == "json" else None)


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
    if args.format in ("srt", "vtt") and len(args.files) > 1 and args.output_dir is None:
        _err(f"--format {args.format} with several files needs --output-dir (one subtitle file per input)")
        return EXIT_USAGE
    if args.grammar_threshold is not None and args.grammar is None:
        _err("--grammar-threshold needs --grammar")
        return EXIT_USAGE
    try:
        rec = Recognizer(args.model, device=args.device, beam_width=args.beam or DEFAULT_BEAM, lm=args.lm,
                         alpha=args.alpha, beta=args.beta, hotwords=args.hotwords, grammar=args.grammar,
                         grammar_threshold=args.grammar_threshold, nbest=args.nbest, vad=not args.no_vad)
    except (SpeechlstmError, ValueError) as exc:
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
            if args.stream:  # the streaming path (speechlstm/stream.py)
                from .stream import transcribe_stream

                tr = transcribe_stream(rec, source, progress=(lambda s: bar.update(s)) if bar is not None else None)
            else:
                tr = rec.transcribe(source, progress=(lambda s: bar.update(s)) if bar is not None else None)
            out = _render(tr, source, args.format)
            if args.output_dir is not None:
                _write_atomic(output_path(args.output_dir, source, args.format), out)
            else:
                if many and args.format == "txt":
                    out = "".join(f"{source}: {line}\n" for line in out.splitlines())
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


def _add_listen_parser(sub) -> None:
    p = sub.add_parser(
        "listen", help="live dictation from a microphone",
        description="Recognize speech from a microphone: on a terminal the partial text updates in place and\n"
                    "each utterance is printed on its own line when you pause. Ctrl-C finishes the current\n"
                    "utterance and exits (status 0).",
        epilog="examples:\n  speechlstm listen --list-devices\n  speechlstm listen --device 2 --output notes.txt\n"
               "  speechlstm listen --duration 30 --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    p.add_argument("--device", metavar="NAME|INDEX", default=None,
                   help="input device: index or part of its name (default: the system's default input)")
    p.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("--samplerate", type=_positive_int, default=None, metavar="HZ",
                   help="capture rate (default: the device's native rate; resampled to the model's)")
    p.add_argument("--duration", type=_positive_float, default=None, metavar="SECONDS",
                   help="stop after this many seconds of audio")
    p.add_argument("--format", choices=("txt", "json"), default="txt",
                   help="a final line is the text, or JSON with words and times (default: txt)")
    p.add_argument("--output", metavar="FILE", help="append the final lines to FILE instead of printing them")
    p.add_argument("--beam", type=_positive_int, default=None, metavar="N",
                   help="beam width of the final decoding; 1 = greedy (default: 32)")
    p.add_argument("--trailing-silence", type=_positive_float, default=None, metavar="SECONDS",
                   help="pause that ends an utterance (default: 0.6)")
    p.add_argument("--max-utterance", type=_positive_float, default=None, metavar="SECONDS",
                   help="longest utterance before it is cut (default: 20)")


def _positive_float(text):
    v = _finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return v


def cmd_listen(args) -> int:
    from .listen import run

    return run(args)


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
        if args.command == "listen":
            return cmd_listen(args)
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
