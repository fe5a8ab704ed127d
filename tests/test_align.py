"""CTC forced alignment (Viterbi) and trie forward scoring against brute force over all paths."""

import itertools

import numpy as np
import pytest

from speechlstm.kernels import align
from speechlstm.kernels.ctc_loss import ctc_loss
from speechlstm.transcribe import word_spans


def _collapse(path, blank=0):
    out, prev = [], None
    for v in path:
        if v != prev and v != blank:
            out.append(v)
        prev = v
    return out


def _random_lp(rng, T, V):
    x = rng.standard_normal((T, V)).astype(np.float32) * 2
    return (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float32)


@pytest.mark.parametrize("labels", [[1], [1, 2], [2, 2], [1, 2, 1], []])
def test_viterbi_matches_brute_force(labels):
    rng = np.random.default_rng(len(labels))
    T, V = 6, 3
    for _ in range(5):
        lp = _random_lp(rng, T, V)
        best, best_path = -np.inf, None
        for path in itertools.product(range(V), repeat=T):
            if _collapse(path) == labels:
                s = float(sum(lp[t, v] for t, v in enumerate(path)))
                if s > best:
                    best, best_path = s, path
        first, last, peak, score = align.viterbi_align_kernel(lp, np.array(labels, np.int32), 0)
        assert score == pytest.approx(best, abs=1e-4)
        # spans of the brute-force best path (each label's run of frames)
        k, exp_first, exp_last, prev = -1, [], [], 0
        for t, v in enumerate(best_path):
            if v != 0 and (v != prev):
                k += 1
                exp_first.append(t)
                exp_last.append(t)
            elif v != 0:
                exp_last[k] = t
            prev = v
        assert first.tolist() == exp_first and last.tolist() == exp_last
        for i, lab in enumerate(labels):
            assert peak[i] == pytest.approx(lp[first[i]:last[i] + 1, lab].max())


def test_viterbi_cannot_fit():
    lp = np.log(np.full((2, 2), 0.5, np.float32))
    first, last, _, score = align.viterbi_align_kernel(lp, np.array([1, 1], np.int32), 0)  # "aa" needs 3 frames
    assert score == -np.inf and first.tolist() == [-1, -1] and last.tolist() == [-1, -1]


def test_trie_forward_equals_ctc_loss_and_brute_force():
    rng = np.random.default_rng(1)
    T, V = 5, 4
    seqs = [[1], [1, 2], [1, 2, 2], [1, 1], [3], [3, 1, 3], [2, 1]]
    parent, label, ends, index = [0], [0], [], {}
    for s in seqs:
        node = 0
        for tok in s:
            if (node, tok) not in index:
                index[(node, tok)] = len(parent)
                parent.append(node)
                label.append(tok)
            node = index[(node, tok)]
        ends.append(node)
    assert len(parent) < 1 + sum(map(len, seqs))  # prefixes are shared
    lp = _random_lp(rng, T, V)
    out = align.trie_forward_kernel(lp, np.array(parent, np.int32), np.array(label, np.int32), 0)
    L = max(map(len, seqs))
    padded = np.array([s + [1] * (L - len(s)) for s in seqs])
    ref = ctc_loss(np.repeat(lp[None], len(seqs), 0).astype(np.float64), [T] * len(seqs), padded,
                   [len(s) for s in seqs])
    np.testing.assert_allclose(out[ends], -ref, rtol=1e-6, atol=1e-6)
    brute = {}
    for path in itertools.product(range(V), repeat=T):
        key = tuple(_collapse(path))
        brute[key] = np.logaddexp(brute.get(key, -np.inf), float(sum(lp[t, v] for t, v in enumerate(path))))
    for s, e in zip(seqs, ends):
        assert out[e] == pytest.approx(brute[tuple(s)], abs=1e-5)
    assert out[0] == pytest.approx(brute[()], abs=1e-5)  # the root is the empty sequence


def test_word_spans_from_alignment():
    tokens = ["_", " ", "h", "i", "o"]
    # frames: h h _ i _ _ ' ' _ o o _
    seq = [2, 2, 0, 3, 0, 0, 1, 0, 4, 4, 0]
    p = np.full((len(seq), 5), 0.02, np.float32)
    p[np.arange(len(seq)), seq] = 0.92
    lp = np.log(p)
    spans = word_spans(lp, [2, 3, 1, 4], tokens, 0)
    assert [(w, a, b) for w, a, b, _, _ in spans] == [("hi", 0, 3), ("o", 8, 9)]
    for _, _, _, mean, mn in spans:
        assert mean == pytest.approx(np.log(0.92), abs=1e-5) and mn <= mean
    assert word_spans(lp, [], tokens, 0) == []
