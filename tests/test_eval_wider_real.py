"""WIDER FACE evaluator on the real val ground truth and the published baselines (skips without ../shared/data)."""
import json

import numpy as np
import pytest

from rfcn_face.evaluation.wider import (
    SETTINGS, WiderGroundTruth, evaluate_wider)
from rfcn_face.testing.synthetic_eval import random_predictions
from rfcn_face.testing.wider_reference import evaluate_wider_reference


@pytest.fixture(scope="module")
def val_gt(shared_data):
    return WiderGroundTruth.load(shared_data / "widerface" / "ground_truth")


def test_val_ground_truth_counts(val_gt):
    assert len(val_gt) == 3226
    assert sum(len(b) for b in val_gt.boxes) == 39708
    assert {s: val_gt.count_faces(s) for s in SETTINGS} == {"easy": 7211, "medium": 13319, "hard": 31958}
    assert val_gt.keys()[0] == ("0--Parade", "0_Parade_marchingband_1_465")


@pytest.mark.parametrize("seed,decimals", [(10, None), (11, 1)])
def test_fast_equals_reference_on_real_val_subset(val_gt, seed, decimals):
    rng = np.random.default_rng(seed)
    gt = val_gt.subset(np.sort(rng.choice(len(val_gt), 60, replace=False)))
    preds = random_predictions(gt, rng, mean_per_image=40, decimals=decimals)
    fast, ref = evaluate_wider(preds, gt), evaluate_wider_reference(preds, gt)
    for s in SETTINGS:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])
        assert abs(fast.ap[s] - ref.ap[s]) <= 1e-12 and fast.tp[s][-1] > 0


@pytest.mark.slow
def test_fast_equals_reference_on_full_val(val_gt):
    rng = np.random.default_rng(12)
    preds = random_predictions(val_gt, rng, mean_per_image=50, decimals=1)
    fast, ref = evaluate_wider(preds, val_gt), evaluate_wider_reference(preds, val_gt)
    assert fast.num_predictions >= 150_000
    for s in SETTINGS:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])
        assert abs(fast.ap[s] - ref.ap[s]) <= 1e-12


def test_ground_truth_as_predictions(val_gt):
    """Every ground-truth row submitted as a detection. Each kept face is matched by its own box, except
    - the kept twin rows of 21_Festival_Festival_21_604 (``219 454 9 15`` twice, kept in hard): the second box
      ties to the first face, which is already matched -> FP, and the second face is never matched;
    - the kept row ``1026 474 -2 23`` of 39_Ice_Skating_iceskiing_39_583 (hard): negative width, so its IoU
      with itself is 0 -> FP, and the face is never matched. In easy / medium it is not kept, but its box
      matches nothing either -> one FP there too.
    Unkept rows are dropped (their box matches themselves with IoU 1)."""
    rng = np.random.default_rng(3)
    preds = [np.concatenate([b, rng.random((len(b), 1))], axis=1) for b in val_gt.boxes]
    r = evaluate_wider(preds, val_gt)
    assert [r.tp[s][-1] for s in SETTINGS] == [7211, 13319, 31958 - 2]
    assert [r.proposals[s][-1] for s in SETTINGS] == [7211 + 1, 13319 + 1, 31958]
    for s in SETTINGS:
        assert 0.999 < r.ap[s] < 1.0


# ------------------------------------------------------------------------------------------------ baselines
def test_zcc_baseline_ap(shared_data):
    from rfcn_face.evaluation.plots import load_baselines
    bl = {b.method: b for b in load_baselines(shared_data / "widerface" / "eval_tools_baselines", "Val")}
    assert len(bl) == 21
    zcc = bl["ZCC"]
    assert zcc.legend == "Zhu et al."
    assert [round(zcc.ap[s], 3) for s in SETTINGS] == [0.949, 0.934, 0.861]
    assert bl["SSH"].legend == "SSH" and len(bl["SSH"].recall["hard"]) == 1000   # a MATLAB v7.3 file
    root = shared_data / "widerface" / "eval_tools_baselines"
    test_int = load_baselines(root, "Test")
    assert len(test_int) == 21 and all(set(b.ap) == set(SETTINGS) for b in test_int)
    assert sorted(b.method for b in load_baselines(root, "Test", "setting_ext")) == ["acf", "dpm", "faceness", "vj"]


def test_plot_with_baselines(shared_data, tmp_path):
    pytest.importorskip("matplotlib")
    from rfcn_face.evaluation.plots import load_baselines, plot_wider_pr
    bl = load_baselines(shared_data / "widerface" / "eval_tools_baselines", "Val")
    zcc = next(b for b in bl if b.method == "ZCC")
    curves = {s: (zcc.precision[s], zcc.recall[s]) for s in SETTINGS}
    out = plot_wider_pr(tmp_path / "pr.png", curves, "ZCC again", bl)
    assert out.stat().st_size > 20_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_wider_end_to_end(val_gt, shared_data, tmp_path, capsys):
    from rfcn_face.__main__ import main
    from rfcn_face.evaluation.submission import read_submission, write_submission
    rng = np.random.default_rng(4)
    preds = random_predictions(val_gt, rng, mean_per_image=6, decimals=2, missing_fraction=0.0)
    dets = {k: np.concatenate([p[:, :2], p[:, :2] + p[:, 2:4], p[:, 4:]], axis=1) for k, p in preds.items()}
    write_submission(dets, tmp_path / "sub", val_gt.keys())
    missing = tmp_path / "sub" / val_gt.events[7] / f"{val_gt.names[7]}.txt"
    missing.unlink()
    rc = main(["evaluate", "wider", "--pred", str(tmp_path / "sub"), "--gt",
               str(shared_data / "widerface" / "ground_truth"), "--json", str(tmp_path / "r.json"),
               "--plot", str(tmp_path / "pr.png"),
               "--baselines", str(shared_data / "widerface" / "eval_tools_baselines")])
    out, err = capsys.readouterr()
    assert rc == 0 and "missing prediction file" in err and val_gt.names[7] in err
    expected = evaluate_wider(read_submission(tmp_path / "sub", val_gt.keys())[0], val_gt)
    js = json.loads((tmp_path / "r.json").read_text())
    for s in SETTINGS:
        assert js[s] == expected.ap[s]
        assert f"{s.capitalize():<7}Val AP: {expected.ap[s]:.4f}" in out
        assert len(js["curves"][s]["recall"]) == 1000
    assert (tmp_path / "pr.png").stat().st_size > 20_000
