"""Recognizer end to end: features -> BiLSTM -> CTC -> words, with a model whose answer is known."""

import threading

import numpy as np
import pytest
import soundfile as sf

from conftest import BURSTS, DURATION, SR, burst_audio
from speechlstm import Recognizer
from speechlstm.errors import AudioError, DeviceError
from speechlstm.model import ModelConfig, random_weights, save_model


@pytest.fixture(scope="module")
def rec(burst_model_dir):
    return Recognizer(burst_model_dir, device="cpu", beam_width=4)


def test_file_transcript_words_and_times(rec, burst_wav):
    t = rec.transcribe(str(burst_wav))
    assert t.text == "a a a"
    assert t.duration == pytest.approx(DURATION, abs=1e-3)
    assert [w.word for w in t.words] == ["a", "a", "a"]
    for w, (s, e) in zip(t.words, BURSTS):
        assert abs(w.start - s) < 0.05, (w, s)
        assert s <= w.end <= e + 0.05
        assert 0.0 <= w.confidence <= 1.0
    assert t.model == "burst-test"
    assert set(t.timings) == {"audio", "features", "model", "decoding"}
    d = t.to_dict()
    assert d["text"] == "a a a" and len(d["words"]) == 3 and d["segments"][0]["start"] == 0.0


def test_greedy_and_beam_agree(rec, burst_wav):
    assert rec.transcribe(str(burst_wav), beam_width=1).text == rec.transcribe(str(burst_wav), beam_width=16).text


@pytest.mark.parametrize("rate, channels", [(8000, 1), (44100, 2), (48000, 6)])
def test_other_rates_and_channels(rec, tmp_path, rate, channels):
    x = burst_audio(sr=rate)
    x = np.repeat(x[:, None], channels, axis=1) * np.linspace(0.5, 1.0, channels)[None, :]
    p = tmp_path / f"b{rate}.flac"
    sf.write(p, x.astype(np.float32), rate, subtype="PCM_24")
    assert rec.transcribe(str(p)).text == "a a a"


def test_array_input(rec):
    x = burst_audio()
    assert rec.transcribe(x, sample_rate=SR).text == "a a a"
    assert rec.transcribe((x * 32767).astype(np.int16), sample_rate=SR).text == "a a a"
    with pytest.raises(ValueError, match="sample_rate is required"):
        rec.transcribe(x)
    bad = x.copy()
    bad[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        rec.transcribe(bad, sample_rate=SR)


def test_long_audio_is_segmented_and_times_are_absolute(burst_model_dir):
    r = Recognizer(burst_model_dir, beam_width=1, segment_seconds=3.0)
    x = np.concatenate([burst_audio(seed=i) for i in range(4)])  # 10 s, 12 bursts
    t = r.transcribe(x, sample_rate=SR)
    assert len(t.segments) >= 4
    assert t.text == " ".join(["a"] * 12)
    starts = [w.start for w in t.words]
    expected = [k * DURATION + s for k in range(4) for s, _ in BURSTS]
    np.testing.assert_allclose(starts, expected, atol=0.05)
    # segments tile the audio
    assert t.segments[0]["start"] == 0.0 and t.segments[-1]["end"] == pytest.approx(4 * DURATION, abs=1e-3)
    for a, b in zip(t.segments, t.segments[1:]):
        assert a["end"] == b["start"]


def test_thread_safety(rec, burst_wav):
    x = burst_audio()
    expected = rec.transcribe(x, sample_rate=SR)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(rec.transcribe(x, sample_rate=SR))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(results) == 12
    for r in results:
        assert r.text == expected.text
        assert r.score == expected.score


def test_random_model_runs_and_devices(tmp_path):
    cfg = ModelConfig.example(hidden_size=8, num_layers=2, frame_stacking=2)
    save_model(tmp_path, cfg, random_weights(cfg))
    r = Recognizer(tmp_path, device="auto")
    t = r.transcribe(np.zeros(4000, np.float32), sample_rate=SR)
    assert isinstance(t.text, str) and t.duration == 0.25
    with pytest.raises(DeviceError, match="cuda"):
        Recognizer(tmp_path, device="cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        Recognizer(tmp_path, device="tpu")
