"""RPN anchor targets that read the network's predictions: HAMBox online anchor mining (OAM) with its
regression-aware loss weights (RAL), and the noisy-anchor cleanliness soft labels + re-weighting.

The shape is that of a detectron2 matcher: numpy in, numpy out. The inputs are the anchor boxes, the faces (+
ignore flags), the image size, :class:`rfcn_face.assign.AssignParams`, :class:`MiningParams` and the network's
predictions of this iteration — the decoded RPN boxes ``pred_boxes (N, 4)`` and the RPN face probabilities
``face_prob (N,)``; the output (:class:`MiningResult`, a superset of :class:`rfcn_face.assign.AssignResult`)
holds, per anchor, the labels (1 / 0 / -1) and everything one generic loss needs::

    L_cls = sum_a w_a * l(logits_a, t_a)                      l = CE(softmax, [1 - t, t]) or the focal loss
    L_box = sum_a v_a * smoothL1_3(delta_a - target_a) / rpn.batch_size

(``symbols.detection_losses.rpn_classification_loss`` / ``weighted_smooth_l1``). ``t_a`` is a float target,
the normalisation is folded into ``w_a``. No gradient reaches ``t`` / ``w`` / ``v``: they are computed here,
in numpy, from the predictions.

Strategies (``rpn.assign``)
---------------------------
* ``max_iou`` / ``hc``: :mod:`rfcn_face.assign` as it is (Sec. 3.1 / 4.4; no prediction read).
* ``hambox`` (HAMBox Sec. 3, OAM): *step one* is threshold matching only — IoU >= Th positive (its max-IoU
  face), max IoU < Tl negative, the border and ignored-face rules of :mod:`rfcn_face.assign`; a face without a
  threshold anchor is **not** given its best anchor ("outer faces are not compensated" in step one). Let
  ``M_f`` be the step-one positives of face f. After the forward pass every anchor's regressed box is compared
  with the faces: a face with ``M_f < K`` gets up to ``K - M_f`` extra positives among the inside anchors not
  positive in step one whose *regressed* box has IoU >= T with it, best first. All (face, anchor) pairs are
  visited greedily, regressed IoU descending, then lower anchor, then lower face; a face takes the anchor while
  it holds fewer than ``K - M_f`` and the anchor is free — so an anchor compensates at most one face, and of
  two faces that both still want it the higher IoU wins (the rule HC(N) uses, :mod:`rfcn_face.assign`).
  **RAL** (the loss of HAMBox Sec. 3): a compensated anchor ``a`` has target 1 and weight ``F_a / N_com``
  (``F_a`` its regressed IoU, ``N_com`` the number of compensated anchors); a step-one negative whose regressed
  box has IoU >= 0.5 with any valid face and that was not compensated is *not pushed to background*
  (``protected``: label -1, weight 0); every other anchor takes the ordinary loss. Compensated anchors regress
  to their face like any positive (``v = 1``; RAL weights only the classification term).
* ``cleanliness`` (noisy anchors Alg. 1): ``A_pos`` = the top-N inside anchors of each valid face by IoU
  *before* refinement (IoU > 0; equal IoUs: lower anchor index); an anchor in the top-N of several faces
  belongs to the one with the highest IoU (then the lower face index). For ``a`` in ``A_pos`` with face g:
  ``loc_a`` = IoU(regressed box, g), ``cls_c`` = predicted face probability,
  ``c = alpha * loc_a + (1 - alpha) * cls_c`` (Eq. 3, the soft label), ``r = (alpha * f(loc_a) + (1 - alpha) *
  f(cls_c))^gamma`` with ``f(x) = 1 / (1 - min(x, clamp))`` (Eq. 4), normalised to mean 1 over ``A_pos``; r
  weighs both the classification and the box loss of ``a`` (Eq. 5-6). Every other anchor has c = 0, r = 1.
  Labels outside ``A_pos`` follow the project's negative rule: max IoU < Tl (and not overlapping an ignored
  face) is a negative, everything else is -1 — Alg. 1 makes *every* other anchor a negative, but with one
  stride and dense anchors a large face has hundreds of anchors above Th outside its top-N, and training those
  to background would contradict their soft-labelled neighbours.

Minibatch and normalisation
---------------------------
The sampled set ``S`` is drawn by :func:`rfcn_face.sampling.subsample_labels` (``rpn.batch_size`` = B,
``rpn.fg_fraction``, the image's own Generator) from the labels *without* the always-kept anchors:

============  ==========================================  ==================  ===============================
strategy      sampled (positives : negatives quota)       always kept          per-anchor factor rho (pos.)
============  ==========================================  ==================  ===============================
max_iou, hc   the assignment's positives / negatives      —                    1
hambox        step-one positives / unprotected negatives  compensated (psi)    1
cleanliness   A_pos / negatives                           —                    r (Eq. 4, mean 1 over A_pos)
============  ==========================================  ==================  ===============================

``rpn.cls_loss: softmax`` (the R-FCN RPN): ``w_a = rho_a / |S|`` for ``a`` in S (negatives: ``1 / |S|``),
which for max_iou / hc is exactly today's "mean over the sampled anchors"; ``rpn.cls_loss: focal`` (RetinaNet,
as HAMBox and the noisy-anchor paper train): no sampling for the classification term — every labelled anchor
``a`` (label 0 / 1, always-kept ones excluded) gets ``w_a = rho_a / max(N_pos, 1)`` with ``N_pos`` the number
of those positives (RetinaNet pairs it with a prior-probability init of the classifier, which ``symbols/rfcn.py``
does not do: it diverges in the smoke preset, trains in the demo preset; docs/training.md). With both losses the
compensated anchors of hambox add ``w_a = F_a / N_com`` (HAMBox's ``1 / N_com`` term). The box term does not
depend on ``rpn.cls_loss``: ``v_a = rho_a`` for the positives of the sampled minibatch S and ``v_a = 1`` for
compensated anchors, ``L_box = sum v smoothL1 / B`` (so the minibatch is drawn with focal too, for the box
term only, with the same draws). ``loss_labels`` marks the
anchors with ``w > 0`` (1 / 0) and -1 elsewhere.

Cold start: at iteration 0 the deltas are ~0 (regressed boxes = anchors) and the face probabilities ~0.5:
hambox compensates with anchors whose own IoU is >= T (none beyond step one when T >= Th), cleanliness gets
``c = alpha IoU + (1 - alpha) / 2`` and finite r; both give plain, finite targets (tested).

Costs: step one / ``A_pos`` need no prediction (:func:`prepare_mining`, in the loader processes); only
:func:`finish_mining` runs after the forward pass. The regressed-box search is exact and local: IoU >= tau
bounds a box's size (``tau w_f <= w_b <= w_f / tau``, same for h) and its centre offset
(``|dx| <= (w_b + w_f) / 2 - tau w_f``), so boxes are bucketed by size octave and a grid of cells of that
size, and each face reads only its few cells (:func:`regressed_pairs`; compared with a dense reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assign import (AssignParams, AssignResult, _as_anchor_boxes, _assign, _first_of_groups, _rescore,
                     _valid_faces, _valid_pairs, assign_max_iou, get_strategy, greedy_by_capacity, inside_anchors,
                     resolve_strategy)
from .boxes import encode, pairwise_iou
from .sampling import subsample_labels

__all__ = ["MiningParams", "MiningResult", "MiningPlan", "MINING_STRATEGIES", "PREDICTION_STRATEGIES", "CLS_LOSSES",
           "RAL_IOU", "prepare_mining", "finish_mining", "mining_targets", "regressed_pairs"]

MINING_STRATEGIES = ("max_iou", "hc", "hambox", "cleanliness")   # rpn.assign ("": resolve_strategy)
PREDICTION_STRATEGIES = ("hambox", "cleanliness")     # need the forward pass of this iteration
CLS_LOSSES = ("softmax", "focal")                     # rpn.cls_loss
RAL_IOU = 0.5   # HAMBox Sec. 3 (RAL): a negative whose regressed IoU reaches this is not pushed to background


@dataclass(frozen=True)
class MiningParams:
    strategy: str = "max_iou"   # rpn.assign: max_iou | hc | hambox | cleanliness
    cls_loss: str = "softmax"   # rpn.cls_loss: softmax (R-FCN RPN, sampled) | focal (RetinaNet, all anchors)
    focal_alpha: float = 0.25   # RetinaNet's alpha / gamma (HAMBox writes RAL on a focal loss)
    focal_gamma: float = 2.0
    hambox_k: int = 5           # HAMBox K: faces with M < K anchors get up to K - M (value open in the paper)
    hambox_t: float = 0.5       # HAMBox T: regressed IoU for a compensated anchor (value open in the paper)
    clean_alpha: float = 0.75   # noisy anchors Eq. 3-4, Table 4(c) best
    clean_gamma: float = 1.0    # Eq. 4, Table 4(a)
    clean_top_n: int = 30       # |A_pos| per face, Table 4(b)
    clean_clamp: float = 0.99   # f(x) = 1 / (1 - min(x, clamp)) (the paper does not say how x -> 1 is handled)

    def __post_init__(self):
        if self.strategy not in MINING_STRATEGIES:
            raise ValueError(f"unknown anchor assignment strategy {self.strategy!r}; known: "
                             + ", ".join(MINING_STRATEGIES))
        if self.cls_loss not in CLS_LOSSES:
            raise ValueError(f"unknown RPN classification loss {self.cls_loss!r}; known: {', '.join(CLS_LOSSES)}")

    @classmethod
    def from_config(cls, cfg) -> "MiningParams":
        r = cfg.rpn
        return cls(strategy=resolve_strategy(r.assign, cfg.train.hard_face_compensation), cls_loss=r.cls_loss,
                   focal_alpha=r.focal_alpha, focal_gamma=r.focal_gamma, hambox_k=r.hambox_k,
                   hambox_t=r.hambox_t, clean_alpha=r.clean_alpha, clean_gamma=r.clean_gamma,
                   clean_top_n=r.clean_top_n, clean_clamp=r.clean_clamp)

    @property
    def needs_predictions(self) -> bool:
        return self.strategy in PREDICTION_STRATEGIES


@dataclass
class MiningResult(AssignResult):
    """:class:`AssignResult` (``labels`` = the assignment before sampling, compensated anchors included;
    ``matched`` = positives per face before sampling, HAMBox Fig. 1(a)) plus the loss inputs."""
    loss_labels: np.ndarray     # (N,) int32: 1 / 0 for the anchors in the classification loss (w > 0), else -1
    cls_target: np.ndarray      # (N,) float t_a in [0, 1]
    cls_weight: np.ndarray      # (N,) float w_a, normalisation folded in: L_cls = sum w_a l_a
    bbox_target: np.ndarray     # (N, 4) encoded faces
    bbox_weight: np.ndarray     # (N, 4) v_a: L_box = sum v smoothL1 / rpn.batch_size
    compensated: np.ndarray     # (N,) bool: hambox OAM positives
    protected: np.ndarray       # (N,) bool: hambox RAL negatives kept out of the background (-1)
    quality: np.ndarray         # (N,) float: regressed IoU (F_a for compensated anchors, loc_a on A_pos)
    clean: np.ndarray           # (N,) float: cleanliness c (Eq. 3), 0 outside A_pos
    reweight: np.ndarray        # (N,) float: r (Eq. 4, mean 1 over A_pos), 1 outside A_pos


@dataclass
class MiningPlan:
    """The prediction-free half of :func:`mining_targets` (what :func:`prepare_mining` computes)."""
    params: AssignParams
    mining: MiningParams
    anchor_boxes: np.ndarray    # (N, 4)
    boxes: np.ndarray           # (F, 4)
    valid: np.ndarray           # (F,) bool
    inside: np.ndarray          # (N,) bool
    base: AssignResult          # max_iou / hc: the assignment; hambox: step one; cleanliness: A_pos + negatives
    pos_anchor: np.ndarray      # cleanliness: A_pos anchors and their face / anchor IoU (empty otherwise)
    pos_face: np.ndarray
    pos_iou: np.ndarray


# ------------------------------------------------------------------------------------------------ geometry
def regressed_pairs(pred_boxes, faces, min_iou: float, anchor_mask=None):
    """Every ``(anchor, face, IoU)`` with ``IoU(pred_boxes[anchor], faces[face]) >= min_iou`` (> 0), sorted by
    face then anchor. Exact (a dense reference is in the tests), local: see the module docstring."""
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    fb = np.asarray(faces, np.float64).reshape(-1, 4)
    tau = float(min_iou)
    if not tau > 0:
        raise ValueError(f"min_iou must be > 0, got {min_iou}")
    wb, hb = pb[:, 2] - pb[:, 0], pb[:, 3] - pb[:, 1]
    ok = (wb > 0) & (hb > 0) & np.all(np.isfinite(pb), axis=1)
    if anchor_mask is not None:
        ok &= np.asarray(anchor_mask, dtype=bool)
    wf, hf = fb[:, 2] - fb[:, 0], fb[:, 3] - fb[:, 1]
    fid = np.flatnonzero((wf > 0) & (hf > 0))
    e = np.zeros(0, dtype=np.int64)
    if len(fid) == 0:
        return e, e.copy(), np.zeros(0)
    # boxes no face can reach: max side outside [tau min m_f, max m_f / tau], centre beyond every face's window
    # (this also bounds the bucket keys below whatever the regression predicts)
    m_all = np.maximum(wf[fid], hf[fid])
    m_b = np.maximum(wb, hb)
    ok &= (m_b >= tau * m_all.min() * (1 - 1e-9)) & (m_b <= m_all.max() / tau * (1 + 1e-9))
    reach = (1.0 / tau + 1.0) * m_all.max()
    fx = 0.5 * (fb[fid, 0] + fb[fid, 2])
    fy = 0.5 * (fb[fid, 1] + fb[fid, 3])
    bx, by = 0.5 * (pb[:, 0] + pb[:, 2]), 0.5 * (pb[:, 1] + pb[:, 3])
    ok &= (bx >= fx.min() - reach) & (bx <= fx.max() + reach) & (by >= fy.min() - reach) & (by <= fy.max() + reach)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return e, e.copy(), np.zeros(0)
    b, wb, hb = pb[idx], wb[idx], hb[idx]
    k_b = np.floor(np.log2(np.maximum(wb, hb))).astype(np.int64)       # size octave of every box
    cx, cy = 0.5 * (b[:, 0] + b[:, 2]), 0.5 * (b[:, 1] + b[:, 3])
    kmin, kmax = int(k_b.min()), int(k_b.max())
    f = fb[fid]
    wf, hf = wf[fid], hf[fid]
    cxf, cyf = 0.5 * (f[:, 0] + f[:, 2]), 0.5 * (f[:, 1] + f[:, 3])
    ox = min(cx.min(), cxf.min()) - 1.0
    oy = min(cy.min(), cyf.min()) - 1.0
    cell_b = np.exp2(k_b.astype(np.float64))
    gx, gy = np.floor((cx - ox) / cell_b).astype(np.int64), np.floor((cy - oy) / cell_b).astype(np.int64)
    GX, GY = int(gx.max()) + 2, int(gy.max()) + 2
    key = ((k_b - kmin) * GY + gy) * GX + gx
    order = np.argsort(key, kind="stable")
    skey = key[order]
    # per face: the octaves a box may have (max side in [tau m_f, m_f / tau], one octave of slack each side)
    mf = np.maximum(wf, hf)
    klo = np.maximum(np.floor(np.log2(tau * mf)).astype(np.int64) - 1, kmin)
    khi = np.minimum(np.floor(np.log2(mf / tau)).astype(np.int64) + 1, kmax)
    nk = np.clip(khi - klo + 1, 0, None)
    face_k = np.repeat(np.arange(len(fid)), nk)
    k = klo[face_k] + (np.arange(int(nk.sum())) - np.repeat(np.cumsum(nk) - nk, nk))
    cell = np.exp2(k.astype(np.float64))
    fw, fh = wf[face_k], hf[face_k]
    # |dx| <= (w_b + w_f) / 2 - tau w_f with w_b < min(2^(k+1), w_f / tau); a little slack for rounding
    rx = 0.5 * (np.minimum(2.0 * cell, fw / tau) + fw) - tau * fw
    ry = 0.5 * (np.minimum(2.0 * cell, fh / tau) + fh) - tau * fh
    rx, ry = rx * (1 + 1e-9) + 1e-9, ry * (1 + 1e-9) + 1e-9
    x_lo = np.clip(np.floor((cxf[face_k] - rx - ox) / cell).astype(np.int64), 0, GX - 1)
    x_hi = np.clip(np.floor((cxf[face_k] + rx - ox) / cell).astype(np.int64), 0, GX - 1)
    y_lo = np.clip(np.floor((cyf[face_k] - ry - oy) / cell).astype(np.int64), 0, GY - 1)
    y_hi = np.clip(np.floor((cyf[face_k] + ry - oy) / cell).astype(np.int64), 0, GY - 1)
    ny = np.clip(y_hi - y_lo + 1, 0, None)
    row = np.repeat(np.arange(len(face_k)), ny)                    # one entry per (face, octave, cell row)
    y = y_lo[row] + (np.arange(int(ny.sum())) - np.repeat(np.cumsum(ny) - ny, ny))
    base = ((k[row] - kmin) * GY + y) * GX
    start = np.searchsorted(skey, base + x_lo[row], side="left")
    stop = np.searchsorted(skey, base + x_hi[row], side="right")
    n = np.clip(stop - start, 0, None)
    rep = np.repeat(np.arange(len(row)), n)
    pos = start[rep] + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    cand_b = order[pos]                                            # index into idx
    cand_f = face_k[row[rep]]                                      # index into fid
    iou = pairwise_iou(b[cand_b], f[cand_f])
    keep = iou >= tau
    ai, fi, iou = idx[cand_b[keep]], fid[cand_f[keep]], iou[keep]
    o = np.lexsort((ai, fi))
    return ai[o], fi[o], iou[o]


# ------------------------------------------------------------------------------------------------ step one
def _threshold_step(anchors, boxes, ignore, image_hw, params: AssignParams) -> AssignResult:
    """HAMBox step one: :func:`rfcn_face.assign.assign_max_iou` without the best-anchor rule (threshold claims
    only; every other anchor follows the negative / ignored rules)."""
    return _assign(anchors, boxes, ignore, image_hw, params, hc_top_n=0, best_anchor=False)


def _top_n_pairs(anchors, boxes, inside, n: int, params: AssignParams):
    """Noisy anchors Alg. 1 lines 2-5 over the valid ``boxes``: each face's top-``n`` inside anchors by IoU
    (IoU > 0, equal IoUs: lower anchor). On an :class:`~rfcn_face.assign.AnchorGrid` the pairs come from
    :func:`rfcn_face.assign._valid_pairs` (templates whose IoU bound is below ``min(Tl, the face's best bound)``
    skipped); a face whose n-th IoU does not beat that bound is rescored with every template
    (:func:`rfcn_face.assign._rescore`), so the result is exact. Returns ``(anchor, face, iou)`` pairs."""
    F = len(boxes)
    e = np.zeros(0, dtype=np.int64)
    if F == 0 or n <= 0:
        return e, e.copy(), np.zeros(0)

    def top(ai, fi, iou):
        o = np.lexsort((ai, -iou, fi))
        ai, fi, iou = ai[o], fi[o], iou[o]
        starts = np.searchsorted(fi, np.arange(F))
        rank = np.arange(len(fi)) - starts[fi]
        k = rank < n
        return ai[k], fi[k], iou[k]

    ai, fi, iou, skipped = _valid_pairs(anchors, boxes, inside, params)
    ai, fi, iou = top(ai, fi, iou)
    count = np.bincount(fi, minlength=F)
    low = np.full(F, np.inf)
    np.minimum.at(low, fi, iou)
    redo = np.flatnonzero((skipped > -np.inf) & ~((count >= n) & (low > skipped)))
    if len(redo):
        ai, fi, iou, _ = _rescore(anchors, boxes, inside, (ai, fi, iou, skipped), redo)
        ai, fi, iou = top(ai, fi, iou)
    return ai, fi, iou


# ------------------------------------------------------------------------------------------------ the API
def prepare_mining(anchors, boxes, ignore, image_hw, params: AssignParams, mining: MiningParams) -> MiningPlan:
    """Everything that needs no prediction: the assignment (max_iou / hc), HAMBox step one, or A_pos."""
    abox = _as_anchor_boxes(anchors)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    valid = _valid_faces(boxes, ignore)
    inside = inside_anchors(abox, image_hw, params.allowed_border)
    e = np.zeros(0, dtype=np.int64)
    pa, pf, pi = e, e.copy(), np.zeros(0)
    s = mining.strategy
    if s in ("max_iou", "hc"):
        if s == "hc" and params.hc_top_n <= 0:
            raise ValueError("strategy 'hc' needs hc_top_n >= 1 (train.hard_face_compensation)")
        base = get_strategy(s)(anchors, boxes, ignore, image_hw, params)
    elif s == "hambox":
        base = _threshold_step(anchors, boxes, ignore, image_hw, params)
    else:   # cleanliness
        r0 = assign_max_iou(anchors, boxes, ignore, image_hw, params)
        vid = np.flatnonzero(valid)
        ai, fl, iou = _top_n_pairs(anchors, boxes[vid], inside, int(mining.clean_top_n), params)
        o = np.lexsort((fl, -iou, ai))                     # an anchor in several top-N: highest IoU, lower face
        win = o[_first_of_groups(ai[o])]
        pa, pf, pi = ai[win], vid[fl[win]], iou[win]
        labels = np.where(r0.labels == 0, 0, -1).astype(np.int32)
        labels[pa] = 1
        gt_index = np.full(len(abox), -1, dtype=np.int64)
        gt_index[pa] = pf
        matched = np.bincount(pf, minlength=len(boxes)).astype(np.int64)
        base = AssignResult(labels, gt_index, r0.max_iou, r0.face_best_iou, r0.hard, matched)
    return MiningPlan(params, mining, abox, boxes, valid, inside, base, pa, pf, pi)


def finish_mining(plan: MiningPlan, pred_boxes=None, face_prob=None, *, rng: np.random.Generator,
                  batch_size: int = 256, fg_fraction: float = 0.5, means=(0.0, 0.0, 0.0, 0.0),
                  stds=(1.0, 1.0, 1.0, 1.0)) -> MiningResult:
    """The prediction-dependent half: OAM + RAL or cleanliness, the minibatch, the loss weights and box targets.
    ``pred_boxes`` (N, 4) decoded RPN boxes and ``face_prob`` (N,) of this iteration (not read by max_iou / hc).
    ``rng`` is the image's own Generator (one ``subsample_labels`` call)."""
    m = plan.mining
    abox, boxes, base = plan.anchor_boxes, plan.boxes, plan.base
    N, F = len(abox), len(boxes)
    labels, gt_index = base.labels.astype(np.int32).copy(), base.gt_index.copy()
    compensated, protected = np.zeros(N, dtype=bool), np.zeros(N, dtype=bool)
    quality, clean, reweight = np.zeros(N), np.zeros(N), np.ones(N)
    target = np.zeros(N)
    if m.needs_predictions:
        if pred_boxes is None or face_prob is None:
            raise ValueError(f"strategy {m.strategy!r} reads the predictions: pass pred_boxes and face_prob")
        pred_boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
        face_prob = np.asarray(face_prob, np.float64).reshape(-1)
        if len(pred_boxes) != N or len(face_prob) != N:
            raise ValueError(f"{N} anchors but {len(pred_boxes)} predicted boxes and {len(face_prob)} probabilities")
    vid = np.flatnonzero(plan.valid)
    if m.strategy == "hambox":
        # OAM (HAMBox Sec. 3): outer faces (M < K) take up to K - M unmatched anchors by regressed IoU >= T
        ai, fl, iou = regressed_pairs(pred_boxes, boxes[vid], min(m.hambox_t, RAL_IOU), plan.inside)
        fi = vid[fl]
        step_pos = labels == 1
        cap = np.zeros(F, dtype=np.int64)
        cap[vid] = np.maximum(int(m.hambox_k) - base.matched[vid], 0)
        want = np.flatnonzero((iou >= m.hambox_t) & ~step_pos[ai] & (cap[fi] > 0))
        took = want[greedy_by_capacity(ai[want], fi[want], iou[want], cap)]
        a_c = ai[took]
        compensated[a_c] = True
        labels[a_c], gt_index[a_c], quality[a_c] = 1, fi[took], iou[took]
        # RAL: a step-one negative regressing onto a face (IoU >= 0.5) is not pushed to background
        best = np.zeros(N)
        np.maximum.at(best, ai, iou)
        protected = (base.labels == 0) & ~compensated & (best >= RAL_IOU)
        labels[protected] = -1
        target[labels == 1] = 1.0
    elif m.strategy == "cleanliness":
        a = plan.pos_anchor
        loc = pairwise_iou(pred_boxes[a], boxes[plan.pos_face])
        cls_c = np.clip(face_prob[a], 0.0, 1.0)
        al = float(m.clean_alpha)
        c = al * loc + (1.0 - al) * cls_c                                   # Eq. 3
        f = lambda x: 1.0 / (1.0 - np.minimum(x, m.clean_clamp))          # noqa: E731  f(x) = 1/(1-x), clamped
        r = (al * f(loc) + (1.0 - al) * f(cls_c)) ** float(m.clean_gamma)  # Eq. 4
        if len(r):
            r = r * (len(r) / r.sum())                                      # mean 1 over A_pos
        quality[a], clean[a], reweight[a], target[a] = loc, c, r, c
    else:
        target[labels == 1] = 1.0
    # minibatch over the labels without the always-kept (compensated) anchors
    sample_from = np.where(compensated, -1, labels)
    sampled = subsample_labels(sample_from, batch_size, fg_fraction, rng)
    rho = np.where(labels == 1, reweight, 1.0)
    weight = np.zeros(N)
    if m.cls_loss == "softmax":
        ins = sampled >= 0
        weight[ins] = rho[ins] / max(int(ins.sum()), 1)
    else:   # focal: every labelled anchor, normalised by the positives (RetinaNet)
        ins = sample_from >= 0
        weight[ins] = rho[ins] / max(int((sample_from == 1).sum()), 1)
    n_com = int(compensated.sum())
    if n_com:
        weight[compensated] = quality[compensated] / n_com                # RAL: F_a / N_com
    loss_labels = np.where(ins | compensated, labels, -1).astype(np.int32)
    box_pos = np.flatnonzero((sampled == 1) | compensated)
    bbox_target, bbox_weight = np.zeros((N, 4)), np.zeros((N, 4))
    if len(box_pos):
        bbox_target[box_pos] = encode(abox[box_pos], boxes[gt_index[box_pos]], means, stds)
        bbox_weight[box_pos] = np.where(compensated[box_pos], 1.0, rho[box_pos])[:, None]
    target[loss_labels < 0] = 0.0
    matched = np.bincount(gt_index[labels == 1], minlength=F).astype(np.int64)
    return MiningResult(labels, gt_index, base.max_iou, base.face_best_iou, base.hard, matched, loss_labels, target,
                        weight, bbox_target, bbox_weight, compensated, protected, quality, clean, reweight)


def mining_targets(anchors, boxes, ignore, image_hw, params: AssignParams, mining: MiningParams,
                   pred_boxes=None, face_prob=None, *, rng: np.random.Generator, batch_size: int = 256,
                   fg_fraction: float = 0.5, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)) -> MiningResult:
    """RPN training targets of one image for any strategy: :func:`prepare_mining` then :func:`finish_mining`."""
    plan = prepare_mining(anchors, boxes, ignore, image_hw, params, mining)
    return finish_mining(plan, pred_boxes, face_prob, rng=rng, batch_size=batch_size, fg_fraction=fg_fraction,
                         means=means, stds=stds)
