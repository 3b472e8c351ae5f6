"""One training step's model side: this worker's images -> R-FCN losses -> backward, per device.

Per image, under ``autograd.record``: backbone (+ BU / BUS) + RPN (:mod:`symbols.rfcn`); the anchor targets of the
image's strategy (:mod:`rfcn_face.assigners`: complete from the loader, or finished here from this iteration's
decoded RPN boxes and face probabilities when the strategy reads predictions); proposals over our anchor set
(``rpn.*`` top-N, NMS), proposal targets (gt appended, ``rcnn.*`` IoUs), the PSROI head on those RoIs, OHEM
(``rcnn.ohem_mode``, Sec. 5.1 1:3 or R-FCN top-B) — the numpy forwards of :mod:`rfcn_face.targets`, exactly what
the CustomOps of ``operators/`` run; losses (:mod:`symbols.detection_losses`, normalised per image as R-FCN does):

    L_img = L_cls,rpn + sum(v * smoothL1_3(rpn deltas)) / rpn.batch_size
          + CE_rcnn / #OHEM RoIs + sum(w * smoothL1_1(head deltas)) / rcnn.ohem_batch_size

with ``L_cls,rpn`` the mean cross-entropy over the sampled anchors for a strategy without per-anchor weights and
the softmax loss (R-FCN), else ``sum_a w_a l(logits_a, t_a)`` (``rpn.cls_loss``; the weights are the strategy's,
:mod:`rfcn_face.assigners.base`). :class:`DetectorStep` returns every image's loss terms as NDArrays; the loop
reads them once, after the backward.
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["DetectorStep", "STAT_KEYS", "LOSS_KEYS"]

LOSS_KEYS = ("rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss")
STAT_KEYS = LOSS_KEYS + ("rpn_ok", "rpn_n", "rcnn_ok", "rcnn_n", "matched", "faces")


class DetectorStep:
    """``DetectorStep(cfg, net, assigner, timer)``; :meth:`forward_backward` runs one step's images."""

    def __init__(self, cfg, net, assigner, timer):
        from .proposals import ProposalParams, ProposalTargetParams
        from .sampling import OHEMParams, RPNSampling
        self.cfg, self.net, self.assigner, self.timer = cfg, net, assigner, timer
        self.anchor_set = cfg.anchor_set()
        self.rpn_sampling = RPNSampling.from_config(cfg)
        self.proposal_params = ProposalParams.from_config(cfg, train=True)
        self.roi_params = ProposalTargetParams.from_config(cfg)
        self.ohem = OHEMParams.from_config(cfg)

    def forward_backward(self, contexts, device_samples, iteration=None) -> list:
        """Forward + backward of this worker's images (a list per device) at training ``iteration`` (0 = the first;
        read by an assigner's warm-up); returns one dict of NDArrays (:data:`STAT_KEYS`) per image. Gradients are
        left in the parameters' grad arrays."""
        from mxnet import autograd
        per_image = []
        for ctx, samples in zip(contexts, device_samples):
            if not samples:
                continue
            with autograd.record():
                outs = [self.image_losses(s, ctx, iteration) for s in samples]
            autograd.backward([o[0] for o in outs])
            per_image.extend(st for _, st in outs)
        return per_image

    def image_losses(self, sample, ctx, iteration=None):
        """Forward of one image under ``autograd.record``: (total loss, per-term NDArrays / floats)."""
        import mxnet as mx

        from symbols.detection_losses import (RCNN_SIGMA, RPN_SIGMA, label_accuracy, rpn_classification_loss,
                                              softmax_cross_entropy, weighted_smooth_l1)
        from symbols.rfcn import to_anchor_order

        from .datasets.batches import roi_rng
        from .targets import ohem_numpy, proposal_numpy, proposal_target_numpy
        cfg, nd = self.cfg, mx.nd
        data = nd.array(sample.image[None], ctx=ctx)
        rpn_cls, rpn_bbox, feat = self.net(data)
        self.timer.add("anchor_target", sample.rpn_seconds)
        n_anchors = rpn_cls.shape[2] * rpn_cls.shape[3] * self.anchor_set.num_per_location
        n_targets = len(sample.rpn.anchor_boxes)
        if n_anchors != n_targets:
            raise RuntimeError(f"RPN map {rpn_cls.shape[2:]} does not match the {n_targets} anchor targets of "
                               f"a {sample.im_info[:2]} image")
        cls_np, bbox_np = rpn_cls.asnumpy(), rpn_bbox.asnumpy()
        t0 = time.perf_counter()
        tg = self.anchor_targets(sample, cls_np, bbox_np, iteration)
        if self.assigner.needs_predictions:
            self.timer.add("mining", time.perf_counter() - t0)
        t0 = time.perf_counter()
        im_info = sample.im_info[None]
        rois, _ = proposal_numpy(cls_np, bbox_np, im_info, self.anchor_set, **self.proposal_params.kwargs())
        rois_t, rlab, rtgt, rw = proposal_target_numpy(
            rois, sample.gt[None], rng=[roi_rng(cfg.train.seed, sample.epoch, sample.index)],
            **self.roi_params.kwargs())
        self.timer.add("target_ops", time.perf_counter() - t0)
        cls_score, bbox_pred = self.net.head(feat, nd.array(rois_t, ctx=ctx))
        o = self.ohem
        if o.enabled:
            prob = nd.softmax(cls_score, axis=-1).asnumpy()
            box_np = bbox_pred.asnumpy()
            t0 = time.perf_counter()
            rlab, rw = ohem_numpy(prob, box_np, rlab, rtgt, rw, rois_t, batch_size=o.batch_size,
                                  fg_fraction=o.fg_fraction, mode=o.mode)
            self.timer.add("target_ops", time.perf_counter() - t0)
        a_cls = to_anchor_order(nd, rpn_cls, 2)[0]
        a_box = to_anchor_order(nd, rpn_bbox, 4)[0]
        if tg.mean_over_labels:   # R-FCN: SoftmaxOutput(normalization='valid') over the sampled anchors
            rpn_cls_loss, rpn_ok, rpn_n = softmax_cross_entropy(nd, a_cls, nd.array(tg.loss_labels, ctx=ctx))
        else:                     # sum_a w_a * l(logits_a, t_a), normalisation in w (rfcn_face.assigners.base)
            c = cfg.rpn
            rpn_cls_loss = rpn_classification_loss(nd, a_cls, nd.array(tg.cls_target, ctx=ctx),
                                                   nd.array(tg.cls_weight, ctx=ctx), c.cls_loss, c.focal_alpha,
                                                   c.focal_gamma)
            rpn_ok, rpn_n = label_accuracy(nd, a_cls, nd.array(tg.loss_labels, ctx=ctx))
        rpn_box_loss = weighted_smooth_l1(nd, a_box, nd.array(tg.bbox_target, ctx=ctx),
                                          nd.array(tg.bbox_weight, ctx=ctx), RPN_SIGMA, self.rpn_sampling.batch_size)
        rcnn_cls_loss, rcnn_ok, rcnn_n = softmax_cross_entropy(nd, cls_score, nd.array(rlab, ctx=ctx))
        rcnn_box_loss = weighted_smooth_l1(nd, bbox_pred, nd.array(rtgt, ctx=ctx), nd.array(rw, ctx=ctx),
                                           RCNN_SIGMA, o.rois_per_image)
        total = rpn_cls_loss + rpn_box_loss + rcnn_cls_loss + rcnn_box_loss
        faces = sample.gt[:, 4] == 0
        matched = np.zeros(len(sample.gt))
        matched[sample.present] = tg.matched
        stats = {"rpn_cls_loss": rpn_cls_loss, "rpn_bbox_loss": rpn_box_loss, "rcnn_cls_loss": rcnn_cls_loss,
                 "rcnn_bbox_loss": rcnn_box_loss, "rpn_ok": rpn_ok, "rpn_n": rpn_n, "rcnn_ok": rcnn_ok,
                 "rcnn_n": rcnn_n, "matched": float(matched[faces].sum()), "faces": float(faces.sum())}
        return total, stats

    def anchor_targets(self, sample, cls_np, bbox_np, iteration=None):
        """The image's :class:`~rfcn_face.assigners.AnchorTargets`: complete from the loader, or finished now from
        this iteration's predictions (numpy: no gradient through them) with the image's keyed RPN Generator."""
        from .anchors import to_anchor_order_np
        from .boxes import decode
        from .datasets.batches import STREAM_RPN, image_rng
        from .targets import face_probabilities
        plan, a = sample.rpn, self.assigner
        pred = prob = None
        if a.needs_predictions:
            pred = decode(plan.anchor_boxes, to_anchor_order_np(np.asarray(bbox_np, np.float64), 4)[0])
            prob = face_probabilities(cls_np)[0]
        return a.finish(plan, pred, prob, rng=image_rng(self.cfg.train.seed, STREAM_RPN, sample.epoch, sample.index),
                        iteration=iteration)
