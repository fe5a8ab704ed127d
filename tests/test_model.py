"""Model directory format: save/load round trip and validation messages."""

import json

import numpy as np
import pytest

from speechlstm.errors import ModelError
from speechlstm.model import AcousticModel, ModelConfig, load_model, random_weights, save_model


@pytest.fixture()
def model_dir(tmp_path):
    cfg = ModelConfig.example(hidden_size=12, num_layers=2, frame_stacking=2)
    d = tmp_path / "m"
    save_model(d, cfg, random_weights(cfg, seed=1))
    return d


def _edit_config(d, fn):
    p = d / "config.json"
    cfg = json.loads(p.read_text())
    fn(cfg)
    p.write_text(json.dumps(cfg))


def test_round_trip(model_dir):
    m = load_model(model_dir)
    cfg = m.config
    assert cfg.architecture.hidden_size == 12 and cfg.architecture.frame_stacking == 2
    assert cfg.tokens[0] == "<blank>" and cfg.num_outputs == 29
    expected = sum(int(np.prod(s)) for s in cfg.expected_shapes().values())
    assert m.num_parameters == expected
    assert "parameters:" in m.summary() and f"{expected:,}" in m.summary()
    # frame stacking x2 at a 10 ms hop -> 20 ms output frames
    assert cfg.frame_seconds == pytest.approx(0.02)


def test_float16_weights_load(tmp_path):
    cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    w = random_weights(cfg)
    save_model(tmp_path, cfg, w, dtype=np.float16)
    m = load_model(tmp_path)
    for k, v in w.items():
        assert m.weights[k].dtype == np.float32
        np.testing.assert_allclose(m.weights[k], v, atol=1e-3)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("tokens"), "missing field 'tokens'"),
        (lambda c: c.update(format_version=99), "unsupported format_version 99"),
        (lambda c: c.update(format="other"), "'format' must be"),
        (lambda c: c["architecture"].update(hidden_size=0), "architecture.hidden_size must be a positive integer"),
        (lambda c: c["architecture"].update(type="gru"), "architecture.type must be 'bilstm'"),
        (lambda c: c["architecture"].update(input_dim=13), "does not match the feature dimension"),
        (lambda c: c.update(sample_rate=8000), "must equal features.sample_rate"),
        (lambda c: c.update(blank_index=500), "'blank_index' must be an integer"),
        (lambda c: c.update(tokens=["<blank>", "a", "a"]), "duplicate"),
        (lambda c: c.update(normalization={"mode": "global", "mean": [0.0], "std": [1.0]}),
         "normalization.mean must be a list of 80 numbers"),
        (lambda c: c.update(normalization={"mode": "whiten"}), "normalization.mode must be one of"),
        (lambda c: c["features"].update(hop_length=-1), "features.hop_length"),
        (lambda c: c.update(weights="../x.npz"), "'weights' must be a file name"),
    ],
)
def test_config_validation_names_the_field(model_dir, edit, message):
    _edit_config(model_dir, edit)
    with pytest.raises(ModelError) as exc:
        load_model(model_dir)
    assert message in str(exc.value)
    assert "config.json" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_and_corrupt_files(model_dir, tmp_path):
    with pytest.raises(ModelError, match="no such model directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="is a directory holding config.json"):
        load_model(tmp_path / "file")
    (model_dir / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(model_dir)


def test_weights_missing_corrupt_mismatched(model_dir):
    w = model_dir / "weights.npz"
    good = w.read_bytes()
    w.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="weights.npz: corrupt"):
        load_model(model_dir)
    w.unlink()
    with pytest.raises(ModelError, match="missing weights file"):
        load_model(model_dir)

    cfg = ModelConfig.example(hidden_size=12, num_layers=2, frame_stacking=2)
    weights = random_weights(cfg)
    bad = dict(weights)
    bad["lstm.1.bw.w_hh"] = np.zeros((48, 13), np.float32)
    np.savez(w, **bad)
    with pytest.raises(ModelError, match=r"'lstm.1.bw.w_hh' has shape \(48, 13\), config.json implies \(48, 12\)"):
        load_model(model_dir)
    bad = dict(weights)
    del bad["output.bias"]
    np.savez(w, **bad)
    with pytest.raises(ModelError, match="missing array.*output.bias"):
        load_model(model_dir)
    bad = dict(weights, extra=np.zeros(3, np.float32))
    np.savez(w, **bad)
    with pytest.raises(ModelError, match="unexpected array.*extra"):
        load_model(model_dir)
    bad = dict(weights)
    bad["output.bias"] = np.full(29, np.nan, np.float32)
    np.savez(w, **bad)
    with pytest.raises(ModelError, match="NaN"):
        load_model(model_dir)
    bad = dict(weights)
    bad["output.bias"] = np.zeros(29, np.int64)
    np.savez(w, **bad)
    with pytest.raises(ModelError, match="dtype int64"):
        load_model(model_dir)


def test_log_probs_shapes_and_batch_independence():
    cfg = ModelConfig.example(hidden_size=10, num_layers=2, frame_stacking=3)
    m = AcousticModel(cfg, random_weights(cfg, seed=3))
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, cfg.features.dim)).astype(np.float32) for n in (7, 31, 1)]
    together = m.log_probs(feats)
    assert [lp.shape for lp in together] == [(3, 29), (11, 29), (1, 29)]
    for f, lp in zip(feats, together):
        alone = m.log_probs([f])[0]
        np.testing.assert_array_equal(alone, lp)
        np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-5)
