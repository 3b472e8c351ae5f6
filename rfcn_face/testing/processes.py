"""Processes in tests: kill a child at a chosen moment (interrupted-run tests: resume, caches, temporary folders)
and find the processes of a launched job without psutil (``/proc``)."""
import os
import signal
import time
from typing import Callable, List

__all__ = ["sigkill_when", "pids_with_env", "wait_until"]


def sigkill_when(proc, ready, timeout: float, poll: float = 0.05) -> None:
    """Wait until ``ready()`` is true, then SIGKILL ``proc`` (a ``subprocess.Popen``) and reap it.

    Fails (AssertionError) when the process ends before it is ready or ``timeout`` seconds pass; the process is
    never left running."""
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the process ended (exit {proc.returncode}) before it could be killed"
            assert time.time() < deadline, f"not ready to be killed within {timeout} s"
            time.sleep(poll)
        assert proc.poll() is None, f"the process ended (exit {proc.returncode}) before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def pids_with_env(name: str, value: str) -> List[int]:
    """The live processes (of this user) whose environment holds ``name=value``, read from ``/proc/PID/environ``
    (a zombie's is empty, so exited processes are not listed)."""
    want = f"{name}={value}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:                      # gone meanwhile, or another user's
            continue
        if want in env:
            found.append(int(d))
    return found


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Poll ``condition()`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.time() + timeout
    while True:
        if condition():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(poll)
