"""Data pipeline: manifests, mixing, bucketing, determinism/resume, bad input, augmentation (speechlstm.data)."""

import collections
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlstm import features as feat_mod
from speechlstm.data import (Augment, DataLoader, _reverberate, _vtlp_tables, add_noise, compute_features_vtlp,
                             compute_global_stats, narrowband, read_manifest, spec_augment, vtlp_warp)
from speechlstm.features import FeatureConfig, compute_features
from speechlstm.model import ModelConfig
from speechlstm.text import text_to_ids

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SR = 16000
CFG = ModelConfig.example(hidden_size=8, num_layers=1, frame_stacking=2)

WORDS = ["yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off", "one", "two"]


def _tone(seconds, sr=SR, freq=300.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _write_manifest(path, records, raw_lines=()):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two speech manifests (one clip at 8 kHz), a noise manifest with one noise and one RIR."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "audio").mkdir()
    a_recs = []
    for i in range(8):
        dur = 0.5 + 0.15 * i
        sr = 8000 if i == 3 else SR
        name = f"audio/a{i}.flac" if sr == SR else f"audio/a{i}_8k.wav"
        sf.write(d / name, _tone(dur, sr, 200 + 40 * i, seed=i), sr, subtype="PCM_16")
        a_recs.append({"id": f"a{i}", "audio": name, "text": WORDS[i], "duration": dur, "sample_rate": sr,
                       "source": "toneset", "speaker": f"s{i % 2}"})
    b_recs = []
    for i in range(4):
        dur = 0.6 + 0.1 * i
        sf.write(d / f"audio/b{i}.flac", _tone(dur, SR, 500 + 50 * i, seed=10 + i), SR, subtype="PCM_16")
        b_recs.append({"id": f"b{i}", "audio": f"audio/b{i}.flac", "text": WORDS[8 + i], "duration": dur,
                       "sample_rate": SR, "source": "other", "speaker": None})
    rng = np.random.default_rng(5)
    sf.write(d / "audio/noise.flac", (0.1 * rng.standard_normal(SR // 2)).astype(np.float32), SR)
    rir = np.zeros(2000, np.float32)
    rir[100] = 1.0
    rir[100:] += (0.3 * rng.standard_normal(1900) * np.exp(-np.arange(1900) / 300)).astype(np.float32)
    sf.write(d / "audio/rir.wav", rir, SR, subtype="FLOAT")
    noise = _write_manifest(d / "noise.jsonl", [
        {"id": "n", "audio": "audio/noise.flac", "text": "", "duration": 0.5, "sample_rate": SR, "kind": "noise"},
        {"id": "r", "audio": "audio/rir.wav", "text": "", "duration": 0.125, "sample_rate": SR, "kind": "rir"},
    ])
    return {"dir": d, "a": _write_manifest(d / "a.jsonl", a_recs), "b": _write_manifest(d / "b.jsonl", b_recs),
            "noise": noise, "a_recs": a_recs, "b_recs": b_recs}


def _all(loader, epoch, start=0):
    return list(loader.epoch(epoch, start_batch=start))


def _same(b1, b2):
    return (b1.ids == b2.ids and b1.index == b2.index and np.array_equal(b1.feats, b2.feats)
            and np.array_equal(b1.lengths, b2.lengths) and np.array_equal(b1.labels, b2.labels)
            and np.array_equal(b1.label_lengths, b2.label_lengths))


# ------------------------------------------------------------------ manifests


def test_read_manifest_resolves_paths_and_skips_bad_lines(corpus, tmp_path, caplog):
    recs = corpus["a_recs"][:2]
    path = _write_manifest(tmp_path / "m.jsonl", recs, raw_lines=[
        "{not json", "[1, 2]", '{"id": "x", "audio": "x.flac", "text": "hi"}',
        '{"id": "y", "audio": "y.flac", "text": "hi", "duration": -1}',
        '{"id": "z", "audio": "z.flac", "text": 5, "duration": 1}', "",
    ])
    with caplog.at_level(logging.WARNING, logger="speechlstm.data"):
        utts, skipped = read_manifest(path)
    assert [u.id for u in utts] == ["a0", "a1"]
    assert utts[0].audio == str((tmp_path / recs[0]["audio"]).resolve())
    assert utts[0].source == "toneset" and utts[0].speaker == "s0" and utts[0].sample_rate == SR
    assert skipped == {"bad json": 2, "missing field": 1, "bad field": 2}
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 5
    _, quiet = read_manifest(path, warn=False)
    assert quiet == skipped


def test_read_manifest_defaults(tmp_path):
    path = _write_manifest(tmp_path / "corpus_x.jsonl", [{"id": 7, "audio": "/abs/a.wav", "text": "a",
                                                          "duration": 1}])
    (u,), _ = read_manifest(path)
    assert (u.id, u.audio, u.sample_rate, u.source, u.speaker) == ("7", "/abs/a.wav", 0, "corpus_x", None)


# ------------------------------------------------------------------ batches


def test_batches_shapes_padding_and_labels(corpus):
    loader = DataLoader([(corpus["a"], 1.0), (corpus["b"], 1.0)], CFG, batch_frames=400, max_batch=3,
                        num_workers=0, seed=1)
    batches = _all(loader, 0)
    assert len(batches) == loader.num_batches(0)
    assert [b.index for b in batches] == list(range(len(batches)))
    texts = {r["id"]: r["text"] for r in corpus["a_recs"] + corpus["b_recs"]}
    seen = []
    for b in batches:
        B, T, D = b.feats.shape
        assert b.feats.dtype == np.float32 and D == CFG.features.dim
        assert B <= 3 and (B * T <= 400 or B == 1)
        assert b.lengths.dtype == np.int32 and b.lengths.max() == T
        assert b.labels.dtype == np.int32 and b.label_lengths.dtype == np.int32
        for i, uid in enumerate(b.ids):
            n, m = b.lengths[i], b.label_lengths[i]
            assert np.all(b.feats[i, n:] == 0)
            assert abs(float(b.feats[i, :n].mean())) < 1e-3  # utterance normalization
            assert b.labels[i, :m].tolist() == text_to_ids(texts[uid], CFG.tokens).tolist()
            assert np.all(b.labels[i, m:] == CFG.blank_index)
        seen += b.ids
    assert sorted(seen) == sorted(texts)
    assert sum(loader.stats.values()) == 0
    assert loader.summary["utterances"] == 12 and loader.summary["batches"] == len(batches)


def test_8khz_clip_is_resampled(corpus):
    loader = DataLoader([(corpus["a"], 1.0)], CFG, num_workers=0)
    lengths = {uid: int(n) for b in _all(loader, 0) for uid, n in zip(b.ids, b.lengths)}
    rec = corpus["a_recs"][3]
    assert rec["sample_rate"] == 8000
    assert lengths["a3"] == feat_mod.num_frames(int(rec["duration"] * SR), CFG.features)


def test_length_bucketing_groups_similar_lengths(tmp_path):
    recs = []
    for i in range(40):
        dur = 0.3 if i % 2 else 1.5
        sf.write(tmp_path / f"{i}.flac", _tone(dur, seed=i), SR)
        recs.append({"id": str(i), "audio": f"{i}.flac", "text": "go", "duration": dur})
    path = _write_manifest(tmp_path / "m.jsonl", recs)
    loader = DataLoader([(path, 1.0)], CFG, batch_frames=1000, max_batch=10, num_workers=0)
    for b in _all(loader, 0):
        assert len(set(b.lengths.tolist())) == 1  # short and long clips never share a batch
    assert loader.summary["padding"] == 0.0


# ------------------------------------------------------------------ mixing


def test_weights_repeat_and_subsample(corpus):
    loader = DataLoader([(corpus["a"], 2.0), (corpus["b"], 0.5)], CFG, num_workers=0, batch_frames=10 ** 6,
                        max_batch=100, seed=3)
    subsets = set()
    for e in range(6):
        batches, sel, _ = loader._plan(e)
        ids = collections.Counter(loader.utterances[i].id for i in sel)
        assert all(ids[f"a{i}"] == 2 for i in range(8))
        b_ids = sorted(k for k in ids if k.startswith("b"))
        assert len(b_ids) == 2 and all(ids[k] == 1 for k in b_ids)
        subsets.add(tuple(b_ids))
        assert loader.num_batches(e) == len(batches)
    assert len(subsets) > 1  # a different random half in different epochs
    # deterministic per epoch
    again = DataLoader([(corpus["a"], 2.0), (corpus["b"], 0.5)], CFG, num_workers=0, batch_frames=10 ** 6,
                       max_batch=100, seed=3)
    assert np.array_equal(again._plan(4)[1], loader._plan(4)[1])


def test_zero_weight_and_epoch_seconds(corpus):
    loader = DataLoader([(corpus["a"], 1.0), (corpus["b"], 0.0)], CFG, num_workers=0, epoch_seconds=3.0)
    sel = loader._plan(0)[1]
    durs = [loader.utterances[i].duration for i in sel]
    assert all(loader.utterances[i].id.startswith("a") for i in sel)
    assert sum(durs) <= 3.0 and len(durs) < 8


# ------------------------------------------------------------------ determinism and resume


def test_same_seed_same_batches_and_resume_equals_tail(corpus):
    kw = dict(batch_frames=300, max_batch=4, augment=Augment(), noise_manifest=corpus["noise"], seed=11)
    manifests = [(corpus["a"], 1.5), (corpus["b"], 1.0)]
    l1 = DataLoader(manifests, CFG, num_workers=0, **kw)
    l2 = DataLoader(manifests, CFG, num_workers=0, **kw)
    full = _all(l1, 2)
    assert len(full) >= 4
    other = _all(l2, 2)
    assert all(_same(a, b) for a, b in zip(full, other)) and len(full) == len(other)
    for k in (1, len(full) - 1, len(full)):
        tail = _all(l2, 2, start=k)
        assert len(tail) == len(full) - k
        assert all(_same(a, b) for a, b in zip(full[k:], tail))
    # another epoch or another seed: different augmentation / order
    e3 = _all(l1, 3)
    assert [b.ids for b in e3] != [b.ids for b in full] or not all(_same(a, b) for a, b in zip(full, e3))
    l3 = DataLoader(manifests, CFG, num_workers=0, **{**kw, "seed": 12})
    assert not all(_same(a, b) for a, b in zip(full, _all(l3, 2)))


def test_worker_processes_give_identical_batches(corpus):
    kw = dict(batch_frames=300, max_batch=4, augment=Augment(rir_prob=0.5), noise_manifest=corpus["noise"],
              seed=5)
    manifests = [(corpus["a"], 1.0), (corpus["b"], 1.0)]
    inproc = _all(DataLoader(manifests, CFG, num_workers=0, **kw), 1)
    with DataLoader(manifests, CFG, num_workers=2, prefetch=2, **kw) as pooled:
        full = _all(pooled, 1)
        resumed = _all(pooled, 1, start=2)
        # abandoning an epoch half way and starting the next one works
        it = pooled.epoch(0)
        next(it)
        it.close()
        assert len(_all(pooled, 0)) == pooled.num_batches(0)
    assert len(full) == len(inproc)
    assert all(_same(a, b) for a, b in zip(inproc, full))
    assert all(_same(a, b) for a, b in zip(inproc[2:], resumed))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("check_audio", [True, False])
def test_bad_input_is_skipped_and_counted(corpus, tmp_path, caplog, check_audio):
    d = corpus["dir"]
    good = corpus["a_recs"][:3]
    recs = [dict(r, audio=str(d / r["audio"])) for r in good]
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00 this is not audio at all" * 10)
    sf.write(tmp_path / "short.flac", _tone(0.05), SR)
    sf.write(tmp_path / "long.flac", _tone(0.5), SR)
    sf.write(tmp_path / "toolong.flac", np.zeros(int(20.5 * SR), np.float32), SR)
    recs += [
        {"id": "missing", "audio": "nowhere.flac", "text": "yes", "duration": 1.0},
        {"id": "garbage", "audio": "garbage.wav", "text": "yes", "duration": 1.0},
        {"id": "short", "audio": "short.flac", "text": "a much longer label than the audio", "duration": 0.05},
        # the manifest lies about the duration: found out when decoding
        {"id": "liar", "audio": "short.flac", "text": "a rather long transcript here", "duration": 3.0},
        {"id": "long", "audio": "toolong.flac", "text": "yes", "duration": 20.5},
        {"id": "empty", "audio": "long.flac", "text": "", "duration": 0.5},
        {"id": "nowords", "audio": "long.flac", "text": "\u65e5\u672c", "duration": 0.5},
        {"id": "raw", "audio": "long.flac", "text": "Go 2!", "duration": 0.5},
    ]
    path = _write_manifest(tmp_path / "bad.jsonl", recs, raw_lines=["{oops", '{"id": "nofields"}'])
    with caplog.at_level(logging.WARNING, logger="speechlstm.data"):
        loader = DataLoader([(path, 1.0)], CFG, num_workers=0, max_duration=20.0, check_audio=check_audio)
        built = dict(loader.stats)
        batches = _all(loader, 0)
    ids = sorted(i for b in batches for i in b.ids)
    assert ids == ["a0", "a1", "a2", "raw"]
    assert loader.stats == {"bad json": 1, "missing field": 1, "missing audio": 1, "too short for label": 2,
                            "too long": 1, "empty text": 2, "unreadable audio": 1}
    assert any("epoch 0:" in r.getMessage() and "unreadable audio" in r.getMessage() for r in caplog.records)
    if check_audio:  # found when the loader was built: headers are read, their durations trusted
        assert built == loader.stats
    else:  # found while decoding, mid-epoch
        assert built["too short for label"] == 1 and "unreadable audio" not in built
    assert len(_all(loader, 1)) == loader.num_batches(1)  # the next epoch is fine too
    raw = next(b for b in batches if "raw" in b.ids)
    i = raw.ids.index("raw")
    assert raw.labels[i, :raw.label_lengths[i]].tolist() == text_to_ids("go two", CFG.tokens).tolist()
    # characters that no normalization can turn into tokens
    small = ModelConfig.example()
    small.tokens = ["<blank>", " ", "y", "e", "s"]
    l2 = DataLoader([(path, 1.0)], small, num_workers=0, check_audio=check_audio)
    assert l2.stats["label chars"] >= 1
    assert {u.id for u in l2.utterances} <= {"a0", "garbage", "liar"}


def test_header_duration_overrides_manifest(tmp_path):
    sf.write(tmp_path / "x.flac", _tone(2.0), SR)
    path = _write_manifest(tmp_path / "m.jsonl", [{"id": "x", "audio": "x.flac", "text": "go", "duration": 30.0}])
    assert DataLoader([(path, 1.0)], CFG, num_workers=0).stats == {}
    assert DataLoader([(path, 1.0)], CFG, num_workers=0, check_audio=False).stats == {"too long": 1}


def test_too_short_for_label_counts_repeats():
    from speechlstm.data import _needed_frames

    assert _needed_frames(np.array([1, 2, 3])) == 3
    assert _needed_frames(np.array([1, 1, 2, 2, 2])) == 8
    assert _needed_frames(np.array([], np.int32)) == 0


def test_a_batch_of_only_bad_audio_is_not_yielded(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"garbage" * 100)
    sf.write(tmp_path / "ok.flac", _tone(0.5), SR)
    path = _write_manifest(tmp_path / "m.jsonl", [
        {"id": "bad", "audio": "bad.wav", "text": "go", "duration": 2.0},
        {"id": "ok", "audio": "ok.flac", "text": "go", "duration": 0.5},
    ])
    loader = DataLoader([(path, 1.0)], CFG, num_workers=0, max_batch=1, check_audio=False)
    assert loader.num_batches(0) == 2
    batches = _all(loader, 0)
    assert [b.ids for b in batches] == [["ok"]]
    assert loader.stats == {"unreadable audio": 1}


# ------------------------------------------------------------------ augmentation


def test_augmentation_changes_features_keeps_dims(corpus):
    plain = {i: b for b in _all(DataLoader([(corpus["a"], 1.0)], CFG, num_workers=0, max_batch=1), 0)
             for i in b.ids}
    aug = Augment(speed_factors=(1.0,), noise_prob=1.0, snr_db=(5.0, 5.0))
    noisy = {i: b for b in _all(DataLoader([(corpus["a"], 1.0)], CFG, num_workers=0, max_batch=1, augment=aug,
                                           noise_manifest=corpus["noise"]), 0) for i in b.ids}
    for uid, b in plain.items():
        n = noisy[uid]
        assert n.feats.shape == b.feats.shape
        assert not np.allclose(n.feats, b.feats, atol=1e-2)


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_changes_length(corpus, speed):
    aug = Augment(speed_factors=(speed,), noise_prob=0.0, vtlp_range=(1.0, 1.0), time_masks=0, freq_masks=0)
    loader = DataLoader([(corpus["a"], 1.0)], CFG, num_workers=0, augment=aug)
    for b in _all(loader, 0):
        for uid, n in zip(b.ids, b.lengths):
            rec = next(r for r in corpus["a_recs"] if r["id"] == uid)
            expected = feat_mod.num_frames(int(round(rec["duration"] * SR / speed)), CFG.features)
            assert abs(int(n) - expected) <= 1


def test_speed_factor_falls_back_when_audio_gets_too_short(tmp_path):
    # 0.30 s -> 31 frames -> 16 after stacking by 2; "abcdefghijklmno" needs 15 (fits at 1.0, not at 1.25)
    sf.write(tmp_path / "x.flac", _tone(0.3), SR)
    path = _write_manifest(tmp_path / "m.jsonl", [{"id": "x", "audio": "x.flac", "text": "abcdefghijklmno",
                                                   "duration": 0.3}])
    aug = Augment(speed_factors=(1.25,), noise_prob=0.0)
    (b,) = _all(DataLoader([(path, 1.0)], CFG, num_workers=0, augment=aug), 0)
    assert b.lengths.tolist() == [31]


def test_add_noise_hits_requested_snr():
    rng = np.random.default_rng(0)
    speech = _tone(1.0, seed=1)
    noise = rng.standard_normal(3000).astype(np.float32) * 0.5
    for snr in (0.0, 5.0, 12.5, 30.0):
        for offset in (0, 1234, 10 ** 6):
            y = add_noise(speech, noise, snr, offset)
            assert y.shape == speech.shape and y.dtype == np.float32
            s64 = speech.astype(np.float64)
            measured = 10 * np.log10(np.mean(s64 ** 2) / np.mean((y.astype(np.float64) - s64) ** 2))
            assert abs(measured - snr) < 0.02
    # noise is taken from the offset (looped)
    y = add_noise(np.ones(10, np.float32), np.arange(1, 5, dtype=np.float32), 0.0, offset=2)
    assert np.allclose((y - 1) / (y[0] - 1), [1, 4 / 3, 1 / 3, 2 / 3, 1, 4 / 3, 1 / 3, 2 / 3, 1, 4 / 3])
    # silence on either side: unchanged
    assert np.array_equal(add_noise(speech, np.zeros(100), 10.0), speech)
    assert np.array_equal(add_noise(np.zeros(100, np.float32), noise, 10.0), np.zeros(100, np.float32))


def test_reverberation_keeps_length_and_power():
    x = _tone(0.5)
    rir = np.zeros(800, np.float32)
    rir[50] = 1.0
    rir[60:] = 0.2 * np.exp(-np.arange(740) / 100.0)
    y = _reverberate(x, rir)
    assert y.shape == x.shape
    assert np.isclose(np.mean(y.astype(np.float64) ** 2), np.mean(x.astype(np.float64) ** 2), rtol=1e-4)
    delta = np.zeros(10, np.float32)
    delta[3] = 2.0
    assert np.allclose(_reverberate(x, delta), x, atol=1e-6)  # a pure delay is undone by the alignment


def test_spec_augment_masks():
    rng = np.random.default_rng(0)
    f = np.ones((200, 26), np.float32)
    spec_augment(f, rng, time_masks=0, freq_masks=3, freq_mask_max=4, base_dim=13)
    zero_cols = np.flatnonzero((f == 0).all(axis=0))
    assert 0 < zero_cols.size <= 24
    assert set(zero_cols[zero_cols < 13] + 13) == set(zero_cols[zero_cols >= 13])  # same bands in the deltas
    assert not (f == 0).all(axis=1).any()
    g = np.ones((200, 10), np.float32)
    spec_augment(g, np.random.default_rng(1), time_masks=2, time_mask_max=40, freq_masks=0,
                 time_mask_max_ratio=0.1, fill=-5.0)
    masked = (g == -5.0).all(axis=1)
    assert 0 < masked.sum() <= 40 and set(np.unique(g)) <= {1.0, -5.0}
    h = np.ones((50, 10), np.float32)
    spec_augment(h, rng, time_masks=0, freq_masks=0)
    assert (h == 1).all()


def test_specaugment_in_loader_zeroes_whole_bands(corpus):
    aug = Augment(speed_factors=(1.0,), noise_prob=0.0, vtlp_range=(1.0, 1.0), time_masks=0, freq_masks=2,
                  freq_mask_max=10)
    loader = DataLoader([(corpus["a"], 1.0)], CFG, num_workers=0, augment=aug, max_batch=1, seed=2)
    assert any(((b.feats[0] == 0).all(axis=0)).any() for b in _all(loader, 0))


def test_narrowband_empties_the_upper_bands(tmp_path):
    rng = np.random.default_rng(3)
    sf.write(tmp_path / "w.flac", (0.2 * rng.standard_normal(SR)).astype(np.float32), SR, subtype="PCM_16")
    path = _write_manifest(tmp_path / "m.jsonl", [{"id": "w", "audio": "w.flac", "text": "white", "duration": 1.0}])
    cfg = ModelConfig.from_dict({**CFG.to_dict(), "normalization": {"mode": "none"}})
    off = Augment.none()
    on = Augment(speed_factors=(1.0,), noise_prob=0.0, vtlp_range=(1.0, 1.0), time_masks=0, freq_masks=0,
                 narrowband_prob=1.0, narrowband_rates=(8000,))
    (plain,) = _all(DataLoader([(path, 1.0)], cfg, num_workers=0, augment=off), 0)
    (narrow,) = _all(DataLoader([(path, 1.0)], cfg, num_workers=0, augment=on), 0)
    p, n = plain.feats[0].reshape(-1, 80), narrow.feats[0].reshape(-1, 80)   # frames x mels (stacking 2)
    fb = feat_mod.mel_filterbank(cfg.features)                    # mels x fft bins
    mel_hz = np.argmax(fb, axis=1) * SR / cfg.features.n_fft      # peak frequency of each filter
    low, high = mel_hz < 3500, mel_hz > 4300
    assert np.abs(n[:, low] - p[:, low]).mean() < 0.5          # the telephone band is kept
    assert (p[:, high] - n[:, high]).mean() > 5.0              # above 4 kHz: tens of dB down (natural log)
    with pytest.raises(ValueError, match="narrowband_rates"):
        Augment(narrowband_rates=(100,))


def test_narrowband_off_keeps_random_streams(corpus):
    kw = dict(batch_frames=300, max_batch=4, noise_manifest=corpus["noise"], seed=11, num_workers=0)
    a = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=Augment(), **kw), 0)
    b = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=Augment(narrowband_prob=0.0), **kw), 0)
    assert all(_same(x, y) for x, y in zip(a, b))
    assert narrowband(np.zeros(0, np.float32), 16000, 8000).size == 0


def test_vtlp_warp_and_features():
    f = np.linspace(0, 8000, 101)
    for alpha in (0.9, 1.0, 1.1):
        w = vtlp_warp(f, alpha, SR)
        assert w[0] == 0 and np.isclose(w[-1], 8000) and np.all(np.diff(w) > 0)
    assert np.isclose(vtlp_warp(1000.0, 1.1, SR), 1100.0)
    cfg = FeatureConfig()
    x = _tone(1.0, freq=1000.0)
    base = compute_features(x, cfg)
    assert np.array_equal(compute_features_vtlp(x, cfg, 1.0), base)
    # the warped filterbank construction agrees with the front end's own at (almost) no warp
    assert np.allclose(compute_features_vtlp(x, cfg, 1.0004), base, atol=0.05)
    up, down = compute_features_vtlp(x, cfg, 1.1), compute_features_vtlp(x, cfg, 0.9)
    assert up.shape == down.shape == base.shape
    peak = lambda f: int(np.argmax(f[20:80].mean(axis=0)))  # noqa: E731
    assert peak(down) < peak(base) < peak(up)  # the 1 kHz tone moves up the mel axis for alpha > 1
    mfcc = FeatureConfig(kind="mfcc", deltas=1)
    assert compute_features_vtlp(x, mfcc, 1.05).shape == compute_features(x, mfcc).shape
    tables = _vtlp_tables(cfg, 1.1)
    assert tables[8].shape == feat_mod._tables(cfg)[8].shape


# ------------------------------------------------------------------ global statistics


def test_compute_global_stats(corpus):
    mean, std = compute_global_stats([corpus["a"], corpus["b"]], CFG.features)
    assert mean.shape == std.shape == (80,) and mean.dtype == np.float32
    from speechlstm.audio import load_audio

    feats = np.concatenate([compute_features(load_audio(u.audio), CFG.features)
                            for m in (corpus["a"], corpus["b"]) for u in read_manifest(m)[0]])
    assert np.allclose(mean, feats.mean(axis=0), atol=1e-3)
    assert np.allclose(std, feats.std(axis=0), rtol=1e-3, atol=1e-3)
    m2, _ = compute_global_stats([corpus["a"]], CFG.features, max_utterances=3, seed=1)
    assert m2.shape == (80,) and not np.allclose(m2, mean)


def test_global_normalization_in_loader(corpus):
    mean, std = compute_global_stats([corpus["a"]], CFG.features)
    cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    cfg.normalization = {"mode": "global", "mean": mean.tolist(), "std": std.tolist()}
    feats = np.concatenate([b.feats[i, :n] for b in _all(DataLoader([(corpus["a"], 1.0)], cfg, num_workers=0), 0)
                            for i, n in enumerate(b.lengths)])
    assert abs(float(feats.mean())) < 1e-3 and abs(float(feats.std()) - 1) < 1e-2


# ------------------------------------------------------------------ the real data


def test_real_manifests_load_without_skips():
    train = DATA / "real" / "train.jsonl"
    if not train.is_file():
        pytest.skip("shared/data not available")
    loader = DataLoader([(str(train), 1.0), (str(DATA / "real" / "dev.jsonl"), 0.1)], CFG, num_workers=0,
                        augment=Augment(), noise_manifest=str(DATA / "noise" / "noise.jsonl"), epoch_seconds=20.0,
                        max_duration=30.0)
    # every line of both manifests (README: 13,154 train and 1,876 dev clips; the longest is 22.8 s)
    assert len(loader.utterances) == 13154 + 1876
    assert loader.stats == {}
    assert len(loader._noises) == 416 and len(loader._rirs) == 6
    batches = _all(loader, 0)
    assert batches and loader.stats == {}
    sources = {s for b in batches for s in b.sources}
    assert sources <= {"ljspeech", "dctts_recordings", "speechcommands_v0.02_test", "fsdd", "librispeech_train_clean_5",
                       "speechocean762", "an4", "vctk", "common_voice", "mycroft_precise", "librispeech_other_copies",
                       "cmu_arctic"}


# ------------------------------------------------------------------ per-source weights, non-speech, channels


def test_per_source_weights(tmp_path, corpus):
    # one manifest holding both sources: toneset x3, other x0.5 (a half, different each epoch), others x1
    both = _write_manifest(tmp_path / "both.jsonl", [
        {**r, "audio": str(corpus["dir"] / r["audio"])} for r in corpus["a_recs"] + corpus["b_recs"]])
    loader = DataLoader([(both, 1.0, {"sources": {"toneset": 3.0, "other": 0.5}})], CFG, num_workers=0,
                        batch_frames=10 ** 6, max_batch=100, seed=3)
    for e in range(3):
        ids = collections.Counter(loader.utterances[i].id for i in loader._plan(e)[1])
        assert all(ids[f"a{i}"] == 3 for i in range(8))
        assert sorted(ids[f"b{i}"] for i in range(4)) == [0, 0, 1, 1]
    star = DataLoader([(both, 2.0, {"sources": {"*": 0.0, "other": 1.0}})], CFG, num_workers=0, seed=3)
    ids = collections.Counter(star.utterances[i].id for i in star._plan(0)[1])
    assert set(ids) == {f"b{i}" for i in range(4)} and set(ids.values()) == {2}
    with pytest.raises(ValueError, match="unknown manifest option"):
        DataLoader([(both, 1.0, {"source": {}})], CFG, num_workers=0)
    with pytest.raises(ValueError, match="source weight"):
        DataLoader([(both, 1.0, {"sources": {"other": -1}})], CFG, num_workers=0)


def test_nonspeech_manifest_gives_empty_labels(tmp_path, corpus):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(3):
        sf.write(tmp_path / f"n{i}.flac", (0.05 * rng.standard_normal(SR // 2)).astype(np.float32), SR)
        recs.append({"id": f"n{i}", "audio": f"n{i}.flac", "text": "", "duration": 0.5, "source": "nonspeech"})
    ns = _write_manifest(tmp_path / "ns.jsonl", recs)
    plain = DataLoader([(ns, 1.0)], CFG, num_workers=0)
    assert plain.utterances == [] and plain.stats["empty text"] == 3  # empty transcripts stay out by default
    loader = DataLoader([(corpus["a"], 1.0), (ns, 1.0, {"nonspeech": True})], CFG, num_workers=0,
                        batch_frames=10 ** 6, max_batch=100)
    (batch,) = _all(loader, 0)
    empty = [i for i, u in enumerate(batch.ids) if u.startswith("n")]
    assert len(empty) == 3 and all(batch.label_lengths[i] == 0 for i in empty)
    assert all(batch.label_lengths[i] > 0 for i in range(batch.size) if i not in empty)
    # CTC of an empty label is finite: -sum log p(blank)
    from speechlstm.network import init_params, forward_backward

    params = init_params(CFG, 0)
    losses, _ = forward_backward(params, CFG, batch.feats, batch.lengths, batch.labels, batch.label_lengths)[:2]
    assert np.isfinite(np.asarray(losses)).all()


@pytest.mark.parametrize("codec", ["opus", "mp3", "gsm"])
def test_codec_roundtrip_keeps_length_and_degrades(codec):
    from speechlstm.data import codec_roundtrip

    t = np.arange(SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    y = codec_roundtrip(x, SR, codec, 0.3)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    spec_x, spec_y = np.abs(np.fft.rfft(x[4000:12000])), np.abs(np.fft.rfft(y[4000:12000]))
    assert spec_y[220] > 0.3 * spec_x[220]          # the 440 Hz tone survives every codec
    assert not np.allclose(x, y, atol=1e-3)          # ... but the signal is not the same
    if codec == "gsm":                               # GSM runs at 8 kHz: 6 kHz is gone
        assert spec_y[3000] < 0.05 * spec_x[3000]
    with pytest.raises(ValueError, match="unknown codec"):
        codec_roundtrip(x, SR, "aac")


def test_simulated_rir_and_eq_tilt():
    from speechlstm.data import eq_tilt, simulated_rir

    rng = np.random.default_rng(1)
    short, long = simulated_rir(rng, SR, 0.2), simulated_rir(rng, SR, 0.8)
    assert short.size == int(0.2 * SR) and long.size == int(0.8 * SR) and short[0] == long[0] == 1.0

    def decay_db(h):  # energy of the last quarter against the first quarter
        q = h.size // 4
        return 10 * np.log10(np.sum(h[-q:] ** 2) / np.sum(h[1:q] ** 2))
    assert decay_db(short) < -20 and decay_db(long) < -20
    x = rng.standard_normal(SR).astype(np.float32)
    for tilt in (-6.0, 6.0):
        y = eq_tilt(x, SR, tilt)
        assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(np.mean(x.astype(np.float64) ** 2), rel=1e-4)
        s = np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x))
        assert (s[4000] > s[250]) == (tilt > 0)
    assert np.array_equal(eq_tilt(x, SR, 0.0), x)


def test_channel_augmentation_in_loader(corpus):
    kw = dict(batch_frames=10 ** 6, max_batch=100, noise_manifest=corpus["noise"], seed=4, num_workers=0)
    base = dict(speed_factors=(1.0,), noise_prob=0.0, vtlp_range=(1.0, 1.0), time_masks=0, freq_masks=0)
    (plain,) = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=Augment(**base), **kw), 0)
    on = Augment(**base, sim_rir_prob=1.0, babble_prob=1.0, babble_speakers=(1, 2), gain_db=(-10.0, 3.0),
                 eq_tilt_prob=1.0, codec_prob=1.0, codecs=("mp3", "gsm"))
    (aug,) = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=on, **kw), 0)
    (again,) = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=on, **kw), 0)
    assert aug.ids == plain.ids and np.array_equal(aug.lengths, plain.lengths)
    assert np.isfinite(aug.feats).all() and not np.allclose(aug.feats, plain.feats)
    assert _same(aug, again)  # deterministic given (seed, epoch)
    with pytest.raises(ValueError, match="codecs"):
        Augment(codecs=("aac",))
    with pytest.raises(ValueError, match="babble_speakers"):
        Augment(babble_speakers=(0, 2))
    with pytest.raises(ValueError, match="rt60_range"):
        Augment(rt60_range=(0.5, 9.0))


def test_channel_augmentation_off_keeps_random_streams(corpus):
    kw = dict(batch_frames=300, max_batch=4, noise_manifest=corpus["noise"], seed=11, num_workers=0)
    a = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=Augment(), **kw), 0)
    b = _all(DataLoader([(corpus["a"], 1.0)], CFG, augment=Augment(codec_prob=0.0, babble_prob=0.0), **kw), 0)
    assert all(_same(x, y) for x, y in zip(a, b))


def test_without_source_weights_a_manifest_stays_one_group(tmp_path, corpus):
    # 8 + 4 clips of two sources at weight 0.5: one random half of all 12 (older recipes keep their batches)
    both = _write_manifest(tmp_path / "both.jsonl", [
        {**r, "audio": str(corpus["dir"] / r["audio"])} for r in corpus["a_recs"] + corpus["b_recs"]])
    loader = DataLoader([(both, 0.5)], CFG, num_workers=0, seed=5)
    assert len(loader._groups) == 1 and loader._plan(0)[1].size == 6
    split = DataLoader([(both, 0.5, {"sources": {"*": 1.0}})], CFG, num_workers=0, seed=5)
    assert len(split._groups) == 2 and split._plan(0)[1].size == 6  # 4 + 2
