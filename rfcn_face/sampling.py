"""Minibatch sampling on label arrays: the random RPN / RoI minibatch and OHEM (Sec. 5.1).

Labels follow the project convention ``1`` positive, ``0`` negative, ``-1`` ignore. Every function returns
new arrays; an example that is not selected becomes ``-1`` (and, where box weights are involved, gets zero box
weights), so losses that skip the ignore label see exactly the minibatch.

Quota rule, shared by the random sampler and OHEM
--------------------------------------------------
With batch size ``B`` and foreground fraction ``p``: at most ``round(p * B)`` positives are kept, then
negatives fill the batch up to ``B`` (so ``B - #kept positives`` of them at most). With enough positives the
batch is exactly ``p : 1 - p`` (OHEM in Sec. 5.1: ``p = 0.25``, positives : negatives = 1 : 3); an image with
few positives is filled with negatives rather than training on a smaller batch. ``B < 0`` keeps everything.

OHEM, two readings (``mode`` of :func:`ohem_keep` / :func:`ohem_labels`)
-----------------------------------------------------------------------
Sec. 5.1 says "online hard example mining with the ratio between positives and negatives as 1:3" but also
"all the other settings follow [R-FCN]", whose MXNet operator (Deformable-ConvNets
``rfcn/operator_py/box_annotator_ohem.py``) keeps the ``roi_per_img`` highest-loss RoIs whatever their label.

* ``mode="ratio"`` (default): the quota rule above on the hardest examples, per image: the hardest
  ``round(p * B)`` positives, then the hardest negatives up to ``B``.
* ``mode="topk"``: per image, the ``B`` RoIs with the highest loss among the labelled (0 / 1) ones, regardless
  of label (``p`` is not used). A batch can then be all negatives or all positives.

In both modes equal losses keep the lower index first (R-FCN's order on ties is that of an unstable
``argsort``, i.e. unspecified), RoIs labelled -1 are never kept, and ``B < 0`` keeps every labelled RoI.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RPNSampling", "OHEMParams", "fg_quota", "subsample_labels", "sampling_keys", "subsample_labels_keyed",
           "smooth_l1", "ohem_losses", "ohem_keep",
           "ohem_labels", "OHEM_MODES"]


@dataclass(frozen=True)
class RPNSampling:
    """The RPN minibatch (``rpn.batch_size`` anchors per image, ``rpn.fg_fraction`` positives; R-FCN 256, 0.5)."""
    batch_size: int = 256
    fg_fraction: float = 0.5

    @classmethod
    def from_config(cls, cfg) -> "RPNSampling":
        return cls(int(cfg.rpn.batch_size), float(cfg.rpn.fg_fraction))


@dataclass(frozen=True)
class OHEMParams:
    """OHEM of the R-FCN head (Sec. 5.1): on or off (``rcnn.ohem``), ``rcnn.ohem_batch_size`` RoIs per image,
    ``rcnn.ohem_fg_fraction`` (1:3) in ``ratio`` mode, ``rcnn.ohem_mode``. ``rois_per_image`` is the number the
    head's box loss is normalised by (``rcnn.batch_size`` without OHEM)."""
    enabled: bool = True
    batch_size: int = 128
    fg_fraction: float = 0.25
    mode: str = "ratio"
    rois_per_image: int = 128

    @classmethod
    def from_config(cls, cfg) -> "OHEMParams":
        r = cfg.rcnn
        return cls(bool(r.ohem), int(r.ohem_batch_size), float(r.ohem_fg_fraction), str(r.ohem_mode),
                   int(r.ohem_batch_size if r.ohem else r.batch_size))


def fg_quota(batch_size: int, fg_fraction: float) -> int:
    """Largest number of positives in a batch of ``batch_size`` (``round(fg_fraction * batch_size)``)."""
    return int(np.round(fg_fraction * batch_size))


def subsample_labels(labels, batch_size: int, fg_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Random minibatch (R-FCN's RPN / RoI sampling): positives and negatives drawn without replacement.

    Deterministic for a given ``rng`` state. Unselected examples become -1.
    """
    labels = np.array(labels, dtype=np.int32, copy=True).reshape(-1)
    if batch_size < 0:
        return labels
    fg = np.flatnonzero(labels == 1)
    n_fg = fg_quota(batch_size, fg_fraction)
    if len(fg) > n_fg:
        labels[fg] = -1
        labels[rng.choice(fg, n_fg, replace=False)] = 1
    n_bg = batch_size - int(np.sum(labels == 1))
    bg = np.flatnonzero(labels == 0)
    if len(bg) > n_bg:
        labels[bg] = -1
        labels[rng.choice(bg, max(n_bg, 0), replace=False)] = 0
    return labels


def sampling_keys(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) float32 random keys for :func:`subsample_labels_keyed`: a permutation of ``0 .. n-1`` drawn from
    the image's keyed Generator, so the keys are distinct and exact in float32 (the device sampler of
    :mod:`symbols.proposal_target` then selects exactly what the numpy one does)."""
    return rng.permutation(int(n)).astype(np.float32)


def subsample_labels_keyed(labels, batch_size: int, fg_fraction: float, keys) -> np.ndarray:
    """The minibatch of :func:`subsample_labels` selected by given random ``keys`` instead of drawing: the
    ``fg_quota`` positives with the smallest keys, then the negatives with the smallest keys up to
    ``batch_size`` (equal keys: lower index first). The draw itself lives in ``keys`` (one per example, e.g.
    :func:`sampling_keys`), so a device implementation given the same keys selects the same examples.
    Unselected examples become -1."""
    labels = np.array(labels, dtype=np.int32, copy=True).reshape(-1)
    keys = np.asarray(keys).reshape(-1)
    if len(keys) != len(labels):
        raise ValueError(f"{len(keys)} sampling keys for {len(labels)} labels")
    if batch_size < 0:
        return labels
    fg = np.flatnonzero(labels == 1)
    fg_keep = fg[np.argsort(keys[fg], kind="stable")[:fg_quota(batch_size, fg_fraction)]]
    bg = np.flatnonzero(labels == 0)
    bg_keep = bg[np.argsort(keys[bg], kind="stable")[:max(batch_size - len(fg_keep), 0)]]
    out = np.full_like(labels, -1)
    out[fg_keep], out[bg_keep] = 1, 0
    return out


def smooth_l1(x, sigma: float = 1.0) -> np.ndarray:
    """Smooth L1 of Fast R-CNN: ``0.5 (sigma x)^2`` if ``|x| < 1/sigma^2`` else ``|x| - 0.5/sigma^2``."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    s2 = sigma * sigma
    return np.where(x < 1.0 / s2, 0.5 * s2 * x * x, x - 0.5 / s2)


def ohem_losses(cls_prob, bbox_pred, labels, bbox_targets, bbox_weights, sigma: float = 1.0):
    """Per-RoI current losses: softmax cross-entropy ``-log p[label]`` and weighted smooth-L1 box loss.

    ``cls_prob`` (R, C) probabilities; ``bbox_pred`` / ``bbox_targets`` / ``bbox_weights`` (R, 4k). RoIs
    labelled -1 get zero classification loss. Returns ``(cls_loss (R,), box_loss (R,))``.
    """
    cls_prob = np.asarray(cls_prob, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    R = len(labels)
    cls_loss = np.zeros(R)
    ok = labels >= 0
    cls_loss[ok] = -np.log(np.maximum(cls_prob.reshape(R, -1)[np.flatnonzero(ok), labels[ok]], 1e-14))
    diff = (np.asarray(bbox_pred, dtype=np.float64) - np.asarray(bbox_targets, dtype=np.float64)).reshape(R, -1)
    box_loss = (np.asarray(bbox_weights, dtype=np.float64).reshape(R, -1) * smooth_l1(diff, sigma)).sum(axis=1)
    return cls_loss, box_loss


def _hardest(idx: np.ndarray, loss: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` entries of ``idx`` with the largest loss (equal losses: lower index first)."""
    order = np.lexsort((idx, -loss[idx]))
    return idx[order[:max(k, 0)]]


OHEM_MODES = ("ratio", "topk")


def ohem_keep(labels, loss, batch_size: int, fg_fraction: float, image_index=None, *,
              mode: str = "ratio") -> np.ndarray:
    """OHEM selection (Sec. 5.1): (R,) bool of the RoIs kept, per image.

    In each image the RoIs with a label (0 or 1) are ranked by their current loss (equal losses: lower index
    first). ``mode="ratio"``: the hardest ``round(fg_fraction * B)`` positives are kept, then the hardest
    negatives fill the batch up to ``B`` (positives : negatives = 1 : 3 with ``fg_fraction = 0.25``).
    ``mode="topk"`` (R-FCN's ``box_annotator_ohem``): the ``B`` hardest labelled RoIs, whatever their label.
    ``B < 0`` keeps every labelled RoI.
    """
    if mode not in OHEM_MODES:
        raise ValueError(f"unknown OHEM mode {mode!r}; expected one of {', '.join(OHEM_MODES)}")
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    images = np.zeros(len(labels), dtype=np.int64) if image_index is None else \
        np.asarray(image_index).reshape(-1).astype(np.int64)
    keep = np.zeros(len(labels), dtype=bool)
    everything = len(labels)
    for img in np.unique(images):
        here = images == img
        if mode == "topk":
            labelled = here & ((labels == 0) | (labels == 1))
            keep[_hardest(np.flatnonzero(labelled), loss, batch_size if batch_size >= 0 else everything)] = True
            continue
        n_fg_max = fg_quota(batch_size, fg_fraction) if batch_size >= 0 else everything
        fg = _hardest(np.flatnonzero(here & (labels == 1)), loss, n_fg_max)
        n_bg = (batch_size - len(fg)) if batch_size >= 0 else everything
        bg = _hardest(np.flatnonzero(here & (labels == 0)), loss, n_bg)
        keep[fg] = True
        keep[bg] = True
    return keep


def ohem_labels(labels, bbox_weights, loss, batch_size: int, fg_fraction: float, image_index=None, *,
                mode: str = "ratio"):
    """Apply :func:`ohem_keep` (same ``mode``): unselected RoIs get label -1 and zero box weights. Returns new
    arrays."""
    keep = ohem_keep(labels, loss, batch_size, fg_fraction, image_index, mode=mode)
    labels = np.where(keep, np.asarray(labels).reshape(-1), -1).astype(np.int32)
    weights = np.array(bbox_weights, dtype=np.float64, copy=True).reshape(len(labels), -1)
    weights[~keep] = 0.0
    return labels, weights
