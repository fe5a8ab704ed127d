"""Live dictation from a microphone: ``speechlstm listen`` and ``tools/live_mic.py``.

Audio is captured with sounddevice (PortAudio) at the input device's native rate, as 16-bit PCM, in a callback
that only queues the blocks; the main thread feeds them to a :class:`speechlstm.stream.StreamingRecognizer`
(which resamples them to the model's rate with soxr) and renders the events: on a terminal the partial text is
redrawn in place (``\\r`` + clear to end of line) and every final utterance is printed on its own line and
flushed; with ``--output FILE`` the final lines are appended to FILE instead of standard output.  Ctrl-C
finishes the utterance being spoken, prints it and exits with status 0; ``--duration`` stops after that many
seconds of audio (and the end of the input stream stops it too).

sounddevice is imported only here, lazily: without the PortAudio library, or without any input device, the
command prints one line saying what to install or which devices exist.

Examples
--------
>>> import numpy as np, io, tempfile
>>> from speechlstm import Recognizer
>>> from speechlstm.model import ModelConfig, random_weights, save_model
>>> d = tempfile.mkdtemp(); cfg = ModelConfig.example(hidden_size=8, num_layers=1)
>>> save_model(d, cfg, random_weights(cfg))
>>> blocks = [np.zeros(800, np.int16)] * 20            # 1 s of silence in 50 ms blocks, from any source
>>> listen(Recognizer(d), source=blocks, samplerate=16000)
[]
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import sys
import threading

from .errors import SpeechlstmError

__all__ = ["AudioDeviceError", "import_sounddevice", "input_devices", "format_devices", "find_input_device",
           "capture", "Renderer", "listen", "run", "PORTAUDIO_MISSING"]

PORTAUDIO_MISSING = "PortAudio library not found: install it, e.g. `apt-get install libportaudio2`"
#: Capture block length (seconds).
BLOCK_SECONDS = 0.05


class AudioDeviceError(SpeechlstmError):
    """No usable audio input: PortAudio missing, no input device, unknown device, unsupported rate."""


def _load_sounddevice():
    import sounddevice

    return sounddevice


def import_sounddevice():
    """The ``sounddevice`` module, or :class:`AudioDeviceError` with one line saying what to install."""
    try:
        return _load_sounddevice()
    except OSError:  # sounddevice raises OSError when it cannot load the PortAudio library
        raise AudioDeviceError(PORTAUDIO_MISSING) from None
    except ImportError:
        raise AudioDeviceError("the sounddevice package is not installed: pip install sounddevice") from None


def _all_devices(sd) -> list:
    try:
        devs = sd.query_devices()
    except Exception as exc:  # PortAudio errors
        raise AudioDeviceError(f"cannot list audio devices ({' '.join(str(exc).split())})") from None
    out = []
    for i, d in enumerate(devs):
        d = dict(d)
        d.setdefault("index", i)
        out.append(d)
    return out


def _default_input_index(sd) -> int:
    try:
        idx = sd.default.device[0]
    except Exception:
        return -1
    return -1 if idx is None else int(idx)


def input_devices(sd=None) -> list:
    """Input devices: dicts with ``index``, ``name``, ``channels``, ``samplerate``, ``hostapi`` and ``default``."""
    sd = sd or import_sounddevice()
    default = _default_input_index(sd)
    hostapis = []
    try:
        hostapis = [h["name"] for h in sd.query_hostapis()]
    except Exception:
        pass
    out = []
    for d in _all_devices(sd):
        if d.get("max_input_channels", 0) > 0:
            h = d.get("hostapi", 0)
            out.append({"index": d["index"], "name": d["name"], "channels": d["max_input_channels"],
                        "samplerate": float(d.get("default_samplerate") or 0.0),
                        "hostapi": hostapis[h] if 0 <= h < len(hostapis) else str(h),
                        "default": d["index"] == default})
    return out


def format_devices(devices: list) -> str:
    """One line per input device, ``*`` marking the default (what ``--list-devices`` prints)."""
    return "\n".join(f"{'*' if d['default'] else ' '} {d['index']:3d}  {d['name']}  ({d['hostapi']}, "
                     f"{d['channels']} ch, {d['samplerate']:g} Hz)" for d in devices)


def _no_input(sd) -> AudioDeviceError:
    others = [f"{d['index']} {d['name']!r} (output only)" for d in _all_devices(sd)]
    if others:
        return AudioDeviceError("no audio input device found; devices: " + ", ".join(others))
    return AudioDeviceError("no audio input device found (PortAudio sees no audio devices at all; "
                            "connect a microphone or check the sound system)")


def find_input_device(spec=None, sd=None) -> dict:
    """The input device to use: ``spec`` is None (the default input), an index, or part of a device name.

    Raises :class:`AudioDeviceError` (one line listing the input devices) when nothing matches.
    """
    sd = sd or import_sounddevice()
    devs = input_devices(sd)
    if not devs:
        raise _no_input(sd)
    listing = "; input devices: " + ", ".join(f"{d['index']} {d['name']!r}" for d in devs)
    if spec is None or str(spec).strip() == "":
        for d in devs:
            if d["default"]:
                return d
        return devs[0]
    s = str(spec).strip()
    if s.lstrip("-").isdigit():
        for d in devs:
            if d["index"] == int(s):
                return d
        raise AudioDeviceError(f"no input device with index {s}" + listing)
    exact = [d for d in devs if d["name"].lower() == s.lower()]
    if len(exact) == 1:
        return exact[0]
    found = [d for d in devs if s.lower() in d["name"].lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise AudioDeviceError(f"no input device matches {s!r}" + listing)
    raise AudioDeviceError(f"{s!r} matches several input devices ({', '.join(repr(d['name']) for d in found)}); "
                           "give its index")


def capture(device: dict, samplerate: float, duration: float | None = None, stop: threading.Event | None = None,
            block_seconds: float = BLOCK_SECONDS, sd=None):
    """Yield int16 mono blocks captured from ``device`` at ``samplerate`` until ``stop`` is set, ``duration``
    seconds have been captured (exactly that many samples), or the input stream ends."""
    sd = sd or import_sounddevice()
    stop = stop or threading.Event()
    q: queue.Queue = queue.Queue()
    limit = None if duration is None else int(round(duration * samplerate))
    state = {"n": 0}
    done = object()

    def callback(indata, frames, time_info, status):
        block = indata[:, 0].copy() if indata.shape[1] == 1 else indata.mean(axis=1).astype(indata.dtype)
        if limit is not None and state["n"] + block.shape[0] >= limit:
            block = block[:limit - state["n"]]
            state["n"] = limit
            q.put(block)
            raise sd.CallbackStop
        state["n"] += block.shape[0]
        q.put(block)

    def finished():
        q.put(done)

    blocksize = max(1, int(round(block_seconds * samplerate)))
    stream = None
    last_exc = None
    for channels in sorted({1, min(2, int(device["channels"]))}):
        try:
            stream = sd.InputStream(device=device["index"], samplerate=samplerate, channels=channels, dtype="int16",
                                    blocksize=blocksize, callback=callback, finished_callback=finished)
            break
        except Exception as exc:  # PortAudioError, ValueError
            last_exc = exc
    if stream is None:
        raise AudioDeviceError(f"cannot open input device {device['index']} {device['name']!r} at {samplerate:g} Hz "
                               f"({' '.join(str(last_exc).split())})")
    try:
        stream.start()
    except Exception as exc:
        stream.close()
        raise AudioDeviceError(f"cannot start capturing from input device {device['index']} {device['name']!r} "
                               f"({' '.join(str(exc).split())})") from None
    try:
        while not stop.is_set():
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                if not stream.active and q.empty():
                    break
                continue
            if item is done:
                break
            if item.shape[0]:
                yield item
    finally:
        try:
            stream.stop()
        finally:
            stream.close()
    # what was captured before a stop (Ctrl-C) is still recognized
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is not done and item.shape[0]:
            yield item


class Renderer:
    """Shows events: partial text redrawn in place on a terminal, final lines printed (or appended to a file).

    Parameters
    ----------
    out : file object
        Where text goes (standard output).
    fmt : {"txt", "json"}
        A final line is the text, or the JSON of :meth:`speechlstm.stream.Final.to_dict`.
    output : str, optional
        Append final lines to this file (flushed after each line) instead of printing them; on a terminal
        the partials and finals are still shown.
    tty : bool, optional
        Whether ``out`` is a terminal (default: ``out.isatty()``); partials are shown only on a terminal.
    """

    def __init__(self, out=None, fmt: str = "txt", output: str | None = None, tty: bool | None = None):
        self.out = out if out is not None else sys.stdout
        self.fmt = fmt
        self.tty = bool(self.out.isatty()) if tty is None else tty
        self._file = open(output, "a", encoding="utf-8") if output else None
        self._shown = False

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def partial(self, text: str) -> None:
        if not self.tty:
            return
        w = self._width()
        shown = text if len(text) <= w else "\u2026" + text[-(w - 1):]
        self.out.write("\r\x1b[K" + shown)
        self.out.flush()
        self._shown = True

    def final(self, final) -> None:
        line = json.dumps(final.to_dict(), ensure_ascii=False) if self.fmt == "json" else final.text
        if self.tty and self._shown:
            self.out.write("\r\x1b[K")
            self._shown = False
        if not final.text:
            self.out.flush()
            return  # nothing recognized in that utterance
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
            if self.tty:
                self.out.write(final.text + "\n")
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def __call__(self, event) -> None:
        from .stream import Final

        if isinstance(event, Final):
            self.final(event)
        else:
            self.partial(event.text)

    def close(self) -> None:
        if self.tty and self._shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._shown = False
        if self._file is not None:
            self._file.close()
            self._file = None


def listen(recognizer, device=None, samplerate: float | None = None, duration: float | None = None,
           on_event=None, stop: threading.Event | None = None, source=None, **stream_options) -> list:
    """Recognize live audio until ``stop`` is set, ``duration`` seconds have passed, or the input ends.

    Parameters
    ----------
    recognizer : speechlstm.Recognizer
    device : int or str, optional
        Input device (index or part of its name); default: the system's default input.
    samplerate : float, optional
        Capture rate; default: the device's native rate (the stream resamples to the model's rate).
    duration : float, optional
        Seconds of audio to capture.
    on_event : callable, optional
        Called with every :class:`~speechlstm.stream.Partial` and :class:`~speechlstm.stream.Final`.
    stop : threading.Event, optional
        Set it (e.g. from a signal handler) to finish the current utterance and return.
    source : iterable of arrays, optional
        Use these sample blocks (at ``samplerate``, default the model's) instead of a sound device.
    **stream_options
        Options of :class:`speechlstm.stream.StreamingRecognizer`.

    Returns
    -------
    list of speechlstm.stream.Final
    """
    from .stream import Final

    stop = stop or threading.Event()
    if source is None:
        sd = import_sounddevice()
        dev = find_input_device(device, sd)
        rate = float(samplerate) if samplerate else float(dev["samplerate"] or recognizer.sample_rate)
        blocks = capture(dev, rate, duration=duration, stop=stop, sd=sd)
    else:
        rate = float(samplerate) if samplerate else float(recognizer.sample_rate)
        blocks = _limited(source, rate, duration, stop)
    s = recognizer.stream(sample_rate=int(rate) if float(rate).is_integer() else rate, **stream_options)
    finals = []

    def emit(events):
        for e in events:
            if isinstance(e, Final):
                finals.append(e)
            if on_event is not None:
                on_event(e)

    try:
        for block in blocks:
            emit(s.accept(block))
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    emit(s.finish())
    return finals


def _limited(source, rate: float, duration: float | None, stop: threading.Event):
    """Blocks of ``source`` up to ``duration`` seconds, until ``stop`` is set."""
    import numpy as np

    limit = None if duration is None else int(round(duration * rate))
    n = 0
    for block in source:
        if stop.is_set():
            return
        block = np.asarray(block)
        if limit is not None:
            block = block[:limit - n]
        n += block.shape[0]
        if block.shape[0]:
            yield block
        if limit is not None and n >= limit:
            return


def run(args, out=None, err=None) -> int:
    """``speechlstm listen`` with parsed arguments (see :func:`speechlstm.cli.build_parser`); the exit status."""
    from .errors import SpeechlstmError as _Err
    from .transcribe import DEFAULT_BEAM, Recognizer

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr

    def fail(msg) -> int:
        print(f"speechlstm: error: {' '.join(str(msg).split())}", file=err, flush=True)
        return 2

    try:
        sd = import_sounddevice()
        if args.list_devices:
            devs = input_devices(sd)
            if not devs:
                raise _no_input(sd)
            print(format_devices(devs), file=out, flush=True)
            return 0
        dev = find_input_device(args.device, sd)
    except AudioDeviceError as exc:
        return fail(exc)
    if args.output:
        try:
            open(args.output, "a", encoding="utf-8").close()
        except OSError as exc:
            return fail(f"{args.output}: cannot append to it ({exc.strerror or exc})")
    try:
        rec = Recognizer(args.model, beam_width=args.beam or DEFAULT_BEAM)
    except (_Err, ValueError) as exc:
        return fail(exc)
    options = {}
    if getattr(args, "trailing_silence", None) is not None:
        options["trailing_silence"] = args.trailing_silence
    if getattr(args, "max_utterance", None) is not None:
        options["max_utterance"] = args.max_utterance
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    renderer = Renderer(out, fmt=args.format, output=args.output)
    try:
        listen(rec, device=dev["index"], samplerate=args.samplerate, duration=args.duration, on_event=renderer,
               stop=stop, **options)
    except _Err as exc:
        renderer.close()
        return fail(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    renderer.close()
    return 0
