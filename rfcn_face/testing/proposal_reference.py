"""The numpy proposals, the slow reference of the device block :class:`symbols.proposal.ProposalBlock`.

Per image: :func:`rfcn_face.proposals.generate_proposals` (decode every anchor of ``AnchorSet.tile``, clip,
``min_size`` / degenerate filter, stable top-k, greedy :func:`rfcn_face.boxes.nms`, top-k), then
:func:`rfcn_face.proposals.pad_proposals` (cyclic repeat; the whole image when nothing survives), float64
throughout. ``mark_padding`` gives the repeated rows score -1, as the detector's block does.

Training, :class:`rfcn_face.detector.FaceDetector` and the exported graph all run the block; this module is the
only numpy proposal code left, for tests and benchmarks (the library never imports it).
"""
from __future__ import annotations

import numpy as np

from rfcn_face.anchors import AnchorSet, to_anchor_order_np
from rfcn_face.boxes import clip_boxes, decode, nms
from rfcn_face.proposals import ProposalParams
from rfcn_face.targets import face_probabilities

__all__ = ["proposals_reference", "generate_proposals", "pad_proposals", "mx_box_nms", "face_maps"]


def mx_box_nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, topk: int | None = None) -> np.ndarray:
    """Indices kept by ``mx.nd.contrib.box_nms`` (highest score first), for comparison with :func:`nms`.

    ``topk`` is passed to box_nms (it limits the input to the ``topk`` best boxes; without it box_nms is
    quadratic on all boxes) and also caps the output.
    """
    import mxnet as mx
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    data = np.concatenate([np.zeros((n, 1)), np.asarray(scores, dtype=np.float64).reshape(n, 1), boxes,
                           np.arange(n, dtype=np.float64)[:, None]], axis=1)
    out = mx.nd.contrib.box_nms(mx.nd.array(data[None], dtype="float64"), overlap_thresh=thresh,
                                valid_thresh=-1e30, topk=-1 if topk is None else int(topk),
                                coord_start=2, score_index=1, id_index=-1, force_suppress=True).asnumpy()[0]
    kept = out[out[:, 0] >= 0]                     # suppressed rows come back filled with -1
    idx = kept[:, 6].astype(np.int64)
    return idx if topk is None else idx[:int(topk)]


def generate_proposals(anchors, scores, deltas, image_hw, *, pre_nms_top_n: int = 6000,
                       post_nms_top_n: int = 300, nms_thresh: float = 0.7, min_size: float = 0.0,
                       means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0), nms_impl: str = "numpy"):
    """Proposals of one image. ``anchors`` (N, 4), ``scores`` (N,) face probabilities and ``deltas`` (N, 4),
    all in anchor order. Returns ``(boxes (K, 4), scores (K,), anchor_index (K,))``, best score first."""
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    h, w = image_hw
    boxes = clip_boxes(decode(anchors, deltas, means, stds), h, w) if len(anchors) else np.zeros((0, 4))
    keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
                          & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    order = keep[np.argsort(-scores[keep], kind="stable")]
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    topk = post_nms_top_n if post_nms_top_n > 0 else None
    if nms_impl == "numpy":
        kept = nms(boxes[order], scores[order], nms_thresh, topk=topk)
    elif nms_impl == "mxnet":
        kept = mx_box_nms(boxes[order], scores[order], nms_thresh, topk=len(order))
        kept = kept if topk is None else kept[:topk]
    else:
        raise ValueError(f"nms_impl must be 'numpy' or 'mxnet', got {nms_impl!r}")
    idx = order[kept]
    return boxes[idx], scores[idx], idx


def pad_proposals(boxes, scores, n: int, image_hw):
    """Fixed-size output for the operator: repeat the proposals cyclically up to ``n`` rows (the whole image
    when there is none). Returns ``(boxes (n, 4), scores (n,))``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) == 0:
        h, w = image_hw
        return np.tile([[0.0, 0.0, float(w), float(h)]], (n, 1)), np.zeros(n)
    idx = np.arange(n) % len(boxes)
    return boxes[idx], scores[idx]


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
