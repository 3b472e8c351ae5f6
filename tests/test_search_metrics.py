"""Search metrics against slow, obvious references and hand-built cases."""
import numpy as np
import pytest

from rfcn_face.search.metrics import (best_threshold, coverage_at_precision, held_out_split,
                                      open_set_accuracy, top1_present)


def ref_coverage(pred, conf, labels, p):
    n, best = len(conf), 0.0
    for t in sorted(set(conf)):  # answer every probe with conf >= t
        ans = [i for i in range(n) if conf[i] >= t]
        prec = sum(pred[i] == labels[i] for i in ans) / len(ans)
        if prec >= p:
            best = max(best, len(ans) / n)
    return best


def ref_best_threshold(pred, conf, labels, present):
    best_acc, best_t = -1, None
    for t in sorted(set(conf) | {np.inf}, reverse=True):
        acc = open_set_accuracy(pred, conf, labels, present, t)
        if acc > best_acc + 1e-12:
            best_acc, best_t = acc, t
    return best_t, best_acc


def _random_case(rng, n):
    labels = rng.integers(0, 8, n)
    present = labels < 6
    pred = np.where(rng.random(n) < 0.7, labels, rng.integers(0, 6, n))
    conf = rng.integers(0, 12, n).astype(float)  # many ties on purpose
    return pred, conf, labels, present


@pytest.mark.parametrize("seed", range(20))
def test_coverage_and_threshold_match_reference(seed):
    rng = np.random.default_rng(seed)
    pred, conf, labels, present = _random_case(rng, int(rng.integers(1, 40)))
    for p in (0.5, 0.8, 0.95, 0.99):
        assert coverage_at_precision(pred, conf, labels, p) == pytest.approx(ref_coverage(pred, conf, labels, p))
    t, acc = best_threshold(pred, conf, labels, present)
    rt, racc = ref_best_threshold(pred, conf, labels, present)
    assert acc == pytest.approx(racc)
    assert t == rt
    assert open_set_accuracy(pred, conf, labels, present, t) == pytest.approx(acc)


def test_hand_built_metrics():
    labels = np.array([1, 2, 3, 9])          # 9 is absent from the base
    present = np.array([True, True, True, False])
    pred = np.array([1, 2, 7, 1])            # probe 3 wrong, probe 4 absent
    conf = np.array([0.9, 0.8, 0.3, 0.5])
    assert top1_present(pred, labels, present) == pytest.approx(2 / 3)
    # answering the top 2 (0.9, 0.8) is 100% precise; the 3rd (absent, 0.5) drops precision to 2/3
    assert coverage_at_precision(pred, conf, labels, 0.99) == pytest.approx(0.5)
    assert coverage_at_precision(pred, conf, labels, 0.6) == pytest.approx(0.75)
    # threshold 0.8: accept the two right ones, reject the absent one (right) and the present one whose
    # answer was wrong (a rejected present probe is still an error) -> 3/4; lower thresholds only add errors
    t, acc = best_threshold(pred, conf, labels, present)
    assert (t, acc) == (0.8, 0.75)
    assert open_set_accuracy(pred, conf, labels, present, 0.0) == pytest.approx(0.5)


def test_held_out_split_is_by_identity_and_deterministic():
    labels = np.repeat(np.arange(50), 3)
    a, b = held_out_split(labels, 0.5, seed=3), held_out_split(labels, 0.5, seed=3)
    assert np.array_equal(a, b) and a.sum() == 75
    for i in range(50):
        assert len(set(a[labels == i])) == 1


def test_present_in_matches_isin():
    from rfcn_face.search.evaluate import present_in
    rng = np.random.default_rng(0)
    for _ in range(20):
        base = rng.integers(0, 50, rng.integers(1, 30))
        probe = rng.integers(-5, 80, 40)
        assert np.array_equal(present_in(probe, base), np.isin(probe, base))
    s = np.array(["a", "b"])
    assert present_in(np.array(["b", "z"]), s).tolist() == [True, False]
    big = np.array([10 ** 9])
    assert present_in(np.array([10 ** 9, 3]), big).tolist() == [True, False]
