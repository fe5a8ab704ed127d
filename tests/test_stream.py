"""Streaming recognition: incremental features, LC-BLSTM kernel, endpointing, events, files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import BURSTS, SR, burst_audio
from speechlstm import Recognizer
from speechlstm.errors import AudioError
from speechlstm.features import FeatureConfig, compute_features
from speechlstm.kernels import lstm
from speechlstm.model import AcousticModel, ModelConfig, random_weights
from speechlstm.stream import DEFAULTS, Final, Partial, StreamingRecognizer, _FeatureStream, _LCBLSTM, \
    transcribe_stream


def _feed(stream, x, block):
    events = []
    for i in range(0, len(x), block):
        events += stream.accept(x[i:i + block])
    return events + stream.finish()


def _finals(events):
    return [e for e in events if isinstance(e, Final)]


def _silence(seconds, seed=1):
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 1e-4).astype(np.float32)


# ------------------------------------------------------------------------------ incremental features
@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(kind="mfcc", deltas=2),
                                 FeatureConfig(deltas=1, center=False, preemphasis=0.5)],
                         ids=["logmel", "mfcc-deltas2", "not-centred-deltas1"])
def test_feature_stream_matches_offline(cfg):
    """Fed in random pieces, the stream computes exactly the offline frames (deltas included)."""
    x = (np.random.default_rng(0).standard_normal(16000 + 123) * 0.1).astype(np.float32)
    ref = compute_features(x, cfg)
    rng = np.random.default_rng(1)
    fs = _FeatureStream(cfg)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        parts.append(fs.push(x[i:i + n]))
        i += n
    parts.append(fs.flush())
    got = np.concatenate(parts)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)  # same kernel, same arithmetic per frame: bit-identical


def test_feature_stream_frames_arrive_as_soon_as_their_window_is_complete():
    cfg = FeatureConfig()
    fs = _FeatureStream(cfg)
    assert fs.push(np.zeros(255, np.float32)).shape[0] == 0  # frame 0 spans samples [-256, 256)
    assert fs.push(np.zeros(1, np.float32)).shape[0] == 1
    assert fs.push(np.zeros(160, np.float32)).shape[0] == 1


# ------------------------------------------------------------------------------ LC-BLSTM kernel
def _packs(rng, H, In):
    def mk():
        return lstm.pack_direction(rng.standard_normal((4 * H, In)) * 0.3, rng.standard_normal((4 * H, H)) * 0.3,
                                   rng.standard_normal(4 * H) * 0.1)
    return mk(), mk()


def test_bilstm_chunk_from_zero_state_is_bilstm_layer():
    rng = np.random.default_rng(0)
    fw, bw = _packs(rng, 20, 7)
    x = rng.standard_normal((70, 7)).astype(np.float32)  # more than one 64-step time chunk
    full = lstm.bilstm_layer(x[None], np.array([70]), fw, bw)[0]
    out, (h, c) = lstm.bilstm_chunk(x, fw, bw)
    assert np.array_equal(out, full)
    assert np.array_equal(h, full[-1, :20])
    assert h.shape == c.shape == (20,)


def test_lc_layers_with_full_future_equal_offline():
    """Forward states carried across chunks through every layer: with all the future as right context the
    chunked network equals the offline one exactly."""
    rng = np.random.default_rng(1)
    layers = [_packs(rng, 16, 5), _packs(rng, 16, 32)]
    x = rng.standard_normal((23, 5)).astype(np.float32)
    ref = x[None]
    for fw, bw in layers:
        ref = lstm.bilstm_layer(ref, np.array([23]), fw, bw)
    ref = ref[0]
    states = [None, None]
    kept = []
    N = 4
    for p in range(0, 23, N):
        h = x[p:]
        for i, (fw, bw) in enumerate(layers):
            h, states[i] = lstm.bilstm_chunk(h, fw, bw, state=states[i], keep=min(N, h.shape[0]))
        kept.append(h[:N])
    assert np.array_equal(np.concatenate(kept), ref)


def test_lc_blstm_limited_right_context_differs_but_whole_utterance_chunk_is_exact():
    cfg = ModelConfig.example(hidden_size=16, num_layers=2, frame_stacking=3)
    model = AcousticModel(cfg, random_weights(cfg, seed=3))
    feats = model.featurize((np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32))
    ref = model.log_probs([feats])[0]
    whole = _LCBLSTM(model, n_keep=1000, n_right=0)
    whole.push(feats)
    whole.close()
    assert np.array_equal(whole.kept_log_probs(), ref)
    small = _LCBLSTM(model, n_keep=4, n_right=2)
    small.push(feats[:100])
    prov = small.run()
    small.push(feats[100:])
    small.close()
    lp = small.kept_log_probs()
    assert lp.shape == ref.shape and prov.shape[0] >= 2
    assert not np.array_equal(lp, ref)  # the backward direction saw only 2 frames of future
    assert np.isfinite(lp).all()
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-4)


def test_bilstm_chunk_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    fw, bw = _packs(rng, 8, 3)
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="keep"):
        lstm.bilstm_chunk(x, fw, bw, keep=6)
    with pytest.raises(ValueError, match="state"):
        lstm.bilstm_chunk(x, fw, bw, state=(np.zeros(7), np.zeros(8)))
    with pytest.raises(ValueError, match="features"):
        lstm.bilstm_chunk(np.zeros((5, 4), np.float32), fw, bw)
    with pytest.raises(ValueError, match="T >= 1"):
        lstm.bilstm_chunk(np.zeros((0, 3), np.float32), fw, bw)


# ------------------------------------------------------------------------------ the stream, burst model
@pytest.fixture(scope="module")
def burst_rec(burst_model_dir):
    return Recognizer(burst_model_dir, beam_width=4)


@pytest.mark.parametrize("partials", ["lc", "redecode", "none"])
@pytest.mark.parametrize("final_pass", [True, False])
def test_stream_bursts_partials_then_final(burst_rec, partials, final_pass):
    x = burst_audio()
    offline = burst_rec.transcribe(x, sample_rate=SR)
    assert offline.text == "a a a"
    events = _feed(burst_rec.stream(partials=partials, final_pass=final_pass), x, 800)
    finals = _finals(events)
    assert [f.text for f in finals] == ["a a a"]
    f = finals[0]
    assert events[-1] is f
    for w, (s, e) in zip(f.words, BURSTS):
        assert abs(w.start - s) < 0.08 and abs(w.end - e) < 0.08
    assert f.start <= BURSTS[0][0] and f.end >= BURSTS[-1][1]
    partial_texts = [e.text for e in events if isinstance(e, Partial)]
    if partials == "none":
        assert partial_texts == []
    else:
        assert partial_texts == ["a", "a a", "a a a"]  # each burst shows up before the utterance ends


def test_partial_appears_while_speaking(burst_rec):
    """The first 'a' is shown before the audio reaches the second burst (no need to wait for the pause)."""
    x = burst_audio()
    s = burst_rec.stream()
    seen_at = None
    for i in range(0, len(x), 320):
        if any(isinstance(e, Partial) and e.text == "a" for e in s.accept(x[i:i + 320])):
            seen_at = s.time
            break
    assert seen_at is not None and seen_at < BURSTS[1][0]
    assert s.in_utterance


def test_trailing_silence_ends_utterances(burst_rec):
    x = burst_audio()
    two = np.concatenate([x, _silence(1.0), x])
    finals = _finals(_feed(burst_rec.stream(), two, 1600))
    assert [f.text for f in finals] == ["a a a", "a a a"]
    assert finals[0].end <= finals[1].start
    assert finals[1].words[0].start > 3.0  # stream time, not utterance time
    one = _finals(_feed(burst_rec.stream(trailing_silence=2.0), two, 1600))
    assert [f.text for f in one] == ["a a a a a a"]


def test_max_utterance_cuts_at_quiet_points(burst_rec):
    rng = np.random.default_rng(5)
    x = _silence(0.5)
    n_bursts = 0
    for _ in range(14):  # 0.3 s bursts, 0.3 s gaps: never a 0.6 s pause
        burst = (rng.standard_normal(int(0.3 * SR)) * 0.3).astype(np.float32)
        x = np.concatenate([x, burst, _silence(0.3, seed=n_bursts)])
        n_bursts += 1
    finals = _finals(_feed(burst_rec.stream(max_utterance=2.0), x, 1600))
    assert len(finals) >= 4
    assert all(f.end - f.start <= 2.0 + 1e-6 for f in finals)
    assert sum(len(f.words) for f in finals) == n_bursts  # cut between bursts, never inside one
    assert all(a.end <= b.start + 1e-9 for a, b in zip(finals, finals[1:]))


def test_finish_closes_the_open_utterance(burst_rec):
    x = burst_audio()[: int(1.15 * SR)]  # ends inside the second burst
    s = burst_rec.stream()
    events = []
    for i in range(0, len(x), 1600):
        events += s.accept(x[i:i + 1600])
    assert not _finals(events) and s.in_utterance
    last = s.finish()
    assert [f.text for f in _finals(last)] == ["a a"]
    assert s.finish() == []
    with pytest.raises(RuntimeError):
        s.accept(x[:10])


def test_resampled_int_and_stereo_input(burst_rec):
    import soxr

    x = burst_audio()
    x48 = soxr.resample(x, SR, 48000).astype(np.float32)
    finals = _finals(_feed(burst_rec.stream(sample_rate=48000), x48, 2400))
    assert [f.text for f in finals] == ["a a a"]
    assert abs(finals[0].words[-1].end - BURSTS[-1][1]) < 0.08
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
    stereo = np.stack([pcm, pcm], axis=1)
    assert [f.text for f in _finals(_feed(burst_rec.stream(), stereo, 1000))] == ["a a a"]


def test_silence_gives_no_events_and_memory_stays_bounded(burst_rec):
    s = burst_rec.stream()
    quiet = _silence(1.0)
    for _ in range(30):
        assert s.accept(quiet) == []
    assert s._audio.shape[0] <= (DEFAULTS["pre_roll"] + 1.2) * SR
    assert s._feats.shape[0] <= (DEFAULTS["pre_roll"] + 1.2) * 100
    x = burst_audio()
    for _ in range(10):
        s.accept(x)
    assert s._audio.shape[0] <= (DEFAULTS["max_utterance"] + 1.0) * SR
    assert len(s._elog) <= (DEFAULTS["max_utterance"] + 1.0) * 100


def test_bad_options_and_input(burst_rec):
    with pytest.raises(TypeError, match="unknown stream option"):
        burst_rec.stream(chunk=3)
    with pytest.raises(ValueError, match="partials"):
        burst_rec.stream(partials="sometimes")
    with pytest.raises(ValueError, match="trailing_silence"):
        burst_rec.stream(trailing_silence=0)
    s = burst_rec.stream()
    with pytest.raises(AudioError, match="NaN"):
        s.accept(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="sample type"):
        s.accept(np.array(["a"]))
    assert isinstance(s, StreamingRecognizer)
    assert Final("x", [], 1.0, 2.0).to_dict() == {"text": "x", "start": 1.0, "end": 2.0, "words": []}


# ------------------------------------------------------------------------------ files
def test_transcribe_stream_file_matches_offline(burst_rec, burst_wav, tmp_path):
    long = tmp_path / "two.flac"
    x = burst_audio()
    sf.write(long, np.concatenate([x, _silence(1.0), x]), SR)
    t = transcribe_stream(burst_rec, str(long))
    assert t.text == burst_rec.transcribe(str(long)).text == "a a a a a a"
    assert len(t.segments) == 2 and abs(t.duration - (2 * len(x) / SR + 1.0)) < 1e-3
    assert [w.word for w in t.words] == ["a"] * 6


def test_cli_transcribe_stream(burst_model_dir, burst_wav):
    cmd = [sys.executable, "-m", "speechlstm", "transcribe", str(burst_wav), "--model", str(burst_model_dir)]
    offline = subprocess.run(cmd, capture_output=True, text=True)
    streamed = subprocess.run(cmd + ["--stream", "--format", "json"], capture_output=True, text=True)
    assert offline.returncode == 0 and streamed.returncode == 0, streamed.stderr
    d = json.loads(streamed.stdout)
    assert d["text"] == offline.stdout.strip() == "a a a"
    assert len(d["words"]) == 3


# ------------------------------------------------------------------------------ benchmark measures
@pytest.fixture(scope="module")
def bench_stream_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "bench_stream.py"
    spec = importlib.util.spec_from_file_location("bench_stream", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_latency_and_agreement_measures(bench_stream_tool):
    from speechlstm.transcribe import Word

    b = bench_stream_tool
    final = Final("hello world", [Word("hello", 0.2, 0.9, 1.0), Word("world", 1.1, 1.8, 1.0)], 0.1, 2.0)
    seen = [(1.0, Partial("hel")), (1.2, Partial("hello")), (1.5, Partial("yellow wor")),
            (2.0, Partial("hello world")), (2.7, final)]
    lat, only_final = b.latencies(seen)
    assert np.allclose(lat, [0.3, 0.2]) and only_final == 0
    lat, _ = b.latencies(seen, [[None, 1.9]])
    assert np.allclose(lat, [0.1])
    lat, only_final = b.latencies(seen[:1] + seen[-1:])  # never shown: counted at the final's time
    assert np.allclose(lat, [1.8, 0.9]) and only_final == 2
    a = b.agreement(seen)
    assert a["last_partial_wer_vs_final"] == 0.0
    assert a["partial_word_stability"] == pytest.approx(1 / 2)  # 'yellow' was shown, 'hello' kept
    x = np.zeros(SR, np.float32)
    x[int(0.2 * SR):int(0.5 * SR)] = 0.3
    x += (np.random.default_rng(0).standard_normal(SR) * 1e-4).astype(np.float32)
    assert b.speech_end(x) == pytest.approx(0.5, abs=0.011)
