"""End-to-end learning: train a tiny model on a synthetic task with the real pipeline, then decode held-out clips.

The task (generated here, no downloads): texts of 1-4 letters from {a, b, c}, some separated by spaces into
words. Every letter is a tone burst of its own frequency (a: 440 Hz, b: 1000 Hz, c: 2200 Hz) and every space a
white-noise burst; bursts last 80-160 ms, with 60-150 ms of near-silence between them, random amplitude, random
lead-in/out and a little background noise. Clips (0.2-2.5 s) are written as FLAC with a JSON Lines manifest.

The model (1 BiLSTM layer, hidden 24, frame stacking 3, 20 log-mel bands) is trained by ``speechlstm.trainer``
with the real ``DataLoader``, ``network.forward_backward``, CTC loss and Adam, exported with ``save_model`` and
run through the engine's ``Recognizer``: it must reach a CER below ``CER_BOUND`` on held-out clips. A second
test checks that training N steps straight and N/2 + resume + N/2 give bitwise-identical parameters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000
TONES = {"a": 440.0, "b": 1000.0, "c": 2200.0}
GAP = (0.06, 0.15)  # seconds of near-silence between bursts: at least two output frames
CER_BOUND = 0.10  # held-out character error rate the tiny model must beat (measured: 0-1 % over 12 seeds)
EPOCHS = 12  # 16 batches each
REPO = Path(__file__).resolve().parents[1]


def render(text: str, rng: np.random.Generator) -> np.ndarray:
    """Audio of a synthetic text: a tone burst per letter, a noise burst per space, silence in between."""
    parts = [np.zeros(int(rng.uniform(0.05, 0.25) * SR))]
    for i, ch in enumerate(text):
        if i:
            parts.append(np.zeros(int(rng.uniform(*GAP) * SR)))
        n = int(rng.uniform(0.08, 0.16) * SR)
        t = np.arange(n) / SR
        if ch == " ":
            burst = rng.standard_normal(n) * 0.5
        else:
            f = TONES[ch] * rng.uniform(0.97, 1.03)
            burst = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * SR))
        parts.append(burst * ramp * rng.uniform(0.1, 0.5))
    parts.append(np.zeros(int(rng.uniform(0.05, 0.25) * SR)))
    x = np.concatenate(parts)
    x = x + rng.standard_normal(x.size) * 0.002
    return x.astype(np.float32)


def random_text(rng: np.random.Generator) -> str:
    letters = rng.choice(list(TONES), size=int(rng.integers(1, 5)))
    out = letters[0]
    for ch in letters[1:]:
        out += (" " if rng.random() < 0.3 else "") + ch
    return str(out)


def make_dataset(folder: Path, n: int, seed: int, name: str) -> Path:
    """Write ``n`` clips as FLAC and a manifest ``folder/name.jsonl``; returns the manifest path."""
    rng = np.random.default_rng(seed)
    audio = folder / name
    audio.mkdir(parents=True, exist_ok=True)
    manifest = folder / f"{name}.jsonl"
    with open(manifest, "w", encoding="utf-8") as f:
        for i in range(n):
            text = random_text(rng)
            x = render(text, rng)
            rel = f"{name}/{i:04d}.flac"
            sf.write(folder / rel, x, SR, subtype="PCM_16")
            f.write(json.dumps({"id": f"{name}_{i:04d}", "audio": rel, "text": text, "duration": round(x.size / SR, 3),
                                "sample_rate": SR, "source": f"synthetic_{name}", "speaker": None}) + "\n")
    return manifest


def tiny_recipe(train: Path, dev: Path | None, epochs: int, num_layers: int = 1, **optim) -> dict:
    return {
        "name": "synthetic-tones",
        "seed": 7,
        "model": {"hidden_size": 24, "num_layers": num_layers, "frame_stacking": 3,
                  "features": {"n_mels": 20}, "normalization": "utterance"},
        "data": {"train": [[str(train), 1.0]], "dev": str(dev) if dev else None, "batch_frames": 2400,
                 "max_batch": 16, "num_workers": 0, "max_duration": 5.0},
        "optim": {"lr": 0.02, "warmup_steps": 10, "decay": "cosine", "min_lr": 1e-3, "clip_norm": 5.0,
                  **optim},
        "run": {"epochs": epochs, "checkpoint_minutes": 60.0, "log_every": 5},
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("synthetic")
    return {"dir": d, "train": make_dataset(d, 240, seed=1, name="train"),
            "dev": make_dataset(d, 30, seed=2, name="dev"), "test": make_dataset(d, 40, seed=3, name="test")}


def test_tiny_model_learns_synthetic_task(synthetic, tmp_path):
    from speechlstm.metrics import ErrorCounter
    from speechlstm.trainer import Trainer
    from speechlstm.transcribe import Recognizer

    run = tmp_path / "run"
    trainer = Trainer(tiny_recipe(synthetic["train"], synthetic["dev"], epochs=EPOCHS), run, verbose=False)
    result = trainer.train()
    assert result["status"] == "finished"
    hist = result["history"]
    assert len(hist) == EPOCHS
    assert float(hist[-1]["loss"]) < 0.5 * float(hist[0]["loss"])

    rec = Recognizer(result["model_dir"], beam_width=1)
    counter = ErrorCounter()
    with open(synthetic["test"], encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    for it in items:
        counter.add(it["text"], rec.transcribe(synthetic["dir"] / it["audio"]).text)
    assert counter.cer < CER_BOUND, counter.to_dict()

    # the run directory: epoch log, model card, engine-format model
    with open(run / "log.csv", encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    assert header.split(",")[:7] == ["epoch", "step", "loss", "lr", "grad_norm", "dev_cer", "dev_wer"]
    assert len(rows) == EPOCHS
    card = (run / "model" / "README.md").read_text()
    assert "CER" in card and "Dev curve" in card
    # the per-source dev curve
    import csv

    with open(run / "dev.csv", encoding="utf-8", newline="") as f:
        dev_rows = list(csv.DictReader(f))
    overall = [r for r in dev_rows if r["source"] == "all"]
    assert [int(r["epoch"]) for r in overall] == list(range(EPOCHS))
    assert [float(r["cer"]) for r in overall] == pytest.approx([float(h["dev_cer"]) for h in hist], rel=1e-5)
    assert {r["source"] for r in dev_rows} == {"all", "synthetic_dev"}

    # tools/evaluate.py on the exported model: JSON summary on the last line
    out = subprocess.run([sys.executable, str(REPO / "tools" / "evaluate.py"), str(run / "model"),
                          str(synthetic["test"]), "--beam", "4", "--worst", "3"],
                         capture_output=True, text=True, check=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["n"] == len(items) and len(summary["worst"]) == 3
    assert summary["greedy"]["cer"] == pytest.approx(counter.cer, abs=1e-9)
    assert summary["beam"]["cer"] < CER_BOUND
    assert list(summary["per_source"]) == ["synthetic_test"]


def test_resume_is_bitwise_exact(synthetic, tmp_path):
    from speechlstm.trainer import Trainer, load_checkpoint

    recipe = tiny_recipe(synthetic["train"], None, epochs=2, num_layers=2, dropout=0.2)  # dropout needs 2 layers
    straight = Trainer(recipe, tmp_path / "straight", verbose=False)
    n_batches = straight.schedule.total_steps // 2  # batches per epoch
    total = n_batches + n_batches // 2 + 1  # ends mid-epoch 1; the split point is mid-epoch 0
    half = n_batches // 2 + 1
    assert straight.train(max_steps=total)["status"] == "max_steps"

    first = Trainer(recipe, tmp_path / "split", verbose=False)
    r1 = first.train(max_steps=half)
    assert r1["status"] == "max_steps" and r1["epoch"] == 0 and 0 < r1["batch"] < n_batches
    resumed = Trainer.resume(tmp_path / "split", verbose=False)
    assert resumed.state["step"] == half
    assert resumed.train(max_steps=total)["status"] == "max_steps"

    meta_a, pa, ma, va = load_checkpoint(tmp_path / "straight")
    meta_b, pb, mb, vb = load_checkpoint(tmp_path / "split")
    assert meta_a["state"]["step"] == meta_b["state"]["step"] == total
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
        assert np.array_equal(ma[k], mb[k]) and np.array_equal(va[k], vb[k]), k
    assert meta_a["state"]["history"][0]["loss"] == meta_b["state"]["history"][0]["loss"]

    def step_rows(run):  # steps.csv without the wall-clock column: no row lost or repeated by the resume
        text = (tmp_path / run / "steps.csv").read_text(encoding="utf-8").splitlines()
        return [line.rsplit(",", 1)[0] for line in text]

    assert step_rows("straight") == step_rows("split") and len(step_rows("split")) > 3


def test_warm_start_from_a_model_directory(synthetic, tmp_path):
    from speechlstm.model import load_model
    from speechlstm.trainer import Trainer

    first = Trainer(tiny_recipe(synthetic["train"], None, epochs=1), tmp_path / "a", verbose=False)
    model_dir = Path(first.train()["model_dir"])
    exported = load_model(model_dir)

    recipe = tiny_recipe(synthetic["train"], None, epochs=1, lr=0.005)
    recipe["model"]["init"] = str(model_dir)
    second = Trainer(recipe, tmp_path / "b", verbose=False)
    for k, w in exported.weights.items():                  # starts exactly at the exported weights
        assert np.array_equal(second.params[k], np.asarray(w, np.float32)), k
    assert second.config.normalization == exported.config.normalization
    assert second.train()["status"] == "finished"

    # a wider recipe grows the model: same outputs at the start, and the new units learn
    from speechlstm.network import forward_log_probs

    wide_recipe = tiny_recipe(synthetic["train"], None, epochs=1, lr=0.005)
    wide_recipe["model"].update(init=str(model_dir), hidden_size=32)
    wide = Trainer(wide_recipe, tmp_path / "wide", verbose=False)
    assert wide.params["lstm.0.fw.w_hh"].shape == (128, 32)
    x = np.random.default_rng(3).standard_normal((2, 30, exported.config.architecture.input_dim)).astype(np.float32)
    lengths = np.array([30, 21])
    lp_narrow, _ = forward_log_probs(exported.weights, exported.config, x, lengths)
    lp_wide, _ = forward_log_probs(wide.params, wide.config, x, lengths)
    np.testing.assert_allclose(lp_wide, lp_narrow, atol=1e-5)
    new_cols = np.r_[24:32, 56:64]
    assert not wide.params["output.weight"][:, new_cols].any()
    assert wide.train()["status"] == "finished"
    assert np.abs(wide.params["output.weight"][:, new_cols]).max() > 1e-4   # the new units are used now

    bad = tiny_recipe(synthetic["train"], None, epochs=1)
    bad["model"]["hidden_size"] = 16  # narrower than the init model: refused
    bad["model"]["init"] = str(model_dir)
    with pytest.raises(ValueError, match="architecture differ"):
        Trainer(bad, tmp_path / "c", verbose=False)
    bad["model"]["hidden_size"] = 24
    bad["model"]["init"] = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no such model directory"):
        Trainer(bad, tmp_path / "d", verbose=False)


def test_nonfinite_batches_are_skipped_then_stop(synthetic, tmp_path, monkeypatch):
    from speechlstm import network
    from speechlstm.trainer import CHECKPOINT, Trainer, TrainingDiverged

    recipe = tiny_recipe(synthetic["train"], None, epochs=1)
    recipe["run"]["max_nonfinite"] = 3
    tr = Trainer(recipe, tmp_path / "nan", verbose=False)
    tr.train(max_steps=2)
    before = (tmp_path / "nan" / CHECKPOINT).read_bytes()
    real = network.forward_backward
    calls = {"n": 0}

    def flaky(*args, **kw):
        losses, grads = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 1 or calls["n"] >= 3:  # one bad batch (skipped), one good, then bad ones
            losses = losses.copy()
            losses[0] = np.nan
        return losses, grads

    monkeypatch.setattr(network, "forward_backward", flaky)
    tr2 = Trainer.resume(tmp_path / "nan", verbose=False)
    params_before = {k: v.copy() for k, v in tr2.params.items()}
    with pytest.raises(TrainingDiverged):
        tr2.train()
    assert tr2.state["step"] == 3  # only the good batch made a step
    assert tr2.state["totals"]["skipped"] == 4
    assert any(not np.array_equal(params_before[k], tr2.params[k]) for k in params_before)
    assert (tmp_path / "nan" / CHECKPOINT).read_bytes() == before  # last good checkpoint untouched
    assert "non-finite" in (tmp_path / "nan" / "train.log").read_text()


def test_train_cli_new_run_refuse_resume(synthetic, tmp_path):
    # a small manifest next to the recipe, referenced by a relative path
    lines = Path(synthetic["train"]).read_text(encoding="utf-8").splitlines()[:40]
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(json.dumps({**json.loads(x), "audio": str(synthetic["dir"] / json.loads(x)["audio"])})
                               for x in lines) + "\n", encoding="utf-8")
    recipe = tiny_recipe(Path("small.jsonl"), None, epochs=1)
    recipe["model"]["normalization"] = "global"  # statistics computed once, stored in checkpoint and model
    (tmp_path / "r.json").write_text(json.dumps(recipe), encoding="utf-8")
    run = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--run-dir", str(run), "--no-progress", "--quiet"]

    p = subprocess.run(cmd + ["--recipe", str(tmp_path / "r.json"), "--max-steps", "2", "--seed", "3"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout.strip().splitlines()[-1])
    assert first["status"] == "max_steps" and first["step"] == 2
    p = subprocess.run(cmd + ["--recipe", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert p.returncode == 1 and "--resume" in p.stderr  # an existing checkpoint is never overwritten
    p = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout.strip().splitlines()[-1])
    assert done["status"] == "finished" and done["epoch"] == 1 and done["step"] > 2
    from speechlstm.model import load_model
    from speechlstm.trainer import load_checkpoint

    cfg = load_model(done["model_dir"]).config
    assert cfg.name == "synthetic-tones"
    assert cfg.normalization["mode"] == "global" and len(cfg.normalization["std"]) == 20
    assert load_checkpoint(run)[0]["recipe"]["seed"] == 3
    # a float16 copy of the final model
    half = tmp_path / "half"
    p = subprocess.run(cmd + ["--export-only", "--export", str(half), "--export-dtype", "float16"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with np.load(half / "weights.npz") as z:
        assert {z[k].dtype for k in z.files} == {np.dtype(np.float16)}
    full = load_model(done["model_dir"]).weights
    for k, w in load_model(half).weights.items():
        assert np.allclose(w, full[k], rtol=1e-3, atol=1e-3), k
    # an export with its word LM: the recognizer's default lm.bin; a bad LM is refused before anything runs
    from speechlstm.lm import build_lm, write_arpa

    arpa = tmp_path / "words.arpa"
    write_arpa(build_lm([["b", "a"], ["a", "b", "c"]], order=2), arpa)
    with_lm = tmp_path / "with_lm"
    p = subprocess.run(cmd + ["--export-only", "--export", str(with_lm), "--export-lm", str(arpa)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    from speechlstm.decoding import load_lm

    assert load_lm(with_lm / "lm.bin").vocab == load_lm(arpa).vocab
    for bad in (["--export", str(tmp_path / "x"), "--export-lm", str(tmp_path / "nowhere.arpa")],
                ["--export-lm", str(arpa)]):
        p = subprocess.run(cmd + ["--export-only"] + bad, capture_output=True, text=True)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "x").exists()


def test_sweep_trains_each_variant_once(synthetic, tmp_path):
    recipe = tiny_recipe(synthetic["train"], synthetic["dev"], epochs=1)
    (tmp_path / "r.json").write_text(json.dumps(recipe), encoding="utf-8")
    cmd = [sys.executable, str(REPO / "tools" / "sweep.py"), "--recipe", str(tmp_path / "r.json"),
           "--out", str(tmp_path / "sw"), "--steps", "6", "--epochs", "1", "--seconds-per-step", "4",
           "--workers", "0", "--variant", "base=", "--variant", "h16=model.hidden_size=16;model.frame_stacking=2"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [(r["name"], r["hidden_size"], r["frame_ms"]) for r in rows] == [("base", 24, 30), ("h16", 16, 20)]
    assert all(0 < r["steps"] <= 12 and 0.0 <= r["dev_cer"] <= 1.5 for r in rows)
    assert "| h16 | 1 x 16 | 20 ms |" in p.stdout
    again = subprocess.run(cmd, capture_output=True, text=True)   # finished variants are not trained again
    assert again.returncode == 0 and "[sweep]" not in again.stderr


def test_nonspeech_clips_and_source_weights_in_a_run(synthetic, tmp_path, monkeypatch):
    """A recipe with per-source weights and a non-speech manifest trains; empty labels count one token each."""
    from speechlstm import trainer as trainer_mod
    from speechlstm.trainer import Trainer

    rng = np.random.default_rng(4)
    ns_dir = tmp_path / "ns"
    ns_dir.mkdir()
    with open(ns_dir / "ns.jsonl", "w", encoding="utf-8") as f:
        for i in range(12):
            x = (rng.standard_normal(int(rng.uniform(0.3, 1.5) * SR)) * rng.uniform(0.001, 0.2)).astype(np.float32)
            sf.write(ns_dir / f"{i}.flac", x, SR, subtype="PCM_16")
            f.write(json.dumps({"id": f"ns{i}", "audio": f"{i}.flac", "text": "", "duration": round(x.size / SR, 3),
                                "source": "nonspeech"}) + "\n")
    recipe = tiny_recipe(synthetic["train"], None, epochs=1)
    recipe["data"]["train"] = [[str(synthetic["train"]), 1.0, {"sources": {"synthetic_train": 0.5}}],
                               [str(ns_dir / "ns.jsonl"), 1.0, {"nonspeech": True}]]
    seen = []
    real_clip = trainer_mod.clip_global_norm

    def spy(grads, max_norm, scale=1.0):
        seen.append(scale)
        return real_clip(grads, max_norm, scale=scale)
    monkeypatch.setattr(trainer_mod, "clip_global_norm", spy)
    tr = Trainer(recipe, tmp_path / "run", verbose=False)
    counts = {}
    for b in tr._make_loader().epoch(0):
        n_empty = int(np.sum(b.label_lengths == 0))
        counts[b.index] = int(b.label_lengths.sum()) + n_empty
        for uid, src in zip(b.ids, b.sources):
            assert (src == "nonspeech") == uid.startswith("ns")
    assert sum(1 for b in tr._make_loader().epoch(0) for s in b.sources if s == "nonspeech") == 12
    assert sum(1 for b in tr._make_loader().epoch(0) for s in b.sources if s != "nonspeech") == 120  # half of 240
    out = tr.train()
    assert out["status"] == "finished"
    assert sorted(round(1 / s) for s in seen) == sorted(counts.values())


def test_widen_params_keeps_what_a_deep_model_computes():
    from speechlstm.model import ModelConfig
    from speechlstm.network import forward_log_probs, init_params
    from speechlstm.trainer import widen_params

    narrow_cfg = ModelConfig.example(hidden_size=8, num_layers=3)
    wide_cfg = ModelConfig.example(hidden_size=13, num_layers=3)
    narrow = init_params(narrow_cfg, seed=0)
    narrow["output.weight"] *= 4.0  # a peaked output, so that differences would show
    wide = widen_params(narrow, 8, init_params(wide_cfg, seed=1), 13, 3)
    assert {k: v.shape for k, v in wide.items()} == {k: tuple(s) for k, s in wide_cfg.expected_shapes().items()}
    x = np.random.default_rng(0).standard_normal((3, 40, narrow_cfg.architecture.input_dim)).astype(np.float32)
    lengths = np.array([40, 33, 7])
    a, _ = forward_log_probs(narrow, narrow_cfg, x, lengths)
    b, _ = forward_log_probs(wide, wide_cfg, x, lengths)
    np.testing.assert_allclose(b, a, atol=1e-5)
    # the new units are live (random inputs), and the gate blocks kept their order
    assert np.abs(wide["lstm.1.bw.w_ih"][8:13]).max() > 0
    np.testing.assert_array_equal(wide["lstm.2.fw.w_hh"][13 * 2:13 * 2 + 8, :8], narrow["lstm.2.fw.w_hh"][16:24])
    with pytest.raises(ValueError, match="cannot narrow"):
        widen_params(wide, 13, narrow, 8, 3)
