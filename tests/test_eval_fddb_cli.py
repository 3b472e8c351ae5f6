"""``python -m rfcn_face evaluate fddb`` end to end on the embedded synthetic FDDB set (and the real folds)."""
import numpy as np

from rfcn_face.__main__ import main
from rfcn_face.evaluation import fddb_format as FF
from rfcn_face.testing import synthetic_eval as SE
from rfcn_face.datasets import fddb as DF


def test_cli_synthetic_with_and_without_regressor(tmp_path, capsys):
    paths = SE.write_synthetic_fddb(tmp_path / "syn", images_per_fold=4)
    base = ["evaluate", "fddb", "--dets", str(paths["dets"]), "--folds", str(paths["folds"]),
            "--sizes", str(paths["sizes"])]
    assert main(base + ["--out", str(tmp_path / "raw_"), "--plot", str(tmp_path / "raw.png")]) == 0
    out = capsys.readouterr().out
    assert "40 images" in out and "continuous TPR at 1000 FP:" in out
    disc = np.loadtxt(tmp_path / "raw_DiscROC.txt", ndmin=2)
    cont = np.loadtxt(tmp_path / "raw_ContROC.txt", ndmin=2)
    assert disc.shape[1] == 3 and cont.shape[1] == 2 and len(disc) == len(cont)
    assert np.all(np.diff(disc[:, 2]) > 0) and np.all(np.diff(disc[:, 1]) <= 0)     # ascending thresholds
    assert (tmp_path / "raw.png").stat().st_size > 1000

    assert main(base + ["--out", str(tmp_path / "reg_"), "--fit-ellipse-regressor", str(tmp_path / "e.json"),
                        "--write-ellipses", str(tmp_path / "ell.txt")]) == 0
    out = capsys.readouterr().out
    assert "without the regressor" in out
    reg = np.loadtxt(tmp_path / "reg_ContROC.txt", ndmin=2)
    assert reg[0, 0] > cont[0, 0]                      # lowest threshold: continuous TPR higher with ellipses
    # the written ellipse detections evaluate to the same curve
    assert main(base[:3] + [str(tmp_path / "ell.txt")] + base[4:] + ["--out", str(tmp_path / "ell_")]) == 0
    assert (tmp_path / "ell_DiscROC.txt").read_text() == (tmp_path / "reg_DiscROC.txt").read_text()
    # applying the saved regressor gives the same again
    assert main(base + ["--out", str(tmp_path / "app_"), "--ellipse-regressor", str(tmp_path / "e.json")]) == 0
    assert (tmp_path / "app_ContROC.txt").read_text() == (tmp_path / "reg_ContROC.txt").read_text()


def test_cli_json_ground_truth_as_detections_literal(tmp_path, capsys):
    """--json: the ground-truth ellipses as detections (score 1) find every face with no false positive: one
    threshold, TPR 1 discrete and continuous, the counts of the set; with the regressor fitted on rectangles the
    JSON also holds the rectangle curve."""
    import json
    from rfcn_face.datasets.fddb import read_fddb
    paths = SE.write_synthetic_fddb(tmp_path / "syn", images_per_fold=2)
    recs = read_fddb(paths["folds"])
    dets = [FF.FddbImageDets(r.name, "ellipse", np.concatenate([r.ellipses, np.ones((len(r.ellipses), 1))], 1))
            for r in recs]
    FF.write_fddb_detections(tmp_path / "gt.txt", dets)
    assert main(["evaluate", "fddb", "--dets", str(tmp_path / "gt.txt"), "--folds", str(paths["folds"]), "--sizes",
                 str(paths["sizes"]), "--out", str(tmp_path / "gt_"), "--json", str(tmp_path / "gt.json")]) == 0
    j = json.loads((tmp_path / "gt.json").read_text())
    n = sum(len(r.ellipses) for r in recs)
    assert (j["images"], j["faces"], j["detections"], j["kind"]) == (20, n, n, "ellipse")
    assert (j["tpr_discrete"], j["tpr_continuous"]) == (1.0, 1.0)
    assert j["curves"] == {"threshold": [1.0], "fp": [0], "tpr_discrete": [1.0], "tpr_continuous": [1.0]}
    assert j["roc_files"] == [str(tmp_path / "gt_DiscROC.txt"), str(tmp_path / "gt_ContROC.txt")]
    base = ["evaluate", "fddb", "--dets", str(paths["dets"]), "--folds", str(paths["folds"]), "--sizes",
            str(paths["sizes"])]
    assert main(base + ["--out", str(tmp_path / "r_"), "--fit-ellipse-regressor", str(tmp_path / "e.json"),
                        "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    j = json.loads((tmp_path / "r.json").read_text())
    assert j["kind"] == "ellipse regressor" and f"discrete   TPR at 1000 FP: {j['tpr_discrete']:.4f}" in out
    assert f"without the regressor (rectangles): discrete {j['rectangles']['tpr_discrete']:.4f}" in out
    disc = np.loadtxt(tmp_path / "r_DiscROC.txt", ndmin=2)       # TPR FP threshold, the official file
    np.testing.assert_allclose(disc, np.stack([j["curves"]["tpr_discrete"], j["curves"]["fp"],
                                               j["curves"]["threshold"]], 1), rtol=1e-5)   # %g: 6 digits


def test_cli_errors(tmp_path, capsys):
    paths = SE.write_synthetic_fddb(tmp_path / "syn", images_per_fold=2)
    bad = tmp_path / "bad.txt"
    bad.write_text("not/the/first/image\n0\n")
    rc = main(["evaluate", "fddb", "--dets", str(bad), "--folds", str(paths["folds"]), "--sizes",
               str(paths["sizes"]), "--out", str(tmp_path / "x_")])
    assert rc == 2 and "images in the detections" in capsys.readouterr().err
    rc = main(["evaluate", "fddb", "--dets", str(tmp_path / "missing.txt"), "--folds", str(paths["folds"]),
               "--sizes", str(paths["sizes"]), "--out", str(tmp_path / "x_")])
    assert rc == 2 and "missing.txt" in capsys.readouterr().err


def test_cli_real_folds_gt_as_ellipse_detections(shared_data, tmp_path, capsys):
    from rfcn_face.datasets.fddb import read_fddb
    folds = shared_data / "fddb" / "FDDB-folds"
    recs = read_fddb(folds, folds=[3])
    dets = [FF.FddbImageDets(r.name, "ellipse", np.concatenate([r.ellipses, np.ones((len(r.ellipses), 1))], 1))
            for r in recs]
    FF.write_fddb_detections(tmp_path / "d.txt", dets)
    assert main(["evaluate", "fddb", "--dets", str(tmp_path / "d.txt"), "--folds", str(folds), "--fold", "3",
                 "--sizes", str(shared_data / "fddb" / "FDDB-image-sizes.txt"), "--out", str(tmp_path / "gt_")]) == 0
    out = capsys.readouterr().out
    assert "discrete   TPR at 1000 FP: 1.0000" in out and "continuous TPR at 1000 FP: 1.0000" in out
    assert (tmp_path / "gt_DiscROC.txt").read_text() == "1 0 1\n"


def test_image_sizes_from_jpeg_headers(tmp_path):
    import cv2
    (tmp_path / "2002" / "x").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "2002" / "x" / "img_1.jpg"), np.zeros((37, 51, 3), np.uint8))
    assert DF.image_sizes_from_folder(tmp_path, ["2002/x/img_1"]) == {"2002/x/img_1": (51, 37)}
    import pytest
    with pytest.raises(FileNotFoundError, match="img_2"):
        DF.image_sizes_from_folder(tmp_path, ["2002/x/img_2"])
