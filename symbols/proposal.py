"""The proposal block: RPN maps -> fixed-size RoIs on the device, over the project's own anchors.

:class:`ProposalBlock` (a HybridBlock: ``mx.nd`` imperatively, ``mx.sym`` hybridized or exported) computes, per
image of a batch, exactly what the numpy reference (:func:`rfcn_face.proposals.generate_proposals` +
:func:`rfcn_face.proposals.pad_proposals`, the slow reference of ``rfcn_face/testing/proposal_reference.py``)
computes:

1. anchors of the RPN map: the (A, 4) base anchors of ``AnchorSet.base()`` (a constant ``anchor_base``, shifted
   anchors included) shifted by ``stride * (x, y)`` in the order of :meth:`rfcn_face.anchors.AnchorSet.tile`
   (``arange_like`` over the map, so any map size works);
2. face probability (softmax of the two logits, :func:`symbols.rfcn.rpn_face_scores`), deltas in anchor order;
3. decode (:func:`symbols.boxes.decode`, RPN coding: means 0, stds 1), clip to the image's ``im_info`` row;
4. boxes narrower or shorter than ``min_size`` or degenerate are dropped;
5. the ``pre_nms_top_n`` best (``<= 0``: all), score descending, equal scores lower anchor index first
   (:func:`symbols.ranking.order_key`: scores closer than 2^-30 count as equal);
6. NMS at ``nms_thresh`` (:mod:`symbols.nms`: ``box_nms`` or the numpy CustomOp), the first ``post_nms_top_n``;
7. fixed size: the survivors repeated cyclically up to ``post_nms_top_n`` rows, the whole image (score 0) when
   none survives. With ``mark_padding`` (the detector: no duplicate detection) the repeated rows get score -1.

Inputs ``rpn_cls (B, 2A, H, W)`` logits, ``rpn_bbox (B, 4A, H, W)``, ``im_info (B, 3)``; outputs ``rois
(B*post, 5)`` rows ``batch index, x1, y1, x2, y2`` and ``scores (B*post,)``, image by image, in ``dtype``. Steps
2-7 compute in float64 (the reference's dtype), so the boxes equal the reference's to float rounding.
"""
from __future__ import annotations

import numpy as np
from mxnet import init as mx_init
from mxnet.gluon import HybridBlock

from .boxes import batch_index_like, clip_columns, col, decode_columns, image_hw, take_rows
from .nms import nms, resolve_nms_impl
from .ranking import order_key
from .rfcn import rpn_face_scores, to_anchor_order

__all__ = ["ProposalBlock", "tile_anchors", "ANCHOR_BASE"]

ANCHOR_BASE = "anchor_base"     # the (A, 4) anchors of RPN location (0, 0): a constant of the block


def tile_anchors(F, rpn_map, anchor_base, stride: int):
    """(1, H*W*A, 4) anchors over the map ``rpn_map`` (B, C, H, W), in the order of ``AnchorSet.tile``: row
    ``(y*W + x)*A + a`` is ``anchor_base[a] + stride * (x, y, x, y)`` (the map's dtype)."""
    xs = F.reshape(F.contrib.arange_like(rpn_map, axis=3) * float(stride), (1, -1, 1, 1))    # (1, W, 1, 1)
    ys = F.reshape(F.contrib.arange_like(rpn_map, axis=2) * float(stride), (-1, 1, 1, 1))    # (H, 1, 1, 1)
    zero = F.broadcast_add(F.zeros_like(xs), F.zeros_like(ys))                               # (H, W, 1, 1)
    sx, sy = F.broadcast_add(zero, xs), F.broadcast_add(zero, ys)
    shift = F.concat(sx, sy, sx, sy, dim=3)                                                  # (H, W, 1, 4)
    return F.reshape(F.broadcast_add(shift, F.reshape(anchor_base, (1, 1, -1, 4))), (1, -1, 4))


class _ArrayInit(mx_init.Initializer):
    """Initialise a parameter to a fixed array (Gluon's Constant registers a global initializer per instance)."""

    def __init__(self, value):
        super().__init__()
        self.value = np.asarray(value, np.float32)

    def _init_weight(self, _, arr):
        arr[:] = self.value


class ProposalBlock(HybridBlock):
    """Proposals of a batch on the device (module docstring).

    ``anchor_set`` (:class:`rfcn_face.anchors.AnchorSet`), ``params`` (:class:`rfcn_face.proposals.ProposalParams`,
    train or test knobs), ``nms_impl`` ``numpy`` | ``box_nms`` | ``auto`` (with ``ctx``: :func:`symbols.nms.
    resolve_nms_impl`), ``mark_padding``, ``dtype`` of the outputs. Call ``initialize(ctx=...)`` for the anchor
    constant before the first imperative call.
    """

    def __init__(self, anchor_set, params, nms_impl: str = "auto", ctx=(), mark_padding: bool = False,
                 dtype: str = "float32", **kw):
        super().__init__(prefix="", **kw)
        if params.post_nms_top_n <= 0:
            raise ValueError("the proposal block needs post_nms_top_n > 0 (fixed output size)")
        self.stride, self.p = int(anchor_set.stride), params
        self.nms_impl = resolve_nms_impl(nms_impl, ctx)
        self.mark_padding, self.dtype = bool(mark_padding), str(dtype)
        self.num_anchors = anchor_set.num_per_location
        with self.name_scope():
            base = np.asarray(anchor_set.base(), np.float32)
            self.anchor_base = self.params.get(ANCHOR_BASE, shape=base.shape, init=_ArrayInit(base),
                                               grad_req="null", differentiable=False)

    def hybrid_forward(self, F, rpn_cls, rpn_bbox, im_info, anchor_base):
        p, f64 = self.p, "float64"
        info = F.cast(im_info, dtype=f64)
        deltas = F.cast(to_anchor_order(F, rpn_bbox, 4), dtype=f64)                          # (B, N, 4)
        anchors = F.reshape(tile_anchors(F, F.cast(F.slice_axis(rpn_cls, axis=1, begin=0, end=1), dtype=f64),
                                         F.cast(anchor_base, dtype=f64), self.stride), (-1, 4))  # (N, 4)
        # every decoded, clipped box as four columns (B, N, 1) and its validity
        x1, y1, x2, y2 = clip_columns(F, decode_columns(F, F.broadcast_like(F.expand_dims(anchors, 0), deltas),
                                                        deltas), info)
        w, h = x2 - x1, y2 - y1
        ok = (w >= p.min_size) * (h >= p.min_size) * (w > 0) * (h > 0)                       # (B, N, 1)
        prob = rpn_face_scores(F, rpn_cls, dtype=f64)                                       # (B, N)
        key = order_key(F, prob, F.reshape(ok, (0, -1)))
        # pre-NMS top-k over key; k entries exist even when the map holds fewer anchors (filler key -2)
        k = max(p.pre_nms_top_n, p.post_nms_top_n)
        filler = F.tile(F.zeros_like(F.slice_axis(key, axis=1, begin=0, end=1)), reps=(1, k)) - 2.0   # (B, k)
        padded = F.concat(key, filler, dim=1)                                                # (B, N + k)
        # the selected entries: one gather per column, no (B, N, 6) concat (slow on the CPU)
        order = F.topk(padded, axis=1, k=k if p.pre_nms_top_n > 0 else 0, ret_typ="indices", dtype=f64)
        last = F.max(F.contrib.arange_like(key, axis=1), keepdims=True)                      # N - 1
        gidx = F.stack(batch_index_like(F, order), F.broadcast_minimum(order, last), axis=0)   # (2, B, L)
        take = lambda v: F.expand_dims(F.gather_nd(F.reshape(v, (0, -1)), gidx), axis=2)     # noqa: E731
        pos = F.reshape(F.contrib.arange_like(order, axis=1), (1, -1, 1))                    # (1, L, 1)
        valid = (take(key) >= 0) * F.expand_dims(F.broadcast_lesser_equal(order, last), axis=2)
        if p.pre_nms_top_n > 0:
            valid = F.broadcast_mul(valid, pos < p.pre_nms_top_n)
        rank = F.where(valid, F.broadcast_sub(F.ones_like(valid) * 1e9, F.broadcast_like(pos, valid)),
                       -F.ones_like(valid))                                                  # strictly decreasing
        rows = F.concat(rank, *[take(v) for v in (x1, y1, x2, y2, prob)], dim=2)             # (B, L, 6)
        kept = nms(F, rows, self.nms_impl, p.nms_thresh, 0.0, p.pre_nms_top_n if p.pre_nms_top_n > 0 else -1,
                   p.post_nms_top_n)
        return self._pad(F, F.slice_axis(kept, axis=1, begin=0, end=p.post_nms_top_n), info)

    def _pad(self, F, kept, info):
        """(B, post, 6) NMS rows (kept first, then -1) -> cyclic repeat, whole image when empty (module doc)."""
        post = self.p.post_nms_top_n
        n = F.sum(col(F, kept, 0) >= 0, axis=1, keepdims=True)                               # (B, 1, 1)
        j = F.reshape(F.contrib.arange_like(kept, axis=1), (1, -1, 1))                       # (1, post, 1)
        m = F.maximum(n, 1.0)
        src = F.broadcast_sub(j, F.broadcast_mul(F.floor(F.broadcast_div(j, m)), m))         # j mod m
        rows = take_rows(F, kept, F.reshape(src, (0, -1)))
        h, w = image_hw(F, info)
        whole = F.broadcast_like(F.concat(F.zeros_like(w), F.zeros_like(h), w, h, dim=2), col(F, rows, 0),
                                 lhs_axes=(1,), rhs_axes=(1,))
        none = F.broadcast_like(n == 0, col(F, rows, 0))
        boxes = F.where(F.broadcast_like(none, whole), whole, F.slice_axis(rows, axis=2, begin=1, end=5))
        scores = F.where(none, F.zeros_like(none), col(F, rows, 5))
        if self.mark_padding:
            scores = F.where(F.broadcast_lesser(j, n), scores, -F.ones_like(scores))
        b = F.expand_dims(F.contrib.arange_like(rows, axis=0), 1)
        bidx = F.broadcast_like(F.reshape(b, (-1, 1, 1)), scores)
        rois = F.reshape(F.concat(bidx, boxes, dim=2), (-1, 5))
        # proposals are not differentiated (R-FCN)
        return (F.stop_gradient(F.cast(rois, dtype=self.dtype)),
                F.stop_gradient(F.cast(F.reshape(scores, (-1,)), dtype=self.dtype)))
