import math

import numpy as np
import pytest

from rfcn_face.anchors import AnchorSet, feature_size, format_shift_spec, parse_shift_spec


def slow_tile(aset, H, W):
    """One anchor at a time in the documented order: location-major, then the per-location template."""
    s = aset.stride
    out = []
    for y in range(H):
        for x in range(W):
            cx, cy = (x + 0.5) * s, (y + 0.5) * s
            for sc in aset.scales:
                for r in aset.ratios:
                    w, h = sc / math.sqrt(r), sc * math.sqrt(r)
                    out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            for sc, n in aset.shifts:
                offs = [(s / 2, s / 2)] if n == 1 else [(s / 2, 0), (0, s / 2), (s / 2, s / 2)]
                for dx, dy in offs:
                    out.append([cx + dx - sc / 2, cy + dy - sc / 2, cx + dx + sc / 2, cy + dy + sc / 2])
    return np.array(out)


@pytest.mark.parametrize("stride,shifts,ratios", [(16, "", (1.0,)), (8, "16x3", (1.0,)),
                                                   (8, "16x3&32x1", (1.0, 2.0)), (4, "16x1", (0.5, 1.0))])
def test_tile_matches_reference_order(stride, shifts, ratios):
    a = AnchorSet(stride=stride, shifts=shifts, ratios=ratios)
    np.testing.assert_allclose(a.tile(5, 7), slow_tile(a, 5, 7))


def test_num_per_location():
    assert AnchorSet(16).num_per_location == 6
    assert AnchorSet(8, shifts="16x3").num_per_location == 9
    assert AnchorSet(8, shifts="16x3&32x1").num_per_location == 10
    assert AnchorSet(8, shifts="16x3&32x3").num_per_location == 12


def test_shift_spec_parsing():
    assert parse_shift_spec("16x3&32x1") == ((16, 3), (32, 1))
    assert parse_shift_spec("") == () and parse_shift_spec(None) == () and parse_shift_spec("none") == ()
    assert format_shift_spec(["16x3", (32, 1)]) == "16x3&32x1"
    for bad in ("16x2", "16", "x3", "16x3&16x1", "16x3,32x1"):
        with pytest.raises(ValueError):
            parse_shift_spec(bad)


def nearest_centre_distance(aset, scale):
    anchors = aset.tile(8, 8)
    sizes = anchors[:, 2] - anchors[:, 0]
    c = (anchors[sizes == scale, :2] + anchors[sizes == scale, 2:]) / 2
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    d[d == 0] = np.inf
    return d.min()


@pytest.mark.parametrize("stride", [8, 16])
def test_stride_identities_fig6(stride):
    # Fig. 6: s_A = s_F, s_F / sqrt(2), s_F / 2 for n = 0, 1, 3 extra s-anchors per location
    assert nearest_centre_distance(AnchorSet(stride), 16) == pytest.approx(stride)
    assert nearest_centre_distance(AnchorSet(stride, shifts="16x1"), 16) == pytest.approx(stride / math.sqrt(2))
    assert nearest_centre_distance(AnchorSet(stride, shifts="16x3"), 16) == pytest.approx(stride / 2)
    # the shifted 16-anchors do not change the 32-anchors' stride
    assert nearest_centre_distance(AnchorSet(stride, shifts="16x3"), 32) == pytest.approx(stride)


def test_location_centres_and_feature_size():
    a = AnchorSet(16, scales=(16,))
    t = a.tile(2, 3)
    np.testing.assert_allclose((t[:, :2] + t[:, 2:]) / 2, [[8, 8], [24, 8], [40, 8], [8, 24], [24, 24], [40, 24]])
    assert feature_size(600, 16) == 38 and feature_size(1000, 16) == 63 and feature_size(1024, 8) == 128
    assert len(AnchorSet(8, shifts="16x3").for_image(1024, 1024)) == 128 * 128 * 9
