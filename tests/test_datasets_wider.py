"""WIDER FACE readers: hand-built files with literal expectations, a slow reference parser on random files,
the writers' round trips, and the real counts of the official files (skipped without ../shared/data)."""
import warnings

import numpy as np
import pytest

from rfcn_face.datasets.record import FaceRecord
from rfcn_face.datasets.wider import (read_wider_eval_gt, read_wider_split_mat, read_wider_txt,
                                      write_wider_eval_gt, write_wider_split_mat, write_wider_txt)

TEN = """0--Parade/0_Parade_marchingband_1_465.jpg
2
345 211 4 4 2 0 0 0 2 0 
331 126 3 3 0 1 0 1 0 1 
1--Handshaking/1_Handshaking_x_1.jpg
1
0 0 0 0 0 0 0 0 0 0 
"""

SEVEN = """0--Parade/0_Parade_marchingband_1_849.jpg
1
449 330 122 149 0 0 0
0--Parade/0_Parade_Parade_0_904.jpg
2
361 98 263 339 1 1 2
10 20 0 5 2 0 1
"""


def test_ten_column_literal(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text(TEN)
    recs = read_wider_txt(p, image_root="/imgs")
    assert len(recs) == 2
    r = recs[0]
    assert r.event == "0--Parade" and r.name == "0_Parade_marchingband_1_465"
    assert r.image_path == "/imgs/0--Parade/0_Parade_marchingband_1_465.jpg"
    np.testing.assert_array_equal(r.boxes, [[345, 211, 349, 215], [331, 126, 334, 129]])
    np.testing.assert_array_equal(r.ignore, [False, True])            # invalid flag
    assert sorted(r.attributes) == ["blur", "expression", "illumination", "invalid", "occlusion", "pose"]
    np.testing.assert_array_equal(r.attributes["blur"], [2, 0])
    np.testing.assert_array_equal(r.attributes["expression"], [0, 1])
    np.testing.assert_array_equal(r.attributes["pose"], [0, 1])
    assert r.attributes["blur"].dtype == np.int64
    # count 1 + dummy 0 0 0 0 row (the released files' form): kept, zero-size, ignored
    d = recs[1]
    np.testing.assert_array_equal(d.boxes, [[0, 0, 0, 0]])
    np.testing.assert_array_equal(d.ignore, [True])
    assert d.num_faces == 0


def test_seven_column_literal(tmp_path):
    p = tmp_path / "gt7.txt"
    p.write_text(SEVEN)
    recs = read_wider_txt(p)
    assert [r.name for r in recs] == ["0_Parade_marchingband_1_849", "0_Parade_Parade_0_904"]
    assert recs[0].image_path == "0--Parade/0_Parade_marchingband_1_849.jpg"
    assert sorted(recs[1].attributes) == ["blur", "invalid", "occlusion"]
    np.testing.assert_array_equal(recs[1].boxes, [[361, 98, 624, 437], [10, 20, 10, 25]])
    np.testing.assert_array_equal(recs[1].attributes["invalid"], [1, 0])
    np.testing.assert_array_equal(recs[1].attributes["occlusion"], [2, 1])
    np.testing.assert_array_equal(recs[1].ignore, [True, True])       # invalid; zero width


def test_count_zero_dummy_row_gives_zero_boxes(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("0--Parade/a.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n0--Parade/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n"
                 "0--Parade/c.jpg\n0\n")
    recs = read_wider_txt(p)
    assert [len(r.boxes) for r in recs] == [0, 1, 0]
    np.testing.assert_array_equal(recs[1].boxes, [[1, 2, 4, 6]])


def test_negative_size_policies(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("0--Parade/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n5 6 -7 8 0 0 0 0 0 0\n")
    with pytest.warns(UserWarning, match=r"gt.txt: 1 face row.*gt.txt:4"):
        r = read_wider_txt(p)[0]
    np.testing.assert_array_equal(r.boxes[1], [5, 6, -2, 14])
    np.testing.assert_array_equal(r.ignore, [False, True])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_wider_txt(p, negative_size="ignore")[0].boxes) == 2
    with pytest.raises(ValueError, match=r"gt.txt:4: negative face size"):
        read_wider_txt(p, negative_size="error")
    with pytest.raises(ValueError, match="negative_size"):
        read_wider_txt(p, negative_size="drop")


def _reference_parse(text):
    """Slow, obvious parser: line by line, no vectorisation."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        name = lines[i].strip()
        n = int(lines[i + 1])
        rows = [[float(v) for v in lines[i + 2 + k].split()] for k in range(n)]
        out.append((name, rows))
        i += 2 + n
    return out


def _random_gt_text(rng, images: int, max_faces: int, ncols: int, odd: str = "") -> str:
    """A WIDER annotation text of ``images`` images with 1 .. ``max_faces - 1`` random faces each; with ``odd``,
    the first number of every third face row is that token instead."""
    parts = []
    for k in range(images):
        n = int(rng.integers(1, max_faces))
        parts.append(f"{k % 5}--Ev/{k % 5}_img_{k}.jpg\n{n}\n")
        for j in range(n):
            xywh = rng.integers(0, 500, 2).tolist() + rng.integers(1, 80, 2).tolist()
            labels = rng.integers(0, 3, ncols - 4).tolist()
            row = [str(v) for v in xywh + labels]
            if odd and (k + j) % 3 == 0:
                row[0] = odd
            parts.append(" ".join(row) + " \n")
    return "".join(parts)


@pytest.mark.parametrize("ncols", [10, 7])
def test_vectorised_parse_matches_reference(tmp_path, ncols):
    rng = np.random.default_rng(ncols)
    text = _random_gt_text(rng, 60, 9, ncols)
    p = tmp_path / "gt.txt"
    p.write_text(text)
    got = read_wider_txt(p)
    ref = _reference_parse(text)
    assert len(got) == len(ref)
    names = ("blur", "expression", "illumination", "invalid", "occlusion", "pose") if ncols == 10 else \
        ("blur", "invalid", "occlusion")
    for r, (name, rows) in zip(got, ref):
        rows = np.asarray(rows)
        assert f"{r.event}/{r.name}.jpg" == name
        np.testing.assert_array_equal(r.boxes[:, :2], rows[:, :2])
        np.testing.assert_array_equal(r.boxes[:, 2:] - r.boxes[:, :2], rows[:, 2:4])
        for j, a in enumerate(names):
            np.testing.assert_array_equal(r.attributes[a], rows[:, 4 + j])
        np.testing.assert_array_equal(r.ignore, rows[:, 4 + names.index("invalid")] != 0)


@pytest.mark.parametrize("odd", ["1.5e1", "12.3456789", "7\t", "7\u00a0"])
def test_parse_fallbacks_match_reference(tmp_path, odd):
    """Rows the eight-byte parse declines (an exponent, a number longer than 8 characters, a tab; a non-ASCII
    blank, which only str.split reads) go to np.loadtxt or the row-by-row parse: the same values as the
    reference, row for row."""
    text = _random_gt_text(np.random.default_rng(len(odd)), 30, 5, 10, odd)
    p = tmp_path / "gt.txt"
    p.write_text(text, encoding="utf-8")
    got, ref = read_wider_txt(p), _reference_parse(text)
    assert [len(r.boxes) for r in got] == [len(rows) for _, rows in ref]
    for r, (_, rows) in zip(got, ref):
        rows = np.asarray(rows)
        np.testing.assert_array_equal(r.boxes[:, :2], rows[:, :2])
        np.testing.assert_array_equal(r.boxes[:, 2:], rows[:, :2] + rows[:, 2:4])   # x2 = x + w, as the reader


def _records():
    return [FaceRecord("a", boxes=[[1, 2, 5, 8], [10, 10, 30, 40]], ignore=[False, True], event="0--Parade",
                       name="0_a", attributes={"blur": np.array([2, 1]), "invalid": np.array([0, 1])}),
            FaceRecord("b", event="0--Parade", name="0_b"),
            FaceRecord("c", boxes=[[3, 3, 9, 9]], ignore=[False], event="1--Handshaking", name="1_c")]


def test_txt_and_split_mat_round_trip(tmp_path):
    recs = _records()
    for read, p in ((read_wider_txt, write_wider_txt(tmp_path / "gt.txt", recs)),
                    (read_wider_split_mat, write_wider_split_mat(tmp_path / "s.mat", recs))):
        got = read(p)
        assert [(r.event, r.name) for r in got] == [(r.event, r.name) for r in recs]
        for g, r in zip(got, recs):
            np.testing.assert_array_equal(g.boxes, r.boxes)
            np.testing.assert_array_equal(g.ignore, r.ignore)
        np.testing.assert_array_equal(got[0].attributes["blur"], [2, 1])


def test_eval_gt_keep_lists_literal(tmp_path):
    recs = _records()
    easy = [np.array([True, False]), np.zeros(0, bool), np.array([False])]
    medium = [np.array([True, False]), np.zeros(0, bool), np.array([True])]
    hard = [np.array([True, True]), np.zeros(0, bool), np.array([True])]
    write_wider_eval_gt(tmp_path, recs, easy, medium, hard)
    got = read_wider_eval_gt(tmp_path, image_root="/v")
    assert [r.image_path for r in got] == ["/v/0--Parade/0_a.jpg", "/v/0--Parade/0_b.jpg",
                                           "/v/1--Handshaking/1_c.jpg"]
    np.testing.assert_array_equal(got[0].attributes["keep_easy"], [True, False])
    np.testing.assert_array_equal(got[0].attributes["keep_hard"], [True, True])
    np.testing.assert_array_equal(got[2].attributes["keep_easy"], [False])
    np.testing.assert_array_equal(got[2].attributes["keep_medium"], [True])
    assert len(got[1].boxes) == 0 and got[1].attributes["keep_hard"].shape == (0,)


def test_eval_gt_bad_index_is_an_error(tmp_path):
    import scipy.io
    recs = _records()
    ones = [np.ones(len(r.boxes), bool) for r in recs]
    write_wider_eval_gt(tmp_path, recs, ones, ones, ones)
    m = scipy.io.loadmat(str(tmp_path / "wider_hard_val.mat"))
    m["gt_list"][0, 0][0, 0] = np.array([[1.0], [3.0]])          # image 0_a has 2 boxes
    scipy.io.savemat(str(tmp_path / "wider_hard_val.mat"), {k: v for k, v in m.items() if not k.startswith("__")})
    with pytest.raises(ValueError, match=r"wider_hard_val.mat: gt_list of 0--Parade/0_a has index 3 outside 1..2"):
        read_wider_eval_gt(tmp_path)


def test_gt_list_dtype_uint8_then_uint16_literal(tmp_path):
    """gt_list cells are uint8 index columns, uint16 once an index exceeds 255 (the official files: an image with
    > 255 faces whose kept indices stay <= 255 is still uint8); face_bbx_list cells int32. The common Python
    evaluator's ``ignore[keep_index - 1]`` works on them (it fails on a float64 index list)."""
    import scipy.io
    n = 300
    boxes = [[x, y, x + 4, y + 5] for x, y in zip(range(0, 3 * n, 3), range(n))]
    recs = [FaceRecord("a", boxes=boxes, ignore=[False] * n, event="0--Parade", name="0_many"),
            FaceRecord("b", boxes=[[1, 2, 5, 8]], ignore=[False], event="0--Parade", name="0_one")]
    hard = [np.ones(n, bool), np.array([True])]
    medium = [np.arange(n) < 10, np.array([False])]
    easy = [np.arange(n) == 255, np.array([True])]                     # index 256 alone
    write_wider_eval_gt(tmp_path, recs, easy, medium, hard)
    cells = {s: scipy.io.loadmat(str(tmp_path / f"wider_{s}_val.mat"))["gt_list"][0, 0][:, 0]
             for s in ("easy", "medium", "hard")}
    assert [(c.dtype, c.shape) for c in cells["hard"]] == [(np.uint16, (300, 1)), (np.uint8, (1, 1))]
    assert [(c.dtype, c.shape) for c in cells["medium"]] == [(np.uint8, (10, 1)), (np.uint8, (0, 1))]
    assert [(c.dtype, c.shape) for c in cells["easy"]] == [(np.uint16, (1, 1)), (np.uint8, (1, 1))]
    assert cells["hard"][0].ravel().tolist() == list(range(1, 301)) and cells["easy"][0].item() == 256
    box = scipy.io.loadmat(str(tmp_path / "wider_face_val.mat"))["face_bbx_list"][0, 0][0, 0]
    assert box.dtype == np.int32 and box.shape == (300, 4) and box[299].tolist() == [897, 299, 4, 5]
    ignore = np.zeros(n)
    ignore[cells["hard"][0].ravel() - 1] = 1                     # the Python evaluator's indexing
    assert ignore.sum() == n
    got = read_wider_eval_gt(tmp_path)
    np.testing.assert_array_equal(got[0].attributes["keep_easy"], easy[0])
    np.testing.assert_array_equal(got[0].boxes, np.asarray(boxes, float))


def _mat_layout(path):
    """Per variable: the outer cell's dtype and shape kind, and the set of (dtype, trailing shape) of its leaves
    (row counts left out: they differ between files), as scipy.io.loadmat returns them."""
    import scipy.io
    out = {}
    for k, v in scipy.io.loadmat(str(path)).items():
        if k.startswith("__"):
            continue
        leaves = set()
        for e in v.ravel():
            for c in (e.ravel() if e.dtype == object else [e]):
                kind = "str" if c.dtype.kind == "U" else c.dtype.str
                leaves.add((kind, c.shape[1:] if c.shape[0] else ("empty",) + c.shape[1:]))
        out[k] = (v.dtype.str, v.shape[1:], leaves)
    return out


def test_generated_mat_files_have_the_real_files_dtypes(tmp_path, shared_data):
    """synthfaces' ground_truth/*.mat and split .mat read back with the dtypes and cell shapes of the official
    files (every variable; the real files' empty gt_list cells are (0, 1) or (0, 0), ours (0, 1))."""
    from rfcn_face.datasets.synthfaces import generate_synthfaces
    root = generate_synthfaces(tmp_path / "sf", num_train=0, num_val=6)
    real = shared_data / "widerface"
    pairs = [(root / "ground_truth" / f, real / "ground_truth" / f) for f in
             ("wider_face_val.mat", "wider_easy_val.mat", "wider_medium_val.mat", "wider_hard_val.mat")]
    pairs.append((root / "wider_face_split" / "wider_face_val.mat", real / "wider_face_split" / "wider_face_val.mat"))
    for ours_path, real_path in pairs:
        ours, theirs = _mat_layout(ours_path), _mat_layout(real_path)
        assert sorted(ours) == sorted(theirs), ours_path.name
        for k in ours:
            assert ours[k][:2] == theirs[k][:2], (ours_path.name, k)
            assert ours[k][2] and ours[k][2] <= theirs[k][2], (ours_path.name, k, ours[k][2], theirs[k][2])
    assert ("|u1", (1,)) in _mat_layout(pairs[3][0])["gt_list"][2]
    assert _mat_layout(pairs[0][0])["face_bbx_list"][2] == {("<i4", (4,))}


def test_missing_files_are_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_wider_txt(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="wider_face_val.mat"):
        read_wider_eval_gt(tmp_path)


# ------------------------------------------------------------------------------------------ real files
def _totals(recs):
    return len(recs), sum(len(r.boxes) for r in recs)


@pytest.mark.realdata
def test_real_wider_val_txt(shared_data):
    recs = read_wider_txt(shared_data / "widerface/wider_face_split/wider_face_val_bbx_gt.txt")
    assert _totals(recs) == (3226, 39708)
    assert sum(bool(np.all(r.boxes == 0)) and len(r.boxes) == 1 for r in recs) == 4     # dummy rows
    assert recs[0].name == "0_Parade_marchingband_1_465" and len(recs[0].boxes) == 126


@pytest.mark.realdata
def test_real_wider_train_txt_and_mat_agree(shared_data):
    with pytest.warns(UserWarning, match="2 face row"):
        txt = read_wider_txt(shared_data / "widerface/wider_face_split"
                             / "wider_face_train_bbx_gt_7col_blur_invalid_occl.txt")
    mat = read_wider_split_mat(shared_data / "widerface/wider_face_split/wider_face_train.mat", negative_size="ignore")
    assert _totals(txt) == (12880, 159424)
    assert _totals(mat) == (12880, 159424)
    by_name = {(r.event, r.name): r for r in mat}
    assert len(by_name) == len(txt)
    same = [by_name[(r.event, r.name)] for r in txt]
    np.testing.assert_array_equal(np.concatenate([r.boxes for r in txt]), np.concatenate([m.boxes for m in same]))
    assert [len(r.boxes) for r in txt] == [len(m.boxes) for m in same]
    for a in ("blur", "invalid", "occlusion"):
        np.testing.assert_array_equal(np.concatenate([r.attributes[a] for r in txt]),
                                      np.concatenate([m.attributes[a] for m in same]))


@pytest.mark.realdata
def test_real_wider_test_mat_lists_files_only(shared_data):
    recs = read_wider_split_mat(shared_data / "widerface/wider_face_split/wider_face_test.mat")
    assert _totals(recs) == (16097, 0)


@pytest.mark.realdata
def test_real_wider_eval_gt(shared_data):
    gt = read_wider_eval_gt(shared_data / "widerface/ground_truth")
    assert _totals(gt) == (3226, 39708)
    kept = {s: sum(int(r.attributes[f"keep_{s}"].sum()) for r in gt) for s in ("easy", "medium", "hard")}
    assert kept == {"easy": 7211, "medium": 13319, "hard": 31958}
    # same rows as the official text except the one negative width the text writes as 0
    val_txt = shared_data / "widerface/wider_face_split/wider_face_val_bbx_gt.txt"
    txt = {(r.event, r.name): r for r in read_wider_txt(val_txt)}
    diff = [r.name for r in gt if not np.array_equal(txt[(r.event, r.name)].boxes, r.boxes)]
    assert diff == ["39_Ice_Skating_iceskiing_39_583"]
    assert gt[0].event == "0--Parade" and gt[0].name == "0_Parade_marchingband_1_465"


def test_eval_gt_transposed_box_cell_is_an_error_and_settings_that_do_not_nest_a_warning(tmp_path):
    """A face_bbx_list cell stored 4 x n is named (reshaping it would mix the coordinates of different faces); easy /
    medium / hard lists that do not nest are read as they are, with a warning naming the first image."""
    import warnings

    import scipy.io
    recs = _records()
    ones = [np.ones(len(r.boxes), bool) for r in recs]
    easy = [np.array([False, True]), np.zeros(0, bool), np.array([False])]     # 0_a's 2nd face: easy, not medium
    medium = [np.array([True, False]), np.zeros(0, bool), np.array([True])]
    write_wider_eval_gt(tmp_path, recs, easy, medium, ones)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = read_wider_eval_gt(tmp_path)
    msgs = [str(x.message) for x in w]
    assert any("do not nest" in m and "1 image(s), first 0--Parade/0_a" in m for m in msgs), msgs
    np.testing.assert_array_equal(got[0].attributes["keep_easy"], [False, True])     # read as they are
    write_wider_eval_gt(tmp_path, recs, ones, ones, ones)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        read_wider_eval_gt(tmp_path)
    assert not [x for x in w if "do not nest" in str(x.message)]
    m = scipy.io.loadmat(str(tmp_path / "wider_face_val.mat"))
    cell = m["face_bbx_list"][0, 0][0, 0]
    assert cell.shape == (2, 4)
    m["face_bbx_list"][0, 0][0, 0] = cell.T                                    # 4 x 2
    scipy.io.savemat(str(tmp_path / "wider_face_val.mat"), {k: v for k, v in m.items() if not k.startswith("__")})
    with pytest.raises(ValueError, match=r"wider_face_val.mat: face_bbx_list 0--Parade/0_a: a 4 x 2 matrix "
                                         r"\(transposed\?"):
        read_wider_eval_gt(tmp_path)
