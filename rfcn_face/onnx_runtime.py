"""Running an exported ``.onnx`` detector inside this project's environment.

onnxruntime needs numpy >= 1.24 and cannot share MXNet 1.9.1's environment, so here a model runs in
``onnx.reference.ReferenceEvaluator`` (numpy) — unless onnxruntime *is* importable, then it is used. The
reference ``Conv`` walks every output pixel in Python (34 s for one 64-channel 3x3 conv at 32x32 here) and its
``ConvTranspose`` has no groups (BU / BUS's grouped deconvolution, Fig. 5), so :func:`session` registers two
vectorised kernels in their place (and a ``Gather`` without onnx 1.14.1's crash on non-contiguous indices): one ``tensordot`` per kernel tap, the textbook definitions of the ONNX spec
(tested against MXNet's ``Convolution`` / ``Deconvolution`` in tests/test_onnx_export.py).
"""
from __future__ import annotations

import numpy as np

__all__ = ["conv2d", "conv_transpose2d", "session", "OnnxSession"]


def _pairs(v, default, n=2):
    return list(v) if v is not None and len(v) else [default] * n


def conv2d(x, w, b=None, *, pads=None, strides=None, dilations=None, group=1):
    """ONNX ``Conv`` (NCHW, 2-d): ``x`` (N, C, H, W), ``w`` (M, C/group, kh, kw), ``pads`` [top, left, bottom,
    right]; float accumulation in float32 like the runtimes."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    pt, pl, pb, pr = _pairs(pads, 0, 4)
    sh, sw = _pairs(strides, 1)
    dh, dw = _pairs(dilations, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    g, mg = int(group), m // int(group)
    out = np.zeros((n, g, mg, ho, wo), np.float32)
    xg = xp.reshape(n, g, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(g, mg, cg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            tap = xg[:, :, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            out += np.einsum("gmc,ngchw->ngmhw", wg[:, :, :, i, j], tap, optimize=True)
    out = out.reshape(n, m, ho, wo)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out.astype(x.dtype)


def conv_transpose2d(x, w, b=None, *, pads=None, strides=None, dilations=None, group=1, output_padding=None):
    """ONNX ``ConvTranspose`` (NCHW, 2-d, explicit pads): ``w`` (C, M/group, kh, kw); output size
    ``s*(H-1) + op + d*(k-1) + 1 - pad_begin - pad_end``."""
    n, c, h, wd = x.shape
    _, mg, kh, kw = w.shape
    g = int(group)
    pt, pl, pb, pr = _pairs(pads, 0, 4)
    sh, sw = _pairs(strides, 1)
    dh, dw = _pairs(dilations, 1)
    oh, ow = _pairs(output_padding, 0)
    fh, fw = sh * (h - 1) + oh + dh * (kh - 1) + 1, sw * (wd - 1) + ow + dw * (kw - 1) + 1
    full = np.zeros((n, g, mg, fh, fw), np.float32)
    xg = x.reshape(n, g, c // g, h, wd)
    wg = w.reshape(g, c // g, mg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            full[:, :, :, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (wd - 1) + 1:sw] += \
                np.einsum("gcm,ngchw->ngmhw", wg[:, :, :, i, j], xg, optimize=True)
    out = full.reshape(n, g * mg, fh, fw)[:, :, pt:fh - pb, pl:fw - pr]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out, dtype=x.dtype)


def _fast_ops():
    from onnx.reference.op_run import OpRun

    class Conv(OpRun):
        op_domain = ""

        def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None, kernel_shape=None, pads=None,
                 strides=None):
            if auto_pad not in (None, "NOTSET", b"NOTSET") or X.ndim != 4:
                raise ValueError("Conv: only explicit pads on NCHW inputs are supported here")
            return (conv2d(X, W, B, pads=pads, strides=strides, dilations=dilations, group=group or 1),)

    class ConvTranspose(OpRun):
        op_domain = ""

        def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None, kernel_shape=None,
                 output_padding=None, output_shape=None, pads=None, strides=None):
            if output_shape is not None or auto_pad not in (None, "NOTSET", b"NOTSET") or X.ndim != 4:
                raise ValueError("ConvTranspose: only explicit pads on NCHW inputs are supported here")
            return (conv_transpose2d(X, W, B, pads=pads, strides=strides, dilations=dilations, group=group or 1,
                                     output_padding=output_padding),)

    class Gather(OpRun):
        """onnx 1.14.1's reference Gather calls ``ndarray.ascontiguousarray`` (no such method) on non-contiguous
        indices and returns shape (0,) for empty ones."""
        op_domain = ""

        def _run(self, x, indices, axis=None):
            return (np.take(x, np.ascontiguousarray(indices, dtype=np.int64), axis=axis or 0),)

    return [Conv, ConvTranspose, Gather]


class OnnxSession:
    """``run(feeds) -> list of outputs`` of an ONNX model, with onnxruntime when importable (``engine`` says
    which)."""

    def __init__(self, model, prefer_onnxruntime: bool = True):
        import onnx
        self.model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        self.engine, self._ort = "onnx.reference", None
        if prefer_onnxruntime:
            try:
                import onnxruntime as ort
                self._ort = ort.InferenceSession(self.model.SerializeToString(), providers=["CPUExecutionProvider"])
                self.engine = "onnxruntime"
            except ImportError:
                pass
        if self._ort is None:
            from onnx.reference import ReferenceEvaluator
            self._ref = ReferenceEvaluator(self.model, new_ops=_fast_ops())

    def run(self, feeds: dict) -> list:
        if self._ort is not None:
            return self._ort.run(None, feeds)
        return self._ref.run(None, feeds)


def session(model, prefer_onnxruntime: bool = True) -> OnnxSession:
    """An :class:`OnnxSession` of ``model`` (a path or a ``ModelProto``)."""
    return OnnxSession(model, prefer_onnxruntime)
