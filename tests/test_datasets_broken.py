"""The corpus of broken annotation files in tests/data/broken: each gives ONE clear error naming the file and
the line."""
from pathlib import Path

import pytest

from rfcn_face.datasets.face_eval import read_face_eval_mat
from rfcn_face.datasets.fddb import read_fddb, read_fddb_sizes
from rfcn_face.datasets.wider import read_wider_split_mat, read_wider_txt

BROKEN = Path(__file__).resolve().parent / "data" / "broken"


@pytest.mark.parametrize("fname, kwargs, pattern", [
    ("wider_truncated.txt", {}, r"wider_truncated.txt:7: truncated file: image '0--Parade/b.jpg' \(line 5\) "
                                r"declares 3 faces but the file ends after 1"),
    ("wider_count_too_large.txt", {}, r"wider_count_too_large.txt:5: image '0--Parade/a.jpg' \(line 1\) declares "
                                      r"3 faces but only 2 rows follow before the next image path"),
    ("wider_count_too_small.txt", {}, r"wider_count_too_small.txt:4: expected an image path, found "
                                      r"'5 6 7 8 0 0 0 0 0 0' \(the face count of the previous image may be too "
                                      r"small\)"),
    ("wider_non_numeric.txt", {}, r"wider_non_numeric.txt:4: non-numeric field in face row: '5 6 x 8 0 0 0 0 0 0'"),
    ("wider_negative_size.txt", {"negative_size": "error"}, r"wider_negative_size.txt:4: negative face size w=-7 h=8"),
    ("wider_bad_count.txt", {}, r"wider_bad_count.txt:2: expected the face count of '0--Parade/a.jpg', found 'two'"),
    ("wider_mixed_columns.txt", {}, r"wider_mixed_columns.txt:4: expected 10 numbers per face, found 7"),
    ("wider_misaligned_columns.txt", {}, r"wider_misaligned_columns.txt:3: face rows must have 10 or 7 columns, "
                                         r"found 9"),
])
def test_broken_wider_txt(fname, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        read_wider_txt(BROKEN / fname, **kwargs)


def test_missing_image_names_file_and_line(tmp_path):
    p = BROKEN / "wider_missing_image.txt"
    assert len(read_wider_txt(p, image_root=tmp_path)) == 1           # not checked by default
    with pytest.raises(FileNotFoundError, match=r"wider_missing_image.txt:1: image not found: .*missing_image.jpg"):
        read_wider_txt(p, image_root=tmp_path, check_images=True)
    (tmp_path / "0--Parade").mkdir()
    (tmp_path / "0--Parade" / "missing_image.jpg").write_bytes(b"")
    assert len(read_wider_txt(p, image_root=tmp_path, check_images=True)) == 1


@pytest.mark.parametrize("folder, pattern", [
    ("fddb_truncated", r"FDDB-fold-01-ellipseList.txt:3: truncated file: image '2002/08/11/big/img_591' "
                       r"\(line 1\) declares 2 faces but the file ends after 1"),
    ("fddb_non_numeric", r"FDDB-fold-01-ellipseList.txt:3: non-numeric field in ellipse row"),
    ("fddb_list_mismatch", r"FDDB-fold-01-ellipseList.txt: image 2 of the ellipse list \('2002/08/26/big/img_265'\) "
                           r"differs from .*FDDB-fold-01.txt line 2"),
])
def test_broken_fddb(folder, pattern):
    with pytest.raises(ValueError, match=pattern):
        read_fddb(BROKEN / folder, folds=[1])


def test_broken_fddb_sizes():
    with pytest.raises(ValueError, match=r"fddb_sizes_short_line.txt:2: expected 'name width height'"):
        read_fddb_sizes(BROKEN / "fddb_sizes_short_line.txt")


def test_not_a_mat_file():
    with pytest.raises(ValueError, match=r"face_eval_not_mat.mat: not a readable MATLAB file"):
        read_face_eval_mat(BROKEN / "face_eval_not_mat.mat")
    with pytest.raises(ValueError, match=r"face_eval_not_mat.mat: not a readable MATLAB file"):
        read_wider_split_mat(BROKEN / "face_eval_not_mat.mat")
