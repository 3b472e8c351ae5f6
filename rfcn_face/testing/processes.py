"""Kill a child process at a chosen moment, for the interrupted-run tests (resume, caches, temporary folders)."""
import signal
import time

__all__ = ["sigkill_when"]


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
