"""FaceResNet (Table 1): 27 convolutions + 1 FC, every stage's output shape on 112x96, PReLU, input norm."""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
from mxnet.gluon import nn  # noqa: E402

from symbols.faceresnet import FaceResNet, count_layers  # noqa: E402


def _blocks(block, cls):
    found = [block] if isinstance(block, cls) else []
    for child in block._children.values():
        found += _blocks(child, cls)
    return found


@pytest.fixture(scope="module")
def frn():
    net = FaceResNet()
    net.initialize()
    return net


def test_layer_counts_and_channels(frn):
    assert count_layers(frn) == (27, 1)
    convs = _blocks(frn, nn.Conv2D)
    channels = [c._channels for c in convs]
    # conv1a 32, conv1b 64, 1x2 of 64, conv2 128, 2x2 of 128, conv3 256, 5x2 of 256, conv4 512, 3x2 of 512
    assert channels == [32, 64] + [64] * 2 + [128] + [128] * 4 + [256] + [256] * 10 + [512] + [512] * 6
    assert all(c._kwargs["kernel"] == (3, 3) for c in convs)
    assert _blocks(frn, nn.Dense)[0]._units == 512
    # one PReLU after each convolution, no other activation and no BatchNorm
    assert len(_blocks(frn, nn.PReLU)) == 27
    assert not _blocks(frn, nn.Activation) and not _blocks(frn, nn.BatchNorm)
    pools = _blocks(frn, nn.MaxPool2D)
    assert len(pools) == 4 and all(p._kwargs["kernel"] == (2, 2) and p._kwargs["stride"] == (2, 2) for p in pools)


def test_stage_shapes_on_112x96(frn):
    x = mx.nd.random.uniform(0, 255, shape=(1, 3, 112, 96))
    outs = frn.stage_outputs(x)
    assert [(n, o.shape) for n, o in outs] == [
        ("conv2_x", (1, 64, 54, 46)), ("conv3_x", (1, 128, 26, 22)), ("conv4_x", (1, 256, 12, 10)),
        ("conv5_x", (1, 512, 5, 4)), ("fc5", (1, 512))]
    np.testing.assert_allclose(frn(x).asnumpy(), outs[-1][1].asnumpy(), rtol=1e-5)


def test_same_padding_variant_shapes():
    net = FaceResNet(plain_padding=1, width=0.125)
    net.initialize()
    shapes = [o.shape[2:] for _, o in net.stage_outputs(mx.nd.zeros((1, 3, 112, 96)))[:-1]]
    assert shapes == [(56, 48), (28, 24), (14, 12), (7, 6)]


def test_input_normalisation(frn):
    # (x - 127.5) / 128 inside the net == feeding pre-normalised pixels to a net that skips it
    raw = FaceResNet(normalize_input=False)
    raw.initialize()
    for (k, p), q in zip(frn.collect_params().items(), raw.collect_params().values()):
        q.set_data(p.data())
    x = mx.nd.random.uniform(0, 255, shape=(1, 3, 112, 96))
    np.testing.assert_allclose(frn(x).asnumpy(), raw((x - 127.5) / 128).asnumpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(frn(x).asnumpy(), raw(x).asnumpy(), atol=1e-3)


def test_hybridized_matches_imperative(frn):
    x = mx.nd.random.uniform(0, 255, shape=(1, 3, 112, 96))
    a = frn(x).asnumpy()
    net2 = FaceResNet(prefix=frn.prefix)
    net2.initialize()
    for p, q in zip(frn.collect_params().values(), net2.collect_params().values()):
        q.set_data(p.data())
    net2.hybridize()
    np.testing.assert_allclose(net2(x).asnumpy(), a, rtol=1e-4, atol=1e-5)
