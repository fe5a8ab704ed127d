"""Command grammars: parsing, slots, one-line errors, matching and rejection on synthetic CTC outputs."""

import numpy as np
import pytest

from speechlstm.grammar import MAX_PHRASES, Grammar, GrammarError, load_grammar
from speechlstm.model import ModelConfig

TOKENS = ModelConfig.example().tokens  # blank, space, apostrophe, a-z


def says(text, p=0.9, noise=None, seed=0):
    """Log-probs of a network that clearly says ``text``: each character for 2 frames, a blank between."""
    seq = [0, 0, 0]
    for c in text:
        seq += [TOKENS.index(c)] * 2 + [0]
    seq += [0, 0]
    V = len(TOKENS)
    probs = np.full((len(seq), V), (1 - p) / (V - 1), np.float64)
    probs[np.arange(len(seq)), seq] = p
    if noise:
        rng = np.random.default_rng(seed)
        probs *= np.exp(rng.standard_normal(probs.shape) * noise)
        probs /= probs.sum(1, keepdims=True)
    return np.log(probs).astype(np.float32)


def test_parse_comments_slots_normalization():
    g = Grammar.from_lines([
        "# a comment", "", "Turn ON the lights!   # trailing comment", "turn on the lights",
        "set a timer for {number} minutes", "{name} = Alice | bob", "call {name}", "press {digit}",
        "floor {number:1-3}", "{room} = kitchen | {name}'s room", "lights in the {room}",
    ], source="cmds.txt")
    p = g.phrases
    assert p[0] == "turn on the lights" and p.count("turn on the lights") == 1  # normalized and de-duplicated
    assert "set a timer for zero minutes" in p and "set a timer for ninety nine minutes" in p
    assert "set a timer for one hundred minutes" not in p
    assert sum(x.startswith("set a timer") for x in p) == 100
    assert {"call alice", "call bob"} <= set(p)
    assert sum(x.startswith("press ") for x in p) == 10 and "press seven" in p
    assert [x for x in p if x.startswith("floor")] == ["floor one", "floor two", "floor three"]
    assert {"lights in the kitchen", "lights in the alice's room", "lights in the bob's room"} <= set(p)
    assert g.lines[p.index("call bob")] == 7
    assert "press 5" not in g and "press five" in g


@pytest.mark.parametrize("lines, line, what", [
    (["yes", "call {who}"], 2, "unknown slot {who}"),
    (["yes", "go {number"], 2, "unbalanced"),
    (["{x} = a | b", "{x} = c"], 2, "defined twice"),
    (["{x} = a {x}", "say {x}"], 1, "refers to itself"),
    (["{x} = a | ", "say {x}"], 1, "empty alternative"),
    (["yes", "!!!"], 2, "no words"),
    (["a | b"], 1, "'|' is only allowed"),
    (["a = b"], 1, "'=' is only allowed"),
    (["{} hello"], 1, "empty slot"),
    (["{number} = one | two"], 1, "bad slot name"),
    (["floor {number:9-2}"], 1, "bad range"),
    (["{number} {number} {number}"], 1, f"more than {MAX_PHRASES}"),
])
def test_errors_name_file_and_line(lines, line, what):
    with pytest.raises(GrammarError) as exc:
        Grammar.from_lines(lines, source="g.txt")
    msg = str(exc.value)
    assert msg.startswith(f"g.txt:{line}: ") and what in msg and "\n" not in msg, msg


def test_file_errors(tmp_path):
    with pytest.raises(GrammarError, match="no such grammar file"):
        Grammar.from_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(GrammarError, match=r"empty\.txt: the grammar has no phrase"):
        Grammar.from_file(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes(b"yes\nno\ncaf\xe9\n")
    with pytest.raises(GrammarError, match=r"latin1\.txt:3: not UTF-8"):
        Grammar.from_file(tmp_path / "latin1.txt")
    with pytest.raises(GrammarError, match="is a directory"):
        Grammar.from_file(tmp_path)
    with pytest.raises(GrammarError, match="empty list"):
        load_grammar([])
    (tmp_path / "ok.txt").write_text("yes\nno\n")
    assert load_grammar(tmp_path / "ok.txt").phrases == ["yes", "no"]
    assert load_grammar(str(tmp_path / "ok.txt")).source.endswith("ok.txt")


def test_phrase_log_probs_exact():
    g = Grammar.from_lines(["yes", "no", "yes no"])
    lp = says("yes")
    s = g.phrase_log_probs(lp, TOKENS)
    assert s[0] > -1.5 and s[1] < s[0] - 20 and s[2] < s[0] - 10
    assert g.phrase_log_probs(lp[:0], TOKENS).tolist() == [-np.inf] * 3


COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


@pytest.mark.parametrize("word", COMMANDS)
def test_in_grammar_words_are_recognized(word):
    m = Grammar.from_lines(COMMANDS).match(says(word, p=0.97, noise=0.3, seed=len(word)), TOKENS)
    assert m.matched and m.text == word and m.confidence > 0.9


@pytest.mark.parametrize("word", ["bird", "six", "house", "dog", "yesterday"])
def test_out_of_grammar_words_are_rejected(word):
    m = Grammar.from_lines(COMMANDS).match(says(word, noise=0.3), TOKENS)
    assert not m.matched and m.text == "" and m.confidence < 0.5
    assert m.phrase in COMMANDS  # the nearest phrase is still reported, with its low confidence
    # without the filler the same audio is forced onto a phrase: the filler is what rejects it
    forced = Grammar.from_lines(COMMANDS).match(says(word, noise=0.3), TOKENS, filler_beam=0)
    assert forced.confidence > m.confidence


def test_slots_and_alternatives():
    g = Grammar.from_lines(["set a timer for {number} minutes", "cancel the timer"])
    m = g.match(says("set a timer for forty two minutes"), TOKENS, nbest=3)
    assert m.matched and m.text == "set a timer for forty two minutes"
    assert len(m.alternatives) == 3 and m.alternatives[0]["text"] == m.text
    assert m.alternatives[0]["score"] >= m.alternatives[1]["score"] >= m.alternatives[2]["score"]
    assert sum(a["confidence"] for a in m.alternatives) <= 1.0 + 1e-9


def test_threshold():
    g = Grammar.from_lines(["yes", "yet"])
    lp = says("yes", p=0.6, noise=0.8, seed=3)
    m0 = g.match(lp, TOKENS, threshold=0.0)
    m1 = g.match(lp, TOKENS, threshold=1.0)
    assert m0.matched and m0.text in ("yes", "yet")
    assert not m1.matched or m1.confidence == 1.0
    assert m0.confidence == m1.confidence
    with pytest.raises(ValueError, match="threshold"):
        g.match(lp, TOKENS, threshold=1.5)


def test_empty_audio_is_no_match():
    m = Grammar.from_lines(["yes"]).match(np.zeros((0, len(TOKENS)), np.float32), TOKENS)
    assert not m.matched and m.confidence == 0.0 and m.text == ""


def test_unspellable_phrase():
    with pytest.raises(GrammarError, match=r"g\.txt:2: phrase 'no' cannot be spelled"):
        Grammar.from_lines(["yes", "no"], source="g.txt").compile(["_", "y", "e", "s"], 0)


def test_evaluate_grammar_tool(burst_model_dir, tmp_path, capsys):
    """End to end on a tiny manifest: the burst model says 'a a a'; 'a a a' is in grammar, 'b' is not."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    import soundfile as sf

    from conftest import SR, burst_audio

    tools = Path(__file__).resolve().parent.parent / "tools"
    sys.path.insert(0, str(tools))
    spec = importlib.util.spec_from_file_location("evaluate_grammar", tools / "evaluate_grammar.py")
    eg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eg)
    lines = []
    for i, text in enumerate(["a a a", "a a a", "b", "b c"]):
        sf.write(tmp_path / f"u{i}.wav", burst_audio(seed=i), SR, subtype="PCM_16")
        lines.append(json.dumps({"id": f"u{i}", "audio": f"u{i}.wav", "text": text, "source": "x", "duration": 2.5}))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "g.txt").write_text("a a a\nb\n")
    assert eg.main([str(burst_model_dir), str(tmp_path / "m.jsonl"), "--grammar", str(tmp_path / "g.txt"),
                    "--sources", ""]) == 0
    s = json.loads(capsys.readouterr().out.splitlines()[-1])
    a = s["at_threshold"]
    assert (a["in_grammar"], a["out_of_grammar"]) == (3, 1)
    # the audio always says "a a a": right for 2 of the 3 in-grammar clips, a false accept for the other one
    assert a["accuracy"] == pytest.approx(2 / 3, abs=1e-3) and a["substitution"] == pytest.approx(1 / 3, abs=1e-3)
    assert a["false_accept"] == 1.0
    assert eg.rates([("yes", "yes", 0.4, True)], 0.5)["false_reject"] == 1.0
