"""Typed configuration: every knob of the paper, in one place.

A run's config is built from layers, each overriding the previous one::

    defaults  <-  preset  <-  row YAML  <-  --set key.sub=value ...

* **defaults** (the dataclasses below) are the paper's R-FCN ResNet-101 *baseline* on WIDER FACE (Sec. 5.1);
* a **preset** (``--preset NAME`` = ``experiments/presets/NAME.yaml``, or a path) says *where and how big* a
  run is: ``paper`` (WIDER FACE, ResNet-101, the ImageNet checkpoint), ``smoke`` / ``demo`` (CPU, ResNet-18,
  the embedded synthfaces set). A preset never sets a knob a Table 1 row varies;
* a **row** (``experiments/table1/*.yaml``, ``experiments/table2/*.yaml``) holds only what differs from the
  baseline, plus the paper's AP under ``paper:``;
* **overrides** ``--set train.lr=0.01`` (the value is a YAML scalar or list: ``--set test.sizes=[[600,1000]]``).

Any YAML may start from another one with a top-level ``_BASE_: relative/path.yaml`` (resolved relative to
the YAML's folder, recursively; cycles are errors), as in detectron2. ``name``, ``description`` and ``paper``
describe one experiment: they come from the row's own file (or from the preset when there is no row, or
from ``--set``), never from a ``_BASE_`` file or the preset; without a ``name`` the row's file stem is used.

An unknown key, a wrong type or a bad value is a :class:`ConfigError` naming the key and the layer it came
from (the file path, ``preset NAME (path)`` or ``--set key=value``). The resolved config is written next to a
run's outputs with :func:`dump_config`.

YAML layout (every section optional)::

    _BASE_: ../table1/13_final.yaml
    name: dc_16x3_sj_hc5
    model:   {arch: DC, depth: 101}
    anchors: {shifted: "16x3"}
    rpn:     {assign: {type: hc, top_n: 5}}
    train:   {shift_jitter: true}
    test:    {sizes: [[600, 1000]]}
    paper:   {easy: 0.940, medium: 0.914, hard: 0.795}

Each knob is read in exactly one module (docs/config.md lists which); the comment next to it cites the paper.

Pixel normalisation (``model.pixel_mean`` / ``pixel_std`` / ``pixel_scale``) follows the ImageNet checkpoint
that is loaded unless set explicitly: :func:`resolve_normalisation` fills it in (Caffe style for the MXNet
``resnet_v1_101-0000.params``, 0..1 ImageNet style for GluonCV weights or random init) so the config saved
with a run carries explicit values; :func:`normalisation_of` reads it back (the loaders, the detector).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from .config_layers import (MOVED_KEYS, Layer, apply_layers, file_layers, find_preset, is_number, override_layer,
                            parse_override, preset_dirs)
from .config_schema import (ARCHS, DATASETS, DEFAULTS_LAYER, DEPTHS, FREEZE_MODES, SHIFT_JITTER_STRIDES,
                            AnchorConfig, Config, ConfigError, DataConfig, ModelConfig, PaperResult, RCNNConfig,
                            RPNConfig, TestConfig, TrainConfig, rpn_stride)
from .normalisation import (CAFFE_NORMALISATION, IMAGENET_NORMALISATION, NORMALISATION_BY_STYLE, Normalisation,
                            normalisation_of, resolve_normalisation)
from .anchors import parse_shift_spec
from .assigners import CLS_LOSSES as RPN_CLS_LOSSES
from .sampling import OHEM_MODES

__all__ = [
    "ModelConfig", "AnchorConfig", "RPNConfig", "RCNNConfig", "TrainConfig", "TestConfig", "DataConfig",
    "PaperResult", "Config", "ConfigError", "load_config", "config_from_dict", "config_text", "dump_config",
    "with_pretrained", "validate",
    "parse_override", "find_preset", "preset_dirs", "ARCHS", "DEPTHS", "DATASETS", "OHEM_MODES",
    "SHIFT_JITTER_STRIDES", "FREEZE_MODES", "RPN_CLS_LOSSES", "MOVED_KEYS", "rpn_stride", "Normalisation",
    "CAFFE_NORMALISATION", "IMAGENET_NORMALISATION",
    "NORMALISATION_BY_STYLE", "resolve_normalisation", "normalisation_of",
]


# ------------------------------------------------------------------------------------ validation
def _get(cfg, key: str):
    obj = cfg
    for p in key.split("."):
        obj = getattr(obj, p)
    return obj


def validate(cfg: Config, source: str = DEFAULTS_LAYER, origins: dict | None = None) -> Config:
    """Range and shape checks of every knob; an error names the key and the layer that set it (``origins``:
    dotted key -> layer; keys not in it are named after ``source``)."""
    origins = origins or {}

    def where(key):
        return origins.get(key, source)

    def fail(key, msg):
        raise ConfigError(f"{where(key)}: {key} {msg}, got {_get(cfg, key)!r}")

    def choice(key, options):
        if _get(cfg, key) not in options:
            fail(key, "must be one of " + ", ".join(map(str, options)))

    def number(key, lo=None, hi=None, lo_open=False, hi_open=False):
        v = _get(cfg, key)
        if v is None:
            return
        bad = (lo is not None and (v < lo or (lo_open and v == lo))) or \
              (hi is not None and (v > hi or (hi_open and v == hi)))
        if bad:
            lo_s = "-inf" if lo is None else lo
            hi_s = "inf" if hi is None else hi
            fail(key, f"must be in {'(' if lo_open else '['}{lo_s}, {hi_s}{')' if hi_open else ']'}")

    def numbers(key, length=None, positive=False, nonempty=False):
        v = _get(cfg, key)
        if not all(is_number(x) and math.isfinite(x) for x in v):
            fail(key, "must be a list of finite numbers")
        if length is not None and len(v) != length:
            fail(key, f"must have {length} entries")
        if nonempty and not v:
            fail(key, "must not be empty")
        if positive and not all(x > 0 for x in v):
            fail(key, "entries must be > 0")

    def size_pairs(key, nonempty=False):
        v = _get(cfg, key)
        for s in v:
            if not (isinstance(s, list) and len(s) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                 and x >= 0 for x in s)):
                fail(key, "items must be [shorter, longer] pairs of non-negative integers")
        if nonempty and not v:
            fail(key, "needs at least one [shorter, longer] entry")

    rank = {k: i for i, k in enumerate(origins)}

    def relation(keys, msg):   # blame the layer that set the latest of the related keys, name the others
        k = max(keys, key=lambda x: rank.get(x, -1))
        others = [f"{o} from {where(o)}" for o in keys if where(o) != where(k)]
        raise ConfigError(f"{where(k)}: {msg}" + (f" ({'; '.join(others)})" if others else ""))

    # model
    choice("model.arch", ARCHS)
    choice("model.depth", DEPTHS)
    number("model.width", lo=0.0, lo_open=True)
    if cfg.model.zero_init_residual and cfg.train.freeze != "none":
        relation(("model.zero_init_residual", "train.freeze"), "model.zero_init_residual needs train.freeze: none "
                 f"(with {cfg.train.freeze!r} the zeroed BatchNorm gammas stay 0 and the residual branches never learn)")
    if cfg.model.zero_init_residual and cfg.model.pretrained:
        relation(("model.zero_init_residual", "model.pretrained"), "model.zero_init_residual is for random init: "
                 "with model.pretrained the ImageNet weights are loaded and nothing is zeroed (set it false)")
    if cfg.model.width != 1.0 and cfg.model.pretrained:
        relation(("model.width", "model.pretrained"), f"model.width {cfg.model.width} changes the backbone's shapes: "
                 "ImageNet weights (model.pretrained) need model.width 1")
    for k in ("model.psroi_k", "model.rpn_channels", "model.head_channels", "model.stride_reduction_channels"):
        number(k, lo=1)
    number("model.num_classes", lo=2)
    m = cfg.model
    auto = (not m.pixel_mean, not m.pixel_std, not m.pixel_scale)
    if any(auto) and not all(auto):
        relation(("model.pixel_mean", "model.pixel_std", "model.pixel_scale"),
                 "model.pixel_mean / pixel_std / pixel_scale must be all set or all auto ([] / [] / 0), got "
                 f"{m.pixel_mean!r} / {m.pixel_std!r} / {m.pixel_scale!r}")
    if not any(auto):
        numbers("model.pixel_mean", length=3)
        numbers("model.pixel_std", length=3, positive=True)
        number("model.pixel_scale", lo=0, lo_open=True)
    # anchors
    numbers("anchors.scales", positive=True, nonempty=True)
    numbers("anchors.ratios", positive=True, nonempty=True)
    try:
        parse_shift_spec(cfg.anchors.shifted)
    except ValueError as e:
        raise ConfigError(f"{where('anchors.shifted')}: anchors.shifted: {e}") from None
    # rpn
    for k in ("rpn.pos_iou", "rpn.neg_iou", "rpn.ignore_iof"):
        number(k, 0.0, 1.0)
    if cfg.rpn.neg_iou > cfg.rpn.pos_iou:
        relation(("rpn.neg_iou", "rpn.pos_iou"),
                 f"need rpn.neg_iou ({cfg.rpn.neg_iou}) <= rpn.pos_iou ({cfg.rpn.pos_iou})")
    number("rpn.batch_size", lo=1)
    number("rpn.fg_fraction", 0.0, 1.0, lo_open=True)
    number("rpn.allowed_border", lo=-1)
    number("rpn.nms_thresh", 0.0, 1.0, lo_open=True)
    number("rpn.min_size", lo=0)
    # rcnn
    for k in ("rcnn.fg_iou", "rcnn.bg_iou_hi", "rcnn.bg_iou_lo"):
        number(k, 0.0, 1.0)
    r = cfg.rcnn
    if not r.bg_iou_lo <= r.bg_iou_hi <= r.fg_iou:
        relation(("rcnn.bg_iou_lo", "rcnn.bg_iou_hi", "rcnn.fg_iou"),
                 f"need rcnn.bg_iou_lo ({r.bg_iou_lo}) <= rcnn.bg_iou_hi ({r.bg_iou_hi}) <= rcnn.fg_iou ({r.fg_iou})")
    choice("rcnn.ohem_mode", OHEM_MODES)
    for k in ("rcnn.batch_size", "rcnn.ohem_batch_size"):
        number(k, lo=1)
    for k in ("rcnn.fg_fraction", "rcnn.ohem_fg_fraction"):
        number(k, 0.0, 1.0, lo_open=True)
    numbers("rcnn.bbox_means", length=4)
    numbers("rcnn.bbox_stds", length=4, positive=True)
    # train
    choice("train.shift_jitter_stride", SHIFT_JITTER_STRIDES)
    # rpn.assign (rfcn_face.assigners: the strategy and its settings) and rpn.cls_loss
    _validate_assign(cfg, where("rpn.assign"))
    choice("rpn.cls_loss", RPN_CLS_LOSSES)
    number("rpn.focal_alpha", 0.0, 1.0)
    number("rpn.focal_gamma", lo=0.0)
    number("rpn.focal_prior", 0.0, 1.0, lo_open=True, hi_open=True)
    number("train.max_size", lo=0)
    size_pairs("train.multiscale_sizes")
    t = cfg.train
    number("train.epochs", lo=1)
    number("train.lr", lo=0.0, lo_open=True)
    numbers("train.lr_steps")
    if any(s < 0 or s > t.epochs for s in t.lr_steps) or any(b <= a for a, b in zip(t.lr_steps, t.lr_steps[1:])):
        relation(("train.lr_steps", "train.epochs"), f"train.lr_steps {t.lr_steps!r} must be strictly increasing "
                                                     f"epochs within [0, train.epochs = {t.epochs}]")
    number("train.lr_factor", 0.0, 1.0, lo_open=True)
    number("train.warmup_iters", lo=0)
    number("train.warmup_factor", 0.0, 1.0, lo_open=True)
    choice("train.freeze", FREEZE_MODES)
    number("train.momentum", 0.0, 1.0, hi_open=True)
    number("train.wd", lo=0.0)
    number("train.batch_images", lo=1)
    number("train.seed", lo=0)
    # test
    size_pairs("test.sizes", nonempty=True)
    size_pairs("test.pyramid_sizes", nonempty=cfg.test.pyramid)
    number("test.nms_thresh", 0.0, 1.0, lo_open=True)
    number("test.score_thresh", 0.0, 1.0)
    number("test.max_per_image", lo=1)
    # data
    choice("data.dataset", DATASETS)
    number("data.num_workers", lo=0)
    for k in ("paper.easy", "paper.medium", "paper.hard"):
        number(k, 0.0, 1.0)
    return cfg


def _validate_assign(cfg: Config, layer: str) -> None:
    """``rpn.assign``: a registered strategy and its settings (checked by the strategy's settings dataclass), written
    back complete (``{type, **every setting}``) so a dumped config and its hash say exactly what ran."""
    from dataclasses import asdict as _asdict

    from .assigners import AssignParams, split_spec
    try:
        cls, settings = split_spec(cfg.rpn.assign, "rpn.assign")
        cls(settings, AssignParams.from_config(cfg))          # the strategy's checks against the shared knobs
    except ValueError as e:
        raise ConfigError(f"{layer}: {e}") from None
    cfg.rpn.assign = {"type": cls.name, **_asdict(settings)}


def _import_user_modules(cfg: Config, origins: dict) -> None:
    """The config's ``imports`` (before validation: they may register strategies the config names)."""
    if cfg.imports:
        from .plugins import import_modules
        try:
            import_modules(cfg.imports, f"{origins.get('imports', DEFAULTS_LAYER)}: imports")
        except ValueError as e:
            raise ConfigError(str(e)) from None


# ------------------------------------------------------------------------------------ entry points
def config_from_dict(data: dict | None, source: str = "<dict>") -> Config:
    """Defaults merged with one mapping (e.g. a dumped run config); errors name ``source``."""
    origins: dict = {}
    cfg = apply_layers([Layer(source, data or {}, True)], origins)
    _import_user_modules(cfg, origins)
    return validate(cfg, DEFAULTS_LAYER, origins)


def load_config(row: str | Path | None = None, preset: str | Path | None = None, overrides=()) -> Config:
    """defaults <- ``preset`` (NAME or path) <- ``row`` YAML <- ``overrides`` (``"key.sub=value"`` strings).

    ``load_config(path)`` is defaults + one YAML; ``load_config()`` the defaults."""
    if isinstance(overrides, str):
        overrides = (overrides,)
    layers = []
    if preset is not None and str(preset) != "":
        path, label = find_preset(preset)
        layers += file_layers(path, label, identity=row is None)
    if row is not None:
        row = Path(row)
        layers += file_layers(row, str(row), identity=True)
    layers += [override_layer(o) for o in overrides]
    origins: dict = {}
    cfg = apply_layers(layers, origins)
    if row is not None and ("name" not in origins or not cfg.name):
        cfg.name = row.stem
    _import_user_modules(cfg, origins)
    return validate(cfg, DEFAULTS_LAYER, origins)


def with_pretrained(cfg: Config, pretrained, source: str = "--pretrained") -> Config:
    """``cfg`` with ``model.pretrained`` set from a command's ``--pretrained`` (when given), validated again."""
    if pretrained:
        cfg.model.pretrained = str(pretrained)
        validate(cfg, source)
    return cfg


def config_text(cfg: Config) -> str:
    """The fully resolved config as YAML text (what :func:`dump_config` writes and a run's config hash reads)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def dump_config(cfg: Config, path: str | Path) -> Path:
    """Write the fully resolved config (YAML, or JSON if the suffix is .json) next to a run's outputs,
    atomically (a run's ``config.yaml`` is what ``--resume`` looks for)."""
    from .checkpoint import atomic_write_text
    path = Path(path)
    text = json.dumps(cfg.to_dict(), indent=2) if path.suffix == ".json" else config_text(cfg)
    return atomic_write_text(path, text)
