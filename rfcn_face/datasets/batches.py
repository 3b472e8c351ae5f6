"""Training batches keyed by (seed, epoch, image index), so a run does not depend on how it is split.

* :func:`epoch_order` — the shuffled image order of an epoch, ``default_rng([seed, 1, epoch])``;
* :func:`global_batch` — the images of iteration ``i``: positions ``[i*G, (i+1)*G)`` of the epoch order, with
  ``G`` = images per device x devices x workers (an epoch has ``floor(n / G)`` iterations; the last partial
  batch is dropped, so every iteration has exactly ``G`` images however they are split);
* :func:`shard` — the part of a global batch that one worker's devices handle;
* :func:`make_sample` — one training image: transforms (:class:`rfcn_face.transforms.TrainTransform`) with
  ``default_rng([seed, 2, epoch, index])``, normalisation, gt rows, and the prediction-free part of the image's
  anchor targets (:class:`AnchorTargetMaker`; complete targets, sampled with ``default_rng([seed, 3, epoch,
  index])``, for a strategy that does not read the network's predictions);
* :class:`SampleBuilder` — ``builder(epoch, index)``: :func:`make_sample` with everything it needs, picklable,
  what the worker processes of :mod:`rfcn_face.datasets.process_loader` run;
* :func:`roi_rng` — the Generator of the R-FCN RoI minibatch of an image, ``default_rng([seed, 4, epoch, index])``.

Every random draw of an image is a function of (seed, epoch, image index) only: the same image gets the same
flip, shift and anchor sample whichever device or worker handles it, and after a resume.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from ..assigners import build_assigner
from ..config import normalisation_of
from ..proposals import ProposalTargetParams
from ..sampling import sampling_keys
from ..transforms import TrainTransform
from .images import prepare_train_image

__all__ = ["TrainSample", "epoch_order", "iterations_per_epoch", "global_batch", "shard", "image_rng", "roi_rng",
           "make_sample", "AnchorTargetMaker", "SampleBuilder", "STREAM_ORDER", "STREAM_TRANSFORM", "STREAM_RPN",
           "STREAM_ROI"]

STREAM_ORDER, STREAM_TRANSFORM, STREAM_RPN, STREAM_ROI = 1, 2, 3, 4


@dataclass
class TrainSample:
    """One training image after transforms: ``image`` (3, H, W) float32 normalised, ``gt`` (M, 5) rows
    ``x1 y1 x2 y2 flag`` (M >= 1, padding rows -1), ``im_info`` (3,) height, width, scale. The anchor targets:
    ``targets`` (:class:`~rfcn_face.assigners.LossTargets`) when the strategy needs no prediction (complete in the
    loader), else ``plan`` (:class:`~rfcn_face.assigners.AnchorPlan`), which the step finishes after the forward;
    ``present`` the gt rows they cover (padding rows left out), ``rpn_seconds`` the time they took. ``roi_keys``
    (post + M,) the keys of the R-FCN RoI minibatch (OHEM off only). ``device`` the NDArrays the training loop
    made of all this on the image's device (its loader hook)."""

    index: int
    epoch: int
    image: np.ndarray
    gt: np.ndarray
    im_info: np.ndarray
    targets: Optional[object] = None
    plan: Optional[object] = None
    present: Optional[np.ndarray] = None
    roi_keys: Optional[np.ndarray] = None
    rpn_seconds: float = 0.0
    device: Optional[dict] = None


def image_rng(seed: int, stream: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(stream), int(epoch), int(index)])


def roi_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return image_rng(seed, STREAM_ROI, epoch, index)


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
    return np.random.default_rng([int(seed), STREAM_ORDER, int(epoch)]).permutation(n) if shuffle \
        else np.arange(n)


def iterations_per_epoch(n: int, global_batch_size: int) -> int:
    if global_batch_size <= 0:
        raise ValueError(f"the global batch must hold at least one image, got {global_batch_size}")
    if n < global_batch_size:
        raise ValueError(f"{n} training images cannot fill one global batch of {global_batch_size} "
                         "(images per device x devices x workers)")
    return n // global_batch_size


def global_batch(seed: int, epoch: int, it_in_epoch: int, n: int, global_batch_size: int,
                 shuffle: bool = True) -> np.ndarray:
    """Image indices of iteration ``it_in_epoch`` of ``epoch`` (G of them)."""
    order = epoch_order(seed, epoch, n, shuffle)
    return order[it_in_epoch * global_batch_size:(it_in_epoch + 1) * global_batch_size]


def shard(batch: Sequence[int], rank: int, num_workers: int, num_devices: int) -> List[List[int]]:
    """The images of worker ``rank``, split over its ``num_devices`` devices: worker w takes the w-th equal
    part of the global batch, device d the d-th equal part of that."""
    batch = list(batch)
    per_worker = len(batch) // num_workers
    mine = batch[rank * per_worker:(rank + 1) * per_worker]
    per_device = per_worker // num_devices
    return [mine[d * per_device:(d + 1) * per_device] for d in range(num_devices)]


class AnchorTargetMaker:
    """The prediction-free part of an image's anchor targets, run where the image is built (the loader):
    ``maker(gt rows, im_info, rng) -> (present rows, AnchorPlan)`` with the strategy ``assigner``
    (:mod:`rfcn_face.assigners`) over ``anchor_set`` tiled on the image's RPN map."""

    def __init__(self, assigner, anchor_set):
        self.assigner, self.anchor_set = assigner, anchor_set

    def __call__(self, gt, im_info, rng):
        from ..anchors import feature_size
        from ..targets import cached_grid, split_gt
        stride = self.anchor_set.stride
        h, w = float(im_info[0]), float(im_info[1])
        grid = cached_grid(self.anchor_set, feature_size(int(h), stride), feature_size(int(w), stride))
        present, boxes, ignore = split_gt(gt)
        return present, self.assigner.prepare(grid, boxes, ignore, (h, w), rng=rng)


def make_sample(record, cfg, norm, transform: TrainTransform, epoch: int, index: int,
                rpn_targets: Optional[Callable] = None) -> TrainSample:
    """The training sample of image ``index`` in ``epoch`` (see the module docstring for its random draws).
    ``rpn_targets(gt, im_info, rng) -> (present, plan)`` (an :class:`AnchorTargetMaker`) prepares the anchor
    targets ahead of the forward pass (None: not at all); complete targets travel as their
    :class:`~rfcn_face.assigners.LossTargets` only. With ``rcnn.ohem`` off the RoI minibatch keys are drawn too."""
    seed = cfg.train.seed
    image, gt, im_info, _ = prepare_train_image(record, transform, norm,
                                                image_rng(seed, STREAM_TRANSFORM, epoch, index))
    if len(gt) == 0:
        gt = -np.ones((1, 5), np.float32)
    sample = TrainSample(index, epoch, image, gt, im_info)
    if rpn_targets is not None:
        t0 = time.perf_counter()
        sample.present, plan = rpn_targets(sample.gt, sample.im_info, image_rng(seed, STREAM_RPN, epoch, index))
        if plan.targets is not None:
            sample.targets = plan.targets.for_loss()
        else:
            sample.plan = plan
        sample.rpn_seconds = time.perf_counter() - t0
    if ProposalTargetParams.from_config(cfg).batch_rois > 0:
        sample.roi_keys = sampling_keys(roi_rng(seed, epoch, index), int(cfg.rpn.post_nms_top_n) + len(gt))
    return sample


class SampleBuilder:
    """``builder(epoch, index) -> TrainSample`` of ``records[index]`` (:func:`make_sample` with the config's
    normalisation, :class:`~rfcn_face.transforms.TrainTransform` and the :class:`AnchorTargetMaker` of the config's
    strategy). Picklable and MXNet-free: each loader worker process unpickles one; ``describe(index)`` names the
    image in errors."""

    def __init__(self, cfg, records):
        self.cfg, self.records = cfg, list(records)
        self.norm = normalisation_of(cfg)
        self.transform = TrainTransform(cfg, fill=np.asarray(self.norm.fill, np.uint8))
        self.rpn_targets = AnchorTargetMaker(build_assigner(cfg), cfg.anchor_set())

    def __call__(self, epoch: int, index: int) -> TrainSample:
        return make_sample(self.records[index], self.cfg, self.norm, self.transform, epoch, index,
                           self.rpn_targets)

    def describe(self, index: int) -> str:
        return str(self.records[index].image_path)
