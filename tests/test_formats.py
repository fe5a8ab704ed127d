"""Output formats: SRT and WebVTT parsed back by strict parsers, cue rules, txt and JSON."""

import json
import re

import numpy as np
import pytest

from speechlstm.formats import format_timestamp, make_cues, render, to_json, to_srt, to_txt, to_vtt
from speechlstm.transcribe import Transcript, Word

SRT_TIME = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d),(\d{3})$")
VTT_TIME = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})$")


def _ms(g):
    h, m, s, ms = (int(x) for x in g)
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def parse_srt(text):
    """Strict SubRip: blocks separated by exactly one blank line; index 1, 2, ...; a timing line; 1+ text lines."""
    if text == "":
        return []
    assert text.endswith("\n") and not text.endswith("\n\n"), "file must end with exactly one newline"
    cues = []
    for n, block in enumerate(text[:-1].split("\n\n"), 1):
        lines = block.split("\n")
        assert len(lines) >= 3, block
        assert lines[0] == str(n), (lines[0], n)
        m = SRT_TIME.match(lines[1])
        assert m, lines[1]
        text_lines = lines[2:]
        assert all(x.strip() and x == x.strip() for x in text_lines), text_lines
        cues.append((_ms(m.groups()[:4]), _ms(m.groups()[4:]), text_lines))
    return cues


def parse_vtt(text):
    """Strict WebVTT: 'WEBVTT' header line, blank line, then cues (optional identifier, timing, text lines)."""
    assert text.startswith("WEBVTT\n\n") or text == "WEBVTT\n", text[:20]
    body = text[len("WEBVTT\n\n"):]
    if not body:
        return []
    assert body.endswith("\n") and not body.endswith("\n\n")
    cues = []
    for block in body[:-1].split("\n\n"):
        lines = block.split("\n")
        if "-->" not in lines[0]:
            assert "-->" not in lines[0] and lines[0].strip(), lines[0]  # identifier
            lines = lines[1:]
        m = VTT_TIME.match(lines[0])
        assert m, lines[0]
        assert len(lines) >= 2 and all(x.strip() and "-->" not in x for x in lines[1:]), lines
        cues.append((_ms(m.groups()[:4]), _ms(m.groups()[4:]), lines[1:]))
    return cues


def speech(seed=0, n=120):
    """A transcript with n words: random word lengths, durations and pauses (some >= 0.5 s, some long words)."""
    rng = np.random.default_rng(seed)
    words, t = [], 0.2
    for i in range(n):
        w = "".join(rng.choice(list("abcdefghij"), size=int(rng.integers(1, 12))))
        if i % 37 == 5:
            w = "x" * 50  # longer than a line
        d = float(rng.uniform(0.1, 0.6))
        words.append(Word(w, t, t + d, float(rng.uniform(0, 1))))
        t += d + float(rng.choice([0.0, 0.05, 0.2, 0.6, 1.5], p=[0.3, 0.3, 0.2, 0.15, 0.05]))
    return Transcript(" ".join(w.word for w in words), words=words, duration=t + 0.5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_back(seed, fmt):
    tr = speech(seed)
    text = to_srt(tr) if fmt == "srt" else to_vtt(tr)
    cues = parse_srt(text) if fmt == "srt" else parse_vtt(text)
    assert len(cues) > 5
    # all the words, in order
    assert " ".join(" ".join(lines) for _, _, lines in cues).split() == tr.text.split()
    prev_end = 0
    for start, end, lines in cues:
        assert prev_end <= start < end  # ordered, non-overlapping
        prev_end = end
        assert len(lines) <= 2
        for line in lines:
            assert len(line) <= 42 or " " not in line  # only a single over-long word may exceed a line
        assert end - start <= 7000 or len(" ".join(lines).split()) == 1
    assert prev_end <= round(tr.duration * 1000)
    # a pause of >= 0.5 s between two words always separates cues
    for a, b in zip(tr.words, tr.words[1:]):
        if b.start - a.end >= 0.5:
            assert any(abs(s - round(b.start * 1000)) <= 1 for s, _, _ in cues), (a, b)


def test_cue_times_follow_words():
    words = [Word("hello", 1.0, 1.4, 0.9), Word("there", 1.5, 1.9, 0.9), Word("again", 2.6, 2.8, 0.9),
             Word("more", 2.85, 3.0, 0.5)]
    tr = Transcript("hello there again more", words=words, duration=3.2)
    cues = parse_srt(to_srt(tr))
    assert cues == [(1000, 2000, ["hello there"]), (2600, 3200, ["again more"])]
    cues = parse_vtt(to_vtt(tr, min_duration=0.0))
    assert cues == [(1000, 1900, ["hello there"]), (2600, 3000, ["again more"])]
    cues = make_cues(words, max_gap=10.0, max_chars=12)
    assert [c.lines for c in cues] == [["hello there", "again more"]]
    assert [c.lines for c in make_cues(words, max_gap=10.0, max_chars=12, max_lines=1)] == [
        ["hello there"], ["again more"]]
    assert [c.lines for c in make_cues(words, max_gap=10.0, max_duration=1.5)] == [
        ["hello there"], ["again more"]]


def test_empty_and_long_times():
    empty = Transcript("", duration=1.0)
    assert to_srt(empty) == "" and parse_srt(to_srt(empty)) == []
    assert to_vtt(empty) == "WEBVTT\n" and parse_vtt(to_vtt(empty)) == []
    assert format_timestamp(3723004) == "01:02:03,004"
    assert format_timestamp(36_000_000 * 10 + 1, ".") == "100:00:00.001"
    late = Transcript("late", words=[Word("late", 3725.5, 3726.0, 1.0)], duration=3727.0)
    assert parse_srt(to_srt(late)) == [(3725500, 3726500, ["late"])]


def test_vtt_escapes_markup():
    tr = Transcript("a<b", words=[Word("a<b&c", 0.0, 0.5, 1.0)], duration=1.0)
    assert "a&lt;b&amp;c" in to_vtt(tr) and "a<b&c" in to_srt(tr)


def test_txt_and_json():
    words = [Word("yes", 0.1234, 0.45678, 0.87654321)]
    tr = Transcript("yes", words=words, duration=1.0, model="m", timings={"model": 0.123456})
    assert to_txt(tr) == "yes\n"
    d = json.loads(to_json(tr, source="a.wav"))
    assert list(d)[0] == "file" and d["file"] == "a.wav"
    assert d["words"] == [{"word": "yes", "start": 0.123, "end": 0.457, "confidence": 0.8765}]
    assert {"text", "words", "segments", "model", "duration", "timings"} <= set(d)
    assert "alternatives" not in d and "matched" not in d
    nb = Transcript("yes", alternatives=[{"text": "yes", "score": -1.0}, {"text": "yet", "score": -float("inf")}])
    assert to_txt(nb) == "yes\nyet\n"
    d = json.loads(to_json(nb))
    assert d["alternatives"] == [{"text": "yes", "score": -1.0}, {"text": "yet", "score": None}]
    g = Transcript("", matched=False, confidence=0.2)
    assert to_txt(g) == "no match\n"
    assert render(g, "json") == to_json(g) and render(g, "txt") == "no match\n"
    assert json.loads(to_json(g))["matched"] is False
    with pytest.raises(ValueError, match="unknown format"):
        render(g, "doc")
