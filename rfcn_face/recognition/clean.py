"""Dataset cleaning by per-identity 2-means (Qi, Liu & Su, Sec. 2.1, Fig. 3).

For every identity folder: 2-means on its features; the centre of the larger cluster is the *main centre*;
an image whose distance to the main centre exceeds ``factor`` (2) times the average distance is dropped.
"The average distance of corresponding points" is read as the mean distance of all the identity's images to
the main centre (``reference="all"``, default); ``reference="main"`` averages over the main cluster only.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np

__all__ = ["two_means", "clean_identity", "clean_dataset", "CleanReport"]


def two_means(x, iters=100):
    """Deterministic 2-means (Lloyd). Seeds: the point farthest from the mean, then the point farthest from
    it. Returns (assignment (n,) in {0, 1}, centres (2, d)). Fewer than 2 distinct points: one cluster."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return np.zeros(len(x), int), np.vstack([x.mean(0), x.mean(0)]) if len(x) else np.zeros((2, x.shape[1]))
    a = int(np.argmax(((x - x.mean(0)) ** 2).sum(1)))
    b = int(np.argmax(((x - x[a]) ** 2).sum(1)))
    centres = np.stack([x[a], x[b]])
    assign = np.zeros(len(x), int)
    for _ in range(iters):
        d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
        new = np.argmin(d2, axis=1)
        for k in (0, 1):
            if np.any(new == k):
                centres[k] = x[new == k].mean(0)
        if np.array_equal(new, assign) and _ > 0:
            break
        assign = new
    return assign, centres


def clean_identity(x, factor=2.0, reference="all"):
    """Keep-mask (n,) and per-image distances to the main centre for one identity's features."""
    x = np.asarray(x, np.float64)
    assign, centres = two_means(x)
    counts = np.bincount(assign, minlength=2)
    main = int(np.argmax(counts))  # the cluster with more points (ties: the first seed's)
    dist = np.linalg.norm(x - centres[main], axis=1)
    if reference == "all":
        avg = dist.mean()
    elif reference == "main":
        avg = dist[assign == main].mean()
    else:
        raise ValueError(f"unknown reference {reference!r}; expected 'all' or 'main'")
    return dist <= factor * avg, dist, factor * avg


@dataclass
class CleanReport:
    keep: np.ndarray                                 # (n,) bool over the whole dataset
    rows: list = field(default_factory=list)         # one dict per dropped image
    per_identity: dict = field(default_factory=dict)  # label -> (n images, n dropped)

    @property
    def dropped(self):
        return np.flatnonzero(~self.keep)

    def summary(self):
        n_ids = sum(1 for _, d in self.per_identity.values() if d)
        return (f"dropped {int((~self.keep).sum())} of {len(self.keep)} images "
                f"from {n_ids} of {len(self.per_identity)} identities")

    def write_csv(self, path, names=None):
        from ..checkpoint import atomic_write_file

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["index", "name", "identity", "distance", "threshold"])
                for r in self.rows:
                    w.writerow([r["index"], names[r["index"]] if names is not None else "", r["identity"],
                                f"{r['distance']:.6f}", f"{r['threshold']:.6f}"])
        atomic_write_file(path, write)


def clean_dataset(features, labels, factor=2.0, reference="all", min_images=3, progress=False):
    """Sec. 2.1 cleaning of a whole dataset. Identities with fewer than ``min_images`` images are kept as
    they are (2-means on 1-2 points says nothing)."""
    features, labels = np.asarray(features), np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(features)} features")
    keep = np.ones(len(labels), bool)
    report = CleanReport(keep)
    ids = np.unique(labels)
    if progress:
        from tqdm import tqdm
        ids = tqdm(ids, desc="clean", unit="id")
    for ident in ids:
        idx = np.flatnonzero(labels == ident)
        if len(idx) < min_images:
            report.per_identity[ident.item() if hasattr(ident, "item") else ident] = (len(idx), 0)
            continue
        k, dist, thr = clean_identity(features[idx], factor, reference)
        keep[idx] = k
        key = ident.item() if hasattr(ident, "item") else ident
        report.per_identity[key] = (len(idx), int((~k).sum()))
        for j in np.flatnonzero(~k):
            report.rows.append({"index": int(idx[j]), "identity": key, "distance": float(dist[j]),
                                "threshold": float(thr)})
    return report
