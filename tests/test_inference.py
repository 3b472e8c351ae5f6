"""``test`` / ``detect`` verbs on a smoke-trained run: a WIDER folder the checker accepts and the evaluator
scores, resume after SIGKILL = uninterrupted run, unreadable images named with a non-zero exit, FDDB fold files
and ROC, face-eval detection files in toolbox coordinates, detect's PNG + JSON."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.testing.processes import sigkill_when  # noqa: E402
from rfcn_face.datasets.synthfaces import ensure_synthfaces  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sizes", "128x128", "--no-progress"]


def printed_text(capsys) -> str:
    """What a command printed: its results (stdout) and its messages (stderr, the project's logger)."""
    o = capsys.readouterr()
    return o.out + o.err


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.txt"))}


# ------------------------------------------------------------------------------------------------ WIDER protocol
def test_synthfaces_val_folder_checked_and_scored(tmp_path, run_dir, capsys):
    from rfcn_face.datasets.wider import wider_split_records
    from rfcn_face.evaluation.submission import read_submission
    from rfcn_face.evaluation.submission_check import check_submission
    from rfcn_face.evaluation.wider import WiderGroundTruth, evaluate_wider
    out = tmp_path / "val"
    assert main(["test", "--run", str(run_dir), "--dataset", "synthfaces-val", "--out", str(out), "--limit", "12",
                 "--json", str(tmp_path / "s.json")] + FAST) == 0
    printed = printed_text(capsys)
    assert "submission check: OK (12 files" in printed and "Hard   Val AP:" in printed
    base = ensure_synthfaces()
    recs = wider_split_records(base, "val")[:12]
    keys = [(r.event, r.name) for r in recs]
    assert check_submission(out / "predictions", keys) == []
    # the APs of the summary are the evaluator's on the written files
    gt = WiderGroundTruth.load(base / "ground_truth")
    gt = gt.subset([i for i, k in enumerate(gt.keys()) if k in set(keys)])
    ref = evaluate_wider(read_submission(out / "predictions", gt.keys())[0], gt)
    s = json.loads((out / "results.json").read_text())
    assert s == json.loads((tmp_path / "s.json").read_text())
    for setting in ("easy", "medium", "hard"):
        assert s["evaluation"][setting] == pytest.approx(ref.ap[setting], abs=0, rel=1e-12)
    assert s["images"] == s["detected"] == 12 and s["unreadable"] == []
    assert (out / "wider_pr.png").stat().st_size > 0
    # every file holds the cached detections, best first, as x y w h score
    cache = Path(s["cache"])
    with np.load(cache / "0000003.npz") as z:
        boxes, scores = z["boxes"], z["scores"]
    lines = (out / "predictions" / recs[3].event / f"{recs[3].name}.txt").read_text().splitlines()
    assert lines[0] == recs[3].name and int(lines[1]) == len(scores) > 0
    rows = np.array([[float(v) for v in l.split()] for l in lines[2:]])
    np.testing.assert_allclose(rows[:, :2], boxes[:, :2])
    np.testing.assert_allclose(rows[:, 2:4], boxes[:, 2:] - boxes[:, :2])
    np.testing.assert_allclose(rows[:, 4], scores)


# the killed run saves each image's cache entry, then sleeps: it is still running when the test kills it
SLOW_CHILD = """
import sys, time
import rfcn_face.inference as inf
save = inf._save_npz
def slow_save(*a, **k):
    save(*a, **k)
    time.sleep(0.3)
inf._save_npz = slow_save
from rfcn_face.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_midway_resumes_to_the_identical_result(tmp_path, run_dir):
    n = 16
    args = ["test", "--run", str(run_dir), "--dataset", "synthfaces-val", "--limit", str(n)] + FAST
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CHILD] + args + ["--out", str(killed)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, lambda: len(list(killed.glob("cache/*/*.npz"))) >= 3, timeout=240, poll=0.01)
    done = len(list(killed.glob("cache/*/*.npz")))
    assert 3 <= done < n and not (killed / "results.json").exists()
    assert main(args + ["--out", str(killed)]) == 0                       # resume
    fresh = tmp_path / "fresh"
    assert main(args + ["--out", str(fresh)]) == 0                        # uninterrupted
    a, b = _files(killed / "predictions"), _files(fresh / "predictions")
    assert len(a) == n and a == b
    ra, rb = (json.loads((d / "results.json").read_text())["evaluation"] for d in (killed, fresh))
    assert {k: ra[k] for k in ("easy", "medium", "hard")} == {k: rb[k] for k in ("easy", "medium", "hard")}


@pytest.fixture()
def broken_synthfaces(tmp_path):
    """A copy of the synthfaces set whose 3rd val image is garbage and 6th is an empty file."""
    base = ensure_synthfaces()
    root = tmp_path / "data"
    shutil.copytree(base, root, ignore=shutil.ignore_patterns("WIDER_train"))
    from rfcn_face.datasets.wider import wider_split_records
    recs = wider_split_records(root, "val")
    Path(recs[2].image_path).write_bytes(b"\xff\xd8 this is not a JPEG")
    Path(recs[5].image_path).write_bytes(b"")
    return root, recs


def test_unreadable_images_are_named_and_the_run_goes_on(tmp_path, run_dir, broken_synthfaces, capsys):
    root, recs = broken_synthfaces
    out = tmp_path / "out"
    code = main(["test", "--run", str(run_dir), "--dataset", "synthfaces-val", "--data", str(root), "--out",
                 str(out), "--limit", "8"] + FAST)
    err = capsys.readouterr().err
    assert code == 1
    bad = [f"{recs[i].event}/{recs[i].name}.jpg" for i in (2, 5)]
    last = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(last) == 1 and "2 image(s) could not be read" in last[0] and all(b in last[0] for b in bad)
    assert "Traceback" not in err
    s = json.loads((out / "results.json").read_text())
    assert [u["image"] for u in s["unreadable"]] == bad
    assert "empty file" in s["unreadable"][1]["reason"] and s["detected"] == 6
    assert s["evaluation"]["submission_problems"] == []          # their files list no detection
    assert (out / "predictions" / recs[2].event / f"{recs[2].name}.txt").read_text().splitlines()[1] == "0"


def test_bad_arguments_are_one_line_errors(tmp_path, run_dir, capsys):
    cases = [(["--run", str(tmp_path / "nope")], "run folder not found"),
             (["--run", str(run_dir), "--sizes", "600by1000"], "SHORTERxLONGER"),
             (["--run", str(run_dir), "--set", "model.arch=BU"], "only test.* and data.*"),
             (["--run", str(run_dir), "--dataset", "fddb", "--data", str(tmp_path)], "FDDB folds folder not found")]
    for extra, msg in cases:
        argv = ["test", "--dataset", "synthfaces-val", "--out", str(tmp_path / "o")] + extra
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and msg in err[0], err


# ------------------------------------------------------------------------------------------------ FDDB / face-eval
def _mini_fddb(root: Path, n_per_fold=4, folds=(1, 2)):
    """FDDB layout from synthfaces val images: ellipses fitted to the face boxes."""
    from rfcn_face.datasets.wider import wider_split_records
    base = ensure_synthfaces()
    recs = wider_split_records(base, "val")
    (root / "fddb" / "FDDB-folds").mkdir(parents=True)
    k = 0
    for f in folds:
        names, ell = [], []
        for _ in range(n_per_fold):
            r = recs[k]
            k += 1
            name = f"synth/{r.name}"
            dst = root / "fddb" / "originalPics" / (name + ".jpg")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(r.image_path, dst)
            b = r.boxes[~r.ignore]
            names.append(name)
            ell.append(f"{name}\n{len(b)}\n" + "".join(
                f"{(y2 - y1) * 0.6} {(x2 - x1) * 0.45} 1.5 {(x1 + x2) / 2} {(y1 + y2) / 2} 1\n" for x1, y1, x2, y2 in b))
        (root / "fddb" / "FDDB-folds" / f"FDDB-fold-{f:02d}.txt").write_text("\n".join(names) + "\n")
        (root / "fddb" / "FDDB-folds" / f"FDDB-fold-{f:02d}-ellipseList.txt").write_text("".join(ell))
    return root


def test_fddb_fold_files_ellipses_and_roc(tmp_path, run_dir, capsys):
    from rfcn_face.evaluation.ellipse import FEATURES, TARGETS, predict_ellipses
    from rfcn_face.evaluation.fddb_format import read_fddb_detections
    root = _mini_fddb(tmp_path / "data")
    # the 30-iteration model matches no face well enough to fit the regressor: the run notes it and goes on
    out0 = tmp_path / "fit"
    assert main(["test", "--run", str(run_dir), "--dataset", "fddb", "--data", str(root), "--out", str(out0),
                 "--ellipses"] + FAST) == 0
    assert "note: ellipse regressor not fitted" in printed_text(capsys)
    # a saved regressor: ellipse = box centre, semi-axes 0.6 h and 0.5 w, upright
    coef = np.zeros((len(FEATURES), len(TARGETS)))
    coef[0, 2], coef[0, 3] = np.log(0.6), np.log(0.5)
    reg = tmp_path / "reg.json"
    reg.write_text(json.dumps({"features": list(FEATURES), "targets": list(TARGETS), "models": {"all": coef.tolist()}}))
    out = tmp_path / "out"
    assert main(["test", "--run", str(run_dir), "--dataset", "fddb", "--data", str(root), "--out", str(out),
                 "--ellipse-regressor", str(reg)] + FAST) == 0
    printed = printed_text(capsys)
    assert "FDDB (rect): discrete TPR at 1000 FP" in printed and "FDDB (ellipse)" in printed
    s = json.loads((out / "results.json").read_text())
    assert s["cache"].rsplit("/", 1)[1] == json.loads((out0 / "results.json").read_text())["cache"].rsplit("/", 1)[1]
    cache = Path(s["cache"])
    for f, first in ((1, 0), (2, 4)):
        rect = read_fddb_detections(out / "fddb" / f"fold-{f:02d}-out.txt")
        ell = read_fddb_detections(out / "fddb" / "ellipses" / f"fold-{f:02d}-out.txt")
        assert [d.name for d in rect] == [d.name for d in ell] and len(rect) == 4
        assert rect[0].kind == "rect" and ell[0].kind == "ellipse"
        with np.load(cache / f"{first:07d}.npz") as z:
            boxes, scores = z["boxes"], z["scores"]
        np.testing.assert_allclose(rect[0].dets[:, :2], boxes[:, :2])
        np.testing.assert_allclose(rect[0].dets[:, 2:4], boxes[:, 2:] - boxes[:, :2])
        np.testing.assert_allclose(rect[0].dets[:, 4], scores)
        np.testing.assert_allclose(ell[0].dets[:, :5], predict_ellipses(coef, rect[0].dets[:, :4]))
        np.testing.assert_allclose(ell[0].dets[:, 5], scores)
    for kind in ("rect", "ellipse"):
        lines = (out / "fddb" / f"{kind}-DiscROC.txt").read_text().splitlines()
        assert lines and all(len(l.split()) == 3 for l in lines)
        assert 0 <= s["evaluation"][kind]["tpr_disc_1000fp"] <= 1
    assert (out / "fddb_roc.png").stat().st_size > 0


def test_afw_detections_in_toolbox_coordinates(tmp_path, run_dir, capsys):
    import scipy.io as sio
    from rfcn_face.datasets.face_eval import continuous_to_toolbox
    from rfcn_face.datasets.wider import wider_split_records
    from rfcn_face.evaluation.pr import read_detections
    base = ensure_synthfaces()
    recs = wider_split_records(base, "val")[:5]
    afw = tmp_path / "data" / "afw"
    (afw / "images").mkdir(parents=True)
    ann = np.zeros((len(recs), 1), dtype=[("imgname", "O"), ("imgsize", "O"), ("objects", "O"), ("flags", "O")])
    for i, r in enumerate(recs):
        shutil.copy(r.image_path, afw / "images" / f"{r.name}.jpg")
        tb = continuous_to_toolbox(r.boxes)
        ann[i, 0]["imgname"] = np.array([f"{r.name}.jpg"])
        ann[i, 0]["imgsize"] = np.array([[256], [256], [3]], float)
        ann[i, 0]["objects"] = np.concatenate([tb, np.zeros((len(tb), 1)), r.ignore[:, None].astype(float)], 1)
        ann[i, 0]["flags"] = np.zeros((1, 1))
    sio.savemat(str(afw / "new_annotations_AFW.mat"), {"Annotations": ann})
    out = tmp_path / "out"
    assert main(["test", "--run", str(run_dir), "--dataset", "afw", "--data", str(tmp_path / "data"), "--out",
                 str(out)] + FAST) == 0
    assert "AFW AP:" in printed_text(capsys)
    keys, dets = read_detections(out / "afw_dets.txt")
    s = json.loads((out / "results.json").read_text())
    with np.load(Path(s["cache"]) / "0000000.npz") as z:
        boxes, scores = z["boxes"], z["scores"]
    mine = dets[np.asarray(keys) == recs[0].name]
    np.testing.assert_allclose(mine[:, 0], scores)
    np.testing.assert_allclose(mine[:, 1:], continuous_to_toolbox(boxes))       # (x1 + 1, y1 + 1, x2, y2)
    assert 0 <= s["evaluation"]["ap"] <= 1 and (out / "afw_pr.png").is_file()
    # a detector that finds nothing (strict score > 1.0): an empty detections file, AP 0, not an error
    none = tmp_path / "none"
    assert main(["test", "--run", str(run_dir), "--dataset", "afw", "--data", str(tmp_path / "data"), "--out",
                 str(none), "--set", "test.score_thresh=1.0"] + FAST) == 0
    s = json.loads((none / "results.json").read_text())
    assert (none / "afw_dets.txt").read_text().strip() == "" and s["evaluation"]["ap"] == 0.0


# ------------------------------------------------------------------------------------------------ detect
def test_detect_writes_png_and_json_best_first(tmp_path, run_dir, capsys):
    import cv2
    from rfcn_face.datasets.wider import wider_split_records
    from rfcn_face.detector import FaceDetector
    from rfcn_face.datasets.loader import load_image
    base = ensure_synthfaces()
    recs = wider_split_records(base, "val")[:2]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    out = tmp_path / "det"
    code = main(["detect", recs[0].image_path, str(bad), recs[1].image_path, "--run", str(run_dir), "--out", str(out),
                 "--thresh", "0.05", "--no-progress"])
    cap = capsys.readouterr()
    assert code == 1 and "broken.jpg" in cap.err.splitlines()[-1]
    det = FaceDetector.from_run(run_dir)
    for r in recs:
        rows = json.loads((out / f"{r.name}.json").read_text())
        b, s = det.detect(load_image(r.image_path))
        keep = s >= 0.05
        assert [x["score"] for x in rows] == pytest.approx(s[keep].tolist(), abs=1e-12)
        np.testing.assert_allclose([x["box"] for x in rows] or np.zeros((0, 4)), b[keep], atol=1e-9)
        png = cv2.imread(str(out / f"{r.name}.png"))
        assert png.shape == (256, 256, 3)
        assert not np.array_equal(png[:, :, ::-1], load_image(r.image_path)) or not rows     # boxes drawn
    assert not (out / "broken.json").exists()


def test_detect_inputs_are_checked_before_the_detector_loads(tmp_path, capsys):
    """One check (inference.check_detect_inputs) for the detect verb and detect_images: a missing --run is not
    reached when the inputs are bad."""
    from rfcn_face.inference import check_detect_inputs, detect_images
    (tmp_path / "f").write_text("x")
    a, b = tmp_path / "x" / "a.jpg", tmp_path / "y" / "a.jpg"
    nope = str(tmp_path / "no_run")
    for extra, word in (([str(a), str(b), "--out", str(tmp_path / "o")], "share the name 'a'"),
                        ([str(a), "--out", str(tmp_path / "f")], "is not a folder")):
        assert main(["detect", *extra, "--run", nope, "--no-progress"]) != 0
        assert word in capsys.readouterr().err.strip().splitlines()[-1]
    assert check_detect_inputs([str(a)], tmp_path / "o", 0.3) == [a]
    o = tmp_path / "o"
    for paths, out, thresh, word in (([a], o, float("nan"), "--thresh"), ([a], o, 1.5, "--thresh"),
                                     ([], o, 0.5, "no image"), ([a, b], o, 0.5, "share the name"),
                                     ([a], tmp_path / "f", 0.5, "folder")):
        with pytest.raises(ValueError, match=word):
            check_detect_inputs(paths, out, thresh)
        with pytest.raises(ValueError, match=word):
            detect_images(None, paths, out, thresh)      # checked before the detector is used
    assert not (tmp_path / "o").exists()


def test_detect_nms_impl_option(tmp_path, run_dir, capsys):
    """--nms-impl forces the proposals' NMS: box_nms (the GPU choice) on this CPU writes the JSON the default (the
    numpy NMS here) writes; an unknown choice is one argparse error line."""
    from rfcn_face.datasets.wider import wider_split_records
    base = ensure_synthfaces()
    rec = wider_split_records(base, "val")[0]
    for impl in ("auto", "box_nms"):
        assert main(["detect", rec.image_path, "--run", str(run_dir), "--out", str(tmp_path / impl), "--thresh", "0.05",
                     "--nms-impl", impl, "--no-progress"]) == 0
    auto, forced = (json.loads((tmp_path / d / f"{rec.name}.json").read_text()) for d in ("auto", "box_nms"))
    assert len(auto) == len(forced) > 0 and auto == forced
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["detect", rec.image_path, "--run", str(run_dir), "--out", str(tmp_path / "x"), "--nms-impl", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
