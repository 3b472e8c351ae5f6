import math
from pathlib import Path

import pytest
import yaml

from rfcn_face.config import (Config, ConfigError, config_from_dict, dump_config, find_preset, load_config,
                              parse_override, rpn_stride)

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
    assert (c.data.dataset, c.data.root) == ("wider", "data")   # the paper's data (Sec. 5)
    assert c.rcnn.ohem_mode == "ratio" and c.train.shift_jitter_stride == "feature"
    assert (c.model.pixel_mean, c.model.pixel_std, c.model.pixel_scale) == ([], [], 0.0)   # auto


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
    assert (final.model.arch, final.anchors.shifted, final.train.shift_jitter, final.rpn.assign) \
        == ("DC", "16x3", True, {"type": "hc", "top_n": 5})
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
        assert cfg.rpn.assign == {"type": "hc", "top_n": 5} and cfg.model.arch == "DC"
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
    for text in ("model: {arch: XX}", "anchors: {shifted: 16x2}", "rpn: {assign: {type: hc, top_n: -1}}",
                 "train: {shift_jitter: 1}", "rpn: {pos_iou: 0.2, neg_iou: 0.3}", "test: {sizes: [[600]]}",
                 "model: {depth: 'a'}", "train: {lr: .nan}", "train: {lr: .inf}", "rcnn: {bbox_stds: [0.1, 0.2]}"):
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


# ------------------------------------------------------------------------------------ layers
def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_layers_override_in_order(tmp_path):
    """defaults <- preset <- row <- --set, each with literal values."""
    preset = _write(tmp_path / "p.yaml", "name: mypreset\ntrain: {lr: 0.01, epochs: 4, lr_steps: [2]}\n"
                                         "test: {sizes: [[100, 200]]}\ndata: {dataset: synthfaces}\n")
    row = _write(tmp_path / "row.yaml", "train: {lr: 0.02}\ntest: {sizes: [[300, 400]]}\n")
    d = load_config()
    assert (d.train.lr, d.train.epochs, d.test.sizes, d.data.dataset) == (0.001, 8, [[0, 0]], "wider")
    p = load_config(preset=preset)
    assert (p.train.lr, p.train.epochs, p.train.lr_steps, p.test.sizes, p.data.dataset) == \
        (0.01, 4, [2], [[100, 200]], "synthfaces")
    assert p.name == "mypreset"                                    # no row: the preset names the run
    r = load_config(row)
    assert (r.train.lr, r.train.epochs, r.test.sizes, r.data.dataset) == (0.02, 8, [[300, 400]], "wider")
    pr = load_config(row, preset=preset)
    assert (pr.train.lr, pr.train.epochs, pr.test.sizes, pr.data.dataset) == (0.02, 4, [[300, 400]], "synthfaces")
    assert pr.name == "row"                                        # the row's stem, not the preset's name
    o = load_config(row, preset=preset, overrides=["train.lr=0.03", "train.epochs=6"])
    assert (o.train.lr, o.train.epochs, o.test.sizes, o.data.dataset) == (0.03, 6, [[300, 400]], "synthfaces")
    assert load_config(row, overrides=["test.sizes=[[600,1000]]", "test.sizes=[[800,1200]]"]).test.sizes == \
        [[800, 1200]]                                              # later --set wins
    assert load_config(row, overrides=["name=custom"]).name == "custom"


def test_base_chain_relative_recursive(tmp_path):
    _write(tmp_path / "base.yaml", "name: base\ndescription: the base\nmodel: {arch: DC}\n"
                                   "rpn: {assign: {type: hc, top_n: 5}}\ntrain: {shift_jitter: true}\n"
                                   "paper: {hard: 0.5}\n")
    _write(tmp_path / "sub" / "child.yaml", "_BASE_: ../base.yaml\nanchors: {shifted: 16x3}\n"
                                            "rpn: {assign: {top_n: 3}}\n")
    grand = _write(tmp_path / "grand.yaml", "_BASE_: sub/child.yaml\ntest: {sizes: [[600, 1000]]}\n")
    c = load_config(tmp_path / "sub" / "child.yaml")
    assert (c.model.arch, c.anchors.shifted, c.rpn.assign["top_n"], c.train.shift_jitter) == \
        ("DC", "16x3", 3, True)
    # name / description / paper describe one experiment: not inherited from the base
    assert (c.name, c.description, c.paper.hard) == ("child", "", None)
    g = load_config(grand)
    assert (g.model.arch, g.anchors.shifted, g.rpn.assign["top_n"], g.test.sizes, g.name) == \
        ("DC", "16x3", 3, [[600, 1000]], "grand")
    # the preset sits below the whole chain, --set above it
    g2 = load_config(grand, preset="smoke", overrides=["rpn.assign.top_n=7"])
    assert (g2.model.depth, g2.model.arch, g2.rpn.assign["top_n"], g2.test.sizes) == \
        (18, "DC", 7, [[600, 1000]])


def test_base_errors(tmp_path):
    a = _write(tmp_path / "a.yaml", "_BASE_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"_BASE_ cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(a)
    selfref = _write(tmp_path / "self.yaml", "_BASE_: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(selfref)
    m = _write(tmp_path / "m.yaml", "_BASE_: nope/missing.yaml\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: _BASE_ file not found: .*nope/missing\.yaml"):
        load_config(m)
    _write(tmp_path / "badbase.yaml", "train: {lrr: 1}\n")
    child = _write(tmp_path / "child.yaml", "_BASE_: badbase.yaml\n")
    with pytest.raises(ConfigError, match=r"badbase\.yaml: unknown config key 'train\.lrr'"):
        load_config(child)
    n = _write(tmp_path / "n.yaml", "_BASE_: [a.yaml]\n")
    with pytest.raises(ConfigError, match="_BASE_ must be a relative path"):
        load_config(n)


# ------------------------------------------------------------------------------------ --set
def test_parse_override_values():
    assert parse_override("train.lr=0.01") == ("train.lr", 0.01)
    assert parse_override("train.lr=1e-3") == ("train.lr", 0.001)        # YAML 1.1 would give the string
    assert parse_override("test.sizes=[[600,1000]]") == ("test.sizes", [[600, 1000]])
    assert parse_override("train.flip=false") == ("train.flip", False)
    assert parse_override("train.epochs=3") == ("train.epochs", 3)
    assert parse_override("model.pretrained=/x/y.params") == ("model.pretrained", "/x/y.params")
    assert parse_override("model.pretrained=") == ("model.pretrained", "")
    assert parse_override("name=2024") == ("name", "2024")                # a string knob keeps the text
    assert parse_override("anchors.shifted=16x3&32x1") == ("anchors.shifted", "16x3&32x1")
    assert parse_override("paper.hard=0.8") == ("paper.hard", 0.8)


def test_override_errors():
    with pytest.raises(ConfigError, match=r"--set train\.lr: expected KEY\.SUB=VALUE"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match=r"--set train\.nope=1: unknown config key 'train\.nope'"):
        parse_override("train.nope=1")
    with pytest.raises(ConfigError, match=r"unknown config key 'trian\.lr'"):
        parse_override("trian.lr=1")
    with pytest.raises(ConfigError, match="train.lr has no sub-keys"):
        parse_override("train.lr.x=1")
    with pytest.raises(ConfigError, match="expected KEY.SUB=VALUE"):
        parse_override("=1")
    with pytest.raises(ConfigError, match=r"--set train\.epochs=two: train\.epochs must be an integer"):
        load_config(overrides=["train.epochs=two"])
    with pytest.raises(ConfigError, match=r"--set train\.flip=1: train\.flip must be true or false"):
        load_config(overrides=["train.flip=1"])


# ------------------------------------------------------------------------------------ errors name the layer
def test_errors_name_the_layer(tmp_path):
    bad_preset = _write(tmp_path / "pp.yaml", "train:\n  shift_jiter: true\n")
    with pytest.raises(ConfigError, match=r"preset .*pp\.yaml: unknown config key 'train\.shift_jiter'"):
        load_config(preset=bad_preset)
    typed = _write(tmp_path / "row.yaml", "train: {epochs: 2.5}\n")
    with pytest.raises(ConfigError, match=r"row\.yaml: train\.epochs must be an integer"):
        load_config(typed, preset="smoke")
    # a range error is blamed on the layer that set the value, not on the last layer
    ranged = _write(tmp_path / "ranged.yaml", "rcnn: {bbox_stds: [0.1, 0.1, 0.2]}\n")
    with pytest.raises(ConfigError, match=r"ranged\.yaml: rcnn\.bbox_stds must have 4 entries"):
        load_config(ranged, overrides=["train.lr=0.01"])
    steps = _write(tmp_path / "steps.yaml", "train: {lr_steps: [9]}\n")
    with pytest.raises(ConfigError, match=r"^preset .*steps\.yaml: train\.lr_steps \[9\] must be strictly increasing "
                                          r"epochs within \[0, train\.epochs = 8\]"):
        load_config(preset=steps)
    with pytest.raises(ConfigError, match=r"--set train\.epochs=1: train\.lr_steps \[5\] must be strictly increasing "
                                          r"epochs within \[0, train\.epochs = 1\] \(train\.lr_steps from defaults\)"):
        load_config(overrides=["train.epochs=1"])
    with pytest.raises(ConfigError,
                       match=r"--set rpn\.neg_iou=0\.6: need rpn\.neg_iou \(0\.6\) <= rpn\.pos_iou \(0\.5\)"):
        load_config(overrides=["rpn.neg_iou=0.6"])
    with pytest.raises(ConfigError, match=r"<dict>: model\.arch must be one of baseline, BU, BUS, DC"):
        config_from_dict({"model": {"arch": "XX"}})


@pytest.mark.parametrize("override,message", [
    ("rcnn.bbox_stds=[0.1,0.1,0.2]", "rcnn.bbox_stds must have 4 entries"),
    ("rcnn.bbox_stds=[0.1,0.1,0.2,0]", "rcnn.bbox_stds entries must be > 0"),
    ("rcnn.bbox_stds=[0.1,.nan,0.2,0.2]", "rcnn.bbox_stds must be a list of finite numbers"),
    ("rcnn.bbox_stds=[0.1,a,0.2,0.2]", "rcnn.bbox_stds must be a list of finite numbers"),
    ("rcnn.bbox_means=[0,0,0]", "rcnn.bbox_means must have 4 entries"),
    ("anchors.scales=[]", "anchors.scales must not be empty"),
    ("anchors.scales=[16,-32]", "anchors.scales entries must be > 0"),
    ("anchors.scales=[16,.inf]", "anchors.scales must be a list of finite numbers"),
    ("anchors.ratios=[0]", "anchors.ratios entries must be > 0"),
    ("anchors.ratios=[]", "anchors.ratios must not be empty"),
    ("test.sizes=[[600,1000,1]]", "test.sizes items must be [shorter, longer] pairs of non-negative integers"),
    ("test.sizes=[[-1,1000]]", "test.sizes items must be"),
    ("test.sizes=[[600.5,1000]]", "test.sizes items must be"),
    ("test.sizes=[]", "test.sizes needs at least one"),
    ("test.pyramid_sizes=[[500]]", "test.pyramid_sizes items must be"),
    ("train.multiscale_sizes=[[500,true]]", "train.multiscale_sizes items must be"),
    ("rpn.fg_fraction=1.5", "rpn.fg_fraction must be in (0.0, 1.0]"),
    ("rpn.pos_iou=-0.1", "rpn.pos_iou must be in [0.0, 1.0]"),
    ("rcnn.ohem_fg_fraction=0", "rcnn.ohem_fg_fraction must be in (0.0, 1.0]"),
    ("rcnn.fg_fraction=0", "rcnn.fg_fraction must be in"),
    ("test.score_thresh=1.5", "test.score_thresh must be in"),
    ("test.nms_thresh=0", "test.nms_thresh must be in"),
    ("paper.hard=1.5", "paper.hard must be in"),
    ("rpn.batch_size=0", "rpn.batch_size must be in [1, inf]"),
    ("rcnn.ohem_batch_size=0", "rcnn.ohem_batch_size must be in"),
    ("train.batch_images=0", "train.batch_images must be in"),
    ("train.lr=0", "train.lr must be in (0.0, inf]"),
    ("train.lr=-0.1", "train.lr must be in"),
    ("train.lr=.inf", "train.lr must be finite"),
    ("train.lr=.nan", "train.lr must be finite"),
    ("train.momentum=1", "train.momentum must be in"),
    ("train.wd=-1e-4", "train.wd must be in"),
    ("train.epochs=0", "train.epochs must be in"),
    ("train.lr_steps=[5,5]", "train.lr_steps [5, 5] must be strictly increasing"),
    ("train.lr_steps=[9]", "train.lr_steps [9] must be strictly increasing epochs within [0, train.epochs = 8]"),
    ("train.lr_steps=[-1]", "train.lr_steps"),
    ("train.seed=-1", "train.seed must be in"),
    ("rpn.assign={type: hc, top_n: -1}", "rpn.assign.top_n must be in"),
    ("rcnn.ohem_mode=hardest", "rcnn.ohem_mode must be one of ratio, topk"),
    ("train.shift_jitter_stride=pixel", "train.shift_jitter_stride must be one of feature, anchor"),
    ("data.dataset=coco", "data.dataset must be one of wider, synthfaces"),
    ("model.depth=20", "model.depth must be one of 18, 34, 50, 101, 152"),
    ("model.pixel_scale=1", "model.pixel_mean / pixel_std / pixel_scale must be all set or all auto"),
])
def test_list_and_range_validation(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=[override])
    text = str(e.value)
    assert text.startswith(f"--set {override}: ") and message in text, text
    assert "\n" not in text


def test_pixel_normalisation_values_are_validated():
    ok = ["model.pixel_mean=[123.15,115.9,103.06]", "model.pixel_std=[1,1,1]", "model.pixel_scale=1"]
    c = load_config(overrides=ok)
    assert (c.model.pixel_mean, c.model.pixel_std, c.model.pixel_scale) == ([123.15, 115.9, 103.06], [1, 1, 1], 1.0)
    for bad, msg in ((0, "model.pixel_mean must have 3 entries"), (1, "model.pixel_std entries must be > 0"),
                     (2, r"model.pixel_scale must be in \(0, inf\]")):
        o = list(ok)
        o[bad] = {0: "model.pixel_mean=[1,2]", 1: "model.pixel_std=[1,0,1]", 2: "model.pixel_scale=-1"}[bad]
        with pytest.raises(ConfigError, match=msg):
            load_config(overrides=o)


def test_valid_edge_values_pass():
    c = load_config(overrides=["rcnn.ohem_mode=topk", "train.shift_jitter_stride=anchor", "train.lr_steps=[0,8]",
                               "test.sizes=[[600,1000],[0,0]]", "rpn.allowed_border=-1", "rpn.pre_nms_top_n=-1",
                               "train.multiscale_sizes=[]", "test.pyramid_sizes=[]"])
    assert (c.rcnn.ohem_mode, c.train.shift_jitter_stride, c.train.lr_steps) == ("topk", "anchor", [0, 8])
    with pytest.raises(ConfigError, match="test.pyramid_sizes needs at least one"):
        load_config(overrides=["test.pyramid=true", "test.pyramid_sizes=[]"])


# ------------------------------------------------------------------------------------ presets
def test_preset_by_name_and_by_path(tmp_path, monkeypatch):
    by_path = load_config(preset=EXPERIMENTS / "presets" / "smoke.yaml")
    monkeypatch.chdir(tmp_path)                     # found relative to the package, not the working folder
    by_name = load_config(preset="smoke")
    assert by_name == by_path
    assert (by_name.name, by_name.model.depth, by_name.data.dataset, by_name.train.max_size) == \
        ("smoke", 18, "synthfaces", 256)
    demo = load_config(preset="demo")
    assert (demo.name, demo.model.depth, demo.data.dataset, demo.model.pretrained, demo.train.max_size) == \
        ("demo", 18, "synthfaces", "", 256)
    assert "demo" in demo.description.lower() and demo.train.freeze == "none" and demo.model.width == 0.5
    path, label = find_preset("paper")
    assert path == EXPERIMENTS / "presets" / "paper.yaml" and label == f"preset paper ({path})"
    with pytest.raises(ConfigError, match=r"unknown preset 'nope': no nope\.yaml in .*experiments/presets.*"
                                          r"available: demo, paper, smoke"):
        load_config(preset="nope")
    with pytest.raises(ConfigError, match=r"preset file not found: .*missing\.yaml"):
        load_config(preset=str(tmp_path / "missing.yaml"))


def test_paper_preset_with_the_final_row():
    c = load_config(EXPERIMENTS / "table1" / "13_final.yaml", preset="paper")
    assert (c.data.dataset, c.data.root) == ("wider", "data")
    assert (c.model.arch, c.model.depth, c.anchors.shifted) == ("DC", 101, "16x3")
    assert (c.train.shift_jitter, c.rpn.assign) == (True, {"type": "hc", "top_n": 5})
    assert c.model.pretrained == "data/pretrained/resnet_v1_101-0000.params"
    assert (c.name, c.paper.easy, c.paper.medium, c.paper.hard) == ("final", 0.940, 0.914, 0.795)
    assert c.description.startswith("Table 1")                     # the row's, not the preset's
    assert c.test.sizes == [[0, 0]] and (c.train.epochs, c.train.lr, c.train.lr_steps) == (8, 0.001, [5])
    assert c.anchor_set().stride == 8 and c.anchor_set().num_per_location == 9


@pytest.mark.parametrize("preset", ["smoke", "demo"])
def test_cpu_presets_with_the_final_row(preset):
    c = load_config(EXPERIMENTS / "table1" / "13_final.yaml", preset=preset)
    assert (c.data.dataset, c.model.depth, c.model.pretrained) == ("synthfaces", 18, "")
    assert (c.model.arch, c.anchors.shifted, c.train.shift_jitter, c.rpn.assign) == \
        ("DC", "16x3", True, {"type": "hc", "top_n": 5})           # the row decides the method


def test_presets_never_set_a_knob_table1_rows_vary():
    varied = set()
    for path in (EXPERIMENTS / "table1").glob("*.yaml"):
        for section, values in yaml.safe_load(path.read_text()).items():
            if isinstance(values, dict) and section != "paper":
                varied |= {f"{section}.{k}" for k in values}
    assert {"model.arch", "anchors.shifted", "train.shift_jitter", "rpn.assign",
            "train.multiscale_sizes", "test.pyramid"} <= varied
    rows = sorted((EXPERIMENTS / "table1").glob("*.yaml"))
    for preset in sorted((EXPERIMENTS / "presets").glob("*.yaml")):
        data = yaml.safe_load(preset.read_text())
        set_here = {f"{s}.{k}" for s, v in data.items() if isinstance(v, dict) for k in v}
        assert not set_here & varied, f"{preset.name} sets {set_here & varied}"
        for row in rows:   # so a row means the same method under every preset
            a, b = load_config(row, preset=preset), load_config(row)
            for key in varied:
                s, k = key.split(".")
                assert getattr(getattr(a, s), k) == getattr(getattr(b, s), k), (preset.name, row.name, key)


def test_table2_rows_start_from_the_final_row():
    final = load_config(EXPERIMENTS / "table1" / "13_final.yaml")
    for path in (EXPERIMENTS / "table2").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["_BASE_"] == "../table1/13_final.yaml"
        c = load_config(path)
        assert (c.paper.easy, c.paper.medium) == (None, None)      # Table 2 gives only Hard
        assert c.name == path.stem
        for section in ("model", "anchors", "train", "rpn", "rcnn", "data"):
            assert getattr(c, section) == getattr(final, section), (path.name, section)


def test_dump_keeps_float_scale_exact(tmp_path):
    c = load_config(overrides=["model.pixel_mean=[0.485,0.456,0.406]", "model.pixel_std=[0.229,0.224,0.225]",
                               f"model.pixel_scale={1 / 255!r}"])
    out = dump_config(c, tmp_path / "c.yaml")
    again = load_config(out)
    assert again.model.pixel_scale == 1 / 255 and math.isclose(again.model.pixel_scale * 255, 1.0)


def test_zero_init_residual_with_imagenet_weights_is_an_error_not_ignored(tmp_path):
    """model.zero_init_residual only acts on a random init; with model.pretrained it would silently do nothing."""
    from rfcn_face.config import with_pretrained
    row = EXPERIMENTS / "table1" / "13_final.yaml"
    demo = load_config(row, preset="demo")                     # the demo preset zeroes the residual branches
    assert demo.model.zero_init_residual and not demo.model.pretrained
    with pytest.raises(ConfigError, match=r"--pretrained: model\.zero_init_residual is for random init"):
        with_pretrained(demo, tmp_path / "r18.params")
    full = ("model.zero_init_residual=false", "train.freeze=rfcn", "model.width=1.0")     # demo.PRETRAINED_OVERRIDES
    assert with_pretrained(load_config(row, preset="demo", overrides=full), "w.params").model.pretrained == "w.params"
    assert with_pretrained(load_config(row, preset="demo"), None).model.pretrained == ""      # not given: unchanged
