"""Synthesize an English TTS training corpus with espeak-ng, festival and flite.

Sentences are drawn (seeded, optionally weighted per file) from ``shared/data/text/*.txt``, spoken by every
English voice the installed engines offer (espeak-ng accents x variants, festival diphone/HTS voices, flite
built-in voices) with a random rate and pitch per utterance, resampled to 16 kHz mono FLAC with soxr and listed
in ``train.jsonl`` / ``dev.jsonl`` manifests in the shared format (see ``shared/data/README.md``) with two extra
fields, ``engine`` and ``voice`` (plus the synthesis parameters).  Utterances spoken by a held-out voice go to
``dev.jsonl``.

Everything about utterance ``i`` (sentence, voice, rate, pitch) depends only on the seed, ``i`` and the voices
installed, so reruns and runs with any ``--jobs`` give the same corpus; espeak-ng and flite output is
bit-identical across runs.  Existing valid FLAC files are kept (the run resumes), manifests are rebuilt from the
files that exist, and every file is written to a temporary name and renamed.

Install the engines (Debian/Ubuntu)::

    apt-get install -y --no-install-recommends espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

Examples
--------
::

    python tools/make_corpus.py --recipe recipes/corpus.json --out /tmp/corpus --hours 0.2 --jobs 2
    python tools/make_corpus.py --out /tmp/tiny --utterances 6 --engines espeak-ng

Generated audio is never committed; only this script and ``recipes/corpus.json`` are.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000
ENGINES = ("espeak-ng", "festival", "flite")
INSTALL_COMMAND = ("apt-get install -y --no-install-recommends espeak-ng flite festival "
                   "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts")
#: flite voices that are general-purpose English voices (``awb_time`` is a talking-clock voice).
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
TEXT_LICENSES = {
    "ljspeech": "Public domain", "kjv": "Public domain", "state_union": "Public domain",
    "inaugural": "Public domain", "movie_reviews": "CC BY 4.0", "wikitext2": "CC BY-SA",
}
ENGINE_LICENSES = {
    "espeak-ng": "espeak-ng (GPL-3.0-or-later)",
    "festival": "festival + festvox voice (CMU/Edinburgh, free; Debian festvox-*)",
    "flite": "flite (CMU, BSD-style)",
}
_VALID_TEXT = re.compile(r"^[a-z']+( [a-z']+)*$")
BATCH = 64  # utterances planned per step of an --hours run (independent of --jobs, for determinism)


def install_hint() -> str:
    """Return the Debian command that installs every supported TTS engine and voice.

    Returns
    -------
    str
        The ``apt-get install`` command line.
    """
    return INSTALL_COMMAND


def repo_root() -> Path:
    """Return the repository root (the parent of ``tools/``)."""
    return Path(__file__).resolve().parent.parent


def default_text_dir() -> Path | None:
    """Find ``shared/data/text`` in the nearest ``shared/`` folder above the repository.

    Returns
    -------
    pathlib.Path or None
        The text folder, or None when there is none.
    """
    for parent in [repo_root(), *repo_root().parents]:
        cand = parent / "shared" / "data" / "text"
        if cand.is_dir():
            return cand
    return None


# ----------------------------------------------------------------------------------------------- voices

@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    Attributes
    ----------
    engine : str
        ``espeak-ng``, ``festival`` or ``flite``.
    voice : str
        Engine voice name (espeak-ng language code, festival voice, flite voice).
    variant : str or None
        espeak-ng variant name, or None.
    """

    engine: str
    voice: str
    variant: str | None = None

    @property
    def speaker(self) -> str:
        """Speaker id ``engine:voice[+variant]``."""
        return f"{self.engine}:{self.voice}" + (f"+{self.variant}" if self.variant else "")


def _run(cmd, **kw) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, **kw).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _espeak_table(arg: str) -> list[list[str]]:
    rows = []
    for line in _run(["espeak-ng", f"--voices={arg}"]).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            rows.append(parts)
    return rows


def discover_voices(engines=ENGINES) -> dict[str, list[Voice]]:
    """List the English voices installed for each engine, sorted.

    espeak-ng: every ``--voices=en`` voice that is not an MBROLA voice (``mb/`` files need the separate mbrola
    program and data) crossed with every variant of ``--voices=variant`` plus the plain voice.  festival: the
    English voices of ``(voice.list)``.  flite: the general-purpose voices of ``flite -lv``.

    Parameters
    ----------
    engines : iterable of str
        Engines to query; those not installed give an empty list.

    Returns
    -------
    dict
        Engine name -> list of `Voice`.
    """
    out: dict[str, list[Voice]] = {}
    for engine in engines:
        voices: list[Voice] = []
        if engine == "espeak-ng" and shutil.which("espeak-ng"):
            accents = sorted({r[1] for r in _espeak_table("en") if not r[4].startswith(("mb/", "!v/"))})
            variants = sorted({r[4].split("/", 1)[1] for r in _espeak_table("variant") if r[4].startswith("!v/")})
            voices = [Voice(engine, a, v) for a in accents for v in [None, *variants]]
        elif engine == "festival" and shutil.which("festival") and shutil.which("text2wave"):
            listed = re.findall(r"[\w-]+", _run(["festival", "--pipe"], input="(print (voice.list))\n"))
            voices = [Voice(engine, v) for v in sorted(set(listed) & set(FESTIVAL_VOICES))]
        elif engine == "flite" and shutil.which("flite"):
            text = _run(["flite", "-lv"])
            listed = text.split(":", 1)[1].split() if ":" in text else []
            voices = [Voice(engine, v) for v in sorted(set(listed) & set(FLITE_VOICES))]
        out[engine] = voices
    return out


def is_held_out(voice: Voice, patterns) -> bool:
    """Whether ``voice.speaker`` matches one of the fnmatch ``patterns`` (e.g. ``"flite:rms"``, ``"espeak-ng:*+Andrea"``)."""
    return any(fnmatch.fnmatchcase(voice.speaker, p) for p in patterns)


# ----------------------------------------------------------------------------------------------- text

def load_sentences(text_dir: Path, weights: dict[str, float] | None, max_words: int, min_words: int = 1):
    """Load usable sentences per text file.

    Parameters
    ----------
    text_dir : pathlib.Path
        Folder of ``*.txt`` files, one normalized sentence per line.
    weights : dict or None
        File stem -> sampling weight; files absent or with weight 0 are skipped.  None: all files, weight 1.
    max_words, min_words : int
        Sentences with more than ``max_words`` or fewer than ``min_words`` words are skipped, and so are lines
        with characters outside ``a-z``, apostrophe and single spaces.

    Returns
    -------
    list of tuple
        ``(stem, weight, sentences)`` sorted by stem, only files with at least one sentence.
    """
    result = []
    for path in sorted(Path(text_dir).glob("*.txt")):
        w = 1.0 if weights is None else float(weights.get(path.stem, 0.0))
        if w <= 0:
            continue
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if _VALID_TEXT.match(line) and min_words <= line.count(" ") + 1 <= max_words:
                lines.append(line)
        if lines:
            result.append((path.stem, w, lines))
    return result


# ----------------------------------------------------------------------------------------------- plan

@dataclass(frozen=True)
class Utterance:
    """Everything needed to synthesize utterance ``index`` (see `plan_utterance`)."""

    index: int
    voice: Voice
    text: str
    text_file: str
    rate: float
    pitch: float

    @property
    def id(self) -> str:
        """Manifest id ``tts_<engine>_<index>``."""
        return f"tts_{self.voice.engine.replace('-', '')}_{self.index:07d}"

    @property
    def relpath(self) -> str:
        """FLAC path relative to the output folder."""
        return f"audio/{self.voice.engine}/{self.index // 1000:04d}/{self.id}.flac"


def plan_utterance(index: int, seed: int, voices: dict[str, list[Voice]], engine_weights: dict[str, float],
                   texts, rate_range=(0.8, 1.25), pitch_range=(0.8, 1.25)) -> Utterance:
    """Choose sentence, voice, rate and pitch of utterance ``index`` from an RNG seeded by ``(seed, index)``.

    Parameters
    ----------
    index, seed : int
        Utterance index and corpus seed.
    voices : dict
        From `discover_voices`.
    engine_weights : dict
        Engine -> weight; the voice is chosen uniformly within the chosen engine.
    texts : list
        From `load_sentences`.
    rate_range, pitch_range : tuple of float
        Uniform ranges of the speaking-rate and pitch factors (1 = engine default).

    Returns
    -------
    Utterance
    """
    rng = np.random.default_rng([seed, index])
    engines = [e for e in sorted(voices) if voices[e] and engine_weights.get(e, 0) > 0]
    if not engines:
        raise RuntimeError(f"no TTS voices installed; install them with: {install_hint()}")
    ew = np.array([engine_weights[e] for e in engines], float)
    engine = engines[rng.choice(len(engines), p=ew / ew.sum())]
    voice = voices[engine][rng.integers(len(voices[engine]))]
    fw = np.array([w for _, w, _ in texts], float)
    stem, _, lines = texts[rng.choice(len(texts), p=fw / fw.sum())]
    text = lines[rng.integers(len(lines))]
    rate = float(np.round(rng.uniform(*rate_range), 3))
    pitch = float(np.round(rng.uniform(*pitch_range), 3))
    if engine == "festival" and voice.voice.endswith("_hts"):
        rate = 1.0  # the HTS engine ignores Duration_Stretch
    if engine == "festival":
        pitch = 1.0  # no portable pitch control for festival voices
    return Utterance(index, voice, text, stem, rate, pitch)


# ----------------------------------------------------------------------------------------------- synthesis

def synthesize(utt: Utterance, wav_path: str) -> None:
    """Run the engine of ``utt`` and write its native-rate WAV to ``wav_path``.

    Raises
    ------
    RuntimeError
        When the engine fails or writes nothing.
    """
    v = utt.voice
    if v.engine == "espeak-ng":
        name = v.voice + (f"+{v.variant}" if v.variant else "")
        cmd = ["espeak-ng", "-v", name, "-s", str(int(round(175 * utt.rate))),
               "-p", str(int(round(np.clip(50 * utt.pitch, 0, 99)))), "-w", wav_path, utt.text]
    elif v.engine == "flite":
        cmd = ["flite", "-voice", v.voice, "--setf", f"duration_stretch={1 / utt.rate:.4f}",
               "--setf", f"int_f0_target_mean={(160 if v.voice == 'slt' else 100) * utt.pitch:.2f}",
               "-t", utt.text, "-o", wav_path]
    elif v.engine == "festival":
        txt = wav_path + ".txt"
        Path(txt).write_text(utt.text + "\n", encoding="utf-8")
        cmd = ["text2wave", "-eval", f"(voice_{v.voice})",
               "-eval", f"(Parameter.set 'Duration_Stretch {1 / utt.rate:.4f})", "-o", wav_path, txt]
    else:
        raise ValueError(v.engine)
    proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0 or not os.path.exists(wav_path) or os.path.getsize(wav_path) <= 44:
        raise RuntimeError(f"{v.speaker} failed ({proc.returncode}): {proc.stderr[-300:]!r}")


def flac_duration(path: Path) -> float | None:
    """Duration in seconds of a valid 16 kHz mono FLAC file, or None when missing or invalid."""
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - any unreadable file counts as missing
        return None
    if info.format != "FLAC" or info.samplerate != SAMPLE_RATE or info.channels != 1 or info.frames <= 0:
        return None
    return info.frames / SAMPLE_RATE


def render(utt: Utterance, out_dir: Path) -> tuple[int, float, bool]:
    """Synthesize ``utt`` to ``out_dir / utt.relpath`` unless a valid file is there.

    Returns
    -------
    tuple
        ``(index, duration in seconds, whether synthesis ran)``; duration is 0.0 on failure.
    """
    dest = out_dir / utt.relpath
    dur = flac_duration(dest)
    if dur is not None:
        return utt.index, dur, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="make_corpus_") as tmp:
        wav = os.path.join(tmp, "x.wav")
        try:
            synthesize(utt, wav)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            print(f"warning: {utt.id}: {exc}", file=sys.stderr)
            return utt.index, 0.0, True
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio[:, 0]
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="VHQ")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.999:
        audio = audio * (0.999 / peak)
    tmp_dest = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    sf.write(str(tmp_dest), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp_dest, dest)
    return utt.index, len(audio) / SAMPLE_RATE, True


def _render_star(args):
    return render(*args)


# ----------------------------------------------------------------------------------------------- manifests

def manifest_entry(utt: Utterance, duration: float) -> dict:
    """Manifest line of ``utt`` in the shared format plus ``engine``, ``voice`` and synthesis parameters."""
    v = utt.voice
    return {
        "id": utt.id, "audio": utt.relpath, "text": utt.text, "raw_text": utt.text, "speaker": v.speaker,
        "duration": round(duration, 3), "sample_rate": SAMPLE_RATE, "source": f"tts_{v.engine}",
        "license": f"synthetic speech by {ENGINE_LICENSES[v.engine]}; text: {utt.text_file} "
                   f"({TEXT_LICENSES.get(utt.text_file, 'see shared/data/LICENSES.md')})",
        "engine": v.engine, "voice": v.voice + (f"+{v.variant}" if v.variant else ""),
        "variant": v.variant, "rate": utt.rate, "pitch": utt.pitch, "text_file": utt.text_file,
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifests(out_dir: Path, utts, durations: dict[int, float], held_out) -> dict[str, int]:
    """Write ``train.jsonl`` and ``dev.jsonl`` from the utterances whose FLAC exists (atomic writes).

    Returns
    -------
    dict
        Split -> number of lines.
    """
    lines = {"train": [], "dev": []}
    for utt in utts:
        dur = durations.get(utt.index)
        if not dur:
            continue
        split = "dev" if is_held_out(utt.voice, held_out) else "train"
        lines[split].append(json.dumps(manifest_entry(utt, dur), ensure_ascii=False))
    for split, ls in lines.items():
        _atomic_write(out_dir / f"{split}.jsonl", "".join(x + "\n" for x in ls))
    return {k: len(v) for k, v in lines.items()}


# ----------------------------------------------------------------------------------------------- driver

def make_corpus(out_dir, *, seed=0, utterances=None, hours=None, jobs=1, engines=ENGINES, engine_weights=None,
                held_out=(), text_dir=None, text_weights=None, max_words=25, min_words=1,
                rate_range=(0.8, 1.25), pitch_range=(0.8, 1.25), progress=True, voices=None) -> dict:
    """Synthesize (or resume) a corpus in ``out_dir``.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output folder (``audio/``, ``train.jsonl``, ``dev.jsonl``, ``summary.json``).
    seed : int
        Corpus seed.
    utterances, hours : int or float, optional
        Target size: a number of utterances, or hours of audio (the first utterances, in index order, whose
        durations add up to at least ``hours``, planned in batches of 64).  Exactly one is required.
    jobs : int
        Worker processes.
    engines : iterable of str
        Engines to use.
    engine_weights : dict, optional
        Engine -> sampling weight (default 1 each).
    held_out : iterable of str
        fnmatch patterns of speaker ids whose utterances go to ``dev.jsonl``.
    text_dir : path, optional
        Sentence folder (default: ``shared/data/text``).
    text_weights : dict, optional
        File stem -> weight.
    max_words, min_words : int
        Sentence length limits.
    rate_range, pitch_range : tuple of float
        Ranges of the random rate and pitch factors.
    progress : bool
        Show a tqdm progress bar.
    voices : dict, optional
        Engine -> list of `Voice` (default: `discover_voices`).

    Returns
    -------
    dict
        Summary: counts, synthesized count, seconds per engine and speaker, wall time.
    """
    if (utterances is None) == (hours is None):
        raise ValueError("give exactly one of utterances and hours")
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engines = tuple(engines)
    voices = discover_voices(engines) if voices is None else {e: voices.get(e, []) for e in engines}
    weights = {e: 1.0 for e in engines} if engine_weights is None else dict(engine_weights)
    text_dir = Path(text_dir) if text_dir is not None else default_text_dir()
    if text_dir is None:
        raise FileNotFoundError("no shared/data/text folder found; pass --text-dir")
    texts = load_sentences(text_dir, text_weights, max_words, min_words)
    if not texts:
        raise RuntimeError(f"no usable sentences in {text_dir}")

    def plan(i):
        return plan_utterance(i, seed, voices, weights, texts, rate_range, pitch_range)

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    total = utterances if utterances is not None else None
    bar = tqdm(total=total, unit="utt", disable=not progress, dynamic_ncols=True) if tqdm else None
    utts, durations, synthesized = [], {}, 0
    pool = Pool(jobs) if jobs > 1 else None
    try:
        while True:
            if utterances is not None:
                if len(utts) >= utterances:
                    break
                batch = [plan(i) for i in range(len(utts), utterances)]
            else:
                if sum(durations.values()) >= hours * 3600:
                    break
                batch = [plan(i) for i in range(len(utts), len(utts) + BATCH)]
            work = [(u, out_dir) for u in batch]
            it = pool.imap_unordered(_render_star, work, chunksize=4) if pool else map(_render_star, work)
            for index, dur, ran in it:
                durations[index] = dur
                synthesized += ran
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(hours=f"{sum(durations.values()) / 3600:.3f}")
            utts.extend(batch)
    finally:
        if pool:
            pool.close()
            pool.join()
        if bar is not None:
            bar.close()
    counts = write_manifests(out_dir, utts, durations, held_out)
    per_engine, per_speaker = defaultdict(float), defaultdict(float)
    for u in utts:
        per_engine[u.voice.engine] += durations.get(u.index, 0.0)
        per_speaker[u.voice.speaker] += durations.get(u.index, 0.0)
    summary = {
        "seed": seed, "utterances": len(utts), "failed": sum(1 for u in utts if not durations.get(u.index)),
        "synthesized": synthesized, "train": counts["train"], "dev": counts["dev"],
        "hours": sum(durations.values()) / 3600, "wall_seconds": round(time.time() - t0, 2),
        "voices": {e: len(v) for e, v in voices.items()},
        "hours_per_engine": {k: v / 3600 for k, v in sorted(per_engine.items())},
        "hours_per_speaker": {k: v / 3600 for k, v in sorted(per_speaker.items())},
    }
    _atomic_write(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def print_summary(summary: dict, top: int = 20) -> None:
    """Print hours per engine and the ``top`` speakers by hours."""
    print(f"{summary['utterances']} utterances ({summary['synthesized']} synthesized now, {summary['failed']} failed), "
          f"train {summary['train']}, dev {summary['dev']}, {summary['hours']:.3f} h in {summary['wall_seconds']} s")
    print("voices:", ", ".join(f"{e} {n}" for e, n in summary["voices"].items()))
    for e, h in summary["hours_per_engine"].items():
        print(f"  {e:10s} {h:8.3f} h")
    speakers = sorted(summary["hours_per_speaker"].items(), key=lambda kv: -kv[1])
    for s, h in speakers[:top]:
        print(f"    {s:40s} {h * 60:7.2f} min")
    if len(speakers) > top:
        print(f"    ... {len(speakers) - top} more speakers (see summary.json)")


def main(argv=None) -> int:
    """Command-line entry point; see ``--help``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", help="JSON recipe (e.g. recipes/corpus.json); command-line options override it")
    p.add_argument("--out", help="output folder (outside the repository); required unless --list-voices")
    p.add_argument("--seed", type=int)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--hours", type=float)
    g.add_argument("--utterances", type=int)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--engines", help="comma-separated subset of " + ",".join(ENGINES))
    p.add_argument("--text-dir", help="folder of sentence files (default shared/data/text)")
    p.add_argument("--max-words", type=int)
    p.add_argument("--list-voices", action="store_true", help="print the discovered voices and exit")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    recipe = json.loads(Path(a.recipe).read_text()) if a.recipe else {}
    text_dir = a.text_dir
    if text_dir is None and recipe.get("text_dir"):  # relative to the recipe's folder
        text_dir = str((Path(a.recipe).resolve().parent / recipe["text_dir"]).resolve())
    engines = tuple(a.engines.split(",")) if a.engines else tuple(recipe.get("engines", ENGINES))
    if a.list_voices:
        for e, vs in discover_voices(engines).items():
            print(f"{e}: {len(vs)} voices")
            print("  " + " ".join(v.speaker.split(":", 1)[1] for v in vs))
        return 0
    if not a.out:
        p.error("--out is required")
    if not any(discover_voices(engines).values()):
        print(f"no TTS engine found; install with:\n  {install_hint()}", file=sys.stderr)
        return 1
    hours, utterances = a.hours, a.utterances
    if hours is None and utterances is None:
        hours, utterances = recipe.get("hours"), recipe.get("utterances")
        if hours is not None and utterances is not None:
            utterances = None
    summary = make_corpus(
        a.out, seed=a.seed if a.seed is not None else recipe.get("seed", 0), utterances=utterances, hours=hours,
        jobs=a.jobs, engines=engines, engine_weights=recipe.get("engine_weights"),
        held_out=recipe.get("held_out_voices", ()), text_dir=text_dir, text_weights=recipe.get("text_weights"),
        max_words=a.max_words or recipe.get("max_words", 25), min_words=recipe.get("min_words", 1),
        rate_range=tuple(recipe.get("rate_range", (0.8, 1.25))),
        pitch_range=tuple(recipe.get("pitch_range", (0.8, 1.25))), progress=not a.no_progress)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
