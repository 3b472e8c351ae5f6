"""Deterministic ordering on the device: "higher score first, equal scores lower index first", the order of
numpy's stable ``argsort(-score)`` that the numpy references use.

MXNet's ``topk`` / ``argsort`` / ``sort`` are not stable on the CPU (``std::sort``), and ``box_nms`` re-sorts
its input, so neither can be trusted to break ties. Two exact replacements:

* :func:`order_key` — one float64 key per entry, ``floor(score * 2^30) * 2^22 + (2^22 - 1 - index)``: distinct for
  distinct indices, so any sort of it is the stable order. Exact for scores in ``[0, 1]`` (probabilities) and
  fewer than ``2^22`` entries; scores closer than ``2^-30`` count as equal (then the lower index wins, where a
  float64 reference would still compare their values). Used for the proposals' pre-NMS top-k (up to ~600k
  anchors) and as the score handed to NMS (a strictly decreasing rank, so box_nms's own sort has no ties).
* :func:`pairwise_rank` — the exact rank of every entry inside its group by comparing all pairs (n² per
  image; for a few hundred RoIs). Any float values, ties by index.
"""
from __future__ import annotations

__all__ = ["order_key", "pairwise_rank", "pairwise_ranks", "SCORE_BITS", "INDEX_BITS"]

SCORE_BITS, INDEX_BITS = 30, 22     # 52 bits: the key is an exact float64 integer


def order_key(F, score, valid):
    """(B, N) float64 keys of (B, N) ``score`` in ``[0, 1]``; entries with ``valid == 0`` get -1 (after every
    valid one). Sorting the keys descending gives score descending, ties by lower index."""
    s = F.cast(score, dtype="float64")
    tie = float(2 ** INDEX_BITS - 1) - F.reshape(F.contrib.arange_like(s, axis=1), (1, -1))   # (1, N)
    key = F.broadcast_add(F.floor(s * float(2 ** SCORE_BITS)) * float(2 ** INDEX_BITS), tie)
    return F.where(F.cast(valid, dtype="float64") > 0, key, F.ones_like(key) * -1.0)


def pairwise_ranks(F, key, groups):
    """Rank of every entry among the entries of its image in each group (``group > 0``), by ``key`` ascending,
    equal keys lower index first: ``rank_i = #{j in group: key_j < key_i or (key_j == key_i and j < i)}``.
    ``key`` and each group (B, n) of one dtype; returns one (B, n) rank per group (entries outside a group get a
    rank too, unused). The (B, n, n) comparison is built once for all groups."""
    ki, kj = F.expand_dims(key, axis=2), F.expand_dims(key, axis=1)           # (B, n, 1), (B, 1, n)
    idx = F.contrib.arange_like(key, axis=1)
    before = F.broadcast_lesser(F.reshape(idx, (1, 1, -1)), F.reshape(idx, (1, -1, 1)))   # [i, j] = j < i
    ahead = F.broadcast_lesser(kj, ki) + F.broadcast_mul(F.broadcast_equal(kj, ki), before)
    return [F.sum(F.broadcast_mul(ahead, F.expand_dims(g, axis=1)), axis=2) for g in groups]


def pairwise_rank(F, key, group):
    """:func:`pairwise_ranks` for one group."""
    return pairwise_ranks(F, key, [group])[0]
