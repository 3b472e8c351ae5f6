"""Pixel normalisation of the input (``model.pixel_mean`` / ``pixel_std`` / ``pixel_scale``): it follows the ImageNet
checkpoint that is loaded unless set explicitly. :func:`resolve_normalisation` fills it in (Caffe style for the
MXNet ``resnet_v1_101-0000.params``, 0..1 ImageNet style for GluonCV weights or random init) so the config saved
with a run carries explicit values; :func:`normalisation_of` reads it back (the loaders, the detector)."""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from .config_schema import Config, ConfigError, ModelConfig

__all__ = ["Normalisation", "CAFFE_NORMALISATION", "IMAGENET_NORMALISATION", "NORMALISATION_BY_STYLE",
           "resolve_normalisation", "normalisation_of"]


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
