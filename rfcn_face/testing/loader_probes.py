"""Sample builders for the tests of :mod:`rfcn_face.datasets.process_loader` (importable by a worker process, and
MXNet-free): keyed arrays with optional delays, a builder that fails or kills its own worker at a chosen image,
and a wrapper that reports what the worker process has loaded."""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

__all__ = ["KeyedArrays", "Faulty", "WorkerFacts", "FAULTS"]


class KeyedArrays:
    """``(epoch, index) -> {"key": (epoch, index), "x": default_rng([epoch, index]).random(shape), "pid"}``,
    after sleeping ``delays[index % len(delays)]`` seconds; ``describe`` names a made-up image path."""

    def __init__(self, shape=(3, 5), delays=(0.0,)):
        self.shape, self.delays = tuple(shape), tuple(delays)

    def __call__(self, epoch, index):
        time.sleep(self.delays[index % len(self.delays)])
        return {"key": (epoch, index), "x": np.random.default_rng([epoch, index]).random(self.shape),
                "pid": os.getpid()}

    def describe(self, index):
        return f"/data/images/img_{index:05d}.jpg"


def _segfault():
    import ctypes
    ctypes.string_at(0)


def _raise(exc):
    raise exc


FAULTS = {
    "value_error": lambda: _raise(ValueError("the face boxes are not finite")),
    "missing_file": lambda: _raise(FileNotFoundError("image not found or unreadable")),
    "sigkill": lambda: os.kill(os.getpid(), signal.SIGKILL),
    "segfault": _segfault,
    "exit": lambda: os._exit(3),
}


class Faulty(KeyedArrays):
    """:class:`KeyedArrays` that runs ``FAULTS[fault]`` when it reaches image ``at`` (after ``hang`` seconds,
    so a test can stop the parent while the worker is busy)."""

    def __init__(self, fault: str, at: int, hang: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.fault, self.at, self.hang = fault, int(at), float(hang)

    def __call__(self, epoch, index):
        if index == self.at:
            time.sleep(self.hang)
            FAULTS[self.fault]()
        return super().__call__(epoch, index)


class WorkerFacts:
    """``(inner(epoch, index), facts)``: the MXNet modules loaded in this process, OpenCV's thread count,
    ``OMP_NUM_THREADS`` and the parent pid."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, epoch, index):
        import cv2
        facts = {"mxnet_modules": sorted(m for m in sys.modules if m == "mxnet" or m.startswith("mxnet.")),
                 "cv2_threads": cv2.getNumThreads(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                 "ppid": os.getppid(), "pid": os.getpid()}
        return self.inner(epoch, index), facts

    def describe(self, index):
        return self.inner.describe(index)
