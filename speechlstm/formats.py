"""Output formats of a :class:`~speechlstm.transcribe.Transcript`: plain text, JSON, SubRip (SRT) and WebVTT.

Subtitles are made of *cues*: consecutive words grouped until a pause (a gap of at least ``max_gap`` seconds
between two words), the longest duration (``max_duration``) or the room on screen (``max_lines`` lines of at most
``max_chars`` characters) ends the cue. A cue runs from its first word's start to its last word's end, extended to
``min_duration`` where the next cue (and the end of the audio) leaves room, so that short cues stay readable.
Cues never overlap and their times only increase.

Examples
--------
>>> from speechlstm.transcribe import Transcript, Word
>>> t = Transcript("hello world again", words=[Word("hello", 0.5, 0.9, 0.9), Word("world", 1.0, 1.4, 0.8),
...                Word("again", 3.0, 3.5, 0.7)], duration=4.0)
>>> print(to_srt(t), end="")
1
00:00:00,500 --> 00:00:01,500
hello world
<BLANKLINE>
2
00:00:03,000 --> 00:00:04,000
again
>>> print(to_vtt(t).splitlines()[0])
WEBVTT
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["FORMATS", "Cue", "make_cues", "format_timestamp", "to_txt", "to_json", "to_srt", "to_vtt", "render",
           "NO_MATCH"]

FORMATS = ("txt", "json", "srt", "vtt")
NO_MATCH = "no match"
"""What the text format prints in grammar mode when the speech matched no phrase."""

MAX_GAP = 0.5
MAX_CHARS = 42
MAX_LINES = 2
MAX_DURATION = 7.0
MIN_DURATION = 1.0


@dataclass
class Cue:
    """One subtitle: times in milliseconds and its text lines."""

    start_ms: int
    end_ms: int
    lines: list

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def format_timestamp(ms: int, decimal: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal="."``, ``HH:MM:SS.mmm`` (WebVTT).

    Examples
    --------
    >>> format_timestamp(3723004), format_timestamp(61500, ".")
    ('01:02:03,004', '00:01:01.500')
    """
    ms = max(0, int(ms))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, rest = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{rest:03d}"


def _wrap(words, max_chars: int, max_lines: int):
    """Lines for a cue's words, or None when they do not fit. Two lines are balanced (the longer one as short as
    possible); a single word longer than ``max_chars`` gets a line of its own."""
    text = " ".join(words)
    if len(text) <= max_chars or len(words) == 1:
        return [text]
    if max_lines < 2:
        return None
    if max_lines == 2:
        best = None
        for k in range(1, len(words)):
            a, b = " ".join(words[:k]), " ".join(words[k:])
            if len(a) <= max_chars and len(b) <= max_chars:
                key = max(len(a), len(b))
                if best is None or key < best[0]:
                    best = (key, [a, b])
        return None if best is None else best[1]
    lines, cur = [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > max_chars:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    if len(lines) > max_lines or any(len(x) > max_chars for x in lines if " " in x):
        return None
    return lines


def _get(w, key):
    return w[key] if isinstance(w, dict) else getattr(w, key)


def make_cues(words, max_gap: float = MAX_GAP, max_chars: int = MAX_CHARS, max_lines: int = MAX_LINES,
              max_duration: float = MAX_DURATION, min_duration: float = MIN_DURATION,
              duration: float | None = None) -> list:
    """Group timed words into subtitle cues.

    Parameters
    ----------
    words : sequence of Word or dict
        With ``word``, ``start`` and ``end`` (seconds), in time order.
    max_gap : float
        A pause of at least this many seconds between two words starts a new cue.
    max_chars, max_lines : int
        Room on screen: at most ``max_lines`` lines of at most ``max_chars`` characters (a longer single word
        gets a cue of its own).
    max_duration : float
        Longest cue, in seconds (a single longer word gets a cue of its own).
    min_duration : float
        Cues shorter than this are extended up to it when the next cue and the audio's end leave room.
    duration : float, optional
        Audio duration: no cue is extended beyond it.

    Returns
    -------
    list of Cue
        In time order, non-overlapping, each with ``end_ms > start_ms``.

    Examples
    --------
    >>> ws = [{"word": w, "start": i * 0.4, "end": i * 0.4 + 0.3} for i, w in enumerate("one two three".split())]
    >>> [(c.start_ms, c.end_ms, c.lines) for c in make_cues(ws, max_chars=8)]
    [(0, 1100, ['one two', 'three'])]
    >>> [(c.start_ms, c.end_ms, c.lines) for c in make_cues(ws, max_chars=8, max_lines=1)]
    [(0, 800, ['one two']), (800, 1800, ['three'])]
    """
    if max_chars < 1 or max_lines < 1 or not max_duration > 0 or max_gap < 0 or min_duration < 0:
        raise ValueError("max_chars, max_lines and max_duration must be positive; max_gap, min_duration >= 0")
    groups, cur = [], []
    for w in words:
        text, start, end = str(_get(w, "word")), float(_get(w, "start")), float(_get(w, "end"))
        if not text:
            continue
        if cur:
            gap = start - cur[-1][2]
            fits = (gap < max_gap and end - cur[0][1] <= max_duration
                    and _wrap([x[0] for x in cur] + [text], max_chars, max_lines) is not None)
            if not fits:
                groups.append(cur)
                cur = []
        cur.append((text, start, end))
    if cur:
        groups.append(cur)

    cues, prev_end = [], 0
    limit_ms = None if duration is None else int(round(float(duration) * 1000))
    for g in groups:
        start = max(int(round(g[0][1] * 1000)), prev_end)
        end = max(int(round(g[-1][2] * 1000)), start + 1)
        cues.append(Cue(start, end, _wrap([x[0] for x in g], max_chars, max_lines)))
        prev_end = end
    for i, c in enumerate(cues):  # readable minimum duration, never into the next cue or past the audio
        want = c.start_ms + int(round(min_duration * 1000))
        if c.end_ms < want:
            cap = cues[i + 1].start_ms if i + 1 < len(cues) else limit_ms
            c.end_ms = max(c.end_ms, want if cap is None else min(want, cap))
    return cues


def _cues_of(transcript, cue_options):
    return make_cues(transcript.words, duration=transcript.duration or None, **(cue_options or {}))


def to_srt(transcript, **cue_options) -> str:
    """SubRip subtitles: numbered cues ``N``, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text lines, a blank line between.

    ``cue_options`` go to :func:`make_cues`. An empty transcript gives an empty file.
    """
    blocks = [f"{i}\n{format_timestamp(c.start_ms)} --> {format_timestamp(c.end_ms)}\n{c.text}\n"
              for i, c in enumerate(_cues_of(transcript, cue_options), 1)]
    return "\n".join(blocks)


def _vtt_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript, **cue_options) -> str:
    """WebVTT subtitles: the ``WEBVTT`` header, then cues ``N``, ``HH:MM:SS.mmm --> HH:MM:SS.mmm``, text lines,
    separated by blank lines. ``cue_options`` go to :func:`make_cues`."""
    blocks = ["WEBVTT\n"]
    for i, c in enumerate(_cues_of(transcript, cue_options), 1):
        blocks.append(f"{i}\n{format_timestamp(c.start_ms, '.')} --> {format_timestamp(c.end_ms, '.')}\n"
                      + "\n".join(_vtt_escape(x) for x in c.lines) + "\n")
    return "\n".join(blocks)


def to_txt(transcript) -> str:
    """The text and a newline; in grammar mode the phrase or ``no match``; with n-best alternatives, one line
    per alternative (best first).

    Examples
    --------
    >>> from speechlstm.transcribe import Transcript
    >>> to_txt(Transcript("", matched=False, confidence=0.1))
    'no match\\n'
    >>> to_txt(Transcript("a b", alternatives=[{"text": "a b", "score": -1.0}, {"text": "a d", "score": -2.0}]))
    'a b\\na d\\n'
    """
    if getattr(transcript, "matched", None) is not None:
        return (transcript.text if transcript.matched else NO_MATCH) + "\n"
    alts = getattr(transcript, "alternatives", None)
    if alts:
        return "".join(a["text"] + "\n" for a in alts)
    return transcript.text + "\n"


def to_json(transcript, source: str | None = None) -> str:
    """One JSON object and a newline: ``text``, ``words`` (``word``, ``start``, ``end``, ``confidence``),
    ``segments``, ``model``, ``duration``, ``timings``, and ``alternatives`` with n-best, ``matched`` /
    ``confidence`` in grammar mode; ``file`` first when ``source`` is given."""
    d = transcript.to_dict()
    if source is not None:
        d = {"file": str(source), **d}
    return json.dumps(d, ensure_ascii=False) + "\n"


def render(transcript, fmt: str, source: str | None = None, **cue_options) -> str:
    """The transcript in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "txt":
        return to_txt(transcript)
    if fmt == "json":
        return to_json(transcript, source)
    if fmt == "srt":
        return to_srt(transcript, **cue_options)
    if fmt == "vtt":
        return to_vtt(transcript, **cue_options)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
