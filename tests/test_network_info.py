"""``python -m rfcn_face info``: JSON keys and values against the built network and the anchor formulas."""
import json

import pytest

pytest.importorskip("mxnet")

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.anchors import feature_size  # noqa: E402
from rfcn_face.config import load_config  # noqa: E402
from symbols.rfcn import build_detector, count_params, new_layer_params  # noqa: E402

KEYS = {"arch", "depth", "rpn_stride", "anchors_per_location", "num_anchors", "params_total", "params_new"}


def _run(tmp_path, yaml_text, size, capsys):
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml_text)
    out = tmp_path / "info.json"
    assert main(["info", "--config", str(cfg_path), "--size", size, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    return json.loads(out.read_text()), printed, load_config(cfg_path)


@pytest.mark.parametrize("arch,shifted,a,stride", [("baseline", "", 6, 16), ("BU", "16x1", 7, 8),
                                                   ("BUS", "16x3", 9, 8), ("DC", "16x3&32x1", 10, 8)])
def test_info_json_values(tmp_path, capsys, arch, shifted, a, stride):
    info, printed, cfg = _run(tmp_path, f"model: {{arch: {arch}, depth: 18}}\nanchors: {{shifted: '{shifted}'}}\n",
                              "70x100", capsys)
    assert KEYS <= set(info)
    assert info["arch"] == arch and info["depth"] == 18
    assert info["rpn_stride"] == stride
    assert info["anchors_per_location"] == a
    assert info["num_anchors"] == feature_size(70, stride) * feature_size(100, stride) * a
    net = build_detector(cfg)
    assert info["params_total"] == count_params(net)
    assert info["params_new"] == new_layer_params(net)
    assert info["params_total"] > info["params_new"] > 0
    assert f"{info['num_anchors']:,}" in printed and arch in printed


def test_info_paper_baseline_resnet101(tmp_path, capsys):
    """Paper baseline (Sec. 5.1): ResNet-101, RPN on res5 at stride 16, 6 anchors per location; at 600x1000 the
    map is ceil(600/16) x ceil(1000/16) = 38 x 63 -> 14,364 anchors. ResNet-101 trunk: 42,500,160 parameters."""
    info, _, _ = _run(tmp_path, "name: paper\n", "600x1000", capsys)
    assert (info["arch"], info["depth"], info["rpn_stride"], info["anchors_per_location"]) == ("baseline", 101, 16, 6)
    assert info["num_anchors"] == 38 * 63 * 6 == 14364
    assert info["params_total"] - info["params_new"] == 42500160


def test_info_bad_size(tmp_path, capsys):
    assert main(["info", "--size", "600by1000"]) == 2
    assert "HxW" in capsys.readouterr().err


def test_info_missing_config(tmp_path, capsys):
    assert main(["info", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
