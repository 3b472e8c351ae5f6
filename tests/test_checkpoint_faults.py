"""Checkpoints under faults (issue 25 class 3): ``--resume`` with no readable checkpoint never restarts silently
and never deletes (one line naming the files; ``--restart-if-unreadable`` keeps them aside and restarts); the
iteration that ``test`` tested is recorded; a ``final.params`` older than the newest checkpoint is reported."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rfcn_face.checkpoint import (FINAL_META, FINAL_PARAMS, RunDirError, final_params_info, load_newest,
                                  save_checkpoint)

ROOT = Path(__file__).resolve().parents[1]
FINAL_YAML = ROOT / "experiments" / "table1" / "13_final.yaml"


def _run_with(tmp_path, *iters) -> Path:
    run = tmp_path / "run"
    for it in iters:
        save_checkpoint(run, it, lambda d: (d / "model.params").write_bytes(b"w"), {"config_hash": "h"})
    return run


def _loader(refuse=()):
    loaded = []

    def load(ckpt, state):
        if ckpt.name in refuse:
            raise ValueError(f"{ckpt / 'model.params'}: truncated")
        loaded.append(ckpt.name)
    return load, loaded


def test_all_state_files_unreadable_is_an_error_naming_them_and_deletes_nothing(tmp_path):
    run = _run_with(tmp_path, 10, 20)
    (run / "checkpoints" / "iter-0000010" / "state.json").write_text("{trunc")
    (run / "checkpoints" / "iter-0000020" / "state.json").unlink()
    load, loaded = _loader()
    with pytest.raises(RunDirError) as e:
        load_newest(run, load, log=lambda *a: None)
    msg = str(e.value)
    assert "iter-0000010" in msg and "iter-0000020" in msg and "state.json" in msg and "--restart-if-unreadable" in msg
    assert "\n" not in msg and not loaded
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter-0000010", "iter-0000020"]


def test_all_checkpoints_fail_to_load_is_an_error_naming_each(tmp_path):
    run = _run_with(tmp_path, 10, 20)
    load, loaded = _loader(refuse=("iter-0000010", "iter-0000020"))
    with pytest.raises(RunDirError, match="iter-0000010.*truncated.*iter-0000020.*truncated"):
        load_newest(run, load, log=lambda *a: None)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter-0000010", "iter-0000020"]


def test_restart_if_unreadable_keeps_them_aside(tmp_path):
    run = _run_with(tmp_path, 10, 20)
    said = []
    load, _ = _loader(refuse=("iter-0000010", "iter-0000020"))
    assert load_newest(run, load, log=said.append, restart_if_unreadable=True) is None
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["unreadable-iter-0000010",
                                                                        "unreadable-iter-0000020"]
    assert any("restarting from iteration 0" in s for s in said)
    # a restarted run's checkpoints never prune the kept ones
    save_checkpoint(run, 1, lambda d: None, {}, keep=1)
    save_checkpoint(run, 2, lambda d: None, {}, keep=1)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter-0000002", "unreadable-iter-0000010",
                                                                        "unreadable-iter-0000020"]


def test_fallback_keeps_the_newer_unreadable_one(tmp_path):
    run = _run_with(tmp_path, 10, 20, 30)
    load, loaded = _loader(refuse=("iter-0000030",))
    (run / "checkpoints" / "iter-0000020" / "state.json").write_text("")
    ckpt, state = load_newest(run, load, log=lambda *a: None)
    assert ckpt.name == "iter-0000010" and state["iteration"] == 10 and loaded == ["iter-0000010"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter-0000010", "unreadable-iter-0000020",
                                                                        "unreadable-iter-0000030"]


def test_no_checkpoint_yet_is_said(tmp_path):
    said = []
    assert load_newest(tmp_path / "run", _loader()[0], log=said.append) is None
    assert said and "starting at iteration 0" in said[0]


def test_final_params_info(tmp_path):
    run = _run_with(tmp_path, 10, 20)
    (run / FINAL_PARAMS).write_bytes(b"p")
    (run / FINAL_META).write_text(json.dumps({"iteration": 20}))
    i = final_params_info(run)
    assert (i["iteration"], i["newest_checkpoint_iteration"], i["warning"]) == (20, 20, None)
    (run / FINAL_META).write_text(json.dumps({"iteration": 10}))       # resumed to 20, final.params still from 10
    i = final_params_info(run)
    assert i["iteration"] == 10 and "older than the checkpoint iter-0000020" in i["warning"]
    (run / FINAL_META).unlink()                                        # a run from before final.json: by the times
    old = (run / "checkpoints" / "iter-0000020" / "state.json").stat().st_mtime - 100
    os.utime(run / FINAL_PARAMS, (old, old))
    i = final_params_info(run)
    assert i["iteration"] is None and "iteration unknown" in i["warning"]
    os.utime(run / FINAL_PARAMS, (old + 200, old + 200))
    assert final_params_info(run)["warning"] is None


def _cli(argv, capsys, runner=None):
    from rfcn_face.__main__ import main
    rc = (runner or main)(argv)
    return rc, capsys.readouterr()


def test_train_resume_all_unreadable_stops_then_restarts_on_the_flag(tmp_path, capsys, monkeypatch):
    """The detector loop end to end: a run whose every checkpoint is truncated; --resume names them and stops
    (exit 2, nothing deleted), --resume --restart-if-unreadable trains from 0 and keeps them."""
    monkeypatch.setenv("RFCN_FACE_QUIET", "1")
    out = tmp_path / "run"
    args = ["train", "--config", str(FINAL_YAML), "--preset", "smoke", "--set", "train.max_size=128",
            "--no-progress", "--out", str(out)]
    rc, _ = _cli(args + ["--max-iters", "2", "--checkpoint-every", "1"], capsys)
    assert rc == 0 and json.loads((out / FINAL_META).read_text()) == {"iteration": 2}
    for c in (out / "checkpoints").iterdir():
        p = c / "model.params"
        p.write_bytes(p.read_bytes()[:200])
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    rc, r = _cli(args + ["--max-iters", "3", "--resume"], capsys)
    last = r.err.strip().splitlines()[-1]
    assert rc == 2 and last.startswith("error: --resume: no checkpoint") and all(b in last for b in before)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    rc, r = _cli(args + ["--max-iters", "1", "--resume", "--restart-if-unreadable"], capsys)
    assert rc == 0
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["iter-0000001"] + [f"unreadable-{b}" for b in before]
    assert json.loads((out / FINAL_META).read_text()) == {"iteration": 1}


def test_frn_resume_all_unreadable_stops(tmp_path, capsys):
    from rfcn_face.recognition.train import main as frn
    frn_args = ["--embedded", "--ids", "3", "--views", "3", "--train-views", "2", "--width", "0.125",
                "--batch-size", "3", "--out", str(tmp_path / "frn")]
    assert frn(frn_args + ["--epochs", "1"]) == 0
    (tmp_path / "frn" / "checkpoints" / "iter-0000001" / "state.json").write_text("")
    capsys.readouterr()
    assert frn(frn_args + ["--epochs", "2", "--resume"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "iter-0000001" in last and "state.json" in last and "--restart-if-unreadable" in last
    assert frn(frn_args + ["--epochs", "1", "--resume", "--restart-if-unreadable"]) == 0
    assert sorted(p.name for p in (tmp_path / "frn" / "checkpoints").iterdir()) == ["iter-0000001",
                                                                                   "unreadable-iter-0000001"]
