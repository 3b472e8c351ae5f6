"""Argument helpers shared by the verbs that build a config: ``--config``, ``--preset``, ``--set``.

The config is ``defaults <- --preset <- --config <- --set ...`` (:func:`rfcn_face.config.load_config`)::

    python -m rfcn_face VERB --config experiments/table1/13_final.yaml --preset paper \\
        --set model.pretrained=/weights/resnet_v1_101-0000.params --set test.sizes=[[600,1000]]
"""
from __future__ import annotations

__all__ = ["add_config_arguments", "config_from_args", "number_arg", "add_device_arguments"]


def add_device_arguments(p, gpus_help: str, cpus_help: str = "N CPU contexts (the multi-device path)") -> None:
    """``--gpus IDS`` | ``--cpus N`` (one of them; :func:`rfcn_face.train.parse_contexts` reads them)."""
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--gpus", default=None, metavar="IDS", help=gpus_help)
    dev.add_argument("--cpus", default=None, type=number_arg("--cpus", lo=1), metavar="N", help=cpus_help)


def number_arg(name, kind=int, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse ``type``: a finite ``kind`` (int or float) within ``[lo, hi]`` (open ends as asked), else one
    clear error naming the option, e.g. ``--cpus must be >= 1, got 0``."""
    import argparse
    import math

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number, got {text}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {text}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise argparse.ArgumentTypeError(f"{name} must be {'<' if hi_open else '<='} {hi:g}, got {text}")
        return v
    return parse


def add_config_arguments(parser, config_help: str = "experiment YAML, e.g. experiments/table1/13_final.yaml "
                                                    "(default: the built-in baseline defaults)"):
    """Add ``--config PATH``, ``--preset NAME|PATH`` and repeatable ``--set KEY.SUB=VALUE`` to ``parser``."""
    parser.add_argument("--config", default=None, metavar="PATH", help=config_help)
    parser.add_argument("--preset", default=None, metavar="NAME|PATH",
                        help="layer under the config: paper (WIDER FACE, ResNet-101, ImageNet checkpoint), smoke / "
                             "demo (CPU, ResNet-18, synthfaces) = experiments/presets/NAME.yaml, or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.SUB=VALUE",
                        help="override one knob over preset and config (repeatable); VALUE is YAML, e.g. "
                             "--set train.lr=0.01 --set test.sizes=[[600,1000]] --set model.pretrained=/x/y.params")
    return parser


def config_from_args(args):
    """The :class:`rfcn_face.config.Config` of ``--preset`` / ``--config`` / ``--set`` (ConfigError on problems)."""
    from ..config import load_config
    return load_config(getattr(args, "config", None), preset=getattr(args, "preset", None),
                       overrides=tuple(getattr(args, "overrides", None) or ()))
