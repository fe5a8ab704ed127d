"""Command line: output formats, several files, bad input (one line, exit 2, no partial output)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, burst_audio
from speechlstm.cli import main


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "zero.wav", np.zeros(0, np.float32), SR)
    (d / "notes.txt").write_text("this is not audio\n" * 20)
    good = d / "good.wav"
    sf.write(good, burst_audio(), SR, subtype="PCM_16")
    (d / "truncated.wav").write_bytes(good.read_bytes()[:30])
    nan = burst_audio()
    nan[1000] = np.nan
    sf.write(d / "nan.wav", nan, SR, subtype="FLOAT")
    (d / "adir").mkdir()
    return d


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_transcribe_txt_and_json(burst_model_dir, burst_wav, capsys):
    code, out, err = run(["transcribe", burst_wav, "--model", burst_model_dir], capsys)
    assert (code, out, err) == (0, "a a a\n", "")
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--format", "json", "--beam", "1"],
                       capsys)
    d = json.loads(out)
    assert code == 0 and d["text"] == "a a a" and d["file"] == str(burst_wav)
    assert [w["word"] for w in d["words"]] == ["a"] * 3
    assert {"start", "end", "confidence"} <= set(d["words"][0])
    assert d["duration"] == 2.5 and d["model"] == "burst-test"


def test_several_files_with_bad_ones(burst_model_dir, bad_files, capsys):
    names = ["good.wav", "missing.wav", "adir", "empty.wav", "zero.wav", "notes.txt", "truncated.wav", "nan.wav",
             "good.wav"]
    code, out, err = run(["transcribe", *[bad_files / n for n in names], "--model", burst_model_dir], capsys)
    assert code == 2
    assert out.splitlines() == [f"{bad_files / 'good.wav'}: a a a"] * 2
    lines = err.splitlines()
    assert len(lines) == 7, err
    for n, line in zip(names[1:-1], lines):
        assert line.startswith("speechlstm: error: ") and n in line, line
    assert "Traceback" not in err
    assert "no such file" in lines[0] and "directory" in lines[1]
    assert "NaN" in lines[6] or "nan" in lines[6].lower()


def test_output_dir_no_partial_files(burst_model_dir, bad_files, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run(["transcribe", bad_files / "good.wav", bad_files / "notes.txt", bad_files / "nan.wav",
                          "--model", burst_model_dir, "--output-dir", out_dir, "--format", "json"], capsys)
    assert code == 2 and out == ""
    assert sorted(os.listdir(out_dir)) == ["good.json"]
    assert json.loads((out_dir / "good.json").read_text())["text"] == "a a a"


def test_stdin(burst_model_dir, burst_wav, monkeypatch, capsys):
    import io

    class FakeStdin:
        buffer = io.BytesIO(burst_wav.read_bytes())

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    code, out, _ = run(["transcribe", "-", "--model", burst_model_dir], capsys)
    assert (code, out) == (0, "a a a\n")


def test_model_and_option_errors(burst_model_dir, burst_wav, tmp_path, capsys):
    code, out, err = run(["transcribe", burst_wav, "--model", tmp_path / "nope"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "no such model directory" in err
    from speechlstm.gpu import cuda_available

    if not cuda_available():
        code, _, err = run(["transcribe", burst_wav, "--model", burst_model_dir, "--device", "cuda"], capsys)
        assert code == 2 and err.count("\n") == 1 and "cuda" in err
    with pytest.raises(SystemExit) as exc:
        main(["transcribe", str(burst_wav), "--beam", "zero"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_info(burst_model_dir, capsys):
    code, out, _ = run(["info", burst_model_dir], capsys)
    assert code == 0 and "burst-test" in out and "parameters:" in out
    code, out, _ = run(["info", burst_model_dir, "--json"], capsys)
    d = json.loads(out)
    assert d["parameters"] > 0 and d["architecture"]["hidden_size"] == 4


def test_console_entry_point_subprocess(burst_model_dir, bad_files):
    """`python -m speechlstm` end to end: good file printed, bad one reported in one line, exit status 2."""
    p = subprocess.run([sys.executable, "-m", "speechlstm", "transcribe", str(bad_files / "good.wav"),
                        str(bad_files / "truncated.wav"), "--model", str(burst_model_dir)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert p.stdout.strip().endswith("a a a")
    assert len(p.stderr.strip().splitlines()) == 1 and "truncated.wav" in p.stderr


# ---------------------------------------------------------------- subtitles, n-best, grammar, LM options


def test_srt_vtt_to_stdout_and_output_dir(burst_model_dir, burst_wav, tmp_path, capsys):
    from test_formats import parse_srt, parse_vtt

    code, out, err = run(["transcribe", burst_wav, "--model", burst_model_dir, "--format", "srt"], capsys)
    assert code == 0 and err == ""
    cues = parse_srt(out)
    assert " ".join(" ".join(c[2]) for c in cues) == "a a a" and cues[0][0] == pytest.approx(300, abs=50)
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--format", "vtt"], capsys)
    assert code == 0 and " ".join(" ".join(c[2]) for c in parse_vtt(out)) == "a a a"
    out_dir = tmp_path / "subs"
    for fmt in ("srt", "vtt"):
        code, out, _ = run(["transcribe", burst_wav, burst_wav, "--model", burst_model_dir, "--format", fmt,
                            "--output-dir", out_dir], capsys)
        assert code == 0 and out == ""
    assert sorted(os.listdir(out_dir)) == ["bursts.srt", "bursts.vtt"]
    assert parse_vtt((out_dir / "bursts.vtt").read_text()) and parse_srt((out_dir / "bursts.srt").read_text())
    # several files as subtitles on stdout make no sense: one line, status 2
    code, out, err = run(["transcribe", burst_wav, burst_wav, "--model", burst_model_dir, "--format", "srt"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "--output-dir" in err


def test_nbest_txt_and_json(burst_model_dir, burst_wav, capsys):
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--nbest", "3"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and lines[0] == "a a a" and len(set(lines)) == 3
    code, out, _ = run(["transcribe", burst_wav, burst_wav, "--model", burst_model_dir, "--nbest", "2"], capsys)
    assert out.splitlines()[:2] == [f"{burst_wav}: a a a", f"{burst_wav}: {lines[1]}"] and len(out.splitlines()) == 4
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--nbest", "3", "--format", "json"],
                       capsys)
    d = json.loads(out)
    assert [a["text"] for a in d["alternatives"]] == lines and d["text"] == "a a a"


def test_grammar_cli(burst_model_dir, burst_wav, tmp_path, capsys):
    g = tmp_path / "cmds.txt"
    g.write_text("# commands\na a a\na\n")
    code, out, err = run(["transcribe", burst_wav, "--model", burst_model_dir, "--grammar", g], capsys)
    assert (code, out, err) == (0, "a a a\n", "")
    g.write_text("a a\na\n")
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--grammar", g], capsys)
    assert (code, out) == (0, "no match\n")
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--grammar", g, "--format", "json"],
                       capsys)
    d = json.loads(out)
    assert d["matched"] is False and d["text"] == "" and d["confidence"] < 0.5
    code, out, _ = run(["transcribe", burst_wav, "--model", burst_model_dir, "--grammar", g,
                        "--grammar-threshold", "0"], capsys)
    assert code == 0 and out in ("a a\n", "a\n")


@pytest.mark.parametrize("args, what", [
    (["--grammar", "{dir}/missing.txt"], "missing.txt: no such grammar file"),
    (["--grammar", "{dir}/bad.txt"], "bad.txt:3: unknown slot {who}"),
    (["--grammar-threshold", "0.5"], "--grammar-threshold needs --grammar"),
    (["--lm", "{dir}/missing.bin"], "missing.bin: no such language model file"),
    (["--lm", "{dir}/bad.arpa"], "bad.arpa:2"),
    (["--hotwords", ""], "hotwords: the list is empty"),
    (["--hotwords", "lights:loud"], "weight 'loud' is not a number"),
])
def test_bad_decoding_options_one_line(burst_model_dir, burst_wav, tmp_path, capsys, args, what):
    (tmp_path / "bad.txt").write_text("yes\nno\ncall {who}\n")
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=x\n")
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    code, out, err = run(["transcribe", burst_wav, "--model", burst_model_dir, *args], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and what in err, err
    assert err.startswith("speechlstm: error: ")


@pytest.mark.parametrize("args", [["--alpha", "much"], ["--beta", "nan"], ["--grammar-threshold", "1.5"],
                                  ["--nbest", "0"], ["--format", "doc"]])
def test_bad_numbers_one_line(burst_wav, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["transcribe", str(burst_wav), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and args[0] in err


def test_lm_options(burst_model_dir, burst_wav, tmp_path, capsys):
    from speechlstm.lm import build_lm

    build_lm([["a", "a", "a"]] * 3, order=2).save(tmp_path / "lm.bin")
    for extra in (["--lm", "none"], ["--lm", tmp_path / "lm.bin", "--alpha", "0.3", "--beta", "1"],
                  ["--hotwords", "a:2"]):
        code, out, err = run(["transcribe", burst_wav, "--model", burst_model_dir, *extra], capsys)
        assert (code, out, err) == (0, "a a a\n", "")


def test_help_defaults_match_the_library(capsys):
    from speechlstm import cli
    from speechlstm.decoding import DEFAULT_HOTWORD_WEIGHT
    from speechlstm.grammar import DEFAULT_GRAMMAR_THRESHOLD

    assert float(cli.HOTWORD_WEIGHT_HELP) == DEFAULT_HOTWORD_WEIGHT
    assert float(cli.GRAMMAR_THRESHOLD_HELP) == DEFAULT_GRAMMAR_THRESHOLD
    with pytest.raises(SystemExit):
        main(["transcribe", "--help"])
    out = capsys.readouterr().out
    for opt in ("--format", "srt", "--nbest", "--grammar", "--grammar-threshold", "--lm", "--alpha", "--beta",
                "--hotwords"):
        assert opt in out
