"""CTC prefix beam search with word-level shallow fusion (n-gram LM, vocabulary trie, hotwords), and n-gram queries.

Arithmetic only; argument checks, the construction of the tries and result objects live in
:mod:`speechlstm.decoding`. The frame's label selection, the candidate heap, the hash map, growth and the backtrace
are :mod:`speechlstm.kernels.ctc`'s; step (a) is written out in both searches (a call costs too much there), and
step (b), the extensions, is this module's own.

Fused score
-----------
A prefix ``y`` ranks by ``log p_ctc(y) + bonus(y)`` with

``bonus = alpha ln10 * sum log10 p_lm(w_i | history) + beta * words + unk_penalty * oov_words + hotword bonus``
``        + partial(current unfinished word)``

Words end at a boundary label (``is_boundary``, the space) and, for the last word, at the end of the utterance,
where ``alpha ln10 log10 p_lm(</s> | history)`` is added as well. The unfinished word is scored through a prefix
trie of the vocabulary: ``alpha ln10 * trie_score[node]`` while it is a prefix of some vocabulary word (0, or the
best unigram log10 probability below the node: "LM look-ahead"), ``oov_score`` once it is not; when the word ends
the partial score is replaced by the word's real score. A word that is not in the LM is scored as ``<unk>`` plus
``unk_penalty``; a word of the trie without LM id (``trie_word == -2``: a hotword the LM never saw) as ``<unk>``
without the penalty.

Hotwords: a second trie over label sequences (phrases, spaces included). While a prefix follows a phrase, each
label adds ``hot_gain[node]`` (growing along the phrase; they add up to its weight); the sum since the last completed phrase is held apart (``node_hpart``) and taken back
when the match breaks; it becomes permanent when a phrase end (``hot_end``) is followed by a boundary label or the
end of the utterance. Phrases start at word starts only (a match that breaks on the first character of a word
restarts there; matching is greedy, not Aho-Corasick).

LM layout
---------
As :mod:`speechlstm.lm` (``keys{n}`` sorted int64 ``ctx_row * V + word``, log10 values); the tables of orders
``2..MAX_ORDER`` come as tuples ``keys``, ``logps``, ``bows`` of ``MAX_ORDER - 1`` arrays (empty ones pad the
orders above the model's). A context is an int32 array of the ``order - 1`` previous word ids, oldest first,
``-1`` where there is none (sentence start: ``[-1, ..., -1, 1]``, 1 being ``<s>``).

Tries
-----
``trie_keys`` (sorted int64 ``parent * V + label``): the child reached from ``parent`` by ``label`` is
``1 + index of the key``, node 0 is the root. Building them depth by depth (node ids grow with depth) makes the
concatenated keys sorted; ``trie_first[p]`` is the index of the first key of parent ``p``, so a lookup scans only
``p``'s children. The n-gram tables get the same offsets (``firsts``) per context row.

Search
------
As :func:`speechlstm.kernels.ctc.beam_search_kernel` (canonical prefix trie with a hash map, timing trie, min-heap
of candidates), except that a child prefix node and its fused state are created as soon as an extension is
looked at, so every LM query is made once per distinct prefix; all labels above the pruning floor are considered
(bonuses differ between labels); and the label loop stops at the first label whose acoustic upper bound
(``total + log_prob + bonus + max hotword gain``; a character never raises the LM part) cannot enter the heap,
boundary labels being scored exactly.
"""

import numpy as np
from numba import njit

from .ctc import (_backtrace, _candidate_placed, _candidate_slot, _frame_labels, _grow, _grow_fill, _grow_times,
                  _hash_find, _hash_insert, _heap_of_stays, _heap_sort, _logaddexp, _rehash, _timing_node)

MAX_ORDER = 6
_NEG_INF = -np.inf
_LN10 = float(np.log(10.0))


@njit(cache=True, nogil=True)
def _find_child(keys, first, row, V, w):
    """Index of the key ``row * V + w`` in ``keys``, searched among the successors of ``row`` only
    (``keys[first[row]:first[row + 1]]``); -1 when absent.

    Examples
    --------
    >>> import numpy as np
    >>> keys = np.array([0 * 10 + 4, 2 * 10 + 1, 2 * 10 + 7], np.int64)  # (row, w): (0, 4), (2, 1), (2, 7)
    >>> first = np.array([0, 1, 1, 3], np.int64)
    >>> _find_child(keys, first, 2, 10, 7), _find_child(keys, first, 2, 10, 4), _find_child(keys, first, 1, 10, 1)
    (2, -1, -1)
    >>> keys = np.arange(100, dtype=np.int64) * 3                     # row 0, w = 0, 3, ..., 297 (V = 1000)
    >>> first = np.array([0, 100], np.int64)
    >>> [_find_child(keys, first, 0, 1000, w) for w in (0, 3, 150, 151, 297, 298)]
    [0, 1, 50, -1, 99, -1]
    """
    k = row * V + w
    lo = first[row]
    end = first[row + 1]
    hi = end
    while hi - lo > 8:  # the first key >= k is in [lo, hi]
        mid = (lo + hi) >> 1
        if keys[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    for i in range(lo, min(hi + 1, end)):
        if keys[i] >= k:
            return i if keys[i] == k else -1
    return -1


@njit(cache=True, nogil=True)
def _context_row(ctx, m, V, keys, firsts):
    """Row of the last ``m >= 1`` words of ``ctx`` in the order-``m`` table (-1 when absent)."""
    L = ctx.shape[0]
    row = np.int64(ctx[L - m])
    for j in range(L - m + 1, L):
        n = j - (L - m) - 1
        row = _find_child(keys[n], firsts[n], row, V, ctx[j])
        if row < 0:
            return -1
    return row


@njit(cache=True, nogil=True)
def lm_log10_prob(ctx, w, V, logp1, bow1, keys, firsts, logps, bows):
    """log10 p(w | ctx) of a backoff n-gram model (Katz-style backoff over the stored tables).

    Parameters
    ----------
    ctx : ndarray, int32, shape (order - 1,)
        Previous word ids, oldest first; entries ``< 0`` (at the left) mean "no word".
    w : int
        Word id, ``0 <= w < V``.
    V : int
        Vocabulary size.
    logp1, bow1 : ndarray, float32, shape (V,)
        Unigram log10 probabilities and backoff weights.
    keys, firsts, logps, bows : tuples of ``MAX_ORDER - 1`` arrays
        Orders 2, 3, ...: sorted int64 keys; int64 offsets (``keys{n}[firsts{n}[r]:firsts{n}[r + 1]]`` are the
        n-grams whose context is row ``r`` of order ``n - 1``; length ``rows{n-1} + 1``); float32 log10
        probabilities; float32 log10 backoff weights.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> e8, e4 = np.zeros(0, np.int64), np.zeros(0, np.float32)
    >>> logp1 = np.log10(np.array([0.1, 1, 0.3, 0.6], np.float32)); logp1[1] = -99  # <unk> <s> </s> a
    >>> bow1 = np.log10(np.array([1, 0.5, 1, 1], np.float32))
    >>> keys = (np.array([1 * 4 + 3], np.int64),) + (e8,) * 4      # the bigram "<s> a"
    >>> firsts = (np.array([0, 0, 1, 1, 1], np.int64),) + (e8,) * 4  # its context is unigram row 1
    >>> logps = (np.log10(np.array([0.8], np.float32)),) + (e4,) * 4
    >>> bows = (e4,) * 5
    >>> ctx = np.array([1], np.int32)
    >>> round(10 ** lm_log10_prob(ctx, 3, 4, logp1, bow1, keys, firsts, logps, bows), 4)  # seen: p(a | <s>)
    0.8
    >>> round(10 ** lm_log10_prob(ctx, 2, 4, logp1, bow1, keys, firsts, logps, bows), 4)  # 0.5 * p(</s>)
    0.15
    """
    L = ctx.shape[0]
    m = 0
    while m < L and ctx[L - 1 - m] >= 0:
        m += 1
    bow = 0.0
    while m > 0:
        h = _context_row(ctx, m, V, keys, firsts)
        if h >= 0:
            r = _find_child(keys[m - 1], firsts[m - 1], h, V, w)
            if r >= 0:
                return bow + logps[m - 1][r]
            if m == 1:
                bow += bow1[h]
            else:
                bow += bows[m - 2][h]
        m -= 1
    return bow + logp1[w]


@njit(cache=True, nogil=True)
def _trie_child(trie_keys, trie_first, node, label, V):
    """Child of ``node`` by ``label`` in a trie stored as sorted keys (-1 when there is none)."""
    if node < 0:
        return -1
    i = _find_child(trie_keys, trie_first, np.int64(node), V, label)
    return i + 1 if i >= 0 else -1


@njit(cache=True, nogil=True)
def _end_word(wn, ctx_in, ctx_out, lm_w, beta, unk_penalty, lm_vocab, logp1, bow1, keys, firsts, logps, bows,
              trie_word):
    """Score of the word that ends in vocabulary-trie state ``wn``; writes the next LM context to ``ctx_out``.

    ``wn == 0`` (no word: a leading or repeated boundary) scores 0 and keeps the context.
    """
    L = ctx_in.shape[0]
    if wn == 0:
        for j in range(L):
            ctx_out[j] = ctx_in[j]
        return 0.0
    wid = -1
    if wn > 0:
        wid = trie_word[wn]
    penalty = 0.0
    if wid < 0:
        if wid != -2:
            penalty = unk_penalty  # not a word of the vocabulary (nor a hotword)
        wid = 0  # scored as <unk>
    score = lm_w * lm_log10_prob(ctx_in, wid, lm_vocab, logp1, bow1, keys, firsts, logps, bows) + beta + penalty
    for j in range(L - 1):
        ctx_out[j] = ctx_in[j + 1]
    if L > 0:
        ctx_out[L - 1] = wid
    return score


@njit(cache=True, nogil=True)
def _final_bonus(node, node_commit, node_wnode, node_ctx, node_hnode, node_hpart, scratch, lm_w, beta,
                 unk_penalty, lm_vocab, logp1, bow1, keys, firsts, logps, bows, trie_word, hot_end):
    """Bonus of a prefix at the end of the utterance: its last word ended, ``</s>``, a completed hotword kept."""
    L = scratch.shape[0]
    ctx = node_ctx[node * L:(node + 1) * L]
    total = node_commit[node] + _end_word(node_wnode[node], ctx, scratch, lm_w, beta, unk_penalty, lm_vocab,
                                          logp1, bow1, keys, firsts, logps, bows, trie_word)
    total += lm_w * lm_log10_prob(scratch, 2, lm_vocab, logp1, bow1, keys, firsts, logps, bows)
    h = node_hnode[node]
    if h > 0 and hot_end[h]:
        total += node_hpart[node]
    return total


@njit(cache=True, nogil=True)
def lm_beam_search_kernel(log_probs, blank, beam_width, prune_threshold, top_k, is_boundary, alpha, beta,
                          unk_penalty, oov_score, lm_vocab, lm_order, logp1, bow1, keys, firsts, logps, bows,
                          trie_keys, trie_first, trie_word, trie_score, hot_keys, hot_first, hot_gain, hot_end):
    """CTC prefix beam search in log space with word-level shallow fusion (see the module docstring).

    Parameters
    ----------
    log_probs : ndarray, float32, shape (T, V)
        Log-softmax outputs, no NaN.
    blank : int
    beam_width : int
        At least 1.
    prune_threshold : float
        New prefixes only from labels with ``log_prob >= frame max + prune_threshold`` (``-inf`` keeps all).
    top_k : int
        New prefixes only from the ``top_k`` best non-blank labels of each frame; ``<= 0`` keeps all.
    is_boundary : ndarray, bool, shape (V,)
        Word-boundary labels (the space).
    alpha, beta, unk_penalty : float
        LM weight (applied to natural-log probabilities), word insertion bonus, out-of-vocabulary penalty
        (``<= 0``).
    oov_score : float
        Partial score of an unfinished word that is no vocabulary prefix (``<=`` every ``alpha ln10 trie_score``).
    lm_vocab, lm_order : int
    logp1, bow1, keys, firsts, logps, bows
        The n-gram model (see :func:`lm_log10_prob`).
    trie_keys, trie_first : ndarray, int64
        Vocabulary trie over labels (keys ``parent * V + label``; the children of node ``p`` are at key indices
        ``trie_first[p]:trie_first[p + 1]``).
    trie_word : ndarray, int32
        Per trie node: the LM id of the word ending there, -1 for none, -2 for a word without LM id.
    trie_score : ndarray, float32
        Per trie node: log10 look-ahead score, ``<= 0``, not increasing along a path (root 0).
    hot_keys, hot_first : ndarray, int64
        Hotword trie over labels (as the vocabulary trie).
    hot_gain : ndarray, float64
        Per hotword trie node: bonus for reaching it (``>= 0``; a phrase's weight over its characters).
    hot_end : ndarray, bool
        Per hotword trie node: a phrase ends here.

    Returns
    -------
    scores : ndarray, float64, shape (n,)
        Fused scores (acoustic + final bonus), best first.
    acoustic : ndarray, float64, shape (n,)
        CTC prefix log-probabilities of the same hypotheses.
    offsets : ndarray, int64, shape (n + 1,)
        Hypothesis ``i`` is ``tokens[offsets[i]:offsets[i + 1]]`` (same for frames and token_scores).
    tokens, frames : ndarray, int32
    token_scores : ndarray, float32
    """
    T, V = log_probs.shape
    B = beam_width
    L = lm_order - 1
    lm_w = alpha * _LN10
    hot_max = 0.0
    for i in range(hot_gain.shape[0]):
        if hot_gain[i] > hot_max:
            hot_max = hot_gain[i]

    # prefix trie with its fused state
    cap = 1024 + 4 * B * V
    node_parent = np.empty(cap, np.int32)
    node_token = np.empty(cap, np.int32)
    node_bonus = np.empty(cap, np.float64)
    node_commit = np.empty(cap, np.float64)
    node_wnode = np.empty(cap, np.int32)
    node_hnode = np.empty(cap, np.int32)
    node_hpart = np.empty(cap, np.float64)
    node_ctx = np.empty(cap * L, np.int32)
    node_in_beam = np.full(cap, -1, np.int32)
    node_parent[0] = -1
    node_token[0] = -1
    node_bonus[0] = 0.0
    node_commit[0] = 0.0
    node_wnode[0] = 0
    node_hnode[0] = 0
    node_hpart[0] = 0.0
    for j in range(L):
        node_ctx[j] = -1
    if L > 0:
        node_ctx[L - 1] = 1  # <s>
    n_nodes = 1
    hcap = 1
    while hcap < 2 * cap:
        hcap *= 2
    h_keys = np.full(hcap, -1, np.int64)
    h_vals = np.empty(hcap, np.int32)
    tcap = cap
    time_parent = np.empty(tcap, np.int32)
    time_frame = np.empty(tcap, np.int32)
    time_score = np.empty(tcap, np.float32)
    time_parent[0] = -1
    time_frame[0] = -1
    time_score[0] = 0.0
    n_times = 1
    scratch = np.empty(L, np.int32)

    b_node = np.zeros(B, np.int32)
    b_time = np.zeros(B, np.int32)
    b_pb = np.full(B, _NEG_INF)
    b_pnb = np.full(B, _NEG_INF)
    b_pb[0] = 0.0
    nb = 1

    c_node = np.empty(B, np.int32)
    c_pb = np.empty(B, np.float64)
    c_pnb = np.empty(B, np.float64)
    c_rank = np.empty(B, np.float64)
    c_time = np.empty(B, np.int32)
    c_new_time = np.zeros(B, np.bool_)
    c_tscore = np.empty(B, np.float32)
    heap = np.empty(B, np.int32)
    free = np.empty(B, np.int32)
    labels = np.empty(V, np.int32)
    label_key = np.empty(V, np.float64)

    for t in range(T):
        row = log_probs[t]
        # room for this frame's new prefix nodes (at most one per beam entry and label) and timing nodes
        need = n_nodes + B * V + 1
        if need > cap:
            new_cap = 2 * cap
            while new_cap < need:
                new_cap *= 2
            node_parent = _grow(node_parent, new_cap)
            node_token = _grow(node_token, new_cap)
            node_bonus = _grow(node_bonus, new_cap)
            node_commit = _grow(node_commit, new_cap)
            node_wnode = _grow(node_wnode, new_cap)
            node_hnode = _grow(node_hnode, new_cap)
            node_hpart = _grow(node_hpart, new_cap)
            node_ctx = _grow(node_ctx, new_cap * L)
            node_in_beam = _grow_fill(node_in_beam, new_cap, -1)
            cap = new_cap
        if 2 * need > h_keys.shape[0]:
            h_keys, h_vals = _rehash(h_keys, h_vals, need)
        if n_times + B > time_parent.shape[0]:
            time_parent, time_frame, time_score = _grow_times(time_parent, time_frame, time_score, B)

        # labels that may start new prefixes, best first (all of them above the floor: bonuses differ by label)
        keep = V
        if top_k > 0 and top_k < keep:
            keep = top_k
        nl = _frame_labels(row, blank, prune_threshold, keep, labels, label_key)
        last_boundary = -1  # position of the last boundary label in `labels`
        for i in range(nl):
            if is_boundary[labels[i]]:
                last_boundary = i

        # (a) beam entries staying, merged with extensions of their in-beam parents (as in
        # kernels.ctc.beam_search_kernel, without its list of in-beam children: here node_in_beam[child] says it)
        lp_blank = row[blank]
        for b in range(nb):
            node = b_node[b]
            node_in_beam[node] = b
            c_node[b] = node
            c_pb[b] = _logaddexp(b_pb[b], b_pnb[b]) + lp_blank
            if node != 0:
                c_pnb[b] = b_pnb[b] + row[node_token[node]]
            else:
                c_pnb[b] = _NEG_INF
            c_time[b] = b_time[b]
            c_new_time[b] = False
        for q in range(nb):
            node = b_node[q]
            if node == 0:
                continue
            b = node_in_beam[node_parent[node]]
            if b < 0:
                continue
            c = node_token[node]
            if c == node_token[node_parent[node]]:
                ext = b_pb[b] + row[c]  # repeated label needs a blank in between
            else:
                ext = _logaddexp(b_pb[b], b_pnb[b]) + row[c]
            if ext == _NEG_INF:
                continue
            if ext > _logaddexp(c_pb[q], c_pnb[q]):
                c_time[q] = b_time[b]
                c_new_time[q] = True
                c_tscore[q] = row[c]
            c_pnb[q] = _logaddexp(c_pnb[q], ext)
        hsize, nfree = _heap_of_stays(B, nb, c_node, c_pb, c_pnb, node_bonus, c_rank, heap, free)

        # (b) new prefixes: beam entry b extended by label c
        for b in range(nb):
            node = b_node[b]
            total = _logaddexp(b_pb[b], b_pnb[b])
            if total == _NEG_INF:
                continue
            last = node_token[node]
            # upper bounds of the child's bonus: a character never raises the LM part and adds at most hot_max;
            # a boundary replaces the partial word's score by a word score <= beta (log p <= 0, up to rounding)
            # and keeps at most the pending hotword bonus
            bound = node_bonus[node] + hot_max
            bound_boundary = node_commit[node] + beta + node_hpart[node] + 0.01 * lm_w
            for i in range(nl):
                c = labels[i]
                boundary = is_boundary[c]
                if not boundary and hsize == B and total + row[c] + bound <= c_rank[heap[0]]:
                    if i < last_boundary:
                        continue  # no other character can enter, but a boundary label further down may
                    break
                if c == last:
                    ext = b_pb[b] + row[c]
                else:
                    ext = total + row[c]
                if ext == _NEG_INF or (hsize == B and ext + (bound_boundary if boundary else bound)
                                       <= c_rank[heap[0]]):
                    continue
                key = np.int64(node) * V + c
                child = _hash_find(h_keys, h_vals, key)
                if child < 0:
                    child = n_nodes
                    n_nodes += 1
                    _hash_insert(h_keys, h_vals, key, child)
                    node_parent[child] = node
                    node_token[child] = c
                    ctx_in = node_ctx[node * L:(node + 1) * L]
                    ctx_out = node_ctx[child * L:(child + 1) * L]
                    h = node_hnode[node]
                    hp = node_hpart[node]
                    if boundary:
                        commit = node_commit[node] + _end_word(
                            node_wnode[node], ctx_in, ctx_out, lm_w, beta, unk_penalty, lm_vocab, logp1, bow1,
                            keys, firsts, logps, bows, trie_word)
                        if h > 0 and hot_end[h]:
                            commit += hp  # a phrase ended at a word boundary: its bonus stays
                            hp = 0.0
                        hc = _trie_child(hot_keys, hot_first, h, c, V)
                        if hc > 0:
                            h = hc
                            hp += hot_gain[hc]
                        else:
                            h = 0
                            hp = 0.0
                        node_wnode[child] = 0
                        partial = 0.0
                    else:
                        commit = node_commit[node]
                        for j in range(L):
                            ctx_out[j] = ctx_in[j]
                        wn = _trie_child(trie_keys, trie_first, node_wnode[node], c, V)
                        node_wnode[child] = wn
                        partial = lm_w * trie_score[wn] if wn >= 0 else oov_score
                        hc = _trie_child(hot_keys, hot_first, h, c, V)
                        if hc > 0:
                            h = hc
                            hp += hot_gain[hc]
                        else:
                            # the match broke: its bonus is taken back; a phrase may start here only at a
                            # word start (no partial word yet)
                            hc = _trie_child(hot_keys, hot_first, 0, c, V) if node_wnode[node] == 0 and h != 0 else -1
                            h = hc
                            hp = hot_gain[hc] if hc > 0 else 0.0
                    node_commit[child] = commit
                    node_hnode[child] = h
                    node_hpart[child] = hp
                    node_bonus[child] = commit + partial + hp
                if node_in_beam[child] >= 0:
                    continue  # already merged into that beam entry in (a)
                rank = ext + node_bonus[child]
                if rank == _NEG_INF or (hsize == B and rank <= c_rank[heap[0]]):
                    continue
                s, nfree = _candidate_slot(heap, hsize, free, nfree, B)
                c_node[s] = child
                c_pb[s] = _NEG_INF
                c_pnb[s] = ext
                c_rank[s] = rank
                c_time[s] = b_time[b]
                c_new_time[s] = True
                c_tscore[s] = row[c]
                hsize = _candidate_placed(heap, hsize, s, c_rank, B)

        # the heap is the new beam, best first
        for b in range(nb):
            node_in_beam[b_node[b]] = -1
        _heap_sort(heap, hsize, c_rank, False)
        for j in range(hsize):
            s = heap[j]
            b_time[j], n_times = _timing_node(c_time, c_new_time, c_tscore, s, t, time_parent, time_frame,
                                              time_score, n_times)
            b_node[j] = c_node[s]
            b_pb[j] = c_pb[s]
            b_pnb[j] = c_pnb[s]
        nb = hsize

    # end of the utterance: last word, </s>, completed hotwords; re-rank
    acoustic = np.empty(nb, np.float64)
    final = np.empty(nb, np.float64)
    for b in range(nb):
        acoustic[b] = _logaddexp(b_pb[b], b_pnb[b])
        final[b] = acoustic[b] + _final_bonus(b_node[b], node_commit, node_wnode, node_ctx, node_hnode, node_hpart,
                                              scratch, lm_w, beta, unk_penalty, lm_vocab, logp1, bow1, keys, firsts,
                                              logps, bows, trie_word, hot_end)
    order = np.argsort(-final, kind="mergesort")
    scores = np.empty(nb, np.float64)
    ac_out = np.empty(nb, np.float64)
    for i in range(nb):
        scores[i] = final[order[i]]
        ac_out[i] = acoustic[order[i]]
    offsets, tokens, frames, token_scores = _backtrace(order, b_node, b_time, node_parent, node_token, time_parent,
                                                       time_frame, time_score)
    return scores, ac_out, offsets, tokens, frames, token_scores
