"""The benchmark registry (:mod:`rfcn_face.benchmarks`): the six benchmarks and their look-up, each protocol's
writer on hand-built detections (literal files), the evaluator's reset / process / evaluate, Sec. 5.2's
original-size rule, a subclass registered under a new name is a working benchmark, and a user benchmark from a
module outside the library (``tests/toy_benchmark.py``) run end to end through ``--import``."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rfcn_face.benchmarks import (BENCHMARKS, Afw, Benchmark, Evaluator, Fddb, SynthfacesVal, TestSet, WiderVal,
                                  get_benchmark, register, reproduced_benchmarks, val_benchmark)
from rfcn_face.datasets.record import FaceRecord

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
FAST = ["--sizes", "128x128", "--no-progress"]
NO_ELLIPSES = SimpleNamespace(ellipses=False, ellipse_regressor=None)


@pytest.fixture()
def registered():
    """Register classes under test names for one test, then remove them (the session's registry stays clean)."""
    names = []

    def add(name, cls):
        register(name)(cls)
        names.append(name)
        return cls
    yield add
    for n in names:
        BENCHMARKS.pop(n, None)


# ------------------------------------------------------------------------------------------------ registry
def test_the_six_benchmarks_their_lookup_and_the_val_split_of_each_training_set():
    assert list(BENCHMARKS) == ["wider-val", "wider-test", "fddb", "afw", "pascal", "synthfaces-val"]
    assert [b.name for b in reproduced_benchmarks()] == ["wider-val", "wider-test", "fddb", "afw", "pascal"]
    assert isinstance(get_benchmark("afw"), Afw) and get_benchmark("afw").title == "AFW"
    with pytest.raises(ValueError, match=r"--dataset: unknown benchmark 'celeba'; known: wider-val, wider-test, fddb, "
                                         r"afw, pascal, synthfaces-val \(--import MODULE"):
        get_benchmark("celeba")
    assert val_benchmark("wider").name == "wider-val" and val_benchmark("synthfaces").name == "synthfaces-val"
    with pytest.raises(ValueError, match="data.dataset 'celeba'"):
        val_benchmark("celeba")
    assert [b.name for b in BENCHMARKS.values() if b.paper_tables] == ["wider-val"]      # Tables 1 / 2


def test_original_size_for_fddb_afw_pascal_and_the_runs_own_size_for_wider():
    """Sec. 5.2: AFW, PASCAL Faces and FDDB are tested at original size; WIDER FACE at the run's test size(s)."""
    from rfcn_face.config import load_config
    cfg = load_config(EXP / "table1" / "13_final.yaml", overrides=("test.sizes=[[600,1000]]",))
    for name in ("fddb", "afw", "pascal"):
        assert get_benchmark(name).default_sizes(cfg) == [[0, 0]]
    for name in ("wider-val", "wider-test"):
        assert get_benchmark(name).default_sizes(cfg) == [[600, 1000]]
    pyr = load_config(EXP / "table1" / "13_final.yaml", overrides=("test.pyramid=true",
                                                                    "test.pyramid_sizes=[[300,500],[900,1500]]"))
    assert get_benchmark("wider-val").default_sizes(pyr) == [[300, 500], [900, 1500]]
    assert get_benchmark("fddb").reproduce_options == {"ellipses": True} and get_benchmark("fddb").takes_ellipses
    assert not any(get_benchmark(n).takes_ellipses for n in BENCHMARKS if n != "fddb")


# ------------------------------------------------------------------------------------------------ evaluator shape
class _CountingEvaluator(Evaluator):
    def score(self):
        return {"images": len(self.predictions), "boxes": sum(len(p[1]) for p in self.predictions.values())}


class _Seen(Benchmark):
    """Writes nothing; its 'files' are the indices it was given."""
    evaluator_class = _CountingEvaluator

    def write_files(self, ts, predictions, out, opts):
        return {"indices": sorted(predictions)}


def test_reset_forgets_processed_images_and_evaluate_writes_then_scores(tmp_path):
    b = _Seen()
    ts = TestSet("x", [FaceRecord(f"/i/{k}.jpg") for k in range(3)], tmp_path, benchmark=b)
    ev = b.evaluator(ts, tmp_path, None, log=lambda s: None)
    one = (np.zeros((1, 4)), np.ones(1), (8, 8))
    ev.process(0, one)
    ev.process(1, one)
    ev.reset()
    assert ev.predictions == {} and ev.files == {}
    ev.process(2, (np.zeros((2, 4)), np.ones(2), (8, 8)))
    ev.process(0, one)
    ev.process(0, (np.zeros((3, 4)), np.ones(3), (8, 8)))        # the same image again: the last one counts
    assert ev.evaluate() == {"images": 2, "boxes": 5} and ev.files == {"indices": [0, 2]}


# ------------------------------------------------------------------------------------------------ writers
def test_wider_writer_one_file_per_image_best_first_and_none_for_an_unreadable_one(tmp_path):
    b = WiderVal()
    recs = [FaceRecord("/d/0--Parade/a.jpg", event="0--Parade", name="a"),
            FaceRecord("/d/1--Handshaking/b.jpg", event="1--Handshaking", name="b")]
    ts = TestSet(b.name, recs, tmp_path, benchmark=b)
    pred = {0: (np.array([[10.0, 20.0, 40.0, 60.0], [1.5, 2.0, 3.0, 4.5]]), np.array([0.25, 0.9]), (99, 99))}
    files = b.write_files(ts, pred, tmp_path / "o", None)
    assert files == {"predictions": str(tmp_path / "o" / "predictions")}
    assert (tmp_path / "o/predictions/0--Parade/a.txt").read_text() == "a\n2\n1.5 2 1.5 2.5 0.9\n10 20 30 40 0.25\n"
    assert (tmp_path / "o/predictions/1--Handshaking/b.txt").read_text() == "b\n0\n"
    assert ts.display_name(1) == "1--Handshaking/b.jpg"


def test_face_eval_writer_in_toolbox_coordinates_named_after_the_registered_name(tmp_path, registered):
    """A subclass of AFW under another name reads AFW's folder and writes files named after itself."""
    copy = registered("afw-copy", type("AfwCopy", (Afw,), {}))()
    assert copy.required_paths(tmp_path)[1] == tmp_path / "afw" / "images"
    ts = TestSet(copy.name, [FaceRecord("/x/p.jpg"), FaceRecord("/x/q.jpg"), FaceRecord("/x/r.jpg")], tmp_path,
                 benchmark=copy)
    pred = {0: (np.array([[10.0, 20.0, 40.0, 60.5]]), np.array([0.5]), (99, 99)),
            1: (np.zeros((0, 4)), np.zeros(0), (99, 99))}                   # r.jpg unreadable: not in pred
    files = copy.write_files(ts, pred, tmp_path, None)
    assert files == {"dets": str(tmp_path / "afw-copy_dets.txt")}
    assert (tmp_path / "afw-copy_dets.txt").read_text() == "p.jpg 0.5 11.0 21.0 40.0 60.5\n"   # x1 + 1, y1 + 1


def test_fddb_writer_one_file_per_fold_in_x_y_w_h_score(tmp_path):
    from rfcn_face.evaluation.fddb_format import read_fddb_detections
    b = Fddb()
    recs = [FaceRecord("/f/a.jpg", event="fold-01", name="2002/08/11/big/img_1"),
            FaceRecord("/f/b.jpg", event="fold-02", name="2002/08/11/big/img_2"),
            FaceRecord("/f/c.jpg", event="fold-01", name="2002/08/11/big/img_3")]
    ts = TestSet(b.name, recs, tmp_path, benchmark=b)
    pred = {0: (np.array([[10.0, 20.0, 40.0, 60.0]]), np.array([0.8]), (99, 99)),
            2: (np.array([[0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 2.0, 3.0]]), np.array([0.1, 0.3]), (99, 99))}
    files, rect, ellipses = b.write_detections(ts, pred, tmp_path, NO_ELLIPSES)
    assert ellipses is None and set(files) == {"folds", "dets"}
    assert files["folds"] == [str(tmp_path / "fddb" / "fold-01-out.txt"), str(tmp_path / "fddb" / "fold-02-out.txt")]
    f1 = read_fddb_detections(tmp_path / "fddb" / "fold-01-out.txt")
    assert [d.name for d in f1] == ["2002/08/11/big/img_1", "2002/08/11/big/img_3"]
    np.testing.assert_array_equal(f1[0].dets, [[10, 20, 30, 40, 0.8]])
    np.testing.assert_array_equal(f1[1].dets, [[0, 0, 5, 5, 0.1], [1, 1, 1, 2, 0.3]])
    f2 = read_fddb_detections(tmp_path / "fddb" / "fold-02-out.txt")
    assert [d.name for d in f2] == ["2002/08/11/big/img_2"] and len(f2[0].dets) == 0      # unreadable: none
    assert len(read_fddb_detections(tmp_path / "fddb" / "dets.txt")) == 3 and ts.display_name(1) == recs[1].name


def test_summary_lines_and_report_cells():
    fddb = {"rect": {"tpr_disc_1000fp": 0.5, "tpr_cont_1000fp": 0.25}, "plot": "r.png"}
    assert Fddb().summary_lines(fddb) == ["rect: TPR at 1000 FP discrete 0.5000, continuous 0.2500"]
    assert Fddb().report_cells({"evaluation": {}, "out": "o"})[0] == "not evaluated"
    assert WiderVal().summary_lines({"easy": 0.5, "medium": None, "hard": 0.125}) == \
        ["AP easy 0.500  medium —  hard 0.125"]
    assert WiderVal().summary_lines({"submission_problems": []}) == []          # not scored (no ground truth)
    assert get_benchmark("pascal").summary_lines({"ap": 0.71234}) == ["AP 0.7123"]
    assert get_benchmark("wider-test").report_cells({"verified": False, "submission_problems": ["x", "y"],
                                                     "zip": "z.zip"}) == ("submission zip 2 problem(s)", "`z.zip`")


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def trained(run_dir):
    pytest.importorskip("mxnet")
    return run_dir


def test_a_subclass_under_a_new_name_is_a_working_benchmark(tmp_path, trained, registered):
    from rfcn_face.__main__ import main
    registered("synth-copy", type("SynthCopy", (SynthfacesVal,), {}))
    res = {}
    for name in ("synthfaces-val", "synth-copy"):
        assert main(["test", "--run", str(trained), "--dataset", name, "--limit", "4", "--out", str(tmp_path / name)]
                    + FAST) == 0
        res[name] = json.loads((tmp_path / name / "results.json").read_text())
    a, b = (tmp_path / n / "predictions" for n in ("synthfaces-val", "synth-copy"))
    files = sorted(p.relative_to(a) for p in a.rglob("*.txt"))
    assert len(files) == 4 and files == sorted(p.relative_to(b) for p in b.rglob("*.txt"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert res["synth-copy"]["dataset"] == "synth-copy"
    for s in ("easy", "medium", "hard"):
        assert res["synth-copy"]["evaluation"][s] == res["synthfaces-val"]["evaluation"][s]


def _toy_root(root: Path, n: int = 3):
    """ROOT/toy/: the first n synthfaces val images and their (non-ignored) face boxes."""
    import shutil
    from rfcn_face.datasets.synthfaces import ensure_synthfaces
    from rfcn_face.datasets.wider import wider_split_records
    base = ensure_synthfaces()
    recs = wider_split_records(base, "val")[:n]
    (root / "toy" / "images").mkdir(parents=True)
    spec = []
    for r in recs:
        shutil.copy(r.image_path, root / "toy" / "images" / f"{r.name}.jpg")
        spec.append({"file": f"{r.name}.jpg", "boxes": r.boxes[~r.ignore].tolist()})
    (root / "toy" / "boxes.json").write_text(json.dumps({"images": spec}))
    return spec


def _iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, iw) * max(0.0, ih)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_a_user_benchmark_from_outside_the_library_through_import(tmp_path, trained):
    """tests/toy_benchmark.py registers 'toy-boxes' (its own records, file and recall evaluator): ``test --import``
    runs it end to end, and ``reproduce --benchmarks --import`` plans it; the library knows nothing of it."""
    assert "toy-boxes" not in BENCHMARKS and "toy_benchmark" not in sys.modules
    spec = _toy_root(tmp_path / "data")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rfcn_face"]
    out = tmp_path / "out"
    r = subprocess.run(cmd + ["test", "--run", str(trained), "--dataset", "toy-boxes", "--import", "toy_benchmark",
                              "--data", str(tmp_path / "data"), "--out", str(out), "--set", "test.score_thresh=0.0"]
                       + FAST, cwd=ROOT / "tests", env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "toy recall at IoU 0.5:" in r.stdout + r.stderr
    s = json.loads((out / "results.json").read_text())
    assert s["dataset"] == "toy-boxes" and s["images"] == s["detected"] == 3 and s["files"]["dets"].endswith(
        "toy_dets.json")
    # the written file holds the cached detections; the recall is that of the file, by a slow reference
    written = json.loads((out / "toy_dets.json").read_text())
    found = faces = 0
    for i, e in enumerate(spec):
        with np.load(Path(s["cache"]) / f"{i:07d}.npz") as z:
            np.testing.assert_array_equal(np.asarray(written[e["file"]]).reshape(-1, 5),
                                          np.concatenate([z["boxes"], z["scores"][:, None]], 1))
        for g in e["boxes"]:
            faces += 1
            found += any(d[4] >= 0.05 and _iou(g, d[:4]) >= 0.5 for d in written[e["file"]])
    assert faces > 0 and s["evaluation"] == {"recall": found / faces, "faces": faces}
    r = subprocess.run(cmd + ["reproduce", "--benchmarks", "--dry-run", "--run", str(trained), "--data",
                              str(tmp_path / "data"), "--out", str(tmp_path / "R"), "--import", "toy_benchmark"],
                       cwd=ROOT / "tests", env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    assert f"[toy-boxes] data {tmp_path / 'data'}" in text and "--dataset toy-boxes" in text
    assert "[afw] skipped: not found" in text


def test_bad_import_and_unknown_dataset_are_one_line_errors(tmp_path, capsys):
    from rfcn_face.__main__ import main
    for extra, msg in ((["--import", "no_such_module_xyz"], "--import: cannot import module 'no_such_module_xyz'"),
                       (["--dataset", "celeba"], "--dataset: unknown benchmark 'celeba'")):
        argv = ["test", "--run", str(tmp_path / "nope"), "--dataset", "synthfaces-val", "--out",
                str(tmp_path / "o")] + extra
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and msg in err[0], err
