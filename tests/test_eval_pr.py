"""AFW / PASCAL Faces (face-eval toolbox protocol): fast path vs a slow per-detection reference."""
import math

import numpy as np
import pytest

from rfcn_face.datasets.face_eval import toolbox_to_continuous
from rfcn_face.datasets.record import FaceRecord
from rfcn_face.evaluation import pr
from rfcn_face.testing.synthetic_eval import write_synthetic_face_eval


# ------------------------------------------------------------- slow reference, written from the toolbox's rules
def ref_overlap(r1, r2):
    """Boxes as (y1, x1, y2, x2): +1 areas with abs, strict intersection test."""
    dy1, dx1 = abs(r1[0] - r1[2]) + 1, abs(r1[1] - r1[3]) + 1
    dy2, dx2 = abs(r2[0] - r2[2]) + 1, abs(r2[1] - r2[3]) + 1
    a1, a2, ia = dx1 * dy1, dx2 * dy2, 0
    if r1[2] > r2[0] and r2[2] > r1[0] and r1[3] > r2[1] and r2[3] > r1[1]:
        xx1, yy1 = max(r1[1], r2[1]), max(r1[0], r2[0])
        xx2, yy2 = min(r1[3], r2[3]), min(r1[2], r2[2])
        ia = (xx2 - xx1 + 1) * (yy2 - yy1 + 1)
    return ia / float(a1 + a2 - ia)


def reference_ap(gt_rows, det_lines, minw=30, minh=30, nit=5):
    """gt_rows {key: [[x1 y1 x2 y2 ignore], ...]}; det_lines [(key, score, x1, y1, x2, y2)]."""
    dimg, tot = {}, 0
    for k, rows in gt_rows.items():
        bb = []
        for x1, y1, x2, y2, ig in rows:
            b = [y1, x1, y2, x2, 0, ig]
            if abs(x1 - x2) < minw or abs(y1 - y2) < minh:
                b[5] = 1
            bb.append(b)
            tot += b[5] == 0
        dimg[k] = bb
    minpix = int(math.sqrt(0.5 * minw * minh))
    dets = sorted([list(d) for d in det_lines], key=lambda d: d[1], reverse=True)
    dets = [d for d in dets if (d[4] - d[2]) > minpix or (d[5] - d[3]) > minpix]
    for it in range(nit):
        dets.sort(key=lambda d: -d[1])
        taken = {k: [False] * len(v) for k, v in dimg.items()}
        tp, fp, moves = [0.0] * len(dets), [0.0] * len(dets), []
        for i, d in enumerate(dets):
            maxovr, g = 0, 0
            if d[0] in dimg:
                for j, r in enumerate(dimg[d[0]]):
                    o = ref_overlap((d[3], d[2], d[5], d[4]), r)
                    if o >= maxovr:
                        maxovr, g = o, j
            if maxovr > 0.5:
                r = dimg[d[0]][g]
                if r[5] == 0:
                    if not taken[d[0]][g]:
                        tp[i] = 1
                        taken[d[0]][g] = True
                        dtx, dty = d[4] - d[2], d[5] - d[3]
                        moves.append((((r[3] + r[1]) / 2. - (d[4] + d[2]) / 2.) / dtx,
                                      ((r[2] + r[0]) / 2. - (d[5] + d[3]) / 2.) / dty,
                                      (r[3] - r[1]) / dtx, (r[2] - r[0]) / dty))
                    else:
                        fp[i] = 1
            else:
                fp[i] = 1
        if it < nit - 1:
            tx, ty, sx, sy = (np.mean([m[c] for m in moves]) for c in range(4))
            new = []
            for d in dets:
                w, h = (d[4] - d[2]) / 2.0, (d[5] - d[3]) / 2.0
                cx, cy = (d[4] + d[2]) / 2. + tx * w * 2, (d[5] + d[3]) / 2. + ty * h * 2
                new.append([d[0], d[1], cx - w * sx, cy - h * sy, cx + w * sx, cy + h * sy])
            dets = new
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = ctp / tot
    with np.errstate(invalid="ignore"):
        prec = ctp / (cfp + ctp)
    mrec, mpre = np.concatenate(([0], rec, [1])), np.concatenate(([0], prec, [0]))
    for i in range(len(mpre) - 2, 0, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx])), rec, prec


def make_records(gt_rows):
    recs = []
    for k, rows in gt_rows.items():
        a = np.asarray(rows, float).reshape(-1, 5)
        recs.append(FaceRecord(image_path=k + ".jpg", boxes=toolbox_to_continuous(a[:, :4]), ignore=a[:, 4] != 0,
                               name=k))
    return recs


def random_case(rng, n_img=12):
    gt, dets = {}, []
    for i in range(n_img):
        k = f"img{i}"
        n = int(rng.integers(1, 5))
        x1, y1 = rng.integers(0, 300, n).astype(float), rng.integers(0, 300, n).astype(float)
        w, h = rng.integers(15, 90, n), rng.integers(15, 90, n)
        ig = (rng.random(n) < 0.15).astype(float)
        gt[k] = np.stack([x1, y1, x1 + w, y1 + h, ig], 1).tolist()
        for r in gt[k]:
            for _ in range(int(rng.integers(0, 3))):            # jittered (biased) copies: TPs, duplicates
                j = rng.normal(0, 4, 4) + [2, 3, 6, 8]
                dets.append((k, float(rng.choice([0.2, 0.5, 0.6, 0.9, rng.random()])), *(np.add(r[:4], j))))
        for _ in range(int(rng.integers(0, 3))):                # background
            x, y, s = rng.uniform(0, 300, 3)
            dets.append((k, float(rng.random() * 0.5), x, y, x + s / 3 + 5, y + s / 3 + 5))
    dets.append(("unknown_image", 0.7, 0, 0, 50, 50))
    return gt, dets


@pytest.mark.parametrize("seed,nit", [(0, 1), (1, 5), (2, 3), (3, 5)])
def test_fast_matches_reference(seed, nit):
    rng = np.random.default_rng(seed)
    gt, dets = random_case(rng)
    recs = make_records(gt)
    keys = [d[0] for d in dets]
    arr = np.array([d[1:] for d in dets], float)
    res = pr.evaluate_face_eval(recs, keys, arr, nit=nit)
    ap, rec, prec = reference_ap(gt, dets, nit=nit)
    assert res.ap == ap
    np.testing.assert_array_equal(res.recall, rec)
    np.testing.assert_array_equal(res.precision, prec)
    assert len(res.transforms) == nit - 1


def test_overlap_vectorised_vs_scalar():
    rng = np.random.default_rng(7)
    d = rng.integers(0, 20, (40, 4)).astype(float)
    g = rng.integers(0, 20, (30, 4)).astype(float)
    ov = pr.toolbox_overlap(d, g)
    for i in range(len(d)):
        for j in range(len(g)):
            a = (d[i, 1], d[i, 0], d[i, 3], d[i, 2])
            b = (g[j, 1], g[j, 0], g[j, 3], g[j, 2])
            assert ov[i, j] == ref_overlap(a, b)


def test_hand_built():
    # image a: face 100x100, a 20x20 face (-> ignore, too small), an annotated ignore region
    gt = {"a": [[1, 1, 100, 100, 0], [200, 200, 220, 220, 0], [300, 1, 400, 100, 1]]}
    dets = [("a.jpg", 0.9, 1, 1, 100, 100),        # TP
            ("a.jpg", 0.8, 2, 2, 100, 100),        # duplicate -> FP
            ("a.jpg", 0.7, 300, 1, 400, 100),      # on the ignore region -> dropped
            ("a.jpg", 0.6, 199, 199, 221, 221),    # 22 px wide > 21: kept; on the small (ignored) face -> dropped
            ("a.jpg", 0.5, 500, 500, 521, 521),    # 21 x 21: removed by the size filter
            ("a.jpg", 0.4, 600, 600, 650, 650)]    # background -> FP
    recs = make_records(gt)
    res = pr.evaluate_face_eval(recs, [pr.image_key(d[0]) for d in dets], np.array([d[1:] for d in dets]), nit=1)
    assert res.num_faces == 1 and res.num_detections == 5 and res.num_filtered == 1
    np.testing.assert_array_equal(res.recall, [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(res.precision, [1, 0.5, 0.5, 0.5, 1 / 3])
    assert res.ap == 1.0
    # a detection at IoU exactly 0.5 is not a match (strict >): 100x100 face, 100x50 box -> 5000/10000
    res = pr.evaluate_face_eval(recs, ["a"], np.array([[0.9, 1, 1, 100, 50]]), nit=1)
    assert res.precision.tolist() == [0.0] and res.ap == 0.0


def test_refinement_learns_a_global_shift():
    gt = {f"i{i}": [[10 + i, 10, 110 + i, 110, 0]] for i in range(5)}
    # every detection shifted right by 40 px: IoU 60*100/(140*100 - ... ) < 0.5 for some -> refinement helps
    dets = [(f"i{i}", 0.9 - 0.1 * i, 10 + i + 40, 10, 110 + i + 40, 110) for i in range(5)]
    recs = make_records(gt)
    arr = np.array([d[1:] for d in dets], float)
    one = pr.evaluate_face_eval(recs, [d[0] for d in dets], arr, nit=1)
    # IoU = (61*101)/(2*101*101 - 61*101) = 0.436 -> no TP, refinement has nothing to learn from
    assert one.ap == 0.0
    dets2 = [(f"i{i}", 0.9 - 0.1 * i, 10 + i + 20, 10, 110 + i + 20, 110) for i in range(5)]
    arr2 = np.array([d[1:] for d in dets2], float)
    res = pr.evaluate_face_eval(recs, [d[0] for d in dets2], arr2, nit=2)
    assert res.transforms[0][0] == pytest.approx(-0.2) and res.transforms[0][2] == 1.0
    assert res.ap == 1.0


def test_reader(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("img1.jpg 0.9 1 2 3 4\r\nfolder/img2.png 0.5 5 6 7 8 extra\n\n")
    keys, d = pr.read_detections(p)
    assert keys == ["img1", "img2"] and d.tolist() == [[0.9, 1, 2, 3, 4], [0.5, 5, 6, 7, 8]]
    p.write_text("img1.jpg 0.9 1 2 3\n")
    with pytest.raises(ValueError, match=":1:"):
        pr.read_detections(p)


@pytest.mark.parametrize("fname,faces", [("new_annotations_AFW.mat", 473),
                                         ("Annotations_Face_PASCALLayout_large_fixed.mat", 1341),
                                         ("anno2.mat", 468), ("Annotations_Face_PASCALLayout_large.mat", 1331)])
def test_real_gt_as_detections(shared_data, fname, faces):
    from rfcn_face.datasets.face_eval import continuous_to_toolbox, read_face_eval_mat
    recs = read_face_eval_mat(shared_data / "afw_pascal" / fname)
    keys, rows = [], []
    for r in recs:
        for b in continuous_to_toolbox(r.boxes):
            keys.append(pr.image_key(r.image_path))
            rows.append([1.0, *b])
    res = pr.evaluate_face_eval(recs, keys, np.array(rows))
    assert res.num_faces == faces
    assert res.ap == 1.0 and res.recall[-1] == 1.0
    assert res.transforms[0] == (0.0, 0.0, 1.0, 1.0)


def test_cli_synthetic(tmp_path, capsys):
    import json
    from rfcn_face.__main__ import main
    paths = write_synthetic_face_eval(tmp_path / "syn", num_images=20)
    rc = main(["evaluate", "pascal", "--dets", str(paths["dets"]), "--gt", str(paths["gt"]),
               "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "pr.png")])
    assert rc == 0
    out = capsys.readouterr().out
    js = json.loads((tmp_path / "r.json").read_text())
    assert f"PASCAL Faces AP: {js['ap']:.4f}" in out and 0.3 < js["ap"] < 1.0
    assert len(js["recall"]) == js["num_detections"] == len(js["precision"])
    assert (tmp_path / "pr.png").stat().st_size > 1000


def test_cli_real_gt_as_detections(shared_data, tmp_path, capsys):
    from rfcn_face.__main__ import main
    from rfcn_face.datasets.face_eval import continuous_to_toolbox, read_face_eval_mat
    gt = shared_data / "afw_pascal" / "new_annotations_AFW.mat"
    lines = [f"{r.image_path} 1.0 " + " ".join(f"{v:g}" for v in b)
             for r in read_face_eval_mat(gt) for b in continuous_to_toolbox(r.boxes)]
    (tmp_path / "d.txt").write_text("\n".join(lines) + "\n")
    assert main(["evaluate", "afw", "--dets", str(tmp_path / "d.txt"), "--gt", str(gt)]) == 0
    out = capsys.readouterr().out
    assert "AFW AP: 1.0000" in out and "473 faces" in out
