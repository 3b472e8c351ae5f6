"""The whole detector as one ONNX model: resized, normalised image -> boxes and scores after the final NMS, in
original pixels (issue 24). Standard ONNX ops only (the opset MXNet's exporter writes, 19 with onnx 1.14.1), so onnxruntime (or any runtime) runs it without
this project.

Graph (batch 1, dynamic ``H x W``; inputs ``data`` (1, 3, H, W) float32 as :func:`rfcn_face.detector.prepare_image`
makes it, ``im_info`` (1, 3) ``h, w, scale`` as the MXNet ``detector`` graph takes it, ``orig_hw`` (1, 2) the
original image's ``H0, W0``; outputs ``boxes`` (D, 4) float64 ``x1 y1 x2 y2`` and ``scores`` (D,) float64, best
first):

1. backbone + (BU / BUS) + RPN + position-sensitive maps: MXNet's own ONNX exporter (``mx.onnx.export_model``,
   ``dynamic=True``) on the ``maps`` graph of :mod:`symbols.export` — every op of it has a translation;
2. proposals, as :class:`symbols.proposal.ProposalBlock` computes them (float64): anchors tiled over the map
   (``Range``), softmax face probability, decode + clip, ``min_size``, the pre-NMS ``TopK`` over the exact
   :func:`symbols.ranking.order_key` keys (distinct, so the runtime's tie order does not matter), then
   ``NonMaxSuppression`` fed the strictly decreasing rank (no ties), ``post_nms_top_n`` kept (padding rows are
   never detections, so they are not built);
3. PSROIPooling exactly as MXNet's ``_contrib_PSROIPooling`` (:func:`psroi_pool`: rounding of the RoI,
   floor / ceil bin edges in float32, an integral image and four ``Gather`` s, empty bin 0) + average voting;
4. :func:`symbols.postprocess.head_rows` (softmax score, decode with ``rcnn.bbox_means / stds``, clip,
   ``score > test.score_thresh``, no degenerate box), mapping back by ``sx = w / W0``, ``sy = h / H0`` and
   clipping to the original image (:func:`rfcn_face.detector.map_to_original`);
5. the final NMS of :func:`rfcn_face.detector.merge_detections` (``test.nms_thresh``, ``test.max_per_image``).

The NMS boxes are float32 (ONNX's ``NonMaxSuppression`` takes no float64); everything else is float64 like the
device code. The model's ``metadata_props`` hold ``rfcn_face`` = the JSON of ``PREFIX-detector.json`` (test sizes,
pixel normalisation, settings), so a caller needs the ``.onnx`` file only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["require_onnx", "GraphBuilder", "psroi_pool", "detector_onnx", "export_onnx_detector", "read_onnx_meta", "MIN_OPSET",
           "META_KEY", "INPUTS", "OUTPUTS"]

MIN_OPSET = 13      # the model keeps the opset mx.onnx writes (onnx 1.14.1: 19; relabelled 13 its maps came out wrong)
META_KEY = "rfcn_face"
INPUTS = ("data", "im_info", "orig_hw")
OUTPUTS = ("boxes", "scores")
F32, F64, I64 = 1, 11, 7          # onnx.TensorProto FLOAT, DOUBLE, INT64


def require_onnx(option: str = "--onnx"):
    try:
        import onnx
    except ImportError:
        raise ValueError(f"{option}: the 'onnx' package is not installed (pip install onnx==1.14.1, "
                         "requirements.txt)") from None
    return onnx


class GraphBuilder:
    """Appends nodes to an ``onnx.GraphProto``: ``op(type, *inputs, **attrs)`` returns the output name;
    ``const(value, dtype)`` an initializer."""

    def __init__(self, graph, prefix: str = "post", opset: int = 13):
        import onnx
        self.opset = int(opset)
        self.g, self.h, self.prefix, self.n = graph, onnx.helper, prefix, 0
        self.taps = {}        # intermediate tensors by role, kept in graph.doc_string (add them as outputs to debug)
        self._np = onnx.numpy_helper

    def _name(self, what):
        self.n += 1
        return f"{self.prefix}_{what}_{self.n}"

    def const(self, value, dtype=np.float64):
        name = self._name("c")
        self.g.initializer.append(self._np.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, *inputs, outputs: int = 1, **attrs):
        outs = [self._name(op_type.lower()) for _ in range(outputs)]
        self.g.node.append(self.h.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if outputs == 1 else outs

    # ---- small helpers
    def col(self, x, i: int, axis: int = 1):
        """Column ``i`` of ``x`` along ``axis``, kept as a length-1 axis."""
        return self.op("Slice", x, self.const([i], np.int64), self.const([i + 1], np.int64),
                       self.const([axis], np.int64))

    def reshape(self, x, shape):
        return self.op("Reshape", x, self.const(shape, np.int64))

    def cast(self, x, to):
        return self.op("Cast", x, to=to)

    def scalar(self, v, dtype=np.float64):
        return self.const(v, dtype)

    def c_round(self, x):
        """C ``round()`` (half away from zero); ONNX ``Round`` rounds half to even."""
        half = self.scalar(0.5, np.float32)
        return self.op("Mul", self.op("Sign", x), self.op("Floor", self.op("Add", self.op("Abs", x), half)))

    def dim(self, x, axis: int):
        """``x.shape[axis]`` as a 1-element int64 tensor."""
        return self.op("Gather", self.op("Shape", x), self.const([axis], np.int64), axis=0)


# ------------------------------------------------------------------------------------------------ pieces
def decode_columns(b: GraphBuilder, boxes, deltas, means, stds):
    """:func:`symbols.boxes.decode_columns` on (R, 4) float64 tensors -> four (R, 1) columns."""
    from rfcn_face.boxes import BBOX_CLIP
    x1, y1, x2, y2 = (b.col(boxes, i) for i in range(4))
    w, h = b.op("Sub", x2, x1), b.op("Sub", y2, y1)
    d = [b.op("Add", b.op("Mul", b.col(deltas, i), b.scalar(float(stds[i]))), b.scalar(float(means[i])))
         for i in range(4)]
    half = b.scalar(0.5)
    cx = b.op("Add", b.op("Add", x1, b.op("Mul", half, w)), b.op("Mul", d[0], w))
    cy = b.op("Add", b.op("Add", y1, b.op("Mul", half, h)), b.op("Mul", d[1], h))
    clip = b.scalar(float(BBOX_CLIP))
    pw = b.op("Mul", w, b.op("Exp", b.op("Min", d[2], clip)))
    ph = b.op("Mul", h, b.op("Exp", b.op("Min", d[3], clip)))
    hpw, hph = b.op("Mul", half, pw), b.op("Mul", half, ph)
    return b.op("Sub", cx, hpw), b.op("Sub", cy, hph), b.op("Add", cx, hpw), b.op("Add", cy, hph)


def clip_columns(b: GraphBuilder, cols, h, w):
    """Columns clipped to ``[0, w] x [0, h]`` (``h``, ``w`` float64 scalars of shape (1, 1))."""
    zero = b.scalar(0.0)
    return tuple(b.op("Min", b.op("Max", c, zero), lim) for c, lim in zip(cols, (w, h, w, h)))


def order_key(b: GraphBuilder, score, valid):
    """:func:`symbols.ranking.order_key` of a (N,) float64 score: distinct keys, -1 where ``valid`` is false."""
    from symbols.ranking import INDEX_BITS, SCORE_BITS
    n = b.cast(b.op("Shape", score), F64)
    idx = b.op("Range", b.scalar(0.0), b.op("Squeeze", n), b.scalar(1.0))
    tie = b.op("Sub", b.scalar(float(2 ** INDEX_BITS - 1)), idx)
    key = b.op("Add", b.op("Mul", b.op("Floor", b.op("Mul", score, b.scalar(float(2 ** SCORE_BITS)))),
                           b.scalar(float(2 ** INDEX_BITS))), tie)
    return b.op("Where", valid, key, b.scalar(-1.0))


def ranked_nms(b: GraphBuilder, key, boxes, k, max_output: int, iou: float, limit: int = 0):
    """Greedy NMS in key order: the ``k`` (1-element int64) best keys (``>= 0`` valid; with ``limit > 0`` only the
    first ``limit``) -> NonMaxSuppression over their float32 boxes with the rank ``k - position`` as score (no
    ties) -> the kept entries' indices into ``key``, best first."""
    vals, order = b.op("TopK", key, k, outputs=2, axis=0, largest=1, sorted=1)
    pos = b.op("Range", b.scalar(0, np.int64), b.op("Squeeze", k), b.scalar(1, np.int64))
    valid = b.op("GreaterOrEqual", vals, b.scalar(0.0))
    if limit > 0:
        valid = b.op("And", valid, b.op("Less", pos, b.scalar(int(limit), np.int64)))
    rank = b.cast(b.op("Sub", k, pos), F32)
    score = b.op("Where", valid, rank, b.scalar(0.0, np.float32))
    sel_boxes = b.cast(b.op("Gather", boxes, order, axis=0), F32)
    sel = b.op("NonMaxSuppression", b.op("Unsqueeze", sel_boxes, b.const([0], np.int64)),
               b.reshape(score, [1, 1, -1]), b.const([int(max_output)], np.int64),
               b.const([float(iou)], np.float32), b.const([0.5], np.float32), center_point_box=0)
    kept = b.reshape(b.col(sel, 2), [-1])                                    # positions, best first
    return b.op("Gather", order, kept, axis=0)


def psroi_pool(b: GraphBuilder, maps, rois, *, spatial_scale: float, k: int, output_dim: int):
    """``contrib.PSROIPooling`` + average voting (:func:`rfcn_face.detector.psroi_pool_numpy`, its numpy twin):
    ``maps`` (1, k*k*output_dim, H, W) float32, ``rois`` (R, 4) float32 in the project's box convention (``x2 -
    1``, ``y2 - 1`` passed as MXNet's inclusive corners) -> (R, output_dim) float32."""
    one, s = b.scalar(1.0, np.float32), b.scalar(float(spatial_scale), np.float32)
    x1, y1 = (b.op("Mul", b.c_round(b.col(rois, i)), s) for i in (0, 1))
    x2, y2 = (b.op("Mul", b.op("Add", b.c_round(b.op("Sub", b.col(rois, i), one)), one), s) for i in (2, 3))
    kf, tenth = b.scalar(float(k), np.float32), b.scalar(0.1, np.float32)
    bw = b.op("Div", b.op("Max", b.op("Sub", x2, x1), tenth), kf)                    # (R, 1)
    bh = b.op("Div", b.op("Max", b.op("Sub", y2, y1), tenth), kf)
    g = b.const(np.arange(k)[None], np.float32)                                # (1, k)
    g1 = b.const(np.arange(1, k + 1)[None], np.float32)
    H, W = b.dim(maps, 2), b.dim(maps, 3)
    Hf, Wf = b.cast(H, F32), b.cast(W, F32)
    zero = b.scalar(0.0, np.float32)

    def edge(gg, size, start, lim, fn):
        v = b.op(fn, b.op("Add", b.op("Mul", gg, size), start))
        return b.cast(b.op("Min", b.op("Max", v, zero), lim), I64)                    # (R, k)
    hs, he = edge(g, bh, y1, Hf, "Floor"), edge(g1, bh, y1, Hf, "Ceil")
    ws, we = edge(g, bw, x1, Wf, "Floor"), edge(g1, bw, x1, Wf, "Ceil")
    # summed-area table (C, H+1, W+1) in float64, flattened
    m = b.cast(b.op("Squeeze", maps, b.const([0], np.int64)), F64)
    cs = b.op("CumSum", b.op("CumSum", m, b.scalar(1, np.int64)), b.scalar(2, np.int64))
    table = b.op("Pad", cs, b.const([0, 1, 1, 0, 0, 0], np.int64))
    flat = b.reshape(table, [-1])
    one_i = b.scalar(1, np.int64)
    H1, W1 = b.op("Add", H, one_i), b.op("Add", W, one_i)
    ch = ((np.arange(output_dim)[:, None, None] * k + np.arange(k)[None, :, None]) * k
          + np.arange(k)[None, None, :])                                                # (dim, k, k)
    base = b.op("Mul", b.op("Mul", b.const(ch[None], np.int64), H1), W1)               # (1, dim, k, k)
    rows = lambda v: b.reshape(v, [-1, 1, k, 1])                                        # noqa: E731
    cols = lambda v: b.reshape(v, [-1, 1, 1, k])                                        # noqa: E731

    def at(i, j):
        return b.op("Gather", flat, b.op("Add", base, b.op("Add", b.op("Mul", rows(i), W1), cols(j))), axis=0)
    total = b.op("Add", b.op("Sub", b.op("Sub", at(he, we), at(hs, we)), at(he, ws)), at(hs, ws))
    area = b.cast(b.op("Mul", b.op("Sub", rows(he), rows(hs)), b.op("Sub", cols(we), cols(ws))), F64)
    pooled = b.op("Where", b.op("Greater", area, b.scalar(0.0)),
                  b.op("Div", total, b.op("Max", area, b.scalar(1.0))), b.scalar(0.0))  # (R, dim, k, k)
    if b.opset >= 18:                                                                    # axes became an input
        return b.op("ReduceMean", b.cast(pooled, F32), b.const([2, 3], np.int64), keepdims=0)
    return b.op("ReduceMean", b.cast(pooled, F32), axes=[2, 3], keepdims=0)


def proposals(b: GraphBuilder, rpn_cls, rpn_bbox, im_h, im_w, anchor_base, stride: int, p):
    """Step 2 of the module docstring -> (P, 4) float64 RoIs, best first."""
    A = int(len(anchor_base))

    def anchor_order(x, kk):                                                          # (1, A*kk, h, w) -> (N, kk)
        t = b.op("Transpose", b.reshape(x, [0, A, kk, -1]), perm=[0, 3, 1, 2])
        return b.cast(b.reshape(t, [-1, kk]), F64)
    prob = b.reshape(b.col(b.op("Softmax", anchor_order(rpn_cls, 2), axis=1), 1), [-1])  # (N,)
    deltas = anchor_order(rpn_bbox, 4)
    hh, ww = (b.cast(b.dim(rpn_cls, a), F64) for a in (2, 3))
    st = b.scalar(float(stride))
    xs = b.reshape(b.op("Mul", b.op("Range", b.scalar(0.0), b.op("Squeeze", ww), b.scalar(1.0)), st), [1, -1, 1])
    ys = b.reshape(b.op("Mul", b.op("Range", b.scalar(0.0), b.op("Squeeze", hh), b.scalar(1.0)), st), [-1, 1, 1])
    zero = b.op("Add", b.op("Mul", xs, b.scalar(0.0)), b.op("Mul", ys, b.scalar(0.0)))   # (h, w, 1)
    sx, sy = b.op("Add", zero, xs), b.op("Add", zero, ys)
    shift = b.op("Unsqueeze", b.op("Concat", sx, sy, sx, sy, axis=2), b.const([2], np.int64))    # (h, w, 1, 4)
    base = b.const(np.asarray(anchor_base, np.float32).astype(np.float64)[None, None])             # (1, 1, A, 4)
    anchors = b.reshape(b.op("Add", shift, base), [-1, 4])
    x1, y1, x2, y2 = clip_columns(b, decode_columns(b, anchors, deltas, (0.0,) * 4, (1.0,) * 4), im_h, im_w)
    w, h = b.op("Sub", x2, x1), b.op("Sub", y2, y1)
    ms, z = b.scalar(float(p.min_size)), b.scalar(0.0)
    ok = b.op("And", b.op("And", b.op("GreaterOrEqual", w, ms), b.op("GreaterOrEqual", h, ms)),
              b.op("And", b.op("Greater", w, z), b.op("Greater", h, z)))
    boxes = b.op("Concat", x1, y1, x2, y2, axis=1)                                     # (N, 4)
    key = order_key(b, prob, b.reshape(ok, [-1]))
    n = b.op("Shape", key)
    if p.pre_nms_top_n > 0:
        k = b.op("Min", n, b.const([max(p.pre_nms_top_n, p.post_nms_top_n)], np.int64))
    else:
        k = n
    kept = ranked_nms(b, key, boxes, k, p.post_nms_top_n, p.nms_thresh, limit=max(p.pre_nms_top_n, 0))
    return b.op("Gather", boxes, kept, axis=0)


def detector_onnx(maps_model, cfg, maps_outputs):
    """Append steps 2-5 to ``maps_model`` (the ONNX ``maps`` graph, outputs ``maps_outputs`` = rpn_cls, rpn_bbox,
    cls maps, box maps) and return the whole-detector model."""
    import onnx
    from onnx import helper

    from rfcn_face.proposals import BoxCoding, ProposalParams
    g = maps_model.graph
    opset = max(o.version for o in maps_model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise ValueError(f"--onnx: the exported maps graph has opset {opset}, {MIN_OPSET} or later is needed")
    b = GraphBuilder(g, opset=opset)
    rpn_cls, rpn_bbox, cls_maps, box_maps = maps_outputs
    aset, coding = cfg.anchor_set(), BoxCoding.from_config(cfg)
    info = b.cast("im_info", F64)
    im_h, im_w = b.col(info, 0), b.col(info, 1)                                          # (1, 1)
    rois = proposals(b, rpn_cls, rpn_bbox, im_h, im_w, aset.base(), aset.stride,
                     ProposalParams.from_config(cfg, train=False))
    r32 = b.cast(rois, F32)
    b.taps.update(rpn_cls=rpn_cls, rois=rois)
    kw = dict(spatial_scale=1.0 / aset.stride, k=int(cfg.model.psroi_k))
    cls = psroi_pool(b, cls_maps, r32, output_dim=int(cfg.model.num_classes), **kw)
    box = psroi_pool(b, box_maps, r32, output_dim=4, **kw)
    b.taps.update(cls_score=cls, bbox_pred=box)
    score = b.col(b.op("Softmax", b.cast(cls, F64), axis=1), 1)                          # (R, 1)
    cols = clip_columns(b, decode_columns(b, rois, b.cast(box, F64), coding.means, coding.stds), im_h, im_w)
    w, h = b.op("Sub", cols[2], cols[0]), b.op("Sub", cols[3], cols[1])
    z = b.scalar(0.0)
    ok = b.op("And", b.op("Greater", score, b.scalar(float(cfg.test.score_thresh))),
              b.op("And", b.op("Greater", w, z), b.op("Greater", h, z)))
    # back to the original image: / (sx, sy), clipped to [0, W0] x [0, H0]
    orig = b.cast("orig_hw", F64)
    h0, w0 = b.col(orig, 0), b.col(orig, 1)
    sx, sy = b.op("Div", im_w, w0), b.op("Div", im_h, h0)
    mapped = clip_columns(b, [b.op("Div", c, s) for c, s in zip(cols, (sx, sy, sx, sy))], h0, w0)
    boxes = b.op("Concat", *mapped, axis=1)
    flat_score = b.reshape(score, [-1])
    key = order_key(b, flat_score, b.reshape(ok, [-1]))
    kept = ranked_nms(b, key, boxes, b.op("Shape", key), int(cfg.test.max_per_image), float(cfg.test.nms_thresh))
    out_boxes = b.op("Gather", boxes, kept, axis=0)
    out_scores = b.op("Gather", flat_score, kept, axis=0)
    g.node.append(helper.make_node("Identity", [out_boxes], ["boxes"]))
    g.node.append(helper.make_node("Identity", [out_scores], ["scores"]))
    inits = {t.name for t in g.initializer}
    data = [i for i in g.input if i.name not in inits]
    del g.input[:]
    g.input.extend(data + [helper.make_tensor_value_info("im_info", F32, [1, 3]),
                           helper.make_tensor_value_info("orig_hw", F32, [1, 2])])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("boxes", F64, ["D", 4]),
                     helper.make_tensor_value_info("scores", F64, ["D"])])
    onnx.checker.check_model(maps_model)
    maps_model.graph.doc_string = json.dumps(b.taps)
    return maps_model


def export_onnx_detector(maps_export, cfg, path, meta: dict) -> dict:
    """Write the whole detector to ``path`` atomically: ``maps_export(tmp_file) -> (maps model, its 4 output names)``
    writes step 1 (:func:`symbols.export.onnx_maps_model` with the network bound), ``cfg`` the run's config;
    ``meta`` (the ``-detector.json`` content) goes into the model's metadata. Returns a summary."""
    import os
    import tempfile
    onnx = require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        maps, outs = maps_export(Path(tmp) / "maps.onnx")
        model = detector_onnx(maps, cfg, outs)
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        tmp_out = Path(tmp) / "model.onnx"
        onnx.save(model, str(tmp_out))
        os.replace(tmp_out, path)
    ops = sorted({n.op_type for n in model.graph.node})
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"ok": True, "path": str(path), "graph": "detector", "inputs": list(INPUTS), "outputs": list(OUTPUTS),
            "opset": opset, "ops": ops,
            "summary": f"ONNX whole detector written to {path} ({', '.join(INPUTS)} -> {', '.join(OUTPUTS)}, "
                       f"opset {opset})"}


def read_onnx_meta(path) -> dict:
    """The ``rfcn_face`` metadata of an exported ``.onnx`` detector (a one-line error when absent)."""
    onnx = require_onnx("--model")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model not found: {p}")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:
        raise ValueError(f"{p}: not an ONNX model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for e in model.metadata_props:
        if e.key == META_KEY:
            return json.loads(e.value)
    raise ValueError(f"{p}: no '{META_KEY}' metadata; export it with python -m rfcn_face export --onnx")
