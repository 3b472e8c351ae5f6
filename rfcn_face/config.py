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

import dataclasses
import json
import math
import os
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .anchors import DEFAULT_RATIOS, DEFAULT_SCALES, AnchorSet, parse_shift_spec
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

ARCHS = ("baseline", "BU", "BUS", "DC")
DEPTHS = (18, 34, 50, 101, 152)
DATASETS = ("wider", "synthfaces")
SHIFT_JITTER_STRIDES = ("feature", "anchor")
FREEZE_MODES = ("rfcn", "bn", "none")
BASE_KEY = "_BASE_"
ROW_KEYS = ("name", "description", "paper")   # describe one experiment: never inherited from a base / preset
DEFAULTS_LAYER = "defaults"


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    arch: str = "baseline"          # Fig. 5: baseline | BU | BUS | DC
    depth: int = 101                # ResNet depth (Sec. 5.1 uses 101; 18/50 for CPU tests and demos)
    width: float = 1.0              # channel multiplier of the backbone (1 = ImageNet ResNet; < 1: random init only)
    # random init only: start every residual branch at zero (last BN gamma = 0, Goyal et al. 2017); needs the
    # BatchNorm gammas trained (train.freeze: none)
    zero_init_residual: bool = False
    psroi_k: int = 7                # R-FCN position-sensitive grid k x k
    num_classes: int = 2            # face + background
    rpn_channels: int = 512         # 3x3 RPN conv on res5 (Sec. 5.1: RPN on res5, not res4)
    head_channels: int = 1024       # 1x1 conv on res5 before the PS score maps (R-FCN)
    stride_reduction_channels: int = 512  # BUS 1x1 / 3x3 convs (Sec. 5.1: "512 output channels")
    pretrained: str = ""            # path of an ImageNet ResNet checkpoint ('' = random init)
    # Input normalisation (RGB): x_in = (pixel_0..255 * pixel_scale - pixel_mean) / pixel_std. Empty / 0 =
    # "auto": set by resolve_normalisation from the checkpoint style (all three auto or all three set).
    pixel_mean: list = field(default_factory=list)   # 3 values, in the units after scaling
    pixel_std: list = field(default_factory=list)    # 3 positive values
    pixel_scale: float = 0.0        # 1 (Caffe / MXNet checkpoint) or 1/255 (GluonCV); 0 = auto


@dataclass
class AnchorConfig:
    scales: list = field(default_factory=lambda: list(DEFAULT_SCALES))  # Sec. 3.3 / 5.1: S = {16, ..., 512}
    ratios: list = field(default_factory=lambda: list(DEFAULT_RATIOS))  # R = {1}
    shifted: str = ""               # Sec. 4.2 spec "s x n" joined by '&', e.g. "16x3" or "16x3&32x1"


@dataclass
class RPNConfig:
    pos_iou: float = 0.5            # Th (Sec. 5.1: positive IoU changed to 0.5)
    neg_iou: float = 0.3            # Tl (R-FCN default)
    batch_size: int = 256           # anchors sampled per image (R-FCN default)
    fg_fraction: float = 0.5
    allowed_border: int = 0         # anchors crossing the border by more than this are ignored (-1: keep all)
    ignore_iof: float = 0.5         # a would-be negative with this fraction of its area inside an ignored face -> -1
    pre_nms_top_n: int = 6000       # training proposals (<= 0 keeps all)
    post_nms_top_n: int = 300
    nms_thresh: float = 0.7
    min_size: int = 0               # proposals smaller than this (pixels) are dropped
    # Anchor assignment: the strategy and its own settings, one mapping (rfcn_face.assigners): {type: max_iou}
    # (Sec. 3.1) | {type: hc, top_n: N} (HC(N), Sec. 4.4) | {type: hambox, k, t, pos_iou, warmup} (HAMBox OAM +
    # RAL) | {type: cleanliness, top_n, alpha, gamma, clamp, negatives} (noisy anchors Alg. 1); hambox /
    # cleanliness read this iteration's RPN predictions. Settings left out take the strategy's defaults (filled in
    # by validation).
    assign: dict = field(default_factory=lambda: {"type": "max_iou"})
    # RPN classification loss, shared by every strategy (the normalisation: rfcn_face/assigners/base.py):
    # softmax (R-FCN: CE over the rpn.batch_size minibatch) | focal (RetinaNet: every labelled anchor and the box
    # term over every positive, normalised by the positives but never by fewer than rpn.batch_size; what HAMBox
    # and the noisy-anchor paper train with)
    cls_loss: str = "softmax"
    focal_alpha: float = 0.25       # RetinaNet's alpha and gamma (neither mining paper states its own)
    focal_gamma: float = 2.0
    # focal only: the RPN face logit's bias starts at log(pi / (1 - pi)) (RetinaNet's prior-probability init,
    # symbols/rfcn.py), so every anchor starts at face probability ~pi and the negatives do not swamp the loss
    focal_prior: float = 0.01


@dataclass
class RCNNConfig:
    fg_iou: float = 0.5             # RoI foreground threshold (R-FCN default)
    bg_iou_hi: float = 0.5
    bg_iou_lo: float = 0.0
    ohem: bool = True               # Sec. 5.1: online hard example mining
    # ratio: the paper's "OHEM with the ratio between positives and negatives as 1:3" (ohem_fg_fraction of the
    # ohem_batch_size RoIs are the hardest positives); topk: R-FCN's box_annotator_ohem, the ohem_batch_size
    # highest-loss RoIs whatever their label.
    ohem_mode: str = "ratio"
    batch_size: int = 128           # RoIs sampled per image when OHEM is off (R-FCN default)
    fg_fraction: float = 0.25       # positive fraction of that minibatch when OHEM is off
    ohem_batch_size: int = 128      # RoIs kept per image by OHEM
    ohem_fg_fraction: float = 0.25  # Sec. 5.1: positives : negatives = 1 : 3 (ohem_mode ratio)
    bbox_means: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    bbox_stds: list = field(default_factory=lambda: [0.1, 0.1, 0.2, 0.2])


@dataclass
class TrainConfig:
    shift_jitter: bool = False      # Sec. 4.3 SJ: shift by U{0..sA/2-1} each iteration
    # sA of shift jittering: feature = the RPN feature stride sF (sF/2 offsets cover the period of every anchor
    # lattice, shifted ones included); anchor = the stride of the lattice of the smallest anchors: sF/2 when the
    # smallest scale has an "s x 3" shift, else sF (docs/config.md).
    shift_jitter_stride: str = "feature"
    flip: bool = True
    max_size: int = 0               # cap on the longer side (memory); 0 = original size (Sec. 5.1)
    # "Pyramid" rows of Table 1 train multi-scale too: each iteration resizes to one [shorter, longer] entry
    # drawn uniformly from this list ([] = off, original size). The experiments reuse test.pyramid_sizes.
    multiscale_sizes: list = field(default_factory=list)
    epochs: int = 8                 # Sec. 5.1: 8 epochs
    lr: float = 0.001               # Sec. 5.1: 0.001 ...
    lr_steps: list = field(default_factory=lambda: [5])   # ... -> 0.0001 after 5 epochs
    lr_factor: float = 0.1
    # optional linear warm-up (not in the paper: 0 = off): the first warmup_iters iterations ramp the rate
    # from warmup_factor * lr to lr (CPU runs from random init need it)
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    momentum: float = 0.9
    wd: float = 0.0005
    batch_images: int = 1           # images per device per iteration (R-FCN: 1)
    # parameters kept fixed (R-FCN): conv1 + res2 + every BatchNorm ("rfcn"), only the BatchNorms ("bn", for
    # a backbone trained from random init) or nothing ("none")
    freeze: str = "rfcn"
    seed: int = 0


@dataclass
class TestConfig:
    # (shorter side, longer side) limits; [0, 0] = original size (Sec. 5.1 tests without rescaling).
    sizes: list = field(default_factory=lambda: [[0, 0]])
    pyramid: bool = False           # "Pyramid" rows of Table 1: test on every size in pyramid_sizes
    pyramid_sizes: list = field(default_factory=lambda: [[500, 2000], [800, 2000], [1200, 2000], [1600, 2000]])
    nms_thresh: float = 0.3
    score_thresh: float = 0.01
    max_per_image: int = 1000
    rpn_pre_nms_top_n: int = 6000   # test-time proposals (<= 0 keeps all)
    rpn_post_nms_top_n: int = 300


@dataclass
class DataConfig:
    dataset: str = "wider"          # wider (the paper, Sec. 5) | synthfaces (embedded CPU set)
    root: str = "data"              # wider: <root>/widerface/... (data/README.md)
    train_split: str = "train"
    num_workers: int = 0


@dataclass
class PaperResult:
    """The paper's numbers for this row (Table 1 / Table 2); None where the paper gives none."""
    easy: typing.Optional[float] = None
    medium: typing.Optional[float] = None
    hard: typing.Optional[float] = None


@dataclass
class Config:
    name: str = "baseline"
    description: str = ""
    # modules imported before the config is validated (they may register anchor-assignment strategies or
    # benchmarks; mmdetection's custom_imports); every layer's list is added to the lower layers' ones
    imports: list = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    rcnn: RCNNConfig = field(default_factory=RCNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    data: DataConfig = field(default_factory=DataConfig)
    paper: PaperResult = field(default_factory=PaperResult)

    def anchor_set(self) -> AnchorSet:
        """The RPN's anchors: stride follows the architecture (16, or 8 for BU / BUS / DC)."""
        return AnchorSet(stride=rpn_stride(self.model.arch), scales=tuple(self.anchors.scales),
                         ratios=tuple(self.anchors.ratios), shifts=self.anchors.shifted)

    def to_dict(self) -> dict:
        return asdict(self)


def rpn_stride(arch: str) -> int:
    """Feature (= anchor) stride of the RPN map: res5 at 16 (R-FCN), halved by BU / BUS / DC (Sec. 4.1)."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    return 16 if arch == "baseline" else 8


# ------------------------------------------------------------------------------------ pixel normalisation
@dataclass(frozen=True)
class Normalisation:
    """``x_in = (pixel * scale - mean) / std`` per RGB channel, ``pixel`` in 0..255."""
    mean: tuple
    std: tuple
    scale: float
    source: str = field(default="", compare=False)   # where it came from (shown by ``info``)
    checkpoint_style: typing.Optional[str] = field(default=None, compare=False)   # of model.pretrained, if probed

    @property
    def fill(self) -> tuple:
        """The mean pixel in 0..255 units (uint8 RGB): the value that normalises to 0 (shift-jitter padding)."""
        return tuple(int(min(255, max(0, round(m / self.scale)))) for m in self.mean)

    @property
    def kind(self) -> str:
        """``caffe``, ``imagenet`` or ``custom``."""
        for name, ref in (("caffe", CAFFE_NORMALISATION), ("imagenet", IMAGENET_NORMALISATION)):
            if all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in
                   zip(self.mean + self.std + (self.scale,), ref.mean + ref.std + (ref.scale,))):
                return name
        return "custom"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": list(self.mean), "std": list(self.std), "scale": self.scale,
                "source": self.source, "checkpoint_style": self.checkpoint_style}


# MXNet R-FCN resnet_v1_101-0000.params (Caffe-converted): raw 0..255 RGB minus the means, std 1.
CAFFE_NORMALISATION = Normalisation((123.15, 115.90, 103.06), (1.0, 1.0, 1.0), 1.0, "caffe")
# GluonCV resnet*_v1 / v1b: x / 255, minus mean, divided by std.
IMAGENET_NORMALISATION = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0 / 255.0, "imagenet")
# checkpoint style (symbols.weights.detect_style) -> normalisation; None = random init
NORMALISATION_BY_STYLE = {"mxnet": CAFFE_NORMALISATION, "gluon_v1": IMAGENET_NORMALISATION,
                          "gluon_v1b": IMAGENET_NORMALISATION, None: IMAGENET_NORMALISATION}

_PROBE = object()


def _pixel_auto(m: ModelConfig) -> bool:
    return not m.pixel_mean and not m.pixel_std and not m.pixel_scale


def resolve_normalisation(cfg: Config, checkpoint_style=_PROBE) -> Normalisation:
    """The input normalisation of ``cfg``, written back into ``cfg.model.pixel_*`` (so a dumped config carries
    explicit values). Explicit ``model.pixel_*`` win; when they are auto the style of the checkpoint decides:
    ``mxnet`` -> :data:`CAFFE_NORMALISATION`, ``gluon_v1`` / ``gluon_v1b`` / random init (``None``) ->
    :data:`IMAGENET_NORMALISATION`. Without ``checkpoint_style`` the file ``model.pretrained`` is probed
    (:func:`symbols.weights.checkpoint_style`: a missing or unreadable file is a one-line error naming it)."""
    m = cfg.model
    path = m.pretrained
    if checkpoint_style is _PROBE:
        if path:
            from symbols.weights import checkpoint_style as probe
            try:
                checkpoint_style = probe(path)
            except (OSError, ValueError) as e:   # missing file / unreadable / unknown format: name the knob
                raise type(e)(f"model.pretrained: {e}") from None
        else:
            checkpoint_style = None
    if checkpoint_style not in NORMALISATION_BY_STYLE:
        raise ConfigError(f"unknown checkpoint style {checkpoint_style!r}; expected one of "
                          + ", ".join(repr(s) for s in NORMALISATION_BY_STYLE))
    expected = NORMALISATION_BY_STYLE[checkpoint_style]
    what = f"{checkpoint_style} checkpoint {path}" if checkpoint_style else "random init (model.pretrained empty)"
    if _pixel_auto(m):
        norm = dataclasses.replace(expected, source=f"auto: {expected.kind} style for {what}")
    else:
        norm = Normalisation(tuple(float(v) for v in m.pixel_mean), tuple(float(v) for v in m.pixel_std),
                             float(m.pixel_scale), "explicit model.pixel_*")
        if norm != expected:
            norm = dataclasses.replace(norm, source=f"explicit model.pixel_* (the {what} expects {expected.kind})")
    norm = dataclasses.replace(norm, checkpoint_style=checkpoint_style)
    m.pixel_mean, m.pixel_std, m.pixel_scale = list(norm.mean), list(norm.std), norm.scale
    return norm


def normalisation_of(cfg: Config) -> Normalisation:
    """The (already resolved or explicitly set) normalisation of ``cfg``; auto values are an error."""
    m = cfg.model
    if _pixel_auto(m):
        raise ConfigError("model.pixel_mean / pixel_std / pixel_scale are auto (set from the checkpoint): call "
                          "rfcn_face.config.resolve_normalisation(cfg) first, or load a run's saved config")
    return Normalisation(tuple(float(v) for v in m.pixel_mean), tuple(float(v) for v in m.pixel_std),
                         float(m.pixel_scale), "model.pixel_*")


# ------------------------------------------------------------------------------------ layers and merging
@dataclass
class _Layer:
    source: str          # how errors name it: a file path, "preset NAME (path)", "--set k=v"
    data: dict
    identity: bool       # may set name / description / paper


_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")   # 1e-3: YAML 1.1 reads it as a string


def _field_default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(key: str, f: dataclasses.Field, value, source: str):
    """Type checking of one value against the dataclass field's default type (numbers must be finite)."""
    default = _field_default(f)
    where = f"{source}: {key}"
    if isinstance(value, str) and _FLOAT_TEXT.match(value) and (default is None or type(default) is float):
        value = float(value)
    if default is None or type(default) is float:
        if value is None and default is None:
            return None
        if not _is_number(value):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return value
    return value


# keys of earlier versions: an error that gives the new spelling (they are not read any more)
MOVED_KEYS = {
    "train.hard_face_compensation": "rpn: {assign: {type: hc, top_n: N}} (HC(N) is an assignment strategy; "
                                    "0 / off = leave rpn.assign at {type: max_iou})",
    "rpn.hambox_k": "rpn: {assign: {type: hambox, k: K}}",
    "rpn.hambox_t": "rpn: {assign: {type: hambox, t: T}}",
    "rpn.clean_alpha": "rpn: {assign: {type: cleanliness, alpha: A}}",
    "rpn.clean_gamma": "rpn: {assign: {type: cleanliness, gamma: G}}",
    "rpn.clean_top_n": "rpn: {assign: {type: cleanliness, top_n: N}}",
    "rpn.clean_clamp": "rpn: {assign: {type: cleanliness, clamp: C}}",
}
MAPPING_KEYS = ("rpn.assign",)      # {type: NAME, **settings}: merged key by key; a new type starts afresh


def _moved(path: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: config key '{path}' was replaced: write {MOVED_KEYS[path]}")


def _merge_mapping(current: dict, value, path: str, source: str) -> dict:
    """A ``{type: NAME, **settings}`` layer over ``current``: the same type (or none given) updates the settings, a
    different type replaces them (the settings belong to the strategy)."""
    if isinstance(value, str):
        raise ConfigError(f"{source}: {path}: {value!r} is the old spelling; a strategy and its settings are one "
                          f"mapping now: write {path.split('.')[0]}: {{{path.split('.')[-1]}: {{type: {value}}}}}")
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {path} must be a mapping {{type: NAME, setting: value, ...}}, got {value!r}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{source}: {path} keys must be setting names, got {bad[0]!r}")
    if "type" in value and not isinstance(value["type"], str):
        raise ConfigError(f"{source}: {path}.type must be a strategy name, got {value['type']!r}")
    base = {} if value.get("type", current.get("type")) != current.get("type") else dict(current)
    base.update(value)
    return base


def _merge(obj, data, source: str, origins: dict, section: str = ""):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {section or 'the top level'} must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        path = f"{section}.{key}" if section else str(key)
        if path in MOVED_KEYS:
            raise _moved(path, source)
        if key not in known:
            raise ConfigError(f"{source}: unknown config key '{path}' (known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, source, origins, path)
        elif path in MAPPING_KEYS:
            setattr(obj, key, _merge_mapping(current, value, path, source))
            origins.pop(path, None)
            origins[path] = source
        elif path == "imports":
            new = _check_value(path, known[key], value, source)
            if not all(isinstance(m, str) and m.strip() for m in new):
                raise ConfigError(f"{source}: imports must be a list of module names, got {value!r}")
            setattr(obj, key, current + [m for m in new if m not in current])
            origins.pop(path, None)
            origins[path] = source
        else:
            setattr(obj, key, _check_value(path, known[key], value, source))
            origins.pop(path, None)          # insertion order = order of the layers that last set each key
            origins[path] = source


def _apply(layers, origins: dict) -> Config:
    cfg = Config()
    for layer in layers:
        data = layer.data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{layer.source}: a config must be a mapping of sections, got {data!r}")
        if not layer.identity:   # name / description / paper of a base or preset: type-checked, not used
            _merge(Config(), {k: v for k, v in data.items() if k in ROW_KEYS}, layer.source, {})
            data = {k: v for k, v in data.items() if k not in ROW_KEYS}
        _merge(cfg, data, layer.source, origins)
    return cfg


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file: byte {e.start} is 0x{e.object[e.start]:02x}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def _file_layers(path: Path, label: str, identity: bool, chain=()) -> list:
    """The layers of one YAML: its ``_BASE_`` chain (base first, recursively), then the file itself."""
    key = Path(os.path.abspath(path)).resolve()
    if key in chain:
        names = " -> ".join(str(p) for p in chain + (key,))
        raise ConfigError(f"{label}: _BASE_ cycle: {names}")
    if path.is_dir():
        raise ConfigError(f"{label}: {path} is a folder, not a YAML config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = dict(_read_yaml(path))
    layers = []
    if BASE_KEY in data:
        base = data.pop(BASE_KEY)
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{label}: {BASE_KEY} must be a relative path to a YAML file, got {base!r}")
        base_path = Path(os.path.normpath(path.parent / base))
        if not base_path.is_file():
            raise ConfigError(f"{label}: {BASE_KEY} file not found: {base_path} ({base!r} relative to {path.parent})")
        layers += _file_layers(base_path, str(base_path), False, chain + (key,))
    layers.append(_Layer(label, data, identity))
    return layers


# ------------------------------------------------------------------------------------ presets
_PRESET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def preset_dirs() -> list:
    """Where a preset NAME is looked for, in order: ``experiments/presets`` of the repository this package
    sits in (it is installed editable from the repo), then of the current directory."""
    here = Path(__file__).resolve().parent.parent / "experiments" / "presets"
    cwd = Path.cwd() / "experiments" / "presets"
    return [here] if here.resolve() == cwd.resolve() else [here, cwd]


def find_preset(preset) -> tuple:
    """``(path, label)`` of a preset given as a NAME (``experiments/presets/NAME.yaml``) or a PATH."""
    text = str(preset)
    looks_like_path = os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path or not _PRESET_NAME.match(text):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"preset file not found: {path}")
        return path, f"preset {path}"
    dirs = preset_dirs()
    for d in dirs:
        p = d / f"{text}.yaml"
        if p.is_file():
            return p, f"preset {text} ({p})"
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"unknown preset {text!r}: no {text}.yaml in " + " or ".join(str(d) for d in dirs)
                      + (f" (available: {', '.join(known)})" if known else "") + "; or give a path to a YAML")


# ------------------------------------------------------------------------------------ --set overrides
def parse_override(text: str) -> tuple:
    """``"train.lr=0.01"`` -> ``("train.lr", 0.01)``. The value is a YAML scalar or flow list
    (``[[600,1000]]``, ``true``, ``1e-3``); for a string knob the text is taken as written."""
    label = f"--set {text}"
    if "=" not in str(text):
        raise ConfigError(f"{label}: expected KEY.SUB=VALUE (e.g. --set train.lr=0.01)")
    key, raw = str(text).split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"{label}: expected KEY.SUB=VALUE (e.g. --set train.lr=0.01), got key {key!r}")
    if key in MOVED_KEYS:
        raise _moved(key, label)
    obj = Config()
    for i, p in enumerate(parts):
        if ".".join(parts[:i]) in MAPPING_KEYS:        # rpn.assign.<setting>: checked against the strategy later
            if i != len(parts) - 1:
                raise ConfigError(f"{label}: unknown config key '{key}' ({'.'.join(parts[:i + 1])} has no sub-keys)")
            obj = "" if p == "type" else None
            break
        if not dataclasses.is_dataclass(obj):
            raise ConfigError(f"{label}: unknown config key '{key}' ({'.'.join(parts[:i])} has no sub-keys)")
        known = sorted(f.name for f in fields(obj))
        if p not in known:
            raise ConfigError(f"{label}: unknown config key '{key}' (known in {'.'.join(parts[:i]) or 'the top level'}"
                              f": {', '.join(known)})")
        obj = getattr(obj, p)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: value is not valid YAML: {' '.join(str(e).split())}") from None
    if isinstance(obj, str) and not isinstance(value, str):
        value = raw                                  # a string knob takes the text as written
    elif isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
        value = float(value)
    return key, value


def _override_layer(text: str) -> _Layer:
    key, value = parse_override(text)
    data: dict = {}
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return _Layer(f"--set {text}", data, True)


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
        if not all(_is_number(x) and math.isfinite(x) for x in v):
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
    cfg = _apply([_Layer(source, data or {}, True)], origins)
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
        layers += _file_layers(path, label, identity=row is None)
    if row is not None:
        row = Path(row)
        layers += _file_layers(row, str(row), identity=True)
    layers += [_override_layer(o) for o in overrides]
    origins: dict = {}
    cfg = _apply(layers, origins)
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
