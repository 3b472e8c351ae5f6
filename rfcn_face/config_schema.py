"""The config's schema: every knob of the paper as a dataclass field with its paper default (Sec. 5.1 baseline),
the choices, and :class:`ConfigError`. Layering lives in :mod:`rfcn_face.config_layers`, validation and the entry
points in :mod:`rfcn_face.config` (which re-exports everything here)."""
from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field

from .anchors import DEFAULT_RATIOS, DEFAULT_SCALES, AnchorSet

__all__ = ["ModelConfig", "AnchorConfig", "RPNConfig", "RCNNConfig", "TrainConfig", "TestConfig", "DataConfig",
           "PaperResult", "Config", "ConfigError", "rpn_stride", "ARCHS", "DEPTHS", "DATASETS",
           "SHIFT_JITTER_STRIDES", "FREEZE_MODES", "BASE_KEY", "ROW_KEYS", "DEFAULTS_LAYER"]

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
