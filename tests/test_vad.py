"""Voice-activity gate of the offline path (speechlstm.vad): no words from silence, steady noise or hum."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import BURSTS, SR, burst_audio
from speechlstm import Recognizer, vad
from speechlstm.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from make_nonspeech import _coloured  # noqa: E402


def _nonspeech(rng, seconds=3.0):
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = {"zeros": np.zeros(n), "dither": 1e-5 * rng.standard_normal(n)}
    for level in (-50, -30, -12):
        g = 10 ** (level / 20)
        for colour in ("white", "pink", "brown"):
            out[f"{colour}{level}"] = g * _coloured(rng, n, colour)
        hum = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 6))
        out[f"hum{level}"] = g * hum / np.sqrt(np.mean(hum ** 2))
    return {k: v.astype(np.float32) for k, v in out.items()}


def test_steady_sounds_have_no_speech_frames():
    for name, x in _nonspeech(np.random.default_rng(0)).items():
        assert not vad.speech_frames(x, SR).any(), name


def test_bursts_are_found_where_they_are():
    m = vad.speech_frames(burst_audio(), SR)
    on = np.flatnonzero(m) * vad.FRAME_SECONDS
    assert m.any()
    for t in on:  # every speech frame lies in (or within a window of) a burst
        assert any(s - 0.03 <= t <= e + 0.01 for s, e in BURSTS), t
    for s, e in BURSTS:  # and every burst is mostly found
        assert m[int(s / vad.FRAME_SECONDS):int(e / vad.FRAME_SECONDS)].mean() > 0.8


def test_short_clicks_and_quiet_audio_are_not_speech():
    x = np.zeros(SR, np.float32)
    x[8000:8010] = 0.9  # a 0.6 ms click: one 25 ms window, shorter than min_speech
    assert not vad.speech_frames(x, SR).any()
    quiet = burst_audio() * 1e-3  # the bursts at -80 dBFS: below min_db
    assert not vad.speech_frames(quiet, SR).any()
    assert vad.speech_frames(np.zeros(0, np.float32), SR).shape == (0,)
    assert vad.speech_frames(np.ones(50, np.float32), SR).shape == (0,)


def test_recognizer_gate_on_and_off(burst_model_dir):
    gated = Recognizer(burst_model_dir, device="cpu", beam_width=4)
    open_ = Recognizer(burst_model_dir, device="cpu", beam_width=4, vad=False)
    rng = np.random.default_rng(1)
    noise = (0.3 * rng.standard_normal(3 * SR)).astype(np.float32)
    # steady noise: with per-utterance normalization the burst model hears "a"s in it, the gate hears nothing
    assert open_.transcribe(noise, sample_rate=SR).text != ""
    t = gated.transcribe(noise, sample_rate=SR)
    assert t.text == "" and t.words == [] and t.duration == pytest.approx(3.0)
    assert gated.transcribe(np.zeros(2 * SR, np.float32), sample_rate=SR).text == ""
    # real activity still comes through, identical to the ungated path
    assert gated.transcribe(burst_audio(), sample_rate=SR).text == open_.transcribe(burst_audio(), sample_rate=SR).text
    # grammar mode: no speech, no match
    g = Recognizer(burst_model_dir, device="cpu", grammar=["a", "a a a"])
    r = g.transcribe(noise, sample_rate=SR)
    assert r.text == "" and not r.matched


def test_cli_no_vad(burst_model_dir, tmp_path, capsys):
    p = tmp_path / "noise.flac"
    sf.write(p, (0.3 * np.random.default_rng(2).standard_normal(2 * SR)).astype(np.float32), SR)
    assert main(["transcribe", str(p), "--model", str(burst_model_dir)]) == 0
    assert capsys.readouterr().out.strip() == ""
    assert main(["transcribe", str(p), "--model", str(burst_model_dir), "--no-vad"]) == 0
    assert capsys.readouterr().out.strip() != ""


def test_highpass_equals_scipy_butterworth():
    from scipy.signal import butter, sosfilt

    x = np.random.default_rng(3).standard_normal(4000) + 0.5  # DC offset
    for sr in (8000, 16000, 44100):
        ref = sosfilt(butter(2, vad.HIGHPASS_HZ, btype="highpass", fs=sr, output="sos"), x)
        np.testing.assert_allclose(vad._highpass(x, sr), ref, rtol=1e-10, atol=1e-12)
