"""Identity datasets for FRN training: the embedded LFW crops and a folder-per-identity dataset.

Embedded set (:func:`lfw_identities`): the first 100 images of ``skimage.data.lfw_subset()`` are 25x25 grey
LFW face crops without identity labels; each crop is treated as one identity, and ``views`` augmented views
are made of it (horizontal flip, small similarity jitter, brightness / contrast, Gaussian noise), warped
straight to a 112x96 RGB crop (grey replicated to 3 channels). Deterministic for a given ``seed``.

Folder dataset (:class:`FolderDataset`): ``root/<identity>/<image>.{jpg,jpeg,png,bmp}``, identities sorted
by folder name. Images should already be aligned 112x96 crops (:func:`rfcn_face.recognition.align.align_face`);
others are resized to 112x96.

Images are uint8 arrays (N, 3, 112, 96) in RGB order; the network normalises (x - 127.5) / 128 itself.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["lfw_identities", "FolderDataset", "split_views", "iterate_batches", "IMAGE_EXTS"]

CROP_H, CROP_W = 112, 96
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _jitter_matrix(rng, size, out_hw, max_rot=8.0, max_scale=0.08, max_shift=0.06, flip=False):
    """2x3 map from a ``size`` x ``size`` crop to the (H, W) output: random similarity about the centre,
    optional mirror, then the anisotropic resize to the output."""
    h, w = out_hw
    a = np.deg2rad(rng.uniform(-max_rot, max_rot))
    s = 1.0 + rng.uniform(-max_scale, max_scale)
    t = rng.uniform(-max_shift, max_shift, 2) * size
    c = (size - 1) / 2.0
    R = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if flip:
        R = R @ np.diag([-1.0, 1.0])
    jit = np.hstack([R, (np.array([c, c]) - R @ [c, c] + t)[:, None]])
    # resize, pixel centres at integers: x_out + 0.5 = (w / size) (x_in + 0.5)
    S = np.diag([w / size, h / size])
    return np.hstack([S @ jit[:, :2], (S @ (jit[:, 2] + 0.5) - 0.5)[:, None]])


def _view(img01, rng, hw=(CROP_H, CROP_W), jitter=True):
    import cv2
    size = img01.shape[0]
    flip = bool(rng.random() < 0.5) if jitter else False
    M = _jitter_matrix(rng, size, hw, flip=flip) if jitter else _jitter_matrix(rng, size, hw, 0, 0, 0)
    out = cv2.warpAffine(img01.astype(np.float32), M, (hw[1], hw[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    if jitter:
        contrast, bright = rng.uniform(0.75, 1.25), rng.uniform(-0.1, 0.1)
        out = (out - out.mean()) * contrast + out.mean() + bright
        out = out + rng.normal(0, 0.02, out.shape)
    out = np.clip(out * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(out[None], 3, axis=0)


def lfw_identities(n_ids=100, views=10, seed=0, progress=False):
    """(images uint8 (n_ids*views, 3, 112, 96), labels (n,), view index (n,)) from the embedded LFW crops.
    View 0 of each identity is the un-jittered crop; views 1.. are augmented."""
    try:
        from skimage.data import lfw_subset
    except ImportError as e:  # pragma: no cover
        raise ValueError("scikit-image is needed for the embedded LFW identities") from e
    faces = lfw_subset()[:100]
    if not 1 <= n_ids <= len(faces):
        raise ValueError(f"n_ids must be in 1..{len(faces)}, got {n_ids}")
    rng = np.random.default_rng(seed)
    images = np.empty((n_ids * views, 3, CROP_H, CROP_W), np.uint8)
    labels = np.repeat(np.arange(n_ids), views)
    view_idx = np.tile(np.arange(views), n_ids)
    it = range(n_ids)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="LFW views", unit="id")
    for i in it:
        for v in range(views):
            images[i * views + v] = _view(faces[i], rng, jitter=v > 0)
    return images, labels, view_idx


def split_views(labels, view_idx, n_train_views):
    """Boolean masks (train, held_out): views < n_train_views train, the rest are held out."""
    train = np.asarray(view_idx) < n_train_views
    return train, ~train


class FolderDataset:
    """Folder-per-identity dataset loaded into memory as uint8 (N, 3, 112, 96) RGB."""

    def __init__(self, root, max_per_identity=None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"identity folder dataset not found: {root}")
        self.root = root
        self.names = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.paths, labels = [], []
        for k, name in enumerate(self.names):
            files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if max_per_identity:
                files = files[:max_per_identity]
            self.paths += files
            labels += [k] * len(files)
        if not self.paths:
            raise ValueError(f"{root}: no images found in identity sub-folders ({', '.join(IMAGE_EXTS)})")
        self.labels = np.asarray(labels, np.int64)

    def __len__(self):
        return len(self.paths)

    def load(self, progress=False):
        import cv2

        from ..datasets.images import decode_image
        images = np.empty((len(self.paths), 3, CROP_H, CROP_W), np.uint8)
        it = enumerate(self.paths)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, total=len(self.paths), desc="load", unit="img")
        for i, p in it:
            im = decode_image(p)                   # a truncated / undecodable file: an error naming it
            if im.shape[:2] != (CROP_H, CROP_W):
                im = cv2.resize(im, (CROP_W, CROP_H), interpolation=cv2.INTER_AREA)
            images[i] = im[:, :, ::-1].transpose(2, 0, 1)
        return images


def iterate_batches(n, batch_size, rng=None, drop_last=False):
    """Index batches over ``n`` items, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for s in range(0, stop, batch_size):
        yield order[s:s + batch_size]
