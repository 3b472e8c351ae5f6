"""The main job: ``demo --quick`` runs the whole chain (train both, test, evaluate, figures), a rerun redoes no
finished step; the full demo (slow) shows the paper's effect."""
import json

import numpy as np
import pytest

pytest.importorskip("mxnet")

from rfcn_face.__main__ import main  # noqa: E402

FILES = ("results.json", "table1.md", "pr_hard.png", "recall_by_scale.png", "fig7_val.png", "detections.png",
         "emo/fig4_emo.csv", "emo/fig7_avg_max_iou.png", "baseline/wider_pred", "final/wider_pred",
         "baseline/run/final.params", "final/run/final.params")


def printed_text(capsys) -> str:
    """What a command printed: its results (stdout) and its messages (stderr, the project's logger)."""
    o = capsys.readouterr()
    return o.out + o.err


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_demo_writes_every_output(quick_demo):
    for f in FILES:
        assert (quick_demo / f).exists(), f
    res = json.loads((quick_demo / "results.json").read_text())
    for m in ("baseline", "final"):
        assert set(res[m]) == {"easy", "medium", "hard"} and all(0.0 <= v <= 1.0 for v in res[m].values())
    r = res["recall_by_scale"]
    assert r["groups"] == ["[0,8)", "[8,16)", "[16,32)", "[32,64)", "[64,inf)"]
    assert len(r["baseline"]) == len(r["final"]) == 5
    assert res["iterations"] == 6 and res["quick"] and res["seconds"] > 0
    assert (quick_demo / "baseline" / "wider_pred").is_dir() and any((quick_demo / "final" / "wider_pred").rglob("*.txt"))
    gt = res["gt_dir"]
    assert gt.endswith("ground_truth")
    table = (quick_demo / "table1.md").read_text()
    assert "0.705" in table and "0.795" in table and "not comparable in value" in table   # the paper's Hard APs


def test_rerun_redoes_no_finished_step(quick_demo, capsys):
    params = quick_demo / "final" / "run" / "final.params"
    before = params.stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(quick_demo), "--no-progress"]) == 0
    out = printed_text(capsys)
    assert "[baseline] trained" in out and "[final] trained" in out
    assert params.stat().st_mtime_ns == before



def test_quick_ablation_tables_every_mining_row_with_its_strategy(quick_demo):
    """demo --ablation (quick): every experiments/mining row beside Baseline / Final (reused, not retrained),
    each with the strategy its config resolves to (rpn.assign, "" = hc when HC(N) is on) and its matched anchors."""
    from rfcn_face.demo import MINING_ROWS, DemoOptions, run_ablation
    params = quick_demo / "final" / "run" / "final.params"
    before = params.stat().st_mtime_ns
    res = run_ablation(DemoOptions(out=str(quick_demo), quick=True, progress=False), log=lambda s: None)
    rows = res["rows"]
    assert list(rows)[:2] == ["baseline", "final"]
    assert set(rows) == {"baseline", "final"} | {p.stem for p in MINING_ROWS.glob("*.yaml")}
    want = {"baseline": "max_iou", "final": "hc", "baseline_focal": "max_iou", "final_focal": "hc"}
    for name, t in rows.items():
        strategy = want.get(name) or ("hambox" if "hambox" in name else "cleanliness")
        assert t["strategy"] == strategy, name
        assert t["matched_per_face"] > 0 and 0.0 <= t["hard"] <= 1.0
    assert params.stat().st_mtime_ns == before
    md = (quick_demo / "ablation.md").read_text()
    assert all(f"| {name} |" in md for name in rows)
    assert json.loads((quick_demo / "ablation.json").read_text())["rows"].keys() == rows.keys()
    assert rows["final_hambox"]["loss"] == "focal" and rows["final"]["loss"] == "softmax"
    assert rows["final_hambox"]["hard_vs_same_loss"] == pytest.approx(rows["final_hambox"]["hard"] /
                                                                       rows["final_focal"]["hard"])


def test_hard_ratios_divide_by_the_table1_row_and_the_same_loss_control():
    """Literal table: softmax rows against their Table 1 row twice, focal rows against ``*_focal``; a missing
    control is None, a zero denominator NaN."""
    from rfcn_face.demo import hard_ratios
    t = {"baseline": {"hard": 0.4, "loss": "softmax"}, "final": {"hard": 0.5, "loss": "softmax"},
         "baseline_focal": {"hard": 0.2, "loss": "focal"}, "baseline_hambox": {"hard": 0.18, "loss": "focal"},
         "baseline_hambox_sampled": {"hard": 0.3, "loss": "softmax"}, "final_hambox": {"hard": 0.45, "loss": "focal"},
         "final_focal": {"hard": 0.0, "loss": "focal"}}
    r = hard_ratios(t)
    assert r["baseline"] == {"vs_table1": 1.0, "vs_same_loss": 1.0}
    assert r["baseline_focal"]["vs_table1"] == pytest.approx(0.5) and r["baseline_focal"]["vs_same_loss"] == 1.0
    assert r["baseline_hambox"] == {"vs_table1": pytest.approx(0.45), "vs_same_loss": pytest.approx(0.9)}
    assert r["baseline_hambox_sampled"] == {"vs_table1": pytest.approx(0.75), "vs_same_loss": pytest.approx(0.75)}
    assert r["final_hambox"]["vs_table1"] == pytest.approx(0.9) and np.isnan(r["final_hambox"]["vs_same_loss"])
    del t["final_focal"]
    assert hard_ratios(t)["final_hambox"]["vs_same_loss"] is None


def test_ablation_rows_selects_mining_rows(quick_demo, capsys):
    """--rows trains (here: reuses) only the named mining rows, Baseline and Final always beside them; a name that
    is no row is one error line naming --rows and the rows there are."""
    assert main(["demo", "--quick", "--out", str(quick_demo), "--no-progress", "--ablation",
                 "--rows", "final_hambox,baseline_cleanliness"]) == 0
    rows = json.loads((quick_demo / "ablation.json").read_text())["rows"]
    assert list(rows) == ["baseline", "final", "baseline_cleanliness", "final_hambox"]
    out = capsys.readouterr().out
    assert "final_hambox" in out and "final_hambox_k3_t04" not in out
    assert main(["demo", "--quick", "--out", str(quick_demo), "--no-progress", "--ablation", "--rows", "hambox"]) == 2
    err = capsys.readouterr().err
    assert "--rows: no mining row hambox in" in err and "final_hambox" in err
    assert main(["demo", "--quick", "--out", str(quick_demo), "--rows", "final_hambox"]) == 2
    assert "--rows selects rows of --ablation" in capsys.readouterr().err

def test_out_naming_a_file_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["demo", "--quick", "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_shows_the_papers_effect(tmp_path):
    """With the demo's fixed seeds: Final's hard AP above Baseline's, Final's recall below 16 px above Baseline's,
    and Final a real detector (easy AP >= 0.5)."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["final"]["hard"] > res["baseline"]["hard"]
    below = res["recall_by_scale"]["below_16"]
    assert below["final"] > below["baseline"]
    assert res["final"]["easy"] >= 0.5
