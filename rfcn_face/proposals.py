"""RPN proposals over our own anchor set (shifted anchors included) and R-FCN proposal targets.

Proposals (the order of py-faster-rcnn's proposal layer), computed on the device by the one proposal block
:class:`symbols.proposal.ProposalBlock` (training, the detector and the exported graph; its numpy reference is
``rfcn_face/testing/proposal_reference.py``), with the knobs of :class:`ProposalParams`:

1. decode every anchor's deltas (anchor order of :meth:`rfcn_face.anchors.AnchorSet.tile`, so shifted anchors
   decode from their own boxes);
2. clip to the image; 3. drop boxes narrower or shorter than ``min_size`` pixels;
4. keep the ``pre_nms_top_n`` best scores (equal scores keep anchor order; ``<= 0`` keeps all);
5. NMS at ``nms_thresh`` (:mod:`symbols.nms`: ``contrib.box_nms`` on a GPU, the numpy greedy NMS on a CPU);
6. keep the first ``post_nms_top_n``, repeated cyclically to that fixed size.

Proposal targets (R-FCN head)
-----------------------------
Every gt row is appended to the RoIs (R-FCN does this so each face has at least one perfect RoI). Over the
valid faces (not ignored, positive area): ``max IoU >= fg_iou`` -> label 1 (face), box target = the encoded
max-IoU face (``rcnn.bbox_means`` / ``bbox_stds``), box weight 1; ``bg_iou_lo <= max IoU < bg_iou_hi`` ->
label 0; otherwise -1. A background RoI overlapping an ignored face (IoU >= ``bg_iou_hi`` or
IoF >= ``ignore_iof``, IoF = intersection / RoI area) becomes -1, as for anchors. Appended rows of ignored or
degenerate faces are -1. Optional random minibatch (``batch_rois > 0``) marks unselected RoIs -1: drawn from
``rng`` (:func:`rfcn_face.sampling.subsample_labels`), or, given per-row ``keys``, the positives and then the
negatives with the smallest keys (:func:`rfcn_face.sampling.subsample_labels_keyed`, the rule the device
version :func:`symbols.proposal_target.proposal_targets` applies to the same keys).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .boxes import box_area, encode, iou_matrix
from .sampling import subsample_labels, subsample_labels_keyed

__all__ = ["proposal_targets", "ProposalParams",
           "ProposalTargetParams", "BoxCoding"]


@dataclass(frozen=True)
class ProposalParams:
    """The proposal knobs (the one reader of ``rpn.*_nms_top_n`` / ``test.rpn_*_nms_top_n``, ``rpn.nms_thresh``,
    ``rpn.min_size``); :func:`generate_proposals` takes them as keywords (``**params.kwargs()``)."""
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    nms_thresh: float = 0.7
    min_size: float = 0.0

    @classmethod
    def from_config(cls, cfg, train: bool = True) -> "ProposalParams":
        """Training top-N (``rpn.pre_nms_top_n`` / ``post_nms_top_n``) or the test ones (``test.rpn_*``)."""
        pre, post = ((cfg.rpn.pre_nms_top_n, cfg.rpn.post_nms_top_n) if train
                     else (cfg.test.rpn_pre_nms_top_n, cfg.test.rpn_post_nms_top_n))
        return cls(int(pre), int(post), float(cfg.rpn.nms_thresh), float(cfg.rpn.min_size))

    def kwargs(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BoxCoding:
    """The R-FCN head's box coding (``rcnn.bbox_means`` / ``rcnn.bbox_stds``): proposal targets encode with it,
    the detector decodes with it."""
    means: tuple = (0.0, 0.0, 0.0, 0.0)
    stds: tuple = (0.1, 0.1, 0.2, 0.2)

    @classmethod
    def from_config(cls, cfg) -> "BoxCoding":
        return cls(tuple(float(v) for v in cfg.rcnn.bbox_means), tuple(float(v) for v in cfg.rcnn.bbox_stds))


@dataclass(frozen=True)
class ProposalTargetParams:
    """The proposal-target knobs (``rcnn.fg_iou`` / ``bg_iou_*``, ``rpn.ignore_iof``, the box coding, and the RoI
    minibatch: every RoI with OHEM, else ``rcnn.batch_size`` with ``rcnn.fg_fraction``); keywords of
    :func:`proposal_targets` (``**params.kwargs()``)."""
    fg_iou: float = 0.5
    bg_iou_hi: float = 0.5
    bg_iou_lo: float = 0.0
    ignore_iof: float = 0.5
    means: tuple = (0.0, 0.0, 0.0, 0.0)
    stds: tuple = (0.1, 0.1, 0.2, 0.2)
    batch_rois: int = -1
    fg_fraction: float = 0.25

    @classmethod
    def from_config(cls, cfg) -> "ProposalTargetParams":
        r, coding = cfg.rcnn, BoxCoding.from_config(cfg)
        return cls(float(r.fg_iou), float(r.bg_iou_hi), float(r.bg_iou_lo), float(cfg.rpn.ignore_iof),
                   coding.means, coding.stds, -1 if r.ohem else int(r.batch_size), float(r.fg_fraction))

    def kwargs(self) -> dict:
        return asdict(self)


def proposal_targets(rois, gt_boxes, gt_ignore=None, *, fg_iou: float = 0.5, bg_iou_hi: float = 0.5,
                     bg_iou_lo: float = 0.0, ignore_iof: float = 0.5, means=(0.0, 0.0, 0.0, 0.0),
                     stds=(0.1, 0.1, 0.2, 0.2), batch_rois: int = -1, fg_fraction: float = 0.25,
                     rng: np.random.Generator | None = None, keys=None):
    """R-FCN head targets of one image. ``rois`` (R, 4), ``gt_boxes`` (M, 4), ``gt_ignore`` (M,) bool;
    ``keys`` (R+M,) sampling keys of the rows (RoIs then gt rows) replace ``rng`` for the minibatch.

    Returns ``(rois (R+M, 4), labels (R+M,), bbox_targets (R+M, 4), bbox_weights (R+M, 4))``.
    """
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    ign = np.zeros(len(gt), dtype=bool) if gt_ignore is None else np.asarray(gt_ignore).astype(bool).reshape(-1)
    all_rois = np.concatenate([rois, gt], axis=0)
    n = len(all_rois)
    labels = np.full(n, -1, dtype=np.int32)
    targets = np.zeros((n, 4))
    weights = np.zeros((n, 4))
    valid = ~ign & (box_area(gt) > 0) if len(gt) else np.zeros(0, dtype=bool)
    vid = np.flatnonzero(valid)
    iou = iou_matrix(all_rois, gt[vid])                       # (n, #valid)
    max_iou = iou.max(axis=1) if len(vid) else np.zeros(n)
    arg = vid[iou.argmax(axis=1)] if len(vid) else np.full(n, -1)
    labels[(max_iou >= bg_iou_lo) & (max_iou < bg_iou_hi)] = 0
    labels[max_iou >= fg_iou] = 1
    gid = np.flatnonzero(~valid & (box_area(gt) > 0)) if len(gt) else np.zeros(0, dtype=np.int64)
    if len(gid):
        giou = iou_matrix(all_rois, gt[gid])
        a, g = all_rois[:, None, :], gt[None, gid, :]
        inter = (np.clip(np.minimum(a[..., 2], g[..., 2]) - np.maximum(a[..., 0], g[..., 0]), 0, None)
                 * np.clip(np.minimum(a[..., 3], g[..., 3]) - np.maximum(a[..., 1], g[..., 1]), 0, None))
        area = box_area(all_rois)[:, None]
        iof = np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)
        near_ignored = np.any((giou >= bg_iou_hi) | (iof >= ignore_iof), axis=1)
        labels[(labels == 0) & near_ignored] = -1
    labels[len(rois):][~valid] = -1                            # appended rows of ignored / degenerate faces
    if batch_rois > 0 and keys is not None:
        labels = subsample_labels_keyed(labels, batch_rois, fg_fraction, keys)
    elif batch_rois > 0:
        labels = subsample_labels(labels, batch_rois, fg_fraction, np.random.default_rng(0) if rng is None else rng)
    fg = np.flatnonzero(labels == 1)
    if len(fg):
        targets[fg] = encode(all_rois[fg], gt[arg[fg]], means, stds)
        weights[fg] = 1.0
    return all_rois, labels, targets, weights
