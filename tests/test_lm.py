"""Word n-gram LM: hand-computed modified Kneser-Ney probabilities, normalisation, pruning, ARPA/binary round trips."""

import gzip
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechlstm.lm import LMError, NGramLM, build_lm, count_ngrams, discounts, read_arpa, write_arpa

REPO = Path(__file__).resolve().parents[1]
TEXT = REPO.parent / "shared" / "data" / "text"

# Toy corpus: <s> c </s> | <s> c b </s> | <s> b </s> x3
TOY = [["c"], ["c", "b"], ["b"], ["b"], ["b"]]


def p(lm, ctx, w):
    return 10 ** lm.log_prob([lm.word_id(x) for x in ctx], lm.word_id(w))


def test_hand_computed_bigram_probabilities():
    lm = build_lm(TOY, order=2)
    assert lm.vocab == ["<unk>", "<s>", "</s>", "b", "c"]
    # Bigram raw counts: <s> c 2, <s> b 3, c </s> 1, c b 1, b </s> 4.
    # Count-of-counts t1..t4 = 2, 1, 1, 1 -> Y = 2/(2+2) = 0.5,
    # D1 = 1 - 2*.5*1/2 = 0.5, D2 = 2 - 3*.5*1/1 = 0.5, D3+ = 3 - 4*.5*1/1 = 1.0
    assert discounts([2, 1, 1, 1]) == (0.5, 0.5, 1.0)
    # Unigram adjusted counts (distinct left words): b {<s>, c} = 2, c {<s>} = 1, </s> {c, b} = 2, <unk> 0.
    # t1..t4 = 1, 2, 0, 0 -> Y = 1/5, D1 = 1 - 2*.2*2/1 = 0.2, D2 = 2 - 0 = 2, D3+ = 3 (unused).
    assert discounts([1, 2, 0, 0]) == pytest.approx((0.2, 2.0, 3.0))
    assert lm.discounts[0] == pytest.approx((0.2, 2.0, 3.0))
    assert lm.discounts[1] == pytest.approx((0.5, 0.5, 1.0))
    # S = 5, gamma0 = (0.2*1 + 2*2)/5 = 0.84, uniform over V' = {<unk>, </s>, b, c}: 0.84/4 = 0.21
    p_b, p_c, p_eos, p_unk = (2 - 2) / 5 + 0.21, (1 - 0.2) / 5 + 0.21, (2 - 2) / 5 + 0.21, 0.21
    assert p(lm, [], "b") == pytest.approx(p_b, abs=1e-6)
    assert p(lm, [], "c") == pytest.approx(p_c, abs=1e-6)
    assert p(lm, [], "</s>") == pytest.approx(p_eos, abs=1e-6)
    assert p(lm, [], "zebra") == pytest.approx(p_unk, abs=1e-6)  # unseen word -> <unk>
    assert lm.arrays["logp1"][1] == -99.0  # p(<s>) = 0
    # context <s>: S = 5, gamma = (D2*1 + D3*1)/5 = 0.3
    assert p(lm, ["<s>"], "c") == pytest.approx((2 - 0.5) / 5 + 0.3 * p_c, abs=1e-6)  # 0.411
    assert p(lm, ["<s>"], "b") == pytest.approx((3 - 1.0) / 5 + 0.3 * p_b, abs=1e-6)  # 0.463
    # context c: S = 2, gamma = (0.5 + 0.5)/2 = 0.5
    assert p(lm, ["c"], "b") == pytest.approx((1 - 0.5) / 2 + 0.5 * p_b, abs=1e-6)  # 0.355
    # context b: S = 4, gamma = 1.0/4 = 0.25
    assert p(lm, ["b"], "</s>") == pytest.approx((4 - 1.0) / 4 + 0.25 * p_eos, abs=1e-6)  # 0.8025
    # backoff: "b c" unseen -> bow(b) * p(c) with bow(b) = gamma(b) = 0.25
    assert 10 ** lm.arrays["bow1"][lm.word_id("b")] == pytest.approx(0.25, abs=1e-6)
    assert p(lm, ["b"], "c") == pytest.approx(0.25 * p_c, abs=1e-6)
    # unseen word after c -> bow(c) * p(<unk>) = 0.5 * 0.21
    assert p(lm, ["c"], "zebra") == pytest.approx(0.5 * 0.21, abs=1e-6)
    # sentence: p(c|<s>) p(b|c) p(</s>|b)
    assert lm.score("c b") == pytest.approx(math.log10(0.411 * 0.355 * 0.8025), abs=1e-5)


def test_hand_computed_trigram_uses_adjusted_counts():
    lm = build_lm(TOY, order=3)
    # Order 2 now uses adjusted counts: a(<s> c) = 2, a(<s> b) = 3 (start with <s>: raw counts),
    # a(c </s>) = |{<s>}| = 1, a(c b) = |{<s>}| = 1, a(b </s>) = |{<s>, c}| = 2.
    # t1..t4 = 2, 2, 1, 0 -> Y = 2/6, D1 = 1 - 2/3*2/2 = 1/3, D2 = 2 - 1*1/2 = 1.5, D3+ = 3 - 0 = 3.
    y = 2 / 6
    d1, d2, d3 = 1 - 2 * y * 2 / 2, 2 - 3 * y * 1 / 2, 3.0
    assert lm.discounts[1] == pytest.approx((d1, d2, d3))
    # Order 3 raw counts: <s> c </s> 1, <s> c b 1, c b </s> 1, <s> b </s> 3 -> t = 3, 0, 1, 0
    # -> Y = 1, D1 = 1, D2 = 2 - 3*1*1/0 -> 2 (t2 = 0: ratio 0), D3+ = 3 - 0 = 3 (clipped to [0, k]).
    assert lm.discounts[2] == pytest.approx((1.0, 2.0, 3.0))
    p_b = 0.21  # unigrams as in the bigram test (same adjusted counts)
    # p(b | c) at order 2: S(c) = 2, gamma(c) = (d1 + d1)/2
    p_b_c = (1 - d1) / 2 + d1 * p_b
    assert p(lm, ["c"], "b") == pytest.approx(p_b_c, abs=1e-6)
    # p(b | <s> c): one trigram (count 1, D1 = 1) plus one more (<s> c </s>): S = 2, gamma = (1 + 1)/2 = 1
    assert p(lm, ["<s>", "c"], "b") == pytest.approx(0 + 1.0 * p_b_c, abs=1e-6)
    # p(</s> | <s> b): S = 3, count 3 -> D3+ = 3, gamma = 3/3 = 1 -> p(</s> | b)
    # p(</s> | b) at order 2: S(b) = 2 (adjusted), a = 2 -> D2: (2 - 1.5)/2 + gamma(b) p(</s>) with gamma = 1.5/2
    p_eos_b = (2 - d2) / 2 + d2 / 2 * 0.21
    assert p(lm, ["<s>", "b"], "</s>") == pytest.approx(p_eos_b, abs=1e-6)


def _check_normalised(lm, contexts):
    ids = [w for w in range(lm.vocab_size) if w != 1]  # everything but <s>
    for ctx in contexts:
        total = sum(10 ** lm.log_prob(ctx, w) for w in ids)
        assert total == pytest.approx(1.0, abs=1e-5), ctx


CORPUS = [s.split() for s in [
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the fish",
    "on the mat the cat sat", "a dog ate a bone", "the dog and the cat sat", "fish swim", "the fish swim",
    "the cat sat", "the dog sat", "the cat sat on the log",
]]


def _contexts(lm, rng, k=25):
    words = [lm.word_id(w) for w in "the cat sat on mat dog a fish zebra".split()]
    out = [[], [1], [1, lm.word_id("the")], [lm.word_id("the"), lm.word_id("cat"), lm.word_id("sat")]]
    for _ in range(k):
        out.append([1] * int(rng.integers(0, 2)) + list(rng.choice(words, size=int(rng.integers(1, 4)))))
    return out


@pytest.mark.parametrize("order", [2, 3, 4])
def test_distributions_sum_to_one(order):
    lm = build_lm(CORPUS, order=order)
    _check_normalised(lm, _contexts(lm, np.random.default_rng(order)))


def test_pruning_keeps_model_consistent_and_normalised():
    full = build_lm(CORPUS, order=4)
    lm = build_lm(CORPUS, order=4, prune=[0, 1, 1, 1])
    assert lm.num_ngrams()[0] == full.num_ngrams()[0]
    assert all(a < b for a, b in zip(lm.num_ngrams()[1:], full.num_ngrams()[1:]))
    _check_normalised(lm, _contexts(lm, np.random.default_rng(7)))
    # every kept n-gram's prefix and suffix are present
    for n in range(2, 5):
        for g in lm.ngrams(n).tolist():
            assert lm._find(g[:-1]) >= 0 and lm._find(g[1:]) >= 0, g
    # kept n-grams with raw count >= 2 keep their unpruned probability (backoff weights renormalise the rest)
    c = count_ngrams(CORPUS, 2)
    k2 = c["keys"][1][c["counts"][1] >= 2]
    for key in k2[:10].tolist():
        g = [key // lm.vocab_size, key % lm.vocab_size]
        assert lm.log_prob(g[:1], g[1]) == pytest.approx(full.log_prob(g[:1], g[1]), abs=1e-5)


def test_arpa_and_binary_round_trip(tmp_path):
    lm = build_lm(CORPUS, order=3, prune=[0, 0, 1])
    arpa = tmp_path / "lm.arpa.gz"
    write_arpa(lm, arpa)
    text = gzip.open(arpa, "rt").read()
    assert text.startswith("\\data\\\nngram 1=") and text.rstrip().endswith("\\end\\")
    back = read_arpa(arpa)
    lm.save(tmp_path / "lm.bin")
    binlm = NGramLM.load(tmp_path / "lm.bin")
    assert back.vocab == lm.vocab == binlm.vocab
    assert isinstance(binlm.arrays["keys2"], np.memmap)
    for name, a in lm.arrays.items():
        np.testing.assert_array_equal(binlm.arrays[name], a)
        np.testing.assert_allclose(back.arrays[name], a, atol=1e-6)
    for s in ["the cat sat on the mat", "a zebra ate the fish", "dog", "the the the"]:
        assert back.score(s) == pytest.approx(lm.score(s), abs=1e-5)
        assert binlm.score(s) == lm.score(s)


MALFORMED = {
    "no_data": ("hello\n", 1, "expected \\data\\"),
    "bad_count": ("\\data\\\nngram 1=x\n", 2, "bad count line"),
    "bad_number": ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-0.5\t</s>\nabc\tfoo\n\n\\end\\\n", 7, "bad number"),
    "fields": ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\ta b c d\n\\end\\\n", 6, "expected 1-gram line"),
    "unknown_word": ("\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-99\t<s>\t0\n-0.3\t</s>\t0\n\n\\2-grams:\n"
                     "-0.1\t<s> zzz\n\n\\end\\\n", 10, "not a unigram"),
    "truncated": ("\\data\\\nngram 1=3\n\n\\1-grams:\n-99\t<s>\n-0.3\t</s>\n", 6, "file ends inside"),
    "no_end": ("\\data\\\nngram 1=2\n\n\\1-grams:\n-99\t<s>\n-0.3\t</s>\n\\2-grams:\n", 7, "expected \\end\\"),
}


def test_arpa_with_header_text_before_data(tmp_path):
    """Text before \\data\\ is allowed by the format (CMU Sphinx writes such a header): it is skipped."""
    lm = build_lm(CORPUS, order=3, prune=[0, 0, 1])
    plain = tmp_path / "plain.arpa"
    write_arpa(lm, plain)
    headed = tmp_path / "headed.arpa"
    headed.write_text("Language model created by QuickLM on Thu Jun 30 2005\nCopyright (c) somebody\n\n"
                      "This is not \\data\\ yet: \\1-grams: mentioned in prose\n" + plain.read_text())
    a, b = read_arpa(plain), read_arpa(headed)
    assert a.vocab == b.vocab
    for name, arr in a.arrays.items():
        np.testing.assert_array_equal(b.arrays[name], arr)
    with pytest.raises(LMError, match="no \\\\data\\\\ section"):
        read_arpa_text = tmp_path / "prose.arpa"
        read_arpa_text.write_text("just some prose\nand more\n")
        read_arpa(read_arpa_text)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_arpa_names_file_and_line(tmp_path, name):
    text, line, reason = MALFORMED[name]
    path = tmp_path / f"{name}.arpa"
    path.write_text(text)
    with pytest.raises(LMError) as e:
        read_arpa(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}: "), msg
    assert reason in msg


def test_missing_and_corrupt_binary(tmp_path):
    with pytest.raises(LMError, match="cannot open"):
        NGramLM.load(tmp_path / "nope.bin")
    (tmp_path / "x.bin").write_bytes(b"garbage" * 10)
    with pytest.raises(LMError, match="bad magic"):
        NGramLM.load(tmp_path / "x.bin")


def test_cli_builds_arpa_and_binary(tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text("\n".join(" ".join(s) for s in CORPUS) + "\n")
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "build_lm.py"), "--order", "3", "--prune", "0", "0", "1",
                        "--out", str(out), str(txt)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lm = NGramLM.load(out / "lm.bin")
    ref = build_lm(CORPUS, order=3, prune=[0, 0, 1])
    assert lm.score("the cat sat") == pytest.approx(ref.score("the cat sat"), abs=1e-6)
    assert read_arpa(out / "lm.arpa.gz").num_ngrams() == ref.num_ngrams()


@pytest.mark.skipif(not TEXT.is_dir(), reason="shared text data absent")
def test_real_text_small_model_is_normalised():
    lines = (TEXT / "inaugural.txt").read_text().splitlines()[:300]
    lm = build_lm([s.split() for s in lines if s.strip()], order=3, prune=[0, 1, 1])
    _check_normalised(lm, [[1], [1, lm.word_id("we")], [lm.word_id("of"), lm.word_id("the")]])
