"""No stale outputs (issue 25 class 4): an --out holds one model / data set (rfcn_face.outputs), and the official
prediction folders are written whole, so a rerun with fewer images leaves exactly its own files."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rfcn_face.outputs import MANIFEST, claim_output


def test_claim_same_identity_continues_other_is_refused(tmp_path):
    ident = {"verb": "test", "params_sha1": "aa", "dataset": "fddb"}
    claim_output(tmp_path, ident)
    assert json.loads((tmp_path / MANIFEST).read_text()) == ident
    claim_output(tmp_path, dict(ident))                                    # a rerun: fine
    with pytest.raises(ValueError, match=r"another model .*params_sha1: 'aa', now 'bb'"):
        claim_output(tmp_path, dict(ident, params_sha1="bb"))
    with pytest.raises(ValueError, match=r"another data set .*'fddb', now 'afw'"):
        claim_output(tmp_path, dict(ident, dataset="afw"))
    with pytest.raises(ValueError, match="another command"):
        claim_output(tmp_path, {"verb": "detect", "params_sha1": "aa", "thresh": 0.5})
    (tmp_path / MANIFEST).write_text("{half")
    with pytest.raises(ValueError, match="unreadable"):
        claim_output(tmp_path, ident)


def _predictions(records, rng):
    out = {}
    for i, r in enumerate(records):
        xy = rng.uniform(0, 50, (3, 2))
        out[i] = (np.concatenate([xy, xy + 20], 1), rng.random(3), (200, 200))
    return out


def _files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_wider_predictions_folder_is_written_whole(tmp_path):
    from rfcn_face.inference import load_test_set
    rng = np.random.default_rng(0)
    out = tmp_path / "out"
    out.mkdir()
    big = load_test_set("synthfaces-val", None, limit=4)
    big.benchmark.write_files(big, _predictions(big.records, rng), out, SimpleNamespace())
    assert len(_files(out / "predictions")) == 4
    small = load_test_set("synthfaces-val", None, limit=1)
    (out / ".predictions-killed").mkdir()                                 # what a killed run leaves
    small.benchmark.write_files(small, _predictions(small.records, rng), out, SimpleNamespace())
    r = small.records[0]
    assert _files(out / "predictions") == [f"{r.event}/{r.name}.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["predictions"]


def test_fddb_folder_is_written_whole_and_its_paths_are_final(tmp_path):
    from rfcn_face.inference import load_test_set
    from rfcn_face.testing.synthetic_eval import write_synthetic_fddb
    write_synthetic_fddb(tmp_path / "data" / "fddb", images_per_fold=1)
    rng = np.random.default_rng(1)
    out = tmp_path / "out"
    out.mkdir()
    opts = SimpleNamespace(ellipses=False, ellipse_regressor=None)
    ts = load_test_set("fddb", tmp_path / "data")
    files = ts.benchmark.write_files(ts, _predictions(ts.records, rng), out, opts)
    assert len(files["folds"]) == 10 and all(Path(f).is_file() and "/fddb/" in f for f in files["folds"])
    small = load_test_set("fddb", tmp_path / "data", limit=2)
    files = small.benchmark.write_files(small, _predictions(small.records, rng), out, opts)
    assert _files(out / "fddb") == sorted(["dets.txt"] + [Path(f).name for f in files["folds"]])
    assert len(files["folds"]) == 2 and Path(files["dets"]) == out / "fddb" / "dets.txt"


def test_claim_replace_for_a_folder_the_caller_owns(tmp_path):
    """reproduce / the demo retest a run that trained on into their own folder: the record follows the model."""
    claim_output(tmp_path, {"verb": "test", "params_sha1": "aa", "dataset": "synthfaces-val"})
    claim_output(tmp_path, {"verb": "test", "params_sha1": "bb", "dataset": "synthfaces-val"}, replace=True)
    assert json.loads((tmp_path / MANIFEST).read_text())["params_sha1"] == "bb"
    with pytest.raises(ValueError, match="'bb', now 'aa'"):
        claim_output(tmp_path, {"verb": "test", "params_sha1": "aa", "dataset": "synthfaces-val"})
