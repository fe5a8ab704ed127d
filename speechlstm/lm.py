"""Word n-gram language model: counting, interpolated modified Kneser-Ney, pruning, ARPA and a binary form.

The model is built with :func:`build_lm` from sentences (one normalized sentence per line), written as gzip'd
ARPA text (:func:`write_arpa`, read back with :func:`read_arpa`) and as a compact binary file (:meth:`NGramLM.save`,
loaded memory-mapped with :meth:`NGramLM.load`: no parsing at start-up).

Smoothing
---------
Interpolated modified Kneser-Ney as in Chen & Goodman (1998) and KenLM ``lmplz`` / SRILM
``-kndiscount -interpolate``:

* highest order ``N`` uses raw counts ``c``; a lower order ``n < N`` uses *adjusted* counts ``a(g)``: the number of
  distinct words ``v`` with ``v g`` seen, except for n-grams that start with ``<s>`` (nothing precedes ``<s>``),
  which keep their raw count;
* per order, discounts from the count-of-counts ``t_k`` of those counts: ``Y = t1 / (t1 + 2 t2)``,
  ``D1 = 1 - 2 Y t2/t1``, ``D2 = 2 - 3 Y t3/t2``, ``D3+ = 3 - 4 Y t4/t3`` (a degenerate ``t_k == 0``, only seen on toy
  corpora, gives ``D_k = k``-clipped values, see :func:`discounts`);
* ``p(w | h) = (a(hw) - D(a(hw))) / S(h) + gamma(h) p(w | h')`` with ``S(h) = sum_w a(hw)``,
  ``gamma(h) = (D1 N1(h) + D2 N2(h) + D3+ N3+(h)) / S(h)`` and ``h'`` the context ``h`` without its first word;
* unigrams interpolate with the uniform distribution over the vocabulary without ``<s>`` (``<unk>`` included, so
  ``<unk>`` gets ``gamma / |V'|``); ``p(<s>) = 0`` (log10 ``-99`` in ARPA, as KenLM writes it).

Count pruning (``prune[n-1] = k``: drop n-grams of order ``n >= 2`` whose raw count is ``<= k``, KenLM's
``--prune`` convention) keeps the model consistent: the prefix and the suffix of every kept n-gram are kept, and
backoff weights are computed by renormalisation, ``bow(h) = (1 - sum_{hw kept} p(w|h)) / (1 - sum_{hw kept}
p(w|h'))``, which equals ``gamma(h)`` when nothing is pruned. Discounts come from the unpruned counts (as in KenLM
and SRILM). Every distribution ``p(. | h)`` sums to one over ``V'``.

Binary layout (``lm.bin``)
--------------------------
``b"SLSTMLM1"``, a little-endian uint64 header length, a JSON header, then arrays, each aligned to 64 bytes at the
offset the header gives (``{"name": [dtype, shape, offset]}``):

* ``vocab``: uint8, the words joined by ``"\\n"``; word id = position (``0 <unk>, 1 <s>, 2 </s>``);
* ``logp1`` / ``bow1``: float32 ``[V]``, log10 probability and backoff of unigram ``word id``;
* for order ``n >= 2``: ``keys{n}`` int64 ``[rows]``, sorted ascending, ``key = ctx_row * V + word`` where
  ``ctx_row`` is the row of the (n-1)-gram prefix in order ``n-1`` (for ``n = 2`` the prefix word id);
  ``logp{n}`` float32 ``[rows]``; ``bow{n}`` float32 ``[rows]`` for ``n < N``.

Finding ``w1..wn``: ``row = w1``, then for each next word ``row = searchsorted(keys{k}, row * V + wk)`` (absent if the
key there differs). Plain sorted int64/float32 arrays, so a Numba beam search can take them as arguments.

Examples
--------
>>> lm = build_lm([["a", "b"], ["a", "c"]], order=2)
>>> round(sum(10 ** lm.log_prob([lm.word_id("a")], w) for w in range(lm.vocab_size) if w != 1), 6)
1.0
"""

from __future__ import annotations

import gzip
import json
import math
import time

import numpy as np

from .errors import LMError

__all__ = ["LMError", "NGramLM", "build_lm", "count_ngrams", "discounts", "read_arpa", "write_arpa", "read_sentences"]

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
MAGIC = b"SLSTMLM1"
LOG_ZERO = -99.0


def read_sentences(paths):
    """Read sentences (lists of words) from text files, one sentence per line; blank lines are skipped.

    Parameters
    ----------
    paths : iterable of str or Path

    Returns
    -------
    list of list of str

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "w").write("a b\\n\\nc\\n")
    >>> read_sentences([p])
    [['a', 'b'], ['c']]
    """
    out = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                out.extend(s for s in (line.split() for line in f) if s)
        except (OSError, UnicodeDecodeError) as e:
            raise LMError(f"{p}: cannot read text: {e}") from None
    return out


def discounts(count_of_counts):
    """Modified Kneser-Ney discounts ``(D1, D2, D3+)`` from count-of-counts ``t1..t4``.

    ``Y = t1/(t1+2 t2)``, ``D1 = 1 - 2Y t2/t1``, ``D2 = 2 - 3Y t3/t2``, ``D3+ = 3 - 4Y t4/t3``. Where a ``t_k`` is 0
    (toy corpora) the ratio is taken as 0; each ``D_k`` is clipped to ``[0, k]``.

    Parameters
    ----------
    count_of_counts : sequence of 4 ints
        Number of n-grams seen exactly 1, 2, 3 and 4 times.

    Returns
    -------
    tuple of 3 floats

    Examples
    --------
    >>> discounts([4, 2, 1, 1])  # Y = 0.5
    (0.5, 1.25, 1.0)
    """
    t1, t2, t3, t4 = (float(x) for x in count_of_counts)
    y = t1 / (t1 + 2 * t2) if t1 + 2 * t2 > 0 else 0.0
    r = lambda a, b: a / b if b > 0 else 0.0  # noqa: E731
    d = (1 - 2 * y * r(t2, t1), 2 - 3 * y * r(t3, t2), 3 - 4 * y * r(t4, t3))
    return tuple(float(min(max(v, 0.0), k)) for k, v in zip((1, 2, 3), d))


def _vocabulary(sentences):
    words = sorted({w for s in sentences for w in s} - {UNK, BOS, EOS})
    return [UNK, BOS, EOS] + words


def count_ngrams(sentences, order, vocab=None):
    """Count all n-grams up to ``order`` of sentences padded with ``<s>`` and ``</s>``.

    Counting works on integer word ids: order ``n`` keys are ``prefix_row * V + word`` (int64), counted with
    ``np.unique``; memory and time are linear in the number of tokens per order.

    Parameters
    ----------
    sentences : list of list of str
    order : int
    vocab : list of str, optional
        Word list (ids = positions; must start with ``<unk> <s> </s>``); default: sorted words of the text.

    Returns
    -------
    dict
        ``vocab`` (list), ``keys`` / ``counts`` / ``suffix`` (lists per order ``n = 1..order``: int64 arrays; order 1
        keys are word ids, ``suffix[n-1][r]`` is the row of the n-gram's last ``n-1`` words in order ``n-1``).

    Examples
    --------
    >>> c = count_ngrams([["a", "b"]], 2)
    >>> c["vocab"], c["counts"][0].tolist(), c["keys"][1].tolist()
    (['<unk>', '<s>', '</s>', 'a', 'b'], [0, 1, 1, 1, 1], [8, 19, 22])
    """
    if vocab is None:
        vocab = _vocabulary(sentences)
    index = {w: i for i, w in enumerate(vocab)}
    V = len(vocab)
    lens = np.fromiter((len(s) + 2 for s in sentences), np.int64, len(sentences))
    tokens = np.fromiter((index.get(w, 0) for s in sentences for w in [BOS, *s, EOS]), np.int64, int(lens.sum()))
    # remaining tokens in the sentence from each position (incl. itself)
    ends = np.repeat(np.cumsum(lens), lens)
    left = ends - np.arange(len(tokens))
    keys, counts, suffix = [np.arange(V, dtype=np.int64)], [np.bincount(tokens, minlength=V).astype(np.int64)], [None]
    rows = tokens.copy()  # row of the n-gram starting at each position (-1: runs past the sentence end)
    for n in range(2, order + 1):
        valid = np.flatnonzero(left[: len(tokens) - n + 1] >= n)
        k = rows[valid] * V + tokens[valid + n - 1]
        uniq, first, inv, cnt = np.unique(k, return_index=True, return_inverse=True, return_counts=True)
        new_rows = np.full(len(tokens), -1, np.int64)
        new_rows[valid] = inv
        suf = rows[valid[first] + 1]  # the (n-1)-gram that follows: the suffix
        keys.append(uniq.astype(np.int64))
        counts.append(cnt.astype(np.int64))
        suffix.append(suf.astype(np.int64))
        rows = new_rows
    return {"vocab": vocab, "keys": keys, "counts": counts, "suffix": suffix}


def build_lm(sentences, order=3, prune=None, vocab=None, verbose=False):
    """Build an interpolated modified Kneser-Ney n-gram model (see the module docstring for the exact definition).

    Parameters
    ----------
    sentences : list of list of str
    order : int
        Highest n-gram order (>= 1).
    prune : sequence of int, optional
        Per order ``1..order``: drop n-grams with raw count ``<= prune[n-1]`` (0 keeps all; unigrams never pruned).
    vocab : list of str, optional
    verbose : bool
        Print timings of the steps.

    Returns
    -------
    NGramLM

    Examples
    --------
    >>> lm = build_lm([["the", "cat"], ["the", "dog"]], order=2)
    >>> lm.num_ngrams()
    [6, 5]
    >>> lm.score(["the", "cat"]) > lm.score(["cat", "the"])
    True
    """
    if order < 1:
        raise LMError("order must be >= 1")
    prune = list(prune or [0] * order)
    if len(prune) != order:
        raise LMError(f"prune needs {order} thresholds (one per order), got {len(prune)}")
    t0 = time.perf_counter()
    c = count_ngrams(sentences, order, vocab)
    vocab, keys, raw, suffix = c["vocab"], c["keys"], c["counts"], c["suffix"]
    V = len(vocab)
    if verbose:
        print(f"counted {sum(len(k) for k in keys)} n-grams in {time.perf_counter() - t0:.1f} s", flush=True)
    ctx = [None] + [k // V for k in keys[1:]]
    # adjusted counts
    adj = []
    for n in range(1, order + 1):
        if n == order:
            a = raw[n - 1].astype(np.float64)
        else:
            a = np.bincount(suffix[n], minlength=len(keys[n - 1])).astype(np.float64)
            first_word = keys[0] if n == 1 else _first_words(keys, n, V)
            a = np.where(first_word == 1, raw[n - 1], a)
        adj.append(a)
    # probabilities (interpolated, unpruned), order by order
    disc, prob, gamma = [], [], []
    for n in range(1, order + 1):
        a = adj[n - 1]
        if n == 1:
            a = a.copy()
            a[1] = 0.0  # <s> is never predicted
        ai = a.astype(np.int64)
        coc = [int(np.count_nonzero(ai == k)) for k in (1, 2, 3, 4)]
        D = discounts(coc)
        disc.append(D)
        dv = np.where(ai >= 3, D[2], np.where(ai == 2, D[1], np.where(ai == 1, D[0], 0.0)))
        if n == 1:
            S = a.sum()
            g = dv.sum() / S
            p = (a - dv) / S + g / (V - 1)
            p[1] = 0.0
            gamma.append(None)
        else:
            nctx = len(keys[n - 2])
            S = np.bincount(ctx[n - 1], weights=a, minlength=nctx)
            g = np.bincount(ctx[n - 1], weights=dv, minlength=nctx) / np.where(S > 0, S, 1.0)
            cr = ctx[n - 1]
            p = (a - dv) / S[cr] + g[cr] * prob[n - 2][suffix[n - 1]]
            gamma.append(g)
        prob.append(p)
    if verbose:
        print(f"discounts {disc}; smoothed in {time.perf_counter() - t0:.1f} s", flush=True)
    # pruning with prefix/suffix closure, top order down
    keep = [np.ones(len(k), bool) for k in keys]
    for n in range(order, 1, -1):
        keep[n - 1] &= raw[n - 1] > prune[n - 1]
        # closure from kept higher-order n-grams
        if n < order:
            kk = keep[n]
            keep[n - 1][ctx[n][kk]] = True
            keep[n - 1][suffix[n][kk]] = True
    # re-index kept rows
    new_row = [np.cumsum(k) - 1 for k in keep]
    out_keys, out_logp, out_bow = [], [], []
    for n in range(1, order + 1):
        kk = keep[n - 1]
        if n == 1:
            out_keys.append(None)
        else:
            out_keys.append(new_row[n - 2][ctx[n - 1][kk]] * V + keys[n - 1][kk] % V)
        out_logp.append(prob[n - 1][kk])
    # backoff weights by renormalisation
    for n in range(1, order):
        kk_hi = keep[n]
        cr = ctx[n][kk_hi]
        num = 1.0 - np.bincount(cr, weights=prob[n][kk_hi], minlength=len(keys[n - 1]))
        lower = prob[n - 1][suffix[n][kk_hi]] if n > 1 else prob[0][keys[n][kk_hi] % V]
        den = 1.0 - np.bincount(cr, weights=lower, minlength=len(keys[n - 1]))
        has = np.bincount(cr, minlength=len(keys[n - 1])) > 0
        bow = np.where(has, np.maximum(num, 1e-300) / np.maximum(den, 1e-300), 1.0)
        out_bow.append(bow[keep[n - 1]])
    out_bow.append(None)
    arrays = {"logp1": _log10(out_logp[0]), "bow1": _log10(out_bow[0]) if order > 1 else np.zeros(V, np.float32)}
    for n in range(2, order + 1):
        arrays[f"keys{n}"] = out_keys[n - 1].astype(np.int64)
        arrays[f"logp{n}"] = _log10(out_logp[n - 1])
        if n < order:
            arrays[f"bow{n}"] = _log10(out_bow[n - 1])
    if verbose:
        print(f"built {[len(k) for k in out_logp]} n-grams in {time.perf_counter() - t0:.1f} s", flush=True)
    lm = NGramLM(vocab, order, arrays)
    lm.discounts = disc
    return lm


def _first_words(keys, n, V):
    """First word id of every n-gram of order n (follow prefix rows down to order 1)."""
    r = keys[n - 1] // V if n > 1 else keys[0]
    for m in range(n - 1, 1, -1):
        r = keys[m - 1][r] // V
    return r


def _log10(p):
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log10(np.where(p > 0, p, 1.0)), LOG_ZERO).astype(np.float32)


class NGramLM:
    """A backoff word n-gram model held in sorted arrays (see the module docstring for the layout).

    Parameters
    ----------
    vocab : list of str
        Words; ids are positions, ``0 <unk>, 1 <s>, 2 </s>``.
    order : int
    arrays : dict of name -> ndarray
        ``logp1``, ``bow1``, ``keys{n}``, ``logp{n}``, ``bow{n}`` (log10 values).

    Examples
    --------
    >>> lm = build_lm([["a", "b"]], order=2)
    >>> lm.order, lm.vocab_size, lm.word_id("b"), lm.word_id("zzz")
    (2, 5, 4, 0)
    """

    def __init__(self, vocab, order, arrays):
        self.vocab = list(vocab)
        self.order = int(order)
        self.arrays = arrays
        self.vocab_size = len(self.vocab)
        self._index = None
        self.discounts = None

    @property
    def index(self):
        """dict word -> id (built on first use)."""
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.vocab)}
        return self._index

    def word_id(self, word):
        """Id of a word, 0 (``<unk>``) when it is not in the vocabulary.

        Examples
        --------
        >>> build_lm([["a"]], order=1).word_id("a")
        3
        """
        return self.index.get(word, 0)

    def num_ngrams(self):
        """Number of n-grams per order (list).

        Examples
        --------
        >>> build_lm([["a"]], order=2).num_ngrams()
        [4, 2]
        """
        return [self.vocab_size] + [len(self.arrays[f"keys{n}"]) for n in range(2, self.order + 1)]

    def _find(self, ids):
        """Row of the n-gram ``ids`` in its order's table, or -1."""
        row = int(ids[0])
        V = self.vocab_size
        for n in range(2, len(ids) + 1):
            keys = self.arrays[f"keys{n}"]
            k = row * V + int(ids[n - 1])
            i = int(np.searchsorted(keys, k))
            if i >= len(keys) or keys[i] != k:
                return -1
            row = i
        return row

    def log_prob(self, context_ids, word_id):
        """log10 p(word | context) with backoff.

        Parameters
        ----------
        context_ids : sequence of int
            Preceding word ids, oldest first (only the last ``order - 1`` are used).
        word_id : int

        Returns
        -------
        float

        Examples
        --------
        >>> lm = build_lm([["c"], ["c", "b"], ["b"], ["b"], ["b"]], order=2)
        >>> round(10 ** lm.log_prob([lm.word_id("c")], lm.word_id("b")), 4)  # (1 - 0.5)/2 + 0.5 * 0.21
        0.355
        """
        ctx = [int(c) for c in context_ids][max(0, len(context_ids) - self.order + 1):]
        bow = 0.0
        for m in range(len(ctx), -1, -1):  # m = context words used
            h = ctx[len(ctx) - m:]
            row = self._find(h + [int(word_id)])
            if row >= 0:
                return bow + float(self.arrays[f"logp{m + 1}"][row])
            hrow = self._find(h) if m > 0 else -1
            if hrow >= 0:
                bow += float(self.arrays[f"bow{m}"][hrow])
        return LOG_ZERO  # unreachable: every word is a unigram

    def score(self, words, bos=True, eos=True):
        """log10 probability of a sentence (list of words or a string).

        Parameters
        ----------
        words : list of str or str
        bos, eos : bool
            Condition on ``<s>`` / add ``</s>``.

        Returns
        -------
        float

        Examples
        --------
        >>> lm = build_lm([["a", "b"], ["b"]], order=3)
        >>> lm.score("a b") > lm.score("b a")
        True
        """
        if isinstance(words, str):
            words = words.split()
        ids = [self.word_id(w) for w in words] + ([2] if eos else [])
        ctx = [1] if bos else []
        total = 0.0
        for w in ids:
            total += self.log_prob(ctx, w)
            ctx.append(w)
        return total

    def save(self, path):
        """Write the binary form (``lm.bin``; layout in the module docstring).

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "lm.bin")
        >>> lm = build_lm([["a", "b"]], order=2); lm.save(p)
        >>> NGramLM.load(p).score("a b") == lm.score("a b")
        True
        """
        arrays = {"vocab": np.frombuffer("\n".join(self.vocab).encode("utf-8"), np.uint8)}
        arrays.update(self.arrays)
        header = {"order": self.order, "vocab_size": self.vocab_size, "arrays": {}}
        off = 0
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            header["arrays"][name] = [a.dtype.str, list(a.shape), off]
            off += (a.nbytes + 63) // 64 * 64
        hjson = json.dumps(header).encode()
        start = (len(MAGIC) + 8 + len(hjson) + 63) // 64 * 64
        with open(path, "wb") as f:
            f.write(MAGIC + np.uint64(len(hjson)).tobytes() + hjson)
            f.write(b"\0" * (start - f.tell()))
            for name, a in arrays.items():
                a = np.ascontiguousarray(a)
                f.write(a.tobytes())
                f.write(b"\0" * ((a.nbytes + 63) // 64 * 64 - a.nbytes))

    @classmethod
    def load(cls, path):
        """Load the binary form memory-mapped (arrays are read-only views of the file).

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "lm.bin")
        >>> build_lm([["a"]], order=2).save(p)
        >>> NGramLM.load(p).vocab
        ['<unk>', '<s>', '</s>', 'a']
        """
        try:
            mm = np.memmap(path, np.uint8, "r")
        except (OSError, ValueError) as e:
            raise LMError(f"{path}: cannot open language model: {e}") from None
        if len(mm) < 16 or bytes(mm[:8]) != MAGIC:
            raise LMError(f"{path}: not a speechlstm binary language model (bad magic)")
        hlen = int(np.frombuffer(bytes(mm[8:16]), np.uint64)[0])
        try:
            header = json.loads(bytes(mm[16:16 + hlen]))
            start = (16 + hlen + 63) // 64 * 64
            arrays = {}
            for name, (dt, shape, off) in header["arrays"].items():
                n = int(np.prod(shape)) * np.dtype(dt).itemsize
                if start + off + n > len(mm):
                    raise ValueError(f"array {name} runs past the end of the file")
                arrays[name] = mm[start + off:start + off + n].view(dt).reshape(shape)
        except (ValueError, KeyError, TypeError) as e:
            raise LMError(f"{path}: corrupt language model header: {e}") from None
        vocab = bytes(arrays.pop("vocab")).decode("utf-8").split("\n")
        return cls(vocab, header["order"], arrays)

    def ngrams(self, n):
        """Word-id matrix ``[rows, n]`` of the order-n n-grams (in table order).

        Examples
        --------
        >>> build_lm([["a"]], order=2).ngrams(2).tolist()
        [[1, 3], [3, 2]]
        """
        if n == 1:
            return np.arange(self.vocab_size, dtype=np.int64)[:, None]
        prev = self.ngrams(n - 1)
        k = np.asarray(self.arrays[f"keys{n}"])
        return np.column_stack([prev[k // self.vocab_size], k % self.vocab_size])


def write_arpa(lm, path):
    """Write the model as ARPA text, gzip-compressed when ``path`` ends in ``.gz``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "lm.arpa.gz")
    >>> write_arpa(build_lm([["a"]], order=2), p)
    >>> gzip.open(p, "rt").read().splitlines()[:3]
    ['\\\\data\\\\', 'ngram 1=4', 'ngram 2=2']
    """
    path = str(path)
    opener = (lambda: gzip.open(path, "wt", encoding="utf-8", compresslevel=5)) if path.endswith(".gz") else (
        lambda: open(path, "w", encoding="utf-8"))
    counts = lm.num_ngrams()
    vocab = lm.vocab
    with opener() as f:
        f.write("\\data\\\n" + "".join(f"ngram {n}={c}\n" for n, c in enumerate(counts, 1)))
        for n in range(1, lm.order + 1):
            f.write(f"\n\\{n}-grams:\n")
            ids = lm.ngrams(n)
            words = [" ".join(vocab[i] for i in row) for row in ids.tolist()]
            lp = np.asarray(lm.arrays[f"logp{n}"]).tolist()
            if n < lm.order:
                bw = np.asarray(lm.arrays[f"bow{n}"]).tolist()
                lines = [f"{p:.7g}\t{w}\t{b:.7g}\n" for p, w, b in zip(lp, words, bw)]
            else:
                lines = [f"{p:.7g}\t{w}\n" for p, w in zip(lp, words)]
            f.write("".join(lines))
        f.write("\n\\end\\\n")


def read_arpa(path):
    """Read an ARPA file (plain or ``.gz``) into an :class:`NGramLM`.

    Malformed input raises :class:`LMError` with a one-line ``file:line: reason`` message.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "lm.arpa")
    >>> lm = build_lm([["a", "b"]], order=2); write_arpa(lm, p)
    >>> abs(read_arpa(p).score("a b") - lm.score("a b")) < 1e-6
    True
    """
    path = str(path)
    try:
        f = gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")
        with f:
            lines = f.read().rstrip("\n").split("\n")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise LMError(f"{path}: cannot read ARPA file: {e}") from None

    def err(i, msg):
        return LMError(f"{path}:{i + 1}: {msg}")

    # The ARPA format allows free text before \data\ (CMU Sphinx and SRILM write a header there): skip it.
    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        first = next((j for j, line in enumerate(lines) if line.strip()), None)
        if first is None:
            raise LMError(f"{path}:1: no \\data\\ section (empty file?)")
        raise err(first, f"expected \\data\\, got {lines[first].strip()[:40]!r} (no \\data\\ section)")
    i += 1
    declared = []
    while i < len(lines) and lines[i].strip().startswith("ngram "):
        try:
            n, c = lines[i].strip()[6:].split("=")
            n, c = int(n), int(c)
        except ValueError:
            raise err(i, f"bad count line {lines[i].strip()[:40]!r}") from None
        if n != len(declared) + 1 or c < 0:
            raise err(i, f"unexpected count line {lines[i].strip()[:40]!r}")
        declared.append(c)
        i += 1
    if not declared:
        raise err(min(i, len(lines) - 1), "no 'ngram N=count' lines")
    order = len(declared)
    vocab, index = [], {}
    tables = []  # per order: (ids list, logp list, bow list)
    for n in range(1, order + 1):
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or lines[i].strip() != f"\\{n}-grams:":
            raise err(min(i, len(lines) - 1), f"expected \\{n}-grams:")
        i += 1
        ids, lps, bws = [], [], []
        for _ in range(declared[n - 1]):
            if i >= len(lines):
                raise err(len(lines) - 1, f"file ends inside the {n}-grams ({len(ids)} of {declared[n - 1]} read)")
            parts = lines[i].split()
            if len(parts) not in (n + 1, n + 2) or (len(parts) == n + 2 and n == order):
                raise err(i, f"expected {n}-gram line 'logprob w1..w{n} [backoff]', got {lines[i].strip()[:60]!r}")
            try:
                lp = float(parts[0])
                bw = float(parts[n + 1]) if len(parts) == n + 2 else 0.0
            except ValueError:
                raise err(i, f"bad number in {lines[i].strip()[:60]!r}") from None
            if not (math.isfinite(lp) and math.isfinite(bw)) or lp > 1e-6:
                raise err(i, f"bad log probability in {lines[i].strip()[:60]!r}")
            words = parts[1:n + 1]
            if n == 1:
                if words[0] in index:
                    raise err(i, f"duplicate unigram {words[0]!r}")
                index[words[0]] = len(vocab)
                vocab.append(words[0])
                ids.append(len(vocab) - 1)
            else:
                try:
                    ids.append(tuple(index[w] for w in words))
                except KeyError as e:
                    raise err(i, f"word {e.args[0]!r} is not a unigram") from None
            lps.append(lp)
            bws.append(bw)
            i += 1
        tables.append((ids, lps, bws))
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != "\\end\\":
        raise err(min(i, len(lines) - 1), "expected \\end\\ after the n-grams" if i < len(lines) else
                  "missing \\end\\ (truncated file?)")
    for w in (BOS, EOS):
        if w not in index:
            raise LMError(f"{path}:1: the unigrams lack {w}")
    # put <unk> <s> </s> first, keep the file's order for the rest
    specials = [UNK, BOS, EOS]
    order_words = specials + [w for w in vocab if w not in specials]
    new_id = {w: j for j, w in enumerate(order_words)}
    remap = np.array([new_id[w] for w in vocab], np.int64)
    V = len(order_words)
    logp1 = np.full(V, LOG_ZERO, np.float32)
    bow1 = np.zeros(V, np.float32)
    logp1[remap] = tables[0][1]
    bow1[remap] = tables[0][2]
    arrays = {"logp1": logp1, "bow1": bow1}
    prev_keys = None  # sorted keys of order n-1 (order 1: word ids)
    for n in range(2, order + 1):
        ids, lps, bws = tables[n - 1]
        grams = remap[np.array(ids, np.int64).reshape(-1, n)]
        # prefix rows
        if n == 2:
            ctx = grams[:, 0]
        else:
            pk = _keys_of(grams[:, :-1], arrays, V)
            ctx = np.searchsorted(prev_keys, pk)
            bad = (ctx >= len(prev_keys)) | (prev_keys[np.minimum(ctx, len(prev_keys) - 1)] != pk)
            if bad.any():
                raise _missing(path, lines, n, int(np.flatnonzero(bad)[0]))
        k = ctx * V + grams[:, -1]
        srt = np.argsort(k, kind="stable")
        k = k[srt]
        if len(k) > 1 and (np.diff(k) == 0).any():
            raise _missing(path, lines, n, int(srt[np.flatnonzero(np.diff(k) == 0)[0] + 1]), "duplicate n-gram")
        arrays[f"keys{n}"] = k
        arrays[f"logp{n}"] = np.array(lps, np.float32)[srt]
        if n < order:
            arrays[f"bow{n}"] = np.array(bws, np.float32)[srt]
        prev_keys = k
    return NGramLM(order_words, order, arrays)


def _keys_of(grams, arrays, V):
    """Keys (``ctx_row * V + w``) of m-grams given as a word-id matrix, via the tables already built."""
    row = grams[:, 0]
    for m in range(2, grams.shape[1] + 1):
        keys = arrays[f"keys{m}"]
        k = row * V + grams[:, m - 1]
        if m == grams.shape[1]:
            return k
        pos = np.searchsorted(keys, k)
        row = np.where((pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == k), pos, -(10**12))
    return row


def _missing(path, lines, n, j, reason=None):
    """LMError for the j-th n-gram of order n (find its line number)."""
    seen = -1
    for ln, line in enumerate(lines):
        if line.strip() == f"\\{n}-grams:":
            seen = ln
            break
    ln = seen + 1 + j
    return LMError(f"{path}:{ln + 1}: " + (reason or f"the context of this {n}-gram is not a {n - 1}-gram")
                   + f" ({lines[ln].strip()[:60]!r})")
