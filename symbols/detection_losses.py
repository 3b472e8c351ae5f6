"""The detector's training losses as functions of ``F`` (``mx.nd`` or ``mx.sym``), normalised as the MXNet
R-FCN code (Deformable-ConvNets ``rfcn/symbols/resnet_v1_101_rfcn.py``) normalises them, per image:

* RPN classification: softmax cross-entropy averaged over the sampled anchors (label != -1;
  ``SoftmaxOutput(normalization='valid', use_ignore=True)``);
* RPN regression: ``sum(weight * smooth_l1(pred - target, sigma=3)) / rpn.batch_size``
  (``MakeLoss(grad_scale=1 / RPN_BATCH_SIZE)``);
* R-FCN classification: softmax cross-entropy averaged over the RoIs OHEM keeps (label != -1);
* R-FCN regression: ``sum(weight * smooth_l1(pred - target, sigma=1)) / B`` with B the RoIs per image
  (``rcnn.ohem_batch_size`` with OHEM, else ``rcnn.batch_size``; ``MakeLoss(grad_scale=1 / BATCH_ROIS_OHEM)``).

The training loop adds the four terms per image, sums the images of an iteration and rescales the gradient by
the global batch (:mod:`rfcn_face.train`).

With an anchor strategy that reads the predictions (``rpn.assign.type: hambox | cleanliness``) or the focal loss
(``rpn.cls_loss: focal``) the RPN classification term is the generic :func:`rpn_classification_loss`
``sum_a w_a * l(logits_a, t_a)``: float targets ``t`` (HAMBox: 1 / 0; cleanliness: the soft label c) and
per-anchor weights ``w`` with the normalisation folded in, both from :mod:`rfcn_face.assigners` (numpy, so no
gradient reaches them). For max-IoU / HC(N) with softmax, ``w_a = 1 / #sampled`` makes it the mean above; the
training loop keeps :func:`softmax_cross_entropy` there so those runs stay bit-identical.
"""
from __future__ import annotations

from rfcn_face.assigners import CLS_LOSSES as RPN_CLS_LOSSES   # rpn.cls_loss: one definition, with the targets

__all__ = ["softmax_cross_entropy", "weighted_smooth_l1", "rpn_classification_loss", "label_accuracy",
           "RPN_SIGMA", "RCNN_SIGMA", "RPN_CLS_LOSSES"]

RPN_SIGMA = 3.0    # R-FCN: smooth_l1(scalar=3.0) on the RPN deltas
RCNN_SIGMA = 1.0   # R-FCN: smooth_l1(scalar=1.0) on the head deltas


def softmax_cross_entropy(F, logits, labels):
    """Mean softmax cross-entropy over the entries whose label is not -1.

    ``logits`` (..., C), ``labels`` (...) integer-valued floats in {-1, 0, .., C-1}. Returns ``(loss, correct,
    valid)``: the mean (0 when nothing is valid), the number of valid entries whose argmax equals the label,
    and the number of valid entries (both without gradient).
    """
    valid = labels >= 0
    logp = F.log_softmax(logits, axis=-1)
    picked = F.pick(logp, F.maximum(labels, 0), axis=-1)
    n = F.sum(valid)
    loss = -F.sum(picked * valid) / F.maximum(n, 1.0)
    correct = F.sum((F.argmax(logits, axis=-1) == labels) * valid)
    return loss, F.stop_gradient(correct), F.stop_gradient(n)


def weighted_smooth_l1(F, pred, target, weight, sigma: float, normaliser: float):
    """``sum(weight * smooth_l1(pred - target, sigma)) / normaliser`` (Fast R-CNN's smooth L1:
    ``0.5 (sigma x)^2`` if ``|x| < 1 / sigma^2`` else ``|x| - 0.5 / sigma^2``)."""
    return F.sum(weight * F.smooth_l1(pred - target, scalar=sigma)) / float(normaliser)


def rpn_classification_loss(F, logits, target, weight, kind: str = "softmax", alpha: float = 0.25,
                            gamma: float = 2.0):
    """``sum_a weight_a * l_a`` over two-class logits ``(..., 2)`` (background, face), ``target`` / ``weight``
    (...) floats (held constant: no gradient). With ``p`` the softmax face probability:

    * ``softmax``: ``l = -(1 - t) log(1 - p) - t log p``, the cross-entropy against ``[1 - t, t]`` (soft labels
      allowed; for t in {0, 1} the usual ``-log p[label]``);
    * ``focal`` (RetinaNet; noisy anchors Eq. 1 with its focal weights, soft labels allowed):
      ``l = -t alpha (1 - p)^gamma log p - (1 - t)(1 - alpha) p^gamma log(1 - p)``. The modulating factors are
      computed as ``exp(gamma * log_softmax)``, finite for every logit.

    The normalisation is in ``weight`` (:mod:`rfcn_face.assigners.base` documents it).
    """
    if kind not in RPN_CLS_LOSSES:
        raise ValueError(f"unknown RPN classification loss {kind!r}; expected one of {', '.join(RPN_CLS_LOSSES)}")
    logp = F.log_softmax(logits, axis=-1)
    lp0, lp1 = F.split(logp, num_outputs=2, axis=-1, squeeze_axis=True)
    t, w = F.stop_gradient(target), F.stop_gradient(weight)
    if kind == "softmax":
        loss = -(t * lp1 + (1.0 - t) * lp0)
    else:
        loss = -(alpha * t * F.exp(gamma * lp0) * lp1 + (1.0 - alpha) * (1.0 - t) * F.exp(gamma * lp1) * lp0)
    return F.sum(w * loss)


def label_accuracy(F, logits, labels):
    """``(correct, valid)`` without gradient: entries with label >= 0 and how many of them the argmax gets."""
    valid = labels >= 0
    correct = F.sum((F.argmax(logits, axis=-1) == labels) * valid)
    return F.stop_gradient(correct), F.stop_gradient(F.sum(valid))
