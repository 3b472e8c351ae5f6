"""ResNet v1 backbone: stage strides per layout, DC dilations (Sec. 4.1, Fig. S2), Caffe names, sizes."""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.anchors import feature_size  # noqa: E402
from symbols import resnet  # noqa: E402
from symbols.resnet import ResNetV1, block_names, stage_layout  # noqa: E402
from symbols.rfcn import count_params  # noqa: E402


def _randomize(net, seed=0):
    """Random weights and BN statistics, so that every layer matters in comparisons."""
    rng = np.random.RandomState(seed)
    for name, p in sorted(net.collect_params().items()):
        if name.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, p.shape)
        elif name.endswith(("running_mean", "beta")):
            v = rng.normal(0, 0.1, p.shape)
        elif name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, p.shape)
        else:
            fan_in = int(np.prod(p.shape[1:]))
            v = rng.normal(0, np.sqrt(2.0 / fan_in), p.shape)
        p.set_data(mx.nd.array(v))


def _build(depth, layout, stride_in_3x3=False, seed=0, like=None):
    """A trunk with random weights, or with the weights of ``like`` (same names, same shapes)."""
    net = ResNetV1(depth, layout, stride_in_3x3=stride_in_3x3)
    net.initialize()
    if like is None:
        _randomize(net, seed)
    else:
        src = like.collect_params()
        for name, p in net.collect_params().items():
            p.set_data(src[name].data())
    return net


@pytest.mark.parametrize("layout,strides", [("imagenet", (4, 8, 16, 32)), ("rfcn", (4, 8, 16, 16)),
                                            ("dc", (4, 8, 8, 8))])
def test_stage_strides_from_shapes(layout, strides):
    net = ResNetV1(18, layout)
    net.initialize()
    h, w = 70, 100
    outs = net(mx.nd.zeros((1, 3, h, w)))
    assert resnet.backbone_feature_strides(layout) == strides
    for o, s, c in zip(outs, strides, (64, 128, 256, 512)):
        assert o.shape == (1, c, feature_size(h, s), feature_size(w, s))


def _all_convs(block):
    from mxnet.gluon import nn
    found = []
    for child in block._children.values():
        if isinstance(child, nn.Conv2D):
            found.append(child)
        found.extend(_all_convs(child))
    return found


@pytest.mark.parametrize("stride_in_3x3", [False, True])
def test_dc_dilations_resnet101(stride_in_3x3):
    """DC: every 3x3 of res4 dilated 2 and of res5 dilated 4; 1x1 never dilated; v1b's strided 3x3 (first
    block) keeps the previous stage's dilation (its taps stay on the finer grid)."""
    net = ResNetV1(101, "dc", stride_in_3x3=stride_in_3x3)
    seen = 0
    for conv in _all_convs(net):
        name = conv.weight.name
        k = conv._kwargs["kernel"][0]
        dil = conv._kwargs["dilate"]
        stride = conv._kwargs["stride"]
        if k == 1 or name.startswith("conv1"):
            assert dil == (1, 1), name
            continue
        stage = int(name[3])
        first = name[4] == "a"
        expected = {2: 1, 3: 1, 4: 2, 5: 4}[stage]
        if stride_in_3x3 and first and stage in (4, 5):
            expected //= 2
        assert dil == (expected, expected), name
        assert conv._kwargs["pad"] == (expected, expected), name
        assert stride == ((2, 2) if (stride_in_3x3 and first and stage == 3) else (1, 1)), name
        seen += 1
    assert seen == 3 + 4 + 23 + 3  # one 3x3 per bottleneck


@pytest.mark.parametrize("depth,stride_in_3x3", [(18, False), (50, False),
                                                  pytest.param(50, True, marks=pytest.mark.slow)])
def test_dilation_fills_the_holes(depth, stride_in_3x3):
    """Fig. S2: removing a stride-2 and dilating the following filters computes the strided network's values
    on every other position and fills the holes in between. With shared weights, res4/res5 of DC (stride 8)
    sub-sampled by 2 / 4 equal res4/res5 of the ImageNet layout (stride 16 / 32); R-FCN's res5 (stride 16)
    sub-sampled by 2 equals it too. This holds only if the dilations preserve each filter's image-space taps."""
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, 75, 70)))
    base = _build(depth, "imagenet", stride_in_3x3)
    ref = base(x)
    rf = _build(depth, "rfcn", stride_in_3x3, like=base)(x)
    dc = _build(depth, "dc", stride_in_3x3, like=base)(x)
    r4, r5 = ref[2].asnumpy(), ref[3].asnumpy()
    tol4, tol5 = 1e-5 * np.abs(r4).max(), 1e-5 * np.abs(r5).max()  # float32 sums over deep nets
    np.testing.assert_allclose(rf[3].asnumpy()[:, :, ::2, ::2], r5, rtol=1e-5, atol=tol5)
    np.testing.assert_allclose(dc[2].asnumpy()[:, :, ::2, ::2], r4, rtol=1e-5, atol=tol4)
    np.testing.assert_allclose(dc[3].asnumpy()[:, :, ::4, ::4], r5, rtol=1e-5, atol=tol5)
    assert np.abs(r5).max() > 1e-2


def test_wrong_dilation_breaks_hole_filling(monkeypatch):
    """Control: with res5 dilated by 2 instead of 4 in DC, the identity above fails."""
    monkeypatch.setitem(resnet._LAYOUTS, "dc_wrong", ((1, 2, 1, 1), (1, 1, 2, 2)))
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, 64, 64)))
    base = _build(18, "imagenet")
    r5 = base(x)[3].asnumpy()
    bad = _build(18, "dc_wrong", like=base)(x)[3].asnumpy()[:, :, ::4, ::4]
    assert np.abs(bad - r5).max() > 0.1 * np.abs(r5).max()


def test_block_names_follow_caffe_resnets():
    n101 = block_names(101)
    assert n101[0] == ["2a", "2b", "2c"]
    assert n101[1] == ["3a", "3b1", "3b2", "3b3"]
    assert len(n101[2]) == 23 and n101[2][:2] == ["4a", "4b1"] and n101[2][-1] == "4b22"
    assert n101[3] == ["5a", "5b", "5c"]
    assert block_names(50)[2] == ["4a", "4b", "4c", "4d", "4e", "4f"]
    assert block_names(152)[1][-1] == "3b7" and block_names(152)[2][-1] == "4b35"


def test_parameter_names_are_caffe_names():
    names = {p.name for p in ResNetV1(101).collect_params().values()}
    for n in ("conv1_weight", "bn_conv1_gamma", "bn_conv1_running_var", "res2a_branch1_weight",
              "res4b22_branch2c_weight", "bn5a_branch2b_gamma", "bn5c_branch2c_running_mean"):
        assert n in names
    assert not any(n.endswith("_bias") for n in names)  # Caffe ResNet convs have no bias


def _backbone_params_formula(depth):
    """Learnable parameters of a ResNet v1 trunk (no classifier): conv weights + BN gamma/beta."""
    kind, counts = resnet.DEPTHS[depth]
    total = 3 * 64 * 49 + 2 * 64
    cin = 64
    for cout, n, stage in zip(resnet.STAGE_CHANNELS[kind], counts, range(4)):
        for b in range(n):
            if kind == "basic":
                total += cin * cout * 9 + 2 * cout + cout * cout * 9 + 2 * cout
            else:
                mid = cout // 4
                total += cin * mid + 2 * mid + mid * mid * 9 + 2 * mid + mid * cout + 2 * cout
            if b == 0 and (cin != cout):
                total += cin * cout + 2 * cout
            cin = cout
    return total


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_backbone_parameter_count(depth):
    # torchvision's resnet18/50/101 have 11,689,512 / 25,557,032 / 44,549,160 parameters including the
    # 1000-way classifier (512*1000+1000 or 2048*1000+1000).
    known = {18: 11689512 - 513000, 50: 25557032 - 2049000, 101: 44549160 - 2049000}[depth]
    for layout in ("imagenet", "rfcn", "dc"):
        net = ResNetV1(depth, layout)
        assert count_params(net) == known == _backbone_params_formula(depth)


def test_unknown_layout_and_depth():
    with pytest.raises(ValueError, match="layout"):
        stage_layout("bogus")
    with pytest.raises(ValueError, match="depth"):
        ResNetV1(42)


def test_width_scales_every_stage():
    from symbols.resnet import stage_channels
    assert stage_channels(18, 1.0) == (64, 64, 128, 256, 512)
    assert stage_channels(18, 0.5) == (32, 32, 64, 128, 256)
    assert stage_channels(101, 0.25) == (16, 64, 128, 256, 512)
    net = ResNetV1(18, "dc", width=0.5)
    net.initialize()
    outs = net(mx.nd.zeros((1, 3, 64, 64)))
    assert [o.shape[1] for o in outs] == [32, 64, 128, 256]
    assert [o.shape[2] for o in outs] == [16, 8, 8, 8]                # DC layout: res4/res5 stay at stride 8


def test_zero_init_residual_makes_identity_blocks_pass_through():
    """Basic blocks with a zero last-BN gamma output relu(x + 0) = x for their (non-negative) input: res2 of
    ResNet-18 (two identity blocks) then equals the max-pooled stem."""
    from symbols.weights import zero_init_residual
    net = ResNetV1(18, "rfcn")
    net.initialize(mx.init.Xavier())
    names = zero_init_residual(net)
    assert len(names) == 8 and all(n.endswith("branch2b_gamma") for n in names)
    x = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    stem = net.pool1(mx.nd.relu(net.bn_conv1(net.conv1(x))))
    np.testing.assert_allclose(net(x)[0].asnumpy(), stem.asnumpy(), rtol=0, atol=1e-6)
