"""``python -m rfcn_face dataset-info``: JSON keys and values on hand-built files, errors, real counts."""
import json

import numpy as np
import pytest

from rfcn_face.__main__ import main
from rfcn_face.cli.dataset_info import SIZE_EDGES, summarize
from rfcn_face.datasets.record import FaceRecord


def test_wider_txt_json(tmp_path, capsys):
    p = tmp_path / "gt.txt"
    # faces of sqrt(w*h) 4 (4x4), 10 (10x10), 30 (30x30, invalid -> ignored), 600 (600x600); a dummy row
    p.write_text("0--A/a.jpg\n3\n0 0 4 4 0 0 0 0 0 0\n5 5 10 10 0 0 0 0 0 0\n1 1 30 30 0 0 0 1 0 0\n"
                 "1--B/b.jpg\n1\n0 0 600 600 0 0 0 0 0 0\n2--C/c.jpg\n1\n0 0 0 0 0 0 0 0 0 0\n")
    out = tmp_path / "o" / "info.json"
    assert main(["dataset-info", "wider", str(p), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert {"images", "faces", "ignored", "size_histogram"} <= set(d)
    assert (d["images"], d["faces"], d["ignored"]) == (3, 3, 2)
    hist = {(h["min"], h["max"]): h["count"] for h in d["size_histogram"]}
    assert hist[(4.0, 8.0)] == 1 and hist[(8.0, 12.0)] == 1 and hist[(512.0, None)] == 1
    assert sum(hist.values()) == 3
    text = capsys.readouterr().out
    assert "images          3" in text and "faces           3" in text


def test_summarize_matches_a_plain_count():
    rng = np.random.default_rng(0)
    recs = []
    for _ in range(30):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(0.5, 700, (n, 2))
        recs.append(FaceRecord("x", boxes=np.concatenate([xy, xy + wh], 1), ignore=rng.random(n) < 0.3))
    s = summarize(recs)
    sizes = [np.sqrt((b[2] - b[0]) * (b[3] - b[1])) for r in recs for b, i in zip(r.boxes, r.ignore) if not i]
    edges = list(SIZE_EDGES) + [np.inf]
    ref = [sum(lo <= v < hi for v in sizes) for lo, hi in zip(edges[:-1], edges[1:])]
    assert [h["count"] for h in s["size_histogram"]] == ref
    assert s["faces"] == len(sizes) and s["ignored"] == sum(int(r.ignore.sum()) for r in recs)


def test_missing_path_is_one_line_error(tmp_path, capsys):
    assert main(["dataset-info", "fddb", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_synthfaces_root(tmp_path):
    from rfcn_face.datasets.synthfaces import generate_synthfaces
    root = generate_synthfaces(tmp_path / "s", num_train=2, num_val=3)
    out = tmp_path / "s.json"
    assert main(["dataset-info", "synthfaces", str(root), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    manifest = json.loads((root / "synthfaces.json").read_text())
    assert d["images"] == 3 and d["faces"] == manifest["counts"]["val"]["faces"] and d["ignored"] == 0


@pytest.mark.realdata
@pytest.mark.parametrize("dataset, rel, images, faces, ignored", [
    ("wider", "widerface/ground_truth", 3226, 39112, 596),
    ("fddb", "fddb", 2845, 5171, 0),
    ("afw", "afw_pascal", 205, 474, 71),
    ("pascal", "afw_pascal", 851, 1580, 55),
])
def test_real_counts(shared_data, tmp_path, dataset, rel, images, faces, ignored):
    out = tmp_path / "r.json"
    assert main(["dataset-info", dataset, str(shared_data / rel), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["images"], d["faces"], d["ignored"]) == (images, faces, ignored)
