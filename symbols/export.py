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

* ``detector``: inputs ``data`` (1, 3, h, w) — the image already resized to its test size and normalised —
  and ``im_info`` (1, 3: h, w, scale) -> ``dets`` (N, 5) rows ``score, x1, y1, x2, y2`` in the pixels of
  ``data``, best first, unused rows all -1 (N = min(``test.rpn_post_nms_top_n``, ``test.max_per_image``)). The
  whole test path of :class:`rfcn_face.detector.FaceDetector` for one size, in MXNet operators: anchors of the
  run's anchor set (shifted ones included) tiled over the RPN map (``arange_like`` + the (A, 4) base anchors,
  saved as the parameter ``anchor_base``), RPN decode, clip, ``rpn.min_size``, top ``test.rpn_pre_nms_top_n``
  + NMS ``rpn.nms_thresh`` (``contrib.box_nms`` with ``topk`` set), the first ``test.rpn_post_nms_top_n``,
  the PSROI head, decode with ``rcnn.bbox_means`` / ``bbox_stds``, clip, ``score > test.score_thresh``, NMS
  ``test.nms_thresh``. The knobs are baked in (``PREFIX-detector.json`` lists them with the preprocessing);
  mapping back to the original image is a division by the resize factors (docs/inference.md). It computes
  in float32 where :class:`~rfcn_face.detector.FaceDetector` post-processes in float64.

Parameters are saved in MXNet's checkpoint format (``arg:`` / ``aux:`` prefixes, Caffe-style names from
:mod:`symbols.resnet`), so ``mx.model.load_checkpoint`` (Module API) and ``gluon.SymbolBlock.imports`` both
read them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rfcn_face.boxes import BBOX_CLIP

__all__ = ["detector_symbol", "export_detector", "import_detector", "onnx_unsupported_ops", "onnx_supported_ops",
           "export_onnx", "OnnxResult", "OUTPUTS", "INPUTS", "GRAPHS", "GraphSettings", "detection_output",
           "export_run", "read_detector_meta", "ANCHOR_BASE"]

OUTPUTS = {"full": ("rpn_cls", "rpn_bbox", "cls_score", "bbox_pred"),
           "maps": ("rpn_cls", "rpn_bbox", "rfcn_cls_maps", "rfcn_bbox_maps"),
           "detector": ("dets",)}
INPUTS = {"full": ("data", "rois"), "maps": ("data",), "detector": ("data", "im_info")}
GRAPHS = tuple(OUTPUTS)
ANCHOR_BASE = "anchor_base"          # (A, 4) anchors of RPN location (0, 0): a parameter of the detector graph


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

    @classmethod
    def from_config(cls, cfg) -> "GraphSettings":
        from rfcn_face.proposals import BoxCoding, ProposalParams
        t, p, coding = cfg.test, ProposalParams.from_config(cfg, train=False), BoxCoding.from_config(cfg)
        return cls(cfg.anchor_set().stride, p.pre_nms_top_n, p.post_nms_top_n, p.nms_thresh, p.min_size,
                   coding.means, coding.stds, float(t.score_thresh), float(t.nms_thresh), int(t.max_per_image))

    @property
    def rows(self) -> int:
        return min(self.post_nms_top_n, self.max_per_image)


def _col(F, x, i):
    return F.slice_axis(x, axis=-1, begin=i, end=i + 1)


def _decode(F, boxes, deltas, means, stds):
    """rfcn_face.boxes.decode in operators: (..., 4) boxes and deltas -> (..., 4) boxes."""
    x1, y1, x2, y2 = (_col(F, boxes, i) for i in range(4))
    d = [_col(F, deltas, i) * float(stds[i]) + float(means[i]) for i in range(4)]
    w, h = x2 - x1, y2 - y1
    cx = x1 + 0.5 * w + d[0] * w
    cy = y1 + 0.5 * h + d[1] * h
    pw = w * F.exp(F.minimum(d[2], BBOX_CLIP))
    ph = h * F.exp(F.minimum(d[3], BBOX_CLIP))
    return F.concat(cx - 0.5 * pw, cy - 0.5 * ph, cx + 0.5 * pw, cy + 0.5 * ph, dim=-1)


def _clip(F, boxes, im_info):
    """Clip (1, N, 4) boxes to [0, w] x [0, h] of ``im_info`` (1, 3)."""
    h = F.reshape(F.slice_axis(im_info, axis=1, begin=0, end=1), (1, 1, 1))
    w = F.reshape(F.slice_axis(im_info, axis=1, begin=1, end=2), (1, 1, 1))
    x1, y1, x2, y2 = (F.maximum(_col(F, boxes, i), 0.0) for i in range(4))
    return F.concat(F.broadcast_minimum(x1, w), F.broadcast_minimum(y1, h), F.broadcast_minimum(x2, w),
                    F.broadcast_minimum(y2, h), dim=-1)


def _nms(F, rows, thresh, valid_thresh, topk):
    """contrib.box_nms on (1, N, 5) rows ``score, x1, y1, x2, y2``: kept rows first (best first), the rest -1;
    a row survives when ``score > valid_thresh``; ``topk`` = only the best topk rows take part (-1 = all)."""
    return F.contrib.box_nms(rows, overlap_thresh=float(thresh), valid_thresh=float(valid_thresh), topk=int(topk),
                             coord_start=1, score_index=0, id_index=-1, force_suppress=True, in_format="corner",
                             out_format="corner")


def detection_output(F, net, rpn_cls, rpn_bbox, feat, im_info, anchor_base, s: GraphSettings):
    """The test path after the backbone (batch 1), in MXNet operators (``F`` = mx.sym or mx.nd): proposals over
    the tiled ``anchor_base`` (A, 4), the R-FCN head, decoding, thresholds and NMS -> (N, 5) ``dets``."""
    from .rfcn import rpn_face_scores, to_anchor_order
    # anchors, in the order of rfcn_face.anchors.AnchorSet.tile: row (y*W + x)*A + a = base[a] + stride*(x, y)
    xs = F.reshape(F.contrib.arange_like(rpn_cls, axis=3) * float(s.stride), (1, -1, 1, 1))     # (1, W, 1, 1)
    ys = F.reshape(F.contrib.arange_like(rpn_cls, axis=2) * float(s.stride), (-1, 1, 1, 1))     # (H, 1, 1, 1)
    zero = F.broadcast_add(F.zeros_like(xs), F.zeros_like(ys))                                # (H, W, 1, 1)
    sx, sy = F.broadcast_add(zero, xs), F.broadcast_add(zero, ys)
    shift = F.concat(sx, sy, sx, sy, dim=3)                                                   # (H, W, 1, 4)
    anchors = F.reshape(F.broadcast_add(shift, F.reshape(anchor_base, (1, 1, -1, 4))), (1, -1, 4))
    # RPN: face probability and deltas (means 0, stds 1) per anchor; clip; min_size and degenerate boxes -> -1
    prob = F.reshape(rpn_face_scores(F, rpn_cls), (1, -1, 1))
    boxes = _clip(F, _decode(F, anchors, to_anchor_order(F, rpn_bbox, 4), (0.0,) * 4, (1.0,) * 4), im_info)
    bw, bh = _col(F, boxes, 2) - _col(F, boxes, 0), _col(F, boxes, 3) - _col(F, boxes, 1)
    ok = (bw >= s.min_size) * (bh >= s.min_size) * (bw > 0) * (bh > 0)
    rows = F.concat(prob * ok + (ok - 1.0), boxes, dim=2)                                      # invalid: -1
    rows = F.concat(rows, F.ones((1, s.post_nms_top_n, 5)) * -1.0, dim=1)      # at least post_nms_top_n rows
    props = _nms(F, rows, s.rpn_nms_thresh, -0.5, s.pre_nms_top_n if s.pre_nms_top_n > 0 else -1)
    props = F.reshape(F.slice_axis(props, axis=1, begin=0, end=s.post_nms_top_n), (-1, 5))     # (post, 5)
    psc, pbox = _col(F, props, 0), F.slice_axis(props, axis=1, begin=1, end=5)
    # R-FCN head on the proposals (unused rows are -1 boxes: computed, then masked)
    cls_score, bbox_pred = net.head(feat, F.concat(F.zeros_like(psc), pbox, dim=1))
    score = F.slice_axis(F.softmax(cls_score, axis=-1), axis=1, begin=1, end=2)                # (post, 1)
    det = F.reshape(_clip(F, F.reshape(_decode(F, pbox, bbox_pred, s.bbox_means, s.bbox_stds), (1, -1, 4)),
                          im_info), (-1, 4))
    ok = (psc >= 0) * (_col(F, det, 2) > _col(F, det, 0)) * (_col(F, det, 3) > _col(F, det, 1))
    rows = F.reshape(F.concat(score * ok + (ok - 1.0), det, dim=1), (1, -1, 5))
    out = _nms(F, rows, s.nms_thresh, s.score_thresh, -1)
    return F.reshape(F.slice_axis(out, axis=1, begin=0, end=s.rows), (-1, 5))


def detector_symbol(net, graph: str = "full", settings: GraphSettings = None):
    """The detector's graph as an ``mx.sym.Symbol`` with named inputs and outputs (see module docstring);
    ``graph="detector"`` needs the :class:`GraphSettings` of the run's config."""
    import mxnet as mx
    if graph not in OUTPUTS:
        raise ValueError(f"unknown graph {graph!r}; expected one of {', '.join(GRAPHS)}")
    data = mx.sym.var("data")
    rpn_cls, rpn_bbox, feat = net(data)
    if graph == "detector":
        if settings is None:
            raise ValueError("the 'detector' graph needs the test settings (GraphSettings.from_config(cfg))")
        dets = detection_output(mx.sym, net, rpn_cls, rpn_bbox, feat, mx.sym.var("im_info", shape=(1, 3)),
                                mx.sym.var(ANCHOR_BASE, shape=(net.num_anchors, 4)), settings)
        return mx.sym.Group([mx.sym.identity(dets, name="dets")])
    if graph == "full":
        cls, box = net.head(feat, mx.sym.var("rois"))
    else:
        h = mx.sym.Activation(net.head.conv_new(feat), act_type="relu")
        cls, box = net.head.cls_maps(h), net.head.box_maps(h)
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


def export_detector(net, prefix, graph: str = "full", epoch: int = 0, settings: GraphSettings = None,
                    anchor_base=None):
    """Write ``{prefix}-symbol.json`` and ``{prefix}-{epoch:04d}.params``; returns the two paths. The
    ``detector`` graph needs ``settings`` and ``anchor_base`` ((A, 4), ``cfg.anchor_set().base()``)."""
    import mxnet as mx
    import numpy as np
    prefix = str(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    sym = detector_symbol(net, graph, settings)
    # MKLDNN reorders conv weights in place during an inference forward, outside the engine's dependency
    # tracking (apache/mxnet#9862); mx.nd.save of the raw arrays while that forward is pending wrote a weight
    # half-reordered in 5-35 % of the exports here (Gluon's save_parameters copies through the engine first)
    mx.nd.waitall()
    arg_params, aux_params = _split_params(net, sym)
    if graph == "detector":
        if anchor_base is None:
            raise ValueError("the 'detector' graph needs anchor_base (cfg.anchor_set().base())")
        base = np.asarray(anchor_base, np.float32).reshape(-1, 4)
        if len(base) != net.num_anchors:
            raise ValueError(f"anchor_base has {len(base)} anchors, the network {net.num_anchors} per location")
        arg_params[ANCHOR_BASE] = mx.nd.array(base)
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


# ------------------------------------------------------------------------------------------------ a run
META_SUFFIX = "-detector.json"


def export_run(run_dir, prefix, graph: str = "detector", onnx_path=None, onnx_shape=None) -> dict:
    """Export a training run folder (its ``config.yaml`` + ``final.params``): ``PREFIX-symbol.json``,
    ``PREFIX-0000.params`` and ``PREFIX-detector.json`` (inputs, outputs, the test sizes, the pixel
    normalisation and the baked-in :class:`GraphSettings`: what a plain-MXNet caller needs, docs/inference.md).
    With ``onnx_path`` the ``maps`` graph is also tried through ONNX (:func:`export_onnx`). Returns a summary."""
    from dataclasses import asdict

    from rfcn_face.checkpoint import atomic_write_json
    from rfcn_face.detector import FaceDetector
    if graph not in OUTPUTS:
        raise ValueError(f"--graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    if Path(prefix).is_dir() or str(prefix).endswith("/"):
        raise ValueError(f"export prefix {prefix} names a folder; give a file prefix such as {Path(prefix) / 'detector'}")
    det = FaceDetector.from_run(run_dir, hybridize=False)
    cfg, norm, anchors = det.cfg, det.norm, det.cfg.anchor_set()
    settings = GraphSettings.from_config(cfg)
    sym_file, params_file = export_detector(det.net, prefix, graph, settings=settings, anchor_base=anchors.base())
    sizes = det.sizes()
    meta = {"run": str(run_dir), "name": cfg.name, "graph": graph, "inputs": list(INPUTS[graph]),
            "outputs": list(OUTPUTS[graph]), "size": sizes[0], "sizes": sizes, "pyramid": bool(cfg.test.pyramid),
            "mean": list(norm.mean), "std": list(norm.std), "scale": norm.scale,
            "arch": cfg.model.arch, "depth": cfg.model.depth, "anchors_per_location": anchors.num_per_location,
            "settings": asdict(settings),
            "note": ("dets rows: score x1 y1 x2 y2 in the pixels of data (the resized image), best first, unused "
                     "rows -1; divide by the resize factors for original pixels") if graph == "detector" else ""}
    meta_file = Path(f"{prefix}{META_SUFFIX}")
    atomic_write_json(meta_file, meta)
    out = {"symbol": str(sym_file), "params": str(params_file), "meta": str(meta_file), "graph": graph,
           "inputs": meta["inputs"], "outputs": meta["outputs"]}
    if onnx_path:
        shape = tuple(onnx_shape) if onnx_shape else (1, 3) + tuple(max(s, 64) for s in _onnx_hw(sizes[0]))
        r = export_onnx(det.net, onnx_path, image_shape=shape)
        out["onnx"] = {"ok": r.ok, "path": r.path, "graph": r.graph, "reason": r.reason, "left_out": r.left_out,
                       "summary": r.summary()}
    return out


def _onnx_hw(size):
    s, l = size
    return (s or 600, l or 1000)


def read_detector_meta(prefix) -> dict:
    """The ``PREFIX-detector.json`` written by :func:`export_run`."""
    import json
    p = Path(f"{prefix}{META_SUFFIX}")
    if not p.is_file():
        raise FileNotFoundError(f"exported detector description not found: {p}")
    return json.loads(p.read_text())
