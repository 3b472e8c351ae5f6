"""Arithmetic cost of the detector from its layer shapes: GFLOPs of one forward pass at an input size.

FLOPs are counted as 2 x multiply-adds of every ``Convolution`` and ``Deconvolution`` of the ``full`` graph of
:func:`symbols.export.detector_symbol` (backbone, BU / BUS, RPN, the R-FCN head's ``conv_new`` and
position-sensitive maps). PSROIPooling, the average voting, BatchNorm, ReLU, the element-wise sums and the
proposal step are left out (< 1 % of the total). A convolution costs ``2 * prod(weight shape) * out_h * out_w``
(``weight = (C_out, C_in / groups, kh, kw)``); a deconvolution multiplies every *input* cell by its whole filter
bank, ``2 * prod(weight shape) * in_h * in_w``.

Only shapes are inferred (``Symbol.infer_shape``): no parameter is initialised or loaded and nothing runs, so
this is cheap enough for ``reproduce --dry-run`` (about a second per architecture for ResNet-101).

    from symbols.flops import config_gflops
    config_gflops(cfg, 768, 1024)            # GFLOPs of cfg's network on a 768 x 1024 input
"""
from __future__ import annotations

import json
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ["symbol_gflops", "gflops", "config_gflops", "network_key", "FLOP_OPS"]

FLOP_OPS = ("Convolution", "Deconvolution")
_NET_CACHE: Dict[str, object] = {}
_FLOP_CACHE: Dict[Tuple[str, int, int], float] = {}


def symbol_gflops(sym, input_shapes: dict) -> float:
    """GFLOPs (2 x MACs) of every Convolution / Deconvolution of ``sym`` with ``input_shapes`` (name -> shape)."""
    nodes = json.loads(sym.tojson())["nodes"]
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(**input_shapes)
    if arg_shapes is None:
        raise ValueError(f"cannot infer the shapes of the graph from {input_shapes}")
    args = dict(zip(internals.list_arguments(), arg_shapes))
    outs = dict(zip(internals.list_outputs(), out_shapes))

    def shape_of(node_id):
        src = nodes[node_id]
        if src["op"] == "null":
            return tuple(input_shapes.get(src["name"], args.get(src["name"])))
        return outs[f"{src['name']}_output"]

    total = 0.0
    for n in nodes:
        if n["op"] not in FLOP_OPS:
            continue
        w = args[nodes[n["inputs"][1][0]]["name"]]
        if n["op"] == "Convolution":
            o = outs[f"{n['name']}_output"]
            total += 2.0 * float(np.prod(w)) * o[2] * o[3]
        else:                                   # every input cell is multiplied by the whole filter bank
            i = shape_of(n["inputs"][0][0])
            total += 2.0 * float(np.prod(w)) * i[2] * i[3]
    return total / 1e9


def gflops(net, height: int, width: int, rois: int = 300) -> float:
    """GFLOPs of one forward of a :func:`symbols.rfcn.build_detector` network on a ``height x width`` input (the
    ``full`` graph with ``rois`` RoIs; the head's convolutions do not depend on the RoI count)."""
    from .export import detector_symbol
    sym = detector_symbol(net, "full")
    return symbol_gflops(sym, {"data": (1, 3, int(height), int(width)), "rois": (int(rois), 5)})


def network_key(cfg) -> str:
    """What the network's shapes depend on: the ``model`` and ``anchors`` sections of a config."""
    d = cfg.to_dict()
    model = {k: v for k, v in d["model"].items() if k not in ("pretrained", "pixel_mean", "pixel_std", "pixel_scale")}
    return json.dumps({"model": model, "anchors": d["anchors"]}, sort_keys=True)


def config_gflops(cfg, height: int, width: int, cache: Optional[bool] = True) -> float:
    """GFLOPs of ``cfg``'s network (built, never initialised) on a ``height x width`` input; networks and results
    are cached per :func:`network_key` within the process."""
    key = network_key(cfg)
    fkey = (key, int(height), int(width))
    if cache and fkey in _FLOP_CACHE:
        return _FLOP_CACHE[fkey]
    net = _NET_CACHE.get(key) if cache else None
    if net is None:
        import warnings

        from .rfcn import build_detector
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = build_detector(cfg)
        if cache:
            _NET_CACHE[key] = net
    g = gflops(net, height, width)
    if cache:
        _FLOP_CACHE[fkey] = g
    return g
