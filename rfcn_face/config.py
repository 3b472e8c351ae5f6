"""Typed configuration: every knob of the paper, in one place.

A run's config is the defaults below (the paper's R-FCN ResNet-101 *baseline*, Sec. 5.1) merged with one YAML
file that holds only what differs. An unknown key is an error that names the key and the file. The resolved
config is written next to a run's outputs with :func:`dump_config`.

YAML layout (every section optional)::

    name: dc_16x3_sj_hc5
    model:   {arch: DC, depth: 101}
    anchors: {shifted: "16x3"}
    train:   {shift_jitter: true, hard_face_compensation: 5}
    test:    {sizes: [[600, 1000]]}
    paper:   {easy: 0.940, medium: 0.914, hard: 0.795}

Each knob is read in exactly one place of the code; the comment next to it cites the paper.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .anchors import AnchorSet, parse_shift_spec

__all__ = [
    "ModelConfig", "AnchorConfig", "RPNConfig", "RCNNConfig", "TrainConfig", "TestConfig", "DataConfig",
    "PaperResult", "Config", "ConfigError", "load_config", "config_from_dict", "dump_config", "ARCHS",
    "rpn_stride",
]

ARCHS = ("baseline", "BU", "BUS", "DC")


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    arch: str = "baseline"          # Fig. 5: baseline | BU | BUS | DC
    depth: int = 101                # ResNet depth (Sec. 5.1 uses 101; 18/50 for CPU tests and demos)
    psroi_k: int = 7                # R-FCN position-sensitive grid k x k
    num_classes: int = 2            # face + background
    rpn_channels: int = 512         # 3x3 RPN conv on res5 (Sec. 5.1: RPN on res5, not res4)
    head_channels: int = 1024       # 1x1 conv on res5 before the PS score maps (R-FCN)
    stride_reduction_channels: int = 512  # BUS 1x1 / 3x3 convs (Sec. 5.1: "512 output channels")
    pretrained: str = ""            # path of an ImageNet ResNet checkpoint ('' = random init)


@dataclass
class AnchorConfig:
    scales: list = field(default_factory=lambda: [16, 32, 64, 128, 256, 512])  # Sec. 3.3 / 5.1
    ratios: list = field(default_factory=lambda: [1.0])                         # R = {1}
    shifted: str = ""               # Sec. 4.2 spec "s x n" joined by '&', e.g. "16x3" or "16x3&32x1"


@dataclass
class RPNConfig:
    pos_iou: float = 0.5            # Th (Sec. 5.1: positive IoU changed to 0.5)
    neg_iou: float = 0.3            # Tl (R-FCN default)
    batch_size: int = 256           # anchors sampled per image (R-FCN default)
    fg_fraction: float = 0.5
    allowed_border: int = 0         # anchors crossing the border by more than this are ignored (-1: keep all)
    ignore_iof: float = 0.5         # a would-be negative with this fraction of its area inside an ignored face -> -1
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    nms_thresh: float = 0.7
    min_size: int = 0               # proposals smaller than this (pixels) are dropped


@dataclass
class RCNNConfig:
    fg_iou: float = 0.5             # RoI foreground threshold (R-FCN default)
    bg_iou_hi: float = 0.5
    bg_iou_lo: float = 0.0
    ohem: bool = True               # Sec. 5.1: online hard example mining
    batch_size: int = 128           # RoIs sampled per image when OHEM is off (R-FCN default)
    fg_fraction: float = 0.25       # positive fraction of that minibatch when OHEM is off
    ohem_batch_size: int = 128      # RoIs kept per image by OHEM
    ohem_fg_fraction: float = 0.25  # Sec. 5.1: positives : negatives = 1 : 3
    bbox_means: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    bbox_stds: list = field(default_factory=lambda: [0.1, 0.1, 0.2, 0.2])


@dataclass
class TrainConfig:
    shift_jitter: bool = False      # Sec. 4.3 SJ: shift by U{0..sA/2-1} each iteration
    hard_face_compensation: int = 0 # Sec. 4.4 HC(N): top-N anchors for hard faces; 0 = off
    flip: bool = True
    max_size: int = 0               # cap on the longer side (memory); 0 = original size (Sec. 5.1)
    # "Pyramid" rows of Table 1 train multi-scale too: each iteration resizes to one [shorter, longer] entry
    # drawn uniformly from this list ([] = off, original size). The experiments reuse test.pyramid_sizes.
    multiscale_sizes: list = field(default_factory=list)
    epochs: int = 8                 # Sec. 5.1: 8 epochs
    lr: float = 0.001               # Sec. 5.1: 0.001 ...
    lr_steps: list = field(default_factory=lambda: [5])   # ... -> 0.0001 after 5 epochs
    lr_factor: float = 0.1
    momentum: float = 0.9
    wd: float = 0.0005
    batch_images: int = 1
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
    rpn_pre_nms_top_n: int = 6000
    rpn_post_nms_top_n: int = 300


@dataclass
class DataConfig:
    dataset: str = "synthfaces"     # synthfaces | wider
    root: str = "data"
    train_split: str = "train"
    test_split: str = "val"
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


def _check_value(section: str, f: dataclasses.Field, value, source: str):
    """Light type checking of one YAML value against the dataclass field's default type."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    where = f"{source}: {section}.{f.name}" if section else f"{source}: {f.name}"
    if default is None:
        if value is not None and not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return None if value is None else float(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return value
    return value


def _merge(obj, data: dict, source: str, section: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: section {section or '<top>'} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        if key not in known:
            path = f"{section}.{key}" if section else key
            raise ConfigError(f"{source}: unknown config key '{path}' (known: {', '.join(sorted(known))})")
        f = known[key]
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, source, key if not section else f"{section}.{key}")
        else:
            setattr(obj, key, _check_value(section, f, value, source))


def validate(cfg: Config, source: str = "<config>") -> Config:
    rpn_stride(cfg.model.arch)
    if cfg.model.depth not in (18, 34, 50, 101, 152):
        raise ConfigError(f"{source}: model.depth must be one of 18, 34, 50, 101, 152")
    try:
        parse_shift_spec(cfg.anchors.shifted)
    except ValueError as e:
        raise ConfigError(f"{source}: anchors.shifted: {e}") from None
    if not 0.0 <= cfg.rpn.neg_iou <= cfg.rpn.pos_iou <= 1.0:
        raise ConfigError(f"{source}: need 0 <= rpn.neg_iou <= rpn.pos_iou <= 1")
    if cfg.train.hard_face_compensation < 0:
        raise ConfigError(f"{source}: train.hard_face_compensation (HC(N)) must be >= 0")
    if not 0.0 < cfg.rcnn.ohem_fg_fraction <= 1.0:
        raise ConfigError(f"{source}: rcnn.ohem_fg_fraction must be in (0, 1]")
    for section, sizes_key in (("test", "sizes"), ("test", "pyramid_sizes"), ("train", "multiscale_sizes")):
        for s in getattr(getattr(cfg, section), sizes_key):
            if not (isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v >= 0 for v in s)):
                raise ConfigError(f"{source}: {section}.{sizes_key} items must be [shorter, longer] integer pairs")
    if not cfg.test.sizes:
        raise ConfigError(f"{source}: test.sizes needs at least one [shorter, longer] entry")
    return cfg


def config_from_dict(data: dict | None, source: str = "<dict>") -> Config:
    cfg = Config()
    _merge(cfg, data or {}, source)
    return validate(cfg, source)


def load_config(path: str | Path | None) -> Config:
    """Defaults merged with the YAML at ``path`` (``None`` = defaults only)."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    cfg = config_from_dict(data, str(path))
    if not (data or {}).get("name"):
        cfg.name = path.stem
    return cfg


def dump_config(cfg: Config, path: str | Path) -> Path:
    """Write the fully resolved config (YAML, or JSON if the suffix is .json) next to a run's outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = cfg.to_dict()
    path.write_text(json.dumps(d, indent=2) if path.suffix == ".json" else yaml.safe_dump(d, sort_keys=False))
    return path
