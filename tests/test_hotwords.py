"""Hotwords: parsing, boosting of rare and unknown words and phrases, rollback of broken matches."""

import math

import numpy as np
import pytest

from speechlstm.decoding import DEFAULT_HOTWORD_WEIGHT, Decoder, HotwordError, parse_hotwords
from speechlstm.errors import LMError, SpeechlstmError
from speechlstm.lm import build_lm

LN10 = math.log(10)
CHARS = ["_", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
TEXT = [s.split() for s in [
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the fish",
    "on the mat the cat sat", "a dog ate a bone", "the dog and the cat sat", "turn on the light",
    "turn off the light", "the cat sat on the hat", "she sat on the mat", "the lights are on",
]]


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


def _peaky(text, rng, confuse=None, margin=5.0):
    """Two frames per character and a blank; ``confuse[i] = (char, delta)`` scores ``char`` ``delta`` above the
    true character at position ``i``."""
    rows = []
    for i, ch in enumerate(text):
        for _ in range(2):
            x = rng.normal(size=len(CHARS)) * 0.3
            x[CHARS.index(ch)] += margin
            if confuse and i in confuse:
                other, delta = confuse[i]
                x[CHARS.index(other)] = x[CHARS.index(ch)] + delta
            rows.append(x)
        x = rng.normal(size=len(CHARS)) * 0.3
        x[0] += margin
        rows.append(x)
    return _log_softmax(np.array(rows))


@pytest.fixture(scope="module")
def lm():
    return build_lm(TEXT, order=3)


def test_parse_hotwords_forms():
    assert parse_hotwords("speechlstm,turn on the lights:4.0") == [("speechlstm", DEFAULT_HOTWORD_WEIGHT),
                                                                  ("turn on the lights", 4.0)]
    assert parse_hotwords(["A  B", ("c", 2), "d: 0.5"]) == [("a b", DEFAULT_HOTWORD_WEIGHT), ("c", 2.0), ("d", 0.5)]
    assert parse_hotwords("x:1,x:3, x :2") == [("x", 3.0)]
    assert parse_hotwords("x", default_weight=7) == [("x", 7.0)]


@pytest.mark.parametrize("spec,needle", [
    ("", "the list is empty"), ("   ", "the list is empty"), ([], "the list is empty"), (None, "the list is empty"),
    ("a,,b", "'': empty phrase"), ("a, :3", "':3': empty phrase"),
    ("lights:x", "'lights:x': weight 'x' is not a number"),
    ("lights:", "weight '' is not a number"), ("lights:-1", "positive finite"), ("lights:0", "positive finite"),
    ("lights:inf", "positive finite"), ("lights:nan", "positive finite"), ([("a", True)], "positive finite"),
    ([("a", "w")], "not a number"), ([("a", 1, 2)], "expected (phrase, weight)"), ([3], "expected a string"),
    (5, "expected a string or a list"),
])
def test_parse_hotwords_errors_are_one_line(spec, needle):
    with pytest.raises(HotwordError) as e:
        parse_hotwords(spec)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("hotwords: ")
    assert isinstance(e.value, ValueError) and isinstance(e.value, LMError) and isinstance(e.value, SpeechlstmError)


def test_boosted_rare_word_is_recognized_and_other_text_is_not_wrecked(lm):
    rng = np.random.default_rng(0)
    # "mab" is not in the LM; the acoustics lean (by 0.8 per frame) to the common "mat"
    lp = _peaky("she sat on the mab", rng, confuse={17: ("t", 0.8)})
    kw = dict(beam_width=8, lm=lm, alpha=0.5, beta=1.0)
    assert Decoder(CHARS, **kw).decode(lp)[0].text == "she sat on the mat"
    assert Decoder(CHARS, hotwords="mab", **kw).decode(lp)[0].text == "she sat on the mab"
    # unrelated utterances decode as without the hotwords, with about the same scores: partial matches that were
    # boosted on the way (e.g. "...the l" towards "lights") were taken back; they only took beam slots, so a few
    # alignments of the winner may be missing
    for text, conf in [("the dog sat on the log", {5: ("o", 0.3)}), ("a cat and a dog", None),
                       ("the cat sat on the mat", {13: ("a", 0.2)}), ("turn on the light", {4: ("t", 0.5)})]:
        lp = _peaky(text, rng, confuse=conf)
        plain = Decoder(CHARS, **kw).decode(lp)[0]
        boosted = Decoder(CHARS, hotwords="mab,zorbit,turn on the lights", **kw).decode(lp)[0]
        assert boosted.text == plain.text == text
        assert boosted.score == pytest.approx(plain.score, abs=0.05)
        assert boosted.score - boosted.acoustic_score == pytest.approx(plain.score - plain.acoustic_score)


def test_unknown_hotword_escapes_the_unknown_word_penalty(lm):
    rng = np.random.default_rng(1)
    lp = _peaky("the zorbit", rng)
    kw = dict(beam_width=8, lm=lm, alpha=0.5, beta=1.0, unk_penalty=-10.0)
    plain = Decoder(CHARS, **kw).decode(lp)[0]
    (h,) = Decoder(CHARS, hotwords=[("zorbit", 2.0)], **kw).decode(lp)
    assert h.text == "the zorbit"
    lm_part = 0.5 * LN10 * lm.score("the zorbit") + 2 * 1.0  # "zorbit" scored as <unk>
    assert h.score - h.acoustic_score == pytest.approx(lm_part + 2.0, abs=1e-6)  # + the full phrase bonus
    if plain.text == "the zorbit":
        assert plain.score - plain.acoustic_score == pytest.approx(lm_part - 10.0, abs=1e-6)


def test_phrase_bonus_is_taken_back_when_the_match_breaks(lm):
    rng = np.random.default_rng(2)
    kw = dict(beam_width=8, lm=lm, alpha=0.2, beta=1.0, unk_penalty=-1.0)
    hot = [("turn on the lights", 3.0), ("cabbage", 4.0)]
    for text in ["turn on the light", "turn on the", "the cab", "turn on the lightsx"]:
        lp = _peaky(text, rng)
        h = Decoder(CHARS, hotwords=hot, **kw).decode(lp)[0]
        assert h.text == text
        words = text.split()
        lm_part = 0.2 * LN10 * lm.score(text) + len(words) - sum(1.0 for w in words if lm.word_id(w) == 0)
        assert h.score - h.acoustic_score == pytest.approx(lm_part, abs=1e-6), text
    # the complete phrase keeps its 3.0, at the end of the utterance and before more words
    for text in ["turn on the lights", "turn on the lights are on"]:
        lp = _peaky(text, rng)
        h = Decoder(CHARS, hotwords=hot, **kw).decode(lp)[0]
        words = text.split()
        lm_part = 0.2 * LN10 * lm.score(text) + len(words)
        assert h.text == text
        assert h.score - h.acoustic_score == pytest.approx(lm_part + 3.0, abs=1e-6), text


def test_phrase_boost_picks_the_phrase_over_a_likelier_spelling(lm):
    rng = np.random.default_rng(3)
    # the final "s" is weak: a blank scores 1.0 above it ("turn on the light" is in the LM text, too)
    lp = _peaky("turn on the lights", rng, confuse={17: ("_", 1.0)})
    kw = dict(beam_width=8, lm=lm, alpha=0.5, beta=1.0)
    assert Decoder(CHARS, **kw).decode(lp)[0].text != "turn on the lights"
    assert Decoder(CHARS, hotwords="turn on the lights:3", **kw).decode(lp)[0].text == "turn on the lights"


def test_hotwords_without_lm():
    rng = np.random.default_rng(4)
    lp = _peaky("mab", rng, confuse={2: ("t", 0.8)})
    assert Decoder(CHARS, beam_width=4).decode(lp)[0].text == "mat"
    (h,) = Decoder(CHARS, beam_width=4, hotwords="mab:2").decode(lp)
    assert h.text == "mab" and h.score == pytest.approx(h.acoustic_score + 2.0)
    # a word that merely starts like the hotword gets nothing in the end
    lp = _peaky("ma", rng)
    (h,) = Decoder(CHARS, beam_width=4, hotwords="mab:2").decode(lp)
    assert h.text == "ma" and h.score == pytest.approx(h.acoustic_score)
