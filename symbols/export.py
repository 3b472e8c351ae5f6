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

* ``detector``: inputs ``data`` (N, 3, h, w) — N images already resized to one test size and normalised — and
  ``im_info`` (N, 3: h, w, scale) -> ``dets`` (N*K, 5): per image K rows ``score, x1, y1, x2, y2`` in the pixels
  of ``data``, best first, unused rows all -1 (K = min(``test.rpn_post_nms_top_n``, ``test.max_per_image``)).
  The whole test path of :class:`rfcn_face.detector.FaceDetector` for one size, built from the same blocks
  (:class:`symbols.postprocess.DetectionOutput`: the proposal block over the run's anchors, shifted ones
  included, with its ``anchor_base`` constant; the PSROI head; decode, clip, ``score > test.score_thresh``),
  then :func:`symbols.postprocess.final_nms` at ``test.nms_thresh``. NMS is ``contrib.box_nms`` (plain MXNet)
  unless the export asks for the numpy CustomOp (``nms_impl="numpy"``: the graph then needs ``import
  operators.nms``). The knobs are baked in (``PREFIX-detector.json`` lists them with the preprocessing);
  mapping back to the original image is a division by the resize factors (docs/inference.md).

Parameters are saved in MXNet's checkpoint format (``arg:`` / ``aux:`` prefixes, Caffe-style names from
:mod:`symbols.resnet`), so ``mx.model.load_checkpoint`` (Module API) and ``gluon.SymbolBlock.imports`` both
read them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["detector_symbol", "export_detector", "import_detector", "onnx_unsupported_ops", "onnx_supported_ops",
           "export_onnx", "OnnxResult", "OUTPUTS", "INPUTS", "GRAPHS", "GraphSettings", "detection_block",
           "detection_output", "export_run", "read_detector_meta", "onnx_maps_model"]

OUTPUTS = {"full": ("rpn_cls", "rpn_bbox", "cls_score", "bbox_pred"),
           "maps": ("rpn_cls", "rpn_bbox", "rfcn_cls_maps", "rfcn_bbox_maps"),
           "detector": ("dets",)}
INPUTS = {"full": ("data", "rois"), "maps": ("data",), "detector": ("data", "im_info")}
GRAPHS = tuple(OUTPUTS)


@dataclass
class GraphSettings:
    """The test knobs the ``detector`` graph bakes in (read from a config by :meth:`from_config`)."""
    stride: int
    pre_nms_top_n: int
    post_nms_top_n: int
    rpn_nms_thresh: float
    min_size: float
    bbox_means: tuple
    bbox_stds: tuple
    score_thresh: float
    nms_thresh: float
    max_per_image: int
    nms_impl: str = "box_nms"

    @classmethod
    def from_config(cls, cfg, nms_impl: str = "box_nms") -> "GraphSettings":
        from rfcn_face.proposals import BoxCoding, ProposalParams
        t, p, coding = cfg.test, ProposalParams.from_config(cfg, train=False), BoxCoding.from_config(cfg)
        return cls(cfg.anchor_set().stride, p.pre_nms_top_n, p.post_nms_top_n, p.nms_thresh, p.min_size,
                   coding.means, coding.stds, float(t.score_thresh), float(t.nms_thresh), int(t.max_per_image),
                   nms_impl)

    @property
    def rows(self) -> int:
        return min(self.post_nms_top_n, self.max_per_image)

    def proposal_params(self):
        from rfcn_face.proposals import ProposalParams
        return ProposalParams(self.pre_nms_top_n, self.post_nms_top_n, self.rpn_nms_thresh, self.min_size)


def detection_block(net, anchor_set, s: GraphSettings, ctx=None):
    """:func:`symbols.postprocess.detection_block` with the baked-in settings."""
    from .postprocess import detection_block as build
    if anchor_set.stride != s.stride:
        raise ValueError(f"anchor stride {anchor_set.stride} does not fit the settings' stride {s.stride}")
    return build(net, anchor_set, s.proposal_params(), s.bbox_means, s.bbox_stds, s.score_thresh, s.nms_impl, ctx)


def detection_output(F, block, rpn_cls, rpn_bbox, feat, im_info, s: GraphSettings):
    """The test path after the backbone for a batch of one size (``F`` = mx.sym or mx.nd): ``block`` (a
    :func:`detection_block`) then the final per-image NMS -> (N*K, 5) ``dets``."""
    from .postprocess import final_nms
    rows = block(rpn_cls, rpn_bbox, feat, im_info)
    return final_nms(F, rows, post=s.post_nms_top_n, nms_thresh=s.nms_thresh, keep=s.rows, impl=s.nms_impl)


def detector_symbol(net, graph: str = "full", settings: GraphSettings = None, anchor_set=None):
    """The detector's graph as an ``mx.sym.Symbol`` with named inputs and outputs (see module docstring);
    ``graph="detector"`` needs the :class:`GraphSettings` and the anchor set of the run's config (it returns
    ``(symbol, detection block)``: the block holds the ``anchor_base`` constant)."""
    import mxnet as mx
    if graph not in OUTPUTS:
        raise ValueError(f"unknown graph {graph!r}; expected one of {', '.join(GRAPHS)}")
    data = mx.sym.var("data")
    rpn_cls, rpn_bbox, feat = net(data)
    if graph == "detector":
        if settings is None or anchor_set is None:
            raise ValueError("the 'detector' graph needs the test settings (GraphSettings.from_config(cfg)) and "
                             "the anchor set (cfg.anchor_set())")
        block = detection_block(net, anchor_set, settings)
        dets = detection_output(mx.sym, block, rpn_cls, rpn_bbox, feat, mx.sym.var("im_info"), settings)
        return mx.sym.Group([mx.sym.identity(dets, name="dets")]), block
    if graph == "full":
        cls, box = net.head(feat, mx.sym.var("rois"))
    else:
        h = mx.sym.Activation(net.head.conv_new(feat), act_type="relu")
        cls, box = net.head.cls_maps(h), net.head.box_maps(h)
    outs = [mx.sym.identity(s, name=n) for s, n in zip((rpn_cls, rpn_bbox, cls, box), OUTPUTS[graph])]
    return mx.sym.Group(outs)


def _split_params(blocks, sym):
    args, auxs = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    arg_params, aux_params = {}, {}
    for block in blocks:
        for p in block.collect_params().values():
            if p.name in args:
                arg_params[p.name] = p.data()
            elif p.name in auxs:
                aux_params[p.name] = p.data()
    return arg_params, aux_params


def export_detector(net, prefix, graph: str = "full", epoch: int = 0, settings: GraphSettings = None,
                    anchor_set=None):
    """Write ``{prefix}-symbol.json`` and ``{prefix}-{epoch:04d}.params``; returns the two paths. The
    ``detector`` graph needs ``settings`` and ``anchor_set`` (``cfg.anchor_set()``)."""
    import mxnet as mx
    prefix = str(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    blocks = [net]
    if graph == "detector":
        sym, block = detector_symbol(net, graph, settings, anchor_set)
        blocks.append(block.proposal)
    else:
        sym = detector_symbol(net, graph, settings)
    # MKLDNN reorders conv weights in place during an inference forward, outside the engine's dependency
    # tracking (apache/mxnet#9862); mx.nd.save of the raw arrays while that forward is pending wrote a weight
    # half-reordered in 5-35 % of the exports here (Gluon's save_parameters copies through the engine first)
    mx.nd.waitall()
    arg_params, aux_params = _split_params(blocks, sym)
    missing = [n for n in sym.list_arguments() if n not in arg_params and n not in INPUTS[graph]]
    if missing:
        raise ValueError(f"parameters without values in the exported graph: {missing[:5]}")
    # mx.model.save_checkpoint's two files, each atomic (a full disk leaves no file under a final name)
    from rfcn_face.checkpoint import atomic_write_file
    sym_file, params_file = Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{epoch:04d}.params")
    save = {**{f"arg:{k}": v.as_in_context(mx.cpu()) for k, v in arg_params.items()},
            **{f"aux:{k}": v.as_in_context(mx.cpu()) for k, v in aux_params.items()}}
    atomic_write_file(params_file, lambda tmp: mx.nd.save(tmp, save))
    try:
        atomic_write_file(sym_file, sym.save)
    except BaseException:
        params_file.unlink(missing_ok=True)
        raise
    return sym_file, params_file


def import_detector(prefix, graph: str = "full", epoch: int = 0, ctx=None):
    """``gluon.SymbolBlock`` of an exported detector (inputs as :data:`INPUTS`, outputs as :data:`OUTPUTS`)."""
    import warnings

    from mxnet import gluon
    if graph not in INPUTS:
        raise ValueError(f"graph must be one of {', '.join(INPUTS)}, got {graph!r}")
    sym_file, params_file = Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{epoch:04d}.params")
    for f in (sym_file, params_file):
        if not f.is_file():
            raise FileNotFoundError(f"exported detector file not found: {f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return gluon.SymbolBlock.imports(str(sym_file), list(INPUTS[graph]), str(params_file), ctx=ctx)
        except Exception as e:   # a damaged / foreign file, another graph's inputs: name the files, not a C++ trace
            from .weights import mxnet_message
            raise ValueError(f"{sym_file} + {params_file}: not an exported '{graph}' detector "
                             f"({' '.join(mxnet_message(e).split())[:300]})") from None


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
    arg_params, aux_params = _split_params([net], sym)
    params = {**arg_params, **aux_params}
    try:
        mx.onnx.export_model(sym, params, in_shapes=[tuple(image_shape)], onnx_file_path=str(path))
    except Exception as e:  # report, do not crash the caller
        return OnnxResult(False, graph="maps", reason=f"mx.onnx.export_model failed: {e}", left_out=LEFT_OUT)
    return OnnxResult(True, path=str(path), graph="maps", left_out=LEFT_OUT)


# ------------------------------------------------------------------------------------------------ a run
META_SUFFIX = "-detector.json"


def export_run(run_dir, prefix, graph: str = "detector", onnx_path=None, nms_impl: str = "auto") -> dict:
    """Export a training run folder (its ``config.yaml`` + ``final.params``): ``PREFIX-symbol.json``,
    ``PREFIX-0000.params`` and ``PREFIX-detector.json`` (inputs, outputs, the test sizes, the pixel
    normalisation and the baked-in :class:`GraphSettings`: what a plain-MXNet caller needs, docs/inference.md).
    ``nms_impl``: ``auto`` / ``box_nms`` (plain MXNet) or ``numpy`` (the ``rfcn_nms`` CustomOp, needs ``import
    operators.nms`` where the graph runs). With ``onnx_path`` the whole detector is also written as one ONNX model
    (:func:`rfcn_face.onnx_export.export_onnx_detector`; a failure is a ValueError). Returns a summary."""
    from dataclasses import asdict

    from rfcn_face.checkpoint import atomic_write_json
    from rfcn_face.detector import FaceDetector
    if graph not in OUTPUTS:
        raise ValueError(f"--graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    if Path(prefix).is_dir() or str(prefix).endswith("/"):
        raise ValueError(f"export prefix {prefix} names a folder; give a file prefix such as {Path(prefix) / 'detector'}")
    from .nms import resolve_nms_impl
    nms_impl = "box_nms" if nms_impl == "auto" else resolve_nms_impl(nms_impl)   # a graph for any device
    det = FaceDetector.from_run(run_dir, hybridize=False)
    cfg, norm, anchors = det.cfg, det.norm, det.cfg.anchor_set()
    settings = GraphSettings.from_config(cfg, nms_impl)
    sym_file, params_file = export_detector(det.net, prefix, graph, settings=settings, anchor_set=anchors)
    sizes = det.sizes()
    meta = {"run": str(run_dir), "name": cfg.name, "graph": graph, "inputs": list(INPUTS[graph]),
            "outputs": list(OUTPUTS[graph]), "size": sizes[0], "sizes": sizes, "pyramid": bool(cfg.test.pyramid),
            "mean": list(norm.mean), "std": list(norm.std), "scale": norm.scale,
            "arch": cfg.model.arch, "depth": cfg.model.depth, "anchors_per_location": anchors.num_per_location,
            "settings": asdict(settings), "config": cfg.to_dict(),
            "note": (f"dets: {settings.rows} rows per image of the batch, score x1 y1 x2 y2 in the pixels of data (the "
                     "resized images, one size), best first, unused rows -1; divide by the resize factors for "
                     "original pixels" + ("; NMS is the rfcn_nms CustomOp: import operators.nms first"
                                          if nms_impl == "numpy" else "")) if graph == "detector" else ""}
    meta_file = Path(f"{prefix}{META_SUFFIX}")
    atomic_write_json(meta_file, meta)
    out = {"symbol": str(sym_file), "params": str(params_file), "meta": str(meta_file), "graph": graph,
           "inputs": meta["inputs"], "outputs": meta["outputs"]}
    if onnx_path:
        from functools import partial

        from rfcn_face.onnx_export import export_onnx_detector
        out["onnx"] = export_onnx_detector(partial(onnx_maps_model, det.net), cfg, onnx_path,
                                           {**meta, "graph": "onnx-detector", "note": ONNX_NOTE})
    return out


def onnx_maps_model(net, tmp_path):
    """``mx.onnx.export_model`` of the ``maps`` graph with a dynamic H x W (batch 1), written to ``tmp_path`` ->
    ``(onnx.ModelProto, its four output names)``: step 1 of :mod:`rfcn_face.onnx_export`. Failures are one-line
    ValueErrors."""
    import warnings

    import mxnet as mx
    import numpy as np

    from rfcn_face.onnx_export import require_onnx
    onnx = require_onnx()
    sym = detector_symbol(net, "maps")
    bad = onnx_unsupported_ops(sym)
    if bad:
        raise ValueError(f"--onnx: operators without an ONNX translation in MXNet: {', '.join(bad)}")
    mx.nd.waitall()
    a, x = _split_params([net], sym)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mx.onnx.export_model(sym, {**a, **x}, in_shapes=[(1, 3, 64, 64)], in_types=[np.float32],
                                 onnx_file_path=str(tmp_path), dynamic=True,
                                 dynamic_input_shapes=[(1, 3, None, None)])
    except Exception as e:   # MXNet's exporter raises anything, with long messages
        raise ValueError(f"--onnx: mx.onnx.export_model failed: {str(e).splitlines()[0] if str(e) else e!r}") from None
    model = onnx.load(str(tmp_path))
    outs = [o.name for o in model.graph.output]
    if len(outs) != len(OUTPUTS["maps"]):
        raise ValueError(f"--onnx: the maps graph exported {len(outs)} outputs, expected 4")
    return model, outs


ONNX_NOTE = ("inputs data (1, 3, h, w) resized + normalised, im_info (1, 3) h w scale, orig_hw (1, 2) H0 W0; "
             "outputs boxes (D, 4) x1 y1 x2 y2 in original pixels and scores (D,), best first, after the final NMS")


def read_detector_meta(prefix) -> dict:
    """The ``PREFIX-detector.json`` written by :func:`export_run`."""
    import json
    p = Path(f"{prefix}{META_SUFFIX}")
    if not p.is_file():
        raise FileNotFoundError(f"exported detector description not found: {p}")
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{p}: not a detector description (not JSON: {e})") from None
    if not isinstance(meta, dict) or not {"inputs", "outputs", "graph"} <= set(meta):
        raise ValueError(f"{p}: not a detector description (a JSON object with inputs, outputs and graph)")
    return meta
