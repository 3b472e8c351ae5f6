"""``reproduce``: the dry run lists every row of the experiments folder with its commands and a FLOP-based
GPU-hour estimate; a quick run writes the tables and skips finished steps; a two-row run killed after its first
row continues without redoing it (slow); the benchmark files of one run (WIDER test zip, FDDB, AFW; a missing
benchmark skipped); the paper's packaged PR curve; Fig. 10."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("mxnet")

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.testing.processes import sigkill_when  # noqa: E402
from rfcn_face.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
T1 = sorted((EXP / "table1").glob("*.yaml"))
T2 = sorted((EXP / "table2").glob("*.yaml"))
QUICK = ["--preset", "smoke", "--set", "train.max_size=128", "--max-iters", "2", "--limit", "3", "--no-progress"]


def printed_text(capsys) -> str:
    """What a command printed: its results (stdout) and its messages (stderr, the project's logger)."""
    o = capsys.readouterr()
    return o.out + o.err


def _yaml(p):
    return yaml.safe_load(p.read_text())


def _is_pyramid(p):
    return bool((_yaml(p).get("test") or {}).get("pyramid"))


def _size(s):
    return f"{s[0]}x{s[1]}"


def _blocks(text):
    """{row id: its lines} of a printed plan."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            cur = line[1:line.index("]")]
            out[cur] = [line]
        elif line.startswith("     ") and cur is not None:
            out[cur].append(line)
        else:
            cur = None
    return out


def _section_of(text, row_id):
    sec = None
    for line in text.splitlines():
        if line.startswith("== "):
            sec = line
        if line.startswith(f"[{row_id}]"):
            return sec
    return None


# ------------------------------------------------------------------------------------------------ dry run
@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dry")
    cwd = os.getcwd()
    os.chdir(ROOT)                       # paths print relative to the working directory
    try:
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["reproduce", "--dry-run", "--table", "all", "--out", str(tmp / "R"), "--data",
                       str(tmp / "nothing"), "--json", str(tmp / "plan.json")])
    finally:
        os.chdir(cwd)
    assert rc == 0
    return buf.getvalue(), json.loads((tmp / "plan.json").read_text()), tmp


def test_dry_run_lists_every_row_of_the_experiments_folder_with_its_commands(dry_run):
    text, plan, tmp = dry_run
    blocks = _blocks(text)
    assert len(plan["rows"]) == len(T1) + len(T2) == len(blocks)
    out = tmp / "R"
    for p in T1:
        rid = p.stem.split("_")[0]
        rel = f"experiments/table1/{p.name}"
        b = "\n".join(blocks[rid])
        assert rel in blocks[rid][0]                                      # the header names the row's YAML
        assert (f"train: python -m rfcn_face train --config {rel} --preset paper --set data.root={tmp / 'nothing'} "
                f"--out {out}/runs/{p.stem}") in b
        sizes = load_config(p).test.pyramid_sizes if _is_pyramid(p) else load_config(p).test.sizes
        assert (f"test:  python -m rfcn_face test --run {out}/runs/{p.stem} --dataset wider-val --data "
                f"{tmp / 'nothing'} --out {out}/tests/{p.stem} --sizes {' '.join(_size(s) for s in sizes)}") in b
        assert f"--pred {out}/tests/{p.stem}/predictions" in b and "GPU-hours: train" in b
        assert _section_of(text, rid) == ("== Table 1, pyramid rows ==" if _is_pyramid(p) else "== Table 1 ==")
    for p in T2:
        d = _yaml(p)
        base = Path(os.path.normpath(p.parent / d["_BASE_"]))
        b = "\n".join(blocks[p.stem])
        assert f"experiments/table2/{p.name}" in blocks[p.stem][0]
        assert "--config experiments/table2" not in b                     # trained once, as the row it is based on
        assert f"shared with row [{base.stem.split('_')[0]}] ({out}/runs/{base.stem})" in b
        assert (f"test --run {out}/runs/{base.stem} --dataset wider-val --data {tmp / 'nothing'} --out "
                f"{out}/tests/{p.stem} --sizes {' '.join(_size(s) for s in d['test']['sizes'])}") in b
        assert _section_of(text, p.stem).startswith("== Table 2")
    assert not out.exists()                                               # a dry run writes nothing
    # only the annotations / nothing present: it says what is missing
    nothing = tmp / "nothing"
    assert f"WIDER FACE train annotations: {nothing}/widerface/wider_face_split/wider_face_train_bbx_gt.txt" in text
    assert "ImageNet checkpoint (model.pretrained): data/pretrained/resnet_v1_101-0000.params" in text


def test_dry_run_json_rows_paper_numbers_and_shared_trainings(dry_run):
    _, plan, _ = dry_run
    rows = {r["yaml"]: r for r in plan["rows"]}
    for p in T1 + T2:
        r = rows[str(p.relative_to(ROOT))]
        paper = _yaml(p).get("paper", {})
        assert {k: v for k, v in r["paper"].items() if v is not None} == paper
    shared = [r for r in plan["rows"] if r["shared_training"]]
    assert sorted(r["yaml"] for r in shared) == sorted(str(p.relative_to(ROOT)) for p in T2)
    assert plan["trainings"] == len(plan["rows"]) - len(T2)
    assert all(r["estimate"]["train_gpu_hours"] == 0.0 for r in shared)   # their training is counted once
    assert plan["total"]["gpu_hours"] == pytest.approx(sum(r["estimate"]["gpu_hours"] for r in plan["rows"]))


def test_gpu_hours_are_three_forward_passes_of_every_train_image(dry_run):
    from symbols.flops import config_gflops
    from rfcn_face.reproduce import TYPICAL_IMAGE_HW, WIDER_TRAIN_IMAGES, WIDER_VAL_IMAGES
    _, plan, _ = dry_run
    rows = {r["id"]: r for r in plan["rows"]}
    for rid, p in (("01", T1[0]), ("13", [q for q in T1 if q.stem.startswith("13")][0])):
        cfg = load_config(p, preset="paper")
        g = config_gflops(cfg, *TYPICAL_IMAGE_HW)
        est = rows[rid]["estimate"]
        assert est["train_gflops"] == pytest.approx(g)
        assert est["train_images"] == WIDER_TRAIN_IMAGES * cfg.train.epochs
        assert est["train_gpu_hours"] == pytest.approx(3 * g * WIDER_TRAIN_IMAGES * cfg.train.epochs / 5e3 / 3600)
        assert est["test_gpu_hours"] == pytest.approx(g * WIDER_VAL_IMAGES / 5e3 / 3600)   # original size
    assert rows["13"]["estimate"]["train_gpu_hours"] > 3 * rows["01"]["estimate"]["train_gpu_hours"]  # DC: stride 8
    t2 = sorted((r for r in plan["rows"] if r["group"] == "2"), key=lambda r: r["sizes"][0][0])
    costs = [r["estimate"]["test_gpu_hours"] for r in t2]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)          # bigger test size, more FLOPs


def test_dry_run_with_only_the_real_annotations(shared_data, tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / "widerface").symlink_to(shared_data / "widerface")
    assert main(["reproduce", "--dry-run", "--table", "2", "--data", str(root), "--out", str(tmp_path / "R")]) == 0
    text = printed_text(capsys)
    missing = [l for l in text.splitlines() if l.startswith("  - ")]
    assert any("WIDER FACE train images" in l for l in missing) and any("val images" in l for l in missing)
    assert any("wider_face_train_bbx_gt.txt (found wider_face_train_bbx_gt_7col" in l for l in missing)
    assert not any("val annotations" in l or "ground truth" in l for l in missing)     # those are present
    assert len(_blocks(text)) == len(T2) and not (tmp_path / "R").exists()


def test_dry_run_resumes_a_partial_training_and_reads_a_wider_layout_root(tmp_path, capsys):
    """A partial run folder's train command carries --resume (as run, it would refuse the folder otherwise);
    a root that itself holds wider_face_split/ is read as the test step reads it (datasets.wider.wider_base)."""
    root = tmp_path / "wider"
    (root / "wider_face_split").mkdir(parents=True)
    (root / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text("")
    out = tmp_path / "R"
    (out / "runs" / "01_baseline").mkdir(parents=True)
    (out / "runs" / "01_baseline" / "config.yaml").write_text("name: x\n")       # started, no checkpoint yet
    args = ["reproduce", "--dry-run", "--table", "1", "--rows", "01,13", "--data", str(root), "--out", str(out),
            "--json", str(tmp_path / "p.json")]
    assert main(args) == 0
    text = printed_text(capsys)
    rows = {r["id"]: r for r in json.loads((tmp_path / "p.json").read_text())["rows"]}
    assert rows["01"]["train_status"]["status"] == "partial" and rows["01"]["commands"]["train"].endswith(" --resume")
    assert rows["13"]["train_status"]["status"] == "new" and "--resume" not in rows["13"]["commands"]["train"]
    missing = [l for l in text.splitlines() if l.startswith("  - ")]
    assert not any("val annotations" in l or "holds widerface" in l for l in missing)
    assert any(f"WIDER FACE val images: {root}/WIDER_val/images" in l for l in missing)
    assert f"--gt {root}/ground_truth" in rows["01"]["commands"]["evaluate"]


def test_dry_run_options_change_the_commands_and_the_estimate(tmp_path, capsys):
    args = ["reproduce", "--dry-run", "--table", "1", "--rows", "1", "--out", str(tmp_path / "R"), "--json",
            str(tmp_path / "p.json")]
    assert main(args) == 0
    base = json.loads((tmp_path / "p.json").read_text())["rows"][0]
    assert main(args + ["--gpus", "0,1,2,3", "--gpu-tflops", "10", "--max-iters", "100", "--pretrained", "/w/r.params",
                        "--workers", "2"]) == 0
    text = printed_text(capsys)
    r = json.loads((tmp_path / "p.json").read_text())["rows"][0]
    assert "python -m rfcn_face launch --workers 2 --servers 1 -- train --config" in text
    assert "--pretrained /w/r.params --gpus 0,1,2,3 --max-iters 100" in r["commands"]["train"]
    assert "--gpus 0,1,2,3" in r["commands"]["test"]
    assert r["estimate"]["train_images"] == 100 * 4 * 2                     # iterations x GPUs x workers
    per_image = base["estimate"]["train_gpu_hours"] / base["estimate"]["train_images"]
    assert r["estimate"]["train_gpu_hours"] == pytest.approx(per_image * 800 / 2)   # twice the TFLOP/s
    assert "ImageNet checkpoint (model.pretrained): /w/r.params" in text


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    cases = [(["--rows", "99"], "no row '99' in --table all"),
             (["--table", "2", "--rows", "01"], "no row '01' in --table 2"),
             (["--data", "a", "b"], "give one --data ROOT for the tables"),
             (["--benchmarks"], "--benchmarks needs --run"),
             (["--run", "x"], "--run applies to --benchmarks only"),
             (["--out", str(f)], "is a file, not a folder"),
             (["--experiments", str(tmp_path)], "no table1/ folder"),
             (["--preset", "nosuch"], "unknown preset 'nosuch'")]
    for extra, msg in cases:
        assert main(["reproduce", "--dry-run"] + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err, (extra, err)
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--table", "3"])
    assert e.value.code == 2


def test_row_selection_follows_the_folder():
    from rfcn_face.reproduce import discover_rows, select_rows
    rows = discover_rows()
    assert [r.id for r in select_rows(rows, "1", "1,13")] == ["01", "13"]
    assert [r.path for r in select_rows(rows, "pyramid")] == [p for p in T1 if _is_pyramid(p)]
    assert [r.path for r in select_rows(rows, "1")] == [p for p in T1 if not _is_pyramid(p)]
    t2 = select_rows(rows, "2")
    assert sorted(r.path for r in t2) == T2
    assert [r.sizes for r in t2] == sorted(r.sizes for r in t2)              # Table 2 order: by test size
    assert select_rows(rows, "2", [t2[0].stem]) == [t2[0]]


# ------------------------------------------------------------------------------------------------ FLOPs
def test_symbol_gflops_counts_convolutions_by_hand():
    import mxnet as mx
    from symbols.flops import symbol_gflops
    x = mx.sym.var("data")
    c = mx.sym.Convolution(x, kernel=(3, 3), pad=(1, 1), stride=(2, 2), num_filter=4, no_bias=True, name="c")
    d = mx.sym.Deconvolution(c, kernel=(4, 4), stride=(2, 2), pad=(1, 1), num_filter=2, no_bias=True, name="d")
    y = mx.sym.Convolution(mx.sym.relu(d), kernel=(1, 1), num_filter=5, num_group=1, name="e")
    # conv 4x3x3x3 at 5x6 outputs; deconv (4, 2, 4, 4) over its 5x6 inputs; 1x1 conv 5x2 at 10x12
    expected = 2 * (4 * 3 * 9 * 5 * 6 + 4 * 2 * 16 * 5 * 6 + 5 * 2 * 10 * 12)
    assert symbol_gflops(y, {"data": (1, 3, 10, 12)}) == pytest.approx(expected / 1e9)


def test_network_gflops_scale_with_pixels_and_stride():
    from symbols.flops import config_gflops
    b = load_config(T1[0], overrides=["model.depth=18"])
    dc = load_config([p for p in T1 if p.stem.startswith("04")][0], overrides=["model.depth=18"])
    g1, g4 = config_gflops(b, 304, 400), config_gflops(b, 608, 800)
    assert 3.9 < g4 / g1 < 4.1                                               # all fully convolutional
    assert 2.5 < config_gflops(dc, 608, 800) / g4 < 4.0                      # res4 / res5 at stride 8


def test_bench_detect_uses_the_library_flop_counter():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_detect
        import symbols.flops
        assert bench_detect.gflops is symbols.flops.gflops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


# ------------------------------------------------------------------------------------------------ paper curve
def test_packaged_paper_curve_is_the_final_pyramid_row():
    from rfcn_face.evaluation.voc import voc_ap
    from rfcn_face.reproduce import PUBLISHED_CURVES, paper_published_baseline
    assert PUBLISHED_CURVES.stat().st_size < 20_000
    b = paper_published_baseline()
    assert "Zhu" in b.legend and set(b.ap) == {"easy", "medium", "hard"}
    paper = _yaml([p for p in T1 if _is_pyramid(p) and "final" in p.stem][0])["paper"]
    for s in ("easy", "medium", "hard"):
        assert abs(b.ap[s] - paper[s]) < 1e-3        # ZCC = Final+Pyramid of Table 1 (medium: 0.9338 vs 0.933)
        r, p = b.recall[s], b.precision[s]
        assert np.all(np.diff(r) >= 0) and np.all((0 <= p) & (p <= 1)) and len(r) < 400
        assert abs(voc_ap(r, p) - b.ap[s]) < 3e-3                             # the thinned curve keeps the shape


def test_packaged_paper_curve_converts_from_the_official_mat_files(shared_data, tmp_path):
    from rfcn_face.evaluation.plots import read_pr_info
    from rfcn_face.reproduce import PUBLISHED_CURVES, convert_published_curves
    zcc = shared_data / "widerface" / "eval_tools_baselines" / "Val" / "setting_int" / "ZCC"
    fresh = convert_published_curves(zcc, tmp_path / "z.json")
    assert fresh == json.loads(PUBLISHED_CURVES.read_text())
    for s, c in fresh["settings"].items():
        full, _ = read_pr_info(zcc / f"wider_pr_info_ZCC_{s}_val.mat")
        np.testing.assert_allclose(np.c_[c["precision"], c["recall"]], full[c["indices"]], atol=5e-7)


# ------------------------------------------------------------------------------------------------ tables, Fig. 10
def test_tables_put_ours_beside_the_paper(tmp_path):
    from rfcn_face.reproduce import MARKER, discover_rows, resolve_rows, write_tables
    rows = resolve_rows(discover_rows(), "smoke")
    rng = np.random.default_rng(0)
    picked = [r for r in rows if r.id == "13"] + [r for r in rows if r.group == "2"][:1]
    for r in picked:
        ap = {s: float(rng.uniform(0.1, 0.9)) for s in ("easy", "medium", "hard")}
        d = tmp_path / "tests" / r.stem
        d.mkdir(parents=True)
        (d / MARKER).write_text(json.dumps({"ap": ap, "preset": "paper", "iterations": 8, "schedule": 8,
                                            "overrides": [], "setup": {"dataset": "wider-val", "limit": 0}}))
        r.ap = ap
    docs = write_tables(rows, tmp_path)
    t1 = {e["id"]: e for e in docs["1"]["rows"]}
    assert len(t1) == len(T1) and t1["13"]["run"].endswith("runs/13_final")
    for s in ("easy", "medium", "hard"):
        assert t1["13"]["diff"][s] == pytest.approx(picked[0].ap[s] - picked[0].paper[s])
    assert t1["01"]["ours"] is None and t1["01"]["run"] is None
    md = (tmp_path / "table1.md").read_text()
    line = [l for l in md.splitlines() if l.startswith("| 13 |")][0]
    assert f"{picked[0].ap['hard']:.3f}" in line and f"{picked[0].ap['hard'] - picked[0].paper['hard']:+.3f}" in line
    assert "paper setup" in line and "| 01 | Baseline |" in md and "not run" in md
    t2 = docs["2"]["rows"]
    assert [e["sizes"] for e in t2] == sorted(e["sizes"] for e in t2)
    assert t2[0]["run"].endswith("runs/13_final")                           # tested on the Final row's training
    assert t2[0]["diff"]["hard"] == pytest.approx(picked[1].ap["hard"] - picked[1].paper["hard"])
    assert t2[0]["diff"]["easy"] is None                                     # the paper gives Hard only
    assert json.loads((tmp_path / "table2.json").read_text()) == docs["2"]


def test_speed_accuracy_figure_and_table(tmp_path):
    from rfcn_face.reproduce import SpeedPoint, speed_accuracy
    pts = [SpeedPoint("1400x1800", 0.83, 900.0, 4186.0, 4186.0 / 5),
           SpeedPoint("600x1000", 0.75, 200.0, 826.0, 826.0 / 5),
           SpeedPoint("800x1200", 0.81, None, 1475.0, 1475.0 / 5)]
    doc = speed_accuracy(pts, tmp_path, gpu_tflops=5.0)
    assert [p["label"] for p in doc["points"]] == ["600x1000", "800x1200", "1400x1800"]
    assert (tmp_path / "fig10.png").stat().st_size > 0
    lines = [l for l in (tmp_path / "fig10.md").read_text().splitlines() if l.startswith("| ") and "x" in l[:12]]
    assert lines[0].startswith("| 600x1000 | 0.750 | 200 | 826 | 165 |")
    assert lines[1].startswith("| 800x1200 | 0.810 | — |")
    with pytest.raises(ValueError):
        speed_accuracy([], tmp_path)


# ------------------------------------------------------------------------------------------------ a quick run
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Row 13 (the Final model) on synthfaces, smoke preset, 2 iterations, 3 val images."""
    out = tmp_path_factory.mktemp("repro") / "R"
    assert main(["reproduce", "--table", "1", "--rows", "13", "--out", str(out),
                 "--set", "test.sizes=[[128,128]]"] + QUICK) == 0
    return out


def test_quick_run_trains_tests_and_writes_the_tables(quick):
    m = json.loads((quick / "tests" / "13_final" / "reproduce.json").read_text())
    res = json.loads((quick / "tests" / "13_final" / "results.json").read_text())
    assert m["ap"] == {s: res["evaluation"][s] for s in ("easy", "medium", "hard")}
    assert m["setup"]["sizes"] == [[128, 128]] and m["setup"]["dataset"] == "synthfaces-val" and m["images"] == 3
    state = json.loads(sorted((quick / "runs" / "13_final" / "checkpoints").glob("iter-*/state.json"))[-1].read_text())
    assert state["iteration"] == 2 == m["iterations"]
    t1 = {e["id"]: e for e in json.loads((quick / "table1.json").read_text())["rows"]}
    assert t1["13"]["ours"] == m["ap"] and sum(e["ours"] is not None for e in t1.values()) == 1
    md = (quick / "table1.md").read_text()
    assert "not comparable in value" in md and "preset smoke; synthfaces-val; 2/" in md
    assert (quick / "pr" / "13_final.png").stat().st_size > 0
    assert not (quick / "table2.md").exists()


def test_rerun_skips_finished_steps_and_redoes_a_changed_one(quick, capsys):
    params = quick / "runs" / "13_final" / "final.params"
    marker = quick / "tests" / "13_final" / "reproduce.json"
    before = params.stat().st_mtime_ns, marker.stat().st_mtime_ns
    args = ["reproduce", "--table", "1", "--rows", "13", "--out", str(quick), "--set", "test.sizes=[[128,128]]"]
    assert main(args + QUICK) == 0
    out = printed_text(capsys)
    assert "[13] trained: " in out and "[13] tested: " in out and "skipped" in out
    assert (params.stat().st_mtime_ns, marker.stat().st_mtime_ns) == before
    more = [a if a != "3" else "4" for a in QUICK]                            # --limit 4: a new test, same training
    assert main(args + more) == 0
    out = printed_text(capsys)
    assert "[13] trained: " in out and "[13] testing " in out
    assert params.stat().st_mtime_ns == before[0] and marker.stat().st_mtime_ns > before[1]
    assert json.loads(marker.read_text())["images"] == 4
    assert "(1/1)" in (quick / "log.txt").read_text()


# ------------------------------------------------------------------------------------------------ benchmarks
def _benchmark_roots(tmp: Path):
    """Root A: WIDER val + test (synthfaces images); root B: AFW and a two-fold FDDB; PASCAL nowhere."""
    import scipy.io as sio
    from rfcn_face.datasets.face_eval import continuous_to_toolbox
    from rfcn_face.datasets.synthfaces import ensure_synthfaces
    from rfcn_face.datasets.wider import read_wider_txt
    base = ensure_synthfaces()
    recs = read_wider_txt(base / "wider_face_split" / "wider_face_val_bbx_gt.txt",
                          image_root=base / "WIDER_val" / "images")
    w = tmp / "a" / "widerface"
    (w / "wider_face_split").mkdir(parents=True)
    shutil.copy(base / "wider_face_split" / "wider_face_val_bbx_gt.txt", w / "wider_face_split")
    (w / "wider_face_split" / "wider_face_test_filelist.txt").write_text("".join(f"{r.event}/{r.name}.jpg\n"
                                                                                  for r in recs))
    for d in ("WIDER_val", "ground_truth"):
        (w / d).symlink_to(base / d)
    (w / "WIDER_test").mkdir()
    (w / "WIDER_test" / "images").symlink_to(base / "WIDER_val" / "images")
    b = tmp / "b"
    (b / "afw" / "images").mkdir(parents=True)
    ann = np.zeros((4, 1), dtype=[("imgname", "O"), ("imgsize", "O"), ("objects", "O"), ("flags", "O")])
    for i, r in enumerate(recs[:4]):
        shutil.copy(r.image_path, b / "afw" / "images" / f"{r.name}.jpg")
        tb = continuous_to_toolbox(r.boxes)
        ann[i, 0]["imgname"] = np.array([f"{r.name}.jpg"])
        ann[i, 0]["imgsize"] = np.array([[256], [256], [3]], float)
        ann[i, 0]["objects"] = np.concatenate([tb, np.zeros((len(tb), 1)), r.ignore[:, None].astype(float)], 1)
        ann[i, 0]["flags"] = np.zeros((1, 1))
    sio.savemat(str(b / "afw" / "new_annotations_AFW.mat"), {"Annotations": ann})
    (b / "fddb" / "FDDB-folds").mkdir(parents=True)
    for f, part in ((1, recs[4:6]), (2, recs[6:8])):
        names, ell = [], []
        for r in part:
            name = f"synth/{r.name}"
            dst = b / "fddb" / "originalPics" / f"{name}.jpg"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(r.image_path, dst)
            bx = r.boxes[~r.ignore]
            names.append(name)
            ell.append(f"{name}\n{len(bx)}\n" + "".join(f"{(y2 - y1) * 0.6} {(x2 - x1) * 0.45} 1.5 {(x1 + x2) / 2} "
                                                        f"{(y1 + y2) / 2} 1\n" for x1, y1, x2, y2 in bx))
        (b / "fddb" / "FDDB-folds" / f"FDDB-fold-{f:02d}.txt").write_text("\n".join(names) + "\n")
        (b / "fddb" / "FDDB-folds" / f"FDDB-fold-{f:02d}-ellipseList.txt").write_text("".join(ell))
    return tmp / "a", b, recs


def test_benchmarks_of_one_run(quick, tmp_path, capsys):
    from rfcn_face.evaluation.submission_check import check_submission
    a, b, recs = _benchmark_roots(tmp_path / "data")
    run = quick / "runs" / "13_final"
    out = tmp_path / "B"
    args = ["reproduce", "--benchmarks", "--run", str(run), "--data", str(a), str(b), "--out", str(out),
            "--limit", "3", "--sizes", "128x128", "--no-progress"]
    assert main(args + ["--dry-run"]) == 0
    text = printed_text(capsys)
    assert f"[fddb] data {b}" in text and f"[wider-test] data {a}" in text and "[pascal] skipped: not found" in text
    assert not out.exists()
    assert main(args) == 0
    text = printed_text(capsys)
    doc = json.loads((out / "benchmarks.json").read_text())
    st = {e["benchmark"]: e for e in doc["benchmarks"]}
    assert st["pascal"]["status"] == "skipped" and "pascal/images" in st["pascal"]["note"]
    assert all(st[k]["status"] == "done" for k in ("wider-val", "wider-test", "fddb", "afw"))
    # the zip: event/name.txt members, exactly the test images, accepted by the checker
    keys = [(r.event, r.name) for r in recs[:3]]
    z = out / "benchmarks" / "wider_test_submission.zip"
    with zipfile.ZipFile(z) as f:
        assert sorted(f.namelist()) == sorted(f"{e}/{n}.txt" for e, n in keys)
        f.extractall(tmp_path / "unzipped")
    assert check_submission(tmp_path / "unzipped", keys) == [] and st["wider-test"]["verified"]
    assert "verified with check_submission" in text
    fd = out / "benchmarks" / "fddb" / "fddb"
    assert (fd / "fold-01-out.txt").is_file() and (fd / "fold-02-out.txt").is_file()
    assert (fd / "rect-DiscROC.txt").is_file() and (out / "benchmarks" / "fddb" / "fddb_roc.png").is_file()
    assert (out / "benchmarks" / "afw" / "afw_dets.txt").is_file() and 0 <= st["afw"]["evaluation"]["ap"] <= 1
    assert (out / "benchmarks" / "wider_val_pr.png").is_file()
    md = (out / "benchmarks.md").read_text()
    assert "| pascal | skipped |" in md and "| wider-test | done | submission zip verified" in md
    # a rerun skips every finished benchmark
    mtime = z.stat().st_mtime_ns
    assert main(args) == 0
    text = printed_text(capsys)
    assert "[afw] done:" in text and "[fddb] done:" in text and "skipped" in text
    assert (out / "benchmarks" / "afw" / "reproduce.json").is_file() and z.stat().st_mtime_ns >= mtime


# ------------------------------------------------------------------------------------------------ kill and rerun
def test_two_rows_killed_after_the_first_continue_without_redoing_it(tmp_path):
    out = tmp_path / "R"
    args = [sys.executable, "-m", "rfcn_face", "reproduce", "--table", "1", "--rows", "01,13", "--out", str(out)]
    args += QUICK
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = out / "tests" / "01_baseline" / "reproduce.json"
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, first.is_file, timeout=600)          # during row 13
    assert first.is_file() and not (out / "tests" / "13_final" / "reproduce.json").exists()
    params = out / "runs" / "01_baseline" / "final.params"
    before = params.stat().st_mtime_ns, first.stat().st_mtime_ns
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    assert "[01] trained: " in text and "[01] tested: " in text
    assert "[13] training " in text or "[13] resuming " in text
    assert (params.stat().st_mtime_ns, first.stat().st_mtime_ns) == before          # row 1 not redone
    t1 = {e["id"]: e for e in json.loads((out / "table1.json").read_text())["rows"]}
    assert t1["01"]["ours"] is not None and t1["13"]["ours"] is not None
    for rid in ("01", "13"):
        assert t1[rid]["ours"] == json.loads((out / "tests" / t1[rid]["test"].rsplit("/", 1)[1] /
                                              "reproduce.json").read_text())["ap"]
    assert (out / "pr" / "01_baseline.png").is_file() and (out / "pr" / "13_final.png").is_file()
    log = (out / "log.txt").read_text()
    assert log.count("[01] training ") == 1 and log.count("[01] trained: ") == 1


def test_step_projection_by_hand():
    """estimate.project_step: GPU ms = 3 x GFLOPs / TFLOP/s; the host serves every GPU of the worker in turn."""
    from rfcn_face.reproduce.estimate import project_step
    p = project_step(1000, 8, 50, host_ms=10, loader_ms=100)       # 60 ms of GPU, 8 x 10 ms of host
    assert (p.gpu_ms, p.host_ms, p.step_ms) == pytest.approx((60, 80, 80))
    assert p.utilisation == pytest.approx(0.75) and p.loader_workers == 10      # 8 x 100 ms per 80 ms step
    p = project_step(1000, 4, 50, host_ms=10, loader_ms=100)       # host 40 ms < GPU 60 ms: GPU-bound
    assert p.utilisation == 1.0 and p.step_ms == pytest.approx(60) and p.loader_workers == 7   # ceil(400 / 60)
    assert project_step(1000, 1, 50, host_ms=0, loader_ms=0).loader_workers == 1


def test_dry_run_wall_time_uses_the_projected_utilisation(tmp_path, monkeypatch):
    """Training hours are divided by the GPUs and the projected utilisation of a row (not ideal scaling)."""
    import importlib
    from rfcn_face.reproduce.estimate import project_step
    plan_mod = importlib.import_module("rfcn_face.reproduce.plan")     # the package exports a function `plan`
    monkeypatch.setattr(plan_mod, "HOST_MS_PER_IMAGE", 400.0)
    monkeypatch.setattr(plan_mod, "project_step", lambda g, n, tf: project_step(g, n, tf, host_ms=400.0))
    args = ["reproduce", "--dry-run", "--table", "1", "--rows", "1,13", "--out", str(tmp_path / "R"),
            "--gpus", "0,1,2,3", "--json", str(tmp_path / "p.json")]
    assert main(args) == 0
    p = json.loads((tmp_path / "p.json").read_text())
    want = 0.0
    for r in p["rows"]:
        e = r["estimate"]
        u = project_step(e["train_gflops"], 4, p["assumptions"]["gpu_tflops"], host_ms=400.0).utilisation
        assert e["train_utilisation"] == pytest.approx(u) and u < 1.0      # 4 x 400 ms of host per step
        want += (e["train_gpu_hours"] / u + e["test_gpu_hours"]) / 4
    assert p["total"]["wall_hours"] == pytest.approx(want)
    assert p["total"]["wall_hours"] > p["total"]["gpu_hours"] / 4             # slower than ideal scaling
