"""CTC decoding kernels: greedy best path and prefix beam search in log space.

Arithmetic only; argument checking and result objects live in :mod:`speechlstm.decoding`.

Data layout of :func:`beam_search_kernel`
-----------------------------------------
* **Prefix trie** (canonical: one node per distinct label sequence). Node 0 is the empty prefix; node ``n`` extends
  ``node_parent[n]`` by label ``node_token[n]``. An open-addressing hash map ``(parent, token) -> child`` makes
  sure a prefix that fell out of the beam and comes back gets its old node, so identical prefixes in one frame
  always share a node id and merging them is a comparison of ids. ``node_bonus[n]`` is the sum of the per-token
  bonuses along the path: a hook for shallow fusion, 0 here (see :func:`_extension_bonus`). The LM / hotword
  search is :func:`speechlstm.kernels.ctc_lm.lm_beam_search_kernel`: it shares every step but (a) and (b) with this one
  (the helpers below) and keeps a fused state per prefix node.
* **Timing trie** (append only). Node ``m`` says "the last label of this hypothesis was emitted at frame
  ``time_frame[m]`` with log-prob ``time_score[m]``" and points at ``time_parent[m]``. A beam entry points at
  one prefix node and one timing node; when the alignments of a prefix merge, the timing of the larger
  contribution is kept, so frames along a chain always increase.
* **Beam entries**: prefix node, timing node, ``p_b`` and ``p_nb`` (log-probabilities, float64, of the prefix
  with all alignments ending in blank / in its last label).
* Per frame the candidates are (a) every beam entry staying (blank, or its last label repeated) plus the
  extension of its parent by its last label when the parent is in the beam too (the only way two candidates
  can be the same prefix), then (b) every new extension; the best ``beam_width`` candidates are kept in a
  min-heap so a new extension is rejected with one comparison. Labels are visited best first and the beam is
  kept sorted best first, so the heap fills with good candidates early and the loop over labels stops at the
  first label that cannot enter it.
"""

import numpy as np
from numba import njit

_NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def _logaddexp(a, b):
    """``log(exp(a) + exp(b))`` for float64, exact when either side is ``-inf``."""
    if a < b:
        a, b = b, a
    if b == _NEG_INF:
        return a
    return a + np.log1p(np.exp(b - a))


@njit(cache=True, nogil=True)
def greedy_kernel(log_probs, blank):
    """Best path: per-frame argmax, repeats merged, blanks removed.

    Parameters
    ----------
    log_probs : ndarray, float32, shape (T, V)
    blank : int

    Returns
    -------
    tokens : ndarray, int32
    frames : ndarray, int32
        First frame of each token's run.
    token_scores : ndarray, float32
        Log-prob of the token at that frame.
    score : float
        Log-prob of the best path (sum of the per-frame maxima, accumulated in float64).
    """
    T, V = log_probs.shape
    tokens = np.empty(T, np.int32)
    frames = np.empty(T, np.int32)
    scores = np.empty(T, np.float32)
    n = 0
    prev = -1
    total = 0.0
    for t in range(T):
        best = 0
        best_v = log_probs[t, 0]
        for v in range(1, V):
            if log_probs[t, v] > best_v:
                best_v = log_probs[t, v]
                best = v
        total += best_v
        if best != blank and best != prev:
            tokens[n] = best
            frames[n] = t
            scores[n] = best_v
            n += 1
        prev = best
    return tokens[:n].copy(), frames[:n].copy(), scores[:n].copy(), total


@njit(cache=True, nogil=True)
def _extension_bonus(parent_node, token):
    """Score added when ``parent_node`` is extended by ``token`` (shallow-fusion hook, 0 for now).

    A later LM / hotword / grammar scorer computes its bonus here (or from arrays passed to the kernel).
    If bonuses differ between tokens, the label preselection (best ``beam_width + nb`` labels) and the
    early exit of the label loop in :func:`beam_search_kernel` must use an upper bound of the bonus.
    """
    return 0.0


@njit(cache=True, nogil=True)
def _ranks_below(key, a, b, ties):
    """Item ``a`` ranks below item ``b``: lower ``key``, or (``ties``) equal ``key`` and higher id."""
    return key[a] < key[b] or (ties and key[a] == key[b] and a > b)


@njit(cache=True, nogil=True)
def _heap_sift_down(heap, size, key, ties):
    """Move ``heap[0]`` down to restore the min-heap ``heap[:size]`` (items ordered by :func:`_ranks_below`)."""
    i = 0
    while True:
        lo = i
        left = 2 * i + 1
        right = left + 1
        if left < size and _ranks_below(key, heap[left], heap[lo], ties):
            lo = left
        if right < size and _ranks_below(key, heap[right], heap[lo], ties):
            lo = right
        if lo == i:
            return
        heap[i], heap[lo] = heap[lo], heap[i]
        i = lo


@njit(cache=True, nogil=True)
def _heap_sift_up(heap, key, i, ties):
    """Move ``heap[i]`` up to restore the min-heap ``heap[:i + 1]`` (items ordered by :func:`_ranks_below`)."""
    while i > 0:
        up = (i - 1) // 2
        if _ranks_below(key, heap[i], heap[up], ties):
            heap[i], heap[up] = heap[up], heap[i]
            i = up
        else:
            return


@njit(cache=True, nogil=True)
def _hash_slot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h >> np.uint64(29)) & np.uint64(mask))


@njit(cache=True, nogil=True)
def _hash_find(h_keys, h_vals, key):
    mask = h_keys.shape[0] - 1
    i = _hash_slot(key, mask)
    while h_keys[i] != -1:
        if h_keys[i] == key:
            return h_vals[i]
        i = (i + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def _hash_insert(h_keys, h_vals, key, val):
    mask = h_keys.shape[0] - 1
    i = _hash_slot(key, mask)
    while h_keys[i] != -1:
        i = (i + 1) & mask
    h_keys[i] = key
    h_vals[i] = val


@njit(cache=True, nogil=True)
def _grow(a, n):
    out = np.empty(n, a.dtype)
    for i in range(a.shape[0]):  # (a loop: slice assignment costs seconds of compile time)
        out[i] = a[i]
    return out


@njit(cache=True, nogil=True)
def _grow_fill(a, n, fill):
    """:func:`_grow` with the new tail set to ``fill``."""
    out = _grow(a, n)
    for i in range(a.shape[0], n):
        out[i] = fill
    return out


@njit(cache=True, nogil=True)
def _rehash(h_keys, h_vals, need):
    """The hash map, grown (doubling) until ``need`` keys fill at most half of it."""
    hcap = h_keys.shape[0]
    while 2 * need > hcap:
        hcap *= 2
    new_keys = np.full(hcap, -1, np.int64)
    new_vals = np.empty(hcap, np.int32)
    for i in range(h_keys.shape[0]):
        if h_keys[i] != -1:
            _hash_insert(new_keys, new_vals, h_keys[i], h_vals[i])
    return new_keys, new_vals


@njit(cache=True, nogil=True)
def _grow_times(time_parent, time_frame, time_score, B):
    """The timing trie's arrays, grown to make room for ``B`` more nodes."""
    tcap = 2 * time_parent.shape[0] + B
    return _grow(time_parent, tcap), _grow(time_frame, tcap), _grow(time_score, tcap)


@njit(cache=True, nogil=True)
def _heap_sort(heap, size, key, ties):
    """Sort the min-heap ``heap[:size]`` in place, best (highest ``key``) first."""
    for end in range(size - 1, 0, -1):
        heap[0], heap[end] = heap[end], heap[0]
        _heap_sift_down(heap, end, key, ties)


@njit(cache=True, nogil=True)
def _frame_labels(row, blank, prune_threshold, keep, labels, label_key):
    """The labels that may start new prefixes in a frame: non-blank, finite, ``>= max(row) + prune_threshold``,
    the best ``keep`` of them (a min-heap, one comparison per label), written to ``labels`` best first (ties by
    id, ``label_key[v] = row[v]``). Returns their number.
    """
    V = row.shape[0]
    fmax = _NEG_INF
    for v in range(V):
        if row[v] > fmax:
            fmax = row[v]
    floor = fmax + prune_threshold
    nl = 0
    for v in range(V):
        x = row[v]
        if v == blank or x == _NEG_INF or x < floor:
            continue
        if nl < keep:
            label_key[v] = x
            labels[nl] = v
            nl += 1
            _heap_sift_up(labels, label_key, nl - 1, True)
        elif x > label_key[labels[0]]:
            label_key[v] = x
            labels[0] = v
            _heap_sift_down(labels, nl, label_key, True)
    _heap_sort(labels, nl, label_key, True)
    return nl


@njit(cache=True, nogil=True)
def _heap_of_stays(B, nb, c_node, c_pb, c_pnb, node_bonus, c_rank, heap, free):
    """Rank the ``nb`` stay candidates, heap the finite ones; the other slots of ``B`` go to ``free``.

    Returns ``(heap size, number of free slots)``.
    """
    hsize = 0
    nfree = 0
    for s in range(B - 1, -1, -1):
        if s < nb:
            c_rank[s] = _logaddexp(c_pb[s], c_pnb[s]) + node_bonus[c_node[s]]
            if c_rank[s] > _NEG_INF:
                heap[hsize] = s
                hsize += 1
                _heap_sift_up(heap, c_rank, hsize - 1, False)
                continue
        free[nfree] = s
        nfree += 1
    return hsize, nfree


@njit(cache=True, nogil=True, inline="always")
def _candidate_slot(heap, hsize, free, nfree, B):
    """Slot for a new candidate: a free one while the heap is not full, else the worst (``heap[0]``).

    Returns ``(slot, nfree)``; after filling the slot call :func:`_candidate_placed`.
    """
    if hsize < B:
        nfree -= 1
        return free[nfree], nfree
    return heap[0], nfree


@njit(cache=True, nogil=True, inline="always")
def _candidate_placed(heap, hsize, s, c_rank, B):
    """Restore the heap after slot ``s`` got its candidate (see :func:`_candidate_slot`); returns the heap size."""
    if hsize < B:
        heap[hsize] = s
        hsize += 1
        _heap_sift_up(heap, c_rank, hsize - 1, False)
    else:
        _heap_sift_down(heap, hsize, c_rank, False)
    return hsize


@njit(cache=True, nogil=True, inline="always")
def _timing_node(c_time, c_new_time, c_tscore, s, t, time_parent, time_frame, time_score, n_times):
    """Timing node of candidate ``s`` at frame ``t`` (appended when it emitted a label); returns ``(node, n_times)``."""
    tm = c_time[s]
    if c_new_time[s]:
        time_parent[n_times] = tm
        time_frame[n_times] = t
        time_score[n_times] = c_tscore[s]
        return n_times, n_times + 1
    return tm, n_times


@njit(cache=True, nogil=True)
def _backtrace(order, b_node, b_time, node_parent, node_token, time_parent, time_frame, time_score):
    """Label sequences, frames and label scores of the beam entries ``order`` (in that order), concatenated.

    Returns ``offsets`` (int64, ``len(order) + 1``), ``tokens``, ``frames`` (int32), ``token_scores`` (float32).
    """
    n = order.shape[0]
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        depth = 0
        node = b_node[order[i]]
        while node != 0:
            depth += 1
            node = node_parent[node]
        offsets[i + 1] = offsets[i] + depth
    n_out = offsets[n]
    tokens = np.empty(n_out, np.int32)
    frames = np.empty(n_out, np.int32)
    token_scores = np.empty(n_out, np.float32)
    for i in range(n):
        b = order[i]
        node = b_node[b]
        tm = b_time[b]
        k = offsets[i + 1]
        while node != 0:
            k -= 1
            tokens[k] = node_token[node]
            frames[k] = time_frame[tm]
            token_scores[k] = time_score[tm]
            node = node_parent[node]
            tm = time_parent[tm]
    return offsets, tokens, frames, token_scores


@njit(cache=True, nogil=True)
def beam_search_kernel(log_probs, blank, beam_width, prune_threshold, top_k):
    """CTC prefix beam search in log space.

    Parameters
    ----------
    log_probs : ndarray, float32, shape (T, V)
        Log-softmax outputs, no NaN.
    blank : int
    beam_width : int
        At least 1.
    prune_threshold : float
        New prefixes are only made from labels with ``log_prob >= frame max + prune_threshold``; ``-inf`` keeps all.
    top_k : int
        New prefixes only from the ``top_k`` best non-blank labels of each frame; ``<= 0`` keeps all.

    Returns
    -------
    scores : ndarray, float64, shape (n,)
        Prefix log-probabilities ``logaddexp(p_b, p_nb)``, best first.
    offsets : ndarray, int64, shape (n + 1,)
        Hypothesis ``i`` is ``tokens[offsets[i]:offsets[i + 1]]`` (same for frames and token_scores).
    tokens, frames : ndarray, int32
    token_scores : ndarray, float32
    """
    T, V = log_probs.shape
    B = beam_width

    # prefix trie (+ hash map (parent, token) -> child) and timing trie
    cap = 1 + B * min(T, 256)
    node_parent = np.empty(cap, np.int32)
    node_token = np.empty(cap, np.int32)
    node_bonus = np.empty(cap, np.float64)
    node_in_beam = np.full(cap, -1, np.int32)
    node_parent[0] = -1
    node_token[0] = -1
    node_bonus[0] = 0.0
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

    # beam
    b_node = np.zeros(B, np.int32)
    b_time = np.zeros(B, np.int32)
    b_pb = np.full(B, _NEG_INF)
    b_pnb = np.full(B, _NEG_INF)
    b_pb[0] = 0.0
    nb = 1
    # children of beam entry b that are in the beam too: linked list first_child[b] -> next_sib[q]
    first_child = np.full(B, -1, np.int32)
    next_sib = np.full(B, -1, np.int32)

    # candidates: B slots; c_node -1 means "new prefix (c_parent, c_token)", c_new_time means
    # "new timing node (c_time, frame t, c_tscore)" else c_time is the timing node itself
    c_node = np.empty(B, np.int32)
    c_parent = np.empty(B, np.int32)
    c_token = np.empty(B, np.int32)
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
        # make room for this frame's new prefix / timing nodes
        if n_nodes + B > cap:
            new_cap = 2 * cap + B
            node_parent = _grow(node_parent, new_cap)
            node_token = _grow(node_token, new_cap)
            node_bonus = _grow(node_bonus, new_cap)
            node_in_beam = _grow_fill(node_in_beam, new_cap, -1)
            cap = new_cap
        if 2 * (n_nodes + B) > h_keys.shape[0]:  # (tested here: a call that returns arrays costs every frame)
            h_keys, h_vals = _rehash(h_keys, h_vals, n_nodes + B)
        if n_times + B > time_parent.shape[0]:
            time_parent, time_frame, time_score = _grow_times(time_parent, time_frame, time_score, B)

        # Labels that may start new prefixes this frame, best first. Extensions of one beam entry rank in
        # label order and at most beam_width of them enter the heap (its last label and its children already
        # in the beam are skipped), so only the best beam_width + nb labels can matter.
        keep = B + nb
        if top_k > 0 and top_k < keep:
            keep = top_k
        nl = _frame_labels(row, blank, prune_threshold, keep, labels, label_key)

        # (a) beam entries staying, merged with extensions of their in-beam parents
        # (written out in both searches: as a call, with its 18 array arguments, it made the plain search 10 %
        # slower on short clips)
        lp_blank = row[blank]
        for b in range(nb):
            node = b_node[b]
            node_in_beam[node] = b
            first_child[b] = -1
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
            next_sib[q] = first_child[b]
            first_child[b] = q
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
            bonus = node_bonus[node]
            for i in range(nl):
                c = labels[i]
                if hsize == B and total + row[c] + bonus <= c_rank[heap[0]]:
                    break  # labels are sorted, nothing after this one can enter the beam either
                if c == last:
                    ext = b_pb[b] + row[c]
                else:
                    ext = total + row[c]
                rank = ext + bonus + _extension_bonus(node, c)
                if rank == _NEG_INF or (hsize == B and rank <= c_rank[heap[0]]):
                    continue
                q = first_child[b]
                while q >= 0 and node_token[b_node[q]] != c:
                    q = next_sib[q]
                if q >= 0:
                    continue  # already merged into beam entry q in (a)
                s, nfree = _candidate_slot(heap, hsize, free, nfree, B)
                c_node[s] = -1
                c_parent[s] = node
                c_token[s] = c
                c_pb[s] = _NEG_INF
                c_pnb[s] = ext
                c_rank[s] = rank
                c_time[s] = b_time[b]
                c_new_time[s] = True
                c_tscore[s] = row[c]
                hsize = _candidate_placed(heap, hsize, s, c_rank, B)

        # the heap is the new beam, best first (so that (b) fills the heap with good candidates early)
        for b in range(nb):
            node_in_beam[b_node[b]] = -1
        _heap_sort(heap, hsize, c_rank, False)
        for j in range(hsize):
            s = heap[j]
            node = c_node[s]
            if node < 0:
                key = np.int64(c_parent[s]) * V + c_token[s]
                node = _hash_find(h_keys, h_vals, key)
                if node < 0:
                    node = n_nodes
                    n_nodes += 1
                    node_parent[node] = c_parent[s]
                    node_token[node] = c_token[s]
                    node_bonus[node] = node_bonus[c_parent[s]] + _extension_bonus(c_parent[s], c_token[s])
                    _hash_insert(h_keys, h_vals, key, node)
            b_time[j], n_times = _timing_node(c_time, c_new_time, c_tscore, s, t, time_parent, time_frame,
                                              time_score, n_times)
            b_node[j] = node
            b_pb[j] = c_pb[s]
            b_pnb[j] = c_pnb[s]
        nb = hsize

    # the beam is sorted best first after every frame
    scores = np.empty(nb, np.float64)
    for b in range(nb):
        scores[b] = _logaddexp(b_pb[b], b_pnb[b])
    offsets, tokens, frames, token_scores = _backtrace(np.arange(nb), b_node, b_time, node_parent, node_token,
                                                       time_parent, time_frame, time_score)
    return scores, offsets, tokens, frames, token_scores
