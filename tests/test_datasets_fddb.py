"""FDDB reader: literal ellipse boxes, bounding boxes against a dense sampling of the ellipse, real counts."""
import numpy as np
import pytest

from rfcn_face.datasets.fddb import ellipse_bounding_boxes, read_fddb, read_fddb_sizes


def _write_folds(d, ellipse_text, list_text=None, k=1):
    d.mkdir(parents=True, exist_ok=True)
    (d / f"FDDB-fold-{k:02d}-ellipseList.txt").write_text(ellipse_text)
    if list_text is not None:
        (d / f"FDDB-fold-{k:02d}.txt").write_text(list_text)


def test_literal_fold(tmp_path):
    _write_folds(tmp_path / "folds", "2002/08/11/big/img_591\n2\n20.0 10.0 0.0 100.0 50.0  1\n"
                                      "30 10 1.5707963267948966 40 60 1\n2003/01/01/big/img_2\n0\n",
                 "2002/08/11/big/img_591\n2003/01/01/big/img_2\n")
    (tmp_path / "sizes.txt").write_text("2002/08/11/big/img_591 450 431\n2003/01/01/big/img_2 10 20\n")
    recs = read_fddb(tmp_path / "folds", folds=[1], image_root="/fddb", sizes_file=tmp_path / "sizes.txt")
    assert [r.name for r in recs] == ["2002/08/11/big/img_591", "2003/01/01/big/img_2"]
    r = recs[0]
    assert r.image_path == "/fddb/2002/08/11/big/img_591.jpg"
    assert (r.width, r.height) == (450, 431)
    np.testing.assert_array_equal(r.ellipses, [[20, 10, 0, 100, 50], [30, 10, np.pi / 2, 40, 60]])
    # angle 0: major axis along x; angle pi/2: major axis along y
    np.testing.assert_allclose(r.boxes, [[80, 40, 120, 60], [30, 30, 50, 90]], atol=1e-9)
    assert not r.ignore.any() and len(recs[1].boxes) == 0 and recs[1].ellipses.shape == (0, 5)


def test_bounding_box_matches_dense_sampling():
    rng = np.random.default_rng(0)
    e = np.stack([rng.uniform(5, 100, 50), rng.uniform(2, 60, 50), rng.uniform(-np.pi, np.pi, 50),
                  rng.uniform(0, 500, 50), rng.uniform(0, 500, 50)], axis=1)
    got = ellipse_bounding_boxes(e)
    s = np.linspace(0, 2 * np.pi, 200001)
    for (a, b, t, cx, cy), box in zip(e, got):
        x = cx + a * np.cos(s) * np.cos(t) - b * np.sin(s) * np.sin(t)
        y = cy + a * np.cos(s) * np.sin(t) + b * np.sin(s) * np.cos(t)
        np.testing.assert_allclose(box, [x.min(), y.min(), x.max(), y.max()], atol=1e-6)


def test_sizes_reader(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a/b 10 20\n\nc/d 3 4\n")
    assert read_fddb_sizes(p) == {"a/b": (10, 20), "c/d": (3, 4)}


def test_missing_name_in_sizes_is_an_error(tmp_path):
    _write_folds(tmp_path / "f", "x/y\n1\n2 1 0 5 5 1\n")
    (tmp_path / "s.txt").write_text("other 1 1\n")
    with pytest.raises(ValueError, match=r"FDDB-fold-01-ellipseList.txt:1: image 'x/y' not in the size file"):
        read_fddb(tmp_path / "f", folds=[1], sizes_file=tmp_path / "s.txt")


@pytest.mark.parametrize("count,n", [("1", 1), ("1.0", 1), ("0", 0)])
def test_count_integer_or_integral_float(tmp_path, count, n):
    rows = "2 1 0 5 5 1\n" * n
    _write_folds(tmp_path / "f", f"x/y\n{count}\n{rows}z/w\n0\n")
    recs = read_fddb(tmp_path / "f", folds=[1])
    assert [r.name for r in recs] == ["x/y", "z/w"] and len(recs[0].ellipses) == n


@pytest.mark.parametrize("count", ["²", "1.5", "-1", "nan"])
def test_bad_count_is_an_error_naming_file_and_line(tmp_path, count):
    """The count "²" passes str.isdigit() but is no number: an error naming file and line, not int()'s bare
    ValueError (as are a fractional, a negative and a NaN count)."""
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "FDDB-fold-01-ellipseList.txt").write_bytes(f"a/b\n0\nx/y\n{count}\n2 1 0 5 5 1\n".encode())
    with pytest.raises(ValueError, match=r"FDDB-fold-01-ellipseList.txt:4: expected the faces count of 'x/y'"):
        read_fddb(tmp_path / "f", folds=[1])


def test_missing_fold_is_file_not_found(tmp_path):
    (tmp_path / "f").mkdir()
    with pytest.raises(FileNotFoundError, match="FDDB-fold-03-ellipseList.txt"):
        read_fddb(tmp_path / "f", folds=[3])


@pytest.mark.realdata
def test_real_fddb(shared_data):
    recs = read_fddb(shared_data / "fddb/FDDB-folds", sizes_file=shared_data / "fddb/FDDB-image-sizes.txt")
    assert (len(recs), sum(len(r.boxes) for r in recs)) == (2845, 5171)
    assert recs[0].name == "2002/08/11/big/img_591" and recs[0].event == "fold-01"
    np.testing.assert_array_equal(recs[0].ellipses, [[123.5833, 85.5495, 1.265839, 269.6934, 161.7812]])
    assert all(r.width > 0 and r.height > 0 for r in recs)
    assert [len(read_fddb(shared_data / "fddb/FDDB-folds", folds=[k])) for k in (1, 10)] == [290, 280]
