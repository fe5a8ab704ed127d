"""Command grammars: restrict recognition to a list of phrases, and reject speech that is none of them.

A grammar is a list of phrases, one per line in a file::

    # lights
    turn on the lights
    turn off the lights
    set a timer for {number} minutes      # slots: {number} is zero .. ninety nine
    call {name}
    {name} = alice | bob | carol           # a user-defined slot
    press {digit}                          # zero .. nine
    go to floor {number:1-200}             # a range of numbers

``#`` starts a comment, blank lines are skipped, text is normalized with
:func:`speechlstm.text.normalize_text` (so ``5`` becomes ``five``, case and punctuation go away). Built-in slots:
``{number}`` (0 to 99), ``{number:A-B}`` (A to B, at most 10000 values), ``{digit}`` (0 to 9); a line
``{name} = a | b | c`` defines a slot (its alternatives may use other slots; definitions may come after their use).

Decoding (:meth:`Grammar.match`): every phrase gets its CTC log-probability ``log p(phrase | audio)`` (the sum over
all its alignments, computed for all phrases at once over a prefix trie, :mod:`speechlstm.kernels.align`). A free
CTC beam search supplies the *filler*: the probability of the hypotheses it finds that are not phrases of the
grammar. A phrase's confidence is its posterior ``p(phrase) / (sum of p(phrases) + p(filler))``; the best phrase
is the answer when its confidence reaches the threshold, else the answer is "no match". Out-of-grammar speech puts
most of the probability on free hypotheses, so it is rejected instead of being forced onto the nearest phrase.

Examples
--------
>>> g = Grammar.from_lines(["yes", "no", "set a timer for {digit} minutes"])
>>> len(g.phrases), g.phrases[:3]
(12, ['yes', 'no', 'set a timer for zero minutes'])
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import SpeechlstmError

__all__ = ["Grammar", "GrammarError", "GrammarMatch", "load_grammar", "DEFAULT_GRAMMAR_THRESHOLD",
           "DEFAULT_FILLER_BEAM", "MAX_PHRASES", "MAX_PRONUNCIATIONS"]

DEFAULT_GRAMMAR_THRESHOLD = 0.3
"""Default rejection threshold on a phrase's confidence (posterior against the free-decoding filler): tuned with
``tools/evaluate_grammar.py`` on the dev command words (the highest accuracy with at most 1% false accepts)."""
DEFAULT_FILLER_BEAM = 16
"""Beam width of the free CTC beam search that supplies the filler hypotheses."""
MAX_PHRASES = 100_000
"""Largest number of phrases a grammar may expand to."""
MAX_NUMBER_RANGE = 10_000

_SLOT = re.compile(r"\{([^{}]*)\}")
_SLOT_NAME = re.compile(r"[a-z_][a-z0-9_]*$")
_NUMBER_RANGE = re.compile(r"number:(\d+)-(\d+)$")
_DEFINITION = re.compile(r"^\s*\{([^{}]*)\}\s*=(.*)$")


class GrammarError(SpeechlstmError, ValueError):
    """A grammar that cannot be used; the message is one line ``FILE:LINE: reason``."""


@dataclass
class GrammarMatch:
    """Result of :meth:`Grammar.match`.

    Attributes
    ----------
    text : str
        The recognized phrase, or ``""`` when the best phrase was rejected.
    matched : bool
        Whether the best phrase's confidence reached the threshold.
    confidence : float
        Posterior of the best phrase, in [0, 1].
    phrase : str
        The best phrase, rejected or not (``""`` for an empty grammar result).
    score : float
        ``log p(phrase | audio)`` of the best phrase.
    label_ids : ndarray of int32
        Token ids of the best phrase.
    alternatives : list of dict
        ``{"text", "score", "confidence"}`` of the best phrases, best first (as many as asked for).
    filler : float
        Log-probability of the free hypotheses that are not phrases (``-inf`` if none).
    """

    text: str
    matched: bool
    confidence: float
    phrase: str
    score: float
    label_ids: np.ndarray
    alternatives: list = field(default_factory=list)
    filler: float = -math.inf


@dataclass
class _Compiled:
    parent: np.ndarray
    label: np.ndarray
    ends: np.ndarray   # trie node of each path
    labels: list       # token ids of each path
    owner: np.ndarray  # phrase of each path (a phone model's phrase has a path per pronunciation)
    first: np.ndarray  # first path of each phrase
    index: dict        # tuple of token ids -> phrase


MAX_PRONUNCIATIONS = 16
"""Most pronunciations of one phrase a phone model's grammar tries (the products of its words' variants, first
ones first)."""


class Grammar:
    """A set of phrases to recognize (see the module docstring for the file syntax).

    Parameters
    ----------
    phrases : list of str
        Normalized, distinct phrases.
    lines : list of int, optional
        Source line of each phrase, for messages.
    source : str, optional
        Where the grammar came from (a file name), for messages.

    Examples
    --------
    >>> g = Grammar.from_lines(["{color} = red | green", "paint it {color}", "# a comment", ""])
    >>> g.phrases
    ['paint it red', 'paint it green']
    """

    def __init__(self, phrases, lines=None, source: str = "<grammar>"):
        self.phrases = list(phrases)
        self.lines = list(lines) if lines is not None else list(range(1, len(self.phrases) + 1))
        self.source = source
        self._index = {p: i for i, p in enumerate(self.phrases)}
        self._compiled = {}

    def __len__(self) -> int:
        return len(self.phrases)

    def __contains__(self, text) -> bool:
        return text in self._index

    def __repr__(self) -> str:
        return f"Grammar({len(self.phrases)} phrases from {self.source})"

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_lines(cls, lines, source: str = "<grammar>") -> "Grammar":
        """Parse grammar lines (phrases, slot definitions, comments, blank lines).

        Raises
        ------
        GrammarError
            ``SOURCE:LINE: reason`` for a malformed line, an unknown or circular slot, a phrase that
            normalizes to nothing, too many phrases, or no phrase at all.

        Examples
        --------
        >>> Grammar.from_lines(["call {who}"], source="g.txt")
        Traceback (most recent call last):
        ...
        speechlstm.grammar.GrammarError: g.txt:1: unknown slot {who} (built in: ...)
        """
        if isinstance(lines, str):
            raise TypeError("pass a list of phrases (or use Grammar.from_file / load_grammar for a path)")
        slots: dict = {}
        uses = []  # (line number, raw phrase text)
        for n, raw in enumerate(lines, 1):
            if not isinstance(raw, str):
                raise GrammarError(f"{source}:{n}: a phrase must be a string, got {type(raw).__name__}")
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = _DEFINITION.match(line)
            if m:
                name = m.group(1).strip().lower()
                if not _SLOT_NAME.match(name) or name in ("number", "digit"):
                    raise GrammarError(f"{source}:{n}: bad slot name {{{m.group(1)}}}: use letters, digits, _ "
                                       "(not a built-in slot name)")
                if name in slots:
                    raise GrammarError(f"{source}:{n}: slot {{{name}}} is defined twice (first on line "
                                       f"{slots[name][0]})")
                alts = [a.strip() for a in m.group(2).split("|")]
                if not alts or any(not a for a in alts):
                    raise GrammarError(f"{source}:{n}: slot {{{name}}} has an empty alternative")
                slots[name] = (n, alts)
                continue
            if "=" in line:
                raise GrammarError(f"{source}:{n}: '=' is only allowed in a slot definition '{{name}} = a | b'")
            if "|" in line:
                raise GrammarError(f"{source}:{n}: '|' is only allowed in a slot definition '{{name}} = a | b'")
            uses.append((n, line))

        cache: dict = {}
        phrases, where, seen = [], [], set()
        for n, text in uses:
            for p in _expand(text, slots, cache, source, n, ()):
                if p not in seen:
                    seen.add(p)
                    phrases.append(p)
                    where.append(n)
                    if len(phrases) > MAX_PHRASES:
                        raise GrammarError(f"{source}:{n}: the grammar expands to more than {MAX_PHRASES} phrases")
        if not phrases:
            raise GrammarError(f"{source}: the grammar has no phrase")
        return cls(phrases, where, source)

    @classmethod
    def from_file(cls, path) -> "Grammar":
        """Read a grammar file (UTF-8); errors name the file and line (:class:`GrammarError`)."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise GrammarError(f"{path}: no such grammar file") from None
        except IsADirectoryError:
            raise GrammarError(f"{path}: is a directory, not a grammar file") from None
        except UnicodeDecodeError as exc:
            line = text_line_of(path, exc.start)
            raise GrammarError(f"{path}:{line}: not UTF-8 text") from None
        except OSError as exc:
            raise GrammarError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return cls.from_lines(text.splitlines(), source=path)

    # ------------------------------------------------------------------ decoding
    def compile(self, tokens, blank: int = 0, lexicon=None) -> _Compiled:
        """Prefix trie of the phrases' token ids for a model's token list (cached per token list and lexicon).

        Character models spell each phrase; phone models (``lexicon``: their
        :class:`speechlstm.lexicon.Lexicon`) pronounce it, every combination of its words' pronunciations (at
        most :data:`MAX_PRONUNCIATIONS`, G2P for words outside the lexicon) with the word-boundary token ``" "``
        between words.
        """
        key = (tuple(tokens), int(blank), id(lexicon))
        c = self._compiled.get(key)
        if c is not None:
            return c
        from .text import text_to_ids

        parent, label, ends, labels, owner, first = [0], [0], [], [], [], []
        children: dict = {}
        index: dict = {}
        tok = {t: i for i, t in enumerate(tokens)}
        for k, (p, n) in enumerate(zip(self.phrases, self.lines)):
            try:
                paths = [text_to_ids(p, tokens, blank)] if lexicon is None else _pronounced(p, lexicon, tok)
            except ValueError as exc:
                how = "spelled with the model's tokens" if lexicon is None else "pronounced with the model's lexicon"
                raise GrammarError(f"{self.source}:{n}: phrase {p!r} cannot be {how} ({exc})") from None
            first.append(len(ends))
            for ids in paths:
                node = 0
                for t in ids.tolist():
                    nxt = children.get((node, t))
                    if nxt is None:
                        nxt = len(parent)
                        children[(node, t)] = nxt
                        parent.append(node)
                        label.append(t)
                    node = nxt
                ends.append(node)
                labels.append(ids)
                owner.append(k)
                index.setdefault(tuple(ids.tolist()), k)
        c = _Compiled(np.array(parent, np.int32), np.array(label, np.int32), np.array(ends, np.int64), labels,
                      np.array(owner, np.int64), np.array(first, np.int64), index)
        self._compiled[key] = c
        return c

    def phrase_log_probs(self, log_probs, tokens, blank: int = 0, lexicon=None) -> np.ndarray:
        """``log p(phrase | log_probs)`` of every phrase (CTC forward sum over all alignments and, for a phone
        model's ``lexicon``, over the phrase's pronunciations), float64.

        Examples
        --------
        >>> lp = np.log(np.array([[.1, .8, .1], [.7, .2, .1], [.1, .1, .8]], np.float32))
        >>> g = Grammar.from_lines(["ab", "ba"])
        >>> np.round(np.exp(g.phrase_log_probs(lp, ["_", "a", "b"])), 4).tolist()
        [0.664, 0.013]
        """
        lp = np.ascontiguousarray(log_probs, dtype=np.float32)
        if lp.ndim != 2 or lp.shape[1] != len(tokens):
            raise ValueError(f"log_probs must be (T, {len(tokens)}), got {lp.shape}")
        c = self.compile(tokens, blank, lexicon)
        return self._sum_paths(c, self._path_log_probs(lp, c, blank))

    def _path_log_probs(self, lp, c: _Compiled, blank: int) -> np.ndarray:
        from .kernels import align

        if lp.shape[0] == 0:
            return np.full(len(c.ends), -np.inf)
        return align.trie_forward_kernel(lp, c.parent, c.label, int(blank))[c.ends]

    def _sum_paths(self, c: _Compiled, paths: np.ndarray) -> np.ndarray:
        if len(paths) == len(self.phrases):
            return np.array(paths, np.float64)
        out = np.full(len(self.phrases), -np.inf)
        np.logaddexp.at(out, c.owner, paths)  # a phrase's pronunciations are alternatives: their sum
        return out

    def match(self, log_probs, tokens, blank: int = 0, threshold: float = DEFAULT_GRAMMAR_THRESHOLD,
              nbest: int = 1, filler_beam: int = DEFAULT_FILLER_BEAM, lexicon=None) -> GrammarMatch:
        """The phrase the log-probabilities say, or no match.

        Parameters
        ----------
        log_probs : array_like, shape (T, V)
            Per-frame CTC log-probabilities of one utterance.
        tokens : sequence of str
            The model's tokens (``len(tokens) == V``).
        blank : int
            Index of the CTC blank.
        threshold : float
            Smallest confidence accepted, in [0, 1].
        nbest : int
            Number of alternatives returned (best phrases with their confidences).
        filler_beam : int
            Beam width of the free decoding that supplies the filler; 0 disables the filler (the best
            phrase is then always accepted when the threshold is 0, and confidences are relative to the
            grammar only).
        lexicon : speechlstm.lexicon.Lexicon, optional
            A phone model's pronunciation lexicon (see :meth:`compile`).

        Returns
        -------
        GrammarMatch

        Examples
        --------
        >>> tokens = ["_", " ", "a", "b"]
        >>> lp = np.log(np.array([[.02, .02, .94, .02], [.94, .02, .02, .02], [.02, .02, .02, .94]], np.float32))
        >>> m = Grammar.from_lines(["ab", "a"]).match(lp, tokens)
        >>> m.text, m.matched, round(m.confidence, 2)
        ('ab', True, 0.87)
        >>> m = Grammar.from_lines(["b", "ba"]).match(lp, tokens)   # "ab" is not in this grammar
        >>> m.text, m.matched, m.phrase, m.confidence < 0.1
        ('', False, 'b', True)
        """
        from .decoding import beam_search, tokens_to_text

        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if int(nbest) < 1:
            raise ValueError("nbest must be >= 1")
        lp = np.ascontiguousarray(log_probs, dtype=np.float32)
        if lp.ndim != 2 or lp.shape[1] != len(tokens):
            raise ValueError(f"log_probs must be (T, {len(tokens)}), got {lp.shape}")
        c = self.compile(tokens, blank, lexicon)
        path_scores = self._path_log_probs(lp, c, blank)
        scores = self._sum_paths(c, path_scores)
        filler = -math.inf
        if filler_beam and lp.shape[0] > 0:
            space = tokens.index(" ") if " " in tokens else -1
            for h in beam_search(lp, beam_width=int(filler_beam), blank=blank):
                if lexicon is None:
                    i = self._index.get(tokens_to_text(h.token_ids, tokens))
                else:  # the phones of one of the phrase's pronunciations, boundaries tidied as text would be
                    i = c.index.get(_tidy(h.token_ids, space))
                if i is None:
                    filler = float(np.logaddexp(filler, h.score))
                elif not any(np.array_equal(h.token_ids, c.labels[j]) for j in np.flatnonzero(c.owner == i)):
                    # the same words spelled with other spaces (e.g. a trailing one): the phrase's mass too
                    scores[i] = np.logaddexp(scores[i], h.score)
        top = float(np.max(scores)) if len(scores) else -math.inf
        ref = max(top, filler)
        if ref == -math.inf:
            return GrammarMatch("", False, 0.0, self.phrases[0], -math.inf, c.labels[0],
                                [{"text": self.phrases[0], "score": -math.inf, "confidence": 0.0}], filler)
        with np.errstate(under="ignore"):
            mass = np.exp(scores - ref)
            total = float(mass.sum()) + math.exp(filler - ref)
            post = mass / total
        order = np.argsort(-scores, kind="stable")[: int(nbest)]
        best = int(order[0])
        conf = float(min(1.0, max(0.0, post[best])))
        matched = conf >= float(threshold)
        alts = [{"text": self.phrases[i], "score": float(scores[i]), "confidence": float(post[i])} for i in order]
        paths = np.flatnonzero(c.owner == best)  # its most likely pronunciation, for word times
        labels = c.labels[int(paths[int(np.argmax(path_scores[paths]))])]
        return GrammarMatch(self.phrases[best] if matched else "", matched, conf, self.phrases[best],
                            float(scores[best]), labels, alts, filler)


def _pronounced(phrase: str, lexicon, tok: dict) -> list:
    """Token-id arrays of a phrase's pronunciations (phones, ``" "`` between words), at most
    :data:`MAX_PRONUNCIATIONS`, in order of the words' variants."""
    import itertools

    if " " not in tok:
        raise ValueError("the model has no word-boundary token")
    words = [lexicon.pronunciations(w) for w in phrase.split()]
    out = []
    for combo in itertools.islice(itertools.product(*words), MAX_PRONUNCIATIONS):
        ids = []
        for i, pron in enumerate(combo):
            if i:
                ids.append(tok[" "])
            for ph in pron:
                if ph not in tok:
                    raise ValueError(f"phone {ph!r} is not one of the model's tokens")
                ids.append(tok[ph])
        out.append(np.array(ids, np.int32))
    return out


def _tidy(ids, space: int) -> tuple:
    """Token ids without boundary tokens at the ends or repeated (how a phrase's own labels are written)."""
    out = []
    for t in np.asarray(ids).tolist():
        if t == space and (not out or out[-1] == space):
            continue
        out.append(t)
    while out and out[-1] == space:
        out.pop()
    return tuple(out)


def load_grammar(grammar) -> Grammar:
    """A :class:`Grammar` from a Grammar, a path to a grammar file, or a list of phrase lines.

    Examples
    --------
    >>> load_grammar(["Turn on the lights!", "turn off the lights"]).phrases
    ['turn on the lights', 'turn off the lights']
    """
    if isinstance(grammar, Grammar):
        return grammar
    if isinstance(grammar, (str, os.PathLike)):
        return Grammar.from_file(grammar)
    if isinstance(grammar, (list, tuple)):
        if not grammar:
            raise GrammarError("<grammar>: the grammar has no phrase (empty list)")
        return Grammar.from_lines(list(grammar))
    raise TypeError(f"grammar must be a list of phrases, a path or a Grammar, not {type(grammar).__name__}")


def text_line_of(path, byte_offset: int) -> int:
    """1-based line number of a byte offset in a file."""
    with open(path, "rb") as f:
        return f.read(byte_offset).count(b"\n") + 1


def _slot_values(name: str, slots: dict, cache: dict, source: str, n: int, stack: tuple) -> list:
    from .text import cardinal

    key = name
    if key in cache:
        return cache[key]
    if name == "number":
        vals = [cardinal(i) for i in range(100)]
    elif name == "digit":
        vals = [cardinal(i) for i in range(10)]
    elif _NUMBER_RANGE.match(name):
        a, b = (int(x) for x in _NUMBER_RANGE.match(name).groups())
        if a > b or b - a + 1 > MAX_NUMBER_RANGE:
            raise GrammarError(f"{source}:{n}: bad range {{{name}}}: need A <= B and at most {MAX_NUMBER_RANGE} "
                               "values")
        vals = [cardinal(i) for i in range(a, b + 1)]
    elif name in slots:
        if name in stack:
            raise GrammarError(f"{source}:{slots[name][0]}: slot {{{name}}} refers to itself")
        line, alts = slots[name]
        vals, seen = [], set()
        for alt in alts:
            for v in _expand(alt, slots, cache, source, line, stack + (name,)):
                if v not in seen:
                    seen.add(v)
                    vals.append(v)
    else:
        raise GrammarError(f"{source}:{n}: unknown slot {{{name}}} (built in: {{number}}, {{number:A-B}}, {{digit}}; "
                           f"define one with a line '{{{name}}} = a | b')")
    cache[key] = vals
    return vals


def _expand(text: str, slots: dict, cache: dict, source: str, n: int, stack: tuple) -> list:
    """All normalized phrases of one line (slots replaced by each of their values)."""
    from .text import normalize_text

    if "{" in _SLOT.sub("", text) or "}" in _SLOT.sub("", text):
        raise GrammarError(f"{source}:{n}: unbalanced '{{' or '}}'")
    pieces = _SLOT.split(text)  # text, slot, text, slot, ..., text
    # a slot glued to text ("{name}'s") needs the whole phrase normalized at once, else piece by piece
    glued = any((i > 0 and pieces[i - 1][-1:] and not pieces[i - 1][-1:].isspace())
                or (i + 1 < len(pieces) and pieces[i + 1][:1] and not pieces[i + 1][:1].isspace())
                for i in range(1, len(pieces), 2))
    options = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            options.append([piece if glued else normalize_text(piece)])
        else:
            name = piece.strip().lower()
            if not name:
                raise GrammarError(f"{source}:{n}: empty slot {{}}")
            options.append(_slot_values(name, slots, cache, source, n, stack))
    count = 1
    for o in options:
        count *= len(o)
        if count > MAX_PHRASES:
            raise GrammarError(f"{source}:{n}: the phrase expands to more than {MAX_PHRASES} phrases")
    out = [""]
    for o in options:
        if glued:
            out = [a + b for a in out for b in o]
        else:
            out = [f"{a} {b}" if a and b else a or b for a in out for b in o]
    out = [normalize_text(p) if glued else " ".join(p.split()) for p in out]
    if any(not p for p in out):
        raise GrammarError(f"{source}:{n}: the phrase {text!r} has no words (after normalization)")
    return out
