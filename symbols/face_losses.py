"""The two FRN training losses of Qi, Liu & Su (Sec. 3.2): NormFace's normalised softmax and the
contrastive-center loss, as Gluon HybridBlocks that own their parameters (class weights, scale, centres).

NormSoftmaxLoss (NormFace, Wang et al. 2017, Eq. for the "normalised softmax")
    f_i = x_i / ||x_i||, w_j = W_j / ||W_j||, logits_ij = s * <f_i, w_j>,
    L_i = -log softmax(logits_i)[y_i].
    ``s`` is a fixed scale, or a learned scalar parameter when ``learn_scale=True`` (NormFace learns it).

ContrastiveCenterLoss (Qi & Su 2017)
    L_i = 1/2 * ||x_i - c_{y_i}||^2 / (sum_{j != y_i} ||x_i - c_j||^2 + delta),
    with learned centres c_j (trained by back-propagation here, like any parameter) and delta = 1 by default
    (the value of the contrastive-center paper, which keeps the denominator away from zero).

Both return the per-sample loss (N,); average it over the batch in the training loop.
"""
from __future__ import annotations

from mxnet import init
from mxnet.gluon import HybridBlock

__all__ = ["NormSoftmaxLoss", "ContrastiveCenterLoss"]

_EPS = 1e-12


def _l2_normalize(F, x):
    return F.broadcast_div(x, F.sqrt(F.sum(F.square(x), axis=1, keepdims=True) + _EPS))


class NormSoftmaxLoss(HybridBlock):
    """NormFace normalised softmax. ``forward(x, y)`` -> (N,) loss; ``logits(x)`` -> scaled cosines."""

    def __init__(self, num_classes, in_units, scale=16.0, learn_scale=False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.learn_scale = num_classes, learn_scale
        self._fixed_scale = float(scale)
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(num_classes, in_units), init=init.Xavier())
            self.scale = self.params.get("scale", shape=(1,), init=init.Constant(float(scale)),
                                         grad_req="write" if learn_scale else "null")

    def cosine(self, F, x, weight):
        return F.dot(_l2_normalize(F, x), _l2_normalize(F, weight), transpose_b=True)

    def hybrid_forward(self, F, x, y, weight, scale):
        logits = F.broadcast_mul(self.cosine(F, x, weight), scale.reshape((1, 1)))
        logp = F.log_softmax(logits, axis=1)
        return -F.pick(logp, y, axis=1)


class ContrastiveCenterLoss(HybridBlock):
    """Contrastive-center loss with learned centres. ``forward(x, y)`` -> (N,) loss."""

    def __init__(self, num_classes, in_units, delta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.delta = num_classes, float(delta)
        with self.name_scope():
            self.centers = self.params.get("centers", shape=(num_classes, in_units),
                                           init=init.Normal(0.01))

    def hybrid_forward(self, F, x, y, centers):
        # own term computed directly (no cancellation when x is near its centre)
        own = F.sum(F.square(x - F.take(centers, y)), axis=1)
        # sum_j ||x - c_j||^2 = K ||x||^2 - 2 x . sum_j c_j + sum_j ||c_j||^2
        total = F.broadcast_add(self.num_classes * F.sum(F.square(x), axis=1)
                                - 2 * F.dot(x, F.sum(centers, axis=0)), F.sum(F.square(centers)).reshape((1,)))
        others = F.relu(total - own)  # clamp round-off
        return 0.5 * own / (others + self.delta)
