"""The interface every RPN anchor-assignment strategy implements, and what all of them share.

A strategy is a subclass of :class:`Assigner` registered by name (:data:`rfcn_face.assigners.ASSIGNERS`). It has
its own settings dataclass (``Settings``; the config writes them beside the name,
``rpn: {assign: {type: hc, top_n: 5}}``) and two parts:

* **prediction-free** — :meth:`Assigner.assign` (the strategy's matching, an
  :class:`~rfcn_face.assigners.core.AssignResult`), run by :meth:`Assigner.prepare` in the loader;
* **prediction-aware** (optional, ``needs_predictions = True``) — :meth:`Assigner.mine`, run by
  :meth:`Assigner.finish` after the forward pass with this iteration's decoded RPN boxes and face probabilities
  (and the iteration number, for a warm-up).

Both end in the one shared tail (:meth:`Assigner._tail`): the RPN minibatch, the loss weights and the box targets.

The RPN loss of every strategy (one normalisation, written here once)
---------------------------------------------------------------------
With ``rho_a`` the strategy's per-anchor factor (cleanliness: r of Eq. 4 on A_pos; 1 elsewhere), ``psi`` the
always-kept anchors (HAMBox's compensated anchors, target 1, factor ``F_a`` = their regressed IoU) and ``B`` =
``rpn.batch_size``::

    L_cls = sum_{a in S} rho_a l(p_a, t_a) / Z  +  sum_{a in psi} F_a l(p_a, 1) / Z_psi        (w_a = rho_a / Z)
    L_box = sum_{a in P} rho'_a smoothL1_3(delta_a - target_a) / Z_box       (v_a = rho'_a B / Z_box, the loss / B)

``rho'_a = rho_a`` (1 on psi: RAL weighs the classification term only). ``rpn.cls_loss`` picks the form:

* ``softmax`` — the R-FCN RPN, sampled (issue form (b)): ``S`` = the :func:`rfcn_face.sampling.subsample_labels`
  minibatch (``rpn.fg_fraction`` of ``B``, the image's keyed Generator) of the labels without ``psi``;
  ``Z = Z_psi = |S| + |psi|`` (one mean over every anchor in the loss: a compensated anchor weighs ``F_a`` sampled
  anchors); ``P`` = the positives of ``S`` plus ``psi``; ``Z_box = B``.
* ``focal`` — RetinaNet's dense form, as HAMBox (its RAL equation) and the noisy-anchor paper (Eq. 5-6) train
  (issue form (a)): ``S`` = every labelled anchor not in ``psi`` (no sampling); ``Z = max(N_pos, B)``, ``N_pos``
  the positives (``psi`` included); ``Z_psi = max(N_com, B)``, ``N_com = |psi|``; ``P`` = every positive;
  ``Z_box = max(N_pos, B)``. The floor B (one image per iteration here; ``B = 1`` gives the papers' per-image
  ``1 / N_pos`` and ``F_a / N_com``): docs/training.md, "Why the floor B".
  The RPN face logit starts at the prior ``rpn.focal_prior`` (``symbols.rfcn``), so the many negatives do not
  swamp the first iterations.

``l`` is :func:`symbols.detection_losses.rpn_classification_loss` (``softmax``: cross-entropy against
``[1 - t, t]``; ``focal``: Eq. 1 of the noisy-anchor paper with RetinaNet's alpha, gamma). For a strategy with
``reweights = False`` (max-IoU, HC(N): hard labels, ``rho = 1``, no ``psi``) and the softmax loss the weights are
exactly the mean over the sampled anchors, and :attr:`AnchorTargets.mean_over_labels` says so: the training loss
is then R-FCN's ``SoftmaxOutput(normalization='valid')`` form, bit for bit what it always was.

Randomness: the image's RPN Generator is drawn once, by whichever part runs the tail — :meth:`prepare` for a
strategy that needs no prediction (the targets are complete in the loader), :meth:`finish` otherwise; the
``focal`` form draws nothing.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..boxes import encode
from ..sampling import RPNSampling, subsample_labels
from .core import AssignParams, AssignResult, anchor_boxes_of, inside_anchors, valid_faces

__all__ = ["Assigner", "AnchorPlan", "AnchorTargets", "LossTargets", "Mined", "NoSettings", "setting",
           "settings_from_mapping", "CLS_LOSSES"]

CLS_LOSSES = ("softmax", "focal")     # rpn.cls_loss


# ------------------------------------------------------------------------------------------------ settings
def setting(default, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False, choices=None):
    """A field of a strategy's settings dataclass with its valid range (checked by :func:`settings_from_mapping`)."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
                                            "choices": choices})


@dataclass(frozen=True)
class NoSettings:
    """The settings of a strategy that has none."""


def _check_setting(f: dataclasses.Field, value, where: str):
    default = f.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value!r}")
        value = float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {value!r}")
    m = f.metadata
    if m.get("choices") is not None and value not in m["choices"]:
        raise ValueError(f"{where} must be one of {', '.join(map(str, m['choices']))}, got {value!r}")
    lo, hi = m.get("lo"), m.get("hi")
    if (lo is not None and (value < lo or (m["lo_open"] and value == lo))) or \
            (hi is not None and (value > hi or (m["hi_open"] and value == hi))):
        raise ValueError(f"{where} must be in {'(' if m['lo_open'] else '['}{'-inf' if lo is None else lo}, "
                         f"{'inf' if hi is None else hi}{')' if m['hi_open'] else ']'}, got {value!r}")
    return value


def settings_from_mapping(settings_cls, mapping: dict, prefix: str = "rpn.assign", strategy: str = ""):
    """``settings_cls(**mapping)`` with every value type- and range-checked; an unknown key is an error that lists
    the strategy's settings. Values may be strings (CustomOp parameters): they are read as YAML scalars."""
    known = {f.name: f for f in dataclasses.fields(settings_cls)}
    values = {}
    for key, value in (mapping or {}).items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{where} is not a setting of strategy {strategy or settings_cls.__name__!r} "
                             f"(its settings: {names})")
        if isinstance(value, str) and not isinstance(known[key].default, str):
            import yaml
            value = yaml.safe_load(value)
        values[key] = _check_setting(known[key], value, where)
    return settings_cls(**values)


# ------------------------------------------------------------------------------------------------ results
@dataclass
class AnchorTargets(AssignResult):
    """The RPN targets of one image, for every strategy. :class:`AssignResult` fields (``labels`` = the
    assignment before sampling, always-kept anchors included; ``matched`` = positives per face before sampling,
    HAMBox Fig. 1(a)) plus the loss inputs and the strategy's diagnostics."""
    loss_labels: np.ndarray     # (N,) int32: 1 / 0 for the anchors in the classification loss (w > 0), else -1
    cls_target: np.ndarray      # (N,) float t_a in [0, 1]
    cls_weight: np.ndarray      # (N,) float w_a, normalisation folded in: L_cls = sum w_a l_a
    bbox_target: np.ndarray     # (N, 4) encoded faces
    bbox_weight: np.ndarray     # (N, 4) v_a: L_box = sum v smoothL1 / rpn.batch_size
    compensated: np.ndarray     # (N,) bool: always-kept anchors (HAMBox OAM positives)
    protected: np.ndarray       # (N,) bool: HAMBox RAL negatives kept out of the background (-1)
    quality: np.ndarray         # (N,) float: regressed IoU (F_a for compensated anchors, loc_a on A_pos)
    clean: np.ndarray           # (N,) float: cleanliness c (Eq. 3), 0 outside A_pos
    reweight: np.ndarray        # (N,) float: r (Eq. 4, mean 1 over A_pos), 1 outside A_pos
    mean_over_labels: bool = False   # w = 1/|S| on the sampled set and t = label: R-FCN's mean CE applies

    def for_loss(self) -> "LossTargets":
        """What the training loss reads, in the device's float32 (the cast the upload would do anyway)."""
        f32 = np.float32
        soft = None if self.mean_over_labels else (self.cls_target.astype(f32), self.cls_weight.astype(f32))
        return LossTargets(self.loss_labels.astype(f32), self.bbox_target.astype(f32), self.bbox_weight.astype(f32),
                           self.matched.copy(), soft)


@dataclass
class LossTargets:
    """The part of :class:`AnchorTargets` the training loss reads (what the loader hands to the device):
    ``label`` (N,) 1 / 0 / -1, ``bbox_target`` / ``bbox_weight`` (N, 4), ``matched`` (F,) positives per face, and
    ``soft`` = ``(cls_target, cls_weight)`` when the classification term is the weighted sum (None: R-FCN's mean
    over the labelled anchors)."""
    label: np.ndarray
    bbox_target: np.ndarray
    bbox_weight: np.ndarray
    matched: np.ndarray
    soft: Optional[tuple] = None

    def arrays(self) -> tuple:
        """The loss inputs in the order of ``symbols.train_loss.DetectorLoss``."""
        return (self.label, self.bbox_target, self.bbox_weight) + (tuple(self.soft) if self.soft else ())


@dataclass
class AnchorPlan:
    """What :meth:`Assigner.prepare` hands to :meth:`Assigner.finish` (built in the loader): the image's anchors,
    faces and prediction-free assignment; ``targets`` is already complete when the strategy needs no prediction."""
    anchor_boxes: np.ndarray    # (N, 4)
    boxes: np.ndarray           # (F, 4)
    valid: np.ndarray           # (F,) bool
    inside: np.ndarray          # (N,) bool
    base: AssignResult          # the strategy's prediction-free assignment
    targets: Optional[AnchorTargets] = None


@dataclass
class Mined:
    """The prediction-aware part's changes to the base assignment (:meth:`Assigner.mine`); the defaults are
    "none": the base labels, hard targets, every factor 1. ``compensated`` are the always-kept anchors (``psi`` of
    the module docstring) and ``kept_factor`` their classification factor (HAMBox: ``F_a``); the normalisation is
    the shared tail's."""
    labels: np.ndarray
    gt_index: np.ndarray
    target: np.ndarray
    compensated: np.ndarray
    protected: np.ndarray
    quality: np.ndarray
    clean: np.ndarray
    reweight: np.ndarray
    kept_factor: Optional[np.ndarray] = None    # (N,) classification factor of the always-kept anchors

    @classmethod
    def unchanged(cls, base: AssignResult) -> "Mined":
        labels = base.labels.astype(np.int32).copy()
        N = len(labels)
        return cls(labels, base.gt_index.copy(), (labels == 1).astype(np.float64), np.zeros(N, dtype=bool),
                   np.zeros(N, dtype=bool), np.zeros(N), np.zeros(N), np.ones(N))


# ------------------------------------------------------------------------------------------------ the interface
class Assigner:
    """An RPN anchor-assignment strategy (see the module docstring). Subclasses set ``Settings``,
    ``needs_predictions`` / ``reweights`` where they differ, and override :meth:`assign` and, if they read the
    predictions, :meth:`mine`."""

    Settings = NoSettings
    needs_predictions = False     # mine() reads this iteration's decoded RPN boxes and face probabilities
    reweights = False             # soft targets / per-anchor factors: the loss is the generic weighted sum
    name = ""                     # set by rfcn_face.assigners.register

    def __init__(self, settings=None, params: AssignParams = AssignParams(), sampling: RPNSampling = RPNSampling(),
                 cls_loss: str = "softmax", means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"unknown RPN classification loss {cls_loss!r}; known: {', '.join(CLS_LOSSES)}")
        self.settings = self.Settings() if settings is None else settings
        if not isinstance(self.settings, self.Settings):
            raise TypeError(f"{type(self).__name__} takes {self.Settings.__name__} settings, got {settings!r}")
        self.params, self.sampling, self.cls_loss = params, sampling, cls_loss
        self.means, self.stds = tuple(means), tuple(stds)

    def __repr__(self):
        return f"{type(self).__name__}({self.settings}, {self.params}, {self.sampling}, cls_loss={self.cls_loss!r})"

    # ---- the strategy
    def assign(self, anchors, boxes, ignore, image_hw) -> AssignResult:
        """The prediction-free assignment of one image (labels 1 / 0 / -1, the face of each positive)."""
        raise NotImplementedError

    def mine(self, plan: AnchorPlan, pred_boxes: np.ndarray, face_prob: np.ndarray,
             iteration: Optional[int] = None) -> Mined:
        """The prediction-aware part (only called when ``needs_predictions``); ``iteration`` is the training
        iteration (0 = the first) when the caller knows it (the training loop), else None."""
        return Mined.unchanged(plan.base)

    # ---- fixed
    def prepare(self, anchors, boxes, ignore, image_hw, rng: Optional[np.random.Generator] = None) -> AnchorPlan:
        """The prediction-free part (the loader runs it). Without ``needs_predictions`` the targets are finished
        here too, with ``rng`` (the image's RPN Generator)."""
        abox = anchor_boxes_of(anchors)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        plan = AnchorPlan(abox, boxes, valid_faces(boxes, ignore),
                          inside_anchors(abox, image_hw, self.params.allowed_border),
                          self.assign(anchors, boxes, ignore, image_hw))
        if not self.needs_predictions:
            if rng is None:
                raise ValueError(f"strategy {self.name!r} finishes its targets in prepare(): pass rng")
            plan.targets = self.finish(plan, rng=rng)
        return plan

    def finish(self, plan: AnchorPlan, pred_boxes=None, face_prob=None, *,
               rng: Optional[np.random.Generator] = None, iteration: Optional[int] = None) -> AnchorTargets:
        """The targets of a prepared image: the prediction-aware part when the strategy has one, then the shared
        sampling / weights / box-target tail (module docstring). ``pred_boxes`` (N, 4) decoded RPN boxes and
        ``face_prob`` (N,) of this iteration are read only by strategies with ``needs_predictions``; so is
        ``iteration`` (the training iteration, for a warm-up; None: unknown, e.g. in a CustomOp)."""
        if plan.targets is not None:
            return plan.targets
        N = len(plan.anchor_boxes)
        if self.needs_predictions:
            if pred_boxes is None or face_prob is None:
                raise ValueError(f"strategy {self.name!r} reads the predictions: pass pred_boxes and face_prob")
            pred_boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
            face_prob = np.asarray(face_prob, np.float64).reshape(-1)
            if len(pred_boxes) != N or len(face_prob) != N:
                raise ValueError(f"{N} anchors but {len(pred_boxes)} predicted boxes and {len(face_prob)} "
                                 "probabilities")
            m = self.mine(plan, pred_boxes, face_prob, iteration)
        else:
            m = Mined.unchanged(plan.base)
        if rng is None:
            raise ValueError("finish() samples the RPN minibatch: pass rng (the image's RPN Generator)")
        return self._tail(plan, m, rng)

    def targets(self, anchors, boxes, ignore, image_hw, pred_boxes=None, face_prob=None, *,
                rng: np.random.Generator, iteration: Optional[int] = None) -> AnchorTargets:
        """Both parts at once (the CustomOps and the references): :meth:`prepare` then :meth:`finish`."""
        plan = self.prepare(anchors, boxes, ignore, image_hw, rng=None if self.needs_predictions else rng)
        return self.finish(plan, pred_boxes, face_prob, rng=rng, iteration=iteration)

    def _tail(self, plan: AnchorPlan, m: Mined, rng) -> AnchorTargets:
        """The one normalisation of the module docstring: the loss set, ``w``, ``v`` and the box targets."""
        abox, boxes, base = plan.anchor_boxes, plan.boxes, plan.base
        N, F = len(abox), len(boxes)
        labels, gt_index, kept = m.labels, m.gt_index, m.compensated
        B = self.sampling.batch_size
        from_labels = np.where(kept, -1, labels)                       # S is drawn from the labels without psi
        rho = np.where(labels == 1, m.reweight, 1.0)                   # rho_a (and rho'_a off psi)
        if self.cls_loss == "softmax":                                 # form (b): the sampled minibatch
            S = subsample_labels(from_labels, B, self.sampling.fg_fraction, rng) >= 0
            z = z_psi = max(int(S.sum() + kept.sum()), 1)
            box_pos = (S & (labels == 1)) | kept
            z_box = B
        else:                                                          # form (a): every labelled anchor
            S = from_labels >= 0
            z = z_box = max(int((labels == 1).sum()), B)
            z_psi = max(int(kept.sum()), B)
            box_pos = labels == 1
        weight = np.zeros(N)
        weight[S] = rho[S] / z
        if kept.any():
            weight[kept] = m.kept_factor[kept] / z_psi
        loss_labels = np.where(S | kept, labels, -1).astype(np.int32)
        box_pos = np.flatnonzero(box_pos)
        bbox_target, bbox_weight = np.zeros((N, 4)), np.zeros((N, 4))
        if len(box_pos):
            bbox_target[box_pos] = encode(abox[box_pos], boxes[gt_index[box_pos]], self.means, self.stds)
            v = np.where(kept[box_pos], 1.0, rho[box_pos])
            bbox_weight[box_pos] = (v * (B / z_box))[:, None]             # B / B = 1 exactly
        target = np.where(loss_labels < 0, 0.0, m.target)
        matched = np.bincount(gt_index[labels == 1], minlength=F).astype(np.int64)
        return AnchorTargets(labels, gt_index, base.max_iou, base.face_best_iou, base.hard, matched, loss_labels,
                             target, weight, bbox_target, bbox_weight, kept, m.protected, m.quality, m.clean,
                             m.reweight, mean_over_labels=self.cls_loss == "softmax" and not self.reweights)
