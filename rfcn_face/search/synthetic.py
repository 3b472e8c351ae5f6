"""Deterministic synthetic face features: identities are clusters on the unit sphere.

Identity ``i`` has a centre ``c_i``, a random unit vector. An image of identity ``i`` is
``normalize(c_i + spread * g / sqrt(dim))`` with ``g`` standard normal, so the noise has norm ~``spread``
and the expected cosine between an image and its centre is ~``1 / sqrt(1 + spread^2)`` (two images of one
identity: ~``1 / (1 + spread^2)``; two identities: ~0 +- 1/sqrt(dim)). A planted mislabel keeps the feature
of its true identity but carries another identity's label (the error-labelled images of Sec. 2.1, Fig. 3).
Everything is a function of ``seed``; large sets are generated in chunks (float32).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticFaces", "l2_normalize", "make_search_split"]


def l2_normalize(x, axis=1):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


@dataclass
class SyntheticFaces:
    """A population of ``n_ids`` identity centres in ``dim`` dimensions."""
    n_ids: int
    dim: int = 512
    spread: float = 1.0
    seed: int = 0

    def __post_init__(self):
        rng = np.random.default_rng([self.seed, 0])
        self.centers = l2_normalize(rng.standard_normal((self.n_ids, self.dim), dtype=np.float32))

    def sample(self, labels, stream=1, chunk=100_000):
        """Features (len(labels), dim) float32 for true identities ``labels``; ``stream`` picks an
        independent noise stream (use different streams for base and probe images)."""
        labels = np.asarray(labels, dtype=np.int64)
        rng = np.random.default_rng([self.seed, stream])
        out = np.empty((len(labels), self.dim), dtype=np.float32)
        scale = np.float32(self.spread / np.sqrt(self.dim))
        for s in range(0, len(labels), chunk):
            lab = labels[s:s + chunk]
            noise = rng.standard_normal((len(lab), self.dim), dtype=np.float32)
            noise *= scale
            noise += self.centers[lab]
            out[s:s + chunk] = l2_normalize(noise)
        return out

    def identity_set(self, ids, per_id, mislabel_fraction=0.0, stream=1):
        """``per_id`` images (an int, or one count per identity) of each identity in ``ids``; a fraction of them relabelled to another identity of
        ``ids``. Returns (features, labels, true_labels, mislabelled mask)."""
        ids = np.asarray(ids, dtype=np.int64)
        true = np.repeat(ids, per_id)
        feats = self.sample(true, stream=stream)
        labels = true.copy()
        rng = np.random.default_rng([self.seed, stream, 7])
        n_bad = int(round(mislabel_fraction * len(true)))
        bad = np.zeros(len(true), dtype=bool)
        if n_bad and len(ids) > 1:
            where = rng.choice(len(true), size=n_bad, replace=False)
            shift = rng.integers(1, len(ids), size=n_bad)
            order = np.argsort(ids)
            pos = order[np.searchsorted(ids[order], true[where])]
            labels[where] = ids[(pos + shift) % len(ids)]
            bad[where] = True
        return feats, labels, true, bad


def make_search_split(n_base_ids, per_id, n_present, n_absent, probes_per_id=3, dim=512, spread=1.0,
                      mislabel_fraction=0.0, seed=0):
    """The paper's validation protocol in miniature (Sec. 5): a base set of ``n_base_ids`` identities with
    ``per_id`` images each (int or per-identity counts), and probes of ``n_present`` base identities plus ``n_absent`` identities not in
    the base (paper: 800 + 200 identities, 3 images each). Returns a dict of base/probe features and labels;
    absent probe identities have labels >= ``n_base_ids``."""
    if n_present > n_base_ids:
        raise ValueError(f"n_present={n_present} exceeds n_base_ids={n_base_ids}")
    pop = SyntheticFaces(n_base_ids + n_absent, dim=dim, spread=spread, seed=seed)
    base, base_labels, base_true, bad = pop.identity_set(np.arange(n_base_ids), per_id, mislabel_fraction,
                                                         stream=1)
    rng = np.random.default_rng([seed, 3])
    present = np.sort(rng.choice(n_base_ids, size=n_present, replace=False))
    probe_ids = np.concatenate([present, np.arange(n_base_ids, n_base_ids + n_absent)])
    probe_labels = np.repeat(probe_ids, probes_per_id)
    probe = pop.sample(probe_labels, stream=2)
    return {"base": base, "base_labels": base_labels, "base_true_labels": base_true, "base_mislabelled": bad,
            "probe": probe, "probe_labels": probe_labels}
