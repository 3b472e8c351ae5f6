import csv

import numpy as np
import pytest

from rfcn_face.__main__ import main
from rfcn_face.emo import emo_square
from rfcn_face.facetable import load_face_table


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_emo_cli_outputs_on_packaged_table(tmp_path, capsys):
    assert main(["emo", "--out", str(tmp_path), "--grid", "400"]) == 0
    fig4 = read_csv(tmp_path / "fig4_emo.csv")
    assert list(fig4[0]) == ["face_scale", "stride", "emo"]
    strides = {int(r["stride"]) for r in fig4}
    scales = {int(r["face_scale"]) for r in fig4}
    assert strides == {4, 8, 16, 32} and {8, 16, 32, 64, 128} <= scales
    for r in fig4:
        assert float(r["emo"]) == pytest.approx(emo_square(int(r["face_scale"]), int(r["stride"]), grid=400), abs=1e-6)
    fig7 = read_csv(tmp_path / "fig7_avg_max_iou.csv")
    assert list(fig7[0]) == ["group", "n_faces", "baseline", "DC", "DC+16x1", "DC+16x3"]
    assert [r["group"] for r in fig7] == ["0-8", "8-16", "16-32", "32-64", "64-128", "128-256", "256+"]
    n = sum(int(r["n_faces"]) for r in fig7)
    assert n == len(load_face_table().usable())
    for r in fig7[1:3]:  # Fig. 7: stride reduction and shifted anchors raise the IoU of small faces
        b, dc, s1, s3 = (float(r[k]) for k in ("baseline", "DC", "DC+16x1", "DC+16x3"))
        assert b < dc < s1 < s3
    for r in fig7[3:]:   # faces >= 32 px gain nothing from 16-px shifted anchors
        assert float(r["DC"]) == pytest.approx(float(r["DC+16x3"]), abs=1e-3)
    assert (tmp_path / "fig4_emo.png").stat().st_size > 1000 and (tmp_path / "fig7_avg_max_iou.png").is_file()
    out = capsys.readouterr().out
    assert "Fig. 7" in out and "DC+16x3" in out


def test_emo_cli_on_annotation_file(tmp_path):
    ann = tmp_path / "tiny_bbx_gt.txt"
    ann.write_text("0--Parade/a.jpg\n2\n0 0 16 16 0 0 0 0 0 0\n100 100 40 40 0 0 0 0 0 0\n"
                   "1--Handshaking/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n")
    assert main(["emo", "--annotations", str(ann), "--out", str(tmp_path / "o"), "--grid", "50", "--no-plots"]) == 0
    fig7 = {r["group"]: r for r in read_csv(tmp_path / "o" / "fig7_avg_max_iou.csv")}
    assert fig7["16-32"]["n_faces"] == "1" and float(fig7["16-32"]["baseline"]) == 1.0
    assert fig7["32-64"]["n_faces"] == "1"


def test_emo_cli_json_summary(tmp_path, capsys):
    """--json: the face counts and the three tables at full precision (Fig. 4 against Eq. 4 directly), written
    atomically where asked."""
    import json
    ann = tmp_path / "tiny_bbx_gt.txt"
    ann.write_text("0--Parade/a.jpg\n2\n0 0 16 16 0 0 0 0 0 0\n100 100 40 40 0 0 0 0 0 0\n"
                   "1--Handshaking/b.jpg\n1\n5 5 10 10 0 0 0 1 0 0\n")
    assert main(["emo", "--annotations", str(ann), "--out", str(tmp_path / "o"), "--grid", "50", "--no-plots",
                 "--json", str(tmp_path / "j" / "emo.json")]) == 0
    assert f"wrote {tmp_path / 'j' / 'emo.json'}" in capsys.readouterr().out
    j = json.loads((tmp_path / "j" / "emo.json").read_text())
    assert (j["faces"], j["rows"], j["grid"], j["out"]) == (2, 3, 50, str(tmp_path / "o"))
    assert j["files"] == ["eq2_emo_anchor_sets.csv", "fig4_emo.csv", "fig7_avg_max_iou.csv"]
    fig7 = {r["group"]: r for r in j["fig7_avg_max_iou"]}
    assert fig7["16-32"]["n_faces"] == 1 and fig7["16-32"]["baseline"] == 1.0 and fig7["0-8"]["n_faces"] == 0
    for r in j["fig4_emo"]:
        assert r["emo"] == pytest.approx(emo_square(r["face_scale"], r["stride"], grid=50), abs=1e-12)
    assert [sorted(r) for r in j["eq2_emo_anchor_sets"][:1]] == [["DC", "DC+16x1", "DC+16x3", "baseline",
                                                                 "face_scale"]]
    assert list(tmp_path.glob("j/.*")) == []                     # no temporary file left beside it


def test_emo_cli_missing_annotation_is_clear_error(tmp_path, capsys):
    assert main(["emo", "--annotations", str(tmp_path / "nope.txt"), "--out", str(tmp_path)]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_packaged_table_equals_real_wider_val(shared_data):
    from rfcn_face.datasets.wider import read_wider_txt
    from rfcn_face.facetable import face_table_from_records
    real = face_table_from_records(read_wider_txt(shared_data / "widerface/wider_face_split/wider_face_val_bbx_gt.txt"),
                                   "real")
    packaged = load_face_table()
    assert len(packaged) == 39708
    np.testing.assert_array_equal(packaged.boxes, real.boxes)
    np.testing.assert_array_equal(packaged.invalid, real.invalid)
    np.testing.assert_array_equal(packaged.image_index, real.image_index)
