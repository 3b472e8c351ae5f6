"""Start an MXNet parameter-server job on this machine: one scheduler, S servers and W workers, plain processes
of this Python with the ``DMLC_*`` variables on the loopback interface (MXNet's own ``dist_sync`` kvstore; no
gradient exchange of our own).

The scheduler and the servers only ``import mxnet`` (with ``DMLC_ROLE`` set, importing MXNet runs the role and
exits when the workers finish). Each worker runs ``python -m rfcn_face <command>``; for ``train`` the launcher
adds ``--kvstore dist_sync`` unless a kvstore is given. The job ends when every worker has exited: with the
first non-zero exit the other processes are stopped and that code is returned.

Several machines: the same variables set per host (``docs/training.md``), or MXNet's ``tools/launch.py``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence

__all__ = ["free_port", "dmlc_env", "split_command", "has_kvstore", "launch"]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (so parallel jobs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dmlc_env(role: str, workers: int, servers: int, port: int, host: str = "127.0.0.1", base=None) -> dict:
    """The environment of one process of the job (``role``: scheduler | server | worker)."""
    env = dict(os.environ if base is None else base)
    env.update({"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": host, "DMLC_PS_ROOT_PORT": str(port),
                "DMLC_NUM_SERVER": str(servers), "DMLC_NUM_WORKER": str(workers)})
    env.setdefault("PS_VERBOSE", "0")
    return env


def split_command(command: Sequence[str]) -> List[str]:
    """The workers' ``rfcn_face`` command: what follows ``--`` (argparse's REMAINDER keeps it); an error when empty."""
    cmd = list(command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ValueError("launch: give the command after '--', e.g. launch --workers 2 -- train --config ROW.yaml "
                         "--out RUN_DIR")
    return cmd


def has_kvstore(cmd: Sequence[str]) -> bool:
    """Whether the command gives ``--kvstore`` itself (``--kvstore X`` or ``--kvstore=X``)."""
    return any(a == "--kvstore" or a.startswith("--kvstore=") for a in cmd)


def _worker_command(command: Sequence[str]) -> List[str]:
    cmd = split_command(command)
    if cmd[0] == "train" and not has_kvstore(cmd):
        cmd += ["--kvstore", "dist_sync"]
    return [sys.executable, "-m", "rfcn_face"] + cmd


def launch(command: Sequence[str], workers: int, servers: int = 1, port: Optional[int] = None,
           timeout: Optional[float] = None, stop_grace: float = 20.0) -> int:
    """Run the job; returns 0 when every worker succeeded, else the first non-zero worker exit code."""
    if workers < 1 or servers < 1:
        raise ValueError(f"launch needs --workers >= 1 and --servers >= 1, got {workers} and {servers}")
    cmd = _worker_command(command)
    port = free_port() if port is None else int(port)
    helper = [sys.executable, "-c", "import mxnet"]
    procs = [subprocess.Popen(helper, env=dmlc_env("scheduler", workers, servers, port))]
    procs += [subprocess.Popen(helper, env=dmlc_env("server", workers, servers, port)) for _ in range(servers)]
    ws = [subprocess.Popen(cmd, env=dmlc_env("worker", workers, servers, port)) for _ in range(workers)]
    t0, code = time.time(), 0
    try:
        pending = list(ws)
        while pending:
            for p in list(pending):
                rc = p.poll()
                if rc is None:
                    continue
                pending.remove(p)
                if rc != 0 and code == 0:
                    code = rc
                    for q in pending:
                        q.terminate()
            if code != 0:
                break
            if timeout is not None and time.time() - t0 > timeout:
                code = 124
                break
            time.sleep(0.1)
    finally:
        for p in ws:
            if p.poll() is None:
                p.terminate()
        deadline = time.time() + (stop_grace if code == 0 else 2.0)
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
        for p in ws + procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return code
