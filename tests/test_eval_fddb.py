"""FDDB evaluation: fast path vs a slow, obvious reference of the official ``evaluate`` program."""
import numpy as np
import pytest

from rfcn_face.datasets.record import FaceRecord
from rfcn_face.evaluation import fddb as F
from rfcn_face.evaluation import fddb_format as FF
from rfcn_face.testing.fddb_reference import DBL_MAX, best_assignment, full_mask, reference_evaluate  # noqa: F401


def random_case(rng, n_images=6, kind="rect"):
    recs, dets = [], []
    for i in range(n_images):
        W, H = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        na = int(rng.integers(1, 4))
        ell = np.stack([rng.uniform(2, 15, na), rng.uniform(2, 12, na), rng.uniform(-np.pi, np.pi, na),
                        rng.uniform(-5, W + 5, na), rng.uniform(-5, H + 5, na)], 1)
        recs.append(FaceRecord(image_path=f"im{i}.jpg", boxes=np.zeros((na, 4)), ignore=np.zeros(na, bool),
                               ellipses=ell, name=f"im{i}", width=W, height=H))
        nd = int(rng.integers(0, 5))
        scores = rng.choice([0.1, 0.5, 0.7, 0.9], nd)           # repeated scores on purpose
        if kind == "rect":
            pick = ell[rng.integers(0, na, nd)]
            x = pick[:, 3] - rng.uniform(2, 15, nd)
            y = pick[:, 4] - rng.uniform(2, 15, nd)
            d = np.stack([x, y, rng.uniform(1, 25, nd), rng.uniform(1, 25, nd), scores], 1)
        else:
            d = np.concatenate([ell[rng.integers(0, na, nd)] + rng.normal(0, 2, (nd, 5)) * [1, 1, .3, 1, 1],
                                scores[:, None]], 1)
            d[:, :2] = np.abs(d[:, :2])
        dets.append(FF.FddbImageDets(f"im{i}", kind, d.reshape(-1, 6 if kind == "ellipse" else 5)))
    return recs, dets


@pytest.mark.parametrize("seed,kind", [(0, "rect"), (1, "rect"), (2, "ellipse"), (3, "ellipse"), (4, "rect")])
def test_fast_matches_reference(seed, kind):
    rng = np.random.default_rng(seed)
    recs, dets = random_case(rng, 8, kind)
    res = F.evaluate_fddb(recs, dets)
    ref, n = reference_evaluate(recs, dets)
    assert res.num_faces == n
    np.testing.assert_array_equal(res.thresholds, ref[:, 0])
    np.testing.assert_allclose(res.tp_cont, ref[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res.tp_disc, ref[:, 2])
    np.testing.assert_array_equal(res.fp, ref[:, 3])


def test_window_rasterisation_equals_full_canvas():
    rng = np.random.default_rng(5)
    W, H = 41, 33
    ell = np.stack([rng.uniform(0, 30, 60), rng.uniform(0, 20, 60), rng.uniform(-4, 4, 60),
                    rng.uniform(-20, 60, 60), rng.uniform(-20, 50, 60)], 1)
    rect = np.stack([rng.uniform(-20, 45, 60), rng.uniform(-20, 40, 60), rng.uniform(-5, 30, 60),
                     rng.uniform(-5, 30, 60)], 1)
    for kind, rows in (("ellipse", ell), ("rect", rect)):
        reg = F.rasterise_regions(kind, rows, W, H)
        for i, row in enumerate(rows):
            full = np.zeros((H, W), bool)
            x0, y0, x1, y1 = reg.windows[i]
            full[y0:y1, x0:x1] = reg.masks[i]
            np.testing.assert_array_equal(full, full_mask(kind, row, W, H), err_msg=f"{kind} {row}")
            assert reg.areas[i] == full.sum()


def _rec(ell, W, H, name="a"):
    ell = np.asarray(ell, float).reshape(-1, 5)
    return FaceRecord(image_path=name + ".jpg", boxes=np.zeros((len(ell), 4)), ignore=np.zeros(len(ell), bool),
                      ellipses=ell, name=name, width=W, height=H)


def test_hand_built_rounding_and_strict_half():
    # a face ellipse larger than its 10 x 10 image is the whole image (100 px, clipped)
    rec = _rec([[100, 100, 0, 5, 5]], 10, 10)
    # x 0.5 -> cvRound 0, x + w = 4.5 -> 4 (half to even), corners inclusive: 5 x 10 = 50 px -> overlap 0.5
    det = FF.FddbImageDets("a", "rect", np.array([[0.5, 0, 4.0, 9, 0.8]]))
    res = F.evaluate_fddb([rec], [det])
    assert res.tp_cont.tolist() == [0.5] and res.tp_disc.tolist() == [0] and res.fp.tolist() == [1]
    # x 1.5 -> 2 (half to even), x + w = 7.5 -> 8: 7 columns -> 70 px, overlap 0.7 > 0.5
    det = FF.FddbImageDets("a", "rect", np.array([[1.5, 0, 6.0, 9, 0.8]]))
    res = F.evaluate_fddb([rec], [det])
    assert res.tp_cont.tolist() == [0.7] and res.tp_disc.tolist() == [1] and res.fp.tolist() == [0]


def test_hungarian_not_greedy():
    # flat ellipses (minor axis 0) are pixel segments on row 1: face 0 = x 2..4 (3 px), face 1 = x 1..5 (5 px);
    # det 0 = x 0..4 (5 px), det 1 = x 0..7 (8 px). Overlaps [[3/5, 3/8], [4/6, 5/8]]: greedy takes
    # face1-det0 (0.667) then face0-det1 (0.375) -> 1 discrete TP; the maximum sum is 0.6 + 0.625 -> 2.
    rec = _rec([[1, 0, 0, 3, 1], [2, 0, 0, 3, 1]], 10, 3)
    d = np.array([[0, 1, 4, 0, 0.9], [0, 1, 7, 0, 0.9]])
    faces = F.rasterise_regions("ellipse", rec.ellipses, 10, 3)
    assert faces.areas.tolist() == [3, 5]
    res = F.evaluate_fddb([rec], [FF.FddbImageDets("a", "rect", d)])
    assert res.tp_disc.tolist() == [2] and res.fp.tolist() == [0]
    assert res.tp_cont.tolist() == [0.6 + 0.625]


def test_hand_built_roc_files(tmp_path):
    recs = [_rec([[20, 10, np.pi / 2, 50, 50]], 100, 100, "a"), _rec([[10, 10, 0, 20, 20]], 40, 40, "b")]
    dets = [FF.FddbImageDets("a", "ellipse", np.array([[20, 10, np.pi / 2, 50, 50, 0.9],
                                                      [3, 3, 0, 5, 5, 0.3]])),
            FF.FddbImageDets("b", "ellipse", np.zeros((0, 6)))]
    res = F.evaluate_fddb(recs, dets)
    dp, cp = F.write_roc_files(str(tmp_path / "x"), res)
    assert dp.read_text() == "0.5 1 0.3\n0.5 0 0.9\n0 0 1.79769e+308\n"
    assert cp.read_text() == "0.5 1\n0.5 0\n0 0\n"
    assert F.tpr_at_fp(res, 0) == (0.5, 0.5)


def test_reader_formats_and_errors(tmp_path):
    p = tmp_path / "d.txt"
    p.write_bytes(b"img_1\r\n2\r\n1 2 3 4 0.5 \r\n5 6 7 8 0.25\r\nimg_2\r\n0\r\n")
    d = FF.read_fddb_detections(p)
    assert [x.name for x in d] == ["img_1", "img_2"] and d[0].kind == "rect"
    assert d[0].dets.tolist() == [[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.25]] and d[1].dets.shape == (0, 5)
    p.write_text("img_1\n1\n10 5 1.2 30 40 0.9\n")
    assert FF.read_fddb_detections(p)[0].kind == "ellipse"
    p.write_text("img_1\n3\n1 2 3 4 0.5\n")
    with pytest.raises(ValueError, match="declares 3"):
        FF.read_fddb_detections(p)
    p.write_text("img_1\nx\n")   # the block layout is the ellipse lists' (iter_fddb_blocks): same errors
    with pytest.raises(ValueError, match=r"d.txt:2: expected the detections count of 'img_1'"):
        FF.read_fddb_detections(p)
    q = tmp_path / "w.txt"
    FF.write_fddb_detections(q, d)
    assert [x.dets.tolist() for x in FF.read_fddb_detections(q)] == [x.dets.tolist() for x in d]


def test_name_order_is_checked():
    rec = _rec([[5, 5, 0, 5, 5]], 10, 10, "a")
    with pytest.raises(ValueError, match="same image order"):
        F.evaluate_fddb([rec], [FF.FddbImageDets("b", "rect", np.zeros((0, 5)))])


def test_real_gt_as_detections(shared_data):
    from rfcn_face.datasets.fddb import read_fddb
    recs = read_fddb(shared_data / "fddb" / "FDDB-folds", sizes_file=shared_data / "fddb" / "FDDB-image-sizes.txt")
    dets = [FF.FddbImageDets(r.name, "ellipse", np.concatenate([r.ellipses, np.ones((len(r.ellipses), 1))], 1))
            for r in recs]
    res = F.evaluate_fddb(recs, dets)
    assert res.num_faces == 5171 and len(recs) == 2845
    assert res.thresholds.tolist() == [1.0] and res.fp.tolist() == [0.0]
    assert res.tp_disc.tolist() == [5171.0] and res.tp_cont.tolist() == [5171.0]
    assert F.tpr_at_fp(res) == (1.0, 1.0)


# ------------------------------------------------------------------------------------------------ fast paths
def _per_image_definition(recs, dets):
    """The per-image definitions (full rectangle masks, overlap_matrix, the Hungarian per threshold, merge)."""
    per_image = []
    for rec, det in zip(recs, dets):
        if len(det.dets) == 0:
            per_image.append((np.array([F.DBL_MAX]), np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64)))
            continue
        faces = F.rasterise_regions("ellipse", rec.ellipses, rec.width, rec.height)
        dregs = F.rasterise_regions(det.kind, det.dets, rec.width, rec.height)      # masks=True: real crops
        per_image.append(F.image_threshold_stats(F.overlap_matrix(faces, dregs), det.scores))
    return F._merge(per_image, sum(len(r.ellipses) for r in recs))


def _crowded_case(rng, n_images, kind, decimals):
    """Images with several faces close together and detections spanning them (so some touch two faces), some
    images without detections, duplicated detections (tied overlaps), scores with few or many decimals."""
    recs, dets = [], []
    for i in range(n_images):
        W, H = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        na = int(rng.integers(1, 6))
        ell = np.stack([rng.uniform(3, 14, na), rng.uniform(2, 10, na), rng.uniform(-np.pi, np.pi, na),
                        rng.uniform(-5, W + 5, na), rng.uniform(-5, H + 5, na)], 1)
        recs.append(FaceRecord(image_path=f"im{i}.jpg", boxes=np.zeros((na, 4)), ignore=np.zeros(na, bool),
                               ellipses=ell, name=f"im{i}", width=W, height=H))
        nd = 0 if i % 7 == 3 else int(rng.integers(1, 12))
        scores = np.round(rng.random(nd), decimals)
        pick = ell[rng.integers(0, na, nd)]
        if kind == "rect":
            s = rng.uniform(4, 40, (nd, 2))
            d = np.stack([pick[:, 3] - s[:, 0] / 2 + rng.normal(0, 3, nd),
                          pick[:, 4] - s[:, 1] / 2 + rng.normal(0, 3, nd), s[:, 0], s[:, 1], scores], 1)
        else:
            d = np.concatenate([pick + rng.normal(0, 2, (nd, 5)) * [2, 2, .3, 3, 3], scores[:, None]], 1)
            d[:, :2] = np.abs(d[:, :2])
        if nd > 2:
            d[1] = d[0]                                                  # a duplicate: tied overlaps
        dets.append(FF.FddbImageDets(f"im{i}", kind, d.reshape(-1, 6 if kind == "ellipse" else 5)))
    return recs, dets


@pytest.mark.parametrize("seed,kind,decimals", [(0, "rect", 2), (1, "rect", 12), (2, "ellipse", 2),
                                                (3, "ellipse", 12), (4, "rect", 1)])
def test_batch_evaluation_equals_per_image_definitions_bit_for_bit(seed, kind, decimals):
    """evaluate_fddb (windows of all images at once, rectangles never rasterised, running maxima where no
    detection touches two faces) == the per-image definitions, to the last bit (so the ROC files are the same
    bytes), on crowded images where both kinds of image occur."""
    from rfcn_face.evaluation.fddb_batch import pair_overlaps
    rng = np.random.default_rng(seed)
    recs, dets = _crowded_case(rng, 60, kind, decimals)
    f, d, _, _, _ = pair_overlaps(recs, dets)
    shared = np.bincount(d, minlength=sum(len(x.dets) for x in dets)) > 1
    assert shared.any() and (~shared).any()                            # both paths are exercised
    got, want = F.evaluate_fddb(recs, dets), _per_image_definition(recs, dets)
    for a in ("thresholds", "tp_cont", "tp_disc", "fp"):
        np.testing.assert_array_equal(getattr(got, a), getattr(want, a), err_msg=a)
    assert got.num_faces == want.num_faces and got.tp_disc[0] > 0


def test_independent_image_stats_equal_the_hungarian_per_image():
    """The running-maximum statistics == image_threshold_stats (Hungarian per threshold) on images where no
    detection touches two faces, including ties in score and in overlap."""
    from rfcn_face.evaluation.fddb_batch import independent_image_stats
    rng = np.random.default_rng(7)
    ovs, scores = [], []
    for _ in range(80):
        nf, nd = int(rng.integers(0, 5)), int(rng.integers(1, 9))
        ov = np.zeros((nf, nd))
        if nf:
            owner = rng.integers(-1, nf, nd)                            # each detection touches one face or none
            for j, a in enumerate(owner):
                if a >= 0:
                    ov[a, j] = rng.choice([0.3, 0.5, 0.51, 0.7, rng.random()])
        ovs.append(ov)
        scores.append(rng.choice([0.2, 0.5, 0.9, rng.random()], nd))
    f_off = np.concatenate(([0], np.cumsum([o.shape[0] for o in ovs])))
    d_off = np.concatenate(([0], np.cumsum([o.shape[1] for o in ovs])))
    fi, di, vi = [], [], []
    for i, ov in enumerate(ovs):
        a, b = np.nonzero(ov)
        fi.append(a + f_off[i]), di.append(b + d_off[i]), vi.append(ov[a, b])
    got = independent_image_stats(np.arange(len(ovs)), np.concatenate(scores), f_off, d_off,
                                  np.concatenate(fi), np.concatenate(di), np.concatenate(vi))
    for ov, s, g in zip(ovs, scores, got):
        for x, y in zip(g, F.image_threshold_stats(ov, s)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("seed", range(6))
def test_image_threshold_stats_equal_the_per_threshold_loop(seed):
    """image_threshold_stats (solved only where a touching detection is admitted, on the touching columns) == the
    official per-threshold loop (rfcn_face.testing.fddb_reference), bit for bit: detections shared by faces,
    ties in score and overlap (several optimal matchings), detections touching nothing, faces touched by nothing,
    no face at all."""
    from rfcn_face.testing.fddb_reference import image_threshold_stats_reference
    rng = np.random.default_rng(100 + seed)
    for _ in range(60):
        nf, nd = int(rng.integers(0, 7)), int(rng.integers(1, 14))
        ov = np.where(rng.random((nf, nd)) < 0.35, rng.choice([0.3, 0.5, 0.51, 0.7, 1.0, 0.123456789], (nf, nd)), 0.0)
        ov[:, rng.random(nd) < 0.2] = 0.0                                # some detections touch nothing
        ov = np.where(rng.random((nf, nd)) < 0.3, rng.random((nf, nd)) * (ov > 0), ov)
        s = rng.choice([0.1, 0.5, 0.9, 1.0, float(rng.random())], nd)
        got, want = F.image_threshold_stats(ov, s), image_threshold_stats_reference(ov, s)
        for x, y in zip(got, want):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    # literal case: two faces, three detections; d0 (0.9) covers face 0, d1 (0.5) covers faces 0 and 1, d2 (0.2)
    # touches nothing. At 0.9: d0-f0 (0.8). At 0.5: d0-f0 + d1-f1 (0.8 + 0.6). At 0.2: the same, d2 an FP.
    ov = np.array([[0.8, 0.7, 0.0], [0.0, 0.6, 0.0]])
    thr, tc, td, fp = F.image_threshold_stats(ov, np.array([0.9, 0.5, 0.2]))
    assert thr.tolist() == [0.2, 0.5, 0.9]
    assert tc.tolist() == [0.8 + 0.6, 0.8 + 0.6, 0.8] and td.tolist() == [2, 2, 1] and fp.tolist() == [1, 0, 0]


@pytest.mark.parametrize("cells", [1 << 16, 7])
def test_merge_equals_the_image_by_image_loop(cells, monkeypatch):
    """_merge (integer steps at once, continuous TP in rows per chunk of images) == Results::merge image by image
    (rfcn_face.testing.fddb_reference.merge_reference), bit for bit: full-precision TPCont (the order of the
    additions shows), shared and distinct thresholds, images without detections (DBL_MAX only)."""
    from rfcn_face.testing.fddb_reference import merge_reference
    monkeypatch.setattr(F, "_MERGE_CELLS", cells)       # 7: one image per chunk
    rng = np.random.default_rng(11)
    for _ in range(20):
        per_image = []
        for _ in range(int(rng.integers(1, 30))):
            if rng.random() < 0.15:
                per_image.append((np.array([F.DBL_MAX]), np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64)))
                continue
            k = int(rng.integers(1, 8))
            thr = np.unique(rng.choice([0.1, 0.25, 0.5, 0.75, 0.9, float(rng.random())], k))
            tc = np.sort(rng.random(len(thr)) * 3)[::-1].copy()             # lower thresholds: more TP
            td = np.sort(rng.integers(0, 4, len(thr)))[::-1].copy()
            fp = np.sort(rng.integers(0, 9, len(thr)))[::-1].copy()
            per_image.append((thr, tc, td, fp))
        got = F._merge(per_image, 10)
        want = merge_reference(per_image, 10)
        for x, y in zip((got.thresholds, got.tp_cont, got.tp_disc, got.fp), want):
            assert x.dtype == y.dtype == np.float64
            np.testing.assert_array_equal(x, y)
    # literal: image A (0.5: 1.5 TP, 2 FP; 0.9: 1.0 TP, 0 FP), image B (0.7: 0.25 TP, 1 FP)
    res = F._merge([(np.array([0.5, 0.9]), np.array([1.5, 1.0]), np.array([1, 1]), np.array([2, 0])),
                    (np.array([0.7]), np.array([0.25]), np.array([0]), np.array([1]))], 3)
    assert res.thresholds.tolist() == [0.5, 0.7, 0.9]
    assert res.tp_cont.tolist() == [1.75, 1.25, 1.0] and res.fp.tolist() == [3.0, 1.0, 0.0]
    assert res.tp_disc.tolist() == [1.0, 1.0, 1.0]


def test_fast_readers_equal_line_by_line(tmp_path, monkeypatch):
    """Detection files and ellipse lists: the one-numpy-parse path == the line-by-line reader (arrays, kind,
    and the same error where there is one), on regular files and on files with the odd line."""
    from rfcn_face.datasets import fddb as D
    from rfcn_face.datasets import numtext
    rng = np.random.default_rng(8)
    variants = ["", "1 2 3 4 nan\n", "1 2 3 4\n", "1,2,3,4,0.5\n", "1 2 3 4 0.5 9\n", "1 2 3\x0c4 0.5\n",
                "-1 2 0 4 5 0.5\n", "1 2 3 4 1_5\n", "1\u00a02 3 4 0.5\n"]
    for k, extra in enumerate(variants):
        rows = [" ".join(repr(float(v)) for v in rng.uniform(0, 300, 5)) for _ in range(7)]
        text = "img_a\n3\n" + "\n".join(rows[:3]) + "\nimg_b\n0\nimg_c\n" + str(4 + bool(extra)) + "\n" + \
            "\n".join(rows[3:]) + "\n" + extra
        p = tmp_path / f"d{k}.txt"
        p.write_text(text, encoding="utf-8")
        outcomes = []
        for fast in (True, False):
            if not fast:
                monkeypatch.setattr(numtext, "parse_number_lines", lambda *a, **kw: None)
            try:
                got = FF.read_fddb_detections(p, drop_nonfinite=False)
                outcomes.append([(x.name, x.kind, x.dets.tolist(), x.dropped) for x in got])
            except ValueError as e:
                outcomes.append(str(e))
            monkeypatch.undo()
        assert outcomes[0] == outcomes[1], extra
    folds = tmp_path / "folds"
    folds.mkdir()
    ell = "\n".join(f"{a:.6f} {b:.6f} {t:.6f} {x:.6f} {y:.6f}  1" for a, b, t, x, y in rng.uniform(1, 50, (4, 5)))
    for k, extra in enumerate(["", "3 2 1 4 5 1 7\n", "-3 2 1 4 5 1\n", "3 2 1 4 inf\n"]):
        p = folds / f"e{k}.txt"
        p.write_text("a/b/c\n4\n" + ell + "\nd/e/f\n" + str(int(bool(extra))) + "\n" + extra)
        outcomes = []
        for fast in (True, False):
            if not fast:
                monkeypatch.setattr(numtext, "parse_number_lines", lambda *a, **kw: None)
            try:
                outcomes.append([(n, line, e.tolist()) for n, line, e in D._read_ellipse_list(p)])
            except ValueError as e:
                outcomes.append(str(e))
            monkeypatch.undo()
        assert outcomes[0] == outcomes[1], extra
