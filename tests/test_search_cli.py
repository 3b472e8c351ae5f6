"""`python -m rfcn_face search` over .npy files, and the synthetic feature generator."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("faiss")

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.search import SyntheticFaces, evaluate, IndexSpec, make_search_split  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = make_search_split(200, 8, 80, 20, probes_per_id=3, dim=32, spread=0.6, seed=2)
    root = tmp_path_factory.mktemp("feats")
    paths = {}
    for k in ("base", "base_labels", "probe", "probe_labels"):
        paths[k] = root / f"{k}.npy"
        np.save(paths[k], d[k])
    return d, paths, root


@pytest.mark.parametrize("strategy", ["flat", "ivfflat", "ivfpq"])
def test_cli_json_matches_library(files, strategy):
    d, p, root = files
    out = root / f"{strategy}.json"
    argv = ["search", "--base", str(p["base"]), "--base-labels", str(p["base_labels"]), "--probe",
            str(p["probe"]), "--probe-labels", str(p["probe_labels"]), "--strategy", strategy, "--nlist", "8",
            "--nprobe", "8", "--pq-m", "8", "--pq-nbits", "6", "--json", str(out), "--csv", str(root / "r.csv")]
    assert main(argv) == 0
    js = json.loads(out.read_text())
    for key in ("top1", "open_set_accuracy", "coverage_at_p99", "coverage_at_p95", "ms_per_query"):
        assert isinstance(js[key], float)
    ref = evaluate(d["base"], d["base_labels"], d["probe"], d["probe_labels"],
                   IndexSpec(strategy, nlist=8, nprobe=8, m=8, nbits=6))
    assert js["top1"] == ref.top1 and js["open_set_accuracy"] == ref.open_set_accuracy
    assert js["coverage_at_p95"] == ref.coverage_at_p95
    assert js["n_present"] == 240 and js["n_absent"] == 60
    assert (root / "r.csv").read_text().splitlines()[0].startswith("strategy,top1,")


def test_cli_missing_file_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rfcn_face", "search", "--base", str(tmp_path / "nope.npy"),
                        "--base-labels", "a", "--probe", "b", "--probe-labels", "c"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: base features file not found: {tmp_path / 'nope.npy'}"]


def test_cli_label_count_mismatch(files, tmp_path):
    d, p, _ = files
    np.save(tmp_path / "short.npy", d["base_labels"][:-1])
    with pytest.raises(ValueError, match="base labels for"):
        from rfcn_face.cli import search as cli
        import argparse
        ap = argparse.ArgumentParser()
        cli.add_arguments(ap)
        cli.run(ap.parse_args(["--base", str(p["base"]), "--base-labels", str(tmp_path / "short.npy"),
                               "--probe", str(p["probe"]), "--probe-labels", str(p["probe_labels"])]))


def test_synthetic_is_deterministic_unit_and_spread_controls_cosine():
    a = SyntheticFaces(50, dim=256, spread=1.0, seed=7)
    b = SyntheticFaces(50, dim=256, spread=1.0, seed=7)
    lab = np.repeat(np.arange(50), 4)
    x, y = a.sample(lab, stream=1), b.sample(lab, stream=1)
    assert np.array_equal(x, y) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    # cosine to own centre ~ 1/sqrt(1+spread^2); to other centres ~ 0
    own = (x * a.centers[lab]).sum(1)
    assert abs(own.mean() - 1 / np.sqrt(2)) < 0.02
    other = x @ a.centers.T
    other[np.arange(len(lab)), lab] = np.nan
    assert abs(np.nanmean(other)) < 0.01
    tight = SyntheticFaces(50, dim=256, spread=0.3, seed=7).sample(lab)
    assert (tight * a.centers[lab]).sum(1).mean() > own.mean()
    assert not np.array_equal(a.sample(lab, stream=2), x)


def test_planted_mislabels():
    pop = SyntheticFaces(20, dim=16, seed=1)
    feats, labels, true, bad = pop.identity_set(np.arange(20), 10, mislabel_fraction=0.1)
    assert bad.sum() == 20
    assert np.all(labels[bad] != true[bad]) and np.all(labels[~bad] == true[~bad])
    assert set(labels) <= set(range(20))


def test_search_split_protocol():
    d = make_search_split(100, 5, 80, 20, probes_per_id=3, dim=8, seed=0)
    present = np.isin(d["probe_labels"], d["base_labels"])
    assert present.sum() == 240 and (~present).sum() == 60 and d["base"].shape == (500, 8)
