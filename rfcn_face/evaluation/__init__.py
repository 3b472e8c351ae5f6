"""Evaluation harness, exact against the official tools.

- :mod:`.voc` — the VOC AP integral shared by every evaluator.
- :mod:`.wider` — WIDER FACE eval_tools (Easy / Medium / Hard AP, PR curves).
- :mod:`.submission` — WIDER submission folders: reader, writer, checker.
- :mod:`.plots` — PR plots with the published baselines overlaid.
- :mod:`.fddb`, :mod:`.ellipse`, :mod:`.pr` — FDDB ROC, ellipse regressor, AFW / PASCAL Faces AP.

Submodules are imported on demand (``from rfcn_face.evaluation.wider import evaluate_wider``) so that
importing the package stays cheap.
"""
from .voc import voc_ap

__all__ = ["voc_ap"]
