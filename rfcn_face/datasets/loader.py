"""Gluon ``DataLoader`` pipelines for training and testing (imports mxnet).

Training batches are ``(data, gt, im_info)``:

* ``data``    (B, 3, H, W) float32, RGB, normalised ``(pixel * scale - mean) / std`` with the config's
  :class:`rfcn_face.config.Normalisation` (``model.pixel_*``: Caffe style for the MXNet checkpoint, 0..1
  ImageNet style for GluonCV weights; :func:`rfcn_face.config.resolve_normalisation` must have set it),
  zero-padded (= the mean pixel) at the bottom / right to the largest image of the batch (optionally to a
  multiple of ``pad_multiple``);
* ``gt``      (B, N, 5) float32 rows ``(x1, y1, x2, y2, flag)`` in the continuous convention of
  :mod:`rfcn_face.boxes`, ``flag`` = 0 for a face, 1 for an ignored face (WIDER invalid, face-eval ignore
  region, degenerate row), padding rows all ``-1`` (N >= 1) — the layout ``operators.anchor_target`` and
  ``operators.proposal_target`` read;
* ``im_info`` (B, 3) float32 ``(height, width, scale)`` of each image before padding (``scale`` = the resize
  factor applied to the original image, (sx + sy) / 2).

Test batches are ``(data, im_info, index)`` with ``index`` the record's position.

Transforms come from the config (:class:`rfcn_face.transforms.TrainTransform`: ``train.flip``,
``train.shift_jitter``, ``train.max_size``, ``train.multiscale_sizes``; tests: one ``test.sizes`` entry).
Shift-jitter padding takes the mean pixel (:attr:`Normalisation.fill`, 0..255), which normalises to 0.
Randomness is reproducible with any number of workers: the sampler hands each sample a key
``(index, draw)`` and the sample's generator is ``default_rng([seed, draw])``. (The training loop does not use
these loaders: it keys every draw by (seed, epoch, image), :mod:`rfcn_face.datasets.batches`, and builds its
samples in the worker processes of :mod:`rfcn_face.datasets.process_loader`; both build an image with
:func:`prepare_train_image`, which lives with the other MXNet-free image functions in
:mod:`rfcn_face.datasets.images` and is re-exported here.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from mxnet.gluon.data import Dataset

from ..config import Normalisation, normalisation_of
from ..transforms import TestTransform, TrainTransform, inference_sizes
from .images import image_info, load_image, normalise_image, prepare_train_image

__all__ = [
    "load_image", "normalise_image", "image_info", "prepare_train_image", "FaceTrainDataset", "FaceTestDataset",
    "EpochSampler", "train_batchify", "test_batchify", "train_loader", "test_loader", "data_base", "records_for_split",
]


def _norm(cfg, norm):
    return normalisation_of(cfg) if norm is None else norm


class EpochSampler:
    """Yields ``(index, draw)`` keys: a (shuffled) pass over ``n`` samples; ``draw`` counts every sample
    handed out since creation, so each draw of the same image gets fresh, reproducible randomness."""

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0):
        self.n, self.shuffle, self.seed, self.epoch = int(n), bool(shuffle), int(seed), 0

    def __iter__(self):
        order = np.random.default_rng([self.seed, 1, self.epoch]).permutation(self.n) if self.shuffle \
            else np.arange(self.n)
        base = self.epoch * self.n
        self.epoch += 1
        return iter([(int(i), base + k) for k, i in enumerate(order)])

    def __len__(self):
        return self.n


class _DatasetBase(Dataset):
    def __init__(self, records):
        self.records = list(records)

    def __len__(self):
        return len(self.records)


class FaceTrainDataset(_DatasetBase):
    """``dataset[(index, draw)]`` (or ``dataset[index]``) -> ``(image CHW float32, gt (N, 5), im_info (3,))``.
    ``norm`` defaults to the config's resolved normalisation (:func:`rfcn_face.config.normalisation_of`)."""

    def __init__(self, records, cfg, seed: int = None, norm: Normalisation = None):
        super().__init__(records)
        self.norm = _norm(cfg, norm)
        self.transform = TrainTransform(cfg, fill=np.asarray(self.norm.fill, np.uint8))
        self.seed = int(cfg.train.seed if seed is None else seed)

    def __getitem__(self, key):
        index, draw = key if isinstance(key, tuple) else (int(key), int(key))
        rng = np.random.default_rng([self.seed, int(draw)])
        return prepare_train_image(self.records[index], self.transform, self.norm, rng)[:3]


class FaceTestDataset(_DatasetBase):
    """``dataset[index]`` -> ``(image CHW float32, im_info (3,), index)`` at one Table 2 test size, normalised
    with ``norm`` (the run's :func:`rfcn_face.config.normalisation_of`)."""

    def __init__(self, records, size=(0, 0), *, norm: Normalisation):
        super().__init__(records)
        if not isinstance(norm, Normalisation):
            raise TypeError(f"FaceTestDataset needs norm= a rfcn_face.config.Normalisation, got {norm!r}")
        self.transform = TestTransform(size)
        self.norm = norm

    def __getitem__(self, index):
        r = self.records[int(index)]
        img, scale = self.transform(load_image(r.image_path))
        return normalise_image(img, self.norm), image_info(img, scale), np.int64(index)


def _pad_images(images, pad_multiple: int):
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    if pad_multiple > 0:
        h = -(-h // pad_multiple) * pad_multiple
        w = -(-w // pad_multiple) * pad_multiple
    out = np.zeros((len(images), images[0].shape[0], h, w), np.float32)
    for k, im in enumerate(images):
        out[k, :, :im.shape[1], :im.shape[2]] = im
    return out


def train_batchify(samples, pad_multiple: int = 0):
    """Stack samples: images padded to a common size, gt padded with rows of -1 (numpy arrays)."""
    images, gts, infos = zip(*samples)
    n = max(1, max(len(g) for g in gts))
    gt = -np.ones((len(gts), n, 5), np.float32)
    for k, g in enumerate(gts):
        gt[k, :len(g)] = g
    return _pad_images(images, pad_multiple), gt, np.stack(infos)


def test_batchify(samples, pad_multiple: int = 0):
    images, infos, index = zip(*samples)
    return _pad_images(images, pad_multiple), np.stack(infos), np.asarray(index, np.int64)


test_batchify.__test__ = False


class _PaddedBatchify:
    """Picklable batchify (workers) that returns mxnet NDArrays."""

    def __init__(self, kind, pad_multiple):
        self.kind, self.pad_multiple = kind, int(pad_multiple)

    def __call__(self, samples):
        import mxnet as mx
        f = train_batchify if self.kind == "train" else test_batchify
        return tuple(mx.nd.array(a, dtype=a.dtype) for a in f(samples, self.pad_multiple))


def train_loader(records, cfg, batch_size: int = None, num_workers: int = 0, shuffle: bool = True,
                 seed: int = None, pad_multiple: int = 0, norm: Normalisation = None):
    """A Gluon DataLoader over training records; ``batch_size`` defaults to ``train.batch_images``, ``norm`` to
    the config's resolved normalisation; ``num_workers``: Gluon's worker processes (0 = in this process;
    ``data.num_workers`` is the training loop's :mod:`rfcn_face.datasets.process_loader`)."""
    from mxnet.gluon.data import DataLoader
    from mxnet.gluon.data.sampler import BatchSampler
    ds = FaceTrainDataset(records, cfg, seed=seed, norm=norm)
    bs = int(cfg.train.batch_images if batch_size is None else batch_size)
    sampler = EpochSampler(len(ds), shuffle=shuffle, seed=ds.seed)
    return DataLoader(ds, batch_sampler=BatchSampler(sampler, bs, "keep"),
                      batchify_fn=_PaddedBatchify("train", pad_multiple),
                      num_workers=int(num_workers))


def test_loader(records, cfg, size=None, batch_size: int = 1, num_workers: int = 0, pad_multiple: int = 0,
                norm: Normalisation = None):
    """A Gluon DataLoader over test records at ``size`` (default: the first of
    :func:`rfcn_face.transforms.inference_sizes`), ``norm`` defaulting to the config's resolved normalisation,
    ``num_workers`` Gluon worker processes (0 = in this process)."""
    from mxnet.gluon.data import DataLoader
    size = inference_sizes(cfg)[0] if size is None else size
    ds = FaceTestDataset(records, size=size, norm=_norm(cfg, norm))
    return DataLoader(ds, batch_size=int(batch_size), shuffle=False, last_batch="keep",
                      batchify_fn=_PaddedBatchify("test", pad_multiple),
                      num_workers=int(num_workers))


test_loader.__test__ = False


def data_base(cfg) -> Path:
    """The WIDER-layout folder a config reads (``wider_face_split/``, ``WIDER_<split>/images``, ``ground_truth/``):

    * ``synthfaces``: ``data.root`` (or ``data.root/synthfaces``) if it holds a ``synthfaces.json``, else the
      cached default set (:func:`rfcn_face.datasets.synthfaces.ensure_synthfaces`, generated on first use);
    * ``wider``: ``<data.root>/widerface`` (see data/README.md), or ``data.root`` itself when it is a WIDER-layout
      folder (:func:`rfcn_face.datasets.wider.wider_base`).
    """
    from .synthfaces import synthfaces_root
    from .wider import wider_base
    root = Path(cfg.data.root)
    if cfg.data.dataset == "synthfaces":
        return synthfaces_root(root)
    if cfg.data.dataset == "wider":
        return wider_base(root)
    raise ValueError(f"data.dataset must be 'synthfaces' or 'wider', got {cfg.data.dataset!r}")


def records_for_split(cfg, split: str):
    """The records of ``split`` ('train' / 'val') of :func:`data_base`: ``wider_face_split/wider_face_<split>_bbx_gt.txt``
    with images under ``WIDER_<split>/images``; every image must exist."""
    from .wider import wider_split_records
    return wider_split_records(data_base(cfg), split, check_images=True)
