"""The worker side of :mod:`rfcn_face.datasets.process_loader`, and the shared-memory transport of its samples.

A worker is ``python -c 'from rfcn_face.datasets.process_worker import main; main()' FD PARENT_PID``: a fresh
interpreter (no fork of the parent's MXNet engine) whose import chain holds no MXNet. On the socket ``FD``
(:class:`multiprocessing.connection.Connection` framing, pickled messages):

* parent -> worker: first ``{"sys_path", "builder" (pickled bytes), "prefix"}``, then tasks ``(seq, epoch, index)``;
  ``None`` or end of file ends the worker;
* worker -> parent: ``("ready", pid)`` once the builder is unpickled (``("fatal", text)`` if it cannot be), then
  per task, in order, ``("ok", seq, packed sample)`` or ``("error", seq, (exception name, message, traceback))``.

Samples travel out of band (:func:`pack` / :func:`unpack`): pickle protocol 5 hands every array's buffer to us;
they are copied into one file of ``/dev/shm`` per sample (``prefix + seq``) that the parent maps and unlinks at
once, so its arrays are views of shared pages (no copy through a pipe, no unpickling of 20 MB). Files a dead
process leaves behind are removed by :func:`sweep` (the worker on SIGTERM, the parent on close, and
:func:`sweep_stale` for processes that no longer exist).

A worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent shuts the workers down) and dies with
its parent: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on Linux plus a thread that watches the parent pid.
"""
from __future__ import annotations

import builtins
import mmap
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from ..locks import pid_alive

__all__ = ["pack", "unpack", "sweep", "sweep_stale", "segment_dir", "rebuild_error", "SEGMENT_TAG", "main"]

SEGMENT_TAG = "rfcnface-"       # segment files: <segment_dir>/rfcnface-<parent pid>-<token>-w<k>-<seq>
_ALIGN = 64
PR_SET_PDEATHSIG = 1            # <linux/prctl.h>


def segment_dir() -> Path:
    """``/dev/shm`` (a tmpfs: the pages are the shared memory) where it exists, else the temporary folder."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def pack(obj, path: str):
    """``obj`` as ``(pickle bytes, segment path or None, [(offset, nbytes)])``: its contiguous arrays' buffers are
    written into the new file ``path``, the rest is pickled."""
    buffers = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    layout, total = [], 0
    for v in views:
        layout.append((total, v.nbytes))
        total += -(-v.nbytes // _ALIGN) * _ALIGN
    if total == 0:
        return data, None, layout
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, total)
        with mmap.mmap(fd, total) as mm:
            for (off, n), v in zip(layout, views):
                mm[off:off + n] = v
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    return data, path, layout


def unpack(packed):
    """The object :func:`pack` wrote; its arrays are views of the mapped segment, which is unlinked here (the
    pages live as long as an array uses them)."""
    data, path, layout = packed
    if path is None:
        return pickle.loads(data, buffers=[b"" for _ in layout])
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, 0)
    finally:
        os.close(fd)
        os.unlink(path)
    view = memoryview(mm)
    return pickle.loads(data, buffers=[view[off:off + n] for off, n in layout])


def sweep(prefix: str) -> int:
    """Remove the segment files whose path starts with ``prefix``; returns how many."""
    p = Path(prefix)
    n = 0
    for f in p.parent.glob(p.name + "*"):
        try:
            f.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def sweep_stale(folder=None) -> int:
    """Remove segment files left by loaders whose parent process no longer exists (a SIGKILLed run)."""
    n = 0
    for f in Path(folder or segment_dir()).glob(SEGMENT_TAG + "*"):
        pid = f.name[len(SEGMENT_TAG):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            n += sweep(str(f))
    return n


def rebuild_error(name: str, message: str, trace: str) -> Exception:
    """The main-process twin of a worker's exception: the same built-in class (ValueError, OSError, ...) with
    the worker's message, else RuntimeError; the worker's traceback as a note."""
    cls = getattr(builtins, name, None)
    err = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            err = cls(message)
        except Exception:   # a built-in with another signature (UnicodeDecodeError, ...)
            err = None
    if err is None:
        err = RuntimeError(f"{name}: {message}")
    err.add_note("in the training-loader worker:\n" + trace.rstrip())
    return err


# ------------------------------------------------------------------------------------------------ the worker
def _die_with_parent(parent_pid: int, cleanup) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        cleanup()
        os._exit(1)
    if os.getppid() != parent_pid:          # the parent died before prctl took effect
        cleanup()
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _error_payload(exc: BaseException, builder, index) -> tuple:
    describe = getattr(builder, "describe", None)
    where = describe(index) if describe is not None else f"image {index}"
    msg = str(exc).strip() or type(exc).__name__
    if where not in msg:
        msg = f"{where}: {msg}"
    # the nearest built-in class (a DamagedImage travels as the ValueError it is): the parent rebuilds that one
    name = next(c.__name__ for c in type(exc).__mro__ if getattr(builtins, c.__name__, None) is c)
    return name, msg, traceback.format_exc()


def _serve(conn, builder, prefix: str) -> None:
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        seq, epoch, index = task
        try:
            reply = ("ok", seq, pack(builder(epoch, index), f"{prefix}{seq}"))
        except Exception as e:
            reply = ("error", seq, _error_payload(e, builder, index))
        try:
            conn.send(reply)
        except OSError:                      # the parent has gone
            return


def main(argv=None) -> None:
    from multiprocessing.connection import Connection
    fd, parent_pid = (int(a) for a in (sys.argv[1:] if argv is None else argv))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    setup = conn.recv()
    prefix = setup["prefix"]

    def cleanup():
        sweep(prefix)

    def on_term(signum, frame):
        cleanup()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    signal.signal(signal.SIGTERM, on_term)
    _die_with_parent(parent_pid, cleanup)
    sys.path[:] = list(setup["sys_path"]) + [p for p in sys.path if p not in setup["sys_path"]]
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass
    try:
        builder = pickle.loads(setup["builder"])
    except Exception as e:
        conn.send(("fatal", f"the sample builder does not unpickle in a worker process: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    _serve(conn, builder, prefix)
