"""Benchmarks: one class per benchmark, registered by name (``test --dataset NAME``, ``reproduce --benchmarks``,
the demo's val split). See :mod:`rfcn_face.benchmarks.base` for the interface and docs/extending.md for a new
one::

    from rfcn_face.benchmarks import register, SynthfacesVal

    @register("my-val")
    class MyVal(SynthfacesVal):
        ...

and ``python -m rfcn_face test --import my_module --dataset my-val ...``.
"""
from .base import Benchmark, Evaluator, TestSet
from .registry import BENCHMARKS, get_benchmark, register, reproduced_benchmarks, val_benchmark
# the built-in benchmarks, in the order `--dataset` lists them and `reproduce --benchmarks` runs them
from .wider_val import WiderVal
from .wider_test import WiderTest
from .fddb import Fddb
from .afw import Afw
from .pascal import PascalFaces
from .synthfaces_val import SynthfacesVal
from .wider_protocol import WiderProtocol
from .face_eval_protocol import FaceEvalProtocol

__all__ = ["BENCHMARKS", "register", "get_benchmark", "val_benchmark", "reproduced_benchmarks", "Benchmark",
           "Evaluator", "TestSet", "WiderProtocol", "FaceEvalProtocol", "WiderVal", "WiderTest", "Fddb", "Afw",
           "PascalFaces", "SynthfacesVal"]
