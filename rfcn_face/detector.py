"""The trained R-FCN face detector as one object: image in, boxes and scores out (Sec. 5.1 test protocol).

``FaceDetector.from_run(RUN_DIR)`` (or ``FaceDetector(config, params_path, ctx)``) owns everything between an
RGB image and detections in its own pixels:

1. **preprocessing** — the test size (Table 2 "max size S x L": the largest scale with shorter side <= S and
   longer side <= L, :func:`rfcn_face.transforms.resize_to_test_size`; ``[0, 0]`` = original size, as the paper
   tests AFW / PASCAL / FDDB), then the run's pixel normalisation (:func:`rfcn_face.config.normalisation_of`);
2. **network** — backbone (+ BU / BUS) + RPN (:mod:`symbols.rfcn`);
3. **proposals** over the run's anchor set (shifted anchors included) with the *test* knobs
   ``test.rpn_pre_nms_top_n`` / ``test.rpn_post_nms_top_n`` (``rpn.nms_thresh``, ``rpn.min_size``): the device
   block :class:`symbols.proposal.ProposalBlock` (its padding rows marked, so no duplicate RoI becomes a detection);
4. **R-FCN head** on those RoIs; face score = softmax(cls_score)[:, 1];
5. **decoding** with ``rcnn.bbox_means`` / ``rcnn.bbox_stds`` (class-agnostic deltas), clipping to the resized
   image, ``score > test.score_thresh`` (strict, as R-FCN), degenerate boxes dropped — steps 3-5 on the device
   (:class:`symbols.postprocess.DetectionOutput`, float64), one read-back per device and size; then, on the host,
   mapping back by the exact per-axis resize factors (:func:`map_to_original`);
6. **merging** (:func:`merge_detections`, host): the candidates of every test size are united and one greedy NMS
   (``test.nms_thresh``) keeps at most ``test.max_per_image`` — for one size this is the usual R-FCN NMS, for
   the image pyramid (Table 1 "Pyramid" rows, built as in SSH) it is SSH's merge: every level of
   ``test.pyramid_sizes`` is detected, mapped back to the original image and all boxes go through one NMS.

The proposals' NMS is ``contrib.box_nms`` on a GPU and the numpy greedy NMS (a CustomOp) on a CPU
(``nms_impl="auto"``; ``"box_nms"`` / ``"numpy"`` force either, :mod:`symbols.nms`).

Several devices (``ctx=[gpu(0), gpu(1)]``): :meth:`FaceDetector.detect_many` hands image ``i`` to device
``i % n`` and launches the devices' forwards before waiting on any of them, so they run concurrently.

Without MXNet's PSROIPooling (an ONNX runtime, say) the head is :func:`psroi_pool_numpy` on the exported
position-sensitive maps; :func:`detect_from_maps` runs steps 3-5 on the four maps of ``symbols.export``'s
``maps`` graph with the same blocks, imperatively on the CPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .boxes import clip_boxes, nms
from .checkpoint import CONFIG_FILE as RUN_CONFIG, FINAL_PARAMS as RUN_PARAMS
from .proposals import BoxCoding, ProposalParams

__all__ = ["FaceDetector", "StageTimes", "map_to_original", "head_detections", "merge_detections",
           "resolve_sizes", "prepare_image", "as_rgb", "psroi_pool_numpy", "detect_from_maps", "candidates",
           "apply_test_overrides", "RUN_CONFIG", "RUN_PARAMS", "run_files"]


# ------------------------------------------------------------------------------------------------ pure steps
def as_rgb(image, name: str = "image") -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (a grey ``(H, W)`` / ``(H, W, 1)`` image is repeated); bad input is a ValueError."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"{name}: expected an (H, W, 3) RGB image, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name}: empty image (shape {a.shape})")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return a


def resolve_sizes(cfg, sizes=None, pyramid: Optional[bool] = None) -> List[List[int]]:
    """The ``[S, L]`` sizes one detection runs at: ``sizes`` if given (one pair or a list; several = merged
    like a pyramid), else ``test.pyramid_sizes`` when ``pyramid`` (default ``test.pyramid``) else
    ``test.sizes``."""
    if sizes is None:
        use_pyr = cfg.test.pyramid if pyramid is None else bool(pyramid)
        sizes = cfg.test.pyramid_sizes if use_pyr else cfg.test.sizes
    sizes = [list(sizes)] if len(sizes) == 2 and all(np.isscalar(v) for v in sizes) else [list(s) for s in sizes]
    if not sizes:
        raise ValueError("no test size given")
    for s in sizes:
        if len(s) != 2 or any(int(v) != v or v < 0 for v in s):
            raise ValueError(f"a test size is [shorter, longer] with non-negative integers, got {s}")
    return [[int(s[0]), int(s[1])] for s in sizes]


def prepare_image(image_rgb: np.ndarray, size, norm) -> Tuple[np.ndarray, np.ndarray, Tuple[float, float]]:
    """Resize to the Table 2 size ``[S, L]`` and normalise: ``(x (3, h, w) float32, im_info (h, w, scale),
    (sx, sy))`` with the exact per-axis factors ``sx = w / W0``, ``sy = h / H0`` of the rounded output size."""
    from .datasets.loader import image_info, normalise_image
    from .transforms import resize_to_test_size
    img, _, (sx, sy) = resize_to_test_size(image_rgb, None, size)
    return normalise_image(img, norm), image_info(img, (sx, sy), np.float64), (float(sx), float(sy))


def map_to_original(boxes, scale_xy, original_hw) -> np.ndarray:
    """Boxes of the resized image -> original pixels: divided by the per-axis factors (sx, sy), clipped to
    ``[0, W0] x [0, H0]`` (``w / sx`` is ``W0`` up to one rounding)."""
    sx, sy = scale_xy
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / np.array([sx, sy, sx, sy])
    return clip_boxes(b, original_hw[0], original_hw[1]) if len(b) else b


def candidates(rows, scale_xy, original_hw) -> Tuple[np.ndarray, np.ndarray]:
    """Device rows (R, 5) ``score x1 y1 x2 y2`` of one image (dropped rows -1,
    :func:`symbols.postprocess.head_rows`) -> candidate ``(boxes in original pixels, scores)`` before NMS."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    rows = rows[rows[:, 0] >= 0]
    return map_to_original(rows[:, 1:], scale_xy, original_hw), rows[:, 0]


def head_detections(rois, cls_score, bbox_pred, resized_hw, scale_xy, original_hw, *, means, stds,
                    score_thresh: float) -> Tuple[np.ndarray, np.ndarray]:
    """R-FCN outputs of one image at one test size -> candidate detections in original pixels (before NMS).

    ``rois`` (R, 4) in the resized image; the device post-processing :func:`symbols.postprocess.head_rows` run
    with ``mx.nd`` on the CPU (float64): face score = softmax(cls_score)[:, 1], boxes decoded from the
    class-agnostic deltas with ``means`` / ``stds`` (``rcnn.bbox_*``), clipped to the resized image, kept when
    ``score > score_thresh`` (R-FCN's strict test) and not degenerate; then mapped back (:func:`map_to_original`).
    """
    import mxnet as mx

    from symbols.postprocess import head_rows
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    if len(rois) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    nd, R = mx.nd, len(rois)
    f64 = lambda a: nd.array(np.asarray(a, np.float64), dtype="float64")    # noqa: E731
    rows = head_rows(nd, f64(np.concatenate([np.zeros((R, 1)), rois], 1)), f64(np.zeros(R)),
                     f64(np.reshape(cls_score, (R, -1))), f64(np.reshape(bbox_pred, (R, 4))),
                     f64([[resized_hw[0], resized_hw[1], 1.0]]), post=R, means=means, stds=stds,
                     score_thresh=score_thresh)
    return candidates(rows.asnumpy(), scale_xy, original_hw)


def merge_detections(candidates: Sequence[Tuple[np.ndarray, np.ndarray]], nms_thresh: float,
                     max_per_image: int) -> Tuple[np.ndarray, np.ndarray]:
    """Union of per-size candidates (original pixels), one greedy NMS, at most ``max_per_image`` boxes, best
    first (ties: the earlier size, then the earlier box). One size = R-FCN's test NMS; several = the pyramid
    merge of SSH (all levels' boxes, one NMS)."""
    boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b, _ in candidates]
    scores = [np.asarray(s, dtype=np.float64).reshape(-1) for _, s in candidates]
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    if len(boxes) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    keep = nms(boxes, scores, nms_thresh, topk=int(max_per_image))
    return boxes[keep], scores[keep]


# ------------------------------------------------------------------------------------------------ numpy head
def psroi_pool_numpy(maps, rois, *, spatial_scale: float, k: int, output_dim: int) -> np.ndarray:
    """``contrib.PSROIPooling`` + average voting of the R-FCN head in numpy (what an ONNX graph leaves out).

    ``maps`` (k*k*output_dim, H, W) position-sensitive maps of one image; ``rois`` (R, 4) in the project's box
    convention (the head passes ``x2 - 1``, ``y2 - 1`` to the operator, which treats them as inclusive). Per
    bin (i, j) MXNet averages channel ``(c*k + i)*k + j`` over the cells ``floor(start + i*bin) ..
    ceil(start + (i+1)*bin)`` (clipped, empty bin = 0) where ``start = round(x1) * scale``, ``end = (round(x2 -
    1) + 1) * scale`` and the RoI is at least 0.1 cells wide; float32 as the operator. Returns (R, output_dim).
    """
    maps = np.asarray(maps, dtype=np.float32)
    C, H, W = maps.shape
    if C != k * k * output_dim:
        raise ValueError(f"{C} position-sensitive channels, expected k*k*output_dim = {k * k * output_dim}")
    r = np.asarray(rois, dtype=np.float32).reshape(-1, 4)
    if len(r) == 0:
        return np.zeros((0, output_dim), np.float32)
    f32 = np.float32
    rnd = lambda v: np.sign(v) * np.floor(np.abs(v) + f32(0.5))     # C round(): half away from zero
    s = f32(spatial_scale)
    x1, y1 = rnd(r[:, 0]) * s, rnd(r[:, 1]) * s
    x2, y2 = (rnd(r[:, 2] - f32(1)) + f32(1)) * s, (rnd(r[:, 3] - f32(1)) + f32(1)) * s
    bw = np.maximum(x2 - x1, f32(0.1)) / f32(k)
    bh = np.maximum(y2 - y1, f32(0.1)) / f32(k)
    g = np.arange(k, dtype=np.float32)
    hs = np.clip(np.floor(g[None] * bh[:, None] + y1[:, None]), 0, H).astype(np.int64)       # (R, k)
    he = np.clip(np.ceil((g[None] + 1) * bh[:, None] + y1[:, None]), 0, H).astype(np.int64)
    ws = np.clip(np.floor(g[None] * bw[:, None] + x1[:, None]), 0, W).astype(np.int64)
    we = np.clip(np.ceil((g[None] + 1) * bw[:, None] + x1[:, None]), 0, W).astype(np.int64)
    integral = np.zeros((C, H + 1, W + 1), np.float64)                                        # summed areas
    integral[:, 1:, 1:] = maps.astype(np.float64).cumsum(1).cumsum(2)
    ch = ((np.arange(output_dim)[:, None, None] * k + np.arange(k)[None, :, None]) * k
          + np.arange(k)[None, None, :])                                                     # (dim, k, k)
    R = len(r)
    c = np.broadcast_to(ch[None], (R, output_dim, k, k))
    i0, i1 = hs[:, None, :, None], he[:, None, :, None]
    j0, j1 = ws[:, None, None, :], we[:, None, None, :]
    total = integral[c, i1, j1] - integral[c, i0, j1] - integral[c, i1, j0] + integral[c, i0, j0]
    area = ((i1 - i0) * (j1 - j0)).astype(np.float64)
    pooled = np.where(area > 0, total / np.maximum(area, 1), 0.0)                              # (R, dim, k, k)
    return pooled.mean(axis=(2, 3)).astype(np.float32)


def detect_from_maps(cfg, rpn_cls, rpn_bbox, cls_maps, bbox_maps, im_info, scale_xy, original_hw,
                     nms_impl: str = "auto"):
    """Steps 3-5 of the module docstring on the outputs of the exported ``maps`` graph (batch 1): the proposal
    block with ``mx.nd`` on the CPU, the head in numpy (:func:`psroi_pool_numpy`), :func:`head_detections`:
    candidate ``(boxes, scores)`` in original pixels, before the NMS of :func:`merge_detections`. This is how an
    ONNX export of backbone + RPN + head maps is finished."""
    import mxnet as mx

    from symbols.proposal import ProposalBlock
    block = ProposalBlock(cfg.anchor_set(), ProposalParams.from_config(cfg, train=False), nms_impl, mx.cpu(),
                          mark_padding=True, dtype="float64")
    block.initialize(ctx=mx.cpu())
    rois, scores = block(mx.nd.array(rpn_cls), mx.nd.array(rpn_bbox), mx.nd.array(np.reshape(im_info, (1, -1))))
    rois = rois.asnumpy()[scores.asnumpy() >= 0, 1:]
    if len(rois) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    stride = cfg.anchor_set().stride
    k, nc = cfg.model.psroi_k, cfg.model.num_classes
    cls = psroi_pool_numpy(np.asarray(cls_maps)[0], rois, spatial_scale=1.0 / stride, k=k, output_dim=nc)
    box = psroi_pool_numpy(np.asarray(bbox_maps)[0], rois, spatial_scale=1.0 / stride, k=k, output_dim=4)
    coding = BoxCoding.from_config(cfg)
    return head_detections(rois, cls, box, im_info[:2], scale_xy, original_hw, means=coding.means,
                           stds=coding.stds, score_thresh=cfg.test.score_thresh)


# ------------------------------------------------------------------------------------------------ the detector
@dataclass
class StageTimes:
    """Seconds spent per stage over the detector's calls (the benchmark reads them). ``forward`` = network
    (backbone + RPN, and the head), ``proposals`` = the proposal block (anchor decode + top-N + NMS), ``post`` =
    head decode + score threshold (device) + mapping + the final / pyramid NMS (host).

    The device stages run asynchronously: by default ``forward`` holds everything until the one read-back per
    device (network, proposals and head decode) and ``proposals`` stays 0. With ``sync`` (the benchmark) the
    detector waits for each device stage before the next, so the three are separated (and no longer overlap
    between devices)."""
    preprocess: float = 0.0
    forward: float = 0.0
    proposals: float = 0.0
    post: float = 0.0
    images: int = 0
    runs: int = 0        # (image, size) pairs
    sync: bool = False   # wait after each device stage (timing only)

    def reset(self):
        self.preprocess = self.forward = self.proposals = self.post = 0.0
        self.images = self.runs = 0


def run_files(run_dir) -> Tuple[Path, Path]:
    """``(config.yaml, final.params)`` of a training run folder; a missing folder or file is a one-line
    FileNotFoundError naming it."""
    run = Path(run_dir)
    if run.is_file():
        raise ValueError(f"{run}: is a file, not a training run folder (config.yaml + final.params)")
    if not run.is_dir():
        raise FileNotFoundError(f"run folder not found: {run}")
    cfg, params = run / RUN_CONFIG, run / RUN_PARAMS
    if not cfg.is_file():
        raise FileNotFoundError(f"{run} is not a training run folder: no {RUN_CONFIG} "
                                "(python -m rfcn_face train --out RUN_DIR writes it)")
    if not params.is_file():
        raise FileNotFoundError(f"{run}: no {RUN_PARAMS} (the training has not finished; a checkpoint's "
                                "model.params can be given with FaceDetector(config, params_path))")
    return cfg, params


def _contexts(ctx) -> list:
    import mxnet as mx
    if ctx is None:
        return [mx.cpu(0)]
    if isinstance(ctx, (list, tuple)):
        if not ctx:
            raise ValueError("ctx: empty list of devices")
        return list(ctx)
    return [ctx]


class FaceDetector:
    """The detector of a trained run (see the module docstring).

    ``FaceDetector(config, params_path, ctx=None)``: ``config`` a :class:`rfcn_face.config.Config` with explicit
    pixel normalisation (a run's saved config) or the path of such a YAML; ``params_path`` the
    ``save_parameters`` file of :func:`symbols.rfcn.build_detector`; ``ctx`` an ``mx.Context`` or a list of them
    (default ``cpu(0)``). ``net=`` passes an already loaded :class:`symbols.rfcn.RFCN` instead of a file.
    ``nms_impl``: the proposals' NMS, ``auto`` (box_nms on a GPU, the numpy CustomOp on a CPU), ``box_nms`` or
    ``numpy`` (:mod:`symbols.nms`).
    """

    def __init__(self, config, params_path=None, ctx=None, *, net=None, hybridize: bool = True,
                 nms_impl: str = "auto"):
        from .config import load_config, normalisation_of
        if isinstance(config, (str, Path)):
            config = load_config(config)
        self.cfg = config
        self.norm = normalisation_of(config)
        self.contexts = _contexts(ctx)
        self.params_path = None if params_path is None else Path(params_path)
        if net is None:
            net = self._load_network()
        self.net = net
        self.output = self._output_block(nms_impl)
        if hybridize:
            net.hybridize()
            self.output.hybridize()
        self.timings = StageTimes()

    @classmethod
    def from_run(cls, run_dir, ctx=None, overrides: Sequence[str] = (), **kw) -> "FaceDetector":
        """The detector of a training run folder: its ``config.yaml`` (plus ``overrides``, ``"test.key=value"``
        strings, for test-time knobs only) and its ``final.params``."""
        from .config import load_config
        cfg_path, params = run_files(run_dir)
        cfg = load_config(cfg_path)
        if overrides:
            cfg = apply_test_overrides(cfg, overrides)
        return cls(cfg, params, ctx, **kw)

    def _load_network(self):
        from symbols.rfcn import build_detector
        if self.params_path is None:
            raise ValueError("FaceDetector needs params_path (or net=)")
        if not self.params_path.is_file():
            raise FileNotFoundError(f"detector parameters not found: {self.params_path}")
        net = build_detector(self.cfg)
        try:
            net.load_parameters(str(self.params_path), ctx=self.contexts)
        except Exception as e:   # MXNet raises AssertionError / MXNetError with pages of text
            from symbols.weights import mxnet_message
            raise ValueError(f"{self.params_path}: cannot load detector parameters for this config "
                             f"({cfg_summary(self.cfg)}): {mxnet_message(e)} (a truncated or foreign file?)") from None
        return net

    def _output_block(self, nms_impl: str):
        """Proposals + head + head decode on the device (:class:`symbols.postprocess.DetectionOutput`)."""
        from symbols.nms import resolve_nms_impl
        from symbols.postprocess import detection_block
        cfg, coding = self.cfg, BoxCoding.from_config(self.cfg)
        self.nms_impl = resolve_nms_impl(nms_impl, self.contexts)
        return detection_block(self.net, cfg.anchor_set(), ProposalParams.from_config(cfg, train=False), coding.means,
                               coding.stds, float(cfg.test.score_thresh), self.nms_impl, ctx=self.contexts)

    # ---- public API
    def sizes(self, sizes=None, pyramid: Optional[bool] = None) -> List[List[int]]:
        return resolve_sizes(self.cfg, sizes, pyramid)

    def detect(self, image_rgb, sizes=None, pyramid: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(boxes (K, 4) x1 y1 x2 y2 in original-image pixels, scores (K,))``, best first."""
        return self.detect_many([image_rgb], sizes, pyramid)[0]

    def detect_many(self, images, sizes=None, pyramid: Optional[bool] = None) -> List[Tuple[np.ndarray, np.ndarray]]:
        """:meth:`detect` of every image; image ``i`` runs on device ``i % len(ctx)``, the devices concurrently."""
        sizes = self.sizes(sizes, pyramid)
        images = [as_rgb(im, f"image {i}") for i, im in enumerate(images)]
        out: List[Tuple[np.ndarray, np.ndarray]] = []
        n = len(self.contexts)
        for start in range(0, len(images), n):
            chunk = images[start:start + n]
            cands = [[] for _ in chunk]
            for size in sizes:
                for j, c in enumerate(self._run_size(chunk, size)):
                    cands[j].append(c)
            t0 = time.perf_counter()
            for c in cands:
                out.append(merge_detections(c, self.cfg.test.nms_thresh, self.cfg.test.max_per_image))
            self.timings.post += time.perf_counter() - t0
            self.timings.images += len(chunk)
        return out

    # ---- one test size for up to one image per device
    def _run_size(self, chunk, size):
        import mxnet as mx
        tm = self.timings
        jobs = []
        for img, ctx in zip(chunk, self.contexts):
            t0 = time.perf_counter()
            x, im_info, sxy = prepare_image(img, size, self.norm)
            t1 = time.perf_counter()
            data, info = mx.nd.array(x[None], ctx=ctx), mx.nd.array(im_info[None], ctx=ctx)
            tm.preprocess += t1 - t0
            if tm.sync:
                rows = self._device_rows_timed(data, info)
            else:
                rows = self._device_rows(data, info)
                tm.forward += time.perf_counter() - t1
            jobs.append((img.shape[:2], sxy, rows))                 # asynchronous: devices run concurrently
        res = []
        for hw0, sxy, rows in jobs:
            t0 = time.perf_counter()
            r = rows.asnumpy()                                      # the one read-back of this device
            t1 = time.perf_counter()
            res.append(candidates(r, sxy, hw0))
            tm.forward += t1 - t0
            tm.post += time.perf_counter() - t1
        tm.runs += len(chunk)
        return res

    def _device_rows(self, data, info):
        rpn_cls, rpn_bbox, feat = self.net(data)
        return self.output(rpn_cls, rpn_bbox, feat, info)

    def _device_rows_timed(self, data, info):
        """:meth:`_device_rows` stage by stage, waiting for each (StageTimes.sync)."""
        tm, out = self.timings, self.output
        t0 = time.perf_counter()
        rpn_cls, rpn_bbox, feat = self.net(data)
        feat.wait_to_read()
        t1 = time.perf_counter()
        rois, scores = out.proposal(rpn_cls, rpn_bbox, info)
        scores.wait_to_read()
        t2 = time.perf_counter()
        cls, box = out.head(feat, rois.astype("float32"))
        box.wait_to_read()
        t3 = time.perf_counter()
        rows = out.output(rois, scores, cls, box, info)
        rows.wait_to_read()
        t4 = time.perf_counter()
        tm.forward += (t1 - t0) + (t3 - t2)
        tm.proposals += t2 - t1
        tm.post += t4 - t3
        return rows


def cfg_summary(cfg) -> str:
    return (f"{cfg.model.arch}, ResNet-{cfg.model.depth}, {cfg.anchor_set().num_per_location} anchors per "
            "location")


TEST_TIME_SECTIONS = ("test", "data")


def apply_test_overrides(cfg, overrides: Sequence[str]):
    """``"test.key=value"`` / ``"data.key=value"`` overrides on top of a run's config (the network and its
    training knobs are the run's: any other key is an error)."""
    from .config import config_from_dict, parse_override
    d = cfg.to_dict()
    for text in overrides:
        key, value = parse_override(text)
        section = key.split(".")[0]
        if section not in TEST_TIME_SECTIONS or "." not in key:
            raise ValueError(f"--set {text}: only test.* and data.* knobs can change at test time (the network "
                             "and its anchors are the run's)")
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return config_from_dict(d, "--set " + " ".join(overrides))
