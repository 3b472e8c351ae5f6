"""Box operations as functions of ``F`` (``mx.nd`` or ``mx.sym``): the device twins of :mod:`rfcn_face.boxes`.

Same convention (continuous ``x1 y1 x2 y2``, width ``x2 - x1``, no "+1") and the same formulas; the detector's
proposal block, its head post-processing, the exported graph and the device proposal targets all decode,
clip, encode and compare boxes here. Every function keeps its inputs' dtype (the callers compute in float64,
the dtype of the numpy references).
"""
from __future__ import annotations

from rfcn_face.boxes import BBOX_CLIP

TINY = 1e-300     # below any non-empty box area in pixels (float64)

__all__ = ["col", "decode", "decode_columns", "encode", "clip_to_image", "clip_columns", "image_hw", "box_wh",
           "overlaps", "take_rows", "batch_index_like"]


def col(F, x, i: int):
    """Column ``i`` of the last axis, kept as a length-1 axis."""
    return F.slice_axis(x, axis=-1, begin=i, end=i + 1)


def box_wh(F, b):
    """``(w, h)`` of (..., 4) boxes, each (..., 1)."""
    return col(F, b, 2) - col(F, b, 0), col(F, b, 3) - col(F, b, 1)


def decode_columns(F, boxes, deltas, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """:func:`rfcn_face.boxes.decode`: ``(..., 4)`` reference boxes and deltas of the same shape -> the four
    columns ``x1, y1, x2, y2`` (each ``(..., 1)``). ``d = deltas * stds + means``; centre ``c + d_xy * size``;
    size ``size * exp(min(d_wh, log(1000/16)))``."""
    x1, y1, x2, y2 = F.split(boxes, num_outputs=4, axis=-1)
    w, h = x2 - x1, y2 - y1
    d = [c * float(stds[i]) + float(means[i]) for i, c in enumerate(F.split(deltas, num_outputs=4, axis=-1))]
    cx = x1 + 0.5 * w + d[0] * w
    cy = y1 + 0.5 * h + d[1] * h
    pw = w * F.exp(F.minimum(d[2], BBOX_CLIP))
    ph = h * F.exp(F.minimum(d[3], BBOX_CLIP))
    return cx - 0.5 * pw, cy - 0.5 * ph, cx + 0.5 * pw, cy + 0.5 * ph


def decode(F, boxes, deltas, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """:func:`decode_columns` as ``(..., 4)`` boxes."""
    return F.concat(*decode_columns(F, boxes, deltas, means, stds), dim=-1)


def encode(F, boxes, gt, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """:func:`rfcn_face.boxes.encode` of ``gt`` w.r.t. ``boxes`` (same shapes). Rows where either box has no
    positive width and height give non-finite values: select the rows you need with ``F.where``."""
    bw, bh = box_wh(F, boxes)
    gw, gh = box_wh(F, gt)
    bx, by = col(F, boxes, 0) + 0.5 * bw, col(F, boxes, 1) + 0.5 * bh
    gx, gy = col(F, gt, 0) + 0.5 * gw, col(F, gt, 1) + 0.5 * gh
    t = [(gx - bx) / bw, (gy - by) / bh, F.log(gw / bw), F.log(gh / bh)]
    return F.concat(*[(t[i] - float(means[i])) / float(stds[i]) for i in range(4)], dim=-1)


def image_hw(F, im_info):
    """``(h, w)`` of ``im_info`` (B, 3) rows ``height, width, scale``, each shaped (B, 1, 1) to broadcast over
    (B, N, 1) box columns."""
    h = F.reshape(F.slice_axis(im_info, axis=1, begin=0, end=1), (-1, 1, 1))
    w = F.reshape(F.slice_axis(im_info, axis=1, begin=1, end=2), (-1, 1, 1))
    return h, w


def clip_columns(F, columns, im_info):
    """The four (B, N, 1) columns ``x1, y1, x2, y2`` clipped to ``[0, w] x [0, h]`` of their image's ``im_info``
    row (B, 3) (same dtype): :func:`rfcn_face.boxes.clip_boxes` per image."""
    h, w = image_hw(F, im_info)
    return tuple(F.broadcast_minimum(F.maximum(c, 0.0), lim) for c, lim in zip(columns, (w, h, w, h)))


def clip_to_image(F, boxes, im_info):
    """(B, N, 4) boxes clipped per image (:func:`clip_columns`)."""
    return F.concat(*clip_columns(F, [col(F, boxes, i) for i in range(4)], im_info), dim=-1)


def overlaps(F, a, b):
    """Intersection, IoU and IoF of every box of ``a`` (B, N, 4) with every box of ``b`` (B, M, 4): three
    (B, N, M) arrays. As :func:`rfcn_face.boxes.iou_matrix`: negative sizes count as 0, IoU 0 where the union
    is empty; IoF = intersection / area of the ``a`` box (0 where that area is 0)."""
    ea, eb = F.expand_dims(a, axis=2), F.expand_dims(b, axis=1)             # (B, N, 1, 4), (B, 1, M, 4)

    def side(lo, hi):
        return F.relu(F.broadcast_minimum(col(F, ea, hi), col(F, eb, hi))
                      - F.broadcast_maximum(col(F, ea, lo), col(F, eb, lo)))
    inter = F.squeeze(side(0, 2) * side(1, 3), axis=-1)                       # (B, N, M)
    aw, ah = box_wh(F, a)
    bw, bh = box_wh(F, b)
    area_a = F.relu(aw) * F.relu(ah)                                          # (B, N, 1)
    area_b = F.swapaxes(F.relu(bw) * F.relu(bh), 1, 2)                        # (B, 1, M)
    union = F.broadcast_sub(F.broadcast_add(area_a, area_b), inter)
    # an empty union or area has an empty intersection: x / max(y, tiny) is 0 there and x / y elsewhere
    iou = inter / F.maximum(union, TINY)
    iof = F.broadcast_div(inter, F.maximum(area_a, TINY))
    return inter, iou, iof


def batch_index_like(F, x):
    """(B, N) batch index ``b`` of every entry of a (B, N, ...) array (``x``'s dtype)."""
    first = F.slice_axis(F.reshape(x, (0, 0, -1)), axis=2, begin=0, end=1)    # (B, N, 1)
    b = F.reshape(F.contrib.arange_like(first, axis=0), (-1, 1, 1))
    return F.reshape(F.broadcast_like(b, first), (0, 0))


def take_rows(F, x, index):
    """Per batch entry, the entries of ``x`` (B, N) or rows of ``x`` (B, N, K) at ``index`` (B, L) (float
    positions) -> (B, L) or (B, L, K)."""
    idx = F.stack(batch_index_like(F, index), index, axis=0)
    return F.gather_nd(x, idx)
