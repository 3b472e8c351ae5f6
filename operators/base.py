"""Shared plumbing of the CustomOps: the numpy-forward base class, string-parameter parsing, seed streams.

Every operator of this package is a :class:`NumpyOp` whose ``compute`` calls a numpy function of
:mod:`rfcn_face.targets`; MXNet hands CustomOpProp parameters over as strings, parsed here.
"""
from __future__ import annotations

import mxnet as mx
import numpy as np

from rfcn_face.anchors import AnchorSet, format_shift_spec
from rfcn_face.assigners import AssignParams

__all__ = ["no_backward_dependency", "NumpyOp", "parse_floats", "csv_floats", "seed_stream", "reset_seed_streams",
           "anchor_set_kwargs", "anchor_set_from_kwargs", "assign_params_from_kwargs", "string_kwargs",
           "assign_kwargs", "assigner_from_kwargs"]


def no_backward_dependency(out_grad, in_data, out_data) -> list:
    """Backward of the target operators only writes zeros, so it depends on nothing.

    Returning ``[]`` also avoids an MXNet 1.9.1 bug: ``mxnet.operator`` keeps the dependencies of the *last*
    declared CustomOp in one process-wide set (``_registry.result_deps``) and uses it to pick the storage type
    of every CustomOp's backward arrays; with the default dependencies (inputs + outputs) two different
    CustomOps in one graph make MXNet read an absent output gradient as storage type -1
    ("Exception: unknown storage type: -1" in CustomOp.backward).
    """
    return []


class NumpyOp(mx.operator.CustomOp):
    """A target operator: forward writes the arrays of :meth:`compute` (a numpy function), backward zeros."""

    def __init__(self, prop):
        super().__init__()
        self.p = prop

    def compute(self, in_data) -> tuple:
        raise NotImplementedError

    def forward(self, is_train, req, in_data, out_data, aux):
        for i, o in enumerate(self.compute(in_data)):
            self.assign(out_data[i], req[i], mx.nd.array(np.asarray(o).reshape(out_data[i].shape),
                                                         dtype=out_data[i].dtype))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        for i, g in enumerate(in_grad):
            self.assign(g, req[i], 0)


def parse_floats(text) -> tuple:
    """``"16,32,64"`` / ``"(0.1, 0.2)"`` / a sequence -> tuple of floats."""
    if isinstance(text, (list, tuple)):
        return tuple(float(v) for v in text)
    text = str(text).strip().strip("()[]")
    return tuple(float(v) for v in text.replace(" ", ",").split(",") if v)


def csv_floats(values) -> str:
    """A sequence of numbers as an operator parameter string (inverse of :func:`parse_floats`)."""
    return ",".join(repr(float(v)) for v in values)


_STREAMS: dict[int, np.random.Generator] = {}


def seed_stream(seed: int) -> np.random.Generator:
    """The process-wide Generator of ``seed``. MXNet builds a new CustomOp for every call (imperative and
    hybridized alike), so a Generator held by the operator would restart at every iteration and draw the same
    minibatch pattern; the stream lives here instead and advances from call to call (reproducible per run)."""
    if seed not in _STREAMS:
        _STREAMS[seed] = np.random.default_rng(seed)
    return _STREAMS[seed]


def reset_seed_streams():
    """Restart every seed's stream (tests; or to replay a run)."""
    _STREAMS.clear()


def anchor_set_kwargs(a: AnchorSet) -> dict:
    """The operator parameters (strings) that describe an anchor set; :func:`anchor_set_from_kwargs` inverts it."""
    return dict(stride=str(a.stride), scales=csv_floats(a.scales), ratios=csv_floats(a.ratios),
                shifts=format_shift_spec(a.shifts))


def anchor_set_from_kwargs(stride=None, scales=None, ratios=None, shifts=None) -> AnchorSet:
    """The AnchorSet of operator parameters; a parameter left out (None) takes the :class:`AnchorSet` default
    (the paper's baseline anchors, Sec. 5.1) and the stride 16 of the baseline RPN."""
    kw = {} if scales is None else {"scales": parse_floats(scales)}
    if ratios is not None:
        kw["ratios"] = parse_floats(ratios)
    return AnchorSet(stride=16 if stride is None else int(stride), shifts="" if shifts is None else str(shifts),
                     **kw)


def assign_params_from_kwargs(pos_iou, neg_iou, allowed_border, ignore_iof) -> AssignParams:
    """The shared thresholds (:class:`rfcn_face.assigners.AssignParams`) of operator parameters (strings, as
    :func:`assign_kwargs` writes them)."""
    return AssignParams(pos_iou=float(pos_iou), neg_iou=float(neg_iou), allowed_border=int(float(allowed_border)),
                        ignore_iof=float(ignore_iof))


def string_kwargs(params) -> dict:
    """A parameter dataclass of rfcn_face (``ProposalParams``, ``RPNSampling``, ...) as operator parameters:
    every field a string (sequences as comma-separated numbers)."""
    from dataclasses import asdict
    return {k: csv_floats(v) if isinstance(v, (list, tuple)) else str(v) for k, v in asdict(params).items()}


def assign_kwargs(cfg) -> dict:
    """The anchor set, the strategy (``strategy`` = ``rpn.assign.type``, then its settings by name), the shared
    thresholds (:meth:`rfcn_face.assigners.AssignParams.from_config`) and the RPN minibatch
    (:meth:`rfcn_face.sampling.RPNSampling.from_config`) of a config, as operator parameters."""
    from rfcn_face.sampling import RPNSampling
    spec = dict(cfg.rpn.assign)
    strategy = spec.pop("type")
    return dict(**anchor_set_kwargs(cfg.anchor_set()), **string_kwargs(AssignParams.from_config(cfg)),
                **string_kwargs(RPNSampling.from_config(cfg)), seed=str(cfg.train.seed), strategy=strategy,
                **{k: str(v) for k, v in spec.items()})


def assigner_from_kwargs(strategy, settings: dict, params: AssignParams, batch_size, fg_fraction, cls_loss="softmax",
                         bbox_means="0,0,0,0", bbox_stds="1,1,1,1"):
    """The strategy ``strategy`` of the registry (:data:`rfcn_face.assigners.ASSIGNERS`) from operator parameters:
    its settings are the remaining keyword parameters (strings read as YAML scalars, checked by the strategy)."""
    from rfcn_face.assigners import assigner_from_spec
    from rfcn_face.sampling import RPNSampling
    return assigner_from_spec({"type": str(strategy), **settings}, params,
                              RPNSampling(int(batch_size), float(fg_fraction)), str(cls_loss),
                              parse_floats(bbox_means), parse_floats(bbox_stds), source="")
