"""``Custom(op_type='rfcn_anchor_target')``: RPN training targets over our anchor set (shifted anchors, HC(N)).

Inputs
    rpn_cls  (B, k*A, H, W)  any RPN map (only its H, W are read; A = anchors per location)
    gt       (B, M, 5)       x1, y1, x2, y2, flag  (flag 0 = face, 1 = ignored face, -1 = padding row)
    im_info  (B, 3)          image height, width, scale
Outputs (anchor order of :meth:`rfcn_face.anchors.AnchorSet.tile`, i.e. ``symbols.rfcn.to_anchor_order``)
    label        (B, H*W*A)     1 / 0 / -1 after minibatch sampling
    bbox_target  (B, H*W*A, 4)  encoded faces of the positives
    bbox_weight  (B, H*W*A, 4)  1 for sampled positives
    matched      (B, M)         positive anchors per face before sampling (HAMBox Fig. 1 statistic)
Parameters are plain strings / numbers (see :class:`AnchorTargetProp`); backward gives zero gradients.
The minibatch sampling draws from :func:`seed_stream` (``seed`` parameter), which advances across calls.
"""
from __future__ import annotations

from functools import lru_cache

import mxnet as mx
import numpy as np

from rfcn_face.anchors import AnchorSet, format_shift_spec
from rfcn_face.assign import AnchorGrid, AssignParams, anchor_targets

__all__ = ["no_backward_dependency", "NumpyOp", "anchor_target_numpy", "anchor_target_kwargs", "seed_stream", "reset_seed_streams", "AnchorTargetProp", "parse_floats", "split_gt",
           "anchor_set_kwargs", "anchor_set_from_kwargs"]


def no_backward_dependency(out_grad, in_data, out_data) -> list:
    """Backward of the target operators only writes zeros, so it depends on nothing.

    Returning ``[]`` also avoids an MXNet 1.9.1 bug: ``mxnet.operator`` keeps the dependencies of the *last*
    declared CustomOp in one process-wide set (``_registry.result_deps``) and uses it to pick the storage type
    of every CustomOp's backward arrays; with the default dependencies (inputs + outputs) two different
    CustomOps in one graph make MXNet read an absent output gradient as storage type -1
    ("Exception: unknown storage type: -1" in CustomOp.backward).
    """
    return []


class NumpyOp(mx.operator.CustomOp):
    """A target operator: forward writes the arrays of :meth:`compute` (a numpy function), backward zeros."""

    def __init__(self, prop):
        super().__init__()
        self.p = prop

    def compute(self, in_data) -> tuple:
        raise NotImplementedError

    def forward(self, is_train, req, in_data, out_data, aux):
        for i, o in enumerate(self.compute(in_data)):
            self.assign(out_data[i], req[i], mx.nd.array(np.asarray(o).reshape(out_data[i].shape),
                                                         dtype=out_data[i].dtype))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        for i, g in enumerate(in_grad):
            self.assign(g, req[i], 0)


def parse_floats(text) -> tuple:
    """``"16,32,64"`` / ``"(0.1, 0.2)"`` / a sequence -> tuple of floats."""
    if isinstance(text, (list, tuple)):
        return tuple(float(v) for v in text)
    text = str(text).strip().strip("()[]")
    return tuple(float(v) for v in text.replace(" ", ",").split(",") if v)


_STREAMS: dict[int, np.random.Generator] = {}


def seed_stream(seed: int) -> np.random.Generator:
    """The process-wide Generator of ``seed``. MXNet builds a new CustomOp for every call (imperative and
    hybridized alike), so a Generator held by the operator would restart at every iteration and draw the same
    minibatch pattern; the stream lives here instead and advances from call to call (reproducible per run)."""
    if seed not in _STREAMS:
        _STREAMS[seed] = np.random.default_rng(seed)
    return _STREAMS[seed]


def reset_seed_streams():
    """Restart every seed's stream (tests; or to replay a run)."""
    _STREAMS.clear()


def split_gt(gt_rows: np.ndarray):
    """(M, 5) rows -> (present index (P,), boxes (P, 4), ignore (P,) bool); padding rows (flag < 0) dropped."""
    gt_rows = np.asarray(gt_rows, dtype=np.float64).reshape(-1, 5)
    present = np.flatnonzero(gt_rows[:, 4] >= 0)
    return present, gt_rows[present, :4], gt_rows[present, 4] > 0


@lru_cache(maxsize=32)
def cached_grid(anchor_set: AnchorSet, height: int, width: int) -> AnchorGrid:
    """Tiled anchors of a feature map, built once per (anchor set, size) for the whole process."""
    return AnchorGrid(anchor_set, height, width)


def anchor_target_numpy(feat_hw, gt, im_info, anchor_set: AnchorSet, params: AssignParams, *,
                        batch_size: int, fg_fraction: float, rng: np.random.Generator, strategy: str = "",
                        means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """The operator's forward on numpy arrays: one :func:`rfcn_face.assign.anchor_targets` per image."""
    gt = np.asarray(gt, dtype=np.float64)
    im_info = np.asarray(im_info, dtype=np.float64).reshape(len(gt), -1)
    grid = cached_grid(anchor_set, int(feat_hw[0]), int(feat_hw[1]))
    B, M, N = len(gt), gt.shape[1], len(grid)
    labels, targets = np.full((B, N), -1.0), np.zeros((B, N, 4))
    weights, matched = np.zeros((B, N, 4)), np.zeros((B, M))
    for b in range(B):
        present, boxes, ignore = split_gt(gt[b])
        lab, tgt, wgt, res = anchor_targets(grid, boxes, ignore, (im_info[b, 0], im_info[b, 1]), params,
                                            batch_size=batch_size, fg_fraction=fg_fraction, rng=rng,
                                            strategy=strategy or None, means=means, stds=stds)
        labels[b], targets[b], weights[b] = lab, tgt, wgt
        matched[b, present] = res.matched
    return labels, targets, weights, matched


def _csv(values) -> str:
    return ",".join(repr(float(v)) for v in values)


def anchor_set_kwargs(a: AnchorSet) -> dict:
    """The operator parameters (strings) that describe an anchor set; :func:`anchor_set_from_kwargs` inverts it."""
    return dict(stride=str(a.stride), scales=_csv(a.scales), ratios=_csv(a.ratios), shifts=format_shift_spec(a.shifts))


def anchor_set_from_kwargs(stride, scales, ratios, shifts) -> AnchorSet:
    return AnchorSet(stride=int(stride), scales=parse_floats(scales), ratios=parse_floats(ratios), shifts=str(shifts))


def anchor_target_kwargs(cfg) -> dict:
    """Operator parameters (plain strings) from a :class:`rfcn_face.config.Config`: anchors, ``rpn.*`` and
    ``train.hard_face_compensation``."""
    a = cfg.anchor_set()
    return dict(**anchor_set_kwargs(a),
                pos_iou=str(cfg.rpn.pos_iou), neg_iou=str(cfg.rpn.neg_iou), allowed_border=str(cfg.rpn.allowed_border),
                ignore_iof=str(cfg.rpn.ignore_iof),
                hc_top_n=str(cfg.train.hard_face_compensation), batch_size=str(cfg.rpn.batch_size),
                fg_fraction=str(cfg.rpn.fg_fraction), seed=str(cfg.train.seed))


class AnchorTargetOp(NumpyOp):
    def compute(self, in_data):
        p = self.p
        return anchor_target_numpy(in_data[0].shape[2:], in_data[1].asnumpy(), in_data[2].asnumpy(),
                                  p.anchor_set, p.params, batch_size=p.batch_size, fg_fraction=p.fg_fraction,
                                  rng=seed_stream(p.seed), strategy=p.strategy, means=p.means, stds=p.stds)


@mx.operator.register("rfcn_anchor_target")
class AnchorTargetProp(mx.operator.CustomOpProp):
    """Parameters (strings, as MXNet passes them): ``stride``, ``scales`` ("16,32,..."), ``ratios``, ``shifts``
    ("16x3"), ``pos_iou``, ``neg_iou``, ``allowed_border``, ``ignore_iof``, ``hc_top_n``, ``strategy``
    ("" = "hc" when hc_top_n > 0 else "max_iou"), ``batch_size``, ``fg_fraction``, ``seed``,
    ``bbox_means``, ``bbox_stds``."""

    def __init__(self, stride="16", scales="16,32,64,128,256,512", ratios="1", shifts="", pos_iou="0.5",
                 neg_iou="0.3", allowed_border="0", ignore_iof="0.5", hc_top_n="0", strategy="",
                 batch_size="256", fg_fraction="0.5", seed="0", bbox_means="0,0,0,0", bbox_stds="1,1,1,1"):
        super().__init__(need_top_grad=False)
        self.anchor_set = anchor_set_from_kwargs(stride, scales, ratios, shifts)
        self.params = AssignParams(pos_iou=float(pos_iou), neg_iou=float(neg_iou),
                                   allowed_border=int(float(allowed_border)), ignore_iof=float(ignore_iof),
                                   hc_top_n=int(hc_top_n))
        self.strategy = str(strategy)
        self.batch_size, self.fg_fraction, self.seed = int(batch_size), float(fg_fraction), int(seed)
        self.means, self.stds = parse_floats(bbox_means), parse_floats(bbox_stds)

    def list_arguments(self):
        return ["rpn_cls", "gt", "im_info"]

    def list_outputs(self):
        return ["label", "bbox_target", "bbox_weight", "matched"]

    def infer_shape(self, in_shape):
        cls, gt, info = in_shape
        A = self.anchor_set.num_per_location
        if cls[1] % A:
            raise ValueError(f"rpn_cls has {cls[1]} channels, not a multiple of {A} anchors per location")
        B, n = cls[0], cls[2] * cls[3] * A
        return [cls, gt, info], [(B, n), (B, n, 4), (B, n, 4), (B, gt[1])], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return AnchorTargetOp(self)
