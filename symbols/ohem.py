"""OHEM on the device (Sec. 5.1): :func:`rfcn_face.targets.ohem_numpy` for a batch, in MXNet ops.

Per RoI the current loss of the head — softmax cross-entropy ``-log p[label]`` (0 for label -1) plus the
weighted smooth-L1 box loss (sigma 1), as :func:`rfcn_face.sampling.ohem_losses` — on stopped-gradient head
outputs; then, per image, the selection of :func:`rfcn_face.sampling.ohem_keep` (its module docstring describes
both readings): ``ratio`` keeps the hardest ``round(fg_fraction * B)`` positives, then the hardest negatives up to
``B``; ``topk`` (R-FCN's top-B) the ``B`` hardest labelled RoIs whatever their label; RoIs labelled -1 never;
``B < 0`` keeps every labelled RoI. Unselected RoIs get label -1 and zero box weights.

Ranks are exact (:func:`symbols.ranking.pairwise_rank`): equal losses keep the lower index first, as the numpy
code. Losses are computed in float64 from the float32 head outputs, as numpy does from the same arrays; the only
difference left is the last-ulp rounding of ``log`` / ``exp`` between MXNet and numpy, which can order two losses
differently only when they agree to ~1e-16 without being equal.
"""
from __future__ import annotations

from rfcn_face.sampling import OHEM_MODES, fg_quota

from .ranking import pairwise_rank, pairwise_ranks

__all__ = ["ohem_losses", "ohem_select"]


def ohem_losses(F, cls_score, bbox_pred, labels, bbox_targets, bbox_weights, sigma: float = 1.0):
    """(R,) float64 per-RoI loss (cross-entropy + smooth L1) of :func:`rfcn_face.sampling.ohem_losses`, from the
    head's logits ``cls_score`` (R, C) and ``bbox_pred`` (R, 4) with their gradients stopped."""
    f64 = "float64"
    prob = F.softmax(F.cast(F.stop_gradient(cls_score), dtype=f64), axis=-1)
    lab = F.cast(labels, dtype=f64)
    picked = F.pick(prob, F.maximum(lab, 0.0), axis=-1)
    cls_loss = F.where(lab >= 0, -F.log(F.maximum(picked, 1e-14)), F.zeros_like(lab))
    diff = F.cast(F.stop_gradient(bbox_pred), dtype=f64) - F.cast(bbox_targets, dtype=f64)
    box_loss = F.sum(F.cast(bbox_weights, dtype=f64) * F.smooth_l1(diff, scalar=float(sigma)), axis=-1)
    return cls_loss + box_loss


def ohem_select(F, cls_score, bbox_pred, labels, bbox_targets, bbox_weights, *, num_images: int, batch_size: int,
                fg_fraction: float, mode: str = "ratio", sigma: float = 1.0, dtype: str = "float32"):
    """OHEM of a batch: ``num_images`` images with the same number of RoIs each, image by image (the layout of
    :func:`symbols.proposal_target.proposal_targets`). Returns ``(labels, bbox_weights)`` in ``dtype`` (the
    inputs' dtype), without gradient."""
    if mode not in OHEM_MODES:
        raise ValueError(f"unknown OHEM mode {mode!r}; expected one of {', '.join(OHEM_MODES)}")
    loss = F.reshape(ohem_losses(F, cls_score, bbox_pred, labels, bbox_targets, bbox_weights, sigma),
                     (int(num_images), -1))
    lab = F.reshape(F.cast(labels, dtype="float64"), (int(num_images), -1))
    pos, neg = lab == 1, lab == 0
    if batch_size < 0:
        keep = pos + neg
    elif mode == "topk":
        keep = (pos + neg) * (pairwise_rank(F, -loss, pos + neg) < batch_size)
    else:
        rank_pos, rank_neg = pairwise_ranks(F, -loss, [pos, neg])
        keep_pos = pos * (rank_pos < fg_quota(batch_size, fg_fraction))
        room = float(batch_size) - F.sum(keep_pos, axis=1, keepdims=True)
        keep = keep_pos + neg * F.broadcast_lesser(rank_neg, room)
    keep = F.reshape(keep, (-1,))
    out_labels = F.where(keep, F.cast(labels, dtype="float64"), -F.ones_like(keep))
    keep4 = F.broadcast_like(F.expand_dims(keep, axis=1), F.cast(bbox_weights, dtype="float64"))
    out_weights = keep4 * F.cast(bbox_weights, dtype="float64")
    return (F.stop_gradient(F.cast(out_labels, dtype=dtype)), F.stop_gradient(F.cast(out_weights, dtype=dtype)))
