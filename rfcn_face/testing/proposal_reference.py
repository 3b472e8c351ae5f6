"""The numpy proposals, the slow reference of the device block :class:`symbols.proposal.ProposalBlock`.

Per image: :func:`rfcn_face.proposals.generate_proposals` (decode every anchor of ``AnchorSet.tile``, clip,
``min_size`` / degenerate filter, stable top-k, greedy :func:`rfcn_face.boxes.nms`, top-k), then
:func:`rfcn_face.proposals.pad_proposals` (cyclic repeat; the whole image when nothing survives), float64
throughout. ``mark_padding`` gives the repeated rows score -1, as the detector's block does.

The function bodies still live in :mod:`rfcn_face.proposals` / :mod:`rfcn_face.targets` because the numpy
training path (``rfcn_face.train_step``, ``operators/proposal.py``) calls them; when training runs the block,
they move here and leave the library (which never imports this package).
"""
from __future__ import annotations

import numpy as np

from rfcn_face.anchors import AnchorSet, to_anchor_order_np
from rfcn_face.proposals import ProposalParams, generate_proposals, pad_proposals
from rfcn_face.targets import face_probabilities

__all__ = ["proposals_reference", "generate_proposals"]


def proposals_reference(rpn_cls, rpn_bbox, im_info, anchor_set: AnchorSet, params: ProposalParams,
                        mark_padding: bool = False):
    """``rois (B*post, 5)`` (batch index, x1, y1, x2, y2) and ``scores (B*post,)`` of a batch of RPN maps
    ``(B, 2A, H, W)`` / ``(B, 4A, H, W)`` with ``im_info (B, 3)``, image by image."""
    rpn_cls = np.asarray(rpn_cls)
    B, _, H, W = rpn_cls.shape
    info = np.asarray(im_info, np.float64).reshape(B, -1)
    anchors = anchor_set.tile(H, W)
    probs = face_probabilities(rpn_cls)
    deltas = to_anchor_order_np(np.asarray(rpn_bbox, np.float64), 4)
    post = params.post_nms_top_n
    rois, scores = np.zeros((B, post, 5)), np.zeros((B, post))
    for b in range(B):
        hw = (info[b, 0], info[b, 1])
        boxes, sc, _ = generate_proposals(anchors, probs[b], deltas[b], hw, **params.kwargs())
        n = len(boxes)
        boxes, sc = pad_proposals(boxes, sc, post, hw)
        if mark_padding:
            sc[n:] = -1.0
        rois[b, :, 0], rois[b, :, 1:], scores[b] = b, boxes, sc
    return rois.reshape(-1, 5), scores.reshape(-1)


def face_maps(rng: np.random.Generator, anchor_set: AnchorSet, image_hw, num_faces: int = 200):
    """RPN maps of a partly trained network for one synthetic image with ``num_faces`` faces (log-uniform
    4-256 px): ``(rpn_cls (1, 2A, H, W), rpn_bbox (1, 4A, H, W) float32, faces (F, 4))``. Anchors overlapping a
    face regress towards it (80 % of the way, plus noise) and score by that overlap plus noise. The face
    probabilities are a permutation of an even grid over [0.001, 0.999] (spacing > 1e-6), so no two anchors have
    equal or nearly equal scores: any order difference from a reference is a real one."""
    from rfcn_face.anchors import feature_size
    from rfcn_face.boxes import encode, iou_matrix
    h, w = image_hw
    H, W = feature_size(h, anchor_set.stride), feature_size(w, anchor_set.stride)
    A = anchor_set.num_per_location
    size = np.exp(rng.uniform(np.log(4), np.log(256), (num_faces, 1))) * rng.uniform(0.8, 1.25, (num_faces, 2))
    xy = rng.uniform(0, 1, (num_faces, 2)) * (np.array([w, h]) - size)
    faces = np.concatenate([xy, xy + size], axis=1)
    anchors = anchor_set.tile(H, W)
    best, arg = np.zeros(len(anchors)), np.zeros(len(anchors), np.int64)
    for s in range(0, len(anchors), 16384):
        iou = iou_matrix(anchors[s:s + 16384], faces)
        best[s:s + 16384], arg[s:s + 16384] = iou.max(1), iou.argmax(1)
    deltas = rng.normal(0, 0.1, anchors.shape)
    near = best > 0.1
    deltas[near] += 0.8 * encode(anchors[near], faces[arg[near]])
    n = len(anchors)
    rank = np.argsort(np.argsort(best + rng.normal(0, 0.05, n), kind="stable"), kind="stable")
    p = 0.001 + 0.998 * rank / max(n - 1, 1)
    logits = np.stack([np.zeros(n), np.log(p / (1 - p))], axis=1)              # (N, 2), background first
    cls = logits.reshape(H, W, A, 2).transpose(2, 3, 0, 1).reshape(1, 2 * A, H, W)
    box = deltas.reshape(H, W, A, 4).transpose(2, 3, 0, 1).reshape(1, 4 * A, H, W)
    return cls.astype(np.float32), box.astype(np.float32), faces
