"""The silent and traceback cases of issue 17, one test each: every one is now a clear error (or, where dropping
is reasonable, an explicit ``--drop-nonfinite`` with the count printed); plus the inputs the official tools
accept (FDDB float counts, Ctrl-Z, ``--fold`` on a full file), the FaceResNet run folder (atomic checkpoints,
resume with fallback, no mixed runs, the ``--resume`` hint), stale synthfaces folders and the last-resort handler.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rfcn_face.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    assert not any("Traceback" in ln or "internal error" in ln for ln in err), err
    return err[-1]


def _fails(argv, capsys, *pieces, code=2, runner=main) -> str:
    try:
        rc = runner(argv)
    except SystemExit as e:
        rc = e.code
    line = _err_line(capsys)
    assert rc == code, (rc, line)
    assert line.startswith("error:"), line
    for p in pieces:
        assert p in line, (p, line)
    return line


# ------------------------------------------------------------------------------------------------ WIDER
@pytest.fixture(scope="module")
def wider(tmp_path_factory):
    from rfcn_face.datasets.synthfaces import generate_synthfaces
    from rfcn_face.evaluation.submission import write_submission
    from rfcn_face.evaluation.wider import WiderGroundTruth
    root = tmp_path_factory.mktemp("wider")
    synth = generate_synthfaces(root / "synth", num_train=0, num_val=6)
    gt = WiderGroundTruth.load(synth / "ground_truth")
    rng = np.random.default_rng(3)
    dets = {}
    for k, b in zip(gt.keys(), gt.boxes):
        xyxy = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1) + rng.normal(0, 1.5, (len(b), 4))
        dets[k] = np.concatenate([xyxy, rng.random((len(b), 1))], axis=1)
    write_submission(dets, root / "pred", gt.keys())
    return {"root": root, "gt": synth / "ground_truth", "pred": root / "pred", "keys": gt.keys(), "synth": synth}


def _pred_copy(wider, tmp_path, line: str, k: int = 0) -> Path:
    dst = tmp_path / "pred"
    shutil.copytree(wider["pred"], dst)
    e, n = wider["keys"][k]
    f = dst / e / f"{n}.txt"
    lines = f.read_text().splitlines()
    lines.insert(2, line)
    lines[1] = str(int(lines[1]) + 1)
    f.write_text("\n".join(lines) + "\n")
    return dst, f


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_wider_nonfinite_score_is_an_error_naming_file_and_line(wider, tmp_path, capsys, value):
    pred, f = _pred_copy(wider, tmp_path, f"10 10 20 20 {value}")
    _fails(["evaluate", "wider", "--pred", str(pred), "--gt", str(wider["gt"])], capsys, f"{f}:3:",
           "NaN or infinite", "--drop-nonfinite")


def test_wider_drop_nonfinite_drops_prints_the_count_and_equals_the_clean_file(wider, tmp_path, capsys):
    pred, _ = _pred_copy(wider, tmp_path, "10 10 20 20 inf")
    out = tmp_path / "r.json"
    assert main(["evaluate", "wider", "--pred", str(pred), "--gt", str(wider["gt"]), "--drop-nonfinite",
                 "--json", str(out)]) == 0
    assert "left out 1 box line(s) with a NaN or infinite value in 1 file(s)" in capsys.readouterr().err
    assert main(["evaluate", "wider", "--pred", str(wider["pred"]), "--gt", str(wider["gt"]), "--json",
                 str(tmp_path / "ref.json")]) == 0
    got, ref = json.loads(out.read_text()), json.loads((tmp_path / "ref.json").read_text())
    assert [got[s] for s in ("easy", "medium", "hard")] == [ref[s] for s in ("easy", "medium", "hard")]
    assert 0 < ref["hard"] < 1


def test_wider_nan_coordinate_and_negative_size_are_errors(wider, tmp_path, capsys):
    pred, f = _pred_copy(wider, tmp_path, "nan 10 20 20 0.5")
    _fails(["evaluate", "wider", "--pred", str(pred), "--gt", str(wider["gt"])], capsys, f"{f}:3:")
    pred, f = _pred_copy(wider, tmp_path / "b", "10 10 -4 20 0.5")
    _fails(["evaluate", "wider", "--pred", str(pred), "--gt", str(wider["gt"])], capsys, f"{f}:3:", "negative")


def test_wider_empty_folder_and_parent_folder_are_errors_not_ap_zero(wider, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _fails(["evaluate", "wider", "--pred", str(tmp_path / "empty"), "--gt", str(wider["gt"])], capsys,
           "no prediction file")
    shutil.copytree(wider["pred"], tmp_path / "parent" / "predictions")
    _fails(["evaluate", "wider", "--pred", str(tmp_path / "parent"), "--gt", str(wider["gt"])], capsys,
           f"--pred {tmp_path / 'parent' / 'predictions'}")


def test_wider_negative_scores_are_announced(wider, tmp_path, capsys):
    pred, _ = _pred_copy(wider, tmp_path, "10 10 20 20 -0.5")
    assert main(["evaluate", "wider", "--pred", str(pred), "--gt", str(wider["gt"])]) == 0
    assert "1 prediction(s) with a negative score are not counted" in capsys.readouterr().err


def test_check_submission_ends_with_an_error_line(wider, tmp_path, capsys):
    pred, f = _pred_copy(wider, tmp_path, "1 2 3 4 nan")
    filelist = wider["synth"] / "wider_face_split" / "wider_face_val_bbx_gt.txt"
    rc = main(["evaluate", "check-submission", "--pred", str(pred), "--split", "val", "--filelist", str(filelist)])
    out = capsys.readouterr()
    assert rc == 1 and f"{f}:3: NaN or infinite value" in out.out
    assert out.err.strip().splitlines()[-1].startswith("error: 1 problem(s) in")


def test_annotation_nan_coordinate_is_not_counted_as_a_face(tmp_path, capsys):
    gt = tmp_path / "gt.txt"
    gt.write_text("0--Parade/a.jpg\n2\n10 10 20 20 0 0 0 0 0 0\nnan 10 20 20 0 0 0 0 0 0\n")
    _fails(["dataset-info", "wider", str(gt)], capsys, f"{gt}:4:", "NaN")
    _fails(["emo", "--annotations", str(gt), "--out", str(tmp_path / "emo"), "--no-plots"], capsys, f"{gt}:4:")
    assert not (tmp_path / "emo").exists()


def test_annotation_fractional_label_is_an_error(tmp_path, capsys):
    gt = tmp_path / "gt.txt"
    gt.write_text("0--Parade/a.jpg\n1\n10 10 20 20 0 0 0 0.5 0 0\n")
    _fails(["dataset-info", "wider", str(gt)], capsys, f"{gt}:3:", "integers")


# ------------------------------------------------------------------------------------------------ FDDB
@pytest.fixture(scope="module")
def fddb(tmp_path_factory):
    from rfcn_face.testing.synthetic_eval import write_synthetic_fddb
    return write_synthetic_fddb(tmp_path_factory.mktemp("fddb"), images_per_fold=2)


def _fddb(fddb, dets, out, *extra):
    return ["evaluate", "fddb", "--dets", str(dets), "--folds", str(fddb["folds"]), "--sizes", str(fddb["sizes"]),
            "--out", str(out), *extra]


def _rewrite(path: Path, dst: Path, fn) -> Path:
    lines = path.read_text().splitlines()
    dst.write_text("\n".join(fn(lines)) + "\n")
    return dst


def test_fddb_float_count_and_ctrl_z_are_read_as_the_official_tool_does(fddb, tmp_path, capsys):
    assert main(_fddb(fddb, fddb["dets"], tmp_path / "ref_")) == 0
    ref = (tmp_path / "ref_DiscROC.txt").read_text()

    def floats(lines):
        out, i = list(lines), 0
        while i < len(out):
            n = int(out[i + 1])
            out[i + 1] = f"{n}.0"
            i += 2 + n
        return out
    f = _rewrite(fddb["dets"], tmp_path / "float.txt", floats)
    assert main(_fddb(fddb, f, tmp_path / "float_")) == 0
    assert (tmp_path / "float_DiscROC.txt").read_text() == ref
    z = tmp_path / "ctrlz.txt"
    z.write_bytes(Path(fddb["dets"]).read_bytes() + b"\x1a")
    assert main(_fddb(fddb, z, tmp_path / "z_")) == 0
    assert (tmp_path / "z_DiscROC.txt").read_text() == ref
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(Path(fddb["dets"]).read_bytes().replace(b"\n", b"\r\n") + b"\r\n\x1a\x1a")
    assert main(_fddb(fddb, crlf, tmp_path / "c_")) == 0
    assert (tmp_path / "c_DiscROC.txt").read_text() == ref


def test_fddb_fractional_count_is_an_error(fddb, tmp_path, capsys):
    f = _rewrite(fddb["dets"], tmp_path / "d.txt", lambda ls: [ls[0], "1.5"] + ls[2:])
    _fails(_fddb(fddb, f, tmp_path / "x_"), capsys, f"{f}:2:", "non-negative integer")


def test_fddb_fold_selects_those_folds_of_a_full_file(fddb, tmp_path, capsys):
    from rfcn_face.datasets.fddb import read_fddb
    from rfcn_face.evaluation.fddb_format import read_fddb_detections, write_fddb_detections
    names = {r.name for r in read_fddb(fddb["folds"], folds=[3, 5])}
    part = [d for d in read_fddb_detections(fddb["dets"]) if d.name in names]
    write_fddb_detections(tmp_path / "part.txt", part)
    assert main(_fddb(fddb, tmp_path / "part.txt", tmp_path / "part_", "--fold", "3", "5")) == 0
    assert main(_fddb(fddb, fddb["dets"], tmp_path / "full_", "--fold", "3", "5")) == 0
    out = capsys.readouterr().out
    assert "--fold 3 5: 4 of the 20 images" in out and "4 images" in out
    assert (tmp_path / "full_DiscROC.txt").read_text() == (tmp_path / "part_DiscROC.txt").read_text()
    assert (tmp_path / "full_ContROC.txt").read_text() == (tmp_path / "part_ContROC.txt").read_text()
    # the other way round: a file of two folds without --fold says which --fold to pass
    _fails(_fddb(fddb, tmp_path / "part.txt", tmp_path / "x_"), capsys, "pass --fold 3 5")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_fddb_nonfinite_score_is_an_error_or_an_explicit_drop(fddb, tmp_path, capsys, value):
    f = _rewrite(fddb["dets"], tmp_path / "d.txt", lambda ls: ls[:2] + [f"10 10 20 20 {value}"] + ls[3:])
    _fails(_fddb(fddb, f, tmp_path / "x_"), capsys, f"{f}:3:", "--drop-nonfinite")
    assert main(_fddb(fddb, f, tmp_path / "d_", "--drop-nonfinite")) == 0
    assert "left out 1 detection line(s) with a NaN or infinite value in 1 image(s)" in capsys.readouterr().err


def test_fddb_empty_detections_file_is_an_error(fddb, tmp_path, capsys):
    (tmp_path / "d.txt").write_text("")
    _fails(_fddb(fddb, tmp_path / "d.txt", tmp_path / "x_"), capsys, "no detections")


def test_fddb_nan_in_an_ellipse_list_is_an_error(fddb, tmp_path, capsys):
    folds = tmp_path / "FDDB-folds"
    shutil.copytree(fddb["folds"], folds)
    f = folds / "FDDB-fold-01-ellipseList.txt"
    lines = f.read_text().splitlines()
    lines[2] = "nan 10 1.5 50 50 1"
    f.write_text("\n".join(lines) + "\n")
    _fails(["dataset-info", "fddb", str(folds)], capsys, f"{f}:3:", "NaN")


# ------------------------------------------------------------------------------------------------ AFW / PASCAL
@pytest.fixture(scope="module")
def face_eval(tmp_path_factory):
    from rfcn_face.testing.synthetic_eval import write_synthetic_face_eval
    return write_synthetic_face_eval(tmp_path_factory.mktemp("fe"), num_images=6)


@pytest.mark.parametrize("bench", ["afw", "pascal"])
def test_face_eval_inverted_box_is_an_error(face_eval, tmp_path, capsys, bench):
    d = tmp_path / "d.txt"
    d.write_text(Path(face_eval["dets"]).read_text() + "synth_000.jpg 0.9 60 10 20 50\n")
    n = len(d.read_text().splitlines())
    _fails(["evaluate", bench, "--dets", str(d), "--gt", str(face_eval["gt"])], capsys, f"{d}:{n}:", "x2 < x1")


@pytest.mark.parametrize("bench", ["afw", "pascal"])
def test_face_eval_empty_file_is_an_error_not_ap_nan(face_eval, tmp_path, capsys, bench):
    (tmp_path / "d.txt").write_text("\n")
    line = _fails(["evaluate", bench, "--dets", str(tmp_path / "d.txt"), "--gt", str(face_eval["gt"])], capsys,
                  "no detections")
    assert "nan" not in line.lower().replace("nan or", "")


def test_face_eval_nonfinite_score_error_and_explicit_drop(face_eval, tmp_path, capsys):
    d = tmp_path / "d.txt"
    d.write_text("synth_000.jpg nan 10 10 50 60\n" + Path(face_eval["dets"]).read_text())
    _fails(["evaluate", "afw", "--dets", str(d), "--gt", str(face_eval["gt"])], capsys, f"{d}:1:")
    assert main(["evaluate", "afw", "--dets", str(d), "--gt", str(face_eval["gt"]), "--json",
                 str(tmp_path / "a.json"), "--drop-nonfinite"]) == 0
    assert "left out 1 detection line(s)" in capsys.readouterr().err
    assert main(["evaluate", "afw", "--dets", str(face_eval["dets"]), "--gt", str(face_eval["gt"]), "--json",
                 str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["ap"] == json.loads((tmp_path / "b.json").read_text())["ap"]


def test_face_eval_wrong_annotation_file_is_an_error(face_eval, tmp_path, capsys):
    d = tmp_path / "d.txt"
    d.write_text("other_1.jpg 0.9 10 10 50 60\nother_2.jpg 0.8 10 10 50 60\n")
    _fails(["evaluate", "pascal", "--dets", str(d), "--gt", str(face_eval["gt"])], capsys, "none of its 2 image names")


def test_face_eval_nan_face_in_the_annotations_is_an_error(tmp_path, capsys):
    import scipy.io
    dt = [("imgname", "O"), ("imgsize", "O"), ("objects", "O"), ("flags", "O")]
    ann = np.zeros((1, 1), dtype=dt)
    ann[0, 0]["imgname"] = np.array(["a.jpg"])
    ann[0, 0]["imgsize"] = np.array([[100], [100], [3]], dtype=float)
    ann[0, 0]["objects"] = np.array([[10, np.nan, 40, 50, 0, 0]], dtype=float)
    ann[0, 0]["flags"] = np.zeros((1, 1))
    scipy.io.savemat(str(tmp_path / "a.mat"), {"Annotations": ann})
    _fails(["dataset-info", "afw", str(tmp_path / "a.mat")], capsys, "entry 1 (a.jpg) row 1: NaN")


# ------------------------------------------------------------------------------------------------ search
@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    from rfcn_face.search import make_search_split
    d = make_search_split(40, 3, 20, 8, probes_per_id=2, dim=8, spread=0.4, seed=5)
    root = tmp_path_factory.mktemp("feats")
    for k in ("base", "base_labels", "probe", "probe_labels"):
        np.save(root / f"{k}.npy", d[k])
    return d, root


def _search(root, **files):
    argv = ["search"]
    for k in ("base", "base_labels", "probe", "probe_labels"):
        argv += [f"--{k.replace('_', '-')}", str(files.get(k, root / f"{k}.npy"))]
    return argv


def test_search_labels_of_another_dtype_are_an_error_not_top1_zero(feats, tmp_path, capsys):
    d, root = feats
    np.save(tmp_path / "pl.npy", d["probe_labels"].astype(str))
    _fails(_search(root, probe_labels=tmp_path / "pl.npy"), capsys, "dtype", "never compare equal")
    # integral float labels are the same identities: read as integers, the result is unchanged
    np.save(tmp_path / "pf.npy", d["probe_labels"].astype(np.float64))
    assert main(_search(root, probe_labels=tmp_path / "pf.npy") + ["--json", str(tmp_path / "f.json")]) == 0
    assert main(_search(root) + ["--json", str(tmp_path / "i.json")]) == 0
    a, b = json.loads((tmp_path / "f.json").read_text()), json.loads((tmp_path / "i.json").read_text())
    assert a["top1"] == b["top1"] > 0.5


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "inf")])
def test_search_nonfinite_features_are_an_error(feats, tmp_path, capsys, value, word):
    d, root = feats
    b = d["base"].copy()
    b[7, 3] = value
    np.save(tmp_path / "b.npy", b)
    _fails(_search(root, base=tmp_path / "b.npy"), capsys, f"{tmp_path / 'b.npy'}: row 7", word)


@pytest.mark.parametrize("which", ["base", "probe"])
def test_search_empty_set_is_an_error(feats, tmp_path, capsys, which):
    d, root = feats
    np.save(tmp_path / "x.npy", np.zeros((0, 8), np.float32))
    np.save(tmp_path / "l.npy", np.zeros(0, np.int64))
    _fails(_search(root, **{which: tmp_path / "x.npy", f"{which}_labels": tmp_path / "l.npy"}), capsys, "empty")


@pytest.mark.parametrize("flag,value", [("--heldout", "1.5"), ("--heldout", "0"), ("--rerank", "-1")])
def test_search_numeric_arguments_out_of_range(feats, capsys, flag, value):
    _, root = feats
    extra = ["--strategy", "ivfpq", "--nlist", "2", "--pq-m", "2", "--pq-nbits", "2"] if flag == "--rerank" else []
    _fails(_search(root) + extra + [flag, value], capsys, flag)


# ------------------------------------------------------------------------------------------------ arguments
def test_emo_grid_zero_and_out_naming_a_file(tmp_path, capsys):
    _fails(["emo", "--grid", "0", "--out", str(tmp_path / "e")], capsys, "--grid must be >= 1, got 0")
    _fails(["emo", "--grid", "9999", "--out", str(tmp_path / "e")], capsys, "--grid must be <= 5000, got 9999")
    (tmp_path / "f").write_text("x")
    _fails(["emo", "--out", str(tmp_path / "f")], capsys, "is a file, not a folder")


@pytest.mark.parametrize("flag,value", [("--nit", "0"), ("--minw", "-3"), ("--minh", "inf")])
def test_face_eval_numeric_arguments_out_of_range(face_eval, capsys, flag, value):
    _fails(["evaluate", "afw", "--dets", str(face_eval["dets"]), "--gt", str(face_eval["gt"]), flag, value], capsys,
           flag)


@pytest.mark.parametrize("yaml,key", [("anchors: {scales: [0, 32]}", "anchors.scales"),
                                      ("anchors: {scales: [-8]}", "anchors.scales"),
                                      ("anchors: {ratios: [0]}", "anchors.ratios"),
                                      ("anchors: {ratios: [-1, 1]}", "anchors.ratios")])
def test_yaml_anchor_scales_and_ratios_must_be_positive(tmp_path, capsys, yaml, key):
    (tmp_path / "row.yaml").write_text(yaml + "\n")
    _fails(["info", "--config", str(tmp_path / "row.yaml")], capsys, key)


def test_demo_out_naming_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    _fails(["demo", "--quick", "--out", str(tmp_path / "f")], capsys, "is a file, not a folder")


def test_export_out_naming_a_folder_is_an_error_before_loading(tmp_path, capsys):
    _fails(["export", "--run", str(tmp_path / "no_run"), "--out", str(tmp_path)], capsys, "names a folder")


def test_launch_checks_the_worker_command_before_starting_processes(tmp_path, capsys, monkeypatch):
    import rfcn_face.launch as L
    monkeypatch.setattr(L, "launch", lambda *a, **k: pytest.fail("no process may start for a bad command"))
    _fails(["launch", "--workers", "2", "--", "train", "--config", str(tmp_path / "no.yaml"), "--out",
            str(tmp_path / "r")], capsys, "no.yaml")
    _fails(["launch", "--workers", "2", "--", "train", "--kvstore", "local", "--out", str(tmp_path / "r")], capsys,
           "--kvstore local")
    _fails(["launch", "--workers", "2", "--", "test", "--run", "x"], capsys, "runs 'train'")


# ------------------------------------------------------------------------------------------------ FaceResNet CLI
def _frn_main(argv):
    from rfcn_face.recognition.train import main as frn
    return frn(argv)


FRN = ["--embedded", "--ids", "3", "--views", "3", "--train-views", "2", "--width", "0.125", "--batch-size", "3"]


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--width", "0"), ("--batch-size", "0"), ("--lr", "nan"),
                                        ("--lr", "0"), ("--ids", "1"), ("--holdout", "1.5")])
def test_frn_numeric_arguments_out_of_range(tmp_path, capsys, flag, value):
    _fails(FRN + ["--out", str(tmp_path / "o"), flag, value], capsys, flag, runner=_frn_main)
    assert not (tmp_path / "o").exists()


def test_frn_out_naming_a_file_and_no_mixed_runs(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    _fails(FRN + ["--out", str(tmp_path / "f")], capsys, "is a file", runner=_frn_main)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    _fails(FRN + ["--out", str(tmp_path / "busy")], capsys, "use --resume", runner=_frn_main)
    (tmp_path / "empty").mkdir()
    _fails(FRN + ["--out", str(tmp_path / "empty"), "--resume"], capsys, "no frn_config.json", runner=_frn_main)


def test_frn_checkpoints_resume_falls_back_from_a_truncated_newest(tmp_path, capsys):
    out = tmp_path / "run"
    assert _frn_main(FRN + ["--out", str(out), "--epochs", "2"]) == 0
    ckpts = sorted((out / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["iter-0000001", "iter-0000002"]
    assert json.loads((out / "last.json").read_text())["epoch"] == 2
    assert (out / "frn_config.json").is_file()
    capsys.readouterr()
    # a rerun without --resume refuses to mix runs; --resume with other arguments too
    _fails(FRN + ["--out", str(out), "--epochs", "3"], capsys, "use --resume", runner=_frn_main)
    _fails([a if a != "0.125" else "0.25" for a in FRN] + ["--out", str(out), "--epochs", "3", "--resume"], capsys,
           "width=0.125", runner=_frn_main)
    # truncate the newest checkpoint: --resume says so and continues from epoch 1
    net = ckpts[-1] / "model.net.params"
    net.write_bytes(net.read_bytes()[:100])
    assert _frn_main(FRN + ["--out", str(out), "--epochs", "3", "--resume"]) == 0
    o = capsys.readouterr().out
    assert "warning: checkpoint iter-0000002 does not load" in o and "trying the previous checkpoint" in o
    assert "resumed at epoch 1" in o
    hist = json.loads((out / "last.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_frn_interrupted_says_use_resume(tmp_path, capsys, monkeypatch):
    from rfcn_face.recognition import train as T

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(T.FRNTrainer, "fit", stop)
    _fails(FRN + ["--out", str(tmp_path / "o"), "--epochs", "1"], capsys, "interrupted", "--resume", code=130,
           runner=_frn_main)


# ------------------------------------------------------------------------------------------------ synthfaces
def test_synthfaces_root_naming_a_file(tmp_path, capsys):
    from rfcn_face.datasets.synthfaces import main as synth
    (tmp_path / "f").write_text("x")
    _fails(["--root", str(tmp_path / "f")], capsys, "is a file", runner=synth)


def test_synthfaces_stale_temporary_folders_are_cleaned(tmp_path):
    from rfcn_face.datasets import synthfaces as sf
    root = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / ".cache-killed_1"                  # names as tempfile.mkdtemp makes them
    stale.mkdir()
    (stale / sf.OWNER_FILE).write_text(dead)
    (stale / "WIDER_train").mkdir()
    old = tmp_path / ".cache-oldfold1"                    # no owner file (an older version's), an hour old
    old.mkdir()
    os.utime(old, (os.path.getmtime(old) - 3600,) * 2)
    live = tmp_path / ".cache-running1"
    live.mkdir()
    (live / sf.OWNER_FILE).write_text(str(os.getppid()))  # a process that is alive
    other = tmp_path / ".cache-userdat1"                  # not a generation folder: never touched
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    os.utime(other, (os.path.getmtime(other) - 3600,) * 2)
    sf.ensure_synthfaces(root, num_train=0, num_val=1)
    assert not stale.exists() and not old.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.glob(".cache-*")) == [live.name, other.name]
    assert (root / "synthfaces.json").is_file()


def test_synthfaces_killed_generation_is_cleaned_on_the_next_run(tmp_path):
    """A real generation killed half-way leaves its temporary folder; the next run removes it."""
    from rfcn_face.testing.processes import sigkill_when
    root = tmp_path / "set"
    env = dict(os.environ, RFCN_FACE_QUIET="1")
    p = subprocess.Popen([sys.executable, "-m", "rfcn_face.datasets.synthfaces", "--root", str(root),
                          "--num-train", "400", "--num-val", "0"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(p, lambda: bool(list(tmp_path.glob(".set-*/WIDER_train/images/*/*.jpg"))), timeout=120, poll=0.2)
    left = list(tmp_path.glob(".set-*"))
    assert left and not root.exists()
    from rfcn_face.datasets.synthfaces import main as synth
    assert synth(["--root", str(root), "--num-train", "0", "--num-val", "1"]) == 0
    assert not list(tmp_path.glob(".set-*")) and (root / "synthfaces.json").is_file()


# ------------------------------------------------------------------------------------------------ last resort
def test_internal_errors_are_one_line_and_traceback_on_request(monkeypatch, capsys):
    from rfcn_face.cli import info

    def boom(args):
        raise RuntimeError("unexpected\nsecond line")
    monkeypatch.setattr(info, "run", boom)
    assert main(["info"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: internal error in info: RuntimeError: unexpected; set RFCN_FACE_TRACEBACK=1 for the "
                   "traceback"]
    monkeypatch.setenv("RFCN_FACE_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        main(["info"])


def test_failures_with_an_exit_code_are_one_line_with_that_code(monkeypatch, capsys):
    """TrainingDiverged (exit 3, both training loops) and a failed launched job (its own code): one error line."""
    from rfcn_face.checkpoint import TrainingDiverged
    from rfcn_face.cli import info
    from rfcn_face.recognition.train import TrainingDiverged as FRNDiverged
    from rfcn_face.reproduce import JobFailed
    assert FRNDiverged is TrainingDiverged
    for exc, code in ((TrainingDiverged("loss is NaN at iteration 7"), 3), (JobFailed("the job failed", 5), 5)):
        monkeypatch.setattr(info, "run", lambda args, exc=exc: (_ for _ in ()).throw(exc))
        assert main(["info"]) == code
        assert capsys.readouterr().err.strip().splitlines() == [f"error: {exc}"]


def test_argparse_errors_end_with_an_error_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["emo", "--grid", "abc"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: python -m rfcn_face emo: argument --grid: --grid must be an integer, got 'abc'"


def test_os_errors_name_the_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    _fails(["emo", "--out", str(tmp_path / "f" / "sub"), "--no-plots"], capsys, str(tmp_path / "f" / "sub"),
           f"{tmp_path / 'f'} is a file, where a folder is needed")
    _fails(["info", "--json", str(tmp_path)], capsys, f"{tmp_path}: Is a directory")
