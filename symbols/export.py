"""Export the detector for legacy MXNet pipelines (``-symbol.json`` / ``-0000.params``) and, when possible, ONNX.

Two graphs are exported (:func:`detector_symbol`):

* ``full``: inputs ``data`` (N, 3, H, W) and ``rois`` (R, 5: batch index, x1, y1, x2, y2) -> outputs
  ``rpn_cls`` (N, 2A, h, w), ``rpn_bbox`` (N, 4A, h, w), ``cls_score`` (R, 2), ``bbox_pred`` (R, 4). The
  proposal step between the RPN and the head (NMS, shifted anchors) is not in the graph: it is the operators'
  job, so the RoIs are an input.
* ``maps``: input ``data`` -> ``rpn_cls``, ``rpn_bbox``, ``rfcn_cls_maps`` (N, k*k*2, h, w),
  ``rfcn_bbox_maps`` (N, k*k*4, h, w) — backbone, RPN and the position-sensitive maps, everything but
  PSROIPooling + average voting. This is the graph given to ONNX, because MXNet 1.9.1's ONNX exporter has no
  translation for ``_contrib_PSROIPooling`` (checked by :func:`onnx_unsupported_ops`).

Parameters are saved in MXNet's checkpoint format (``arg:`` / ``aux:`` prefixes, Caffe-style names from
:mod:`symbols.resnet`), so ``mx.model.load_checkpoint`` (Module API) and ``gluon.SymbolBlock.imports`` both
read them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["detector_symbol", "export_detector", "import_detector", "onnx_unsupported_ops", "onnx_supported_ops",
           "export_onnx", "OnnxResult", "OUTPUTS"]

OUTPUTS = {"full": ("rpn_cls", "rpn_bbox", "cls_score", "bbox_pred"),
           "maps": ("rpn_cls", "rpn_bbox", "rfcn_cls_maps", "rfcn_bbox_maps")}
INPUTS = {"full": ("data", "rois"), "maps": ("data",)}


def detector_symbol(net, graph: str = "full"):
    """The detector's graph as an ``mx.sym.Symbol`` with named inputs and outputs (see module docstring)."""
    import mxnet as mx
    data = mx.sym.var("data")
    rpn_cls, rpn_bbox, feat = net(data)
    if graph == "full":
        cls, box = net.head(feat, mx.sym.var("rois"))
    elif graph == "maps":
        h = mx.sym.Activation(net.head.conv_new(feat), act_type="relu")
        cls, box = net.head.cls_maps(h), net.head.box_maps(h)
    else:
        raise ValueError(f"unknown graph {graph!r}; expected 'full' or 'maps'")
    outs = [mx.sym.identity(s, name=n) for s, n in zip((rpn_cls, rpn_bbox, cls, box), OUTPUTS[graph])]
    return mx.sym.Group(outs)


def _split_params(net, sym):
    args, auxs = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    arg_params, aux_params = {}, {}
    for p in net.collect_params().values():
        if p.name in args:
            arg_params[p.name] = p.data()
        elif p.name in auxs:
            aux_params[p.name] = p.data()
    return arg_params, aux_params


def export_detector(net, prefix, graph: str = "full", epoch: int = 0):
    """Write ``{prefix}-symbol.json`` and ``{prefix}-{epoch:04d}.params``; returns the two paths."""
    import mxnet as mx
    prefix = str(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    sym = detector_symbol(net, graph)
    arg_params, aux_params = _split_params(net, sym)
    missing = [n for n in sym.list_arguments() if n not in arg_params and n not in INPUTS[graph]]
    if missing:
        raise ValueError(f"parameters without values in the exported graph: {missing[:5]}")
    mx.model.save_checkpoint(prefix, epoch, sym, arg_params, aux_params)
    return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{epoch:04d}.params")


def import_detector(prefix, graph: str = "full", epoch: int = 0, ctx=None):
    """``gluon.SymbolBlock`` of an exported detector (inputs as :data:`INPUTS`, outputs as :data:`OUTPUTS`)."""
    import warnings

    from mxnet import gluon
    sym_file, params_file = Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{epoch:04d}.params")
    for f in (sym_file, params_file):
        if not f.is_file():
            raise FileNotFoundError(f"exported detector file not found: {f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gluon.SymbolBlock.imports(str(sym_file), list(INPUTS[graph]), str(params_file), ctx=ctx)


def graph_ops(sym) -> list:
    """Operator names used by a symbol (``null`` variables excluded), sorted."""
    import json
    nodes = json.loads(sym.tojson())["nodes"]
    return sorted({n["op"] for n in nodes if n["op"] != "null"})


def onnx_supported_ops() -> set:
    """Operators MXNet's ONNX exporter can translate, read from its translation tables without importing onnx."""
    import mxnet.onnx.mx2onnx._op_translations as tr
    names = set()
    for f in Path(tr.__file__).parent.glob("*.py"):
        names.update(re.findall(r"register\(\s*[\"']([A-Za-z0-9_]+)[\"']", f.read_text()))
    return names


def onnx_unsupported_ops(sym) -> list:
    supported = onnx_supported_ops()
    return [op for op in graph_ops(sym) if op not in supported]


@dataclass
class OnnxResult:
    ok: bool
    path: str = ""
    graph: str = "maps"
    reason: str = ""
    left_out: list = field(default_factory=list)

    def summary(self) -> str:
        head = f"ONNX export {'written to ' + self.path if self.ok else 'not done'} (graph '{self.graph}')"
        parts = [head] + ([f"reason: {self.reason}"] if self.reason else [])
        if self.left_out:
            parts.append("left out of the ONNX graph: " + "; ".join(self.left_out))
        return "\n".join(parts)


LEFT_OUT = ["PSROIPooling + average voting (operator _contrib_PSROIPooling has no ONNX translation in "
            "MXNet 1.9.1): apply them to rfcn_cls_maps / rfcn_bbox_maps outside the ONNX model",
            "proposal generation and NMS (never part of the network graph)"]


def export_onnx(net, path, image_shape=(1, 3, 600, 1000)) -> OnnxResult:
    """Export the ``maps`` graph (backbone + RPN + position-sensitive maps) to ONNX through ``mx.onnx``.

    Returns an :class:`OnnxResult`; ``ok=False`` with the reason when the ``onnx`` package is missing (MXNet's
    exporter needs it and it is not part of this project's pinned stack) or the export fails.
    """
    sym = detector_symbol(net, "maps")
    unsupported = onnx_unsupported_ops(sym)
    if unsupported:
        return OnnxResult(False, graph="maps", reason=f"operators without ONNX translation: {unsupported}",
                          left_out=LEFT_OUT)
    try:
        import onnx  # noqa: F401
    except ImportError:
        return OnnxResult(False, graph="maps", left_out=LEFT_OUT,
                          reason="the 'onnx' package is not installed; mx.onnx.export_model needs it "
                                 "(pip install onnx, then call export_onnx again). Every operator of the graph "
                                 "has a registered mx.onnx translator; the conversion itself is untested here.")
    import mxnet as mx
    arg_params, aux_params = _split_params(net, sym)
    params = {**arg_params, **aux_params}
    try:
        mx.onnx.export_model(sym, params, in_shapes=[tuple(image_shape)], onnx_file_path=str(path))
    except Exception as e:  # report, do not crash the caller
        return OnnxResult(False, graph="maps", reason=f"mx.onnx.export_model failed: {e}", left_out=LEFT_OUT)
    return OnnxResult(True, path=str(path), graph="maps", left_out=LEFT_OUT)
