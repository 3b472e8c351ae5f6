"""The training graph after the backbone, on the device: everything between the RPN maps and the loss of one image
(batch of 1, as R-FCN trains), in MXNet operators, hybridizable — so a step needs no read-back before its backward.

``DetectorLoss(rpn_cls, rpn_bbox, feat, im_info, gt, *rpn_targets, [roi_keys]) -> (loss (1,), stats (8,))``:

1. proposals of the training knobs (:class:`symbols.proposal.ProposalBlock`, ``rpn.*`` top-N and NMS);
2. R-FCN proposal targets (:func:`symbols.proposal_target.proposal_targets`: gt appended, ``rcnn.*`` IoUs, the
   keyed RoI minibatch when OHEM is off);
3. the network's PSROI head on those RoIs;
4. OHEM (:func:`symbols.ohem.ohem_select`, ``rcnn.ohem_mode``: Sec. 5.1's 1:3 or R-FCN's top-B) on stopped
   gradients;
5. the losses of :mod:`symbols.detection_losses`, normalised per image as R-FCN does::

       L = L_cls,rpn + sum(v * smoothL1_3(rpn deltas)) / rpn.batch_size
         + CE_rcnn / #OHEM RoIs + sum(w * smoothL1_1(head deltas)) / rcnn.ohem_batch_size

   ``L_cls,rpn`` is R-FCN's mean cross-entropy over the sampled anchors when the anchor strategy's targets say so
   (``mean_over``: ``rpn_targets = (label, bbox_target, bbox_weight)``), else the weighted sum
   ``sum_a w_a l(logits_a, t_a)`` (``rpn_targets = (label, bbox_target, bbox_weight, cls_target, cls_weight)``,
   ``rpn.cls_loss`` softmax or focal).

``stats`` = the four loss terms, then correct / counted anchors and correct / counted RoIs (no gradient); the
training loop reads them once per step, after the backward.
"""
from __future__ import annotations

from mxnet.gluon import HybridBlock

from .detection_losses import (RCNN_SIGMA, RPN_SIGMA, label_accuracy, rpn_classification_loss, softmax_cross_entropy,
                               weighted_smooth_l1)
from .ohem import ohem_select
from .proposal_target import proposal_targets
from .rfcn import to_anchor_order

__all__ = ["DetectorLoss", "STATS"]

STATS = ("rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss", "rpn_ok", "rpn_n", "rcnn_ok",
         "rcnn_n")


class DetectorLoss(HybridBlock):
    """See the module docstring. ``head`` the network's PSROI head (shared), ``proposal`` a training
    :class:`~symbols.proposal.ProposalBlock`; ``roi_params`` (:class:`rfcn_face.proposals.ProposalTargetParams`),
    ``ohem`` (:class:`rfcn_face.sampling.OHEMParams`), ``rpn_batch`` (``rpn.batch_size``: the RPN box term's
    normaliser), ``cls_loss`` / ``focal_alpha`` / ``focal_gamma`` (``rpn.*``), ``mean_over`` (the RPN
    classification term is the mean over the labelled anchors)."""

    def __init__(self, head, proposal, roi_params, ohem, rpn_batch: int, cls_loss: str = "softmax",
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, mean_over: bool = True, **kw):
        super().__init__(prefix="", **kw)
        self.roi_params, self.ohem, self.rpn_batch = roi_params, ohem, int(rpn_batch)
        self.cls_loss, self.focal = cls_loss, (float(focal_alpha), float(focal_gamma))
        self.mean_over = bool(mean_over)
        self.keyed = roi_params.batch_rois > 0        # the RoI minibatch needs the image's sampling keys
        self.post = int(proposal.p.post_nms_top_n)
        with self.name_scope():
            self.head, self.proposal = head, proposal

    def hybrid_forward(self, F, rpn_cls, rpn_bbox, feat, im_info, gt, *targets):
        keys = targets[-1] if self.keyed else None
        targets = targets[:-1] if self.keyed else targets
        rois, _ = self.proposal(F.stop_gradient(rpn_cls), F.stop_gradient(rpn_bbox), im_info)
        rois, rlab, rtgt, rw = proposal_targets(F, rois, gt, keys, rois_per_image=self.post, params=self.roi_params)
        cls_score, bbox_pred = self.head(feat, rois)
        o = self.ohem
        if o.enabled:
            rlab, rw = ohem_select(F, cls_score, bbox_pred, rlab, rtgt, rw, num_images=1, batch_size=o.batch_size,
                                   fg_fraction=o.fg_fraction, mode=o.mode)
        a_cls = F.reshape(to_anchor_order(F, rpn_cls, 2), (-3, 2))            # (N, 2), batch 1
        a_box = F.reshape(to_anchor_order(F, rpn_bbox, 4), (-3, 4))
        label, bbox_target, bbox_weight = targets[:3]
        if self.mean_over:        # R-FCN: SoftmaxOutput(normalization='valid') over the sampled anchors
            rpn_cls_loss, rpn_ok, rpn_n = softmax_cross_entropy(F, a_cls, label)
        else:                     # sum_a w_a * l(logits_a, t_a), the normalisation in w (rfcn_face.assigners.base)
            rpn_cls_loss = rpn_classification_loss(F, a_cls, targets[3], targets[4], self.cls_loss, *self.focal)
            rpn_ok, rpn_n = label_accuracy(F, a_cls, label)
        rpn_box_loss = weighted_smooth_l1(F, a_box, bbox_target, bbox_weight, RPN_SIGMA, self.rpn_batch)
        rcnn_cls_loss, rcnn_ok, rcnn_n = softmax_cross_entropy(F, cls_score, rlab)
        rcnn_box_loss = weighted_smooth_l1(F, bbox_pred, rtgt, rw, RCNN_SIGMA, o.rois_per_image)
        total = rpn_cls_loss + rpn_box_loss + rcnn_cls_loss + rcnn_box_loss
        stats = F.stop_gradient(F.concat(*[F.reshape(v, (1,)) for v in (rpn_cls_loss, rpn_box_loss, rcnn_cls_loss,
                                                                          rcnn_box_loss, rpn_ok, rpn_n, rcnn_ok,
                                                                          rcnn_n)], dim=0))
        return F.reshape(total, (1,)), stats
