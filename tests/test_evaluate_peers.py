"""tools/evaluate_peers.py: the pocketsphinx hypothesis cache (no pocketsphinx needed: a stand-in engine)."""

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import evaluate_peers  # noqa: E402


class FakeSphinx:
    calls = 0
    name = "pocketsphinx"

    def transcribe(self, samples16):
        FakeSphinx.calls += 1
        assert samples16.dtype == np.int16
        return "yes" if samples16.size > 8000 else "no"


def test_peer_cache_reuses_and_extends(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate_peers, "PocketSphinx", FakeSphinx)
    rows = []
    for i, n in enumerate([12000, 4000, 16000]):
        sf.write(tmp_path / f"{i}.flac", np.zeros(n, np.float32), 16000)
        rows.append({"id": f"u{i}", "audio": f"{i}.flac", "text": "yes", "duration": n / 16000, "source": "s"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    cache = tmp_path / "ps.jsonl"
    first = evaluate_peers.evaluate(str(manifest), engines=("pocketsphinx",), peer_cache=str(cache))
    assert FakeSphinx.calls == 2 and len(cache.read_text().splitlines()) == 2
    assert first["engines"]["pocketsphinx"]["wer"] == 0.5
    again = evaluate_peers.evaluate(str(manifest), engines=("pocketsphinx",), peer_cache=str(cache))
    assert FakeSphinx.calls == 2  # all cached
    assert again["engines"]["pocketsphinx"] == first["engines"]["pocketsphinx"]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(cache, "a") as f:
        f.write("not json\n")  # a torn last line (a killed run) is skipped
    evaluate_peers.evaluate(str(manifest), engines=("pocketsphinx",), peer_cache=str(cache))
    assert FakeSphinx.calls == 3  # only the new utterance
    assert len([x for x in cache.read_text().splitlines() if x.startswith("{")]) == 3
