"""NormFace normalised softmax and contrastive-center loss: values and autograd gradients against direct
numpy formulas (float64), gradients by central finite differences of those formulas."""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
from mxnet import autograd  # noqa: E402

from symbols.face_losses import ContrastiveCenterLoss, NormSoftmaxLoss  # noqa: E402


def np_normsoftmax(x, W, s, y):
    """-log softmax(s * cos(x_i, W_j))[y_i], written out directly."""
    out = np.empty(len(x))
    for i in range(len(x)):
        f = x[i] / np.linalg.norm(x[i])
        logits = np.array([s * f @ (w / np.linalg.norm(w)) for w in W])
        m = logits.max()
        out[i] = -(logits[y[i]] - m - np.log(np.exp(logits - m).sum()))
    return out


def np_ccl(x, C, y, delta):
    """1/2 ||x_i - c_y||^2 / (sum_{j != y} ||x_i - c_j||^2 + delta), written out directly."""
    out = np.empty(len(x))
    for i in range(len(x)):
        d2 = [((x[i] - c) ** 2).sum() for c in C]
        own = d2[y[i]]
        out[i] = 0.5 * own / (sum(d2) - own + delta)
    return out


def finite_diff(f, a, eps=1e-6):
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        ap, am = a.copy(), a.copy()
        ap[idx] += eps
        am[idx] -= eps
        g[idx] = (f(ap) - f(am)) / (2 * eps)
    return g


def _autograd(block, x, y, params):
    xn = mx.nd.array(x, dtype="float64")
    xn.attach_grad()
    with autograd.record():
        loss = block(xn, mx.nd.array(y, dtype="float64"))
        total = loss.sum()
    total.backward()
    return loss.asnumpy(), xn.grad.asnumpy(), {k: p.grad().asnumpy() for k, p in params.items()}


@pytest.mark.parametrize("learn_scale", [False, True])
@pytest.mark.parametrize("hybridize", [False, True])
def test_normsoftmax_value_and_gradients(learn_scale, hybridize):
    rng = np.random.default_rng(0)
    N, D, K, s = 6, 5, 4, 7.5
    x, W, y = rng.normal(size=(N, D)), rng.normal(size=(K, D)), rng.integers(0, K, N)
    blk = NormSoftmaxLoss(K, D, scale=s, learn_scale=learn_scale)
    blk.initialize()
    blk.cast("float64")
    blk.weight.set_data(mx.nd.array(W, dtype="float64"))
    if hybridize:
        blk.hybridize()
    params = {"W": blk.weight}
    if learn_scale:
        params["s"] = blk.scale
    loss, gx, gp = _autograd(blk, x, y, params)
    np.testing.assert_allclose(loss, np_normsoftmax(x, W, s, y), rtol=1e-9)
    np.testing.assert_allclose(gx, finite_diff(lambda a: np_normsoftmax(a, W, s, y).sum(), x), atol=1e-6)
    np.testing.assert_allclose(gp["W"], finite_diff(lambda a: np_normsoftmax(x, a, s, y).sum(), W), atol=1e-6)
    if learn_scale:
        gs = finite_diff(lambda a: np_normsoftmax(x, W, a[0], y).sum(), np.array([s]))
        np.testing.assert_allclose(gp["s"], gs, atol=1e-6)
    else:
        assert blk.scale.grad_req == "null"


def test_normsoftmax_hand_case():
    # two orthogonal classes, feature along class 0 with length 3 (normalised away): cos = (1, 0)
    blk = NormSoftmaxLoss(2, 2, scale=2.0)
    blk.initialize()
    blk.weight.set_data(mx.nd.array([[5.0, 0.0], [0.0, 0.1]]))
    loss = blk(mx.nd.array([[3.0, 0.0]]), mx.nd.array([0])).asscalar()
    assert loss == pytest.approx(np.log(1 + np.exp(-2.0)), rel=1e-4)


@pytest.mark.parametrize("hybridize", [False, True])
def test_contrastive_center_value_and_gradients(hybridize):
    rng = np.random.default_rng(1)
    N, D, K, delta = 7, 4, 5, 1.0
    x, C, y = rng.normal(size=(N, D)), rng.normal(size=(K, D)), rng.integers(0, K, N)
    blk = ContrastiveCenterLoss(K, D, delta=delta)
    blk.initialize()
    blk.cast("float64")
    blk.centers.set_data(mx.nd.array(C, dtype="float64"))
    if hybridize:
        blk.hybridize()
    loss, gx, gp = _autograd(blk, x, y, {"C": blk.centers})
    np.testing.assert_allclose(loss, np_ccl(x, C, y, delta), rtol=1e-9)
    np.testing.assert_allclose(gx, finite_diff(lambda a: np_ccl(a, C, y, delta).sum(), x), atol=1e-6)
    np.testing.assert_allclose(gp["C"], finite_diff(lambda a: np_ccl(x, a, y, delta).sum(), C), atol=1e-6)


def test_contrastive_center_closed_form_gradient_float32():
    # d/dx of 1/2 a/(b+delta): ((x - c_y)(b+delta) - a * sum_{j!=y}(x - c_j)) / (b+delta)^2
    rng = np.random.default_rng(2)
    N, D, K, delta = 5, 8, 6, 0.5
    x, C, y = rng.normal(size=(N, D)), rng.normal(size=(K, D)), rng.integers(0, K, N)
    blk = ContrastiveCenterLoss(K, D, delta=delta)
    blk.initialize()
    blk.centers.set_data(mx.nd.array(C))
    xn = mx.nd.array(x)
    xn.attach_grad()
    with autograd.record():
        blk(xn, mx.nd.array(y)).sum().backward()
    expected = np.empty_like(x)
    for i in range(N):
        diff = x[i] - C
        a = (diff[y[i]] ** 2).sum()
        b = (diff ** 2).sum() - a
        expected[i] = (diff[y[i]] * (b + delta) - a * (diff.sum(0) - diff[y[i]])) / (b + delta) ** 2
    np.testing.assert_allclose(xn.grad.asnumpy(), expected, rtol=1e-4, atol=1e-6)


def test_contrastive_center_hand_case():
    # centres (0,0) and (3,4); x=(1,0) labelled 0: own 1, other 4+16=20 -> 0.5*1/(20+1)
    blk = ContrastiveCenterLoss(2, 2, delta=1.0)
    blk.initialize()
    blk.centers.set_data(mx.nd.array([[0.0, 0.0], [3.0, 4.0]]))
    assert blk(mx.nd.array([[1.0, 0.0]]), mx.nd.array([0])).asscalar() == pytest.approx(0.5 / 21, rel=1e-6)
