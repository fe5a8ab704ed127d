"""tools/make_nonspeech.py (non-speech clips with empty transcripts) and tools/evaluate_nonspeech.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from speechlstm.data import DataLoader
from speechlstm.model import ModelConfig

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import make_nonspeech  # noqa: E402


def test_every_kind_is_finite_bounded_and_of_the_right_length(tmp_path):
    rng = np.random.default_rng(0)
    noise = tmp_path / "n.flac"
    sf.write(noise, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    for kind in make_nonspeech.KINDS:
        x = make_nonspeech.make_clip(rng, kind, 1.5, [str(noise)])
        assert x.shape == (24000,) and np.isfinite(x).all(), kind
        assert np.abs(x).max() <= 1.5, kind  # clipped to [-1, 1] when written
    # 'background' without noise files falls back to coloured noise
    assert make_nonspeech.make_clip(rng, "background", 0.5, []).shape == (8000,)


def test_cli_writes_clips_and_manifest_that_train_as_nonspeech(tmp_path):
    out = tmp_path / "ns"
    r = subprocess.run([sys.executable, str(TOOLS / "make_nonspeech.py"), "--out", str(out), "--clips", "12",
                        "--seed", "3", "--max-seconds", "2", "--kinds", "silence", "white", "hum", "clicks"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    assert len(rows) == 12 and {r["kind"] for r in rows} <= {"silence", "white", "hum", "clicks"}
    for row in rows:
        info = sf.info(out / row["audio"])
        assert row["text"] == "" and info.samplerate == 16000 and 0.5 <= info.duration <= 2.0
        assert abs(info.duration - row["duration"]) < 1e-3
    cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    loader = DataLoader([(str(out / "manifest.jsonl"), 1.0, {"nonspeech": True})], cfg, num_workers=0)
    assert len(loader.utterances) == 12
    assert all(b.label_lengths.max() == 0 for b in loader.epoch(0))
    bad = subprocess.run([sys.executable, str(TOOLS / "make_nonspeech.py"), "--out", str(out), "--clips", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_evaluate_nonspeech_counts_empty_transcripts(tmp_path, burst_model_dir):
    out = tmp_path / "ns"
    assert make_nonspeech.main(["--out", str(out), "--clips", "6", "--seed", "5", "--max-seconds", "1.5",
                                "--kinds", "silence", "white", "pink", "hum"]) == 0
    # make the clips steady (no fades) so that the gate alone decides: the burst model says "a" in any noise
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    rng = np.random.default_rng(1)
    for row in rows:
        sf.write(out / row["audio"], (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    r = subprocess.run([sys.executable, str(TOOLS / "evaluate_nonspeech.py"), str(burst_model_dir),
                        str(out / "manifest.jsonl"), "--json", str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"clips": 6, "empty_rate": 1.0, "vad": True}
    r = subprocess.run([sys.executable, str(TOOLS / "evaluate_nonspeech.py"), str(burst_model_dir),
                        str(out / "manifest.jsonl"), "--no-vad", "--show", "0"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["empty_rate"] < 0.5
