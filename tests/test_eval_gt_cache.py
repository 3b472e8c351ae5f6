"""The ground-truth cache (rfcn_face.evaluation.cache): same content as a fresh parse, rebuilt when a source file
changes size or mtime, never trusting a corrupt entry, harmless when the cache folder cannot be written."""
import os

import numpy as np
import pytest

from rfcn_face.datasets import wider as wider_reader
from rfcn_face.datasets.record import FaceRecord
from rfcn_face.evaluation import cache as C
from rfcn_face.evaluation.wider import GT_FILES, SETTINGS, WiderGroundTruth, evaluate_wider
from rfcn_face.testing.synthetic_eval import random_predictions


def _write_gt(gt_dir, rng, n=9):
    records, keep = [], {s: [] for s in SETTINGS}
    for i in range(n):
        k = int(rng.integers(0, 6))
        xy = rng.integers(0, 300, (k, 2))
        wh = rng.integers(1, 80, (k, 2))
        if i == 4:
            xy, wh = np.zeros((1, 2), int), np.zeros((1, 2), int)     # the dummy 0 0 0 0 row
        e = f"{i // 5}--Ev"                                           # one event's images contiguous
        records.append(FaceRecord(image_path=f"{e}/{i // 5}_img_{i}.jpg", boxes=np.c_[xy, xy + wh],
                                  ignore=np.zeros(len(xy), bool), event=e, name=f"{i // 5}_img_{i}"))
        hard = rng.random(len(xy)) < 0.9
        for s, m in zip(SETTINGS, (hard & (rng.random(len(xy)) < 0.5), hard & (rng.random(len(xy)) < 0.8), hard)):
            keep[s].append(m)
    return wider_reader.write_wider_eval_gt(gt_dir, records, keep["easy"], keep["medium"], keep["hard"])


def _same(a: WiderGroundTruth, b: WiderGroundTruth):
    assert a.events == b.events and a.names == b.names and len(a) == len(b)
    assert set(a.keep) == set(b.keep) == set(SETTINGS)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.boxes[i], b.boxes[i])
        assert a.boxes[i].dtype == b.boxes[i].dtype == np.float64
        for s in SETTINGS:
            np.testing.assert_array_equal(a.keep[s][i], b.keep[s][i])


@pytest.fixture
def gt_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RFCN_FACE_CACHE", str(tmp_path / "cache"))
    return _write_gt(tmp_path / "gt", np.random.default_rng(0))


@pytest.fixture
def parses(monkeypatch):
    """Counts the .mat parses (calls of the dataset reader)."""
    calls = []
    real = wider_reader.read_wider_eval_gt

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)
    monkeypatch.setattr(wider_reader, "read_wider_eval_gt", counting)
    return calls


def test_cached_ground_truth_is_the_parsed_one(gt_dir, parses, tmp_path):
    fresh = WiderGroundTruth.load(gt_dir, cache=False)
    first = WiderGroundTruth.load(gt_dir)
    second = WiderGroundTruth.load(gt_dir)
    assert len(parses) == 2                                           # cache=False, then the build of the entry
    entries = list((tmp_path / "cache" / "wider_gt").glob("*.npz"))
    assert len(entries) == 1
    _same(first, fresh)
    _same(second, fresh)
    assert [second.count_faces(s) for s in SETTINGS] == [fresh.count_faces(s) for s in SETTINGS]
    rng = np.random.default_rng(1)
    preds = random_predictions(fresh, rng, mean_per_image=20)
    a, b = evaluate_wider(preds, fresh), evaluate_wider(preds, second)
    for s in SETTINGS:
        np.testing.assert_array_equal(a.tp[s], b.tp[s])
        np.testing.assert_array_equal(a.proposals[s], b.proposals[s])
    sub = second.subset([1, 3])                                       # the list API works on the cached views
    assert sub.names == [second.names[1], second.names[3]]


@pytest.mark.parametrize("change", ["rewrite", "touch", "grow"])
def test_changed_source_rebuilds(gt_dir, parses, change):
    WiderGroundTruth.load(gt_dir)
    target = gt_dir / "wider_hard_val.mat"
    if change == "rewrite":                                           # other content (and size / mtime)
        _write_gt(gt_dir, np.random.default_rng(5), n=11)
    elif change == "touch":                                           # same bytes, new mtime
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:                                                             # other content and size, same mtimes
        times = {f: (f.stat().st_atime_ns, f.stat().st_mtime_ns) for f in gt_dir.iterdir()}
        sizes = {f: f.stat().st_size for f in gt_dir.iterdir()}
        _write_gt(gt_dir, np.random.default_rng(5), n=11)
        for f, ns in times.items():
            os.utime(f, ns=ns)
        assert all(f.stat().st_size != sizes[f] for f in times)
    got = WiderGroundTruth.load(gt_dir)
    assert len(parses) == 2
    _same(got, WiderGroundTruth.load(gt_dir, cache=False))
    WiderGroundTruth.load(gt_dir)
    assert len(parses) == 3                                           # the rebuilt entry is used again


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "wrong_arrays"])
def test_corrupt_entry_is_rebuilt_never_trusted(gt_dir, parses, tmp_path, damage):
    fresh = WiderGroundTruth.load(gt_dir, cache=False)
    WiderGroundTruth.load(gt_dir)
    entry = next((tmp_path / "cache" / "wider_gt").glob("*.npz"))
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF                                  # inside an array: zip CRC mismatch
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:                                                             # a valid npz, right key, inconsistent arrays
        import io
        with np.load(entry) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["counts"] = arrays["counts"] + 1
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = bytearray(buf.getvalue())
    entry.write_bytes(bytes(data))
    got = WiderGroundTruth.load(gt_dir)
    assert len(parses) == 3
    _same(got, fresh)
    _same(WiderGroundTruth.load(gt_dir), fresh)                        # the rewritten entry is good again
    assert len(parses) == 3


def test_unwritable_cache_folder_still_evaluates(tmp_path, monkeypatch, parses):
    gt_dir = _write_gt(tmp_path / "gt", np.random.default_rng(2))
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("RFCN_FACE_CACHE", str(tmp_path / "file"))
    _same(WiderGroundTruth.load(gt_dir), WiderGroundTruth.load(gt_dir, cache=False))


def test_entries_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("RFCN_FACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(C, "MAX_ENTRIES", 2)
    dirs = [_write_gt(tmp_path / f"gt{i}", np.random.default_rng(i)) for i in range(4)]
    for d in dirs:
        WiderGroundTruth.load(d)
    entries = sorted((tmp_path / "cache" / "wider_gt").glob("*.npz"))
    assert len(entries) == 2
    kept = {C.cache_file("wider_gt", [d / f for f in GT_FILES.values()]).name for d in dirs[2:]}
    assert {e.name for e in entries} == kept                           # the two most recently used


def test_missing_source_is_still_the_readers_error(gt_dir):
    (gt_dir / "wider_easy_val.mat").unlink()
    with pytest.raises(FileNotFoundError, match="wider_easy_val.mat"):
        WiderGroundTruth.load(gt_dir)


def test_cli_run_imports_only_what_it_needs(gt_dir, tmp_path):
    """A whole ``evaluate wider`` process (python -m rfcn_face): no MXNet, matplotlib, OpenCV or training code
    (the verb's own module only); with the cache entry written by a first run, not even scipy (no .mat parse)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from rfcn_face.evaluation.submission import write_submission
    gt = WiderGroundTruth.load(gt_dir, cache=False)
    preds = random_predictions(gt, np.random.default_rng(1), mean_per_image=6, decimals=1, missing_fraction=0.0)
    write_submission({k: np.c_[p[:, :2], p[:, :2] + p[:, 2:4], p[:, 4]] for k, p in preds.items()},
                     tmp_path / "pred", gt.keys(), decimals=1, score_decimals=3)
    probe = ("import sys, json, runpy\n"
             "sys.argv = ['rfcn_face'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('rfcn_face', run_name='__main__')\nexcept SystemExit as e:\n"
             "    assert not e.code, e.code\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    loaded = []
    for _ in range(2):                                   # cold (parses the .mat files), then warm
        out = subprocess.run([sys.executable, "-c", probe, "evaluate", "wider", "--pred", str(tmp_path / "pred"),
                              "--gt", str(gt_dir), "--quiet"], env=env, capture_output=True, text=True, check=True)
        loaded.append(set(json.loads(out.stdout.strip().splitlines()[-1])))
    for mods in loaded:
        assert "rfcn_face.evaluation.wider" in mods
        for heavy in ("mxnet", "matplotlib", "cv2", "gluoncv", "rfcn_face.train", "rfcn_face.reproduce",
                      "rfcn_face.cli.train"):
            assert heavy not in mods, heavy
    assert "scipy.io" in loaded[0] and not any(m == "scipy" or m.startswith("scipy.") for m in loaded[1])
