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
"""
from __future__ import annotations

__all__ = ["softmax_cross_entropy", "weighted_smooth_l1", "RPN_SIGMA", "RCNN_SIGMA"]

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
