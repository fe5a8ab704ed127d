"""Tests of tools/make_corpus.py (tiny TTS runs; skipped when no TTS engine is installed)."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "tools" / "make_corpus.py")
mc = importlib.util.module_from_spec(_spec)
sys.modules["make_corpus"] = mc  # dataclasses and multiprocessing pickling look the module up by name
_spec.loader.exec_module(mc)

SHARED_FIELDS = ("id", "audio", "text", "raw_text", "speaker", "duration", "sample_rate", "source", "license")


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """A small private sentence folder (tests do not depend on the shared data)."""
    d = tmp_path_factory.mktemp("text")
    (d / "a.txt").write_text("hello world\nthe cat sat on the mat\nBad Line 123\n"
                             "this sentence is far too long to be used by the tiny test run at all ok\n")
    (d / "b.txt").write_text("one two three\nit's a fine day\n")
    return d


def _installed():
    return {e: v for e, v in mc.discover_voices().items() if v}


def _small_voices(installed):
    """A few voices per installed engine, keeping the run fast."""
    out = {}
    for e, vs in installed.items():
        out[e] = vs[:1] + vs[-1:] if len(vs) > 1 else vs
    return out


def _read(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_install_hint_and_helpers(text_dir):
    assert mc.install_hint().startswith("apt-get install") and "espeak-ng" in mc.install_hint()
    texts = mc.load_sentences(text_dir, None, max_words=8)
    assert [t[0] for t in texts] == ["a", "b"]
    assert texts[0][2] == ["hello world", "the cat sat on the mat"]
    assert mc.load_sentences(text_dir, {"b": 1.0}, max_words=8)[0][0] == "b"
    v = mc.Voice("espeak-ng", "en-us", "Andrea")
    assert v.speaker == "espeak-ng:en-us+Andrea"
    assert mc.is_held_out(v, ["espeak-ng:*+Andrea"]) and not mc.is_held_out(v, ["flite:*"])


def test_plan_is_deterministic(text_dir):
    voices = {"espeak-ng": [mc.Voice("espeak-ng", "en-us"), mc.Voice("espeak-ng", "en-gb", "m1")],
              "flite": [mc.Voice("flite", "slt")]}
    texts = mc.load_sentences(text_dir, None, max_words=8)
    w = {"espeak-ng": 1.0, "flite": 1.0}
    a = [mc.plan_utterance(i, 3, voices, w, texts) for i in range(50)]
    b = [mc.plan_utterance(i, 3, voices, w, texts) for i in reversed(range(50))][::-1]
    c = [mc.plan_utterance(i, 4, voices, w, texts) for i in range(50)]
    assert a == b and a != c
    assert {u.voice.engine for u in a} == {"espeak-ng", "flite"}
    assert all(0.8 <= u.rate <= 1.25 for u in a)
    with pytest.raises(RuntimeError, match="apt-get"):
        mc.plan_utterance(0, 0, {"flite": []}, {"flite": 1.0}, texts)


def test_tiny_run_fields_resume_holdout(text_dir, tmp_path):
    installed = _installed()
    if not installed:
        pytest.skip("no TTS engine installed (" + mc.install_hint() + ")")
    voices = _small_voices(installed)
    held = [voices[sorted(voices)[0]][0].speaker]
    kw = dict(seed=7, utterances=6, jobs=2, held_out=held, text_dir=text_dir, max_words=8, progress=False,
              voices=voices, engines=tuple(voices))
    s1 = mc.make_corpus(tmp_path / "c", **kw)
    assert s1["synthesized"] == 6 and s1["failed"] == 0 and s1["train"] + s1["dev"] == 6
    train, dev = _read(tmp_path / "c" / "train.jsonl"), _read(tmp_path / "c" / "dev.jsonl")
    for e in train + dev:
        for f in SHARED_FIELDS + ("engine", "voice"):
            assert f in e
        assert e["sample_rate"] == 16000 and e["source"] == f"tts_{e['engine']}"
        assert e["speaker"].startswith(e["engine"] + ":")
        assert e["text"] in {"hello world", "the cat sat on the mat", "one two three", "it's a fine day"}
        info = sf.info(str(tmp_path / "c" / e["audio"]))
        assert (info.format, info.samplerate, info.channels) == ("FLAC", 16000, 1)
        assert abs(info.frames / 16000 - e["duration"]) < 1e-3 and e["duration"] > 0.2
    assert all(e["speaker"] in held for e in dev)
    assert all(e["speaker"] not in held for e in train)
    # resume: nothing to do, same manifests
    before = (tmp_path / "c" / "train.jsonl").read_text() + (tmp_path / "c" / "dev.jsonl").read_text()
    s2 = mc.make_corpus(tmp_path / "c", **kw)
    assert s2["synthesized"] == 0
    assert before == (tmp_path / "c" / "train.jsonl").read_text() + (tmp_path / "c" / "dev.jsonl").read_text()
    # a corrupt file is redone
    victim = tmp_path / "c" / train[0]["audio"] if train else tmp_path / "c" / dev[0]["audio"]
    victim.write_bytes(b"junk")
    assert mc.make_corpus(tmp_path / "c", **kw)["synthesized"] == 1
    assert mc.flac_duration(victim) is not None
    assert not list((tmp_path / "c").rglob("*.tmp"))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_identical_audio_across_runs(text_dir, tmp_path):
    voices = {"espeak-ng": [mc.Voice("espeak-ng", "en-us"), mc.Voice("espeak-ng", "en-gb", "m3")]}
    kw = dict(seed=11, utterances=4, jobs=1, text_dir=text_dir, max_words=8, progress=False, voices=voices,
              engines=("espeak-ng",))
    mc.make_corpus(tmp_path / "a", **kw)
    mc.make_corpus(tmp_path / "b", **dict(kw, jobs=2))
    a, b = _read(tmp_path / "a" / "train.jsonl"), _read(tmp_path / "b" / "train.jsonl")
    assert a == b and len(a) == 4
    for e in a:
        xa, _ = sf.read(str(tmp_path / "a" / e["audio"]))
        xb, _ = sf.read(str(tmp_path / "b" / e["audio"]))
        assert np.array_equal(xa, xb)


def test_hours_target(text_dir, tmp_path):
    installed = _installed()
    if "espeak-ng" not in installed and "flite" not in installed:
        pytest.skip("neither espeak-ng nor flite installed")
    eng = "flite" if "flite" in installed else "espeak-ng"
    voices = {eng: installed[eng][:1]}
    s = mc.make_corpus(tmp_path / "h", seed=1, hours=5 / 3600, jobs=2, text_dir=text_dir, max_words=8,
                       progress=False, voices=voices, engines=(eng,))
    assert s["hours"] >= 5 / 3600 and s["utterances"] == mc.BATCH


def test_cli_list_voices(capsys):
    assert mc.main(["--list-voices", "--engines", "flite"]) == 0
    assert capsys.readouterr().out.startswith("flite:")


def test_short_prompt_recipe_uses_every_line():
    recipe = json.loads((ROOT / "recipes" / "corpus-short.json").read_text())
    folder = ROOT / "recipes" / recipe["text_dir"]
    texts = mc.load_sentences(folder, recipe["text_weights"], recipe["max_words"], recipe["min_words"])
    assert sorted(t[0] for t in texts) == sorted(recipe["text_weights"])
    for stem, _, lines in texts:   # no prompt is dropped by the text checks
        assert len(lines) == len((folder / f"{stem}.txt").read_text().splitlines()) > 100


def test_recipe_text_dir_is_relative_to_the_recipe(tmp_path, capsys):
    if "flite" not in _installed():
        pytest.skip("flite not installed")
    out = tmp_path / "short"
    assert mc.main(["--recipe", str(ROOT / "recipes" / "corpus-short.json"), "--out", str(out), "--utterances", "3",
                    "--engines", "flite", "--jobs", "1", "--no-progress"]) == 0
    prompts = set()
    for f in (ROOT / "recipes" / "prompts").glob("*.txt"):
        prompts |= set(f.read_text().splitlines())
    rows = _read(out / "train.jsonl") + _read(out / "dev.jsonl")
    assert len(rows) == 3 and all(r["text"] in prompts for r in rows)
