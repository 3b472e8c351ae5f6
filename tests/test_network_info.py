"""``python -m rfcn_face info``: JSON keys and values against hand-counted parameters, the anchor formulas, the
data set and the pixel normalisation of the checkpoint."""
import json
from pathlib import Path

import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.anchors import feature_size  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
KEYS = {"arch", "depth", "rpn_stride", "anchors_per_location", "num_anchors", "params_total", "params_new",
        "dataset", "data_root", "pretrained", "normalisation"}


def _conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def _resnet18_trunk():
    """ResNet-18 v1 without the classifier: convs without bias, BatchNorm gamma + beta (running stats are not
    parameters). 11,176,512 = the well-known 11,689,512 minus the 512*1000 + 1000 classifier."""
    n = _conv(3, 64, 7) + 2 * 64
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        for block in range(2):
            n += _conv(cin if block == 0 else c, c, 3) + 2 * c + _conv(c, c, 3) + 2 * c
            if block == 0 and stage > 0:                 # projection shortcut (res2 is the identity)
                n += _conv(cin, c, 1) + 2 * c
        cin = c
    return n


def _new_layers_resnet18(arch, a):
    """RPN (3x3 to 512, 1x1 to 2A and 4A), R-FCN head (1x1 to 1024, 1x1 to 7*7*2 and 7*7*4), BU's grouped 4x4
    deconvolution on res5 (512 channels), BUS's 1x1s from res5 / res3 (128 ch) to 512 and its 3x3 512 conv."""
    feat = 512
    n = _conv(feat, 512, 3, True) + _conv(512, 2 * a, 1, True) + _conv(512, 4 * a, 1, True)
    n += _conv(feat, 1024, 1, True) + _conv(1024, 7 * 7 * 2, 1, True) + _conv(1024, 7 * 7 * 4, 1, True)
    if arch in ("BU", "BUS"):
        n += 512 * 4 * 4
    if arch == "BUS":
        n += _conv(512, 512, 1, True) + _conv(128, 512, 1, True) + _conv(512, 512, 3, True)
    return n


def _run(tmp_path, args, capsys):
    out = tmp_path / "info.json"
    assert main(["info", *args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    return json.loads(out.read_text()), printed


def _run_yaml(tmp_path, yaml_text, size, capsys):
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml_text)
    return _run(tmp_path, ["--config", str(cfg_path), "--size", size], capsys)


def test_resnet18_trunk_formula_is_the_known_count():
    assert _resnet18_trunk() == 11_689_512 - (512 * 1000 + 1000) == 11_176_512


@pytest.mark.parametrize("arch,shifted,a,stride", [("baseline", "", 6, 16), ("BU", "16x1", 7, 8),
                                                   ("BUS", "16x3", 9, 8), ("DC", "16x3&32x1", 10, 8)])
def test_info_json_values(tmp_path, capsys, arch, shifted, a, stride):
    info, printed = _run_yaml(tmp_path, f"model: {{arch: {arch}, depth: 18}}\nanchors: {{shifted: '{shifted}'}}\n",
                              "70x100", capsys)
    assert KEYS <= set(info)
    assert info["arch"] == arch and info["depth"] == 18
    assert info["rpn_stride"] == stride
    assert info["anchors_per_location"] == a
    assert info["num_anchors"] == feature_size(70, stride) * feature_size(100, stride) * a
    assert info["params_new"] == _new_layers_resnet18(arch, a)
    assert info["params_total"] == _resnet18_trunk() + _new_layers_resnet18(arch, a)
    assert f"{info['num_anchors']:,}" in printed and arch in printed


def test_info_paper_baseline_resnet101(tmp_path, capsys):
    """Paper baseline (Sec. 5.1): ResNet-101, RPN on res5 at stride 16, 6 anchors per location; at 600x1000 the
    map is ceil(600/16) x ceil(1000/16) = 38 x 63 -> 14,364 anchors. ResNet-101 trunk: 42,500,160 parameters."""
    info, _ = _run_yaml(tmp_path, "name: paper\n", "600x1000", capsys)
    assert (info["arch"], info["depth"], info["rpn_stride"], info["anchors_per_location"]) == ("baseline", 101, 16, 6)
    assert info["num_anchors"] == 38 * 63 * 6 == 14364
    assert info["params_total"] - info["params_new"] == 42500160
    assert info["dataset"] == "wider"                               # the defaults are the paper's


def _fake_checkpoint(path, keys):
    mx.nd.save(str(path), {k: mx.nd.zeros((2,)) for k in keys})
    return path


def test_info_paper_final_with_an_mxnet_checkpoint(tmp_path, capsys):
    """--preset paper + the Final row: WIDER FACE, and Caffe-style pixels for the MXNet R-FCN ResNet."""
    ckpt = _fake_checkpoint(tmp_path / "resnet_v1_101-0000.params", ["arg:conv1_weight", "aux:bn_conv1_moving_mean"])
    info, printed = _run(tmp_path, ["--config", str(EXPERIMENTS / "table1" / "13_final.yaml"), "--preset", "paper",
                                    "--set", f"model.pretrained={ckpt}"], capsys)
    assert (info["name"], info["arch"], info["depth"], info["shifted"]) == ("final", "DC", 101, "16x3")
    assert (info["dataset"], info["data_root"], info["pretrained"]) == ("wider", "data", str(ckpt))
    n = info["normalisation"]
    assert (n["kind"], n["mean"], n["std"], n["scale"], n["checkpoint_style"]) == \
        ("caffe", [123.15, 115.90, 103.06], [1.0, 1.0, 1.0], 1.0, "mxnet")
    assert "wider (root data)" in printed and "caffe" in printed and "123.15" in printed


def test_info_gluon_checkpoint_and_smoke_preset(tmp_path, capsys):
    ckpt = _fake_checkpoint(tmp_path / "resnet18_v1b.params", ["conv1.weight", "layer1.0.conv1.weight"])
    info, printed = _run(tmp_path, ["--preset", "smoke", "--set", f"model.pretrained={ckpt}", "--size", "64x64"],
                         capsys)
    n = info["normalisation"]
    assert (info["dataset"], info["depth"]) == ("synthfaces", 18)
    assert (n["kind"], n["mean"], n["std"], n["checkpoint_style"]) == \
        ("imagenet", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], "gluon_v1b")
    assert abs(n["scale"] * 255 - 1) < 1e-12 and "1/255" in printed
    info, _ = _run(tmp_path, ["--preset", "demo", "--size", "64x64"], capsys)
    assert info["dataset"] == "synthfaces" and info["normalisation"]["checkpoint_style"] is None
    assert info["normalisation"]["kind"] == "imagenet"              # random init


def test_info_missing_checkpoint_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.params"
    assert main(["info", "--config", str(EXPERIMENTS / "table1" / "13_final.yaml"), "--preset", "paper",
                 "--set", f"model.pretrained={missing}"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and "model.pretrained" in err and len(err.splitlines()) == 1


def test_info_bad_set_and_preset(tmp_path, capsys):
    assert main(["info", "--set", "train.lr"]) == 2
    assert "KEY.SUB=VALUE" in capsys.readouterr().err
    assert main(["info", "--set", "train.nope=1"]) == 2
    assert "train.nope" in capsys.readouterr().err
    assert main(["info", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_info_bad_size(tmp_path, capsys):
    assert main(["info", "--size", "600by1000"]) == 2
    assert "HxW" in capsys.readouterr().err


def test_info_missing_config(tmp_path, capsys):
    assert main(["info", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
