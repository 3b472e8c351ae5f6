"""Anchor sets: scales x ratios tiled at the feature stride, plus extra shifted anchors (Sec. 4.2, Fig. 6).

Coordinates follow :mod:`rfcn_face.boxes` (continuous, no "+1"). Feature-map location ``(x, y)`` of a map
with stride ``sF`` is centred at ``((x + 0.5) * sF, (y + 0.5) * sF)``.

Order of anchors at one location (the RPN's output channels follow it exactly)
-----------------------------------------------------------------------------
1. the centred anchors, scale-major then ratio: ``for s in scales: for r in ratios`` (ratio r = h / w,
   so ``w = s / sqrt(r)``, ``h = s * sqrt(r)``);
2. then the shifted anchors, in the order of the shift spec (``"16x3&32x1"`` -> the three 16-anchors, then
   the one 32-anchor). ``s x 1`` adds one s-by-s anchor offset by ``(sF/2, sF/2)``; ``s x 3`` adds three,
   offset by ``(sF/2, 0)``, ``(0, sF/2)``, ``(sF/2, sF/2)`` in that order (right, down, down-right).

The tiled set is ordered location-major: anchor ``a`` of location ``(x, y)`` on an ``H x W`` map is row
``(y * W + x) * A + a`` (the layout ``(H, W, A, 4)`` flattened). A network output of shape ``(A*k, H, W)``
is brought into this order by reshaping to ``(A, k, H, W)`` and transposing to ``(H, W, A, k)``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["parse_shift_spec", "format_shift_spec", "shift_offsets", "AnchorSet", "feature_size", "DEFAULT_SCALES",
           "DEFAULT_RATIOS", "to_anchor_order_np"]

# Sec. 3.3 / 5.1: S = {16, ..., 512}, R = {1} (the one place these defaults are written)
DEFAULT_SCALES = (16, 32, 64, 128, 256, 512)
DEFAULT_RATIOS = (1.0,)

_SPEC_ITEM = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
# Fig. 6: offsets of the extra anchors, as fractions of the feature stride.
_SHIFT_FRACTIONS = {
    1: ((0.5, 0.5),),
    3: ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5)),
}


def parse_shift_spec(spec) -> tuple[tuple[int, int], ...]:
    """``"16x3&32x1"`` -> ``((16, 3), (32, 1))``; ``""``/``None``/``"none"`` -> ``()``.

    A list of strings or of ``(scale, n)`` pairs is accepted too. ``n`` must be 1 or 3 (Fig. 6).
    """
    if spec is None:
        return ()
    if isinstance(spec, (list, tuple)):
        items = []
        for it in spec:
            items.extend(parse_shift_spec(it) if isinstance(it, str) else [tuple(int(v) for v in it)])
    else:
        text = str(spec).strip()
        if text.lower() in ("", "none"):
            return ()
        items = []
        for part in text.split("&"):
            m = _SPEC_ITEM.match(part)
            if not m:
                raise ValueError(f"bad shifted-anchor spec {spec!r}: expected items like '16x3' joined by '&'")
            items.append((int(m.group(1)), int(m.group(2))))
    seen = set()
    for s, n in items:
        if n not in _SHIFT_FRACTIONS:
            raise ValueError(f"bad shifted-anchor spec {spec!r}: n must be 1 or 3 (Fig. 6), got {s}x{n}")
        if s <= 0:
            raise ValueError(f"bad shifted-anchor spec {spec!r}: scale must be positive")
        if s in seen:
            raise ValueError(f"bad shifted-anchor spec {spec!r}: scale {s} appears twice")
        seen.add(s)
    return tuple(items)


def format_shift_spec(shifts) -> str:
    return "&".join(f"{s}x{n}" for s, n in parse_shift_spec(shifts))


def shift_offsets(n: int, stride: float) -> np.ndarray:
    """(n, 2) offsets ``(dx, dy)`` of the ``s x n`` shifted anchors from the location centre (Fig. 6)."""
    return np.asarray(_SHIFT_FRACTIONS[n], dtype=np.float64) * stride


def feature_size(image_size: int, stride: int) -> int:
    """Size of a feature map of stride ``stride`` over ``image_size`` pixels (``ceil``, as the conv nets give)."""
    return int(math.ceil(image_size / stride))


@dataclass(frozen=True)
class AnchorSet:
    """The anchors of one feature map: ``scales x ratios`` centred per location, plus shifted anchors."""

    stride: int
    scales: tuple = DEFAULT_SCALES
    ratios: tuple = DEFAULT_RATIOS
    shifts: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        object.__setattr__(self, "shifts", parse_shift_spec(self.shifts))
        if self.stride <= 0 or not self.scales or not self.ratios:
            raise ValueError("AnchorSet needs a positive stride, at least one scale and one ratio")

    @property
    def num_per_location(self) -> int:
        return len(self.scales) * len(self.ratios) + sum(n for _, n in self.shifts)

    def templates(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-location template in the documented order: (A, 2) centre offsets and (A, 2) sizes (w, h)."""
        offs, sizes = [], []
        for s in self.scales:
            for r in self.ratios:
                offs.append((0.0, 0.0))
                sizes.append((s / math.sqrt(r), s * math.sqrt(r)))
        for s, n in self.shifts:
            for d in shift_offsets(n, self.stride):
                offs.append(tuple(d))
                sizes.append((float(s), float(s)))
        return np.asarray(offs, dtype=np.float64), np.asarray(sizes, dtype=np.float64)

    def base(self) -> np.ndarray:
        """(A, 4) anchors of location (0, 0), centred at ``(sF/2, sF/2)`` plus their offsets."""
        offs, sizes = self.templates()
        c = 0.5 * self.stride + offs
        return np.concatenate([c - 0.5 * sizes, c + 0.5 * sizes], axis=1)

    def tile(self, height: int, width: int) -> np.ndarray:
        """(height * width * A, 4) anchors of an ``height x width`` feature map, location-major."""
        xs = np.arange(width, dtype=np.float64) * self.stride
        ys = np.arange(height, dtype=np.float64) * self.stride
        sx, sy = np.meshgrid(xs, ys)  # (H, W)
        shift = np.stack([sx, sy, sx, sy], axis=-1).reshape(height, width, 1, 4)
        return (shift + self.base()[None, None]).reshape(-1, 4)

    def smallest_anchor_period(self) -> int:
        """Per-axis period of the lattice of the smallest anchors (Sec. 4.3's sA with shifted anchors): sF/2
        when the smallest scale has an ``s x 3`` shift (its anchors then sit every sF/2 along x and y, Fig. 6c),
        else sF (an ``s x 1`` lattice maps to itself along one axis only every sF)."""
        s_min = min(self.scales)
        if any(float(s) == s_min and n == 3 for s, n in self.shifts) and self.stride % 2 == 0:
            return self.stride // 2
        return int(self.stride)

    def for_image(self, image_height: int, image_width: int) -> np.ndarray:
        """Anchors of the feature map the network produces over an image of that size."""
        return self.tile(feature_size(image_height, self.stride), feature_size(image_width, self.stride))


def to_anchor_order_np(x: np.ndarray, k: int) -> np.ndarray:
    """A network output ``(N, A*k, H, W)`` (channel ``a*k + j``) -> ``(N, H*W*A, k)`` in the tiling order above;
    :func:`symbols.rfcn.to_anchor_order` is its NDArray / Symbol twin."""
    n, ak, h, w = x.shape
    return x.reshape(n, ak // k, k, h, w).transpose(0, 3, 4, 1, 2).reshape(n, -1, k)
