"""PASCAL Faces (Sec. 5.2): the 851 PASCAL VOC images with the face-eval toolbox's annotations, tested at
original size."""
from __future__ import annotations

from .face_eval_protocol import FaceEvalProtocol
from .registry import register

__all__ = ["PascalFaces"]


@register("pascal")
class PascalFaces(FaceEvalProtocol):
    title = "PASCAL Faces"
    folder = "pascal"
    annotation_files = ("Annotations_Face_PASCALLayout_large_fixed.mat", "Annotations_Face_PASCALLayout_large.mat")
