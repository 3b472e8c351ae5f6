"""Sec. 2.1 cleaning: 2-means per identity, drop images > 2x the average distance from the main centre."""
import numpy as np
import pytest

from rfcn_face.recognition.clean import clean_dataset, clean_identity, two_means
from rfcn_face.search.synthetic import SyntheticFaces


def _is_lloyd_fixed_point(x, assign, centres):
    for i in range(len(x)):  # every point is nearest to its own centre
        d = [np.sum((x[i] - c) ** 2) for c in centres]
        if d[assign[i]] > min(d) + 1e-12:
            return False
    for k in (0, 1):  # every centre is its cluster's mean
        if np.any(assign == k) and not np.allclose(centres[k], x[assign == k].mean(0)):
            return False
    return True


@pytest.mark.parametrize("seed", range(10))
def test_two_means_is_a_lloyd_fixed_point(seed):
    x = np.random.default_rng(seed).normal(size=(30, 5))
    assign, centres = two_means(x)
    assert _is_lloyd_fixed_point(x, assign, centres) and set(assign) == {0, 1}


def test_hand_built_identity():
    # 6 points around the origin (4 at distance 0.1, 2 at 0), one far outlier at (10, 0): main centre = origin
    x = np.array([[0.1, 0], [-0.1, 0], [0, 0.1], [0, -0.1], [0, 0], [0, 0], [10, 0]])
    keep, dist, thr = clean_identity(x)
    assert keep.tolist() == [True] * 6 + [False]
    assert dist[-1] == pytest.approx(10.0) and thr == pytest.approx(2 * (0.4 + 10) / 7, rel=1e-9)


def test_planted_mislabels_are_removed():
    pop = SyntheticFaces(40, dim=128, spread=0.5, seed=3)
    feats, labels, true, bad = pop.identity_set(np.arange(40), 20, mislabel_fraction=0.05)
    report = clean_dataset(feats, labels)
    dropped = ~report.keep
    assert bad.sum() == 40
    assert np.all(dropped[bad])                       # every planted mislabel removed
    assert dropped[~bad].sum() <= 0.01 * (~bad).sum()  # almost no clean image lost
    assert len(report.rows) == dropped.sum()
    assert sum(d for _, d in report.per_identity.values()) == dropped.sum()
    assert report.summary().startswith(f"dropped {dropped.sum()} of 800 images")


def test_report_csv_and_small_identities(tmp_path):
    feats = np.array([[0.0, 0], [0.1, 0], [5, 5], [0, 0.1], [0.1, 0.1], [-0.1, 0], [9, 9]])
    labels = np.array([0, 0, 1, 0, 0, 0, 0])
    report = clean_dataset(feats, labels)
    assert report.keep.tolist() == [True, True, True, True, True, True, False]  # identity 1 has one image
    report.write_csv(tmp_path / "r.csv", names=[f"img{i}.jpg" for i in range(7)])
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "index,name,identity,distance,threshold" and lines[1].startswith("6,img6.jpg,0,")
