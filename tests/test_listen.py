"""Live capture through a real PortAudio input stream, without a sound card.

Each test runs ``speechlstm listen`` (or tools/live_mic.py) in a subprocess whose ``ALSA_CONFIG_PATH`` points at
the system's ``alsa.conf`` plus a config of ours, set before sounddevice is imported: the default capture PCM is
ALSA's ``file`` plugin (``slave.pcm "null"``, ``infile`` = raw 16-bit PCM the test wrote), behind a ``plug``
that fixes the device's rate, so PortAudio opens it like a microphone.  The plugin is not paced by a clock and
repeats stale data after the end of the file, so the tests read exactly as many samples as the file holds
(``--duration``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, burst_audio

ROOT = Path(__file__).resolve().parents[1]
ALSA_CONF_CANDIDATES = ("/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf", "/usr/local/share/alsa/alsa.conf")


@pytest.fixture(scope="module")
def portaudio():
    """Skip (with the reason) only when the PortAudio library cannot be loaded at all."""
    r = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("libportaudio2 cannot be loaded (install it: apt-get install libportaudio2): "
                    + (r.stderr.strip().splitlines() or ["?"])[-1])
    if not sys.platform.startswith("linux"):
        pytest.skip("the ALSA file-plugin capture test needs Linux")
    conf = next((p for p in ALSA_CONF_CANDIDATES if os.path.isfile(p)), None)
    assert conf is not None, f"PortAudio loads but ALSA's alsa.conf is in none of {ALSA_CONF_CANDIDATES}"
    return conf


def _pcm16(x):
    return np.clip(np.round(np.asarray(x, np.float64) * 32768), -32768, 32767).astype("<i2")


def _alsa_env(tmp_path, alsa_conf, pcm, rate):
    raw = tmp_path / f"capture_{rate}.raw"
    pcm.tofile(raw)
    conf = tmp_path / f"asound_{rate}.conf"
    conf.write_text(
        "pcm.!default {\n  type asym\n  playback.pcm \"null\"\n  capture.pcm {\n    type plug\n"
        "    slave {\n      pcm {\n        type file\n        slave.pcm \"null\"\n        file \"/dev/null\"\n"
        f"        infile \"{raw}\"\n        format \"raw\"\n      }}\n      format S16_LE\n      rate {rate}\n"
        "      channels 1\n    }\n  }\n}\n")
    return {**os.environ, "ALSA_CONFIG_PATH": f"{alsa_conf}:{conf}"}


def _two_utterances():
    x = burst_audio()
    return np.concatenate([x, x[:int(1.15 * SR)]])  # 'a a a', then 'a a' cut inside its second burst (3.65 s)


@pytest.mark.parametrize("cmd", ["cli", "tool"])
def test_listen_through_portaudio_matches_offline(portaudio, burst_model_dir, tmp_path, cmd):
    pcm = _pcm16(_two_utterances())
    env = _alsa_env(tmp_path, portaudio, pcm, SR)
    wav = tmp_path / "same.wav"
    sf.write(wav, pcm, SR, subtype="PCM_16")
    offline = subprocess.run([sys.executable, "-m", "speechlstm", "transcribe", str(wav), "--model",
                              str(burst_model_dir), "--format", "json"], capture_output=True, text=True)
    assert offline.returncode == 0, offline.stderr
    offline = json.loads(offline.stdout)
    prog = [sys.executable, "-m", "speechlstm", "listen"] if cmd == "cli" else \
        [sys.executable, str(ROOT / "tools" / "live_mic.py")]
    r = subprocess.run(prog + ["--model", str(burst_model_dir), "--duration", str(len(pcm) / SR),
                               "--format", "json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    finals = [json.loads(line) for line in r.stdout.splitlines()]
    assert [f["text"] for f in finals] == ["a a a", "a a"]
    assert " ".join(f["text"] for f in finals) == offline["text"]
    got = [w for f in finals for w in f["words"]]
    assert len(got) == len(offline["words"]) == 5
    for g, o in zip(got, offline["words"]):
        assert abs(g["start"] - o["start"]) < 0.08 and abs(g["end"] - o["end"]) < 0.08
    assert finals[-1]["end"] == round(len(pcm) / SR, 3)  # read exactly the samples of the file, then stopped


def test_listen_resamples_from_the_device_rate(portaudio, burst_model_dir, tmp_path):
    import soxr

    x48 = soxr.resample(burst_audio(), SR, 48000)
    pcm = _pcm16(x48)
    env = _alsa_env(tmp_path, portaudio, pcm, 48000)
    out = tmp_path / "notes.txt"
    out.write_text("earlier line\n")
    cmd = [sys.executable, "-m", "speechlstm", "listen", "--model", str(burst_model_dir), "--duration",
           str(len(pcm) / 48000), "--output", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # not a terminal: the finals go to the file only
    assert out.read_text() == "earlier line\na a a\n"  # appended
    devs = subprocess.run([sys.executable, "-m", "speechlstm", "listen", "--list-devices"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert devs.returncode == 0 and "default" in devs.stdout and "48000 Hz" in devs.stdout


def test_no_input_device_is_one_line(portaudio, burst_model_dir, tmp_path):
    conf = tmp_path / "playback_only.conf"
    conf.write_text('pcm.!default { type asym playback.pcm "null" }\n')
    env = {**os.environ, "ALSA_CONFIG_PATH": f"{portaudio}:{conf}"}
    for extra in ([], ["--list-devices"]):
        r = subprocess.run([sys.executable, "-m", "speechlstm", "listen", "--model", str(burst_model_dir), *extra],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 2
        assert r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("speechlstm: error: no audio input device found")
        assert "'default' (output only)" in lines[0]


def test_unknown_device_lists_the_inputs(portaudio, burst_model_dir, tmp_path):
    env = _alsa_env(tmp_path, portaudio, _pcm16(np.zeros(1600)), SR)
    r = subprocess.run([sys.executable, "-m", "speechlstm", "listen", "--model", str(burst_model_dir),
                        "--device", "no such mic"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["speechlstm: error: no input device matches 'no such mic'; input devices: "
                                     "0 'default'"]


def test_missing_portaudio_is_one_line(burst_model_dir, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "speechlstm", "listen", "--model", str(burst_model_dir)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["speechlstm: error: PortAudio library not found: install it, e.g. "
                                     "`apt-get install libportaudio2`"]


CTRL_C_SCRIPT = r"""
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import burst_audio
import speechlstm.listen as L
from speechlstm.cli import main

x = np.clip(np.round(burst_audio() * 32768), -32768, 32767).astype(np.int16)
L.import_sounddevice = lambda: None
L.find_input_device = lambda spec, sd=None: {{"index": 0, "name": "fake", "channels": 1, "samplerate": 16000.0,
                                             "default": True, "hostapi": "none"}}

def fake_capture(device, samplerate, duration=None, stop=None, **kw):
    for i in range(0, len(x), 800):
        if stop.is_set():
            return
        if i == 18400:  # inside the second burst (1.15 s): the user presses Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        yield x[i:i + 800]
    raise AssertionError("Ctrl-C did not stop the capture")

L.capture = fake_capture
sys.exit(main(["listen", "--model", {model!r}]))
"""


def test_ctrl_c_finishes_the_utterance_and_exits_0(burst_model_dir, tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT.format(tests=str(Path(__file__).parent), model=str(burst_model_dir)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a a\n"  # the open utterance, cut where Ctrl-C came, is finished and printed
    assert r.stderr == ""


class _Tty:
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)

    def flush(self):
        self.parts.append("<flush>")

    def isatty(self):
        return True


def test_renderer_terminal_partials_in_place_and_final_lines(tmp_path):
    from speechlstm.listen import Renderer
    from speechlstm.stream import Final, Partial

    tty = _Tty()
    r = Renderer(tty)
    r(Partial("hel"))
    r(Partial("hello wor"))
    r(Final("hello world", [], 0.0, 1.0))
    r(Final("", [], 1.0, 2.0))
    r.close()
    assert "".join(tty.parts) == ("\r\x1b[Khel<flush>\r\x1b[Khello wor<flush>\r\x1b[Khello world\n<flush><flush>")
    out = tmp_path / "o.jsonl"
    tty = _Tty()
    r = Renderer(tty, fmt="json", output=str(out))
    r(Partial("x"))
    r(Final("x y", [], 0.5, 1.25))
    r.close()
    assert json.loads(out.read_text()) == {"text": "x y", "start": 0.5, "end": 1.25, "words": []}
    assert "".join(tty.parts).endswith("\r\x1b[Kx y\n<flush>")


def test_listen_api_with_a_source(burst_model_dir):
    from speechlstm import Recognizer
    from speechlstm.listen import listen
    from speechlstm.stream import Final

    events = []
    x = burst_audio()
    finals = listen(Recognizer(burst_model_dir), source=[x[i:i + 800] for i in range(0, len(x), 800)],
                    samplerate=SR, duration=1.15, on_event=events.append)
    assert [f.text for f in finals] == ["a a"]
    assert isinstance(events[-1], Final) and events[-1].end == pytest.approx(1.15)
