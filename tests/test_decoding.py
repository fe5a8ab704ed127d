"""Tests of CTC decoding (speechlstm.decoding): greedy, prefix beam search, text."""

import itertools
import math

import numpy as np
import pytest

from speechlstm.decoding import Hypothesis, beam_search, decode, greedy_decode, tokens_to_text


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


def _random_lp(rng, T, V, scale=2.0):
    return _log_softmax(rng.normal(size=(T, V)) * scale)


def _collapse(path, blank):
    out, prev = [], None
    for s in path:
        if s != blank and s != prev:
            out.append(s)
        prev = s
    return tuple(out)


def _exhaustive(lp, blank):
    """Exact CTC distribution over label sequences by enumerating all V**T alignments (float64)."""
    T, V = lp.shape
    lp64 = lp.astype(np.float64)
    probs, best_path, best_lp = {}, None, -math.inf
    for path in itertools.product(range(V), repeat=T):
        s = float(sum(lp64[t, v] for t, v in enumerate(path)))
        key = _collapse(path, blank)
        probs[key] = probs.get(key, 0.0) + math.exp(s)
        if s > best_lp:
            best_lp, best_path = s, path
    ranked = sorted(((math.log(p), k) for k, p in probs.items() if p > 0), key=lambda x: -x[0])
    return ranked, best_path, best_lp


def _ctc_log_prob(lp, labels, blank):
    """Exact log P(labels | lp) by the CTC forward recursion in float64."""
    lp = lp.astype(np.float64)
    ext = [blank]
    for c in labels:
        ext += [int(c), blank]
    S, T = len(ext), lp.shape[0]
    alpha = np.full(S, -np.inf)
    alpha[0] = lp[0, ext[0]]
    if S > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, T):
        new = np.full(S, -np.inf)
        for s in range(S):
            a = alpha[s]
            if s >= 1:
                a = np.logaddexp(a, alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a = np.logaddexp(a, alpha[s - 2])
            new[s] = a + lp[t, ext[s]]
        alpha = new
    return float(np.logaddexp(alpha[-1], alpha[-2]) if S > 1 else alpha[-1])


def _reference_beam(lp, beam_width, blank, prune_threshold=-np.inf, top_k=None):
    """Plain dict-based CTC prefix beam search with the kernel's semantics.

    Pruned labels start no new prefix, but an extension that is already a beam prefix always adds its mass.
    """
    lp = lp.astype(np.float64)
    lae = np.logaddexp
    beam = {(): (0.0, -np.inf)}
    for t in range(lp.shape[0]):
        nxt = {}

        def add(prefix, pb, pnb):
            ob, onb = nxt.get(prefix, (-np.inf, -np.inf))
            nxt[prefix] = (lae(ob, pb), lae(onb, pnb))

        floor = lp[t].max() + prune_threshold
        order = [c for c in np.argsort(-lp[t], kind="stable") if c != blank and lp[t, c] >= floor]
        allowed = set(order[:top_k] if top_k else order)
        for prefix, (pb, pnb) in beam.items():
            tot = lae(pb, pnb)
            add(prefix, tot + lp[t, blank], pnb + lp[t, prefix[-1]] if prefix else -np.inf)
            for c in range(lp.shape[1]):
                if c == blank or (c not in allowed and prefix + (c,) not in beam):
                    continue
                ext = (pb if prefix and c == prefix[-1] else tot) + lp[t, c]
                add(prefix + (c,), -np.inf, ext)
        ranked = sorted(nxt.items(), key=lambda kv: -lae(*kv[1]))[:beam_width]
        beam = dict(ranked)
    return [(k, float(lae(*v))) for k, v in sorted(beam.items(), key=lambda kv: -lae(*kv[1]))]


def _check_hyp(h, lp):
    T = lp.shape[0]
    assert h.token_ids.dtype == np.int32 and h.frames.dtype == np.int32 and h.token_scores.dtype == np.float32
    assert len(h.token_ids) == len(h.frames) == len(h.token_scores)
    if len(h.frames):
        assert np.all(np.diff(h.frames) > 0)
        assert 0 <= h.frames[0] and h.frames[-1] < T
        np.testing.assert_array_equal(h.token_scores, lp[h.frames, h.token_ids])
    assert h.score <= 1e-6


CASES = [(1, 2), (2, 3), (3, 2), (3, 3), (4, 3), (5, 3), (4, 4), (6, 3), (5, 4), (6, 4)]


@pytest.mark.parametrize("T,V", CASES)
def test_beam_search_matches_exhaustive_enumeration(T, V):
    rng = np.random.default_rng(T * 10 + V)
    lp = _random_lp(rng, T, V)
    blank = int(rng.integers(V))
    ranked, best_path, best_lp = _exhaustive(lp, blank)
    hyps = beam_search(lp, beam_width=V ** T, blank=blank, prune_threshold=None)
    assert len(hyps) == len(ranked)
    for h, (exact, seq) in zip(hyps, ranked):
        assert tuple(h.token_ids.tolist()) == seq
        assert h.score == pytest.approx(exact, abs=1e-4)
        _check_hyp(h, lp)
    # a narrower beam keeps exactly the best sequences while nothing has been dropped yet (T == 1)
    if T == 1:
        top = beam_search(lp, beam_width=2, blank=blank, prune_threshold=None)
        assert [tuple(h.token_ids.tolist()) for h in top] == [s for _, s in ranked[:2]]
    g = greedy_decode(lp, blank=blank)
    assert tuple(g.token_ids.tolist()) == _collapse(best_path, blank)
    assert g.score == pytest.approx(best_lp, abs=1e-4)
    _check_hyp(g, lp)


# (seed, width, V, scale): cases where a prefix drops out of the beam while its extension stays, then comes
# back and must merge with that extension again (found by running a kernel without its trie hash map)
@pytest.mark.parametrize("seed,width,V,scale", [(0, 2, 5, 0.5), (0, 4, 3, 2.0), (2, 4, 3, 1.0), (6, 3, 3, 1.0),
                                                (11, 5, 6, 1.0)])
def test_beam_search_matches_reference_with_small_beam(seed, width, V, scale):
    rng = np.random.default_rng(seed)
    lp = _random_lp(rng, 25, V, scale=scale)
    hyps = beam_search(lp, beam_width=width, blank=0, prune_threshold=None)
    ref = _reference_beam(lp, width, 0)
    assert [tuple(h.token_ids.tolist()) for h in hyps] == [k for k, _ in ref]
    for h, (_, s) in zip(hyps, ref):
        assert h.score == pytest.approx(s, abs=1e-6)


@pytest.mark.parametrize("width,kw", [(3, {}), (6, {"token_top_k": 5}), (4, {"prune_threshold": -2.5}),
                                      (5, {"prune_threshold": -4.0, "token_top_k": 3})])
def test_beam_search_matches_reference_large_vocabulary_and_pruning(width, kw):
    # V well above beam_width: the kernel only looks at the best labels of each frame
    rng = np.random.default_rng(width)
    lp = _random_lp(rng, 20, 40, scale=1.5)
    blank = 7
    hyps = beam_search(lp, beam_width=width, blank=blank, **{"prune_threshold": None, **kw})
    ref = _reference_beam(lp, width, blank, kw.get("prune_threshold", -np.inf), kw.get("token_top_k"))
    assert [tuple(h.token_ids.tolist()) for h in hyps] == [k for k, _ in ref]
    for h, (_, s) in zip(hyps, ref):
        assert h.score == pytest.approx(s, abs=1e-6)
        _check_hyp(h, lp)


@pytest.mark.parametrize("seed", range(3))
def test_beam_search_random_larger_inputs(seed):
    rng = np.random.default_rng(seed)
    T, V = 60, 8
    lp = _random_lp(rng, T, V, scale=3.0)
    hyps = beam_search(lp, beam_width=8, blank=0)
    assert 1 <= len(hyps) <= 8
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(h.token_ids.tolist()) for h in hyps}) == len(hyps)
    for h in hyps:
        _check_hyp(h, lp)
        # the prefix probability covers only the alignments the search kept: never above the exact one
        assert h.score <= _ctc_log_prob(lp, h.token_ids, 0) + 1e-6
    # the best beam prefix is at least as likely as the best single path
    g = greedy_decode(lp)
    assert hyps[0].score >= g.score - 1e-6
    # width 1 gives one hypothesis, top_k / pruning still give valid results
    (one,) = beam_search(lp, beam_width=1)
    _check_hyp(one, lp)
    for kw in ({"token_top_k": 1}, {"token_top_k": 3, "prune_threshold": -2.0}, {"prune_threshold": 0.0}):
        for h in beam_search(lp, beam_width=4, **kw):
            _check_hyp(h, lp)


def _peaky(rng, labels, V, margin=6.0):
    """Log-probs whose per-frame argmax is ``labels[t]`` by a wide margin."""
    x = rng.normal(size=(len(labels), V))
    x[np.arange(len(labels)), labels] += margin
    return _log_softmax(x)


def test_peaky_input_beam_agrees_with_greedy():
    rng = np.random.default_rng(7)
    path = [0, 0, 3, 3, 0, 5, 5, 5, 0, 0, 5, 0, 2, 2, 1, 0, 0, 4, 0]
    lp = _peaky(rng, path, 6)
    g = greedy_decode(lp)
    assert g.token_ids.tolist() == [3, 5, 5, 2, 1, 4]
    assert g.frames.tolist() == [2, 5, 10, 12, 14, 17]
    for width in (1, 4, 16):
        for kw in ({}, {"prune_threshold": None}, {"token_top_k": 1}):
            b = beam_search(lp, beam_width=width, **kw)[0]
            assert b.token_ids.tolist() == g.token_ids.tolist()
            assert b.frames.tolist() == g.frames.tolist()
            assert b.score >= g.score


def test_repeated_token_needs_blank():
    a = 1
    lp = np.log(np.array([[0.1, 0.9], [0.1, 0.9]], np.float32))
    assert greedy_decode(lp).token_ids.tolist() == [a]
    # with two frames "aa" is impossible
    assert all(h.token_ids.tolist() != [a, a] for h in beam_search(lp, beam_width=8, prune_threshold=None))
    # with three frames the only alignment of "aa" is a-blank-a
    lp3 = np.log(np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32))
    hyps = {tuple(h.token_ids.tolist()): h for h in beam_search(lp3, beam_width=8, prune_threshold=None)}
    assert hyps[(a, a)].score == pytest.approx(float(lp3[0, 1] + lp3[1, 0] + lp3[2, 1]), abs=1e-6)
    assert hyps[(a, a)].frames.tolist() == [0, 2]
    assert greedy_decode(lp3).token_ids.tolist() == [a, a]
    assert hyps[(a,)].score > hyps[(a, a)].score  # 'a' collects a-a-a, a-a-blank, ... and wins here


def test_beam_frames_follow_the_dominant_alignment():
    # "a" is possible (but unlikely) from frame 0, yet its mass arrives at frame 3; "b" at frame 7
    T, V = 10, 3
    p = np.full((T, V), 0.02)
    p[:, 0] = 0.96
    p[3:6, 1] = 0.96
    p[3:6, 0] = 0.02
    p[7, 2] = 0.96
    p[7, 0] = 0.02
    lp = np.log(p / p.sum(1, keepdims=True)).astype(np.float32)
    best = beam_search(lp, beam_width=8)[0]
    assert best.token_ids.tolist() == [1, 2]
    assert best.frames.tolist() == [3, 7]
    _check_hyp(best, lp)


def test_empty_and_tiny_vocabularies():
    empty = np.zeros((0, 5), np.float32)
    g = greedy_decode(empty)
    assert g.token_ids.size == 0 and g.score == 0.0
    (b,) = beam_search(empty)
    assert b.token_ids.size == 0 and b.score == 0.0
    assert decode(empty, list("_abcd"), beam_width=4).text == ""
    # only a blank: the empty sequence with probability 1
    (h,) = beam_search(np.zeros((4, 1), np.float32), beam_width=3)
    assert h.token_ids.size == 0 and h.score == pytest.approx(0.0)
    # V == 2, blank last
    lp = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], np.float32))
    hyps = beam_search(lp, blank=1, beam_width=4, prune_threshold=None)
    assert sum(math.exp(h.score) for h in hyps) == pytest.approx(1.0, abs=1e-5)
    assert greedy_decode(lp, blank=1).token_ids.tolist() == [0, 0]


def test_impossible_frames_give_no_hypothesis():
    lp = np.array([[math.log(0.5), math.log(0.5)], [-np.inf, -np.inf]], np.float32)
    assert beam_search(lp) == []
    h = decode(lp, ["_", "a"], beam_width=4)
    assert h.score == -math.inf and h.text == ""


def test_tokens_to_text():
    toks = ["<b>", "h", "i", " ", "x", "  "]
    assert tokens_to_text([1, 2, 3, 4], toks) == "hi x"
    assert tokens_to_text([3, 1, 3, 3, 5, 2, 3], toks) == "h i"
    assert tokens_to_text(np.array([], np.int32), toks) == ""
    assert tokens_to_text([0, 1, 0, 2], toks, blank=0) == "hi"
    with pytest.raises(ValueError):
        tokens_to_text([6], toks)
    with pytest.raises(ValueError):
        tokens_to_text([-1], toks)


def test_decode_fills_text_and_switches_on_beam_width():
    rng = np.random.default_rng(3)
    path = [1, 1, 0, 2, 0, 0, 3, 3, 3, 0, 4, 4]
    toks = ["_", "c", "a", " ", "t"]
    lp = _peaky(rng, path, 5)
    g = decode(lp, toks)
    assert isinstance(g, Hypothesis) and g.text == "ca t"
    b = decode(lp, toks, beam_width=4, prune_threshold=-8.0, token_top_k=2)
    assert b.text == "ca t" and b.score >= g.score
    assert decode(lp).text == ""


def test_invalid_arguments():
    lp = np.log(np.full((3, 3), 1 / 3, np.float32))
    with pytest.raises(ValueError):
        beam_search(lp[0])
    with pytest.raises(ValueError):
        greedy_decode(np.full((2, 3), np.nan, np.float32))
    with pytest.raises(ValueError):
        beam_search(lp, blank=3)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError):
            beam_search(lp, beam_width=bad)
    with pytest.raises(ValueError):
        beam_search(lp, prune_threshold=1.0)
    with pytest.raises(ValueError):
        beam_search(lp, token_top_k=0)
    with pytest.raises(TypeError):
        decode(lp, beam_width=2, lm_weight=0.5)
    with pytest.raises(ValueError):
        decode(lp, ["_", "a"])
