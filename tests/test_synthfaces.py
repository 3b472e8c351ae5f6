"""synthfaces: deterministic, readable unchanged by the WIDER readers, split by identity, WIDER-like sizes,
cached."""
import hashlib
import json

import numpy as np
import pytest

from rfcn_face.datasets import synthfaces as sf
from rfcn_face.datasets.wider import read_wider_eval_gt, read_wider_split_mat, read_wider_txt


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return sf.generate_synthfaces(tmp_path_factory.mktemp("sf") / "a", num_train=8, num_val=6, seed=3)


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".jpg", ".txt"):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic(small, tmp_path):
    again = sf.generate_synthfaces(tmp_path / "b", num_train=8, num_val=6, seed=3)
    assert _digest(small) == _digest(again)
    other = sf.generate_synthfaces(tmp_path / "c", num_train=8, num_val=6, seed=4)
    assert _digest(small) != _digest(other)


def test_readers_read_it_unchanged(small):
    manifest = json.loads((small / "synthfaces.json").read_text())
    for split, n in (("train", 8), ("val", 6)):
        recs = read_wider_txt(small / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt",
                              image_root=small / f"WIDER_{split}" / "images", check_images=True)
        assert len(recs) == n == manifest["counts"][split]["images"]
        assert sum(len(r.boxes) for r in recs) == manifest["counts"][split]["faces"]
        mat = read_wider_split_mat(small / "wider_face_split" / f"wider_face_{split}.mat")
        assert [(r.event, r.name) for r in mat] == [(r.event, r.name) for r in recs]
        for r, m in zip(recs, mat):
            np.testing.assert_array_equal(r.boxes, m.boxes)
        for r in recs:
            b = r.boxes
            assert len(b) >= 1 and not r.ignore.any()
            assert b.min() >= 0 and b[:, 2:].max() <= 256
            assert np.array_equal(b, np.round(b))
            # no two faces overlap
            for i in range(len(b)):
                for j in range(i + 1, len(b)):
                    assert b[i, 2] <= b[j, 0] or b[j, 2] <= b[i, 0] or b[i, 3] <= b[j, 1] or b[j, 3] <= b[i, 1]
    gt = read_wider_eval_gt(small / "ground_truth")
    txt = read_wider_txt(small / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    assert [(r.event, r.name) for r in gt] == [(r.event, r.name) for r in txt]
    events = [r.event for r in gt]
    assert events == sorted(events, key=lambda e: int(e.split("--")[0]))       # grouped by event


def test_keep_lists_follow_the_size_rule(small):
    gt = read_wider_eval_gt(small / "ground_truth")
    for r in gt:
        s = np.sqrt((r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1]))
        occ, blur = r.attributes["occlusion"], r.attributes["blur"]
        np.testing.assert_array_equal(r.attributes["keep_hard"], np.ones(len(s), bool))
        np.testing.assert_array_equal(r.attributes["keep_medium"], (s >= 12) & (occ < 2))
        np.testing.assert_array_equal(r.attributes["keep_easy"], (s >= 24) & (occ < 2) & (blur < 2))


def test_keep_settings_literal():
    easy, medium, hard = sf.keep_settings([30, 30, 20, 8, 30], [0, 2, 1, 0, 0], [0, 0, 0, 0, 2])
    assert easy.tolist() == [True, False, False, False, False]
    assert medium.tolist() == [True, False, True, False, True]
    assert hard.tolist() == [True] * 5


def test_identity_split_is_disjoint_and_complete():
    ids = sf.split_identities(0, 25)
    for k in (0, 1):                                   # faces, non-faces
        tr, va = ids["train"][k], ids["val"][k]
        assert len(va) == 25 and len(tr) == 75
        assert not set(tr) & set(va) and set(tr) | set(va) == set(range(100))


def test_identities_used_per_split(monkeypatch):
    """Every pasted face of a split comes from that split's identities (tracked through the crop index)."""
    faces, nonfaces = sf._lfw()
    used = {"train": set(), "val": set()}
    real_patch = sf._patch

    def spy(rng, crop, w, h):
        for k in range(100):
            if np.array_equal(crop, faces[k]):
                used[current].add(k)
        return real_patch(rng, crop, w, h)

    monkeypatch.setattr(sf, "_patch", spy)
    p = sf.SynthParams(num_train=10, num_val=10)
    ids = sf.split_identities(p.seed, p.val_identities)
    bgs = sf._backgrounds()
    for current in ("train", "val"):
        for i in range(10):
            sf.render_image(p, current, i, faces, nonfaces, ids[current], bgs)
    assert used["train"] and used["val"]
    assert used["train"] <= set(ids["train"][0].tolist())
    assert used["val"] <= set(ids["val"][0].tolist())


def test_face_sizes_follow_the_truncated_wider_histogram():
    rng = np.random.default_rng(0)
    s = sf.sample_face_sizes(rng, 200000, 6, 80)
    assert s.min() >= 6 and s.max() <= 80
    edges = np.asarray(sf.WIDER_VAL_SIZE_EDGES, float)
    counts = np.asarray(sf.WIDER_VAL_SIZE_COUNTS, float)
    inside = (edges[:-1] >= 6) & (edges[1:] <= 80)     # bins fully inside [6, 80]
    expected = counts[inside] / counts[inside].sum()
    got, _ = np.histogram(s, edges)
    got = got[inside] / got[inside].sum()
    np.testing.assert_allclose(got, expected, atol=0.005)
    assert ((s >= 6) & (s < 32)).mean() > 0.6          # most faces are 6-32 px


@pytest.mark.realdata
def test_histogram_constant_matches_real_wider_val(shared_data):
    recs = read_wider_txt(shared_data / "widerface/wider_face_split/wider_face_val_bbx_gt.txt")
    b = np.concatenate([r.boxes[~r.ignore] for r in recs])
    s = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    counts, _ = np.histogram(s, sf.WIDER_VAL_SIZE_EDGES)
    assert tuple(int(c) for c in counts) == sf.WIDER_VAL_SIZE_COUNTS


def test_cache_regenerates_only_when_needed(tmp_path):
    root = sf.ensure_synthfaces(tmp_path / "cache", num_train=3, num_val=2)
    marker = root / "WIDER_train" / "marker"
    marker.write_text("x")
    assert sf.ensure_synthfaces(tmp_path / "cache", num_train=3, num_val=2) == root
    assert marker.exists()                                      # reused
    m = json.loads((root / "synthfaces.json").read_text())
    m["generator_version"] = -1
    (root / "synthfaces.json").write_text(json.dumps(m))
    sf.ensure_synthfaces(tmp_path / "cache", num_train=3, num_val=2)
    assert not marker.exists()                                  # regenerated: other version
    assert json.loads((root / "synthfaces.json").read_text())["generator_version"] == sf.GENERATOR_VERSION
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary folder left


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RFCN_FACE_CACHE", str(tmp_path / "c"))
    assert sf.default_cache_dir() == tmp_path / "c"
    root = sf.ensure_synthfaces(num_train=2, num_val=2)
    assert root.parent == tmp_path / "c" and root.name.startswith("synthfaces-")


def test_preview(small, tmp_path):
    import cv2
    out = sf.render_preview(small, tmp_path / "p.png", n=4)
    img = cv2.imread(str(out))
    assert img.shape == (2 * 512, 3 * 512, 3)


def test_cache_never_replaces_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a synthfaces folder"):
        sf.ensure_synthfaces(tmp_path / "mine", num_train=1, num_val=1)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"


def test_force_regenerates(tmp_path):
    root = sf.ensure_synthfaces(tmp_path / "s", num_train=1, num_val=1)
    (root / "marker").write_text("x")
    assert sf.ensure_synthfaces(tmp_path / "s", num_train=1, num_val=1, force=True) == root
    assert not (root / "marker").exists() and (root / "synthfaces.json").is_file()
