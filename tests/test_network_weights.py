"""Pretrained weight import from fabricated checkpoints of every style (nothing is downloaded)."""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
gluoncv_zoo = pytest.importorskip("gluoncv.model_zoo")

from symbols.resnet import ResNetV1, block_names  # noqa: E402
from symbols.rfcn import RFCN  # noqa: E402
from symbols.weights import WeightLoadError, backbone_slots, detect_style, init_detector, load_pretrained  # noqa: E402


def _random_gluon(name, seed=0, **kw):
    """A GluonCV network with random weights and BN statistics (what a real checkpoint looks like)."""
    net = gluoncv_zoo.get_model(name, pretrained=False, **kw)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    rng = np.random.RandomState(seed)
    for key, p in sorted(net.collect_params().items()):
        if key.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, p.shape)
        elif key.endswith(("running_mean", "beta", "bias")):
            v = rng.normal(0, 0.1, p.shape)
        elif key.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, p.shape)
        else:
            v = rng.normal(0, np.sqrt(2.0 / max(1, int(np.prod(p.shape[1:])))), p.shape)
        p.set_data(mx.nd.array(v))
    return net


def _gluon_trunk(net, x):
    """res5 of a GluonCV resnet*_v1 / _v1b (before global pooling)."""
    if hasattr(net, "features"):
        for blk in list(net.features)[:-1]:
            x = blk(x)
        return x
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


@pytest.fixture(scope="module")
def x():
    return mx.nd.array(np.random.RandomState(5).uniform(-1, 1, (1, 3, 67, 90)))


@pytest.fixture(scope="module")
def gluon18(tmp_path_factory):
    net = _random_gluon("resnet18_v1")
    path = tmp_path_factory.mktemp("ckpt") / "resnet18_v1.params"
    net.save_parameters(str(path))
    return net, path


@pytest.mark.parametrize("name", ["resnet18_v1", "resnet18_v1b"])
def test_gluoncv_checkpoint_reproduces_gluoncv_outputs(tmp_path, x, name):
    ref_net = _random_gluon(name, seed=1)
    path = tmp_path / f"{name}.params"
    ref_net.save_parameters(str(path))
    ours = ResNetV1(18, "imagenet")
    ours.initialize()
    report = load_pretrained(ours, path)
    assert report.style == ("gluon_v1b" if name.endswith("b") else "gluon_v1")
    assert len(report.loaded) == len(list(ours.collect_params().keys())) == 100
    assert report.missing == []
    assert report.unused == (["fc.bias", "fc.weight"] if name.endswith("b") else ["output.bias", "output.weight"])
    np.testing.assert_allclose(ours(x)[3].asnumpy(), _gluon_trunk(ref_net, x).asnumpy(), rtol=1e-5, atol=1e-4)


def test_dc_matches_gluoncv_dilated_v1b(tmp_path, x):
    """GluonCV's dilated v1b (stride 8, dilation 2 / 4) is our DC trunk with v1b weights: identical outputs."""
    ref_net = _random_gluon("resnet18_v1b", seed=2, dilated=True)
    path = tmp_path / "r18b.params"
    ref_net.save_parameters(str(path))
    ours = ResNetV1(18, "dc")
    ours.initialize()
    load_pretrained(ours, path)
    got, ref = ours(x)[3].asnumpy(), _gluon_trunk(ref_net, x).asnumpy()
    assert got.shape == ref.shape == (1, 512, 9, 12)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50_v1", "resnet50_v1b"])
def test_gluoncv_bottleneck_checkpoints(tmp_path, x, name):
    """Bottlenecks: v1's conv biases are folded into the BN means (exact), v1b's stride in the 3x3 is noted."""
    ref_net = _random_gluon(name, seed=3)
    path = tmp_path / f"{name}.params"
    ref_net.save_parameters(str(path))
    v1b = name.endswith("b")
    ours = ResNetV1(50, "imagenet", stride_in_3x3=v1b)
    ours.initialize()
    report = load_pretrained(ours, path)
    assert len(report.folded) == (0 if v1b else 2 * 16)
    ref = _gluon_trunk(ref_net, x).asnumpy()
    np.testing.assert_allclose(ours(x)[3].asnumpy(), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    mismatched = ResNetV1(50, "imagenet", stride_in_3x3=not v1b)
    mismatched.initialize()
    assert any("stride" in n for n in load_pretrained(mismatched, path).notes)


def _caffe_names_18():
    """Caffe-style names of a ResNet-18 written out independently of symbols.weights."""
    pairs = [("conv1", "bn_conv1")]
    for stage in (2, 3, 4, 5):
        for blk in "ab":
            for br in ("branch2a", "branch2b"):
                pairs.append((f"res{stage}{blk}_{br}", f"bn{stage}{blk}_{br}"))
            if blk == "a" and stage > 2:
                pairs.append((f"res{stage}a_branch1", f"bn{stage}a_branch1"))
    return pairs


def _gluon18_pairs():
    """GluonCV resnet18_v1 (conv, bn) prefixes in the same order as :func:`_caffe_names_18`."""
    pairs = [("features.0.", "features.1.")]
    for s in range(4):
        for b in range(2):
            p = f"features.{4 + s}.{b}."
            pairs += [(p + "body.0.", p + "body.1."), (p + "body.3.", p + "body.4.")]
            if b == 0 and s > 0:
                pairs.append((p + "downsample.0.", p + "downsample.1."))
    return pairs


def _to_caffe_file(gluon_net, path, prefixes=True):
    structural = {k: v.data() for k, v in gluon_net._collect_params_with_prefix().items()}
    out = {}
    arg, aux = ("arg:", "aux:") if prefixes else ("", "")
    for (conv, bn), (gconv, gbn) in zip(_caffe_names_18(), _gluon18_pairs()):
        out[f"{arg}{conv}_weight"] = structural[gconv + "weight"]
        out[f"{arg}{bn}_gamma"] = structural[gbn + "gamma"]
        out[f"{arg}{bn}_beta"] = structural[gbn + "beta"]
        out[f"{aux}{bn}_moving_mean"] = structural[gbn + "running_mean"]
        out[f"{aux}{bn}_moving_var"] = structural[gbn + "running_var"]
    out[f"{arg}fc1000_weight"] = structural["output.weight"]
    out[f"{arg}fc1000_bias"] = structural["output.bias"]
    mx.nd.save(str(path), out)
    return out


@pytest.mark.parametrize("prefixes", [True, False])
def test_mxnet_caffe_checkpoint(tmp_path, x, gluon18, prefixes):
    gnet, _ = gluon18
    path = tmp_path / "resnet_v1_18-0000.params"
    _to_caffe_file(gnet, path, prefixes)
    det = RFCN("baseline", 18)
    report = init_detector(det, str(path))
    assert report.style == "mxnet"
    assert report.missing == [] and len(report.loaded) == 100
    assert report.unused == ([f"arg:fc1000_{f}" for f in ("bias", "weight")] if prefixes
                             else ["fc1000_bias", "fc1000_weight"])
    np.testing.assert_array_equal(det.backbone.collect_params()["bn3a_branch1_running_var"].data().asnumpy(),
                                  gnet._collect_params_with_prefix()["features.5.0.downsample.1.running_var"]
                                  .data().asnumpy())
    # the R-FCN trunk (res5 dilated) on the even positions is the ImageNet trunk: the weights really are in place
    res5 = det.backbone(x)[3].asnumpy()[:, :, ::2, ::2]
    np.testing.assert_allclose(res5, _gluon_trunk(gnet, x).asnumpy(), rtol=1e-5, atol=1e-4)


def test_exported_detector_params_load_back(tmp_path, gluon18):
    """A checkpoint written by symbols.export (aux: ..._running_mean) is read as the mxnet style too."""
    from symbols.export import export_detector
    src = RFCN("DC", 18)
    init_detector(src, str(gluon18[1]))
    _, params = export_detector(src, tmp_path / "det")
    dst = RFCN("baseline", 18)
    report = init_detector(dst, str(params))
    assert report.style == "mxnet" and report.missing == []
    for name, p in dst.backbone.collect_params().items():
        np.testing.assert_array_equal(p.data().asnumpy(), src.backbone.collect_params()[name].data().asnumpy())
    assert "arg:rpn_conv_3x3_weight" in report.unused


def test_resnet101_names_cover_the_original_checkpoint():
    """The original MXNet resnet_v1_101-0000.params names (res4b22, bn5c_branch2c, ...) are exactly what the
    loader asks for: 104 conv+BN pairs (conv1, 33 blocks x 3, 4 shortcuts)."""
    slots = backbone_slots(101)
    assert len(slots) == 1 + 33 * 3 + 4
    names = {s[0] for s in slots} | {s[1] for s in slots}
    for n in ("conv1_", "bn_conv1_", "res4b22_branch2c_", "bn4b22_branch2c_", "res5a_branch1_", "bn5a_branch2b_",
              "res3b3_branch2a_", "bn2c_branch2c_"):
        assert n in names
    assert "res4b23_branch2a_" not in names and "res4w_branch2a_" not in names
    ours = {p.name for p in ResNetV1(101).collect_params().values()}
    expected = set()
    for conv, bn, *_ in slots:
        expected |= {conv + "weight"} | {bn + f for f in ("gamma", "beta", "running_mean", "running_var")}
    assert expected == ours
    assert block_names(101)[2][-1] == "4b22"


def _fabricated_resnet101_caffe(path):
    """Zeros of the right shapes under the Caffe names of ResNet-101 (written out here independently)."""
    out = {"arg:conv1_weight": np.zeros((64, 3, 7, 7), np.float32)}
    bn = lambda n, c: {f"arg:bn{n}_gamma": np.ones(c), f"arg:bn{n}_beta": np.zeros(c),  # noqa: E731
                       f"aux:bn{n}_moving_mean": np.zeros(c), f"aux:bn{n}_moving_var": np.ones(c)}
    out.update(bn("_conv1", 64))
    cin = 64
    for stage, n, cout in ((2, 3, 256), (3, 4, 512), (4, 23, 1024), (5, 3, 2048)):
        for i in range(n):
            blk = "abc"[i] if stage in (2, 5) else ("a" if i == 0 else f"b{i}")
            name = f"{stage}{blk}"
            mid = cout // 4
            for br, shape in (("branch2a", (mid, cin, 1, 1)), ("branch2b", (mid, mid, 3, 3)),
                              ("branch2c", (cout, mid, 1, 1))):
                out[f"arg:res{name}_{br}_weight"] = np.zeros(shape)
                out.update(bn(f"{name}_{br}", shape[0]))
            if i == 0:
                out[f"arg:res{name}_branch1_weight"] = np.zeros((cout, cin, 1, 1))
                out.update(bn(f"{name}_branch1", cout))
            cin = cout
    out["arg:fc1000_weight"] = np.zeros((1000, 2048))
    out["arg:fc1000_bias"] = np.zeros(1000)
    mx.nd.save(str(path), {k: mx.nd.array(v) for k, v in out.items()})


@pytest.mark.slow
def test_fabricated_resnet_v1_101_checkpoint(tmp_path):
    path = tmp_path / "resnet_v1_101-0000.params"
    _fabricated_resnet101_caffe(path)
    det = RFCN("DC", 101)
    report = init_detector(det, str(path))
    assert report.style == "mxnet" and report.missing == [] and len(report.loaded) == 104 * 5
    assert report.unused == ["arg:fc1000_bias", "arg:fc1000_weight"]


# --- errors -------------------------------------------------------------------------------------------------

def test_missing_file_names_the_path(tmp_path):
    net = ResNetV1(18)
    net.initialize()
    missing = tmp_path / "nowhere" / "resnet101_v1.params"
    with pytest.raises(FileNotFoundError, match="nowhere/resnet101_v1.params"):
        load_pretrained(net, missing)


def test_shape_mismatch_is_reported(tmp_path, gluon18):
    data = mx.nd.load(str(gluon18[1]))
    data["features.5.0.body.0.weight"] = mx.nd.zeros((128, 64, 5, 5))
    path = tmp_path / "bad.params"
    mx.nd.save(str(path), data)
    net = ResNetV1(18)
    net.initialize()
    with pytest.raises(WeightLoadError, match=r"features\.5\.0\.body\.0\.weight \(128, 64, 5, 5\) vs "
                                              r"res3a_branch2a_weight \(128, 64, 3, 3\)"):
        load_pretrained(net, path)


def test_wrong_depth_is_a_shape_error(gluon18):
    net = ResNetV1(34)
    net.initialize()
    with pytest.raises(WeightLoadError):
        load_pretrained(net, gluon18[1])


def test_missing_key_is_an_error_unless_allowed(tmp_path, gluon18):
    data = mx.nd.load(str(gluon18[1]))
    del data["features.7.1.body.4.gamma"]
    path = tmp_path / "partial.params"
    mx.nd.save(str(path), data)
    net = ResNetV1(18)
    net.initialize()
    before = net.collect_params()["bn5b_branch2b_gamma"].data().asnumpy().copy()
    with pytest.raises(WeightLoadError, match="bn5b_branch2b_gamma"):
        load_pretrained(net, path)
    report = load_pretrained(net, path, allow_missing=True)
    assert report.missing == ["bn5b_branch2b_gamma"]
    assert "NOT loaded" in report.summary() and "bn5b_branch2b_gamma" in report.summary()
    np.testing.assert_array_equal(net.collect_params()["bn5b_branch2b_gamma"].data().asnumpy(), before)


def test_unreadable_and_unknown_files(tmp_path):
    net = ResNetV1(18)
    net.initialize()
    junk = tmp_path / "junk.params"
    junk.write_bytes(b"definitely not an ndarray file")
    with pytest.raises(WeightLoadError, match="junk.params"):
        load_pretrained(net, junk)
    other = tmp_path / "other.params"
    mx.nd.save(str(other), {"dense0_weight": mx.nd.zeros((2, 2))})
    with pytest.raises(WeightLoadError, match="unrecognised"):
        load_pretrained(net, other)
    assert detect_style(["arg:conv1_weight"]) == "mxnet"
    assert detect_style(["features.0.weight"]) == "gluon_v1"
    assert detect_style(["layer1.0.conv1.weight"]) == "gluon_v1b"
