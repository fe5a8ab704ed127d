"""Audio input: decode files, streams and arrays to float32 mono at the model's rate.

Everything that reads audio goes through this module:

* :func:`load_audio` decodes a whole file, ``"-"`` (standard input), ``bytes`` or a
  binary file object.
* :func:`prepare_array` validates and converts a NumPy array given by an API user.
* :func:`iter_audio_blocks` reads long inputs block by block with bounded memory, and
  :func:`iter_segments` / :func:`segment_array` cut audio into recognisable pieces at
  low-energy points (pauses) rather than at fixed offsets.

Decoding uses libsndfile (through ``soundfile``: WAV in every PCM/float flavour,
FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...).  Inputs libsndfile cannot open are retried
with ``audioread`` (imported lazily, only then), which can decode more formats when
it has a backend such as ffmpeg.  Any channel count is mixed to mono (mean of the
channels) and any sample rate is converted with soxr's band-limited "HQ" resampler.

Every problem with the input is reported as :class:`~speechlstm.errors.AudioError`
with a one-line message ``"<name>: <reason>"``.
"""

from __future__ import annotations

import io
import math
import os
import stat
import sys
import tempfile
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

__all__ = [
    "load_audio",
    "prepare_array",
    "resample",
    "audio_duration",
    "iter_audio_blocks",
    "iter_segments",
    "segment_array",
]

#: Sample rate of the acoustic models (Hz).
DEFAULT_SAMPLE_RATE = 16000

#: soxr quality preset used everywhere (band-limited, ~-100 dB stop band).
RESAMPLE_QUALITY = "HQ"

_STDIN_NAME = "<stdin>"
_BYTES_NAME = "<bytes>"
_STREAM_NAME = "<stream>"

# Inputs bigger than this that are not seekable files are spooled to disk.
_SPOOL_MAX_BYTES = 32 * 1024 * 1024
_COPY_CHUNK = 1 << 20
# Frames read per libsndfile call by load_audio().
_LOAD_BLOCK_FRAMES = 1 << 18
# Arrays with more "channels" than this are almost surely a transposed mistake.
_MAX_CHANNELS = 256


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Collapse whitespace (newlines included) and strip a trailing period."""
    text = " ".join(str(text).split())
    return text.rstrip(".").strip()


def _fail(name: str, reason: str) -> AudioError:
    return AudioError(f"{_one_line(name)}: {_one_line(reason)}")


def _check_rate(rate, what: str) -> float:
    """Validate a sample rate given by the caller (programming errors -> ValueError)."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive number, got {rate!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {rate!r}")
    return value


def _rate_arg(rate: float):
    """soxr wants numbers; keep integral rates as ints for exact ratios."""
    return int(rate) if float(rate).is_integer() else float(rate)


def _all_finite(x: np.ndarray) -> bool:
    """True when every sample is finite (fast path: one float64 sum)."""
    if x.dtype.kind not in "fc" or x.size == 0:
        return True
    total = np.sum(x, dtype=np.float64)
    if np.isfinite(total):
        return True  # a NaN/Inf anywhere would make the float64 sum non-finite
    return bool(np.isfinite(x).all())  # the sum may only have overflowed


def _mix_to_mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> contiguous (frames,) float32 by averaging channels."""
    if block.ndim == 1:
        return np.ascontiguousarray(block, dtype=np.float32)
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return np.ascontiguousarray(block.mean(axis=1, dtype=np.float32))


# Magic numbers: recognisable audio containers (a decode failure means "corrupt")...
_AUDIO_MAGIC = (
    b"RIFF", b"RIFX", b"RF64", b"BW64", b"FORM", b"fLaC", b"OggS", b"ID3",
    b".snd", b"caff", b"riff", b"NIST_1A", b"Creative Voice", b"wvpk",
)
# ... and audio containers libsndfile cannot read (needs an audioread backend).
_UNSUPPORTED_MAGIC = {
    b"\x1aE\xdf\xa3": "Matroska/WebM",
    b"0&\xb2u": "ASF/WMA",
    b"MAC ": "Monkey's Audio",
    b"#!AMR": "AMR",
}


def _sniff(head: bytes) -> tuple[str, str | None]:
    """Classify the first bytes of a file: ('audio'|'unsupported'|'unknown', label)."""
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "unsupported", "MP4/M4A"
    for magic, label in _UNSUPPORTED_MAGIC.items():
        if head.startswith(magic):
            return "unsupported", label
    if any(head.startswith(m) for m in _AUDIO_MAGIC):
        return "audio", None
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        layer = (head[1] >> 1) & 0x3
        if layer == 0:
            return "unsupported", "AAC (ADTS)"
        return "audio", None  # MPEG audio frame sync
    return "unknown", None


class _Input:
    """A resolved input: a regular file path, or in-memory / spooled binary data."""

    def __init__(self, name: str, path: str | None = None, fileobj=None, size: int = 0,
                 head: bytes = b"", owned: bool = True):
        self.name = name
        self.owned = owned
        self.path = path
        self.fileobj = fileobj
        self.size = size
        self.head = head

    def sf_target(self):
        if self.path is not None:
            return self.path
        self.fileobj.seek(0)
        return self.fileobj

    def close(self):
        if self.fileobj is not None and self.owned:
            try:
                self.fileobj.close()
            except Exception:  # pragma: no cover - closing must never mask the real error
                pass
            self.fileobj = None


def _spool(read, name: str) -> _Input:
    """Copy a stream (``read(n) -> bytes``) into memory, or to disk when large."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_BYTES)
    size = 0
    try:
        while True:
            chunk = read(_COPY_CHUNK)
            if not chunk:
                break
            if isinstance(chunk, str):
                spool.close()
                raise TypeError("audio streams must be binary (open files with 'rb')")
            spool.write(chunk)
            size += len(chunk)
    except OSError as exc:
        spool.close()
        raise _fail(name, f"cannot read ({exc.strerror or exc})") from None
    spool.seek(0)
    head = spool.read(16)
    spool.seek(0)
    return _Input(name, fileobj=spool, size=size, head=head)


def _resolve(source) -> _Input:
    """Turn any supported *source* into an :class:`_Input`, raising AudioError early."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise _fail(_BYTES_NAME, "empty input (0 bytes)")
        return _Input(_BYTES_NAME, fileobj=io.BytesIO(data), size=len(data), head=data[:16])

    if isinstance(source, str) and source == "-":
        stdin = sys.stdin
        buffer = getattr(stdin, "buffer", stdin) if stdin is not None else None
        if buffer is None or not hasattr(buffer, "read"):
            raise _fail(_STDIN_NAME, "standard input is not available")
        isatty = getattr(buffer, "isatty", None)
        try:
            if callable(isatty) and isatty():
                raise _fail(_STDIN_NAME, "standard input is a terminal, not audio data")
        except (OSError, ValueError):
            pass
        inp = _spool(buffer.read, _STDIN_NAME)
        if inp.size == 0:
            inp.close()
            raise _fail(_STDIN_NAME, "empty input (0 bytes)")
        return inp

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        name = path
        if path == "":
            raise _fail("<empty path>", "no such file")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise _fail(name, "no such file") from None
        except NotADirectoryError:
            raise _fail(name, "no such file") from None
        except PermissionError:
            raise _fail(name, "permission denied") from None
        except OSError as exc:
            raise _fail(name, f"cannot read ({exc.strerror or exc})") from None
        if stat.S_ISDIR(st.st_mode):
            raise _fail(name, "is a directory")
        try:
            fh = open(path, "rb")
        except PermissionError:
            raise _fail(name, "permission denied") from None
        except OSError as exc:
            raise _fail(name, f"cannot read ({exc.strerror or exc})") from None
        with fh:
            if not stat.S_ISREG(st.st_mode):
                # A pipe, FIFO or device (e.g. /dev/stdin, <(cmd)): read it as a stream.
                inp = _spool(fh.read, name)
                if inp.size == 0:
                    inp.close()
                    raise _fail(name, "empty file (0 bytes)")
                return inp
            try:
                head = fh.read(16)
            except OSError as exc:
                raise _fail(name, f"cannot read ({exc.strerror or exc})") from None
        if st.st_size == 0:
            raise _fail(name, "empty file (0 bytes)")
        return _Input(name, path=path, size=st.st_size, head=head)

    if hasattr(source, "read"):
        raw_name = getattr(source, "name", None)
        name = raw_name if isinstance(raw_name, str) and raw_name else _STREAM_NAME
        seekable = False
        try:
            seekable = bool(source.seekable())
        except Exception:
            seekable = False
        if seekable:
            try:
                start = source.tell()
                head = source.read(16)
                source.seek(0, os.SEEK_END)
                size = source.tell() - start
                source.seek(start)
            except (OSError, ValueError) as exc:
                raise _fail(name, f"cannot read ({exc})") from None
            if isinstance(head, str):
                raise TypeError("file objects must be opened in binary mode ('rb')")
            if start != 0:
                inp = _spool(source.read, name)
            else:
                inp = _Input(name, fileobj=source, size=size, head=head, owned=False)
        else:
            inp = _spool(source.read, name)
        if inp.size == 0:
            inp.close()
            raise _fail(name, "empty input (0 bytes)")
        return inp

    if isinstance(source, np.ndarray):
        raise TypeError("load_audio() takes a path, '-', bytes or a binary file; "
                        "use prepare_array(samples, rate) for sample arrays")
    raise TypeError(f"unsupported audio source type: {type(source).__name__}")


def _sf_reason(exc: BaseException) -> str:
    reason = getattr(exc, "error_string", None) or str(exc)
    reason = _one_line(reason)
    # soundfile prefixes "Error opening <name>: "; keep only libsndfile's words.
    if reason.startswith("Error opening") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    if reason.startswith("Error : "):
        reason = reason[len("Error : "):]
    return _one_line(reason) or "unknown decoder error"


def _open_failure(inp: _Input, exc: BaseException) -> AudioError:
    """Map a libsndfile open failure (after the fallback also failed) to one line."""
    reason = _sf_reason(exc)
    kind, label = _sniff(inp.head)
    not_recognised = any(s in reason for s in (
        "Format not recognised", "unimplemented format", "does not exist",
        "not a regular file"))
    if kind == "unsupported":
        return _fail(inp.name, f"unsupported audio format ({label}; needs ffmpeg for audioread)")
    if kind == "unknown" and not_recognised:
        return _fail(inp.name, "not a recognised audio format")
    if "does not exist" in reason or "not a regular file" in reason:
        reason = "no decodable audio data"
    return _fail(inp.name, f"corrupt or truncated audio ({reason})")


# --------------------------------------------------------------------------------------
# Decoders: each returns (orig_rate, generator of mono float32 blocks at orig_rate)
# --------------------------------------------------------------------------------------


def _fallback_decode(inp: _Input):
    """Decode with audioread (lazy import). Returns (rate, (frames, channels) float32) or None."""
    try:
        import warnings

        import audioread  # noqa: WPS433 - lazy on purpose (start-up time)
    except Exception:
        return None
    tmp_path = None
    try:
        if inp.path is not None:
            path = inp.path
        else:
            suffix = os.path.splitext(inp.name)[1] if inp.name[:1] != "<" else ""
            with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
                tmp_path = tmp.name
                inp.fileobj.seek(0)
                while True:
                    chunk = inp.fileobj.read(_COPY_CHUNK)
                    if not chunk:
                        break
                    tmp.write(chunk)
            path = tmp_path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with audioread.audio_open(path) as dec:
                rate = float(dec.samplerate)
                channels = int(dec.channels)
                parts = [np.frombuffer(buf, dtype="<i2") for buf in dec]
        if rate <= 0 or channels <= 0:
            return None
        data = np.concatenate(parts) if parts else np.zeros(0, dtype="<i2")
        data = data[: (data.size // channels) * channels].reshape(-1, channels)
        return rate, data.astype(np.float32) / np.float32(32768.0)
    except Exception:
        return None
    finally:
        if tmp_path is not None:
            try:
                os.unlink(tmp_path)
            except OSError:  # pragma: no cover
                pass


def _decoder(inp: _Input, block_frames_for):
    """Open *inp* and return ``(orig_rate, mono_block_generator)``.

    *block_frames_for(rate)* gives the number of frames to read per block.  Open
    failures raise :class:`AudioError` right away (not on first iteration).
    """
    try:
        snd = sf.SoundFile(inp.sf_target())
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        decoded = _fallback_decode(inp)
        if decoded is None:
            inp.close()
            raise _open_failure(inp, exc) from None
        rate, data = decoded
        inp.close()
        return rate, _array_blocks(inp.name, data, max(1, int(block_frames_for(rate))))

    rate = float(snd.samplerate)
    if rate <= 0 or snd.channels <= 0:  # pragma: no cover - libsndfile refuses these
        snd.close()
        inp.close()
        raise _fail(inp.name, "corrupt or truncated audio (invalid header)")
    return rate, _soundfile_blocks(inp, snd, max(1, int(block_frames_for(rate))))


def _soundfile_blocks(inp: _Input, snd: sf.SoundFile, frames: int) -> Iterator[np.ndarray]:
    try:
        while True:
            try:
                block = snd.read(frames, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
                raise _fail(inp.name, f"corrupt or truncated audio ({_sf_reason(exc)})") from None
            if block.shape[0] == 0:
                break
            if not _all_finite(block):
                raise _fail(inp.name, "contains NaN or infinite samples")
            yield _mix_to_mono(block)
            if block.shape[0] < frames:
                break
    finally:
        snd.close()
        inp.close()


def _array_blocks(name: str, data: np.ndarray, frames: int) -> Iterator[np.ndarray]:
    for start in range(0, data.shape[0], frames):
        block = data[start:start + frames]
        if not _all_finite(block):
            raise _fail(name, "contains NaN or infinite samples")
        yield _mix_to_mono(block)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def resample(samples, orig_sample_rate, sample_rate) -> np.ndarray:
    """Resample a mono signal with soxr's band-limited "HQ" converter.

    Parameters
    ----------
    samples : array_like
        1-D signal (or ``(n, channels)``, resampled per channel).
    orig_sample_rate : float
        Rate of *samples* in Hz.
    sample_rate : float
        Wanted rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, C-contiguous; ``round(n * sample_rate / orig_sample_rate)`` samples.
        Content above the new Nyquist frequency is filtered out (no aliasing).

    Examples
    --------
    >>> import numpy as np
    >>> from speechlstm.audio import resample
    >>> y = resample(np.zeros(44100, dtype=np.float32), 44100, 16000)
    >>> y.shape, y.dtype
    ((16000,), dtype('float32'))
    """
    orig = _check_rate(orig_sample_rate, "orig_sample_rate")
    target = _check_rate(sample_rate, "sample_rate")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if orig == target or x.shape[0] == 0:
        return x
    y = soxr.resample(x, _rate_arg(orig), _rate_arg(target), quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(y, dtype=np.float32)


def prepare_array(samples, orig_sample_rate, sample_rate=DEFAULT_SAMPLE_RATE,
                  name="<array>") -> np.ndarray:
    """Validate an in-memory signal and convert it to float32 mono at *sample_rate*.

    Parameters
    ----------
    samples : array_like
        The signal.  Shapes: ``(n,)`` mono, ``(n, channels)``, or ``(channels, n)``
        -- an array is taken as ``(channels, n)`` only when its first dimension is
        at most 8 and smaller than the second (e.g. ``(2, 48000)`` stereo).
        dtypes: ``uint8`` (8-bit PCM, centred on 128), ``int8``, ``int16``, ``int32``
        (scaled to [-1, 1)), ``float16``/``float32``/``float64`` (used as they are).
    orig_sample_rate : float
        Sample rate of *samples* in Hz.
    sample_rate : float, optional
        Wanted rate (default 16000 Hz); soxr "HQ" resampling when it differs.
    name : str, optional
        How the input is named in error messages.

    Returns
    -------
    numpy.ndarray
        float32, 1-D, C-contiguous.

    Raises
    ------
    AudioError
        Empty input, NaN/Inf samples, invalid rate, unsupported dtype or shape.

    Examples
    --------
    >>> import numpy as np
    >>> from speechlstm.audio import prepare_array
    >>> stereo = np.zeros((8000, 2), dtype=np.int16)
    >>> x = prepare_array(stereo, 8000)
    >>> x.shape, x.dtype
    ((16000,), dtype('float32'))
    """
    target = _check_rate(sample_rate, "sample_rate")
    try:
        orig = float(orig_sample_rate)
    except (TypeError, ValueError):
        raise _fail(name, f"invalid sample rate ({orig_sample_rate!r})") from None
    if not math.isfinite(orig) or orig <= 0:
        raise _fail(name, f"invalid sample rate ({orig_sample_rate!r})")

    try:
        a = np.asarray(samples)
    except Exception as exc:  # ragged lists etc.
        raise _fail(name, f"not a numeric array ({exc})") from None
    kind = a.dtype.kind
    if a.dtype == np.uint8:
        x = (a.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    elif kind == "i" and a.dtype.itemsize in (1, 2, 4, 8):
        scale = float(2 ** (8 * a.dtype.itemsize - 1))
        x = (a.astype(np.float64) / scale).astype(np.float32) if a.dtype.itemsize > 2 \
            else a.astype(np.float32) / np.float32(scale)
    elif kind == "f":
        if not _all_finite(a):
            raise _fail(name, "contains NaN or infinite samples")
        x = a.astype(np.float32, copy=False)
    else:
        raise _fail(name, f"unsupported sample type {a.dtype} (use int16, int32, uint8, "
                          "float32 or float64)")

    if x.ndim == 2:
        if 1 <= x.shape[0] <= 8 and x.shape[1] > x.shape[0]:
            x = x.T  # (channels, n) -> (n, channels)
        if x.shape[1] > _MAX_CHANNELS:
            raise _fail(name, f"too many channels ({x.shape[1]}); pass (samples, channels)")
        if x.shape[1] == 0:
            raise _fail(name, "empty audio (0 channels)")
    elif x.ndim != 1:
        raise _fail(name, f"expected a 1-D or 2-D array, got shape {a.shape}")
    if x.shape[0] == 0:
        raise _fail(name, "empty audio (0 samples)")
    mono = _mix_to_mono(x)
    if not _all_finite(mono):  # only reachable through float32 overflow of huge values
        raise _fail(name, "contains NaN or infinite samples")
    out = resample(mono, orig, target)
    if out.shape[0] == 0:
        raise _fail(name, "empty audio (0 samples)")
    return out


def load_audio(source, sample_rate=DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Decode a whole audio input to float32 mono at *sample_rate*.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        A file path (any format libsndfile reads: WAV 8/16/24/32-bit int and
        32/64-bit float, FLAC, OGG, MP3, AIFF, ...; others through audioread when
        it has a backend), ``"-"`` for all of standard input, encoded file bytes,
        or an open binary file.
    sample_rate : float, optional
        Output rate in Hz (default 16000).

    Returns
    -------
    numpy.ndarray
        float32, 1-D, C-contiguous; channels are averaged.

    Raises
    ------
    AudioError
        ``"<name>: <reason>"`` for a missing file, a directory, empty audio,
        a corrupt or truncated header, a non-audio file or NaN/Inf samples.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, soundfile as sf
    >>> from speechlstm.audio import load_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> t = np.arange(44100) / 44100
    >>> sf.write(path, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1), 44100)
    >>> x = load_audio(path)
    >>> x.shape, x.dtype
    ((16000,), dtype('float32'))
    """
    target = _check_rate(sample_rate, "sample_rate")
    inp = _resolve(source)
    orig, blocks = _decoder(inp, lambda rate: _LOAD_BLOCK_FRAMES)
    # Mixing and resampling block by block (soxr's stream gives the same samples as
    # a one-shot resample) keeps the peak near twice the *output* size.
    parts = list(_resampled_blocks(inp.name, orig, target, blocks))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def audio_duration(source) -> float | None:
    """Duration in seconds from the file header, or None when it is not cheaply known.

    Only paths are inspected (standard input, bytes and streams give None so that
    nothing is consumed); errors give None too -- :func:`load_audio` reports them.

    Parameters
    ----------
    source : str or os.PathLike
        The audio file.

    Returns
    -------
    float or None

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, soundfile as sf
    >>> from speechlstm.audio import audio_duration
    >>> path = os.path.join(tempfile.mkdtemp(), "half.flac")
    >>> sf.write(path, np.zeros(8000, dtype=np.float32), 16000)
    >>> audio_duration(path)
    0.5
    >>> audio_duration("-") is None
    True
    """
    if not isinstance(source, (str, os.PathLike)) or (isinstance(source, str) and source == "-"):
        return None
    try:
        path = os.fspath(source)
        if not os.path.isfile(path):
            return None
        info = sf.info(path)
        if info.samplerate <= 0 or info.frames <= 0:
            return None
        return float(info.frames) / float(info.samplerate)
    except Exception:
        return None


def iter_audio_blocks(source, sample_rate=DEFAULT_SAMPLE_RATE,
                      block_seconds=30.0) -> Iterator[np.ndarray]:
    """Decode an input block by block, with memory that does not grow with its length.

    Files libsndfile can open (and ``"-"``/pipes, which are first spooled to a
    temporary file when large) are read *block_seconds* at a time, mixed to mono and
    resampled by a continuous ``soxr.ResampleStream``, so the concatenated blocks
    equal :func:`load_audio` (up to float rounding).  Formats decoded by the
    audioread fallback are decoded whole, then sliced.

    The input is opened immediately: a missing, non-audio or corrupt input raises
    :class:`AudioError` from this call, not from the first iteration.  NaN/Inf
    samples (per block) and an input with no samples raise during iteration.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        As for :func:`load_audio`.
    sample_rate : float, optional
        Output rate in Hz (default 16000).
    block_seconds : float, optional
        Input duration read per block (default 30 s).

    Yields
    ------
    numpy.ndarray
        Non-empty float32 mono blocks at *sample_rate* (lengths vary slightly).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, soundfile as sf
    >>> from speechlstm.audio import iter_audio_blocks
    >>> path = os.path.join(tempfile.mkdtemp(), "noise.wav")
    >>> sf.write(path, np.random.default_rng(0).normal(0, .1, (48000 * 5, 2)), 48000)
    >>> blocks = list(iter_audio_blocks(path, block_seconds=2.0))
    >>> sum(len(b) for b in blocks)
    80000
    """
    target = _check_rate(sample_rate, "sample_rate")
    seconds = float(block_seconds)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    inp = _resolve(source)
    orig, blocks = _decoder(inp, lambda rate: max(1, int(round(seconds * rate))))
    return _resampled_blocks(inp.name, orig, target, blocks)


def _resampled_blocks(name: str, orig: float, target: float,
                      blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    stream = None
    if orig != target:
        stream = soxr.ResampleStream(_rate_arg(orig), _rate_arg(target), 1,
                                     dtype="float32", quality=RESAMPLE_QUALITY)
    total = 0
    try:
        for block in blocks:
            out = block if stream is None else stream.resample_chunk(block)
            if out.shape[0]:
                total += out.shape[0]
                yield np.ascontiguousarray(out, dtype=np.float32)
        if stream is not None:
            out = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if out.shape[0]:
                total += out.shape[0]
                yield np.ascontiguousarray(out, dtype=np.float32)
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    if total == 0:
        raise _fail(name, "empty audio (0 samples)")


def _find_cut(x: np.ndarray, lo: int, hi: int, sample_rate: float) -> int:
    """Quietest cut position c in [lo, hi] of *x* (needs len(x) >= hi).

    Candidates every 10 ms are scored by the mean power of a 150 ms window centred on
    them (finds pauses rather than single quiet samples), ties go to the middle of the
    quiet stretch, and the position is refined to the quietest 25 ms window nearby.
    """
    if hi <= lo:
        return lo
    hop = max(1, int(round(0.010 * sample_rate)))
    short = max(1, int(round(0.025 * sample_rate)))
    long = max(short, int(round(0.150 * sample_rate)))
    a = max(0, lo - long)
    b = min(x.shape[0], hi + long)
    seg = x[a:b].astype(np.float64)
    cs = np.zeros(seg.shape[0] + 1)
    np.cumsum(seg * seg, out=cs[1:])
    del seg

    cands = np.arange(lo, hi + 1, hop, dtype=np.int64)
    if cands[-1] != hi:
        cands = np.append(cands, hi)

    def power(width: int) -> np.ndarray:
        s = np.clip(cands - width // 2, a, b) - a
        e = np.clip(cands - width // 2 + width, a, b) - a
        return (cs[e] - cs[s]) / np.maximum(e - s, 1)

    p_long = power(long)
    p_short = power(short)

    best = int(np.argmin(p_long))
    tol = p_long[best] * 1.001 + 1e-20
    left = best
    while left > 0 and p_long[left - 1] <= tol:
        left -= 1
    right = best
    while right + 1 < cands.shape[0] and p_long[right + 1] <= tol:
        right += 1
    centre = (left + right) // 2

    radius = max(1, (long // 2) // hop)
    i0 = max(0, centre - radius)
    i1 = min(cands.shape[0], centre + radius + 1)
    local = p_short[i0:i1]
    floor = local.min() * 1.001 + 1e-20
    quiet = np.flatnonzero(local <= floor) + i0
    pick = int(quiet[np.argmin(np.abs(quiet - centre))])
    return int(cands[pick])


def iter_segments(blocks: Iterable[np.ndarray], sample_rate=DEFAULT_SAMPLE_RATE,
                  max_seconds=30.0, min_seconds=10.0) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a stream of mono blocks into segments at low-energy points.

    Segments are consecutive and non-overlapping and cover every sample exactly
    once (their concatenation equals the input).  Each is at most *max_seconds*
    long.  Cuts are placed at the quietest point (a pause, found with 150 ms and
    25 ms energy windows) between *min_seconds* and *max_seconds* of the pending
    audio; near the end the range is narrowed so that the last segment is not
    shorter than *min_seconds* when that can be avoided.  At most about
    ``max_seconds + min_seconds`` plus one block is buffered.

    Parameters
    ----------
    blocks : iterable of numpy.ndarray
        1-D blocks (e.g. from :func:`iter_audio_blocks`), any lengths.
    sample_rate : float, optional
        Rate of the blocks in Hz (default 16000).
    max_seconds : float, optional
        Longest segment (default 30 s).
    min_seconds : float, optional
        Shortest cut position searched (default 10 s); ``0 <= min <= max``.

    Yields
    ------
    (int, numpy.ndarray)
        Start sample of the segment and its float32 samples.

    Examples
    --------
    >>> import numpy as np
    >>> from speechlstm.audio import iter_segments
    >>> x = np.random.default_rng(0).normal(0, 0.1, 16000 * 45).astype(np.float32)
    >>> x[192000:196800] = 0                          # a 300 ms pause at 12.0 s
    >>> blocks = [x[i:i + 16000] for i in range(0, len(x), 16000)]
    >>> [start for start, seg in iter_segments(blocks)]      # first cut mid-pause
    [0, 194400, 544480]
    """
    rate = _check_rate(sample_rate, "sample_rate")
    max_n = int(round(float(max_seconds) * rate))
    min_n = int(round(float(min_seconds) * rate))
    if max_n < 1:
        raise ValueError(f"max_seconds is too small: {max_seconds!r}")
    if min_n < 0 or min_n > max_n:
        raise ValueError(f"need 0 <= min_seconds <= max_seconds, got {min_seconds!r}, "
                         f"{max_seconds!r}")
    min_cut = max(1, min_n)
    need = max_n + min_n

    pending = np.zeros(0, dtype=np.float32)
    start = 0
    for block in blocks:
        b = np.asarray(block, dtype=np.float32)
        if b.ndim != 1:
            raise ValueError(f"blocks must be 1-D, got shape {b.shape}")
        if b.shape[0] == 0:
            continue
        pending = b if pending.shape[0] == 0 else np.concatenate((pending, b))
        while pending.shape[0] >= need and pending.shape[0] > max_n:
            cut = _find_cut(pending, min_cut, max_n, rate)
            yield start, np.ascontiguousarray(pending[:cut])
            start += cut
            pending = pending[cut:]

    while pending.shape[0] > max_n:
        remaining = pending.shape[0]
        lo = max(min_cut, remaining - max_n)
        hi = min(max_n, remaining - min_n)
        if hi < lo:
            lo, hi = max(1, remaining - max_n), max_n
        cut = _find_cut(pending, lo, hi, rate)
        yield start, np.ascontiguousarray(pending[:cut])
        start += cut
        pending = pending[cut:]
    if pending.shape[0]:
        yield start, np.ascontiguousarray(pending)


def segment_array(samples, sample_rate=DEFAULT_SAMPLE_RATE, max_seconds=30.0,
                  min_seconds=10.0) -> list[tuple[int, np.ndarray]]:
    """Cut an in-memory mono signal like :func:`iter_segments`.

    Parameters
    ----------
    samples : array_like
        1-D signal at *sample_rate*.
    sample_rate : float, optional
        Its rate in Hz (default 16000).
    max_seconds, min_seconds : float, optional
        Longest segment and shortest cut position (defaults 30 s and 10 s).

    Returns
    -------
    list of (int, numpy.ndarray)
        ``(start_sample, segment)``; float32 input gives views, no copies.

    Examples
    --------
    >>> import numpy as np
    >>> from speechlstm.audio import segment_array
    >>> x = np.random.default_rng(0).normal(0, 0.1, 16000 * 45).astype(np.float32)
    >>> x[192000:196800] = 0                          # a 300 ms pause at 12.0 s
    >>> segs = segment_array(x)
    >>> [(s, len(seg)) for s, seg in segs]
    [(0, 194400), (194400, 350080), (544480, 175520)]
    >>> bool(np.array_equal(np.concatenate([seg for _, seg in segs]), x))
    True
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {x.shape}")
    return list(iter_segments([x], sample_rate=sample_rate, max_seconds=max_seconds,
                              min_seconds=min_seconds))
