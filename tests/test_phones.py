"""Phone units: the model format's ``units``/``lexicon`` fields, lexicon decoding, and a phone model trained end to end.

The end-to-end test reuses ``test_learning``'s synthetic tone task (letters a/b/c are tone bursts, a space is a noise
burst) with a lexicon that spells every letter as one phone (a: AA, b: B, c: K): a phone model trained on it and
decoded through that lexicon must write the same words the character model does.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from speechlstm.decoding import Decoder, HotwordError
from speechlstm.errors import ModelError
from speechlstm.lexicon import PHONES, G2P, Lexicon
from speechlstm.lm import build_lm
from speechlstm.model import ModelConfig, load_model, random_weights, save_model

PHONE_TOKENS = ["<blank>", " "] + list(PHONES)
LETTER_PHONES = {"a": "AA", "b": "B", "c": "K"}


def phone_config(**kw) -> ModelConfig:
    cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    cfg.tokens, cfg.units, cfg.lexicon_file = list(PHONE_TOKENS), "phones", "lexicon.txt.gz"
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def log_probs_of(units, tokens=PHONE_TOKENS, peak=0.9):
    """Log-probs whose best path spells ``units`` (one frame each; ``"<blank>"`` for a blank frame)."""
    p = np.full((len(units), len(tokens)), 0.01, np.float32)
    for t, u in enumerate(units):
        p[t, tokens.index(u)] = peak
    return np.log(p / p.sum(1, keepdims=True))


# ---------------------------------------------------------------- model format
def test_phone_model_round_trip_with_its_lexicon(tmp_path):
    cfg = phone_config()
    lex = Lexicon({"hi": [("HH", "AY")], "high": [("HH", "AY")]})
    lex.save(tmp_path / cfg.lexicon_file)
    save_model(tmp_path, cfg, random_weights(cfg))
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["format_version"] == 2 and raw["units"] == "phones" and raw["lexicon"] == "lexicon.txt.gz"
    m = load_model(tmp_path)
    assert m.config.units == "phones" and m.lexicon.pronunciations("high") == [("HH", "AY")]
    assert "CMUdict phones" in m.summary() and "v2" in m.summary()


def test_character_models_stay_version_1(tmp_path):
    cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    save_model(tmp_path, cfg, random_weights(cfg))
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["format_version"] == 1 and "units" not in raw and "lexicon" not in raw
    m = load_model(tmp_path)
    assert m.config.units == "chars" and m.lexicon is None


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(lexicon="../lex.txt.gz"), "needs 'lexicon': a file name"),
    (lambda c: c.pop("lexicon"), "needs 'lexicon'"),
    (lambda c: c.update(units="syllables"), "'units' must be one of"),
    (lambda c: c.update(format_version=1), "need format_version 2"),
    (lambda c: c.update(tokens=c["tokens"][:-1] + ["zh"]), "must be CMUdict phones"),
    (lambda c: c.update(tokens=[t for t in c["tokens"] if t != " "]), "need the word boundary"),
])
def test_phone_config_validation(tmp_path, edit, message):
    cfg = phone_config()
    Lexicon({"hi": [("HH", "AY")]}).save(tmp_path / cfg.lexicon_file)
    save_model(tmp_path, cfg, random_weights(cfg))
    raw = json.loads((tmp_path / "config.json").read_text())
    edit(raw)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=message):
        load_model(tmp_path)


def test_lexicon_field_is_only_for_phone_models(tmp_path):
    cfg = ModelConfig.example(hidden_size=8, num_layers=1)
    save_model(tmp_path, cfg, random_weights(cfg))
    raw = json.loads((tmp_path / "config.json").read_text())
    raw.update(format_version=2, lexicon="lexicon.txt.gz")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="only for phone models"):
        load_model(tmp_path)


def test_missing_or_corrupt_lexicon_is_a_model_error(tmp_path):
    cfg = phone_config()
    save_model(tmp_path, cfg, random_weights(cfg))
    with pytest.raises(ModelError, match="missing pronunciation lexicon"):
        load_model(tmp_path)
    (tmp_path / cfg.lexicon_file).write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ModelError, match="lexicon"):
        load_model(tmp_path)


# ---------------------------------------------------------------- lexicon decoding
@pytest.fixture
def homophones():
    lex = Lexicon({"to": [("T", "UW")], "two": [("T", "UW")], "too": [("T", "UW")],
                   "cats": [("K", "AE", "T", "S")], "eat": [("IY", "T")]})
    lm = build_lm([["two", "cats"]] * 5 + [["to", "eat"]] * 5 + [["too"]], order=2)
    return lex, lm


def test_homophones_are_chosen_by_the_lm(homophones):
    lex, lm = homophones
    cats = log_probs_of(["T", "UW", "<blank>", " ", "K", "AE", "T", "S"])
    eat = log_probs_of(["T", "UW", " ", "IY", "T"])
    dec = Decoder(PHONE_TOKENS, lexicon=lex, lm=lm)
    h = dec.decode(cats)[0]
    assert h.text == "two cats" and h.words == ["two", "cats"]
    assert [t for t in h.token_ids.tolist()] == [PHONE_TOKENS.index(u) for u in ["T", "UW", " ", "K", "AE", "T", "S"]]
    assert dec.decode(eat)[0].text == "to eat"
    assert dec.with_params(alpha=1.0, beam_width=1).decode(cats)[0].text == "two cats"
    # without an LM, every lexicon word is allowed and homophones keep the lexicon's order
    assert Decoder(PHONE_TOKENS, lexicon=lex).decode(cats)[0].text == "to cats"


def test_units_outside_the_lexicon_are_never_written(homophones):
    lex, lm = homophones
    lp = log_probs_of(["K", "UW", " ", "K", "AE", "T", "S"])  # "K UW" spells no word: the nearest path that does
    for dec in (Decoder(PHONE_TOKENS, lexicon=lex), Decoder(PHONE_TOKENS, lexicon=lex, lm=lm, beam_width=4)):
        for h in dec.decode(lp, nbest=4):
            assert all(w in lex for w in h.words), h.words
            assert h.text == " ".join(h.words)


def test_hotwords_of_a_phone_model_use_the_g2p(homophones):
    lex, lm = homophones
    lex.g2p = G2P.fit({"kit": [("K", "IH", "T")], "tick": [("T", "IH", "K")], "at": [("AE", "T")],
                       "ta": [("T", "AE")]})
    assert "kat" not in lex and lex.pronounce("kat") == ("K", "AE", "T")
    lp = log_probs_of(["K", "AE", "T"])
    plain = Decoder(PHONE_TOKENS, lexicon=lex, lm=lm).decode(lp)[0].text
    assert plain != "kat"
    assert Decoder(PHONE_TOKENS, lexicon=lex, lm=lm, hotwords="kat:5").decode(lp)[0].text == "kat"
    no_g2p = Lexicon({"to": [("T", "UW")]})
    with pytest.raises(HotwordError, match="no pronunciation for 'zz'"):
        Decoder(PHONE_TOKENS, lexicon=no_g2p, hotwords="to zz")


def test_grammar_of_a_phone_model_sums_pronunciations_and_rejects_other_speech():
    from speechlstm.grammar import Grammar, GrammarError

    lex = Lexicon({"tomato": [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")],
                   "soup": [("S", "UW", "P")], "stop": [("S", "T", "AA", "P")]})
    g = Grammar.from_lines(["tomato soup", "stop"])
    c = g.compile(PHONE_TOKENS, 0, lex)
    assert len(c.labels) == 3 and c.owner.tolist() == [0, 0, 1]
    said = ["T", "AH", "M", "AA", "T", "OW", " ", "S", "UW", "P"]  # the second pronunciation
    lp = log_probs_of(said)
    m = g.match(lp, PHONE_TOKENS, 0, lexicon=lex)
    assert m.matched and m.text == "tomato soup" and m.confidence > 0.5
    assert [PHONE_TOKENS[i] for i in m.label_ids] == said  # the pronunciation that was said, for word times
    # the phrase's score is the sum over its pronunciations
    one = [Grammar.from_lines(["tomato soup"]).phrase_log_probs(
        lp, PHONE_TOKENS, 0, Lexicon({"tomato": [p], "soup": [("S", "UW", "P")]})) for p in lex.pronunciations("tomato")]
    np.testing.assert_allclose(g.phrase_log_probs(lp, PHONE_TOKENS, 0, lex)[0], np.logaddexp(one[0], one[1]))
    # other speech goes to the filler and is rejected
    m = g.match(log_probs_of(["K", "AE", "T"]), PHONE_TOKENS, 0, lexicon=lex)
    assert not m.matched and m.text == ""
    # a word outside the lexicon: the G2P, or a one-line error without one
    with pytest.raises(GrammarError, match="cannot be pronounced"):
        Grammar.from_lines(["stop the soup"]).compile(PHONE_TOKENS, 0, lex)
    lex.g2p = G2P.fit({"the": [("DH", "AH")], "top": [("T", "AA", "P")], "sup": [("S", "AH", "P")]})
    assert len(Grammar.from_lines(["stop the soup"]).compile(PHONE_TOKENS, 0, lex).labels) == 1


# ---------------------------------------------------------------- training and the engine, end to end
@pytest.fixture(scope="module")
def tone_task(tmp_path_factory):
    from test_learning import make_dataset

    d = tmp_path_factory.mktemp("phones")
    # every word of 1-4 letters of the task, each letter one phone
    words = ["".join(p) for n in range(1, 5) for p in itertools.product("abc", repeat=n)]
    lines = [f"{w} {' '.join(LETTER_PHONES[c] for c in w)}\n" for w in words]
    (d / "letters.dict").write_text("".join(lines))
    return {"dir": d, "dict": d / "letters.dict", "train": make_dataset(d, 240, seed=1, name="train"),
            "dev": make_dataset(d, 30, seed=2, name="dev"), "test": make_dataset(d, 40, seed=3, name="test")}


def test_phone_model_learns_and_transcribes_words(tone_task, tmp_path):
    from test_learning import CER_BOUND, EPOCHS, tiny_recipe

    from speechlstm.metrics import ErrorCounter
    from speechlstm.trainer import Trainer
    from speechlstm.transcribe import Recognizer

    recipe = tiny_recipe(tone_task["train"], tone_task["dev"], epochs=EPOCHS)
    recipe["model"].update(tokens="phones", lexicon=str(tone_task["dict"]))
    run = tmp_path / "run"
    trainer = Trainer(recipe, run, verbose=False)
    assert trainer.config.units == "phones" and trainer.config.tokens == PHONE_TOKENS
    assert [PHONE_TOKENS[i] for i in trainer.lexicon.labels("ab c", PHONE_TOKENS)] == ["AA", "B", " ", "K"]
    result = trainer.train()
    assert result["status"] == "finished"
    assert (run / "lexicon.txt.gz").is_file()
    card = (run / "model" / "README.md").read_text()
    assert card.startswith("# synthetic-tones") and "Phone-level" in card and "phone error rate" in card

    model = load_model(result["model_dir"])
    assert model.config.units == "phones" and "abca" in model.lexicon
    counter = ErrorCounter()
    rec = Recognizer(result["model_dir"], beam_width=1)
    with open(tone_task["test"], encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    for it in items:
        t = rec.transcribe(tone_task["dir"] / it["audio"])
        assert all(w.word in model.lexicon for w in t.words) and t.text == " ".join(w.word for w in t.words)
        counter.add(it["text"], t.text)
    assert counter.cer < CER_BOUND, counter.to_dict()
    # grammar mode: the phrases are pronounced through the lexicon
    phrases = sorted({it["text"] for it in items})
    g = Recognizer(result["model_dir"], grammar=phrases, grammar_threshold=0.0)
    right = 0
    for it in items:
        t = g.transcribe(tone_task["dir"] / it["audio"])
        assert t.matched and t.text in phrases and [w.word for w in t.words] == t.text.split()
        right += t.text == it["text"]
    assert right >= 0.75 * len(items), (right, len(items))


def test_encoder_warm_start_gets_a_new_output_layer(tone_task, tmp_path):
    from test_learning import tiny_recipe

    from speechlstm.trainer import Trainer

    chars = Trainer(tiny_recipe(tone_task["train"], None, epochs=1), tmp_path / "chars", verbose=False)
    char_dir = chars.train()["model_dir"]
    char_model = load_model(char_dir)

    recipe = tiny_recipe(tone_task["train"], None, epochs=1)
    recipe["model"].update(tokens="phones", lexicon=str(tone_task["dict"]), init=str(char_dir))
    with pytest.raises(ValueError, match="tokens differ"):
        Trainer(recipe, tmp_path / "all", verbose=False)
    recipe["model"]["init_layers"] = "encoder"
    phones = Trainer(recipe, tmp_path / "enc", verbose=False)
    for k, w in char_model.weights.items():
        if k.startswith("lstm."):
            assert np.array_equal(phones.params[k], w), k
    assert phones.params["output.weight"].shape == (len(PHONE_TOKENS), 48)
    # an export with a word LM: the LM's words outside the lexicon get G2P pronunciations in the model's lexicon
    from speechlstm.lm import build_lm

    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    build_lm([["abca", "bacab"], ["abca"]], order=2).save(lm_dir / "lm.bin")
    assert "bacab" not in phones.lexicon
    out = phones.export(tmp_path / "exported", lm=lm_dir)
    exported = load_model(out)
    assert "bacab" in exported.lexicon and exported.lexicon.pronunciations("bacab") == \
        phones.lexicon.pronunciations("bacab")
    assert (out / "lm.bin").is_file() and len(exported.lexicon) == len(phones.lexicon) + 1
    recipe["model"]["init_layers"] = "decoder"
    with pytest.raises(ValueError, match="init_layers must be"):
        Trainer(recipe, tmp_path / "bad", verbose=False)
