"""Pronunciation lexicon and G2P (speechlstm.lexicon): CMUdict parsing, G2P training and accuracy, files."""

import gzip
import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from speechlstm.errors import SpeechlstmError
from speechlstm.lexicon import (DEFAULT_CONTEXTS, LEXICON_FILE, PHONES, G2P, Lexicon, LexiconError, evaluate_g2p,
                                read_cmudict)

CMUDICT = Path(__file__).resolve().parents[2] / "shared/data/text/cmudict.dict"

# A regular toy language: every letter has one fixed sound; x has two, h none.
SOUNDS = {"a": ("AE",), "b": ("B",), "d": ("D",), "h": (), "k": ("K",), "o": ("OW",), "s": ("S",), "t": ("T",),
          "x": ("K", "S"), "i": ("IY",), "m": ("M",)}


def toy_pron(word):
    return tuple(p for ch in word for p in SOUNDS[ch])


def toy_words(n, seed, lengths=(2, 7)):
    rng = random.Random(seed)
    letters = sorted(SOUNDS)
    words = set()
    while len(words) < n:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(*lengths)))
        if toy_pron(w):
            words.add(w)
    return sorted(words)


@pytest.fixture(scope="module")
def toy_lexicon():
    return {w: [toy_pron(w)] for w in toy_words(400, seed=1)}


@pytest.fixture(scope="module")
def toy_g2p(toy_lexicon):
    return G2P.fit(toy_lexicon)


def write(path, text):
    path.write_text(text)
    return path


# ------------------------------------------------------------------ CMUdict parsing


def test_phones():
    assert len(PHONES) == 39 and list(PHONES) == sorted(PHONES) and len(set(PHONES)) == 39
    assert PHONES[:3] == ("AA", "AE", "AH") and PHONES[-1] == "ZH"


def test_read_cmudict_variants_stress_comments_and_skips(tmp_path):
    path = write(tmp_path / "cmu.dict", "\n".join([
        ";;; an old-style comment line",
        "abandon AH0 B AE1 N D AH0 N",
        "'bout B AW1 T",
        "read R IY1 D",
        "read(2) R EH1 D  # past tense",
        "read(3) R IY0 D",  # the same as read(1) without stress: dropped
        "a. EY1",  # dot: skipped
        "ad-hoc AE1 D HH AA1 K",  # hyphen: skipped
        "3d TH R IY1 D IY1",  # digit: skipped
        "",
        "   ",
        "# a whole-line comment",
        "Tomato T AH0 M EY1 T OW2",
        "tomato T AH0 M AA1 T OW2",  # a repeated word is a variant too
        "aalborg AO1 L B AO0 R G # place, danish",
    ]) + "\n")
    lex = read_cmudict(path)
    assert list(lex) == ["abandon", "'bout", "read", "tomato", "aalborg"]
    assert lex["abandon"] == [("AH", "B", "AE", "N", "D", "AH", "N")]
    assert lex["read"] == [("R", "IY", "D"), ("R", "EH", "D")]
    assert lex["tomato"] == [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")]
    assert lex["aalborg"] == [("AO", "L", "B", "AO", "R", "G")]
    # gzip'd files read the same
    gz = tmp_path / "cmu.dict.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_cmudict(gz) == lex


@pytest.mark.parametrize("line, reason", [
    ("oops T AH0 XX", "unknown phone 'XX'"),
    ("oops T AH3", "unknown phone 'AH3'"),
    ("lonely", "no phones after 'lonely'"),
    ("a.b. EY1 Q", "unknown phone 'Q'"),  # a skipped word's line is still checked
])
def test_read_cmudict_malformed_line_names_file_and_line(tmp_path, line, reason):
    path = write(tmp_path / "bad.dict", f"abandon AH0 B AE1 N D AH0 N\n# comment\n{line}\nzoo Z UW1\n")
    with pytest.raises(LexiconError) as e:
        read_cmudict(path)
    assert str(e.value) == f"{path}:3: {reason}"
    assert isinstance(e.value, ValueError) and isinstance(e.value, SpeechlstmError)


def test_read_cmudict_missing_file(tmp_path):
    with pytest.raises(LexiconError, match="cannot read"):
        read_cmudict(tmp_path / "nope.dict")


# ------------------------------------------------------------------ G2P


def test_g2p_learns_a_regular_language_exactly(toy_lexicon, toy_g2p):
    unseen = [w for w in toy_words(300, seed=2, lengths=(1, 9)) if w not in toy_lexicon]
    assert len(unseen) > 200
    wrong = [(w, toy_g2p.predict(w), toy_pron(w)) for w in unseen if toy_g2p.predict(w) != toy_pron(w)]
    assert wrong == []
    assert toy_g2p.predict("xox") == ("K", "S", "OW", "K", "S")
    assert toy_g2p.predict("hath") == ("AE", "T")


def test_g2p_every_word_gets_a_phone(toy_g2p):
    # 'h' is always silent in the toy language: a word of only h's still gets a phone (the letter's sound)
    assert toy_g2p.predict("h") == ("HH",)
    assert toy_g2p.predict("hh") == ("HH",)
    # letters the toy lexicon never had fall back to a fixed letter sound, never to nothing
    for w in ["z", "q", "qu", "don't", "w'"]:
        pron = toy_g2p.predict(w)
        assert len(pron) >= 1 and all(p in PHONES for p in pron)


@pytest.mark.parametrize("word", ["", "Hello", "a-b", "'", "''", "x y", "caf\u00e9", "3d", None, 7])
def test_g2p_rejects_invalid_words(toy_g2p, word):
    with pytest.raises(ValueError):
        toy_g2p.predict(word)
    with pytest.raises(LexiconError):
        toy_g2p.predict(word)


def test_g2p_is_deterministic_and_round_trips(tmp_path, toy_lexicon, toy_g2p):
    again = G2P.fit(toy_lexicon)
    assert again.contexts == toy_g2p.contexts == DEFAULT_CONTEXTS
    for a, b in zip(again._codes + again._chunks, toy_g2p._codes + toy_g2p._chunks):
        assert np.array_equal(a, b)
    path = toy_g2p.save(tmp_path / "toy.g2p")
    assert path == tmp_path / "toy.g2p" and path.is_file()  # written where asked, no suffix added
    loaded = G2P.load(path)
    words = toy_words(200, seed=3, lengths=(1, 10)) + ["z", "q", "hh"]
    assert [loaded.predict(w) for w in words] == [toy_g2p.predict(w) for w in words]
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_g2p_load_errors(tmp_path):
    with pytest.raises(LexiconError, match="cannot read G2P"):
        G2P.load(tmp_path / "missing.npz")
    write(tmp_path / "text.npz", "not a zip file")
    with pytest.raises(LexiconError):
        G2P.load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(LexiconError, match="lacks"):
        G2P.load(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array(["speechlstm-g2p", None], dtype=object))
    with pytest.raises(LexiconError):  # object arrays would need pickle: refused
        G2P.load(tmp_path / "pickled.npz")


def test_g2p_fit_options_and_errors(toy_lexicon):
    with pytest.raises(ValueError, match="end with"):
        G2P.fit(toy_lexicon, contexts=[(1, 1), (0, 1)])
    with pytest.raises(ValueError, match="shrink"):
        G2P.fit(toy_lexicon, contexts=[(1, 2), (2, 1), (0, 0)])
    with pytest.raises(ValueError, match="bad G2P window"):
        G2P.fit(toy_lexicon, contexts=[(5, 5, 1), (0, 0)])
    with pytest.raises(LexiconError, match="bad pronunciation"):
        G2P.fit({"ab": [("AE", "BB")]})
    with pytest.raises(LexiconError):
        G2P.fit({"a b": [("AE",)]})
    with pytest.raises(LexiconError, match="could be aligned"):
        G2P.fit({"a": [("AE", "B", "D")]})  # three phones for one letter
    plain = G2P.fit(toy_lexicon, contexts=[(2, 2), (1, 1), (0, 0)], min_count=2, iterations=3, variants=False)
    assert plain.contexts == ((2, 2, 0), (1, 1, 0), (0, 0, 0))
    assert plain.predict("box") == ("B", "OW", "K", "S")
    nothing = G2P.fit(toy_lexicon, min_count=10 ** 9)  # no window is frequent enough: every letter silent
    assert sum(c.size for c in nothing._codes) == 0
    assert nothing.predict("box") == ("B",)  # the first letter's sound


def test_g2p_on_cmudict_held_out_words():
    """Real CMUdict: 5% of the words held out (measured: word accuracy 0.651, phone error rate 0.082)."""
    if not CMUDICT.is_file():
        pytest.skip(f"{CMUDICT} not available")
    lex = read_cmudict(CMUDICT)
    assert len(lex) > 120_000
    assert lex["abandon"] == [("AH", "B", "AE", "N", "D", "AH", "N")]
    assert all(p in PHONES for prons in lex.values() for pron in prons for p in pron)
    r = evaluate_g2p(lex, holdout_fraction=0.05, seed=0)
    assert r["words"] == round(0.05 * len(lex)) and r["words"] + r["train_words"] == len(lex)
    assert r["word_accuracy"] > 0.60
    assert r["phone_error_rate"] < 0.10


def test_evaluate_g2p_on_a_toy_lexicon(toy_lexicon):
    r = evaluate_g2p(toy_lexicon, holdout_fraction=0.1, seed=5)
    assert r == {"words": 40, "train_words": 360, "word_accuracy": 1.0, "phone_error_rate": 0.0}
    # closest listed pronunciation counts; a wrong guess costs its edits over that pronunciation's length
    lex = dict(toy_lexicon)
    lex["kid"] = [("K", "AY", "D", "Z"), ("K", "IH", "D")]  # the G2P will say K IY D
    words = sorted(lex)
    # the documented split: sorted words shuffled by default_rng(seed), the first ones held out
    seed = next(s for s in range(10_000) if words[np.random.default_rng(s).permutation(len(words))[0]] == "kid")
    r = evaluate_g2p(lex, holdout_fraction=1 / len(lex), seed=seed)
    assert r == {"words": 1, "train_words": len(lex) - 1, "word_accuracy": 0.0, "phone_error_rate": 1 / 3}
    with pytest.raises(ValueError):
        evaluate_g2p(toy_lexicon, holdout_fraction=1.0)


# ------------------------------------------------------------------ Lexicon


@pytest.fixture
def small(toy_g2p):
    return Lexicon({"box": [("B", "AA", "K", "S")], "the": [("DH", "AH"), ("DH", "IY")], "'tis": [("T", "IH", "Z")]},
                   toy_g2p)


def test_lexicon_lookups(small):
    assert len(small) == 3 and "the" in small and "sox" not in small and list(small) == ["box", "the", "'tis"]
    assert small.pronounce("the") == ("DH", "AH")
    assert small.pronunciations("the") == [("DH", "AH"), ("DH", "IY")]
    small.pronunciations("the").append(("X",))  # a copy
    assert small.pronunciations("the") == [("DH", "AH"), ("DH", "IY")]
    assert small.pronounce("sox") == ("S", "OW", "K", "S")  # from the G2P
    assert small.pronunciations("sox") == [("S", "OW", "K", "S")]
    assert "sox" not in small and len(small) == 3


def test_lexicon_without_g2p_and_invalid_words(small):
    bare = Lexicon({"box": [("B", "AA", "K", "S")]})
    with pytest.raises(LexiconError, match="'sox' is not in the lexicon and there is no G2P"):
        bare.pronounce("sox")
    with pytest.raises(LexiconError):
        bare.subset(["box", "sox"])
    for word in ["", "Box", "b-x", "'"]:
        with pytest.raises(LexiconError):
            small.pronounce(word)
    with pytest.raises(LexiconError):
        small.words_to_phones("the Box")
    for entries in [{"Box": [("B",)]}, {"box": []}, {"box": [()]}, {"box": [("B", "AAA")]}, {"box": ["B AA K S"]},
                    {"box": "B"}]:
        with pytest.raises(LexiconError):
            Lexicon(entries)
    with pytest.raises(TypeError):
        Lexicon({}, g2p="model.npz")


def test_lexicon_subset_adds_g2p_pronunciations(small, toy_g2p):
    sub = small.subset(["the", "sox", "the", "tax"])
    assert list(sub) == ["the", "sox", "tax"]
    assert sub.pronunciations("the") == [("DH", "AH"), ("DH", "IY")]
    assert sub.pronunciations("sox") == [("S", "OW", "K", "S")]
    assert sub.pronunciations("tax") == [("T", "AE", "K", "S")]
    assert "box" not in sub and sub.g2p is toy_g2p
    assert sub.pronounce("bath") == ("B", "AE", "T")  # the G2P stays usable
    assert list(small.subset("box  tax")) == ["box", "tax"]  # a string is split into words


def test_words_to_phones_boundaries(small):
    assert small.words_to_phones("the box") == ["DH", "AH", " ", "B", "AA", "K", "S"]
    assert small.words_to_phones("  the   box ", boundary="|") == ["DH", "AH", "|", "B", "AA", "K", "S"]
    assert small.words_to_phones("the box 'tis", boundary=None) == ["DH", "AH", "B", "AA", "K", "S", "T", "IH", "Z"]
    assert small.words_to_phones("sox") == ["S", "OW", "K", "S"]
    assert small.words_to_phones("") == [] and small.words_to_phones("   ") == []


def test_labels(small):
    tokens = ["<blank>", " "] + list(PHONES)
    ids = small.labels("the box", tokens)
    assert ids.dtype == np.int32
    assert [tokens[i] for i in ids] == ["DH", "AH", " ", "B", "AA", "K", "S"]
    assert [tokens[i] for i in small.labels("The BOX!", tokens)] == ["DH", "AH", " ", "B", "AA", "K", "S"]
    no_space = ["<blank>"] + list(PHONES)
    assert [no_space[i] for i in small.labels("the box", no_space)] == ["DH", "AH", "B", "AA", "K", "S"]
    assert small.labels("", tokens).size == 0
    with pytest.raises(LexiconError, match="not a token"):
        small.labels("the box", ["<blank>", " ", "DH", "AH"])


def test_lexicon_save_load_round_trip(tmp_path, small):
    path = small.save(tmp_path / "model" / LEXICON_FILE)
    assert path == tmp_path / "model" / "lexicon.txt.gz"
    assert sorted(p.name for p in path.parent.iterdir()) == ["lexicon.g2p.npz", "lexicon.txt.gz"]
    text = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert text == ["# speechlstm lexicon v1 g2p=lexicon.g2p.npz", "box B AA K S", "the DH AH", "the DH IY",
                    "'tis T IH Z"]
    first = path.read_bytes()
    small.save(path)
    assert path.read_bytes() == first  # no time stamp in the gzip header
    for where in (path, tmp_path / "model"):  # the file, or the directory that holds lexicon.txt.gz
        back = Lexicon.load(where)
        assert list(back.items()) == list(small.items())
        words = toy_words(100, seed=4, lengths=(1, 8))
        assert [back.pronounce(w) for w in words] == [small.pronounce(w) for w in words]
    # a directory path
    saved = small.subset(["box", "tax"]).save(tmp_path / "dir")
    assert saved == tmp_path / "dir" / LEXICON_FILE and (tmp_path / "dir" / "lexicon.g2p.npz").is_file()
    assert Lexicon.load(tmp_path / "dir").pronunciations("tax") == [("T", "AE", "K", "S")]
    # without a G2P no G2P file is written or read
    bare = Lexicon({"box": [("B", "AA", "K", "S")]})
    p = bare.save(tmp_path / "bare" / "words.txt.gz")
    assert sorted(x.name for x in p.parent.iterdir()) == ["words.txt.gz"]
    assert Lexicon.load(p).g2p is None


def test_lexicon_load_errors(tmp_path, small):
    path = small.save(tmp_path / "m" / LEXICON_FILE)
    (tmp_path / "m" / "lexicon.g2p.npz").unlink()
    with pytest.raises(LexiconError, match="cannot read G2P"):
        Lexicon.load(path)
    with pytest.raises(LexiconError, match="cannot read"):
        Lexicon.load(tmp_path / "nowhere" / LEXICON_FILE)
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(gzip.compress(b"# speechlstm lexicon v1 g2p=none\nbox B AA K S\nthe DH AH QQ\n"))
    with pytest.raises(LexiconError, match=r"bad\.txt\.gz:3: unknown phone 'QQ'"):
        Lexicon.load(bad)


def test_lexicon_from_cmudict(tmp_path, toy_lexicon, toy_g2p):
    lines = [f"{w} {' '.join(p[0])}" for w, p in itertools.islice(toy_lexicon.items(), 200)]
    path = write(tmp_path / "toy.dict", "\n".join(lines) + "\nx-ray EH1 K S R EY2\n")
    lex = Lexicon.from_cmudict(path)
    assert len(lex) == 200 and lex.g2p is not None and "x-ray" not in lex
    assert lex.pronounce("mixbox") == ("M", "IY", "K", "S", "B", "OW", "K", "S")
    assert Lexicon.from_cmudict(path, g2p=False).g2p is None
    assert Lexicon.from_cmudict(path, g2p=toy_g2p).g2p is toy_g2p
    g2p_file = toy_g2p.save(tmp_path / "g.npz")
    assert Lexicon.from_cmudict(path, g2p=g2p_file).pronounce("sox") == ("S", "OW", "K", "S")
    # a plain CMUdict-format file loads as a lexicon without G2P
    assert Lexicon.load(path).g2p is None and len(Lexicon.load(path)) == 200
