"""The multi-host launcher (rfcn_face.launch): host lists, role placement, every role's DMLC_* variables, the ssh
command line (run through a real shell, and through a stand-in ssh), and the lifecycle: a role that dies, a
signal to the launcher and a busy port each end the whole job, non-zero, with one line naming what happened, and
leave no process behind. Distinct loopback addresses (127.0.0.2, 127.0.0.3) stand in for two machines.

The two-"host" run that equals ``--cpus 2`` is in tests/test_train.py (beside the single-host one)."""
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rfcn_face.__main__ import main
from rfcn_face.launch import (LAUNCHERS, Host, Job, JobResult, LocalLauncher, Role, RoleProcess, SshLauncher,
                              _SignalFlag, _StderrReader, dmlc_env, forwarded_env, parse_hosts, plan_roles, read_hostfile, run_job)
from rfcn_face.testing.processes import pids_with_env, wait_until

ROOT = Path(__file__).resolve().parents[1]
FINAL = str(ROOT / "experiments" / "table1" / "13_final.yaml")
H2, H3 = Host("127.0.0.2", "127.0.0.2"), Host("127.0.0.3", "127.0.0.3")


# ------------------------------------------------------------------------------------------------ hosts, placement
def test_parse_hosts_keeps_names_and_resolves_addresses():
    assert parse_hosts("127.0.0.2,127.0.0.3") == [H2, H3]
    assert parse_hosts(" alice@127.0.0.5 , localhost") == [Host("alice@127.0.0.5", "127.0.0.5"),
                                                           Host("localhost", "127.0.0.1")]
    for bad in ("", ",", "127.0.0.2,,127.0.0.3", "a b"):
        with pytest.raises(ValueError, match="--hosts"):
            parse_hosts(bad)
    with pytest.raises(ValueError, match="cannot resolve host 'no-such-host.invalid'"):
        parse_hosts("127.0.0.2,no-such-host.invalid")


def test_read_hostfile_comments_blank_lines_and_errors(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("\ufeff# the scheduler's host first\n127.0.0.2   # node a\n\n  bob@127.0.0.3\n")
    assert read_hostfile(f) == [H2, Host("bob@127.0.0.3", "127.0.0.3")]
    f.write_text("127.0.0.2\n127.0.0.3 slots=4\n")
    with pytest.raises(ValueError, match=rf"{f}:2: one host per line"):
        read_hostfile(f)
    f.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no host in the file"):
        read_hostfile(f)
    with pytest.raises(FileNotFoundError, match="--hostfile not found"):
        read_hostfile(tmp_path / "nope")
    with pytest.raises(ValueError, match="is a folder"):
        read_hostfile(tmp_path)


def test_plan_roles_scheduler_first_host_then_round_robin():
    got = [(r.kind, r.index, r.host.name) for r in plan_roles([H2, H3], workers=2, servers=1)]
    assert got == [("scheduler", 0, "127.0.0.2"), ("server", 0, "127.0.0.2"), ("worker", 0, "127.0.0.3"),
                   ("worker", 1, "127.0.0.2")]
    got = [(r.kind, r.index, r.host.name) for r in plan_roles([H2, H3], workers=2, servers=2)]
    assert got == [("scheduler", 0, "127.0.0.2"), ("server", 0, "127.0.0.2"), ("server", 1, "127.0.0.3"),
                   ("worker", 0, "127.0.0.2"), ("worker", 1, "127.0.0.3")]       # one worker per machine
    assert [r.host for r in plan_roles([H2], 3, 2)] == [H2] * 6


class Recorder(LocalLauncher):
    """Records what would start instead of starting it."""

    def __init__(self):
        super().__init__()
        self.started = []

    def start(self, role, argv, env, capture):
        self.started.append((role, argv, env, capture))
        return RoleProcess(role, None, None)


def test_every_role_gets_its_dmlc_variables():
    rec = Recorder()
    with _SignalFlag() as flag:
        Job(rec, plan_roles([H2, H3], 2, 1), ["train", "--out", "r"], 2, 1, 9123, flag).start()
    roles = [(str(r), env["DMLC_ROLE"], env["DMLC_NODE_HOST"]) for r, _, env, _ in rec.started]
    assert roles == [("scheduler on 127.0.0.2", "scheduler", "127.0.0.2"), ("server 0 on 127.0.0.2", "server", "127.0.0.2"),
                     ("worker 0 on 127.0.0.3", "worker", "127.0.0.3"), ("worker 1 on 127.0.0.2", "worker", "127.0.0.2")]
    for role, argv, env, capture in rec.started:
        assert {k: env[k] for k in ("DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER")} \
            == {"DMLC_PS_ROOT_URI": "127.0.0.2", "DMLC_PS_ROOT_PORT": "9123", "DMLC_NUM_SERVER": "1",
                "DMLC_NUM_WORKER": "2"}
        if role.kind == "worker":
            assert argv == [sys.executable, "-m", "rfcn_face", "train", "--out", "r", "--kvstore", "dist_sync"]
            assert not capture                          # a worker's messages reach the user as they come
        else:
            assert argv == [sys.executable, "-c", "import mxnet"] and capture
    assert dmlc_env("server", 3, 2, 1, "10.0.0.1", base={}, node_host="10.0.0.9")["DMLC_NODE_HOST"] == "10.0.0.9"
    assert dmlc_env("scheduler", 3, 2, 1, "10.0.0.1", base={})["DMLC_NODE_HOST"] == "10.0.0.1"


def test_launcher_registry_and_argument_errors():
    assert sorted(LAUNCHERS) == ["local", "ssh"]
    with pytest.raises(ValueError, match="--ssh-command needs --launcher ssh"):
        run_job(["train"], 1, hosts=[H2], launcher="local", ssh_command="ssh -p 2")
    with pytest.raises(ValueError, match="unknown launcher 'mpi'"):
        run_job(["train"], 1, hosts=[H2], launcher="mpi")
    with pytest.raises(ValueError, match="192.0.2.7 is not an address of this machine"):
        run_job(["train"], 1, hosts=[H2, Host("192.0.2.7", "192.0.2.7")], launcher="local")


# ------------------------------------------------------------------------------------------------ the ssh command
def test_forwarded_environment_is_the_listed_variables_only():
    env = {"PYTHONPATH": "/w", "PYTHONHOME": "/x", "OMP_NUM_THREADS": "2", "MXNET_ENGINE_TYPE": "x", "PS_VERBOSE": "1",
           "RFCN_FACE_CACHE": "/c", "NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "0", "HOME": "/h",
           "SSH_AUTH_SOCK": "/s", "DMLC_ROLE": "stale", "PATH": "/bin"}
    assert forwarded_env(env) == {k: env[k] for k in ("PYTHONPATH", "OMP_NUM_THREADS", "MXNET_ENGINE_TYPE",
                                                      "PS_VERBOSE", "RFCN_FACE_CACHE", "NCCL_DEBUG",
                                                      "CUDA_VISIBLE_DEVICES")}


def test_ssh_command_line_exports_the_environment_cwd_and_python():
    la = SshLauncher("ssh -p 2222 -i '/keys/my key'")
    role = Role("worker", 1, Host("alice@node2", "10.0.0.2"))
    argv = [sys.executable, "-m", "rfcn_face", "train", "--set", "train.lr=0.01 # x", "--out", "/runs/a b"]
    env = {"DMLC_ROLE": "worker", "DMLC_NODE_HOST": "10.0.0.2", "PYTHONPATH": "/w t"}
    cmd = la.command(role, argv, env, cwd="/work/my tree")
    assert cmd[:5] == ["ssh", "-p", "2222", "-i", "/keys/my key"] and cmd[5] == "alice@node2" and len(cmd) == 7
    words = shlex.split(cmd[6])
    assert words[:9] == ["cd", "/work/my tree", "&&", "echo", "rfcn_face-launch-pid", "$$", ">&2", "&&", "exec"]
    assert words[9:13] == ["env", "DMLC_NODE_HOST=10.0.0.2", "DMLC_ROLE=worker", "PYTHONPATH=/w t"]
    assert words[13:] == argv
    assert SshLauncher().ssh[:3] == ["ssh", "-o", "BatchMode=yes"]          # never a password prompt
    with pytest.raises(ValueError, match="--ssh-command"):
        SshLauncher("ssh -o 'unclosed")


def test_ssh_remote_command_runs_in_a_real_shell(tmp_path):
    """The remote part, run by /bin/sh as sshd would: the pid line first, then the role in CWD with its variables
    (values with spaces and quotes survive) and the same Python."""
    (tmp_path / "a dir").mkdir()
    show = "import json, os, sys; print(json.dumps([os.getcwd(), os.environ['DMLC_X'], sys.executable]))"
    remote = SshLauncher().remote_command([sys.executable, "-c", show], {"DMLC_X": "it's a \"v\" $HOME"},
                                          cwd=str(tmp_path / "a dir"))
    p = subprocess.run(["/bin/sh", "-c", remote], capture_output=True, text=True, timeout=30,
                       start_new_session=True)
    assert p.returncode == 0, p.stderr
    marker, pid = p.stderr.split()
    assert marker == "rfcn_face-launch-pid" and int(pid) > 0
    assert json.loads(p.stdout) == [str(tmp_path / "a dir"), "it's a \"v\" $HOME", sys.executable]


def test_stderr_reader_takes_out_the_pid_line_after_ssh_warnings(capsys):
    """The ssh role's stderr: ssh's own warning, then our pid line (split over two reads), then the role's
    output, passed on live without the pid line."""
    r, w = os.pipe()
    reader = _StderrReader(os.fdopen(r, "rb"), live=True, marker=True)
    for chunk in (b"Warning: Permanently added 'node2' to the list of known hosts.\nrfcn_face-lau",
                  b"nch-pid 4242\nepoch 1", b" done\n\xc3", b"\xa9t\xc3\xa9\n"):
        os.write(w, chunk)
        time.sleep(0.05)
    os.close(w)
    reader.join(5)
    expected = "Warning: Permanently added 'node2' to the list of known hosts.\nepoch 1 done\n\u00e9t\u00e9\n"
    assert reader.remote_pid == 4242 and reader.tail == expected and capsys.readouterr().err == expected
    assert reader.last_line() == "\u00e9t\u00e9"
    r, w = os.pipe()
    reader = _StderrReader(os.fdopen(r, "rb"), live=False, marker=False)
    os.write(w, b"rfcn_face-launch-pid 7\nbind failed")
    os.close(w)
    reader.join(5)
    assert reader.remote_pid is None and reader.tail == "rfcn_face-launch-pid 7\nbind failed"
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------------ watch rules
class FakeProc:
    def __init__(self, codes):
        self.codes = list(codes)         # poll() results, the last one repeats

    def poll(self):
        return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]


class FakeReader:
    def __init__(self, tail=""):
        self.tail, self.remote_pid = tail, None

    def last_line(self):
        return self.tail.strip().splitlines()[-1] if self.tail.strip() else ""


def _watch(polls, tails=None, finish_grace=60.0, timeout=None):
    """Job.watch over scripted roles (scheduler, server 0, worker 0 on 127.0.0.3, worker 1); ``polls``: per role
    the sequence of poll() results."""
    roles = plan_roles([H2, H3], 2, 1)
    with _SignalFlag() as flag:
        job = Job(LocalLauncher(), roles, ["train"], 2, 1, 9123, flag)
        job.procs = [RoleProcess(r, FakeProc(p), FakeReader((tails or {}).get(r.kind, "")))
                     for r, p in zip(roles, polls)]
        return job.watch(timeout, finish_grace, poll=0.001)


def test_watch_rules_literal():
    run = [None]
    assert _watch([run, run, [None, 0], [None, None, 0]]) == JobResult(0)
    assert _watch([run, run, [None, 1], run]) == JobResult(1, "worker 0 on 127.0.0.3 exited with code 1 (its message "
                                                              "is above)")
    assert _watch([[None, -9], run, run, run]) == JobResult(137, "scheduler on 127.0.0.2 was killed by SIGKILL")
    assert _watch([run, [None, -15], run, run]) == JobResult(143, "server 0 on 127.0.0.2 was killed by SIGTERM")
    assert _watch([run, [None, 1], run, run], {"server": "Traceback\nMXNetError: out of memory\n"}) == \
        JobResult(1, "server 0 on 127.0.0.2 exited with code 1: MXNetError: out of memory")
    bind = "MXNetError: Check failed: my_node_.port != -1 (-1 vs. -1) : bind failed\n"
    assert _watch([[None, 1], run, run, run], {"scheduler": bind}) == JobResult(
        2, "the scheduler on 127.0.0.2 could not bind 127.0.0.2:9123: the port is in use (choose another --port)")
    # the scheduler ends normally, one worker never does: the job ends after finish_grace, naming it
    res = _watch([[None, 0], run, [0], run], finish_grace=0.05)
    assert res == JobResult(1, "scheduler on 127.0.0.2 ended, but worker 1 on 127.0.0.2 was still running 0.05 s later")
    assert _watch([run, run, run, run], timeout=0.05).code == 124


# ------------------------------------------------------------------------------------------------ real processes
def _train(out, iters=400):
    return ["train", "--config", FINAL, "--preset", "smoke", "--set", "train.max_size=128", "--max-iters", str(iters),
            "--no-progress", "--out", str(out)]


def _launcher(tmp_path, port, *extra, workers=2):
    """``python -m rfcn_face launch`` as a real process (its own group, so the test can signal it alone)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RFCN_FACE_QUIET="1")
    argv = [sys.executable, "-m", "rfcn_face", "launch", "--hosts", "127.0.0.2,127.0.0.3", "--port", str(port),
            *extra, "--workers", str(workers), "--servers", "1", "--", *_train(tmp_path / "run")]
    return subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _job(port):
    return pids_with_env("DMLC_PS_ROOT_PORT", str(port))


def _role_pid(port, role):
    pids = set(_job(port)) & set(pids_with_env("DMLC_ROLE", role))
    return min(pids) if pids else None


def _training(tmp_path, port, n_roles):
    """All roles are up and the workers have finished an iteration (worker 0 wrote a metrics row)."""
    m = tmp_path / "run" / "metrics.jsonl"
    return len(_job(port)) >= n_roles and m.is_file() and m.read_text().strip() != ""


def _finish(proc, port, within):
    """The launcher's exit code and stderr, once it ended within ``within`` s; then no process of the job."""
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in _job(port):
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the launcher did not end within {within} s")
    assert wait_until(lambda: not _job(port), 10.0), f"left behind: {_job(port)}"
    return proc.returncode, err


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


@pytest.fixture
def port():
    p = _port()
    yield p
    for pid in _job(p):                      # never leave a process of a failed test behind
        os.kill(pid, signal.SIGKILL)


def _fake_ssh(tmp_path):
    """A stand-in ssh client: runs the remote command in a new session on this machine, as sshd does (so the
    "remote" role is not in the client's process group: only the remote kill stops it); like OpenSSH it exits
    255 when the remote command died of a signal."""
    fake = tmp_path / "fake_ssh"
    fake.write_text(f"#!{sys.executable}\nimport subprocess, sys\n"
                    "rc = subprocess.Popen(['/bin/sh', '-c', sys.argv[-1]], start_new_session=True).wait()\n"
                    "sys.exit(255 if rc < 0 else rc)\n")
    fake.chmod(0o755)
    return ["--launcher", "ssh", "--ssh-command", str(fake)]


STOPPED = {signal.SIGTERM: "error: launch: stopped by SIGTERM; every role of the job was stopped",
           signal.SIGHUP: "error: launch: stopped by SIGHUP; every role of the job was stopped",
           signal.SIGINT: "error: interrupted; rerun the job with --resume added to the train command to continue "
                          "from the last checkpoint"}


@pytest.mark.parametrize("sig,launcher", [(signal.SIGTERM, "local"),
                                          pytest.param(signal.SIGINT, "local", marks=pytest.mark.slow),
                                          pytest.param(signal.SIGHUP, "ssh", marks=pytest.mark.slow)])
def test_a_signal_to_the_launcher_stops_every_role_within_10_s(tmp_path, port, sig, launcher):
    extra = _fake_ssh(tmp_path) if launcher == "ssh" else ["--launcher", "local"]
    proc = _launcher(tmp_path, port, *extra)
    try:
        assert wait_until(lambda: _training(tmp_path, port, 4) or proc.poll() is not None, 60.0)
        assert proc.poll() is None, proc.communicate()[1]
        t0 = time.time()
        proc.send_signal(sig)
        code, err = _finish(proc, port, within=10.0)
        assert time.time() - t0 < 10.0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + sig
    assert err.strip().splitlines()[-1] == STOPPED[sig]


def test_killed_scheduler_ends_the_job_naming_it(tmp_path, port):
    proc = _launcher(tmp_path, port, "--launcher", "local")
    assert wait_until(lambda: _training(tmp_path, port, 4) or proc.poll() is not None, 60.0)
    assert proc.poll() is None, proc.communicate()[1]
    os.kill(_role_pid(port, "scheduler"), signal.SIGKILL)
    code, err = _finish(proc, port, within=60.0)
    assert code != 0
    assert err.strip().splitlines()[-1] == ("error: launch: the dist_sync job failed: scheduler on 127.0.0.2 was "
                                            "killed by SIGKILL")


def test_killed_server_ends_the_job_naming_it_through_ssh(tmp_path, port):
    """The ssh launcher (the stand-in client): a server killed mid-run ends the job, no remote process is left."""
    proc = _launcher(tmp_path, port, *_fake_ssh(tmp_path), workers=1)
    assert wait_until(lambda: _training(tmp_path, port, 3) or proc.poll() is not None, 60.0)
    assert proc.poll() is None, proc.communicate()[1]
    os.kill(_role_pid(port, "server"), signal.SIGKILL)
    code, err = _finish(proc, port, within=60.0)
    assert code != 0
    assert err.strip().splitlines()[-1] == ("error: launch: the dist_sync job failed: server 0 on 127.0.0.2 exited "
                                            "with code 255")


def test_busy_port_is_a_one_line_error_before_anything_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(LocalLauncher, "start", lambda *a: pytest.fail("no role may start on a busy port"))
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        s.listen()
        busy = s.getsockname()[1]
        code = main(["launch", "--launcher", "local", "--hosts", "127.0.0.2,127.0.0.3", "--port", str(busy),
                     "--workers", "2", "--", *_train(tmp_path / "run", 2)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: --port {busy} is in use on 127.0.0.2: choose another --port (or leave it "
                                 "out for a free one)"]


def test_scheduler_that_cannot_bind_is_a_port_error(tmp_path, capsys, monkeypatch, port):
    """The port taken between the check and the scheduler's bind: the scheduler's failure is recognised."""
    monkeypatch.setattr(LocalLauncher, "check_port", lambda *a: None)
    with socket.socket() as s:
        s.bind(("127.0.0.2", port))
        s.listen()
        code = main(["launch", "--launcher", "local", "--hosts", "127.0.0.2,127.0.0.3", "--port", str(port),
                     "--workers", "2", "--", *_train(tmp_path / "run", 2)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == (f"error: launch: the dist_sync job failed: the scheduler on 127.0.0.2 could not bind "
                       f"127.0.0.2:{port}: the port is in use (choose another --port)")
    assert "Traceback" not in "\n".join(err)
    assert wait_until(lambda: not _job(port), 10.0)
