"""R-FCN proposal targets on the device: :func:`rfcn_face.proposals.proposal_targets` for a batch, in MXNet ops.

The rules are those of :mod:`rfcn_face.proposals` (its module docstring is the one description): every gt row
appended to the RoIs; over the valid faces (flag 0, positive area) max IoU ``>= fg_iou`` -> 1 with the encoded
max-IoU face as box target (``rcnn.bbox_means`` / ``bbox_stds``, weight 1), ``[bg_iou_lo, bg_iou_hi)`` -> 0,
otherwise -1; a background row overlapping an ignored face (IoU ``>= bg_iou_hi`` or IoF ``>= ignore_iof``) -> -1;
appended rows of ignored, degenerate or padding faces -1. The layout is that of
:func:`rfcn_face.targets.proposal_target_numpy`: per image its R RoIs, then its M gt rows.

The optional RoI minibatch (``batch_rois > 0``, OHEM off) is *selected*, not drawn: per image the ``fg_quota``
positives with the smallest ``keys``, then the negatives with the smallest keys up to ``batch_rois``
(:func:`rfcn_face.sampling.subsample_labels_keyed`, the numpy rule given the same keys; equal keys: lower row
first). The host makes the keys from the image's keyed Generator (:func:`rfcn_face.sampling.sampling_keys`), so
resuming and splitting a batch over devices or workers select the same RoIs.

No gradient flows through the outputs. Everything is computed in float64 (the dtype of the numpy reference) and
returned in ``dtype``; the IoU arg-max takes the first face among equal IoUs, as numpy's ``argmax``.
"""
from __future__ import annotations

from rfcn_face.sampling import fg_quota

from .boxes import batch_index_like, box_wh, encode, overlaps, take_rows
from .ranking import pairwise_ranks

__all__ = ["proposal_targets", "keyed_minibatch"]


def keyed_minibatch(F, labels, keys, batch_size: int, fg_fraction: float):
    """(B, n) labels 1 / 0 / -1 -> the minibatch selected by (B, n) ``keys`` (module docstring); ``batch_size
    < 0`` keeps everything."""
    if batch_size < 0:
        return labels
    pos, neg = labels == 1, labels == 0
    rank_pos, rank_neg = pairwise_ranks(F, keys, [pos, neg])
    keep_pos = pos * (rank_pos < fg_quota(batch_size, fg_fraction))
    room = float(batch_size) - F.sum(keep_pos, axis=1, keepdims=True)                     # (B, 1)
    keep_neg = neg * F.broadcast_lesser(rank_neg, room)
    return F.where(keep_pos, F.ones_like(labels), F.where(keep_neg, F.zeros_like(labels), -F.ones_like(labels)))


def proposal_targets(F, rois, gt, keys=None, *, rois_per_image: int, params, dtype: str = "float32"):
    """``rois`` (B*R, 5) (the proposal block's output: R = ``rois_per_image`` rows per image, image by image),
    ``gt`` (B, M, 5) rows ``x1 y1 x2 y2 flag`` (0 face, 1 ignored, -1 padding), ``keys`` (B, R+M) (needed when
    ``params.batch_rois > 0``); ``params`` a :class:`rfcn_face.proposals.ProposalTargetParams`. Returns ``rois``
    (B*(R+M), 5), ``label`` (B*(R+M),), ``bbox_target``, ``bbox_weight`` (B*(R+M), 4)."""
    f64, p = "float64", params
    r = F.reshape(F.cast(rois, dtype=f64), (-1, int(rois_per_image), 5))
    g = F.cast(gt, dtype=f64)
    gb = F.slice_axis(g, axis=2, begin=0, end=4)                                              # (B, M, 4)
    flag = F.reshape(F.slice_axis(g, axis=2, begin=4, end=5), (0, -1))                         # (B, M)
    boxes = F.concat(F.slice_axis(r, axis=2, begin=1, end=5), gb, dim=1)                      # (B, n, 4)
    gw, gh = box_wh(F, gb)
    positive = F.reshape((gw > 0) * (gh > 0), (0, -1))
    valid, ignored = (flag == 0) * positive, (flag > 0) * positive                            # (B, M)
    _, iou, iof = overlaps(F, boxes, gb)                                                      # (B, n, M)
    v = F.expand_dims(valid, axis=1)                                                          # (B, 1, M)
    masked = F.broadcast_add(F.broadcast_mul(iou, v), v - 1.0)                                # invalid: -1
    best = F.max(masked, axis=2)                                                              # (B, n); -1: none
    max_iou = F.maximum(best, 0.0)
    face = F.broadcast_like(F.reshape(F.contrib.arange_like(gb, axis=1), (1, 1, -1)), iou)
    first = F.min(F.where(F.broadcast_equal(masked, F.expand_dims(best, axis=2)), face, F.ones_like(face) * 1e9),
                  axis=2)
    arg = F.where(best >= 0, first, F.zeros_like(first))                                      # first max-IoU face
    bg = (max_iou >= p.bg_iou_lo) * (max_iou < p.bg_iou_hi)
    labels = F.where(max_iou >= p.fg_iou, F.ones_like(max_iou), F.where(bg, F.zeros_like(bg), -F.ones_like(bg)))
    near = F.max(F.broadcast_mul(F.expand_dims(ignored, axis=1), (iou >= p.bg_iou_hi) + (iof >= p.ignore_iof) > 0),
                 axis=2)
    labels = F.where((labels == 0) * near, -F.ones_like(labels), labels)
    row_ok = F.concat(F.ones_like(F.slice_axis(r, axis=2, begin=0, end=1)).reshape((0, -1)), valid, dim=1)
    labels = F.where(row_ok, labels, -F.ones_like(labels))
    if p.batch_rois > 0:
        if keys is None:
            raise ValueError("proposal targets with batch_rois > 0 need the per-image sampling keys")
        labels = keyed_minibatch(F, labels, F.cast(keys, dtype=f64), p.batch_rois, p.fg_fraction)
    fg = F.broadcast_like(F.expand_dims(labels == 1, axis=2), boxes)                          # (B, n, 4)
    target = encode(F, boxes, take_rows(F, gb, arg), p.means, p.stds)
    target = F.where(fg, target, F.zeros_like(target))
    out = F.concat(F.expand_dims(batch_index_like(F, labels), axis=2), boxes, dim=2)
    return tuple(F.stop_gradient(F.cast(F.reshape(x, shape), dtype=dtype)) for x, shape in
                 ((out, (-1, 5)), (labels, (-1,)), (target, (-1, 4)), (fg, (-1, 4))))
