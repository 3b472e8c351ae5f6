"""NMS: one signature, two implementations, chosen once from the device (insightface's ``nms_wrapper`` habit).

:func:`nms` takes ``contrib.box_nms``'s layout — rows (B, N, K), score in column 0, ``x1 y1 x2 y2`` in columns
1-4, any further columns carried along — and returns (B, N, K): per image the kept rows, best first, then rows of
-1. A row takes part when its score is ``> valid_thresh``; only the ``topk`` best do (always set it: box_nms is
quadratic in the rows it considers). Implementations (:data:`NMS_IMPLS`):

* ``box_nms``: ``contrib.box_nms`` — the GPU choice, and the one an exported graph uses (plain MXNet);
* ``numpy``: the vectorised greedy :func:`rfcn_face.boxes.nms` as the ``rfcn_nms`` CustomOp (:mod:`operators.nms`)
  — the CPU choice (MXNet's CPU box_nms is several times slower, ``docs/operators.md``). It stops after
  ``max_output`` kept rows; box_nms writes every survivor, so only the first ``max_output`` rows agree.

``auto`` (:func:`resolve_nms_impl`) picks ``box_nms`` when one of the contexts is a GPU, else ``numpy``; a name
forces either (tests run the GPU choice on CPU contexts). Both suppress at IoU ``> overlap_thresh`` with the
continuous box convention; ties in score are broken by the callers, which hand over strictly decreasing ranks
(:func:`symbols.ranking.order_key`).
"""
from __future__ import annotations

from rfcn_face.plugins import Registry

__all__ = ["NMS_IMPLS", "NMS_CHOICES", "resolve_nms_impl", "nms"]

NMS_IMPLS = Registry("NMS implementation")


@NMS_IMPLS.register("box_nms")
class BoxNMS:
    @staticmethod
    def apply(F, rows, overlap_thresh, valid_thresh, topk, max_output):
        return F.contrib.box_nms(rows, overlap_thresh=float(overlap_thresh), valid_thresh=float(valid_thresh),
                                 topk=int(topk), coord_start=1, score_index=0, id_index=-1, force_suppress=True,
                                 in_format="corner", out_format="corner")


@NMS_IMPLS.register("numpy")
class NumpyNMS:
    @staticmethod
    def apply(F, rows, overlap_thresh, valid_thresh, topk, max_output):
        import operators.nms  # noqa: F401  (registers rfcn_nms)
        return F.Custom(rows, op_type="rfcn_nms", overlap_thresh=str(float(overlap_thresh)),
                        valid_thresh=str(float(valid_thresh)), topk=str(int(topk)), max_output=str(int(max_output)),
                        coord_start="1", score_index="0")


NMS_CHOICES = ("auto",) + tuple(NMS_IMPLS)


def resolve_nms_impl(name: str, contexts=()) -> str:
    """``auto`` -> ``box_nms`` if any of ``contexts`` (mx.Context or a list) is a GPU, else ``numpy``; a registered
    name is returned as is; anything else is a ValueError naming the known choices."""
    if name == "auto":
        ctxs = contexts if isinstance(contexts, (list, tuple)) else [contexts]
        return "box_nms" if any(getattr(c, "device_type", "") == "gpu" for c in ctxs) else "numpy"
    if NMS_IMPLS.get_or_none(name) is None:
        raise ValueError(f"--nms-impl: unknown NMS implementation {name!r}; expected one of {', '.join(NMS_CHOICES)}")
    return name


def nms(F, rows, impl: str, overlap_thresh: float, valid_thresh: float, topk: int, max_output: int = -1):
    """NMS of (B, N, K) rows with the registered implementation ``impl`` (see module docstring)."""
    return NMS_IMPLS.lookup(impl).apply(F, rows, overlap_thresh, valid_thresh, topk, max_output)
