"""Edit distances and WER/CER (speechlstm.metrics)."""

import numpy as np
import pytest

from speechlstm.metrics import ErrorCounter, cer, char_errors, edit_distance, edit_ops, wer, word_errors


def _levenshtein(a, b):
    """Plain dynamic programme, the reference."""
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev, d[j] = d[j], cur
    return d[-1]


def test_edit_distance_matches_reference_on_random_strings():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = "".join(rng.choice(list("abc "), size=rng.integers(0, 12)))
        b = "".join(rng.choice(list("abcd"), size=rng.integers(0, 12)))
        s, d, i = edit_ops(a, b)
        assert s + d + i == _levenshtein(a, b) == edit_distance(a, b)
        # the counts describe a real alignment: lengths are consistent
        assert len(a) - d + i == len(b)
        assert min(s, d, i) >= 0


def test_known_cases():
    assert edit_ops("kitten", "sitting") == (2, 0, 1)
    assert edit_ops("abc", "") == (0, 3, 0)
    assert edit_ops("", "ab") == (0, 0, 2)
    assert edit_ops("", "") == (0, 0, 0)
    assert edit_ops(["hello", "world"], ["hello", "there", "world"]) == (0, 0, 1)


def test_wer_cer():
    assert wer("the cat sat on the mat", "the cat sat on the mat") == 0.0
    assert wer("the cat sat", "the bat sat down") == pytest.approx(2 / 3)
    assert wer("a b", "") == 1.0
    assert cer("abcd", "abc") == 0.25
    assert cer("a  b ", " a b") == 0.0  # whitespace runs collapse
    assert word_errors("one two three", "one three") == (1, 3)
    assert char_errors("ab cd", "abcd") == (1, 5)  # a missing space is one character error
    assert wer("", "") == 0.0 and wer("", "x") == float("inf")


def test_error_counter_is_corpus_level():
    c = ErrorCounter()
    c.add("a b c d", "a b c d", group="x")
    cer1, wer1 = c.add("e f", "e g", group="y")
    assert wer1 == 0.5 and cer1 == pytest.approx(1 / 3)
    assert c.wer == pytest.approx(1 / 6)  # not the mean of per-utterance rates (0.25)
    assert c.n == 2 and c.words == 6
    d = c.to_dict()
    assert d["groups"]["x"]["wer"] == 0.0 and d["groups"]["y"]["wer"] == 0.5
    assert d["chars"] == 7 + 3
