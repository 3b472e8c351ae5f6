"""Pixel normalisation follows the checkpoint style: Caffe means for the MXNet R-FCN ResNet, 0..1 ImageNet
mean / std for GluonCV weights and random init; explicit model.pixel_* win; the resolved values are saved."""
import math

import pytest
import yaml

from rfcn_face.config import (ConfigError, Normalisation, config_from_dict, dump_config, load_config,
                              normalisation_of, resolve_normalisation)

CAFFE = ((123.15, 115.90, 103.06), (1.0, 1.0, 1.0), 1.0)   # MXNet R-FCN resnet_v1_101-0000.params, RGB
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1 / 255)   # GluonCV resnet*_v1 / v1b


def _tuple(n: Normalisation):
    return n.mean, n.std, n.scale


@pytest.mark.parametrize("style,expected,kind", [("mxnet", CAFFE, "caffe"), ("gluon_v1", IMAGENET, "imagenet"),
                                                 ("gluon_v1b", IMAGENET, "imagenet"), (None, IMAGENET, "imagenet")])
def test_auto_follows_the_checkpoint_style(style, expected, kind):
    cfg = config_from_dict({})
    n = resolve_normalisation(cfg, style)
    assert _tuple(n) == expected and n.kind == kind and n.checkpoint_style == style
    # written back: the saved config carries explicit values
    assert (cfg.model.pixel_mean, cfg.model.pixel_std, cfg.model.pixel_scale) == \
        (list(expected[0]), list(expected[1]), expected[2])
    assert normalisation_of(cfg) == n


def test_explicit_values_win_over_the_style():
    cfg = load_config(overrides=["model.pixel_mean=[100,100,100]", "model.pixel_std=[50,50,50]",
                                 "model.pixel_scale=1"])
    n = resolve_normalisation(cfg, "mxnet")
    assert _tuple(n) == ((100.0, 100.0, 100.0), (50.0, 50.0, 50.0), 1.0) and n.kind == "custom"
    assert "expects caffe" in n.source


def test_unresolved_config_is_refused_by_readers():
    with pytest.raises(ConfigError, match="auto.*resolve_normalisation"):
        normalisation_of(config_from_dict({}))
    with pytest.raises(ConfigError, match="unknown checkpoint style 'caffe2'"):
        resolve_normalisation(config_from_dict({}), "caffe2")


def test_resolved_config_round_trips_through_dump(tmp_path):
    cfg = config_from_dict({})
    resolve_normalisation(cfg, "gluon_v1")
    out = dump_config(cfg, tmp_path / "run" / "config.yaml")
    saved = yaml.safe_load(out.read_text())["model"]
    assert saved["pixel_mean"] == [0.485, 0.456, 0.406] and saved["pixel_std"] == [0.229, 0.224, 0.225]
    assert math.isclose(saved["pixel_scale"], 0.00392156862745098, rel_tol=0, abs_tol=1e-18)
    again = config_from_dict(yaml.safe_load(out.read_text()), str(out))
    assert _tuple(normalisation_of(again)) == IMAGENET


def test_fill_is_the_mean_pixel_in_0_255_units():
    cfg = config_from_dict({})
    assert resolve_normalisation(cfg, "mxnet").fill == (123, 116, 103)
    # 0.485 * 255 = 123.675, 0.456 * 255 = 116.28, 0.406 * 255 = 103.53
    assert resolve_normalisation(config_from_dict({}), None).fill == (124, 116, 104)


# ------------------------------------------------------------------------------------ checkpoint probe
mx = pytest.importorskip("mxnet")


def _save(path, keys):
    mx.nd.save(str(path), {k: mx.nd.zeros((2, 2)) for k in keys})
    return path


def test_checkpoint_style_probe_and_resolution(tmp_path):
    from symbols.weights import WeightLoadError, checkpoint_style
    mxp = _save(tmp_path / "resnet_v1_101-0000.params", ["arg:conv1_weight", "aux:bn_conv1_moving_mean"])
    v1 = _save(tmp_path / "resnet18_v1.params", ["features.0.weight", "features.1.gamma"])
    v1b = _save(tmp_path / "resnet18_v1b.params", ["conv1.weight", "layer1.0.conv1.weight"])
    assert [checkpoint_style(p) for p in (mxp, v1, v1b)] == ["mxnet", "gluon_v1", "gluon_v1b"]
    cfg = load_config(overrides=[f"model.pretrained={mxp}"])
    n = resolve_normalisation(cfg)                                  # probes model.pretrained
    assert _tuple(n) == CAFFE and n.checkpoint_style == "mxnet" and str(mxp) in n.source
    cfg = load_config(overrides=[f"model.pretrained={v1b}"])
    assert _tuple(resolve_normalisation(cfg)) == IMAGENET
    odd = _save(tmp_path / "odd.params", ["weird_key"])
    with pytest.raises(WeightLoadError, match=r"odd\.params: unrecognised checkpoint"):
        checkpoint_style(odd)
    junk = tmp_path / "junk.params"
    junk.write_bytes(b"not a params file")
    with pytest.raises(WeightLoadError, match=r"junk\.params: not a readable MXNet \.params file"):
        checkpoint_style(junk)
    missing = tmp_path / "nope.params"
    with pytest.raises(FileNotFoundError, match=r"model\.pretrained: pretrained weights not found: .*nope\.params"):
        resolve_normalisation(load_config(overrides=[f"model.pretrained={missing}"]))
