"""AFW (Sec. 5.2): the 205 test images with the face-eval toolbox's annotations, tested at original size."""
from __future__ import annotations

from .face_eval_protocol import FaceEvalProtocol
from .registry import register

__all__ = ["Afw"]


@register("afw")
class Afw(FaceEvalProtocol):
    title = "AFW"
    folder = "afw"
    annotation_files = ("new_annotations_AFW.mat", "anno2.mat")
