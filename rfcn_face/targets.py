"""Batch-level training targets on numpy arrays: the forward of each target operator, for a whole batch.

The CustomOps of ``operators/`` are thin adapters over these functions, and the training loop
(:mod:`rfcn_face.train`) calls them directly. Array layouts follow the operators' docstrings:

* ``gt`` (B, M, 5) rows ``x1, y1, x2, y2, flag`` (flag 0 = face, 1 = ignored face, -1 = padding row);
* ``im_info`` (B, 3) image height, width, scale;
* RPN maps ``(B, k*A, H, W)`` in the channel layout of :mod:`symbols.rfcn`, brought into anchor order by
  :func:`rfcn_face.anchors.to_anchor_order_np`.

Per-image logic lives in :mod:`rfcn_face.assigners`, :mod:`rfcn_face.proposals` and :mod:`rfcn_face.sampling`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .anchors import AnchorSet, to_anchor_order_np
from .assigners import AnchorGrid, Assigner
from .boxes import decode
from .proposals import proposal_targets
from .sampling import ohem_labels, ohem_losses

__all__ = ["split_gt", "cached_grid", "face_softmax", "face_probabilities", "anchor_target_numpy",
           "proposal_target_numpy", "ohem_numpy"]


def split_gt(gt_rows: np.ndarray):
    """(M, 5) rows -> (present index (P,), boxes (P, 4), ignore (P,) bool); padding rows (flag < 0) dropped."""
    gt_rows = np.asarray(gt_rows, dtype=np.float64).reshape(-1, 5)
    present = np.flatnonzero(gt_rows[:, 4] >= 0)
    return present, gt_rows[present, :4], gt_rows[present, 4] > 0


@lru_cache(maxsize=32)
def cached_grid(anchor_set: AnchorSet, height: int, width: int) -> AnchorGrid:
    """Tiled anchors of a feature map, built once per (anchor set, size) for the whole process."""
    return AnchorGrid(anchor_set, height, width)


def face_softmax(logits) -> np.ndarray:
    """Softmax over the last axis (classes, background first) of float64 ``logits``: the face (class 1)
    probability, shape ``logits.shape[:-1]``."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e[..., 1] / e.sum(axis=-1)


def face_probabilities(rpn_cls: np.ndarray) -> np.ndarray:
    """(B, 2A, H, W) logits -> (B, H*W*A) softmax face probabilities in anchor order."""
    return face_softmax(to_anchor_order_np(np.asarray(rpn_cls, dtype=np.float64), 2))


def _rngs(rng, n: int) -> list:
    """One Generator per image: ``rng`` is a Generator shared by the batch or a sequence of ``n`` of them."""
    if isinstance(rng, np.random.Generator):
        return [rng] * n
    rngs = list(rng)
    if len(rngs) != n:
        raise ValueError(f"{len(rngs)} random generators for {n} images")
    return rngs


def anchor_target_numpy(feat_hw, gt, im_info, anchor_set: AnchorSet, assigner: Assigner, *, rng, rpn_bbox=None,
                        face_prob=None):
    """RPN targets of a batch with any strategy (:mod:`rfcn_face.assigners`): one :meth:`Assigner.targets` per image.

    ``feat_hw`` the RPN map size, ``gt (B, M, 5)``, ``im_info (B, 3)``; a strategy that reads the predictions
    (``assigner.needs_predictions``) also needs ``rpn_bbox (B, 4A, H, W)`` deltas (decoded over the anchors with the
    assigner's box coding) and ``face_prob (B, H*W*A)`` face probabilities in anchor order. Returns ``label`` (the
    loss labels), ``cls_target``, ``cls_weight`` (B, N), ``bbox_target``, ``bbox_weight`` (B, N, 4) and ``matched``
    (B, M: positive anchors per gt row before sampling). ``rng``: one Generator, or one per image."""
    gt = np.asarray(gt, np.float64)
    B, M = gt.shape[0], gt.shape[1]
    im_info = np.asarray(im_info, np.float64).reshape(B, -1)
    grid = cached_grid(anchor_set, int(feat_hw[0]), int(feat_hw[1]))
    N = len(grid)
    deltas = prob = None
    if assigner.needs_predictions:
        if rpn_bbox is None or face_prob is None:
            raise ValueError(f"strategy {assigner.name!r} reads the predictions: pass rpn_bbox and face_prob")
        deltas = to_anchor_order_np(np.asarray(rpn_bbox, np.float64), 4)
        prob = np.asarray(face_prob, np.float64).reshape(B, N)
    out = (np.full((B, N), -1.0), np.zeros((B, N)), np.zeros((B, N)), np.zeros((B, N, 4)), np.zeros((B, N, 4)),
           np.zeros((B, M)))
    for b, r_b in enumerate(_rngs(rng, B)):
        present, boxes, ignore = split_gt(gt[b])
        pred = None if deltas is None else decode(grid.boxes, deltas[b], assigner.means, assigner.stds)
        r = assigner.targets(grid, boxes, ignore, (im_info[b, 0], im_info[b, 1]), pred,
                             None if prob is None else prob[b], rng=r_b)
        out[0][b], out[1][b], out[2][b] = r.loss_labels, r.cls_target, r.cls_weight
        out[3][b], out[4][b], out[5][b, present] = r.bbox_target, r.bbox_weight, r.matched
    return out


def proposal_target_numpy(rois, gt, *, rng=None, keys=None, **kw):
    """R-FCN head targets of a batch (``kw`` go to :func:`rfcn_face.proposals.proposal_targets`): per image b
    its RoIs in input order, then its M gt rows (padding rows labelled -1). The RoI minibatch (``batch_rois >
    0``) is drawn from ``rng`` (one Generator or one per image) or selected by ``keys``: per image one key per
    output row (its RoIs, then its M gt rows), e.g. a (B, R+M) array of :func:`rfcn_face.sampling.sampling_keys`.
    Returns ``rois (R+B*M, 5)``, ``label``, ``bbox_target``, ``bbox_weight``."""
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 5)
    gt = np.asarray(gt, dtype=np.float64)
    B, M = gt.shape[0], gt.shape[1]
    img = rois[:, 0].astype(np.int64)
    if np.any((img < 0) | (img >= B)):
        raise ValueError(f"rfcn_proposal_target: RoI batch indices must lie in [0, {B})")
    if keys is not None and len(keys) != B:
        raise ValueError(f"{len(keys)} rows of sampling keys for {B} images")
    rngs = _rngs(rng, B) if rng is not None else [None] * B
    out_rois, labels, targets, weights = [], [], [], []
    for b, r_b in enumerate(rngs):
        mine = rois[img == b, 1:]
        present, boxes, ignore = split_gt(gt[b])
        n = len(mine)
        k_b = None
        if keys is not None:
            k_b = np.asarray(keys[b]).reshape(-1)
            if len(k_b) != n + M:
                raise ValueError(f"image {b}: {len(k_b)} sampling keys for {n} RoIs + {M} gt rows")
            k_b = np.concatenate([k_b[:n], k_b[n + present]])
        r, lab, tgt, wgt = proposal_targets(mine, boxes, ignore, rng=r_b, keys=k_b, **kw)
        gr, gl = gt[b, :, :4].copy(), np.full(M, -1.0)
        gtt, gw = np.zeros((M, 4)), np.zeros((M, 4))
        gr[present], gl[present], gtt[present], gw[present] = r[n:], lab[n:], tgt[n:], wgt[n:]
        out_rois.append(np.concatenate([np.full((n + M, 1), b), np.concatenate([r[:n], gr])], axis=1))
        labels.append(np.concatenate([lab[:n], gl]))
        targets.append(np.concatenate([tgt[:n], gtt]))
        weights.append(np.concatenate([wgt[:n], gw]))
    return (np.concatenate(out_rois), np.concatenate(labels), np.concatenate(targets), np.concatenate(weights))


def ohem_numpy(cls_prob, bbox_pred, label, bbox_target, bbox_weight, rois, *, batch_size: int,
               fg_fraction: float, sigma: float = 1.0, mode: str = "ratio"):
    """OHEM over a batch of RoIs (Sec. 5.1): current losses (:func:`rfcn_face.sampling.ohem_losses`), then
    :func:`rfcn_face.sampling.ohem_labels` per image (the batch index column of ``rois``); ``mode`` ``ratio``
    (1:3) or ``topk`` (R-FCN's top-B)."""
    R = len(np.asarray(label).reshape(-1))
    cls_loss, box_loss = ohem_losses(np.asarray(cls_prob).reshape(R, -1), bbox_pred, label, bbox_target,
                                     bbox_weight, sigma)
    image = np.asarray(rois).reshape(R, -1)[:, 0]
    return ohem_labels(label, bbox_weight, cls_loss + box_loss, batch_size, fg_fraction, image, mode=mode)
