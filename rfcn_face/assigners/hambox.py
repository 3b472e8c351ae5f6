"""``hambox`` — HAMBox online high-quality anchor mining (OAM) with the regression-aware loss weights (RAL), Liu et
al., CVPR 2020, Sec. 3 (``../shared/papers/hambox-*``).

* **Step one** (prediction-free, the loader): threshold matching only, at HAMBox's own threshold ``pos_iou`` (0.35:
  the notes analyse matching at 0.35, "以 0.35 为匹配阈值"; the shared ``rpn.pos_iou`` is R-FCN's 0.5) — IoU >=
  ``pos_iou`` positive (its max-IoU face), max IoU < Tl (``rpn.neg_iou``) negative, the border and ignored-face
  rules of :mod:`rfcn_face.assigners.core`; a face without a threshold anchor is **not** given its best anchor
  (outer faces are compensated in step two, not here). Let ``M_f`` be the step-one positives of face f.
* **OAM** (after the forward pass): a face with ``M_f < K`` gets up to ``K - M_f`` extra positives among the inside
  anchors not positive in step one whose *regressed* box has IoU **> T** with it ("IOU要大于阈值T"), best first.
  All (face, anchor) pairs are visited greedily, regressed IoU descending, then lower anchor, then lower face; a
  face takes the anchor while it holds fewer than ``K - M_f`` and the anchor is free — so an anchor compensates at
  most one face, and of two faces that both still want it the higher IoU wins (the rule HC(N) uses).
* **RAL**: a compensated anchor ``a`` (``psi``) has target 1 and classification factor ``F_a`` (its regressed IoU);
  it is always kept (not sampled). Its normalisation is the shared tail's (:mod:`rfcn_face.assigners.base`): the
  paper's ``F_a / N_com`` with ``rpn.cls_loss: focal`` (floored: ``F_a / max(N_com, B)``), ``F_a / (|S| + N_com)``
  inside the sampled softmax. A step-one negative whose regressed box has IoU >= 0.5 with any valid face and that
  was not compensated is *not pushed to background* (``protected``: label -1, weight 0; the RAL term
  ``1(l = 0) 1(F < 0.5)``). Compensated anchors regress to their face like any positive (RAL weighs only the
  classification term).
* **Warm-up** (``warmup`` = W, default 0 as the paper): for the first W training iterations the targets are step
  one alone (no OAM, no RAL), while the regressor is still random. The iteration comes from the training loop
  (:meth:`~rfcn_face.assigners.base.Assigner.finish`); a caller that does not know it (the CustomOp) runs past it.

Settings: ``k`` (K), ``t`` (T), ``pos_iou`` (the step-one threshold, >= ``rpn.neg_iou``), ``warmup`` (W). Cold
start: at iteration 0 the deltas are ~0 (regressed boxes = anchors): an anchor whose own IoU exceeds T is
compensated unless step one already made it positive, so with T >= pos_iou nothing is. The regressed-box search
(:func:`regressed_pairs`) is exact and local: IoU >= tau bounds a box's size (``tau w_f <= w_b <= w_f / tau``, same
for h) and its centre offset (``|dx| <= (w_b + w_f) / 2 - tau w_f``), so boxes are bucketed by size octave and a
grid of cells of that size, and each face reads only its few cells (compared with a dense reference in the tests).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..boxes import pairwise_iou
from .base import Assigner, AnchorPlan, Mined, setting
from .core import AssignParams, AssignResult, greedy_by_capacity, match_anchors
from .registry import register

__all__ = ["HAMBoxAssigner", "HAMBoxSettings", "regressed_pairs", "RAL_IOU"]

RAL_IOU = 0.5   # HAMBox Sec. 3 (RAL): a negative whose regressed IoU reaches this is not pushed to background


@dataclass(frozen=True)
class HAMBoxSettings:
    k: int = setting(5, lo=1)                        # K: faces with M < K anchors get up to K - M (open in the paper)
    t: float = setting(0.5, lo=0.0, hi=1.0, lo_open=True, hi_open=True)   # T: regressed IoU > T to compensate
    pos_iou: float = setting(0.35, lo=0.0, hi=1.0, lo_open=True)    # step-one threshold (the notes' 0.35)
    warmup: int = setting(0, lo=0)                   # W iterations of step one alone before OAM / RAL start


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


@register("hambox")
class HAMBoxAssigner(Assigner):
    Settings = HAMBoxSettings
    needs_predictions = True
    reweights = True

    def __init__(self, settings=None, params: AssignParams = AssignParams(), *args, **kw):
        super().__init__(settings, params, *args, **kw)
        if self.settings.pos_iou < params.neg_iou:
            raise ValueError(f"rpn.assign.pos_iou ({self.settings.pos_iou}) of strategy 'hambox' must be >= "
                             f"rpn.neg_iou ({params.neg_iou})")
        self.step_params = replace(params, pos_iou=float(self.settings.pos_iou))

    def assign(self, anchors, boxes, ignore, image_hw) -> AssignResult:
        """Step one: :func:`~rfcn_face.assigners.core.match_anchors` at ``pos_iou`` without the best-anchor rule."""
        return match_anchors(anchors, boxes, ignore, image_hw, self.step_params, hc_top_n=0, best_anchor=False)

    def mine(self, plan: AnchorPlan, pred_boxes, face_prob, iteration=None) -> Mined:
        s, base, m = self.settings, plan.base, Mined.unchanged(plan.base)
        if iteration is not None and iteration < s.warmup:
            return m                                                       # warm-up: step one alone
        boxes, N, F = plan.boxes, len(plan.anchor_boxes), len(plan.boxes)
        vid = np.flatnonzero(plan.valid)
        # OAM: outer faces (M < K) take up to K - M unmatched anchors by regressed IoU > T
        ai, fl, iou = regressed_pairs(pred_boxes, boxes[vid], min(s.t, RAL_IOU), plan.inside)
        fi = vid[fl]
        step_pos = m.labels == 1
        cap = np.zeros(F, dtype=np.int64)
        cap[vid] = np.maximum(int(s.k) - base.matched[vid], 0)
        want = np.flatnonzero((iou > s.t) & ~step_pos[ai] & (cap[fi] > 0))
        took = want[greedy_by_capacity(ai[want], fi[want], iou[want], cap)]
        a_c = ai[took]
        m.compensated[a_c] = True
        m.labels[a_c], m.gt_index[a_c], m.quality[a_c] = 1, fi[took], iou[took]
        # RAL: a step-one negative regressing onto a face (IoU >= 0.5) is not pushed to background
        best = np.zeros(N)
        np.maximum.at(best, ai, iou)
        m.protected = (base.labels == 0) & ~m.compensated & (best >= RAL_IOU)
        m.labels[m.protected] = -1
        m.target = (m.labels == 1).astype(np.float64)
        m.kept_factor = m.quality                                          # RAL: F_a (normalised in the tail)
        return m
