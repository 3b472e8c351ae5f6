"""The detector's training loop, tested by behaviour: the loss falls, frozen parameters stay frozen, the learning
rate follows the schedule, a resumed run equals an uninterrupted one bit for bit (also after a SIGKILL), and
MXNet's dist_sync kvstore gives the parameters of one process with two devices."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.testing.processes import sigkill_when  # noqa: E402
from rfcn_face.config import config_from_dict, load_config  # noqa: E402
from rfcn_face.train import DetectorTraining, HookBase, TrainOptions, learning_rate, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FINAL = str(ROOT / "experiments" / "table1" / "13_final.yaml")
SMALL = ("train.max_size=128",)           # 128 px keeps the exactness tests cheap


def smoke_cfg(*overrides):
    return load_config(FINAL, preset="smoke", overrides=SMALL + tuple(overrides))


def params_of(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def max_abs_diff(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ schedule
def test_learning_rate_schedule_literal_values():
    cfg = config_from_dict({"train": {"lr": 0.001, "lr_steps": [5], "lr_factor": 0.1, "epochs": 8}}, "t")
    per_epoch = 100                                # Sec. 5.1: 0.001, 0.0001 after epoch 5
    assert learning_rate(cfg, 0, per_epoch) == pytest.approx(0.001)
    assert learning_rate(cfg, 499, per_epoch) == pytest.approx(0.001)
    assert learning_rate(cfg, 500, per_epoch) == pytest.approx(0.0001)
    assert learning_rate(cfg, 799, per_epoch) == pytest.approx(0.0001)
    cfg = config_from_dict({"train": {"lr": 0.01, "lr_steps": [1, 2], "epochs": 3, "warmup_iters": 4,
                                      "warmup_factor": 0.2}}, "t")
    assert [learning_rate(cfg, i, 10) for i in (0, 2, 4, 9, 10, 20)] == pytest.approx(
        [0.002, 0.006, 0.01, 0.01, 0.001, 0.0001])


# ------------------------------------------------------------------------------------------------ loss falls
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """30 iterations of the smoke preset (ResNet-18, 256 px, synthfaces) on the Final row, with an lr step at
    iteration 20 and a 5-iteration warm-up; the frozen parameters' initial values are kept."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    cfg = load_config(FINAL, preset="smoke", overrides=("train.lr_steps=[0.05]", "train.warmup_iters=5"))
    frozen_init = {}

    class Snapshot(HookBase):                      # the parameters before the first step
        def before_train(self):
            frozen_init.update({p.name: p.data().asnumpy().copy() for p in self.trainer.net.collect_params().values()
                                if not p.name.endswith(("running_mean", "running_var"))})
    t = DetectorTraining(cfg, TrainOptions(out=str(out), max_iters=30, progress=False), hooks=[Snapshot()])
    summary = t.run()
    return out, t, frozen_init, summary


def test_loss_falls_in_30_iterations(smoke_run):
    out, _, _, summary = smoke_run
    rows = metrics(out)
    assert [r["iter"] for r in rows] == list(range(1, 31)) and summary["iterations"] == 30
    first, last = np.mean([r["loss"] for r in rows[:5]]), np.mean([r["loss"] for r in rows[-5:]])
    assert last < first, (first, last)
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert all(k in rows[0] for k in ("epoch", "lr", "rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss",
                                      "rcnn_bbox_loss", "rpn_acc", "rcnn_acc", "matched_per_face", "s_per_iter"))


def test_frozen_parameters_unchanged(smoke_run):
    """R-FCN fixes conv1, res2 and every BatchNorm: after 30 updates they hold their initial values, while the
    trainable layers (res3 on, the RPN, the head) moved."""
    _, t, init, _ = smoke_run
    now = {p.name: p.data().asnumpy() for p in t.net.collect_params().values() if p.name in init}
    frozen = {p.name for p in t.net.collect_params().values() if p.grad_req == "null"} & set(init)
    assert {"conv1_weight", "res2a_branch2a_weight", "bn_conv1_gamma", "bn4a_branch2a_beta"} <= frozen
    assert not any(n.startswith(("res3", "res4", "res5", "rpn_", "rfcn_", "conv_new")) for n in frozen)
    for n in frozen:
        np.testing.assert_array_equal(now[n], init[n], err_msg=n)
    for n in ("res3a_branch2a_weight", "res5b_branch2b_weight", "rpn_conv_3x3_weight", "rfcn_cls_weight"):
        assert np.abs(now[n] - init[n]).max() > 0, n


def test_lr_follows_schedule_at_the_boundaries(smoke_run):
    out, t, _, _ = smoke_run
    rows = metrics(out)
    # 400 images per epoch, lr_steps [0.05] -> the step is at iteration 20; warm-up over the first 5
    assert t.per_epoch == 400
    lrs = [r["lr"] for r in rows]                      # row k used iteration k - 1
    assert lrs[0] == pytest.approx(0.001 * 0.001)
    assert lrs[4] == pytest.approx(0.001 * (0.001 * 0.2 + 0.8))
    assert lrs[5] == pytest.approx(0.001) and lrs[19] == pytest.approx(0.001)
    assert lrs[20] == pytest.approx(0.0001) and lrs[29] == pytest.approx(0.0001)


def test_run_folder_contents(smoke_run):
    out, _, _, _ = smoke_run
    assert (out / "config.yaml").is_file() and (out / "final.params").is_file() and (out / "loss.png").is_file()
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["iter-0000030"]
    state = json.loads((out / "checkpoints" / "iter-0000030" / "state.json").read_text())
    assert state["iteration"] == 30 and state["global_batch"] == 1 and len(state["config_hash"]) == 12
    assert load_config(out / "config.yaml").model.pixel_scale > 0        # the resolved normalisation is saved


# ------------------------------------------------------------------------------------------------ resume
@pytest.fixture(scope="module")
def uninterrupted_40(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    train(smoke_cfg(), TrainOptions(out=str(out), max_iters=40, progress=False))
    return params_of(out / "final.params")


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, uninterrupted_40):
    out = tmp_path / "run"
    train(smoke_cfg(), TrainOptions(out=str(out), max_iters=20, progress=False))
    train(smoke_cfg(), TrainOptions(out=str(out), max_iters=40, progress=False, resume=True))
    assert max_abs_diff(params_of(out / "final.params"), uninterrupted_40) == 0.0
    assert [r["iter"] for r in metrics(out)] == list(range(1, 41))


def test_resume_after_sigkill_between_checkpoints(tmp_path, uninterrupted_40):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rfcn_face", "train", "--config", FINAL, "--preset", "smoke", "--set", SMALL[0],
           "--out", str(out), "--max-iters", "40", "--checkpoint-every", "10", "--log-every", "1", "--no-progress"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = out / "metrics.jsonl"
    sigkill_when(p, lambda: m.is_file() and any(json.loads(l)["iter"] >= 24             # between the checkpoints
                                                for l in m.read_text().splitlines() if l.strip()),   # of 20 and 30
                 timeout=240)
    assert not (out / "final.params").exists()
    done = sorted(x.name for x in (out / "checkpoints").iterdir() if not x.name.startswith("."))
    assert done[-1] in ("iter-0000020", "iter-0000030")
    train(smoke_cfg(), TrainOptions(out=str(out), max_iters=40, progress=False, resume=True))
    assert max_abs_diff(params_of(out / "final.params"), uninterrupted_40) == 0.0
    assert [r["iter"] for r in metrics(out)] == list(range(1, 41))     # no duplicated rows after the kill


def test_resume_falls_back_when_the_newest_checkpoint_is_truncated(tmp_path, uninterrupted_40, caplog):
    out = tmp_path / "run"
    train(smoke_cfg(), TrainOptions(out=str(out), max_iters=30, checkpoint_every=10, progress=False))
    newest = out / "checkpoints" / "iter-0000030" / "model.params"
    newest.write_bytes(newest.read_bytes()[:1000])
    caplog.set_level(logging.INFO, logger="rfcn_face")
    caplog.clear()
    train(smoke_cfg(), TrainOptions(out=str(out), max_iters=40, progress=False, resume=True))
    log = caplog.text
    assert "checkpoint iter-0000030 does not load" in log and "iter-0000020" in log
    assert max_abs_diff(params_of(out / "final.params"), uninterrupted_40) == 0.0


def test_resume_with_two_loader_processes_equals_the_default_loader(tmp_path, uninterrupted_40):
    """data.num_workers=2 (two loader processes): 20 iterations, then --resume to 40, equals the uninterrupted
    run with the default loader (auto: one process on a 2-core machine) bit for bit — every draw is keyed by
    (seed, epoch, image), so the samples do not depend on the worker count."""
    out = tmp_path / "run"
    two = ("data.num_workers=2",)
    train(smoke_cfg(*two), TrainOptions(out=str(out), max_iters=20, progress=False))
    train(smoke_cfg(*two), TrainOptions(out=str(out), max_iters=40, progress=False, resume=True))
    assert max_abs_diff(params_of(out / "final.params"), uninterrupted_40) == 0.0
    assert [r["iter"] for r in metrics(out)] == list(range(1, 41))


# ------------------------------------------------------------------------------------------------ distributed
DIST_COMMON = ["--config", FINAL, "--preset", "smoke", "--set", SMALL[0], "--max-iters", "4", "--no-progress"]


@pytest.fixture(scope="module")
def two_cpu_run(tmp_path_factory):
    """The reference of the dist tests: one process, --cpus 2, kvstore local, 4 iterations."""
    out = tmp_path_factory.mktemp("cpus2") / "local"
    assert main(["train", *DIST_COMMON, "--cpus", "2", "--out", str(out), "--json", str(out.parent / "train.json")]) == 0
    return out


def test_train_json_is_the_run_summary(two_cpu_run):
    """train --json: the summary train() returns, written atomically beside the run; its last row is the last
    row of metrics.jsonl."""
    s = json.loads((two_cpu_run.parent / "train.json").read_text())
    assert (s["iterations"], s["stop"], s["total"], s["rank"], s["run_dir"]) == (4, 4, 400, 0, str(two_cpu_run))
    row = metrics(two_cpu_run)[-1]
    assert row["iter"] == 4 and "loss" in s["last"] and s["last"] == {k: row[k] for k in s["last"]}
    assert [p.name for p in two_cpu_run.parent.iterdir() if p.name.startswith(".")] == []


def test_dist_sync_two_workers_equals_two_cpu_contexts(tmp_path, two_cpu_run):
    """launch --workers 2 --servers 1 (dist_sync, one image per worker) == one process, --cpus 2, kvstore local:
    the same image pairs per iteration, so the same parameters (summation order aside)."""
    assert main(["launch", "--workers", "2", "--servers", "1", "--", "train", *DIST_COMMON,
                 "--out", str(tmp_path / "dist")]) == 0
    d, loc = params_of(tmp_path / "dist" / "final.params"), params_of(two_cpu_run / "final.params")
    assert max_abs_diff(d, loc) <= 1e-5
    cfg = load_config(tmp_path / "dist" / "config.yaml")
    assert cfg.name == "final"
    state = json.loads((tmp_path / "dist" / "checkpoints" / "iter-0000004" / "state.json").read_text())
    assert state["global_batch"] == 2 and state["iters_per_epoch"] == 200


def test_dist_sync_two_loopback_hosts_equals_two_cpu_contexts(tmp_path, two_cpu_run):
    """launch --launcher local --hosts 127.0.0.2,127.0.0.3: two "machines" (the scheduler and the server bound to
    127.0.0.2, worker 0 to 127.0.0.3, worker 1 to 127.0.0.2) give the --cpus 2 parameters."""
    assert main(["launch", "--launcher", "local", "--hosts", "127.0.0.2,127.0.0.3", "--workers", "2", "--servers",
                 "1", "--", "train", *DIST_COMMON, "--out", str(tmp_path / "dist"),
                 "--json", str(tmp_path / "train.json")]) == 0
    d, loc = params_of(tmp_path / "dist" / "final.params"), params_of(two_cpu_run / "final.params")
    assert max_abs_diff(d, loc) <= 1e-5
    state = json.loads((tmp_path / "dist" / "checkpoints" / "iter-0000004" / "state.json").read_text())
    assert state["global_batch"] == 2
    s = json.loads((tmp_path / "train.json").read_text())      # worker 0 alone writes the summary
    row = metrics(tmp_path / "dist")[-1]
    assert (s["rank"], s["iterations"], s["last"]["loss"]) == (0, 4, row["loss"])


def test_dist_sync_with_two_loader_processes_equals_two_cpu_contexts(tmp_path, two_cpu_run):
    """As above with two loader processes per dist_sync worker, against --cpus 2 with the default loader (one
    process on this machine)."""
    assert main(["launch", "--workers", "2", "--servers", "1", "--", "train", *DIST_COMMON,
                 "--set", "data.num_workers=2", "--out", str(tmp_path / "dist")]) == 0
    d, loc = params_of(tmp_path / "dist" / "final.params"), params_of(two_cpu_run / "final.params")
    assert max_abs_diff(d, loc) <= 1e-5



def test_parameters_are_broadcast_before_the_first_gradient_push(tmp_path, monkeypatch):
    """Gluon's Trainer would broadcast worker 0's weights lazily inside its first step(), where a weight pull is not
    ordered against the gradient push of the same key (a dist_sync worker then got the summed gradient as its
    weights, ~1 launch in 30). The loop keeps the kvstore itself (rfcn_face.kvsync): every trainable parameter is
    broadcast, and waited for, before the first push, and the Trainer never touches a kvstore (checked here with
    two CPU contexts, the same path as dist_sync)."""
    from mxnet import gluon

    from rfcn_face.kvsync import GradientSync
    events = []
    broadcast, allreduce, step = GradientSync.broadcast, GradientSync.allreduce, gluon.Trainer.step

    def recording_broadcast(self):
        calls = []
        real = self.kv.broadcast
        self.kv.broadcast = lambda key, value, out: (calls.append(key), real(key, value, out=out))
        broadcast(self)
        events.append(("broadcast", sorted(calls) == list(range(len(self.params))), len(self.params)))

    def recording_allreduce(self):
        events.append(("allreduce", self.kv.type))
        return allreduce(self)

    def no_trainer_step(self, *args, **kwargs):
        raise AssertionError("Trainer.step would set up and broadcast a kvstore lazily")
    monkeypatch.setattr(GradientSync, "broadcast", recording_broadcast)
    monkeypatch.setattr(GradientSync, "allreduce", recording_allreduce)
    monkeypatch.setattr(gluon.Trainer, "step", no_trainer_step)
    t = DetectorTraining(smoke_cfg(), TrainOptions(out=str(tmp_path / "run"), contexts=[mx.cpu(0), mx.cpu(1)],
                                                   max_iters=2, progress=False))
    t.run()
    n = len([p for p in t.net.collect_params().values() if p.grad_req != "null"])
    assert events == [("broadcast", True, n), ("allreduce", "local"), ("allreduce", "local")]


@pytest.mark.slow
def test_dist_sync_repeated_launches_all_equal_the_local_run(tmp_path):
    """The broadcast race above struck about one launch in 30 before the fix: 12 two-iteration launches must all
    give the --cpus 2 parameters (a worker that trained from wrong weights spoils the sum at iteration 2)."""
    common = ["--config", FINAL, "--preset", "smoke", "--set", SMALL[0], "--max-iters", "2", "--no-progress"]
    assert main(["train", *common, "--cpus", "2", "--out", str(tmp_path / "local")]) == 0
    loc = params_of(tmp_path / "local" / "final.params")
    diffs = []
    for k in range(12):
        out = tmp_path / f"dist{k}"
        assert main(["launch", "--workers", "2", "--servers", "1", "--", "train", *common, "--out", str(out)]) == 0
        diffs.append(max_abs_diff(params_of(out / "final.params"), loc))
    assert max(diffs) <= 1e-5, diffs

def test_launch_worker_command_split_and_kvstore_shared_with_the_cli():
    """rfcn_face.launch.split_command / has_kvstore: the one '--' strip, empty-command error and explicit --kvstore
    test for the launch verb's check and the worker command."""
    from rfcn_face.launch import _worker_command, has_kvstore, split_command
    assert split_command(["--", "train", "--out", "r"]) == ["train", "--out", "r"]
    assert split_command(["train", "--out", "r"]) == ["train", "--out", "r"]
    for empty in ([], ["--"]):
        with pytest.raises(ValueError, match="give the command after '--'"):
            split_command(empty)
        with pytest.raises(ValueError, match="give the command after '--'"):
            _worker_command(empty)
    assert has_kvstore(["train", "--kvstore", "local"]) and has_kvstore(["train", "--kvstore=dist_sync"])
    assert not has_kvstore(["train", "--out", "kvstore"])
    assert _worker_command(["--", "train", "--out", "r"])[-2:] == ["--kvstore", "dist_sync"]
    assert _worker_command(["train", "--kvstore=dist_device_sync"])[-1] == "--kvstore=dist_device_sync"


# ------------------------------------------------------------------------------------------------ bad input
def test_existing_run_folder_needs_resume(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "something.txt").write_text("x")
    assert main(["train", "--config", FINAL, "--preset", "smoke", "--out", str(out), "--max-iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "--resume" in err and "Traceback" not in err


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["train", "--config", FINAL, "--preset", "smoke", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_gpus_on_a_cpu_build_is_a_clear_error(tmp_path, capsys):
    if mx.context.num_gpus() > 0:
        pytest.skip("this machine has a GPU")
    assert main(["train", "--config", FINAL, "--preset", "smoke", "--out", str(tmp_path / "r"), "--gpus", "0"]) == 2
    assert "sees no GPU" in capsys.readouterr().err


def test_missing_wider_root_names_the_layout(tmp_path, capsys):
    assert main(["train", "--config", FINAL, "--set", "model.depth=18", "--set", f"data.root={tmp_path}",
                 "--out", str(tmp_path / "r"), "--max-iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "wider_face_train_bbx_gt.txt" in err and "data/README.md" in err


def test_mismatched_checkpoint_names_path_and_parameter(tmp_path, capsys):
    fake = tmp_path / "resnet.params"
    mx.nd.save(str(fake), {"arg:conv1_weight": mx.nd.zeros((64, 3, 5, 5))})
    assert main(["train", "--config", FINAL, "--preset", "smoke", "--pretrained", str(fake),
                 "--out", str(tmp_path / "r"), "--max-iters", "1"]) == 2
    err = capsys.readouterr().err
    assert str(fake) in err and "conv1_weight" in err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_naming_the_iteration(tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["train", "--config", FINAL, "--preset", "smoke", "--set", SMALL[0], "--set", "train.lr=1e12",
               "--out", str(out), "--max-iters", "30", "--checkpoint-every", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3 and "NaN or inf at iteration" in err and "last good checkpoint" in err
    assert not (out / "final.params").exists()
