"""Training samples built in worker processes: ``for samples in ProcessLoader(builder, jobs, workers=W)``.

* ``jobs`` yields one list of ``(epoch, index)`` per iteration; the loader yields, in the same order, the list of
  ``builder(epoch, index)`` results (:class:`rfcn_face.datasets.batches.SampleBuilder`: decode, transforms,
  normalisation and the prediction-free anchor targets), ``prefetch`` iterations ahead of the consumer at most.
  The samples do not depend on the worker count: every draw is keyed by (seed, stream, epoch, image).
* ``W`` worker processes (:mod:`rfcn_face.datasets.process_worker`) are fresh interpreters — not forks of this
  process and its MXNet engine — with an MXNet-free import chain, one OpenMP / OpenCV thread each. Each unpickles
  ``builder`` once; its class must be importable (not defined in ``__main__``). Arrays come back through shared
  memory (:func:`~rfcn_face.datasets.process_worker.pack`).
* A background thread (the receiver) hands tasks to the workers, at most two per worker, takes the finished
  samples, runs the optional ``to_device(sample, pos)`` hook on them (``pos``: the sample's place in its
  iteration, e.g. to pick its device; NDArrays / device copies, off the main
  thread) and files them by iteration; the consumer only picks up complete iterations. ``stall`` accumulates the
  seconds the consumer waited.
* Faults: an exception in the builder is raised in the consumer with the image's path (same built-in class, the
  worker's traceback as a note); a worker that dies (SIGKILL, segfault, out of memory) is a one-line
  :class:`LoaderWorkerDied` naming the image it was building and its exit signal — the receiver watches every
  worker's socket with a timeout and polls the processes, so nothing hangs. :meth:`ProcessLoader.close` (also
  on leaving the loop, at interpreter exit and on an error) ends every worker; a worker also dies with this
  process (``PR_SET_PDEATHSIG`` and a parent-pid watchdog), so a killed run leaves no orphan. Create the loader
  in a thread that outlives it (Linux sends the parent-death signal when the creating thread ends).

``data.num_workers`` (:func:`loader_workers`): the number of worker processes; 0 = ``min(cores - 1, 8)``, at
least 1.
"""
from __future__ import annotations

import atexit
import os
import pickle
import secrets
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from .process_worker import SEGMENT_TAG, rebuild_error, segment_dir, sweep, sweep_stale, unpack

__all__ = ["ProcessLoader", "LoaderWorkerDied", "loader_workers", "auto_workers", "MAX_AUTO_WORKERS"]

MAX_AUTO_WORKERS = 8
INFLIGHT_PER_WORKER = 2            # a worker always has its next task queued
_WORKER_CMD = "from rfcn_face.datasets.process_worker import main; main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_LIVE = weakref.WeakSet()


class LoaderWorkerDied(RuntimeError):
    """A worker process ended while the loader needed it (``code``: the exit status of the command)."""
    code = 1


def auto_workers(cores: Optional[int] = None) -> int:
    """``min(cores - 1, 8)``, at least 1; ``cores`` defaults to the CPUs this process may run on."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(int(cores) - 1, MAX_AUTO_WORKERS))


def loader_workers(cfg) -> int:
    """The worker processes of the training loader: ``data.num_workers``, 0 = :func:`auto_workers`."""
    n = int(cfg.data.num_workers)
    return n if n > 0 else auto_workers()


@dataclass
class _Task:
    seq: int
    iteration: int
    pos: int
    epoch: int
    index: int


def _worker_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT] + [p for p in paths if p != _PACKAGE_ROOT])
    return env


class _Worker:
    """One worker process and the parent's end of its socket (used by the receiver thread only)."""

    def __init__(self, k: int, prefix: str, env: dict):
        import socket
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CMD, str(theirs.fileno()), str(os.getpid())],
                                         pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.k, self.prefix, self.conn = k, prefix, Connection(ours.detach())
        self.pending, self.ready = deque(), False

    def submit(self, task: _Task) -> None:
        self.conn.send((task.seq, task.epoch, task.index))
        self.pending.append(task)

    def died(self, describe: Callable) -> LoaderWorkerDied:
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:     # its socket closed but it lingers: end it
            self.proc.kill()
            rc = self.proc.wait()
        if rc < 0:
            try:
                how = f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                how = f"was killed by signal {-rc}"
        else:
            how = f"exited with code {rc}"
        t = self.pending[0] if self.pending else None
        what = ("while starting" if not self.ready else
                f"while building {describe(t.index)} (epoch {t.epoch}, image {t.index})" if t is not None
                else "between images")
        hint = "; out of memory? lower data.num_workers" if rc == -signal.SIGKILL else ""
        return LoaderWorkerDied(f"training loader worker {self.k} (pid {self.proc.pid}) {how} {what}{hint}")

    def stop(self, grace: float) -> None:
        """End the process: end of file on its socket, then SIGTERM after ``grace`` seconds, then SIGKILL."""
        try:
            self.conn.close()
        except OSError:
            pass
        for sig, wait_s in ((None, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                return
            if sig is not None:
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    return
            try:
                self.proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                pass


class _Receiver:
    """The state the receiver thread and the consumer share: the job window, the workers' tasks and the finished
    iterations (``done``, under ``cond``). :meth:`run` is the receiver thread."""

    def __init__(self, workers, jobs, setup: dict, prefetch: int, to_device, describe, poll: float):
        self.workers, self.jobs, self.setup = workers, iter(jobs), setup
        self.prefetch, self.to_device, self.describe, self.poll = prefetch, to_device, describe, poll
        self.cond, self.stop = threading.Condition(), threading.Event()
        self.error, self.exhausted = None, False
        self.taken = self.pulled = self.seq = 0
        self.tasks, self.done, self.slots, self.missing = deque(), {}, {}, {}
        self.wake_r, self.wake_w = os.pipe()

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def run(self) -> None:
        try:
            for w in self.workers:
                try:
                    w.conn.send(dict(self.setup, prefix=w.prefix))
                except OSError:
                    raise w.died(self.describe) from None
            while not self.stop.is_set():
                self._pull()
                self._dispatch()
                by_conn = {w.conn: w for w in self.workers}
                ready = wait(list(by_conn) + [self.wake_r], timeout=self.poll)
                for r in ready:
                    if r == self.wake_r:
                        os.read(self.wake_r, 4096)
                    elif not self.stop.is_set():
                        self._receive(by_conn[r])
                if not ready:
                    for w in self.workers:
                        if w.proc.poll() is not None:
                            raise w.died(self.describe)
        except BaseException as e:   # handed to the consumer
            with self.cond:
                if not self.stop.is_set():
                    self.error = e
                self.cond.notify_all()

    def _pull(self) -> None:
        """Take jobs while the window (``prefetch`` iterations past the consumer's) allows."""
        while not self.exhausted and self.pulled < self.taken + max(1, self.prefetch):
            try:
                job = [(int(e), int(i)) for e, i in next(self.jobs)]
            except StopIteration:
                with self.cond:
                    self.exhausted = True
                    self.cond.notify_all()
                return
            if self.prefetch <= 0:       # auto: room for two tasks per worker
                self.prefetch = max(2, -(-INFLIGHT_PER_WORKER * len(self.workers) // max(1, len(job))))
            it = self.pulled
            self.slots[it], self.missing[it] = [None] * len(job), len(job)
            for pos, (epoch, index) in enumerate(job):
                self.tasks.append(_Task(self.seq, it, pos, epoch, index))
                self.seq += 1
            self.pulled += 1
            if not job:
                self._complete(it)

    def _dispatch(self) -> None:
        """Each task to the least busy worker (so an iteration's images spread over the workers)."""
        while self.tasks:
            w = min(self.workers, key=lambda w: len(w.pending))
            if len(w.pending) >= INFLIGHT_PER_WORKER:
                return
            w.submit(self.tasks.popleft())

    def _receive(self, w: _Worker) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            raise w.died(self.describe) from None
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            return
        if kind == "fatal":
            raise RuntimeError(f"training loader worker {w.k}: {msg[1]}")
        task = w.pending.popleft()
        if msg[1] != task.seq:
            raise RuntimeError(f"training loader worker {w.k} answered task {msg[1]}, expected {task.seq}")
        if kind == "error":
            raise rebuild_error(*msg[2])
        sample = unpack(msg[2])
        if self.to_device is not None:
            sample = self.to_device(sample, task.pos)
        self.slots[task.iteration][task.pos] = sample
        self.missing[task.iteration] -= 1
        if self.missing[task.iteration] == 0:
            self._complete(task.iteration)

    def _complete(self, it: int) -> None:
        del self.missing[it]
        with self.cond:
            self.done[it] = self.slots.pop(it)
            self.cond.notify_all()


class ProcessLoader:
    """See the module docstring. ``prefetch``: iterations built ahead (0 = room for two tasks per worker, at
    least 2); ``poll``: seconds between the receiver's and the consumer's liveness checks."""

    def __init__(self, builder, jobs: Iterable[List[tuple]], workers: int = 1, prefetch: int = 0,
                 to_device: Optional[Callable] = None, poll: float = 0.5):
        self.num_workers, self.stall, self._closed = max(1, int(workers)), 0.0, False
        folder = segment_dir()
        sweep_stale(folder)
        self._prefix = str(folder / f"{SEGMENT_TAG}{os.getpid()}-{secrets.token_hex(4)}-")
        setup = {"sys_path": list(sys.path), "builder": pickle.dumps(builder, protocol=5)}
        workers = []
        self._rx = _Receiver(workers, jobs, setup, int(prefetch), to_device,
                             getattr(builder, "describe", lambda index: f"image {index}"), float(poll))
        self._thread = threading.Thread(target=self._rx.run, name="loader-receiver", daemon=True)
        try:
            env = _worker_env()
            for k in range(self.num_workers):
                workers.append(_Worker(k, f"{self._prefix}w{k}-", env))
        except BaseException:
            self.close()
            raise
        _LIVE.add(self)
        self._thread.start()

    @property
    def pids(self) -> List[int]:
        """The worker processes' ids."""
        return [w.proc.pid for w in self._rx.workers]

    def __iter__(self):
        try:
            while True:
                samples = self._next()
                if samples is None:
                    return
                yield samples
        finally:
            self.close()

    def _next(self):
        """The next iteration's samples once complete (None after the last); counts the wait in ``stall``."""
        rx, t0 = self._rx, time.perf_counter()
        with rx.cond:
            while True:
                if rx.error is not None:
                    raise rx.error
                if rx.taken in rx.done:
                    samples = rx.done.pop(rx.taken)
                    break
                if rx.exhausted and rx.taken >= rx.pulled:
                    return None
                if not self._thread.is_alive():
                    raise RuntimeError("the training loader's receiver thread ended unexpectedly")
                rx.cond.wait(rx.poll)
            rx.taken += 1
        self.stall += time.perf_counter() - t0
        rx.wake()
        return samples

    def close(self) -> None:
        """End the receiver thread and every worker, remove leftover shared-memory files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        rx = self._rx
        rx.stop.set()
        rx.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10)
        for w in rx.workers:                 # end of file for every worker first, then wait for each
            w.conn.close()
        for w in rx.workers:
            w.stop(grace=0.5)
        sweep(self._prefix)
        for fd in (rx.wake_r, rx.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        _LIVE.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@atexit.register
def _close_live() -> None:
    for loader in list(_LIVE):
        loader.close()
