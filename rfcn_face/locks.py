"""One writer per output folder: a lock file ``FOLDER/.rfcn_face.lock`` holding the writer's pid and host.

Every verb that writes into a folder (``train`` incl. ``--resume``, FaceResNet training, ``test``, ``detect``,
``reproduce``, ``export``) holds :func:`folder_lock` on it while it writes. A second process asking for the same
folder is refused with one line naming the folder and the holder's pid (:class:`FolderBusy`, a ``ValueError``:
``run_guarded`` prints it). A lock whose pid is dead on this host (a killed run) is stale: it is taken over with a
warning. The lock file appears atomically with its content (written to a temporary file, then ``os.link``-ed to
the final name, which fails when the name exists), so a reader never sees a half-written lock. The same process
may take a lock it already holds (``reproduce`` / ``demo`` call ``train`` and ``test`` in-process).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["LOCK_NAME", "FolderBusy", "folder_lock", "lock_holder", "pid_alive"]

LOCK_NAME = ".rfcn_face.lock"
_HELD = {}                      # resolved folder -> nesting depth, for this process


class FolderBusy(ValueError):
    """Another live process writes into the folder."""


def _start_ticks(pid: int):
    """The process's start time (``/proc/PID/stat`` field 22, clock ticks since boot), or None where unknown: a
    lock records it so that a pid reused by an unrelated process after a kill is not taken for the holder."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int, start=None) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie counts as dead; with ``start``, a process of that
    pid started at another time, too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # exists, owned by someone else
        return True
    try:                          # a zombie (exited, not yet reaped) writes nothing more
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        return True
    now = _start_ticks(pid)
    return start is None or now is None or now == start


def lock_holder(folder) -> dict:
    """The content of ``folder``'s lock (``{}`` when there is none; ``{"unreadable": True}`` when damaged)."""
    p = Path(folder) / LOCK_NAME
    try:
        d = json.loads(p.read_text())
        return d if isinstance(d, dict) and isinstance(d.get("pid"), int) else {"unreadable": True}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"unreadable": True}


def _try_create(lock: Path, content: str) -> bool:
    fd, tmp = tempfile.mkstemp(prefix=f"{LOCK_NAME}.", dir=str(lock.parent))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        try:
            os.link(tmp, lock)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _acquire(folder: Path, verb: str, log) -> None:
    lock = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "verb": verb,
          "since": time.strftime("%Y-%m-%d %H:%M:%S"), "start": _start_ticks(os.getpid())}
    for _ in range(5):
        if _try_create(lock, json.dumps(me)):
            return
        h = lock_holder(folder)
        if not h:
            continue                                  # released meanwhile: try again
        if h.get("unreadable"):
            why = "unreadable"
        elif h.get("host") == me["host"] and not pid_alive(h["pid"], h.get("start")):
            why = f"pid {h['pid']} ({h.get('verb', '?')}) is not running any more"
        else:
            where = "" if h.get("host") == me["host"] else f" on {h.get('host')}"
            raise FolderBusy(f"{folder} is in use by another rfcn_face process (pid {h['pid']}{where}, "
                             f"{h.get('verb', '?')} since {h.get('since', '?')}): one writer per folder; wait for it "
                             f"to end or use another folder (remove {lock} only if that process is gone)")
        log(f"warning: {lock}: stale lock ({why}); taking it over")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
    raise FolderBusy(f"{folder}: could not take the lock {lock} (other processes keep taking it)")


@contextlib.contextmanager
def folder_lock(folder, verb: str, log=None, enabled: bool = True):
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; :class:`FolderBusy` when a live process
    holds it. ``verb`` is recorded in the lock (for the refusal message). ``enabled=False``: do nothing (a
    distributed worker that does not write)."""
    if not enabled:
        yield None
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if _HELD.get(key):
        _HELD[key] += 1
    else:
        if log is None:
            from .logs import get_logger
            log = get_logger().warning
        _acquire(folder, verb, log)
        _HELD[key] = 1
    try:
        yield folder / LOCK_NAME
    finally:
        _HELD[key] -= 1
        if not _HELD[key]:
            del _HELD[key]
            if lock_holder(folder).get("pid") == os.getpid():
                with contextlib.suppress(OSError):
                    os.unlink(folder / LOCK_NAME)
