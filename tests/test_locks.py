"""One writer per output folder (rfcn_face.locks, issue 25 class 2): a live holder refuses a second writer with the
folder and the pid; a dead holder's lock (killed run) is taken over with a warning; the lock leaves with its
holder; the same process may nest."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rfcn_face.locks import LOCK_NAME, FolderBusy, folder_lock, lock_holder, pid_alive

ROOT = Path(__file__).resolve().parents[1]
FINAL_YAML = ROOT / "experiments" / "table1" / "13_final.yaml"

HOLDER = """
import sys, time
from rfcn_face.locks import folder_lock
with folder_lock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder: Path) -> subprocess.Popen:
    """A real second process holding ``folder``'s lock (until killed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "held"
    return p


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(folder: Path, **content) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps(content))


def test_second_writer_refused_then_dead_holder_taken_over(tmp_path):
    d = tmp_path / "out"
    holder = _holder(d)
    try:
        with pytest.raises(FolderBusy) as e:
            with folder_lock(d, "train"):
                pass
        assert str(d) in str(e.value) and f"pid {holder.pid}" in str(e.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_holder(d)["pid"] == holder.pid                 # a killed holder leaves its lock: stale now
    said = []
    with folder_lock(d, "train", log=said.append):
        assert lock_holder(d)["pid"] == os.getpid()
    assert len(said) == 1 and "stale" in said[0] and str(holder.pid) in said[0]
    assert not (d / LOCK_NAME).exists()                         # released


def test_cli_train_into_a_folder_another_process_writes(tmp_path, capsys):
    """Two `train` into one folder (the first one a live process): the second is one error line, nothing written."""
    from rfcn_face.__main__ import main
    d = tmp_path / "run"
    holder = _holder(d)
    try:
        rc = main(["train", "--config", str(FINAL_YAML), "--preset", "smoke", "--max-iters", "1", "--no-progress",
                   "--out", str(d)])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and last.startswith("error:") and str(d) in last and f"pid {holder.pid}" in last
    assert sorted(p.name for p in d.iterdir()) == [LOCK_NAME]     # the refused run wrote nothing


def test_other_host_is_refused_and_names_the_host(tmp_path):
    d = tmp_path / "o"
    _write_lock(d, pid=_dead_pid(), host=socket.gethostname() + "-elsewhere", verb="test", since="x")
    with pytest.raises(FolderBusy, match="-elsewhere"):            # its pid cannot be checked from here
        with folder_lock(d, "test"):
            pass


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"pid": "12"}), json.dumps([1, 2])])
def test_damaged_lock_is_stale(tmp_path, content):
    d = tmp_path / "o"
    d.mkdir()
    (d / LOCK_NAME).write_text(content)
    said = []
    with folder_lock(d, "detect", log=said.append):
        assert lock_holder(d)["pid"] == os.getpid()
    assert said and "unreadable" in said[0]


def test_live_holder_on_this_host_refused(tmp_path):
    d = tmp_path / "o"
    _write_lock(d, pid=os.getppid(), host=socket.gethostname(), verb="train --resume", since="t")
    with pytest.raises(FolderBusy, match=f"pid {os.getppid()}.*train --resume"):
        with folder_lock(d, "train"):
            pass
    assert lock_holder(d)["pid"] == os.getppid()               # a refused writer leaves the holder's lock alone


def test_nested_in_one_process_and_disabled(tmp_path):
    d = tmp_path / "o"
    with folder_lock(d, "reproduce"):
        with folder_lock(d, "test"):
            assert lock_holder(d)["verb"] == "reproduce"
        assert (d / LOCK_NAME).exists()                         # the outer hold continues
    assert not (d / LOCK_NAME).exists()
    with folder_lock(tmp_path / "x", "train", enabled=False):
        assert not (tmp_path / "x").exists()


def test_pid_alive():
    assert pid_alive(os.getpid()) and pid_alive(os.getppid())
    assert not pid_alive(_dead_pid()) and not pid_alive(0) and not pid_alive(-5)
    z = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(100):                                       # exited but not reaped: a zombie writes nothing
        if Path(f"/proc/{z.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not pid_alive(z.pid)
    z.wait()


def test_a_reused_pid_is_not_the_holder(tmp_path):
    """A lock whose pid now belongs to a process started at another time (pid reuse after a kill) is stale."""
    d = tmp_path / "o"
    _write_lock(d, pid=os.getppid(), host=socket.gethostname(), verb="train", since="x", start=1)
    said = []
    with folder_lock(d, "train", log=said.append):
        assert lock_holder(d)["pid"] == os.getpid()
    assert said and "stale" in said[0]
    assert pid_alive(os.getpid(), None) and not pid_alive(os.getppid(), 1)
