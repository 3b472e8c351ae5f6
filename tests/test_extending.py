"""The project is open to user code without editing the library (docs/extending.md): a strategy defined in this
test file, registered through the config's ``imports``, trains from the command line; and a batch job's logs
(``--no-progress`` or a redirected stderr) get one metric line per ``--log-every`` iterations, in ``RUN/log.txt``
too, and no progress-bar carriage returns."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rfcn_face.assigners import MaxIoUAssigner, register
from rfcn_face.assigners.core import AssignParams, match_anchors

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
BASELINE = str(ROOT / "experiments" / "table1" / "01_baseline.yaml")
SMOKE = ["--preset", "smoke", "--set", "train.max_size=128", "--no-progress"]


@register("toy_low_threshold")
class ToyLowThreshold(MaxIoUAssigner):
    """A toy strategy: max-IoU matching with the positive threshold lowered to Tl (every anchor that is not a
    negative is a positive), so faces match more anchors than with max_iou."""

    def assign(self, anchors, boxes, ignore, image_hw):
        p = self.params
        return match_anchors(anchors, boxes, ignore, image_hw, AssignParams(p.neg_iou, p.neg_iou, p.allowed_border,
                                                                           p.ignore_iof))


def cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), OMP_NUM_THREADS="2")
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "rfcn_face", *args], cwd=ROOT, env=env, text=True, timeout=600,
                          **kw)


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_strategy_from_a_user_module_trains_through_imports(tmp_path):
    toy, ref = tmp_path / "toy", tmp_path / "ref"
    common = ["train", "--config", BASELINE, *SMOKE, "--max-iters", "3", "--log-every", "1"]
    r = cli(common + ["--set", "imports=[test_extending]", "--set", "rpn.assign.type=toy_low_threshold",
                      "--out", str(toy)])
    assert r.returncode == 0, r.stderr
    assert cli(common + ["--out", str(ref)]).returncode == 0
    saved = (toy / "config.yaml").read_text()
    assert "toy_low_threshold" in saved and "test_extending" in saved      # a resume / test re-imports it
    t, m = rows(toy), rows(ref)
    assert [x["iter"] for x in t] == [1, 2, 3] and all(np.isfinite(x["loss"]) for x in t)
    # the same images and draws, more anchors per face: the toy rule really ran
    assert all(a["matched_per_face"] >= b["matched_per_face"] for a, b in zip(t, m))
    assert sum(a["matched_per_face"] for a in t) > sum(b["matched_per_face"] for b in m)
    # without the import the name is unknown, and the error says how to load it
    r = cli(["train", "--config", BASELINE, *SMOKE, "--set", "rpn.assign.type=toy_low_threshold",
             "--out", str(tmp_path / "x")])
    assert r.returncode == 2 and "unknown anchor assignment strategy 'toy_low_threshold'" in r.stderr
    assert "'imports'" in r.stderr and "Traceback" not in r.stderr


def test_batch_job_logs_one_metric_line_per_log_every(tmp_path):
    run = tmp_path / "run"
    with open(tmp_path / "err.log", "w") as err:
        r = cli(["train", "--config", BASELINE, "--preset", "smoke", "--set", "train.max_size=128", "--out", str(run),
                 "--max-iters", "5", "--log-every", "2"], stdout=subprocess.DEVNULL, stderr=err)
    assert r.returncode == 0
    err = (tmp_path / "err.log").read_text()
    log = (run / "log.txt").read_text()
    assert "\r" not in err and "\r" not in log                      # no progress bar in a redirected stderr
    for text in (err, log):
        lines = [line for line in text.splitlines() if " loss " in line and "iter " in line]
        assert [line.split("iter ")[1].split()[0] for line in lines] == ["2/5", "4/5", "5/5"], text
    assert [x["iter"] for x in rows(run)] == [2, 4, 5]               # and the last iteration's row
    assert "training baseline" in log and "wrote" in log
    assert (run / "loss.png").stat().st_size > 0


def test_periodic_evaluation_hook_and_a_user_hook(tmp_path):
    """PeriodicEval after every 2nd iteration and after the last; a user hook sees the step's loss terms after the
    backward (before the update) and the metrics after it."""
    from rfcn_face.config import load_config
    from rfcn_face.train import HookBase, TrainOptions, train
    from rfcn_face.train_hooks import PeriodicEval
    seen = []

    class Watch(HookBase):
        def after_backward(self):
            seen.append(("backward", self.trainer.iter, len(self.trainer.stats)))

        def after_step(self):
            seen.append(("step", self.trainer.iter, round(self.trainer.metrics["loss"], 6)))
    calls = []

    def evaluate(t, done):
        calls.append(done)
        return {"loss_now": t.metrics["loss"], "step": t.iter}
    cfg = load_config(BASELINE, preset="smoke", overrides=["train.max_size=128"])
    out = tmp_path / "run"
    train(cfg, TrainOptions(out=str(out), max_iters=5, progress=False), hooks=[PeriodicEval(2, evaluate), Watch()])
    assert calls == [2, 4, 5]                          # after iterations 2 and 4, then the last (5)
    ev = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["iter"] for e in ev] == [2, 4, 5] and [e["step"] for e in ev] == [1, 3, 5]
    assert [s[:2] for s in seen] == [(k, i) for i in range(5) for k in ("backward", "step")]
    losses = {r["iter"]: round(r["loss"], 6) for r in rows(out)}
    assert [s[2] for s in seen if s[0] == "step"] == [losses[i] for i in range(1, 6)]


def test_train_eval_every_runs_the_benchmark_and_matches_a_test_of_the_final_weights(tmp_path, capsys):
    """``train --eval-every 2``: the val benchmark after iterations 2, 4 and the last (5); the last evaluation is
    the one ``test --run`` gives for final.params on the same images."""
    from rfcn_face.__main__ import main
    run = tmp_path / "run"
    assert main(["train", "--config", BASELINE, "--preset", "smoke", "--set", "train.max_size=128", "--out", str(run),
                 "--max-iters", "5", "--no-progress", "--eval-every", "2", "--eval-limit", "3"]) == 0
    ev = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["iter"] for e in ev] == [2, 4, 5]
    assert {"easy", "medium", "hard"} <= set(ev[-1])
    assert (run / "eval" / "iter_0000004" / "results.json").is_file()
    assert "eval after iteration 4: " in (run / "log.txt").read_text()
    assert main(["test", "--run", str(run), "--dataset", "synthfaces-val", "--limit", "3", "--out",
                 str(tmp_path / "t"), "--no-progress"]) == 0
    res = json.loads((tmp_path / "t" / "results.json").read_text())["evaluation"]
    for k in ("easy", "medium", "hard"):
        assert ev[-1][k] == res[k]
    capsys.readouterr()
    assert main(["train", "--config", BASELINE, "--preset", "smoke", "--out", str(tmp_path / "x"),
                 "--eval-every", "2", "--eval-dataset", "no-such-benchmark"]) != 0
    err = capsys.readouterr().err
    assert "no-such-benchmark" in err and "Traceback" not in err and not (tmp_path / "x" / "log.txt").exists()
