"""WIDER submission folders: reader (official read_pred semantics), writer, checker, and the evaluate CLI."""
import importlib.machinery
import sys
import types

import numpy as np
import pytest

from rfcn_face.__main__ import main
from rfcn_face.datasets.record import FaceRecord
from rfcn_face.evaluation.submission import (
    key_of, parse_prediction_file, read_image_list, read_submission, split_image_list, write_submission)
from rfcn_face.evaluation.submission_check import check_submission

KEYS = [("0--Parade", "0_Parade_a_1"), ("0--Parade", "0_Parade_b_2"), ("1--Handshaking", "1_Hand_c_3")]


def _write(path, text, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


# ------------------------------------------------------------------------------------------------ reading
def test_parse_tolerates_crlf_trailing_spaces_and_extra_lines(tmp_path):
    p = _write(tmp_path / "a.txt", "img\n2  \n1 2 3 4 0.5   \n5,6,7,8,0.25\n9 9 9 9 0.1\n\n", newline="\r\n")
    arr, reason = parse_prediction_file(p)
    assert reason is None
    np.testing.assert_array_equal(arr, [[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.25]])   # only `count` lines are read


@pytest.mark.parametrize("text,reason", [
    ("img\n", "no count line"),
    ("img\nthree\n1 2 3 4 0.5\n", "not an integer"),
    ("img\n2.5\n1 2 3 4 0.5\n", "not an integer"),
    ("img\n3\n1 2 3 4 0.5\n", "only 1 box lines"),
    ("img\n1\n1 2 3 4\n", "has 4 numbers"),
    ("img\n1\n1 2 x 4 0.5\n", "not numeric"),
])
def test_parse_invalid_files_give_reasons(tmp_path, text, reason):
    arr, why = parse_prediction_file(_write(tmp_path / "a.txt", text))
    assert arr is None and reason in why


def test_parse_zero_count_and_extra_numbers(tmp_path):
    arr, why = parse_prediction_file(_write(tmp_path / "a.txt", "img\n0\n"))
    assert why is None and arr.shape == (0, 5)
    arr, why = parse_prediction_file(_write(tmp_path / "b.txt", "img\n1\n1 2 3 4 0.5 7 8\n"))
    np.testing.assert_array_equal(arr, [[1, 2, 3, 4, 0.5]])              # first five numbers, as raw_info(1:5)


def test_read_submission_missing_and_invalid_files_warn(tmp_path):
    _write(tmp_path / "0--Parade" / "0_Parade_a_1.txt", "0_Parade_a_1\n1\n1 2 3 4 0.9\n")
    _write(tmp_path / "0--Parade" / "0_Parade_b_2.txt", "0_Parade_b_2\n2\n1 2 3 4 0.9\n")
    seen = []
    preds, warnings = read_submission(tmp_path, KEYS, warn=seen.append)
    assert list(preds) == [KEYS[0]]
    assert len(warnings) == 2 and seen == warnings
    assert "invalid format" in warnings[0] and "0_Parade_b_2.txt" in warnings[0]
    assert "missing prediction file" in warnings[1] and "1_Hand_c_3.txt" in warnings[1]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_submission(tmp_path / "nowhere", KEYS)


# one-pass reader == the per-file reader (the one definition of the official semantics) on random files
_LINE_FORMS = [
    lambda v, r: " ".join(f"{x:.1f}" for x in v),
    lambda v, r: " ".join(repr(float(x)) for x in v),                     # full precision
    lambda v, r: ",".join(f"{x:.3f}" for x in v),
    lambda v, r: "\t".join(f"{x:.2e}" for x in v) + "  ",
    lambda v, r: "  " + " , ".join(f"{x:g}" for x in v),
    lambda v, r: " ".join(f"{x:.1f}" for x in v) + " 7 8",               # extra numbers: the first five count
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:4]),                     # four numbers: invalid
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:4]) + " x",              # not numeric: invalid
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:4]) + " nan",
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:4]) + " 1_5",            # float() reads 15.0
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:4]) + " 0x10",
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:2]) + "\x0c" + " ".join(f"{x:.1f}" for x in v[2:]),
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:2]) + "\u00a0" + " ".join(f"{x:.1f}" for x in v[2:]),
    lambda v, r: " ".join(f"{x:.1f}" for x in v[:2]) + "\r" + " ".join(f"{x:.1f}" for x in v[2:]),
    lambda v, r: "",                                                       # blank line (skipped by the reader)
]
_COUNT_FORMS = [lambda k: str(k), lambda k: f" {k} ", lambda k: f"{k}.0", lambda k: f"+{k}", lambda k: "x",
                lambda k: "", lambda k: f"{k} {k}", lambda k: f"{k}\u0085", lambda k: "-1", lambda k: "0"]


def _random_file(rng, name):
    k = int(rng.integers(0, 6))
    rows = np.round(rng.uniform(-5, 500, (k + 2, 5)), 3)
    regular = rng.random() < 0.6
    forms = [_LINE_FORMS[0 if regular else int(rng.integers(0, len(_LINE_FORMS)))] for _ in rows]
    lines = [name if rng.random() < 0.9 else "\ufeff" + name,
             _COUNT_FORMS[0 if regular else int(rng.integers(0, len(_COUNT_FORMS)))](k)]
    lines += [f(v, rng) for f, v in zip(forms, rows)][:k + int(rng.integers(-1, 3) if not regular else 0)]
    if not regular and rng.random() < 0.2:
        lines.insert(int(rng.integers(0, len(lines) + 1)), "")
    text = "\n".join(lines) + ("\n" if rng.random() < 0.8 else "")
    return text.encode("utf-8").replace(b"\n", b"\r\n" if rng.random() < 0.2 else b"\n")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_pass_reader_equals_per_file_reader(tmp_path, seed):
    rng = np.random.default_rng(seed)
    keys = [(f"{i % 3}--Ev", f"{i % 3}_img_{i}") for i in range(150)]
    for e, n in keys:
        if rng.random() < 0.05:
            continue                                                       # missing file
        p = tmp_path / e / f"{n}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_random_file(rng, n))
    preds, warnings = read_submission(tmp_path, keys)
    want, want_warnings = {}, []
    for e, n in keys:
        p = tmp_path / e / f"{n}.txt"
        if not p.is_file():
            want_warnings.append(f"missing prediction file {p} (no predictions for this image)")
            continue
        arr, reason = parse_prediction_file(p)
        if arr is None:
            want_warnings.append(f"invalid format {p}: {reason} (no predictions for this image, as in the official "
                                 "tool)")
            continue
        want[(e, n)] = arr
    assert warnings == want_warnings and list(preds) == list(want)
    for k, a in want.items():
        np.testing.assert_array_equal(preds[k], a)                       # bit for bit, NaN where NaN
    assert len(preds.rows) == sum(len(a) for a in want.values())
    assert 20 < len(want) < len(keys) and any(len(a) for a in want.values())


def test_predictions_mapping_and_alignment():
    from rfcn_face.evaluation.submission import Predictions
    a, b, c = np.arange(10.).reshape(2, 5), np.zeros((0, 5)), np.arange(15.).reshape(3, 5) + 100
    p = Predictions.from_arrays({KEYS[2]: a, KEYS[0]: b, KEYS[1]: c})
    assert list(p) == [KEYS[2], KEYS[0], KEYS[1]] and len(p) == 3 and KEYS[1] in p and ("x", "y") not in p
    np.testing.assert_array_equal(p[KEYS[1]], c)
    assert p.get(("x", "y")) is None and p[KEYS[0]].shape == (0, 5)
    with pytest.raises(ValueError):
        p[KEYS[2]][0, 0] = 1.0                                           # views of the shared rows are read-only
    rows, img = p.aligned([KEYS[0], KEYS[1], KEYS[2]])          # the ground-truth order differs from the file order
    np.testing.assert_array_equal(rows, np.concatenate([c, a]))
    np.testing.assert_array_equal(img, [1, 1, 1, 2, 2])
    rows, img = p.aligned([KEYS[1]])                                      # images not in the list are left out
    np.testing.assert_array_equal(rows, c)
    np.testing.assert_array_equal(img, [0, 0, 0])
    q = p.select_rows(np.array([True, False, False, True, True]))
    assert list(q) == list(p) and [len(q[k]) for k in q] == [1, 0, 2]
    np.testing.assert_array_equal(q[KEYS[1]], c[1:])
    with pytest.raises(ValueError, match="twice"):
        Predictions([KEYS[0], KEYS[0]], np.zeros((0, 5)), [0, 0])


@pytest.mark.parametrize("drop", [False, True])
def test_check_values_same_for_flat_and_dict_predictions(tmp_path, drop):
    from rfcn_face.evaluation.submission import Predictions, check_prediction_values
    for k, rows in zip(KEYS, ["1 2 3 4 0.9\n5 6 7 8 nan\n", "1 2 3 4 0.5\n", "inf 2 3 4 0.5\n9 9 9 9 0.1\n"]):
        _write(tmp_path / k[0] / f"{k[1]}.txt", f"{k[1]}\n{rows.count(chr(10))}\n{rows}")
    flat, _ = read_submission(tmp_path, KEYS)
    as_dict = {k: np.array(flat[k]) for k in flat}
    if not drop:
        msgs = []
        for preds in (flat, as_dict):
            with pytest.raises(ValueError) as e:
                check_prediction_values(tmp_path, preds)
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1] and "0_Parade_a_1.txt:4:" in msgs[0]
        return
    got, want = check_prediction_values(tmp_path, flat, True), check_prediction_values(tmp_path, as_dict, True)
    assert isinstance(got[0], Predictions) and got[1:] == want[1:] == (2, 2)
    assert list(got[0]) == list(want[0])
    for k in want[0]:
        np.testing.assert_array_equal(got[0][k], want[0][k])


def test_key_of_forms():
    rec = FaceRecord(image_path="/x/0--Parade/0_Parade_a_1.jpg", event="0--Parade", name="0_Parade_a_1")
    assert key_of(("0--Parade", "0_Parade_a_1.jpg")) == key_of("0--Parade/0_Parade_a_1.jpg") == \
        key_of("/data/images/0--Parade/0_Parade_a_1.jpg") == key_of(rec) == ("0--Parade", "0_Parade_a_1")
    with pytest.raises(ValueError, match="event folder"):
        key_of("0_Parade_a_1.jpg")


# ------------------------------------------------------------------------------------------------ writing
def test_write_then_read_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    dets = {"0--Parade/0_Parade_a_1.jpg": np.array([[10.25, 20.5, 30.75, 60.0, 0.3], [1 / 3, 2 / 7, 5.0, 9.0, 0.9]]),
            ("1--Handshaking", "1_Hand_c_3"): (rng.random((4, 4)) * 100 + [0, 0, 100, 100], rng.random(4))}
    n = write_submission(dets, tmp_path, KEYS)
    assert n == 6
    preds, warnings = read_submission(tmp_path, KEYS)
    assert warnings == [] and preds[KEYS[1]].shape == (0, 5)
    a = preds[KEYS[0]]
    np.testing.assert_array_equal(a[:, 4], [0.9, 0.3])                      # written sorted by score
    np.testing.assert_array_equal(a[0, :4], [1 / 3, 2 / 7, 5.0 - 1 / 3, 9.0 - 2 / 7])   # x y w h, full precision
    lines = (tmp_path / "0--Parade" / "0_Parade_a_1.txt").read_text().splitlines()
    assert lines[:2] == ["0_Parade_a_1", "2"] and lines[3] == "10.25 20.5 20.5 39.5 0.3"
    assert check_submission(tmp_path, KEYS) == []


def test_write_records_and_errors(tmp_path):
    rec = FaceRecord(image_path="0--Parade/0_Parade_a_1.jpg", boxes=[[0, 0, 10, 10]], ignore=[False], event="0--Parade",
                     name="0_Parade_a_1", attributes={"scores": np.array([0.5])})
    assert write_submission([rec], tmp_path / "r", KEYS, decimals=1, score_decimals=3) == 1
    assert (tmp_path / "r" / "0--Parade" / "0_Parade_a_1.txt").read_text().splitlines()[2] == "0.0 0.0 10.0 10.0 0.500"
    with pytest.raises(ValueError, match="not in the image list"):
        write_submission({"9--X/9_x.jpg": np.zeros((0, 5))}, tmp_path / "e", KEYS)
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        write_submission({KEYS[0]: (np.zeros((2, 4)), np.zeros(1))}, tmp_path / "e", KEYS)


# ------------------------------------------------------------------------------------------------ checking
def test_checker_names_every_problem_with_its_file(tmp_path):
    write_submission({}, tmp_path, KEYS)
    a = tmp_path / "0--Parade" / "0_Parade_a_1.txt"
    _write(a, "0_Parade_a_1\n3\n1 2 3 4 0.5\n1 2 -3 4 0.5\nnan 2 3 4 0.5\n1 2 3 4\n")
    b = tmp_path / "0--Parade" / "0_Parade_b_2.txt"
    b.rename(tmp_path / "1--Handshaking" / "0_Parade_b_2.txt")                   # wrong folder
    _write(tmp_path / "1--Handshaking" / "1_Hand_c_3.txt", "other_name\n0\n")
    _write(tmp_path / "1--Handshaking" / "stray.txt", "stray\n0\n")
    problems = check_submission(tmp_path, KEYS)
    text = "\n".join(problems)
    assert f"{a}:2: count is 3 but 4 box lines follow" in text
    assert f"{a}:4: negative size w=-3 h=4" in text
    assert f"{a}:5: NaN or infinite value" in text
    assert f"{a}:6: 4 numbers, expected 5" in text
    assert "0_Parade_b_2.txt: in the wrong folder" in text
    assert "1_Hand_c_3.txt:1: first line 'other_name' does not name the image" in text
    assert "stray.txt: not an image of the list" in text
    assert len(problems) == 7
    # the same image twice (right folder and another one)
    write_submission({}, tmp_path / "dup", KEYS)
    _write(tmp_path / "dup" / "1--Handshaking" / "0_Parade_a_1.txt", "0_Parade_a_1\n0\n")
    assert any("present 2 times" in p for p in check_submission(tmp_path / "dup", KEYS))
    (tmp_path / "dup" / "0--Parade" / "0_Parade_b_2.txt").unlink()
    assert any(p.endswith("0_Parade_b_2.txt: missing") for p in check_submission(tmp_path / "dup", KEYS))


def test_checker_reads_the_zip_reproduce_packages_without_extracting(tmp_path, monkeypatch):
    """The zip of reproduce --benchmarks (package_submission) checks clean, read in memory: extracting is not
    allowed here and the folder holding the zip gains no file."""
    import zipfile
    from rfcn_face.reproduce import package_submission
    write_submission({KEYS[0]: np.array([[0, 0, 10, 10, 0.9]])}, tmp_path / "sub", KEYS)
    z = tmp_path / "out" / "wider_test_submission.zip"
    assert package_submission(tmp_path / "sub", KEYS, z) == []
    for name in ("extract", "extractall"):
        monkeypatch.setattr(zipfile.ZipFile, name, lambda *a, **k: pytest.fail("the checker extracted the zip"))
    assert check_submission(z, KEYS) == []
    assert sorted(p.name for p in z.parent.iterdir()) == ["wider_test_submission.zip"]


def test_checker_names_every_zip_problem_with_its_member(tmp_path):
    import warnings
    import zipfile
    z = tmp_path / "s.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # zipfile warns about the duplicate name
        with zipfile.ZipFile(z, "w") as f:
            f.writestr("0--Parade/0_Parade_a_1.txt", "0_Parade_a_1\n2\n1 2 3 4 0.5\n")
            f.writestr("0--Parade/0_Parade_a_1.txt", "0_Parade_a_1\n0\n")
            f.writestr("sub/1--Handshaking/1_Hand_c_3.txt", "1_Hand_c_3\n0\n")
            f.writestr("../evil.txt", "x\n0\n")
            f.writestr("0--Parade/", "")
    problems = check_submission(z, KEYS)
    assert problems == [f"{z}:0--Parade/0_Parade_a_1.txt: stored twice in the zip",
                        f"{z}:../evil.txt: unsafe member name (absolute, '..' or a backslash)",
                        f"{z}:0--Parade/0_Parade_a_1.txt:2: count is 2 but 1 box lines follow",
                        f"{z}:0--Parade/0_Parade_b_2.txt: missing",
                        f"{z}:sub/1--Handshaking/1_Hand_c_3.txt: in the wrong folder, expected "
                        f"{z}:1--Handshaking/1_Hand_c_3.txt"]


def test_checker_refuses_files_that_are_not_zips(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really" * 10)
    with pytest.raises(ValueError, match="junk.zip: not a readable zip archive"):
        check_submission(tmp_path / "junk.zip", KEYS)
    (tmp_path / "a.txt").write_text("x\n")
    with pytest.raises(ValueError, match="a.txt is a file but not a zip archive"):
        check_submission(tmp_path / "a.txt", KEYS)


def test_image_lists(tmp_path, shared_data):
    test_keys = split_image_list("test", shared_data / "widerface" / "wider_face_split" / "wider_face_test_filelist.txt")
    assert len(test_keys) == 16097 and test_keys[0] == ("0--Parade", "0_Parade_marchingband_1_737")
    val_keys = read_image_list(shared_data / "widerface" / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    assert len(val_keys) == 3226 and len(set(val_keys)) == 3226


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_check_submission(tmp_path, capsys):
    flist = _write(tmp_path / "list.txt", "".join(f"{e}/{n}.jpg\n" for e, n in KEYS))
    write_submission({KEYS[0]: np.array([[0, 0, 10, 10, 0.9]])}, tmp_path / "sub", KEYS)
    assert main(["evaluate", "check-submission", "--pred", str(tmp_path / "sub"), "--split", "test",
                 "--filelist", str(flist)]) == 0
    assert "OK" in capsys.readouterr().out
    (tmp_path / "sub" / "0--Parade" / "0_Parade_b_2.txt").unlink()
    assert main(["evaluate", "check-submission", "--pred", str(tmp_path / "sub"), "--split", "test",
                 "--filelist", str(flist)]) == 1
    assert "0_Parade_b_2.txt: missing" in capsys.readouterr().out


def test_cli_check_submission_zip_and_json(tmp_path, capsys):
    import json
    import zipfile
    flist = _write(tmp_path / "list.txt", "".join(f"{e}/{n}.jpg\n" for e, n in KEYS))
    write_submission({}, tmp_path / "sub", KEYS[:2])
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as f:
        for e, n in KEYS[:2]:
            f.write(tmp_path / "sub" / e / f"{n}.txt", f"{e}/{n}.txt")
    argv = ["evaluate", "check-submission", "--pred", str(tmp_path / "s.zip"), "--split", "test", "--filelist",
            str(flist), "--json", str(tmp_path / "r" / "check.json")]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert f"{tmp_path / 's.zip'}:1--Handshaking/1_Hand_c_3.txt: missing" in out
    assert err.strip().splitlines() == [f"error: 1 problem(s) in {tmp_path / 's.zip'} (listed above)"]
    assert json.loads((tmp_path / "r" / "check.json").read_text()) == {
        "pred": str(tmp_path / "s.zip"), "split": "test", "images": 3, "ok": False,
        "problems": [f"{tmp_path / 's.zip'}:1--Handshaking/1_Hand_c_3.txt: missing"]}
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert main(argv[:3] + [str(tmp_path / "bad.zip")] + argv[4:8]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"error: --pred {tmp_path / 'bad.zip'}: not a readable zip archive")


def test_cli_delegates_fddb_and_pr(monkeypatch, capsys):
    calls = []
    for name, sig in (("rfcn_face.cli.evaluate_fddb", 1), ("rfcn_face.cli.evaluate_face_eval", 2)):
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
        if sig == 1:
            mod.add_arguments = lambda p: p.add_argument("--dets", required=True)
        else:
            mod.add_arguments = lambda p, dataset: p.add_argument("--dets", required=True)
        mod.run = lambda args, name=name: calls.append((name, vars(args))) or 0
        monkeypatch.setitem(sys.modules, name, mod)
    assert main(["evaluate", "fddb", "--dets", "d.txt"]) == 0
    assert main(["evaluate", "pascal", "--dets", "p.txt"]) == 0
    assert calls == [("rfcn_face.cli.evaluate_fddb", {"dets": "d.txt"}),
                     ("rfcn_face.cli.evaluate_face_eval", {"dataset": "pascal", "dets": "p.txt"})]


def test_cli_delegation_says_when_module_is_missing(monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "rfcn_face.cli.evaluate_face_eval" else real(n, *a))
    assert main(["evaluate", "afw", "--dets", "x"]) == 2
    err = capsys.readouterr().err
    assert "'evaluate afw' is not available" in err and "rfcn_face.cli.evaluate_face_eval is missing" in err
