from pathlib import Path

import pytest
import yaml

from rfcn_face.config import Config, ConfigError, config_from_dict, dump_config, load_config, rpn_stride

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TABLE1 = {  # Table 1 of the paper: row -> (Easy, Medium, Hard)
    "baseline": (0.934, 0.895, 0.705), "bu": (0.933, 0.901, 0.710), "bus": (0.926, 0.899, 0.778),
    "dc": (0.936, 0.911, 0.779), "dc_16x1": (0.934, 0.908, 0.781), "dc_16x1_32x1": (0.936, 0.910, 0.782),
    "dc_16x3": (0.938, 0.912, 0.786), "dc_16x3_32x1": (0.937, 0.909, 0.781), "dc_16x3_32x3": (0.938, 0.913, 0.779),
    "dc_sj": (0.939, 0.910, 0.788), "dc_16x3_sj": (0.940, 0.914, 0.789), "dc_16x3_sj_hc3": (0.938, 0.912, 0.793),
    "final": (0.940, 0.914, 0.795), "dc_16x3_sj_hc7": (0.936, 0.912, 0.791),
    "baseline_pyramid": (0.943, 0.927, 0.840), "final_pyramid": (0.949, 0.933, 0.861),
}
TABLE2 = {(600, 1000): 0.757, (800, 1200): 0.817, (1200, 1600): 0.838, (1400, 1800): 0.835}


def test_defaults_are_the_paper_baseline():
    c = Config()
    assert c.model.arch == "baseline" and c.model.depth == 101
    assert c.anchors.scales == [16, 32, 64, 128, 256, 512] and c.anchors.ratios == [1.0]
    assert c.rpn.pos_iou == 0.5                          # Sec. 5.1
    assert c.rcnn.ohem and c.rcnn.ohem_fg_fraction == 0.25  # OHEM 1:3
    assert (c.train.epochs, c.train.lr, c.train.lr_steps, c.train.lr_factor) == (8, 0.001, [5], 0.1)
    assert c.anchor_set().stride == 16 and c.anchor_set().num_per_location == 6


def test_every_experiment_yaml_loads_and_table1_rows_are_complete():
    rows = {}
    for path in sorted((EXPERIMENTS / "table1").glob("*.yaml")):
        cfg = load_config(path)
        rows[cfg.name] = cfg
        # each file holds only what differs from the defaults: nothing it sets equals the default
        data = yaml.safe_load(path.read_text())
        default = Config().to_dict()
        for section, values in data.items():
            if isinstance(values, dict) and section != "paper":
                for k, v in values.items():
                    assert default[section][k] != v, f"{path.name}: {section}.{k} repeats the default"
    assert set(rows) == set(TABLE1)
    for name, (e, m, h) in TABLE1.items():
        assert (rows[name].paper.easy, rows[name].paper.medium, rows[name].paper.hard) == (e, m, h), name
    final = rows["final"]
    assert (final.model.arch, final.anchors.shifted, final.train.shift_jitter, final.train.hard_face_compensation) \
        == ("DC", "16x3", True, 5)
    assert rows["final_pyramid"].test.pyramid and rows["baseline_pyramid"].test.pyramid
    assert rows["dc_16x3_32x3"].anchor_set().num_per_location == 12
    for path in (EXPERIMENTS / "presets").glob("*.yaml"):
        load_config(path)


def test_table2_yamls():
    found = {}
    for path in (EXPERIMENTS / "table2").glob("*.yaml"):
        cfg = load_config(path)
        (s, l), = cfg.test.sizes
        found[(s, l)] = cfg.paper.hard
        assert cfg.train.hard_face_compensation == 5 and cfg.model.arch == "DC"
    assert found == TABLE2


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  shift_jiter: true\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.shift_jiter"):
        load_config(p)
    p.write_text("trian: {}\n")
    with pytest.raises(ConfigError, match="trian"):
        load_config(p)


def test_bad_values_are_errors(tmp_path):
    for text in ("model: {arch: XX}", "anchors: {shifted: 16x2}", "train: {hard_face_compensation: -1}",
                 "train: {shift_jitter: 1}", "rpn: {pos_iou: 0.2, neg_iou: 0.3}", "test: {sizes: [[600]]}",
                 "model: {depth: 'a'}"):
        p = tmp_path / "c.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError):
            load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_dump_round_trip(tmp_path):
    cfg = load_config(EXPERIMENTS / "table1" / "13_final.yaml")
    out = dump_config(cfg, tmp_path / "run" / "config.yaml")
    again = config_from_dict(yaml.safe_load(out.read_text()), str(out))
    assert again == cfg
    dump_config(cfg, tmp_path / "config.json")


def test_rpn_stride_per_arch():
    assert [rpn_stride(a) for a in ("baseline", "BU", "BUS", "DC")] == [16, 8, 8, 8]
