"""Beam search with n-gram LM fusion (Decoder, kernels/ctc_lm.py) against a plain-Python reference."""

import math

import numpy as np
import pytest

from speechlstm.decoding import Decoder, HotwordError, _lm_tables, beam_search, load_lm
from speechlstm.errors import LMError
from speechlstm.kernels import ctc_lm
from speechlstm.lm import build_lm, write_arpa

LN10 = math.log(10)
TOKENS = ["_", " ", "a", "b", "c"]
SENTS = [s.split() for s in [
    "a ab c", "ab c", "c ab", "a c", "ab ab c", "ba c", "a ab", "c c a", "ab c a", "ba ab c", "a ba",
]]


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


@pytest.mark.parametrize("order,prune,big", [(1, None, False), (2, None, False), (3, [0, 0, 1], False),
                                             (4, None, False), (5, [0, 1, 1, 1, 1], False), (3, None, True),
                                             (4, [0, 0, 1, 1], True)])
def test_numba_query_matches_ngramlm(order, prune, big):
    corpus = SENTS * 2 + [s.split() for s in ["the cat sat on the mat", "the dog sat", "a cat and a dog"]]
    if big:  # contexts with hundreds of successors (the binary search part of the lookup)
        rng = np.random.default_rng(5)
        words = [f"w{i}" for i in range(300)]
        corpus += [list(rng.choice(words, size=int(rng.integers(3, 12)), p=np.r_[[0.3], [0.7 / 299] * 299]))
                   for _ in range(2000)]
    lm = build_lm(corpus, order=order, prune=prune)
    _, _, logp1, bow1, keys, firsts, logps, bows = _lm_tables(lm)
    for n in range(2, order + 1):  # the offsets delimit each context's successors
        k, f = keys[n - 2], firsts[n - 2]
        assert f[0] == 0 and f[-1] == len(k) and np.all(np.diff(f) >= 0)
        np.testing.assert_array_equal(np.repeat(np.arange(len(f) - 1), np.diff(f)), k // lm.vocab_size)
    rng = np.random.default_rng(order)
    words = list(range(lm.vocab_size))
    for _ in range(300):
        k = int(rng.integers(0, order))
        ctx = [1] * int(rng.integers(0, 2)) + [int(x) for x in rng.choice(words[2:], size=k)]
        ctx = ctx[max(0, len(ctx) - (order - 1)):]
        padded = np.array([-1] * (order - 1 - len(ctx)) + ctx, np.int32)
        w = int(rng.choice([0] + words[2:]))
        if big and rng.random() < 0.5:  # seen n-grams, not just backoff
            grams = lm.ngrams(min(order, len(ctx) + 1))
            g = grams[int(rng.integers(len(grams)))].tolist()
            ctx, w = g[:-1], g[-1]
            if 1 in ctx[1:]:
                continue
            padded = np.array([-1] * (order - 1 - len(ctx)) + ctx, np.int32)
        got = ctc_lm.lm_log10_prob(padded, w, lm.vocab_size, logp1, bow1, keys, firsts, logps, bows)
        assert got == pytest.approx(lm.log_prob(ctx, w), abs=1e-5), (ctx, w)


# ------------------------------------------------------------------------------------------ Python reference

class Reference:
    """The fused score of a label sequence, written from the definition (strings, sets, NGramLM.log_prob)."""

    def __init__(self, lm, alpha, beta, unk, hotwords=(), lookahead=True):
        self.lm, self.lw, self.beta, self.unk = lm, alpha * LN10, beta, unk
        self.phrases = dict(hotwords)
        self.hot_words = {w for p in self.phrases for w in p.split()}
        self.vocab = set(lm.vocab[3:]) | self.hot_words
        self.lookahead = lookahead
        prefixes = {v[:i] for v in self.vocab for i in range(1, len(v) + 1)}
        self.smear = {p: self._best(p) for p in prefixes}
        self.oov = unk + self.lw * min([0.0] + list(self.smear.values()))

    def _best(self, prefix):
        if not self.lookahead:
            return 0.0
        return max(float(self.lm.arrays["logp1"][self.lm.word_id(v)]) for v in self.vocab if v.startswith(prefix))

    def _gain(self, h):
        best = 0.0
        for p, w in self.phrases.items():
            if p.startswith(h) and h[-1] != " ":
                n, k = len(p.replace(" ", "")), len(h.replace(" ", ""))
                best = max(best, w * k / (n * (n + 1) / 2))
        return best

    def _can(self, h):
        return any(p.startswith(h) for p in self.phrases)

    def _end_word(self, word, ctx):
        wid = self.lm.word_id(word)
        pen = 0.0 if (wid != 0 or word in self.hot_words) else self.unk
        return self.lw * self.lm.log_prob(ctx, wid) + self.beta + pen, ctx + [wid]

    def bonus(self, labels, final=False):
        commit, ctx, word, h, hp = 0.0, [1], "", "", 0.0
        for lab in labels:
            tok = TOKENS[lab]
            if tok == " ":
                if word:
                    s, ctx = self._end_word(word, ctx)
                    commit += s
                if h is not None and h in self.phrases:
                    commit, hp = commit + hp, 0.0
                if h and self._can(h + " "):
                    h = h + " "
                else:
                    h, hp = "", 0.0
                word = ""
            else:
                at_start = word == ""
                word += tok
                if h is not None and self._can(h + tok):
                    h = h + tok
                    hp += self._gain(h)
                elif at_start and h != "" and self._can(tok):
                    h, hp = tok, self._gain(tok)
                else:
                    h, hp = None, 0.0
        if not final:
            partial = 0.0 if not word else (self.lw * self.smear[word] if word in self.smear else self.oov)
            return commit + partial + hp
        if word:
            s, ctx = self._end_word(word, ctx)
            commit += s
        commit += self.lw * self.lm.log_prob(ctx, 2)
        if h is not None and h in self.phrases:
            commit += hp
        return commit


def reference_search(lp, width, ref):
    lp = lp.astype(np.float64)
    lae = np.logaddexp
    beam = {(): (0.0, -np.inf)}
    cache = {}

    def bonus(k):
        if k not in cache:
            cache[k] = ref.bonus(k)
        return cache[k]

    for t in range(lp.shape[0]):
        nxt = {}

        def add(prefix, pb, pnb):
            ob, onb = nxt.get(prefix, (-np.inf, -np.inf))
            nxt[prefix] = (lae(ob, pb), lae(onb, pnb))

        for prefix, (pb, pnb) in beam.items():
            tot = lae(pb, pnb)
            add(prefix, tot + lp[t, 0], pnb + lp[t, prefix[-1]] if prefix else -np.inf)
            for c in range(1, lp.shape[1]):
                ext = (pb if prefix and c == prefix[-1] else tot) + lp[t, c]
                add(prefix + (c,), -np.inf, ext)
        ranked = sorted(((lae(*v) + bonus(k), k, v) for k, v in nxt.items()), key=lambda x: -x[0])
        beam = {k: v for r, k, v in ranked[:width] if r > -np.inf}
    out = [(lae(*v) + ref.bonus(k, final=True), float(lae(*v)), k) for k, v in beam.items()]
    return sorted(out, key=lambda x: -x[0])


def _inputs(seed, T=14):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, len(TOKENS))) * 1.5
    x[:, 0] += 0.5
    return _log_softmax(x)


CONFIGS = [
    dict(order=2, alpha=0.8, beta=0.5, unk=-3.0, hot=(), lookahead=True),
    dict(order=3, alpha=1.5, beta=-0.3, unk=-1.0, hot=(), lookahead=False),
    dict(order=3, alpha=0.5, beta=1.0, unk=-2.0, hot=(("cab", 3.0),), lookahead=True),
    dict(order=4, alpha=1.0, beta=0.2, unk=-4.0, hot=(("ab c", 2.0), ("ba", 1.0), ("c cab", 4.0)), lookahead=True),
    dict(order=2, alpha=0.0, beta=0.0, unk=0.0, hot=(("bb", 2.5), ("a bc", 1.5)), lookahead=False),
]


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("width", [3, 6])
def test_kernel_matches_python_reference(cfg, width):
    c = CONFIGS[cfg]
    lm = build_lm(SENTS, order=c["order"])
    ref = Reference(lm, c["alpha"], c["beta"], c["unk"], c["hot"], c["lookahead"])
    dec = Decoder(TOKENS, beam_width=width, lm=lm, alpha=c["alpha"], beta=c["beta"], unk_penalty=c["unk"],
                  hotwords=list(c["hot"]) or None, prune_threshold=None, lookahead=c["lookahead"])
    for seed in range(4):
        lp = _inputs(100 * cfg + seed)
        want = reference_search(lp, width, ref)
        # the kernel's own n-best (before merging equal texts)
        got = ctc_lm.lm_beam_search_kernel(
            lp, 0, width, -np.inf, 0, dec._boundary, dec._alpha_k, dec._beta_k, dec._unk_k, dec._oov_score,
            dec._lm_vocab, dec._lm_order, dec._logp1, dec._bow1, dec._keys, dec._firsts, dec._logps, dec._bows,
            dec._trie_keys, dec._trie_first, dec._trie_word, dec._trie_score, dec._hot_keys, dec._hot_first,
            dec._hot_gain, dec._hot_end)
        scores, acoustic, offsets, tokens = got[:4]
        assert len(scores) == len(want)
        for i, (fs, ac, k) in enumerate(want):
            assert tuple(tokens[offsets[i]:offsets[i + 1]].tolist()) == k, (seed, i)
            assert scores[i] == pytest.approx(fs, abs=1e-6)
            assert acoustic[i] == pytest.approx(ac, abs=1e-6)
        best = dec.decode(lp)[0]
        assert best.score == pytest.approx(want[0][0], abs=1e-6)
        assert best.text == " ".join("".join(TOKENS[i] for i in want[0][2]).split())


def test_no_fusion_weights_give_the_plain_beam_search():
    lm = build_lm(SENTS, order=3)
    toks = ["_", "a", "b", "c", "d"]  # no space: one word, scored only at the end, with weight 0
    dec = Decoder(toks, beam_width=5, lm=lm, alpha=0.0, beta=0.0, unk_penalty=0.0, prune_threshold=None)
    for seed in range(3):
        lp = _inputs(seed, T=30)
        plain = beam_search(lp, beam_width=5, prune_threshold=None)
        fused = dec.decode(lp, nbest=5)
        assert [h.token_ids.tolist() for h in fused] == [h.token_ids.tolist() for h in plain]
        for f, p in zip(fused, plain):
            assert f.score == pytest.approx(p.score, abs=1e-9) and f.acoustic_score == pytest.approx(p.score)
            assert f.frames.tolist() == p.frames.tolist()
            np.testing.assert_array_equal(f.token_scores, p.token_scores)


def _peaky(text, tokens, rng, confuse=None, frames=2, margin=5.0):
    """Log-probs spelling ``text`` (each label for ``frames`` frames, a blank after); ``confuse`` maps a position
    of ``text`` to a label whose score there is raised just above the true one."""
    rows = []
    for i, ch in enumerate(text):
        for _ in range(frames):
            x = rng.normal(size=len(tokens)) * 0.3
            x[tokens.index(ch)] += margin
            if confuse and i in confuse:
                x[tokens.index(confuse[i])] = x[tokens.index(ch)] + 0.5
            rows.append(x)
        x = rng.normal(size=len(tokens)) * 0.3
        x[0] += margin
        rows.append(x)
    return _log_softmax(np.array(rows))


CHARS = ["_", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
TEXT = [s.split() for s in [
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the fish",
    "on the mat the cat sat", "a dog ate a bone", "the dog and the cat sat", "the fish swim", "the cat sat",
    "the dog sat", "the cat sat on the log", "she sells sea shells", "the cat sat on the hat",
]]


def test_lm_fixes_acoustic_confusions_and_beam_keeps_frames():
    rng = np.random.default_rng(0)
    text = "the cat sat on the mat"
    # acoustics prefer "the cot sat on the mat" and "tha"
    lp = _peaky(text, CHARS, rng, confuse={5: "o", 2: "a"})
    lm = build_lm(TEXT, order=3)
    plain = Decoder(CHARS, beam_width=8).decode(lp)[0]
    assert plain.text == "tha cot sat on the mat"
    h = Decoder(CHARS, beam_width=8, lm=lm, alpha=1.0, beta=1.0).decode(lp)[0]
    assert h.text == text
    assert h.acoustic_score < plain.score  # the LM outweighs the acoustics
    assert np.all(np.diff(h.frames) > 0)
    np.testing.assert_array_equal(h.token_scores, lp[h.frames, h.token_ids])
    # alpha = 0 leaves the word bonus and the penalty for unknown words ("tha", "cot")
    assert Decoder(CHARS, beam_width=8, lm=lm, alpha=0.0, beta=1.0).decode(lp)[0].text == text
    assert Decoder(CHARS, beam_width=8, lm=lm, alpha=0.0, beta=1.0, unk_penalty=0.0).decode(lp)[0].text == plain.text


def test_unknown_word_penalty_and_nbest():
    rng = np.random.default_rng(1)
    lm = build_lm(TEXT, order=3)
    lp = _peaky("the cat sat", CHARS, rng, confuse={5: "o"})  # "cot" is not a word of the LM
    mild = Decoder(CHARS, beam_width=8, lm=lm, alpha=0.0, beta=0.0, unk_penalty=0.0).decode(lp, nbest=3)
    assert mild[0].text == "the cot sat"
    hyps = Decoder(CHARS, beam_width=8, lm=lm, alpha=0.0, beta=0.0, unk_penalty=-3.0).decode(lp, nbest=3)
    assert hyps[0].text == "the cat sat"
    assert [h.text for h in hyps][:2] == ["the cat sat", "the cot sat"]
    assert len({h.text for h in hyps}) == len(hyps) and hyps[0].score >= hyps[1].score >= hyps[-1].score
    assert hyps[1].score < mild[0].score  # the same text, now with the penalty


def test_end_of_sentence_and_empty_input():
    lm = build_lm(TEXT, order=2)
    dec = Decoder(CHARS, beam_width=4, lm=lm, alpha=1.0, beta=0.0)
    (h,) = dec.decode(np.zeros((0, len(CHARS)), np.float32))
    assert h.text == "" and h.acoustic_score == 0.0
    assert h.score == pytest.approx(LN10 * lm.log_prob([1], 2))  # p(</s> | <s>)
    # one word: p(w | <s>) p(</s> | w), times alpha, plus beta
    rng = np.random.default_rng(2)
    lp = _peaky("cat", CHARS, rng)
    h = Decoder(CHARS, beam_width=4, lm=lm, alpha=0.7, beta=0.4).decode(lp)[0]
    assert h.text == "cat"
    assert h.score - h.acoustic_score == pytest.approx(0.7 * LN10 * lm.score("cat") + 0.4, abs=1e-6)


def test_lm_from_paths_and_load_lm_errors(tmp_path):
    lm = build_lm(TEXT, order=3)
    lm.save(tmp_path / "lm.bin")
    write_arpa(lm, tmp_path / "lm.arpa.gz")
    rng = np.random.default_rng(3)
    lp = _peaky("the cat sat", CHARS, rng, confuse={5: "o"})
    texts = {Decoder(CHARS, lm=p, alpha=1.0).decode(lp)[0].text for p in
             (lm, tmp_path / "lm.bin", str(tmp_path / "lm.arpa.gz"), tmp_path)}
    assert texts == {"the cat sat"}
    for bad, msg in [(tmp_path / "none.bin", "no such language model file"),
                     (tmp_path / "empty_dir", "no lm.bin"),
                     (tmp_path / "bad.arpa", "bad.arpa:2: ")]:
        if bad.name == "empty_dir":
            bad.mkdir()
        if bad.name == "bad.arpa":
            bad.write_text("\\data\\\nngram 1=x\n")
        with pytest.raises(LMError) as e:
            load_lm(bad)
        assert msg in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(LMError):
            Decoder(CHARS, lm=bad)


def test_invalid_decoder_arguments():
    lm = build_lm(TEXT, order=2)
    for kw in [dict(alpha="x"), dict(alpha=-1), dict(beta=float("nan")), dict(unk_penalty=1.0),
               dict(beam_width=0), dict(prune_threshold=0.5), dict(token_top_k=0), dict(blank=40)]:
        with pytest.raises(ValueError):
            Decoder(CHARS, lm=lm, **kw)
    with pytest.raises(HotwordError):
        Decoder(CHARS, lm=lm, hotwords="")
    with pytest.raises(HotwordError, match="cannot be spelled"):
        Decoder(CHARS, lm=lm, hotwords="caf\u00e9")
    dec = Decoder(CHARS, lm=lm)
    with pytest.raises(ValueError):
        dec.decode(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError):
        dec.decode(np.zeros((3, len(CHARS)), np.float32), nbest=0)


def test_long_input_grows_the_trie():
    # thousands of frames with wide beams: the node arrays and the hash map grow many times
    rng = np.random.default_rng(4)
    lm = build_lm(TEXT, order=3)
    words = [w for s in TEXT for w in s]
    text = " ".join(rng.choice(words, size=300))
    lp = _peaky(text, CHARS, rng, margin=6.0)
    h = Decoder(CHARS, beam_width=16, lm=lm, alpha=0.5, beta=1.0, prune_threshold=None).decode(lp)[0]
    assert h.text == text
    assert np.all(np.diff(h.frames) > 0)


def test_tune_lm_grid_search_on_the_burst_model(burst_model_dir, burst_wav, tmp_path, capsys):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import tune_lm

    manifest = tmp_path / "dev.jsonl"
    rows = [{"id": f"u{i}", "audio": str(burst_wav), "text": "a a a", "duration": 2.5, "source": "bursts"}
            for i in range(2)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = build_lm([["a", "a", "a"], ["a", "b"]], order=2)
    lm.save(tmp_path / "lm.bin")
    cache = tmp_path / "lp.npz"
    argv = [str(burst_model_dir), str(manifest), "--lm", str(tmp_path / "lm.bin"), "--alphas", "0", "0.5",
            "--betas", "0", "1", "--beam", "4", "--cache", str(cache), "--json", "--show", "u1",
            "--hotwords", "a a a:2"]
    assert tune_lm.main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["n"] == 2 and len(summary["grid"]) == 4
    assert summary["best"]["wer"] == 0.0 and summary["greedy"]["wer"] == 0.0
    assert summary["hotwords"]["changed"] == 0
    assert "best: alpha" in out and "u1\n  ref:     a a a" in out
    assert cache.is_file()
    assert tune_lm.main(argv) == 0  # from the cache
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(g["wer"], g["cer"]) for g in again["grid"]] == [(g["wer"], g["cer"]) for g in summary["grid"]]
    assert tune_lm.main([str(burst_model_dir), str(tmp_path / "missing.jsonl"), "--lm", str(tmp_path)]) == 1
    assert "error: " in capsys.readouterr().err
