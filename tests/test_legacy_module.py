"""examples/legacy_module_rfcn.py: R-FCN as an mx.sym graph trained with mx.mod.Module.fit, its targets computed by
the project's CustomOps. The loss falls within 30 iterations; inside the bound Module each CustomOp (anchor targets
with shifted anchors and HC(5), proposal targets, OHEM) and the proposal block give what the library functions they
wrap give on the same inputs, over two iterations (the operators' seed streams advance like one Generator)."""
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from operators.base import reset_seed_streams  # noqa: E402
from rfcn_face.assigners import build_assigner  # noqa: E402
from rfcn_face.proposals import ProposalParams, ProposalTargetParams  # noqa: E402
from rfcn_face.sampling import OHEMParams  # noqa: E402
from rfcn_face.targets import anchor_target_numpy, ohem_numpy, proposal_target_numpy  # noqa: E402
from rfcn_face.testing.proposal_reference import proposals_reference  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "legacy_module_rfcn.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("legacy_module_rfcn", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def synth_root(ex, tmp_path_factory):
    from rfcn_face.datasets.synthfaces import generate_synthfaces
    return generate_synthfaces(tmp_path_factory.mktemp("synth"), **ex.SYNTH)


@pytest.fixture(scope="module")
def setup(ex, synth_root):
    return ex.example_config(), ex.synthfaces_records(synth_root)


def test_config_is_row_13_on_the_small_network(setup):
    cfg, records = setup
    assert (cfg.model.arch, cfg.anchors.shifted, dict(cfg.rpn.assign)) == ("DC", "16x3", {"type": "hc", "top_n": 5})
    assert cfg.train.shift_jitter and cfg.rcnn.ohem and cfg.model.width == 0.25 and cfg.train.max_size == 128
    assert len(records) == 32


def test_module_fit_loss_falls(setup, synth_root):
    """The script as a user runs it, 30 iterations of Module.fit. One OpenMP thread: on the oversubscribed CI / dev
    CPU two OpenMP threads made iterations 0.1-4 s instead of ~0.02 s (docs/legacy.md, "Threads")."""
    root = str(EXAMPLE.parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(EXAMPLE), "--iters", "30", "--print-every", "1", "--data",
                          str(synth_root)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r"^iter +(\d+) +loss ([0-9.]+) +\(rpn_cls ([0-9.]+) +rpn_bbox ([0-9.]+) +rcnn_cls ([0-9.]+) +"
                      r"rcnn_bbox ([0-9.]+)\)", out.stdout, flags=re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 31)), out.stdout
    v = np.array([[float(x) for x in r[1:]] for r in rows])
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(v[:, 0], v[:, 1:].sum(axis=1), atol=2e-4)       # the total is the four terms
    first, last = v[:10, 0].mean(), v[-10:, 0].mean()
    assert last < first - 0.1, (first, last)
    # the RPN classifier starts untrained (logits ~ 0: cross-entropy ln 2) and learns within 30 iterations
    assert abs(v[0, 1] - np.log(2)) < 0.02 and v[-10:, 1].mean() < np.log(2) - 0.1, v[:, 1]


def _assert_equal_rows(got, ref, atol=1e-4):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64).reshape(np.shape(got))
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)


def test_custom_ops_inside_the_module_equal_the_library(ex, setup):
    cfg, records = setup
    it = ex.SynthFacesIter(cfg, records, 2)
    mx.random.seed(0)
    mod = ex.bound_module(cfg, it, probes=True)
    reset_seed_streams()
    # the references' Generators: one per seed stream, advanced across the iterations as the operators' streams are
    rng_anchor, rng_rois = np.random.default_rng(cfg.train.seed), np.random.default_rng(cfg.train.seed + 1)
    assigner, ohem = build_assigner(cfg), OHEMParams.from_config(cfg)
    for batch in it:
        mod.forward(batch, is_train=True)
        mod.backward()
        got = ex.probe_outputs(mod)

        a = got["anchor_target"]
        np.testing.assert_array_equal(a["gt"], batch.label[0].asnumpy())
        ref = anchor_target_numpy(a["rpn_cls"].shape[2:], a["gt"], a["im_info"], cfg.anchor_set(), assigner,
                                  rng=rng_anchor)
        for name, r in zip(("label", "bbox_target", "bbox_weight", "matched"), (ref[0], ref[3], ref[4], ref[5])):
            _assert_equal_rows(a[name], r, atol=1e-5)
        assert (a["label"] == 1).sum() > 0 and (a["label"] == 0).sum() > 0
        present = a["gt"][0, :, 4] >= 0
        assert np.all(a["matched"][0, present] >= 1)             # HC(5): every face has an anchor
        assert np.any(a["matched"][0, present] >= 5)

        p = got["proposal"]
        rois, _ = proposals_reference(p["rpn_cls"], p["rpn_bbox"], p["im_info"], cfg.anchor_set(),
                                      ProposalParams.from_config(cfg, train=True))
        _assert_equal_rows(p["rois"], rois, atol=1e-3)

        t = got["proposal_target"]
        np.testing.assert_array_equal(t["rois"], p["rois"])
        ref = proposal_target_numpy(t["rois"], t["gt"], rng=rng_rois, **asdict(ProposalTargetParams.from_config(cfg)))
        for name, r in zip(("rois_out", "label", "bbox_target", "bbox_weight"), ref):
            _assert_equal_rows(t[name], r, atol=1e-4)
        assert (t["label"] == 1).sum() >= present.sum()          # the appended gt rows at least

        o = got["ohem"]
        for name in ("label", "bbox_target", "bbox_weight"):
            np.testing.assert_array_equal(o[name], t[name])
        ref = ohem_numpy(o["cls_prob"], o["bbox_pred"], o["label"], o["bbox_target"], o["bbox_weight"], o["rois"],
                         batch_size=ohem.batch_size, fg_fraction=ohem.fg_fraction, mode=ohem.mode)
        _assert_equal_rows(o["label_ohem"], ref[0], atol=0)
        _assert_equal_rows(o["bbox_weight_ohem"], ref[1], atol=0)
        kept = o["label_ohem"] >= 0
        assert 0 < kept.sum() <= ohem.batch_size and (o["label_ohem"] == 1).sum() <= round(0.25 * ohem.batch_size)
