"""Tests for speechlstm.audio: formats, resampling, mixing, bad input, blocks, segmentation."""

import io
import os
import subprocess
import sys
import types
import wave

import numpy as np
import pytest
import soundfile as sf

from speechlstm import audio
from speechlstm.audio import (
    audio_duration,
    iter_audio_blocks,
    iter_segments,
    load_audio,
    prepare_array,
    resample,
    segment_array,
)
from speechlstm.errors import AudioError, SpeechlstmError

SR = 16000


def sine(freq, seconds, rate, amp=0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def peak_freq(x, rate):
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w))
    return np.fft.rfftfreq(len(x), 1.0 / rate)[int(np.argmax(spec))]


def band_db(x, rate, f0, f1, ref_freq):
    """Energy in [f0, f1] relative to the peak at ref_freq, in dB."""
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    ref = spec[np.abs(freqs - ref_freq) < 20].max()
    band = spec[(freqs >= f0) & (freqs <= f1)].max()
    return 10 * np.log10(band / ref + 1e-30)


def expect_error(source, name, reason_start, **kw):
    with pytest.raises(AudioError) as info:
        load_audio(source, **kw)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg
    assert msg.startswith(f"{name}: {reason_start}"), msg
    assert isinstance(info.value, SpeechlstmError)
    return msg


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("subtype,tol", [
    ("PCM_U8", 1.5 / 128), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6),
    ("FLOAT", 1e-7), ("DOUBLE", 1e-7),
])
def test_wav_subtypes(tmp_path, subtype, tol):
    x = sine(440, 0.5, SR)
    path = tmp_path / f"t_{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    assert sf.info(path).subtype == subtype
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert len(y) == len(x)
    assert np.max(np.abs(y - x)) <= tol


def test_wave_module_8bit_unsigned(tmp_path):
    x = sine(440, 0.25, SR)
    u8 = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8)
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(SR)
        w.writeframes(u8.tobytes())
    y = load_audio(path)
    assert len(y) == len(x)
    assert np.max(np.abs(y - x)) < 1.5 / 128  # unsigned centre 128 -> 0.0, not +1.0
    assert abs(float(np.mean(y))) < 0.01


def test_flac_and_ogg(tmp_path):
    x = sine(440, 1.0, SR)
    sf.write(tmp_path / "a.flac", x, SR)
    y = load_audio(tmp_path / "a.flac")
    assert len(y) == len(x) and np.max(np.abs(y - x)) < 1e-4

    sf.write(tmp_path / "a.ogg", x, SR, format="OGG", subtype="VORBIS")
    y = load_audio(str(tmp_path / "a.ogg"))
    assert abs(len(y) - len(x)) <= 64
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.99


def test_mp3(tmp_path):
    path = tmp_path / "a.mp3"
    x = sine(440, 1.0, 22050)
    try:
        sf.write(path, x, 22050, format="MP3")
    except Exception as exc:  # libsndfile built without LAME/mpg123
        pytest.skip(f"soundfile cannot write MP3: {exc}")
    y = load_audio(path)
    assert abs(len(y) - SR) < 2000  # encoder delay/padding
    assert abs(peak_freq(y, SR) - 440) < 5


def test_other_libsndfile_formats(tmp_path):
    x = sine(440, 0.3, SR)
    for name, fmt in [("a.aiff", "AIFF"), ("a.au", "AU"), ("a.w64", "W64"), ("a.caf", "CAF")]:
        sf.write(tmp_path / name, x, SR, format=fmt, subtype="PCM_16")
        y = load_audio(tmp_path / name)
        assert len(y) == len(x) and np.max(np.abs(y - x)) < 1e-4, name


# --------------------------------------------------------------------- channels / rates


def test_stereo_mixed_to_mean(tmp_path):
    left, right = sine(440, 0.5, SR, 0.6), sine(1000, 0.5, SR, 0.2)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    y = load_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_six_channels_mixed_to_mean(tmp_path):
    base = sine(300, 0.5, SR, 1.0)
    gains = np.array([0.1, 0.2, 0.3, -0.1, 0.05, 0.4])
    data = base[:, None] * gains[None, :]
    sf.write(tmp_path / "six.wav", data, SR, subtype="FLOAT")
    assert sf.info(tmp_path / "six.wav").channels == 6
    y = load_audio(tmp_path / "six.wav")
    np.testing.assert_allclose(y, base * gains.mean(), atol=1e-6)


def test_cancelling_channels_give_silence(tmp_path):
    s = sine(440, 0.2, SR)
    sf.write(tmp_path / "anti.wav", np.stack([s, -s], axis=1), SR, subtype="FLOAT")
    assert np.max(np.abs(load_audio(tmp_path / "anti.wav"))) < 1e-6


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_sine_stays_440(tmp_path, rate):
    x = sine(440, 2.0, rate)
    sf.write(tmp_path / "r.wav", x, rate, subtype="PCM_24")
    y = load_audio(tmp_path / "r.wav")
    assert len(y) == 2 * SR
    assert abs(peak_freq(y, SR) - 440) < 1.0
    # amplitude preserved in the steady-state middle part
    mid = y[SR // 2: -SR // 2]
    assert abs(np.max(np.abs(mid)) - 0.5) < 0.01


@pytest.mark.parametrize("rate,hi_freq", [(44100, 12000), (48000, 10000), (32000, 9000)])
def test_resampling_is_band_limited(tmp_path, rate, hi_freq):
    # A tone above the new Nyquist (8 kHz) must be removed, not folded back.
    alias = 2 * 8000 - hi_freq if hi_freq < 16000 else hi_freq - 16000
    x = sine(440, 2.0, rate, 0.4) + sine(hi_freq, 2.0, rate, 0.4)
    sf.write(tmp_path / "hf.wav", x, rate, subtype="FLOAT")
    y = load_audio(tmp_path / "hf.wav")
    assert abs(peak_freq(y, SR) - 440) < 1.0
    assert band_db(y, SR, alias - 30, alias + 30, 440) < -60


def test_custom_output_rate(tmp_path):
    sf.write(tmp_path / "a.wav", sine(440, 1.0, 44100), 44100)
    y = load_audio(tmp_path / "a.wav", sample_rate=8000)
    assert len(y) == 8000 and abs(peak_freq(y, 8000) - 440) < 2


def test_resample_function():
    y = resample(sine(440, 1.0, 48000), 48000, 16000)
    assert y.dtype == np.float32 and len(y) == 16000
    same = resample(np.ones(10, np.float64), 16000, 16000)
    assert same.dtype == np.float32 and len(same) == 10
    with pytest.raises(ValueError):
        resample(np.ones(10), 0, 16000)


# ------------------------------------------------------------------------------ arrays


def test_prepare_array_dtypes():
    i16 = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_allclose(prepare_array(i16, SR), [-1.0, 0.0, 0.5, 32767 / 32768], atol=1e-7)
    i32 = np.array([-2 ** 31, 0, 2 ** 30], dtype=np.int32)
    np.testing.assert_allclose(prepare_array(i32, SR), [-1.0, 0.0, 0.5], atol=1e-7)
    u8 = np.array([0, 128, 192, 255], dtype=np.uint8)
    np.testing.assert_allclose(prepare_array(u8, SR), [-1.0, 0.0, 0.5, 127 / 128], atol=1e-7)
    f64 = np.array([0.25, -0.5])
    out = prepare_array(f64, SR)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, [0.25, -0.5])
    np.testing.assert_allclose(prepare_array(f64.astype(np.float32), SR), [0.25, -0.5])


def test_prepare_array_layouts():
    a, b = sine(440, 0.5, SR), sine(700, 0.5, SR, 0.3)
    expected = ((a + b) / 2).astype(np.float32)
    np.testing.assert_allclose(prepare_array(np.stack([a, b], axis=1), SR), expected, atol=1e-6)
    np.testing.assert_allclose(prepare_array(np.stack([a, b], axis=0), SR), expected, atol=1e-6)
    six = np.stack([a] * 6, axis=0)  # (6, n) -> channels first
    np.testing.assert_allclose(prepare_array(six, SR), a, atol=1e-6)
    np.testing.assert_allclose(prepare_array(a[:, None], SR), a, atol=1e-6)


def test_prepare_array_resamples():
    y = prepare_array((sine(440, 1.0, 44100) * 32767).astype(np.int16), 44100)
    assert len(y) == SR and abs(peak_freq(y, SR) - 440) < 1.5


@pytest.mark.parametrize("arr,reason", [
    (np.zeros(0, np.float32), "empty audio (0 samples)"),
    (np.zeros((0, 2), np.float32), "empty audio (0 samples)"),
    (np.array([0.0, np.nan, 0.1]), "contains NaN or infinite samples"),
    (np.array([[0.0, np.inf], [0.1, 0.2]], np.float32), "contains NaN or infinite samples"),
    (np.zeros((2, 3, 4), np.float32), "expected a 1-D or 2-D array"),
    (np.zeros(4, np.complex64), "unsupported sample type"),
    (np.array(["a", "b"]), "unsupported sample type"),
])
def test_prepare_array_bad(arr, reason):
    with pytest.raises(AudioError) as info:
        prepare_array(arr, SR, name="mic")
    assert str(info.value).startswith(f"mic: {reason}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("rate", [0, -8000, float("nan"), "fast", None])
def test_prepare_array_bad_rate(rate):
    with pytest.raises(AudioError, match=r"^<array>: invalid sample rate"):
        prepare_array(np.zeros(100, np.float32), rate)


def test_load_audio_rejects_arrays():
    with pytest.raises(TypeError, match="prepare_array"):
        load_audio(np.zeros(10))


# ------------------------------------------------------------------ bytes, stdin, files


def wav_bytes(x, rate, **kw):
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", **kw)
    return buf.getvalue()


def test_bytes_input():
    x = sine(440, 0.5, 48000)
    y = load_audio(wav_bytes(x, 48000, subtype="PCM_16"))
    assert len(y) == 8000 and abs(peak_freq(y, SR) - 440) < 2
    y2 = load_audio(bytearray(wav_bytes(x, 48000, subtype="PCM_16")))
    np.testing.assert_array_equal(y, y2)


def test_flac_bytes_input():
    buf = io.BytesIO()
    sf.write(buf, sine(440, 0.5, SR), SR, format="FLAC")
    assert len(load_audio(buf.getvalue())) == 8000


def test_stdin(monkeypatch):
    x = sine(440, 0.5, SR)
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(wav_bytes(x, SR))))
    y = load_audio("-")
    assert len(y) == len(x) and np.max(np.abs(y - x)) < 1e-4


def test_stdin_spooled_to_disk(monkeypatch):
    monkeypatch.setattr(audio, "_SPOOL_MAX_BYTES", 1000)
    monkeypatch.setattr(audio, "_COPY_CHUNK", 777)
    x = sine(440, 1.0, 44100)
    data = wav_bytes(x, 44100, subtype="FLOAT")
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))
    blocks = list(iter_audio_blocks("-", block_seconds=0.3))
    y = np.concatenate(blocks)
    assert len(y) == SR
    np.testing.assert_allclose(y, load_audio(data), atol=1e-5)


def test_stdin_empty(monkeypatch):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"")))
    expect_error("-", "<stdin>", "empty input (0 bytes)")


def test_stdin_garbage(monkeypatch):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"hello\n" * 50)))
    expect_error("-", "<stdin>", "not a recognised audio format")


def test_file_object_is_left_open(tmp_path):
    sf.write(tmp_path / "a.flac", sine(440, 0.5, SR), SR)
    with open(tmp_path / "a.flac", "rb") as fh:
        y = load_audio(fh)
        assert not fh.closed
    assert len(y) == 8000


def test_non_seekable_stream(tmp_path):
    class Pipe:
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def read(self, n=-1):
            return self._b.read(n)

        def seekable(self):
            return False

    y = load_audio(Pipe(wav_bytes(sine(440, 0.5, SR), SR)))
    assert len(y) == 8000


def test_fifo_path(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    data = wav_bytes(sine(440, 0.5, SR), SR)
    writer = subprocess.Popen([sys.executable, "-c",
                               "import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer.read())",
                               str(fifo)], stdin=subprocess.PIPE)
    writer.stdin.write(data)
    writer.stdin.close()
    try:
        y = load_audio(fifo)
    finally:
        writer.wait(timeout=20)
    assert len(y) == 8000


def test_audioread_fallback(tmp_path, monkeypatch):
    """When libsndfile refuses a file, audioread (imported lazily) decodes it."""
    x = sine(440, 0.5, 22050)
    path = tmp_path / "fallback.wav"
    sf.write(path, x, 22050, subtype="PCM_16")
    data = path.read_bytes()

    def refuse(*args, **kwargs):
        raise sf.LibsndfileError(1, prefix="Error opening 'x': ")

    monkeypatch.setattr(audio.sf, "SoundFile", refuse)
    pytest.importorskip("audioread")
    y = load_audio(path)
    assert len(y) == 8000 and abs(peak_freq(y, SR) - 440) < 2
    y2 = np.concatenate(list(iter_audio_blocks(data, block_seconds=0.1)))
    np.testing.assert_allclose(y2, y, atol=1e-5)


def test_import_is_lazy():
    code = ("import sys, speechlstm.audio; "
            "bad = [m for m in ('librosa', 'audioread') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    expect_error(str(tmp_path / "a.wav"), str(tmp_path / "a.wav"), "no such file")
    expect_error(str(tmp_path / "a.wav" / "b"), str(tmp_path / "a.wav" / "b"), "no such file")


def test_relative_name_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert expect_error("a.wav", "a.wav", "no such file") == "a.wav: no such file"
    os.mkdir("dir")
    assert expect_error("dir", "dir", "is a directory") == "dir: is a directory"


def test_zero_byte_file(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    expect_error(tmp_path / "x.wav", str(tmp_path / "x.wav"), "empty file (0 bytes)")


def test_zero_sample_wav(tmp_path):
    sf.write(tmp_path / "x.wav", np.zeros(0, np.float32), SR)
    expect_error(tmp_path / "x.wav", str(tmp_path / "x.wav"), "empty audio (0 samples)")
    with pytest.raises(AudioError, match="empty audio"):
        list(iter_audio_blocks(tmp_path / "x.wav"))


def test_text_file(tmp_path):
    (tmp_path / "notes.txt").write_text("shopping list\n" * 20)
    msg = expect_error(tmp_path / "notes.txt", str(tmp_path / "notes.txt"),
                       "not a recognised audio format")
    assert msg.endswith("not a recognised audio format")
    # a non-audio file with an audio extension
    (tmp_path / "fake.mp3").write_bytes(np.random.default_rng(1).bytes(5000).replace(b"\xff", b"\x00"))
    expect_error(tmp_path / "fake.mp3", str(tmp_path / "fake.mp3"), "not a recognised audio format")


def test_bytes_garbage_and_empty():
    expect_error(b"definitely not audio" * 10, "<bytes>", "not a recognised audio format")
    expect_error(b"", "<bytes>", "empty input (0 bytes)")


def test_known_but_unsupported_container(tmp_path):
    p = tmp_path / "voice.m4a"
    p.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(200))
    expect_error(p, str(p), "unsupported audio format (MP4/M4A")


def test_truncated_header(tmp_path):
    data = wav_bytes(sine(440, 0.5, SR), SR)
    for cut in (12, 20, 30):
        p = tmp_path / f"cut{cut}.wav"
        p.write_bytes(data[:cut])
        expect_error(p, str(p), "corrupt or truncated audio (")


def test_corrupt_header(tmp_path):
    data = bytearray(wav_bytes(sine(440, 0.5, SR), SR))
    data[20:36] = b"\xff" * 16  # garbage fmt chunk body
    p = tmp_path / "y.wav"
    p.write_bytes(bytes(data))
    expect_error(p, str(p), "corrupt or truncated audio (")


def test_truncated_data_is_read_or_reported(tmp_path):
    """A WAV cut inside its data reads fewer frames; a cut FLAC gives AudioError. Never raw."""
    x = sine(440, 1.0, SR)
    data = wav_bytes(x, SR)
    (tmp_path / "short.wav").write_bytes(data[:len(data) // 2])
    y = load_audio(tmp_path / "short.wav")
    assert 0 < len(y) < len(x)
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="FLAC")
    (tmp_path / "short.flac").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    try:
        y = load_audio(tmp_path / "short.flac")
        assert len(y) <= len(x)
    except AudioError as exc:
        assert str(exc).startswith(f"{tmp_path / 'short.flac'}: corrupt or truncated audio (")


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_nan_and_inf_samples(tmp_path, subtype):
    for bad in (np.nan, np.inf, -np.inf):
        x = sine(440, 0.2, SR)
        x[100] = bad
        p = tmp_path / f"z_{subtype}.wav"
        sf.write(p, x, SR, subtype=subtype)
        msg = expect_error(p, str(p), "contains NaN or infinite samples")
        assert msg == f"{p}: contains NaN or infinite samples"


def test_nan_in_a_later_block(tmp_path):
    x = sine(440, 3.0, SR)
    x[int(2.5 * SR)] = np.nan
    sf.write(tmp_path / "late.wav", x, SR, subtype="FLOAT")
    it = iter_audio_blocks(tmp_path / "late.wav", block_seconds=1.0)
    first = next(it)
    assert len(first) == SR
    with pytest.raises(AudioError, match="contains NaN or infinite samples"):
        list(it)


def test_errors_raised_when_iterator_is_created(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        iter_audio_blocks(tmp_path / "nope.wav")
    (tmp_path / "t.txt").write_text("x" * 100)
    with pytest.raises(AudioError, match="not a recognised audio format"):
        iter_audio_blocks(tmp_path / "t.txt")


def test_fuzzed_inputs_never_leak_raw_errors(tmp_path):
    rng = np.random.default_rng(7)
    x = sine(440, 0.3, 22050)
    sources = [wav_bytes(x, 22050, subtype="PCM_16"), wav_bytes(x, 22050, subtype="FLOAT")]
    for fmt in ("FLAC", "OGG"):
        buf = io.BytesIO()
        sf.write(buf, x, 22050, format=fmt)
        sources.append(buf.getvalue())
    for data in sources:
        for _ in range(8):
            blob = bytearray(data)
            if rng.random() < 0.5:
                blob = blob[: int(rng.integers(1, len(blob)))]
            else:
                for pos in rng.integers(0, min(len(blob), 200), size=4):
                    blob[pos] = int(rng.integers(0, 256))
            try:
                y = load_audio(bytes(blob))
                assert y.dtype == np.float32 and np.isfinite(y).all()
            except AudioError as exc:
                assert str(exc).startswith("<bytes>: ") and "\n" not in str(exc)


# ------------------------------------------------------------------------------ duration


def test_audio_duration(tmp_path):
    sf.write(tmp_path / "d.wav", np.zeros(22050, np.float32), 44100)
    assert audio_duration(tmp_path / "d.wav") == pytest.approx(0.5)
    assert audio_duration(str(tmp_path / "missing.wav")) is None
    assert audio_duration("-") is None
    assert audio_duration(b"RIFF") is None
    (tmp_path / "n.txt").write_text("hi")
    assert audio_duration(tmp_path / "n.txt") is None


# -------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("rate,channels", [(44100, 2), (16000, 1), (8000, 3)])
def test_blocks_equal_load_audio(tmp_path, rate, channels):
    rng = np.random.default_rng(3)
    n = int(7.3 * rate)
    data = rng.normal(0, 0.1, (n, channels)) + sine(300, n / rate, rate)[:n, None]
    p = tmp_path / "long.wav"
    sf.write(p, data, rate, subtype="PCM_16")
    whole = load_audio(p)
    ref, _ = sf.read(p, dtype="float32", always_2d=True)
    one_shot = resample(ref.mean(axis=1), rate, SR)  # resampling the whole signal at once
    assert len(whole) == len(one_shot) == int(round(n * SR / rate))
    assert np.max(np.abs(whole - one_shot)) < 1e-4
    blocks = list(iter_audio_blocks(p, block_seconds=1.0))
    assert len(blocks) >= 7
    assert all(b.dtype == np.float32 and b.ndim == 1 and len(b) > 0 for b in blocks)
    joined = np.concatenate(blocks)
    assert len(joined) == len(whole)
    assert np.max(np.abs(joined - whole)) < 1e-4
    assert np.corrcoef(joined, whole)[0, 1] > 0.99999


def test_blocks_from_bytes_and_ogg(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, sine(440, 2.0, 48000), 48000, format="OGG")
    whole = load_audio(buf.getvalue())
    joined = np.concatenate(list(iter_audio_blocks(buf.getvalue(), block_seconds=0.5)))
    assert len(joined) == len(whole)
    np.testing.assert_allclose(joined, whole, atol=1e-4)


# -------------------------------------------------------------------------- segmentation


def check_cover(segments, x, max_n):
    pos = 0
    for start, seg in segments:
        assert start == pos and 0 < len(seg) <= max_n
        assert seg.dtype == np.float32
        pos += len(seg)
    assert pos == len(x)
    assert np.array_equal(np.concatenate([s for _, s in segments]), x)


@pytest.mark.parametrize("seconds", [0.5, 9.0, 30.0, 35.0, 41.0, 95.3])
def test_segments_cover_input_exactly(seconds):
    rng = np.random.default_rng(int(seconds * 10))
    x = rng.normal(0, 0.1, int(seconds * SR)).astype(np.float32)
    # uneven block sizes, including empty ones
    cuts = np.sort(rng.integers(0, len(x), size=12))
    blocks = np.split(x, cuts)
    segs = list(iter_segments(blocks, SR, max_seconds=30.0, min_seconds=10.0))
    check_cover(segs, x, 30 * SR)
    if seconds > 30:
        assert len(segs) >= 2
        assert all(len(s) >= 10 * SR for _, s in segs)  # no tiny tail when avoidable
    check_cover(segment_array(x, SR), x, 30 * SR)


def test_cut_lands_in_silence_between_noise_bursts():
    rng = np.random.default_rng(11)
    x = rng.normal(0, 0.3, 45 * SR).astype(np.float32)
    gap = slice(int(17.0 * SR), int(17.3 * SR))
    x[gap] = 0.0
    blocks = [x[i:i + SR] for i in range(0, len(x), SR)]
    segs = list(iter_segments(blocks, SR, max_seconds=30.0, min_seconds=10.0))
    check_cover(segs, x, 30 * SR)
    first_cut = segs[1][0]
    assert gap.start <= first_cut <= gap.stop
    assert first_cut != 30 * SR


def test_cut_prefers_quiet_pause_over_noise_floor():
    """A pause that is only quieter (not digital silence) still attracts the cut."""
    rng = np.random.default_rng(12)
    x = rng.normal(0, 0.3, 50 * SR).astype(np.float32)
    x[int(24.0 * SR):int(24.3 * SR)] *= 0.02
    x[int(13.0 * SR):int(13.02 * SR)] = 0.0  # a 20 ms dropout is not a pause
    segs = segment_array(x, SR, max_seconds=30.0, min_seconds=10.0)
    check_cover(segs, x, 30 * SR)
    assert int(24.0 * SR) <= segs[1][0] <= int(24.3 * SR)


def test_segment_short_and_exact_lengths():
    x = np.ones(30 * SR, np.float32)
    segs = segment_array(x, SR)
    assert len(segs) == 1 and segs[0][0] == 0 and len(segs[0][1]) == len(x)
    assert segment_array(np.zeros(0, np.float32), SR) == []


def test_segment_small_windows_and_min_zero():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 0.1, 5 * SR).astype(np.float32)
    segs = segment_array(x, SR, max_seconds=1.0, min_seconds=0.0)
    check_cover(segs, x, SR)
    with pytest.raises(ValueError):
        segment_array(x, SR, max_seconds=1.0, min_seconds=2.0)
    with pytest.raises(ValueError):
        segment_array(x.reshape(-1, 2), SR)


def test_blocks_into_segments_pipeline(tmp_path):
    rng = np.random.default_rng(9)
    rate = 22050
    x = rng.normal(0, 0.2, int(70 * rate))
    x[int(20 * rate):int(20.4 * rate)] = 0.0
    sf.write(tmp_path / "talk.flac", x, rate)
    whole = load_audio(tmp_path / "talk.flac")
    segs = list(iter_segments(iter_audio_blocks(tmp_path / "talk.flac", block_seconds=7.0),
                              SR, max_seconds=30.0, min_seconds=10.0))
    joined = np.concatenate([s for _, s in segs])
    assert len(joined) == len(whole) and np.max(np.abs(joined - whole)) < 1e-4
    assert 20 * SR <= segs[1][0] <= 20.4 * SR
    assert all(len(s) <= 30 * SR for _, s in segs)
