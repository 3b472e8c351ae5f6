"""Benchmark readers; all yield :class:`rfcn_face.datasets.record.FaceRecord`."""
from .record import FaceRecord  # noqa: F401
