"""Detector backends: what ``test`` / ``detect`` run, whatever holds the model (issue 24 item 3).

One interface — ``cfg``, ``norm``, ``params_path``, ``contexts``, ``sizes(sizes, pyramid)``, ``detect_many(images,
sizes) -> [(boxes in original pixels, scores)]`` — that :class:`rfcn_face.detector.FaceDetector` already has and
:mod:`rfcn_face.inference` relies on. :data:`BACKENDS` registers one class per kind of model:

* ``run`` — a training run folder (``config.yaml`` + ``final.params``): :class:`FaceDetector`;
* ``mxnet`` — an MXNet export ``PREFIX`` (``PREFIX-symbol.json``, ``PREFIX-0000.params``, ``PREFIX-detector.json``
  of ``export --graph detector``): the graph in a ``gluon.SymbolBlock``;
* ``onnx`` — a ``FILE.onnx`` of ``export --onnx`` (:mod:`rfcn_face.onnx_export`): onnxruntime when importable,
  else ``onnx.reference`` (:mod:`rfcn_face.onnx_runtime`).

:func:`load_detector` asks each registered class whether it ``claims`` the path (no chain of names). The exported
backends read the run's config from the export's metadata (written by :func:`symbols.export.export_run`), so the
cache fingerprint, the test sizes and the normalisation are the run's. Their test knobs are baked into the graph:
``--set`` and ``--nms-impl`` apply to ``--run`` only. Per test size the graph already ends in an NMS; several
sizes (``--pyramid``) are merged by one more NMS over the per-size survivors (FaceDetector merges the
candidates before any NMS, so pyramid results can differ slightly).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from .detector import FaceDetector, candidates, merge_detections, prepare_image, resolve_sizes
from .plugins import Registry

__all__ = ["BACKENDS", "load_detector", "ExportedDetector", "MXNetExport", "OnnxModel", "RunFolder"]

BACKENDS = Registry("detector backend")


@BACKENDS.register("run")
class RunFolder:
    """A training run folder: the :class:`FaceDetector` itself."""

    @staticmethod
    def claims(path: Path) -> bool:
        return path.is_dir()

    @staticmethod
    def load(path, ctx=None, overrides: Sequence[str] = (), nms_impl: str = "auto"):
        return FaceDetector.from_run(path, ctx=ctx, overrides=tuple(overrides), nms_impl=nms_impl)


class ExportedDetector:
    """The shared half of the exported backends: config from the export's metadata, preprocessing
    (:func:`rfcn_face.detector.prepare_image`), per-size NMS survivors merged (:func:`merge_detections`).
    Subclasses implement ``_detect_one(x, im_info, sxy, original_hw) -> (boxes, scores)`` in original pixels."""

    def __init__(self, meta: dict, params_path, source: str):
        from .config import config_from_dict, normalisation_of
        if "config" not in meta:
            raise ValueError(f"{source}: the export holds no run config (written before issue 24); export the run "
                             "again with python -m rfcn_face export")
        self.cfg = config_from_dict(meta["config"], source)
        self.norm = normalisation_of(self.cfg)
        self.params_path = Path(params_path)
        self.contexts = [None]

    @classmethod
    def load(cls, path, ctx=None, overrides: Sequence[str] = (), nms_impl: str = "auto"):
        if overrides:
            raise ValueError("--set applies to --run only: an exported model has its test knobs baked in")
        if nms_impl != "auto":
            raise ValueError("--nms-impl applies to --run only: an exported model has its NMS baked in")
        return cls(path, ctx)

    def sizes(self, sizes=None, pyramid=None) -> List[List[int]]:
        return resolve_sizes(self.cfg, sizes, pyramid)

    def detect(self, image_rgb, sizes=None, pyramid=None):
        return self.detect_many([image_rgb], sizes, pyramid)[0]

    def detect_many(self, images, sizes=None, pyramid=None) -> List[Tuple[np.ndarray, np.ndarray]]:
        from .detector import as_rgb
        sizes = self.sizes(sizes, pyramid)
        out = []
        for i, im in enumerate(images):
            img = as_rgb(im, f"image {i}")
            cands = [self._detect_one(*prepare_image(img, s, self.norm), img.shape[:2]) for s in sizes]
            out.append(merge_detections(cands, self.cfg.test.nms_thresh, self.cfg.test.max_per_image))
        return out


@BACKENDS.register("mxnet")
class MXNetExport(ExportedDetector):
    """``PREFIX-symbol.json`` + ``PREFIX-0000.params`` + ``PREFIX-detector.json`` (graph ``detector``)."""

    @staticmethod
    def claims(path: Path) -> bool:
        return Path(f"{path}-symbol.json").is_file()

    def __init__(self, prefix, ctx=None):
        import mxnet as mx

        from symbols.export import import_detector, read_detector_meta
        meta = read_detector_meta(prefix)
        if meta.get("graph") != "detector":
            raise ValueError(f"{prefix}: exported graph {meta.get('graph')!r}; --model needs the 'detector' graph "
                             "(export --graph detector, the default)")
        super().__init__(meta, f"{prefix}-0000.params", f"{prefix}-detector.json")
        if meta.get("settings", {}).get("nms_impl") == "numpy":
            import operators.nms  # noqa: F401  (the graph's rfcn_nms CustomOp)
        ctx = ctx[0] if isinstance(ctx, (list, tuple)) and ctx else (ctx or mx.cpu())
        self.contexts = [ctx]
        self.block = import_detector(prefix, "detector", ctx=ctx)

    def _detect_one(self, x, im_info, sxy, original_hw):
        import mxnet as mx
        ctx = self.contexts[0]
        rows = self.block(mx.nd.array(x[None], ctx=ctx), mx.nd.array(im_info[None], ctx=ctx)).asnumpy()
        return candidates(rows, sxy, original_hw)


@BACKENDS.register("onnx")
class OnnxModel(ExportedDetector):
    """A ``.onnx`` whole detector of :func:`rfcn_face.onnx_export.export_onnx_detector`."""

    @staticmethod
    def claims(path: Path) -> bool:
        return path.suffix.lower() == ".onnx"

    def __init__(self, path, ctx=None):
        from .onnx_export import read_onnx_meta
        from .onnx_runtime import session
        super().__init__(read_onnx_meta(path), path, str(path))
        self.session = session(path)

    def _detect_one(self, x, im_info, sxy, original_hw):
        boxes, scores = self.session.run({"data": x[None].astype(np.float32),
                                          "im_info": np.asarray(im_info, np.float32)[None],
                                          "orig_hw": np.asarray([original_hw], np.float32)})
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1)


def load_detector(run=None, model=None, ctx=None, overrides: Sequence[str] = (), nms_impl: str = "auto"):
    """The detector of ``--run RUN_DIR`` or ``--model PREFIX|FILE.onnx`` (exactly one), through :data:`BACKENDS`."""
    if (run is None) == (model is None):
        raise ValueError("give --run RUN_DIR or --model PREFIX|FILE.onnx (exactly one)")
    if run is not None:
        return BACKENDS.lookup("run").load(run, ctx, overrides, nms_impl)
    path = Path(model)
    for name, cls in BACKENDS.items():
        if name != "run" and cls.claims(path):
            return cls.load(path, ctx, overrides, nms_impl)
    if path.is_dir():
        raise ValueError(f"--model {model} is a folder; a training run is given with --run")
    raise FileNotFoundError(f"--model {model}: neither {model}-symbol.json (an MXNet export prefix) nor a .onnx file")
