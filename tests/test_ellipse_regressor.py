"""Box -> ellipse regressor (paper Sec. 5.2): geometry, least squares, fold cross-validation, ROC gain."""
import numpy as np
import pytest

from rfcn_face.datasets.fddb import ellipse_bounding_boxes
from rfcn_face.datasets.record import FaceRecord
from rfcn_face.evaluation import ellipse as E
from rfcn_face.evaluation import fddb as F
from rfcn_face.evaluation import fddb_format as FF


def same_ellipse(e1, e2):
    """Compare ellipses as point sets: the quadratic-form matrices and centres."""
    def q(e):
        a, b, t = e[0], e[1], e[2]
        R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        return R @ np.diag([1 / a ** 2, 1 / b ** 2]) @ R.T
    np.testing.assert_allclose(q(e1), q(e2), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e1[3:5], e2[3:5], rtol=1e-12)


def test_canonical_form_and_round_trip():
    rng = np.random.default_rng(0)
    ell = np.stack([rng.uniform(10, 50, 50), rng.uniform(5, 40, 50), rng.uniform(-4, 4, 50),
                    rng.uniform(0, 300, 50), rng.uniform(0, 300, 50)], 1)
    boxes = np.stack([ell[:, 3] - 20, ell[:, 4] - 25, rng.uniform(20, 60, 50), rng.uniform(20, 60, 50)], 1)
    can = E.canonical_ellipses(ell)
    assert np.all(np.abs(can[:, 2]) <= np.pi / 4 + 1e-12)
    back = E.targets_to_ellipses(E.ellipse_targets(ell, boxes), boxes)
    for a, b in zip(ell, back):
        same_ellipse(a, b)
    # literal: a vertical ellipse (major along y) is a_v = major, delta = 0
    np.testing.assert_allclose(E.canonical_ellipses([[30, 20, np.pi / 2, 5, 6]]), [[30, 20, 0, 5, 6]], atol=1e-15)
    np.testing.assert_allclose(E.canonical_ellipses([[30, 20, 0.0, 5, 6]]), [[20, 30, 0, 5, 6]], atol=1e-15)


def test_least_squares_recovers_linear_model():
    rng = np.random.default_rng(1)
    boxes = np.stack([rng.uniform(0, 100, 200), rng.uniform(0, 100, 200), rng.uniform(20, 80, 200),
                      rng.uniform(20, 80, 200)], 1)
    coef = np.array([[0.02, -0.1, 0.2, -0.05, 0.01], [0.1, 0.0, 0.3, -0.2, 0.0], [0.0, 0.05, 0.01, 0.02, 0.0]])
    ell = E.predict_ellipses(coef, boxes)
    np.testing.assert_allclose(E.fit_linear(boxes, ell, ridge=0.0), coef, atol=1e-9)


def synthetic_fddb(rng, n_images=200):
    """Synthetic FDDB-like ground truth: upright ellipses in 10 folds."""
    recs = []
    for i in range(n_images):
        W, H = 200, 160
        n = int(rng.integers(1, 3))
        minor = rng.uniform(12, 30, n)
        ell = np.stack([minor * rng.uniform(1.2, 1.5, n), minor, np.pi / 2 + rng.normal(0, 0.15, n),
                        rng.uniform(40, 160, n), rng.uniform(40, 120, n)], 1)
        recs.append(FaceRecord(image_path=f"s{i}.jpg", boxes=ellipse_bounding_boxes(ell), ignore=np.zeros(n, bool),
                               ellipses=ell, event=f"fold-{i % 10 + 1:02d}", name=f"s{i}", width=W, height=H))
    return recs


def simulate_detections(recs, rng, n_fp=3):
    """Detector-like boxes: the ellipse's bounding box shrunk vertically and shifted up, with noise; plus
    low-score false positives."""
    out = []
    for r in recs:
        b = r.boxes
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        k = len(b)
        x = b[:, 0] + w * rng.normal(0.03, 0.03, k)
        y = b[:, 1] + h * rng.normal(0.05, 0.03, k)
        rows = [np.stack([x, y, w * rng.normal(0.95, 0.03, k), h * rng.normal(0.8, 0.03, k),
                          rng.uniform(0.5, 1.0, k)], 1)]
        m = int(rng.integers(0, n_fp + 1))
        s = rng.uniform(15, 40, m)
        rows.append(np.stack([rng.uniform(0, r.width - 40, m), rng.uniform(0, r.height - 40, m), s, s,
                              rng.uniform(0.0, 0.6, m)], 1))
        out.append(FF.FddbImageDets(r.name, "rect", np.concatenate(rows)))
    return out


def test_cross_validation_holds_out_each_fold():
    rng = np.random.default_rng(2)
    recs = synthetic_fddb(rng, 60)
    dets = simulate_detections(recs, rng)
    model = E.fit_cross_validated(recs, dets)
    boxes, ells, folds = E.matched_pairs(recs, dets)
    assert sum(model["pairs"].values()) == len(boxes) > 50
    for f in ("fold-01", "fold-07"):
        np.testing.assert_allclose(model["models"][f], E.fit_linear(boxes[folds != f], ells[folds != f]))
    np.testing.assert_allclose(model["models"]["all"], E.fit_linear(boxes, ells))
    assert len(model["models"]) == 11


def test_regressor_raises_continuous_roc(tmp_path):
    rng = np.random.default_rng(3)
    recs = synthetic_fddb(rng, 200)
    dets = simulate_detections(recs, rng)
    model = E.fit_cross_validated(recs, dets)
    p = E.save_regressor(tmp_path / "ell.json", model)
    ell_dets = E.apply_to_detections(E.load_regressor(p), recs, dets)
    raw = F.evaluate_fddb(recs, dets)
    reg = F.evaluate_fddb(recs, ell_dets)
    fp = float(raw.fp.max())
    raw_d, raw_c = F.tpr_at_fp(raw, fp)
    reg_d, reg_c = F.tpr_at_fp(reg, fp)
    print(f"continuous TPR: rectangles {raw_c:.4f}, ellipse regressor {reg_c:.4f}; "
          f"discrete: {raw_d:.4f} -> {reg_d:.4f}")
    assert reg_c > raw_c + 0.05
    assert reg_d >= raw_d


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        E.load_regressor(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"models": {"all": [[1, 2]]}}')
    with pytest.raises(ValueError, match="shape"):
        E.load_regressor(tmp_path / "bad.json")
