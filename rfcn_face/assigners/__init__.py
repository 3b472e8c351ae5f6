"""RPN anchor-assignment strategies: one interface (:class:`Assigner`), one module per strategy, one registry.

========================  =======================================================  ===================
``rpn.assign.type``       strategy (module)                                        settings
========================  =======================================================  ===================
``max_iou``               Sec. 3.1 / 5.1 matching (:mod:`.max_iou`)                 —
``hc``                    HC(N), Sec. 4.4 (:mod:`.hc`)                              ``top_n``
``hambox``                HAMBox OAM + RAL (:mod:`.hambox`), reads predictions      ``k``, ``t``,
                                                                                    ``pos_iou``, ``warmup``
``cleanliness``           noisy-anchor cleanliness (:mod:`.cleanliness`), reads     ``top_n``, ``alpha``,
                          predictions                                               ``gamma``, ``clamp``,
                                                                                    ``negatives``
========================  =======================================================  ===================

The loss form (``rpn.cls_loss``: the sampled softmax or the dense focal loss) is shared by every strategy; the
normalisation of both forms is written once, in :mod:`.base`. The config names a strategy and its settings
together (``rpn: {assign: {type: hc, top_n: 5}}``); modules listed under the config's top-level ``imports`` are
imported before it is validated, so user code can add strategies::

    from rfcn_face.assigners import MaxIoUAssigner, register

    @register("my_rule")
    class MyRule(MaxIoUAssigner):          # a subclass under a new name is a working strategy
        def assign(self, anchors, boxes, ignore, image_hw):
            ...

:func:`build_assigner` makes the strategy of a config; the CustomOps of ``operators/`` look strategies up by name
here too (:func:`assigner_from_spec`). ``docs/extending.md`` walks through adding one.
"""
from __future__ import annotations

from .base import (CLS_LOSSES, AnchorPlan, AnchorTargets, Assigner, Mined, NoSettings, setting,
                   settings_from_mapping)
from .core import AnchorGrid, AssignParams, AssignResult, hc_available
from .registry import ASSIGNERS, register
from .max_iou import MaxIoUAssigner, assign_max_iou                       # noqa: E402  (registers max_iou)
from .hc import HCAssigner, assign_hard_face_compensation                 # noqa: E402  (registers hc)
from .hambox import HAMBoxAssigner                                        # noqa: E402  (registers hambox)
from .cleanliness import CleanlinessAssigner                              # noqa: E402  (registers cleanliness)

__all__ = ["ASSIGNERS", "register", "Assigner", "AnchorPlan", "AnchorTargets", "Mined", "NoSettings", "setting",
           "settings_from_mapping", "CLS_LOSSES", "AnchorGrid", "AssignParams", "AssignResult", "hc_available",
           "MaxIoUAssigner", "HCAssigner", "HAMBoxAssigner", "CleanlinessAssigner", "assign_max_iou",
           "assign_hard_face_compensation", "build_assigner", "assigner_from_spec", "split_spec"]


def split_spec(spec, source: str = "rpn.assign") -> tuple:
    """``{type: NAME, **settings}`` -> ``(strategy class, settings object)``, checked (ValueError naming ``source``)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"{source} must be a mapping with a 'type' (one of {', '.join(sorted(ASSIGNERS))}) and "
                         f"that strategy's settings, e.g. {{type: hc, top_n: 5}}; got {spec!r}")
    rest = dict(spec)
    name = rest.pop("type")
    cls = ASSIGNERS.lookup(name, f"{source}.type" if source else "strategy")
    return cls, settings_from_mapping(cls.Settings, rest, source, name)


def assigner_from_spec(spec, params: AssignParams = AssignParams(), sampling=None, cls_loss: str = "softmax",
                       means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0), source: str = "rpn.assign") -> Assigner:
    """The strategy ``spec`` (``{type: NAME, **settings}``) with the shared thresholds, minibatch and loss."""
    from ..sampling import RPNSampling
    cls, settings = split_spec(spec, source)
    return cls(settings, params, sampling or RPNSampling(), cls_loss, means, stds)


def build_assigner(cfg) -> Assigner:
    """The strategy of a config: ``rpn.assign`` with ``rpn.pos_iou`` / ``neg_iou`` / ``allowed_border`` /
    ``ignore_iof``, the RPN minibatch (``rpn.batch_size`` / ``fg_fraction``) and ``rpn.cls_loss``."""
    from ..sampling import RPNSampling
    return assigner_from_spec(cfg.rpn.assign, AssignParams.from_config(cfg), RPNSampling.from_config(cfg),
                              cfg.rpn.cls_loss)
