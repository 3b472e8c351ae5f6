"""Face-search metrics on nearest-neighbour answers.

Every probe gets the label of its nearest base image and a confidence (higher = surer; the evaluator uses
minus the squared L2 distance, i.e. the cosine for unit features up to an affine map). A probe whose label
is not among the base labels is an identity that should be rejected (paper Sec. 5: 200 of the 1,000
validation identities are absent from the base set).
"""
from __future__ import annotations

import numpy as np

__all__ = ["top1_present", "best_threshold", "open_set_accuracy", "coverage_at_precision",
           "held_out_split"]


def top1_present(pred, labels, present):
    """Top-1 accuracy over the probes whose identity is in the base set."""
    present = np.asarray(present, bool)
    if not present.any():
        return float("nan")
    return float(np.mean(np.asarray(pred)[present] == np.asarray(labels)[present]))


def _open_set_correct(pred, labels, present, accept):
    # right answer: a present probe accepted with the right label, or an absent probe rejected
    return np.where(accept, present & (pred == labels), ~present)


def open_set_accuracy(pred, conf, labels, present, threshold):
    """Fraction of probes answered right when those with ``conf >= threshold`` are accepted."""
    pred, labels, present = np.asarray(pred), np.asarray(labels), np.asarray(present, bool)
    accept = np.asarray(conf) >= threshold
    return float(np.mean(_open_set_correct(pred, labels, present, accept)))


def best_threshold(pred, conf, labels, present):
    """Threshold maximising open-set accuracy: every distinct confidence (and +inf = reject all) is tried in
    one sorted sweep; ties go to the higher threshold. Returns (threshold, accuracy)."""
    pred, labels, present = np.asarray(pred), np.asarray(labels), np.asarray(present, bool)
    conf = np.asarray(conf, dtype=np.float64)
    n = len(conf)
    if n == 0:
        return float("inf"), float("nan")
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    gain = (present & (pred == labels))[order].astype(np.int64) - (~present)[order].astype(np.int64)
    # accepting the top k: correct = (#absent) + sum of gains of the top k
    correct = int((~present).sum()) + np.concatenate([[0], np.cumsum(gain)])
    cut = np.concatenate([[True], c[1:] != c[:-1], [True]])  # k allowed where no tie is split
    ks = np.flatnonzero(cut)
    k = ks[np.argmax(correct[ks])]
    threshold = np.inf if k == 0 else c[k - 1]
    return float(threshold), float(correct[k] / n)


def coverage_at_precision(pred, conf, labels, precision):
    """MS-Celeb-1M challenge 2 metric: sort probes by confidence (descending) and answer the top ones; the
    coverage is the largest answered fraction whose precision (right labels / answered) is >= ``precision``.
    Probes of absent identities are wrong whenever answered. Cut points never split tied confidences."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    conf = np.asarray(conf, dtype=np.float64)
    n = len(conf)
    if n == 0:
        return float("nan")
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    right = np.cumsum(pred[order] == labels[order])
    k = np.arange(1, n + 1)
    ok = (right >= precision * k - 1e-9) & np.concatenate([c[1:] != c[:-1], [True]])
    return float(k[ok].max() / n) if ok.any() else 0.0


def held_out_split(labels, fraction=0.5, seed=0):
    """Boolean mask of the probes used to choose the rejection threshold: a seeded random ``fraction`` of the
    probe *identities* (so no identity is in both halves)."""
    labels = np.asarray(labels)
    ids = np.unique(labels)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(ids)[:int(round(fraction * len(ids)))]
    return np.isin(labels, chosen)
