"""Every verb on a corpus of malformed inputs, generated here in a temporary folder (issue 17).

The rule under test: bad input gives a non-zero exit and one clear ``error: ...`` line as the last line of stderr,
never a traceback (``Traceback`` or the last-resort ``internal error`` line of ``rfcn_face.__main__``) and never a
silent result (exit 0). A case whose expected outcome is ``warning`` (a fault the verb recovers from: a stale lock,
a ``final.params`` older than the newest checkpoint) must succeed *and* say so in a ``warning:`` line. Issue 25 adds
faults: a folder another process writes (a lock file), unreadable checkpoints, an ``--out`` holding another run's
outputs, damaged images, and a full disk / read-only file system (``fault``: the one atomic writer,
``rfcn_face.checkpoint._fill``, fails with that errno); a case's ``check`` looks at the files afterwards (nothing
deleted, nothing half-written under a final name, no temporary left) and counts a violation as ``lost``; an
in-process case that runs longer than ``HANG_S`` is stopped and counted as a ``hang``. Cases run in-process through ``rfcn_face.__main__.main`` (and the ``main`` of
``rfcn_face.recognition.train`` / ``rfcn_face.datasets.synthfaces``); a few run as real subprocesses. The cases
that need a trained model share one tiny run (two iterations of the smoke preset).

The closing table (verb | tried | clear | warning | traceback | silent | hang | lost) is written by the last test
to ``<pytest basetemp>/bad_input_table.md`` and printed (``pytest -s``).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FINAL_YAML = ROOT / "experiments" / "table1" / "13_final.yaml"
TABLE_VERBS = ("emo", "dataset-info", "info", "evaluate wider", "evaluate fddb", "evaluate afw", "evaluate pascal",
               "evaluate check-submission", "search", "train", "test", "detect", "export", "reproduce", "launch",
               "demo", "recognition.train", "synthfaces")
RESULTS: Dict[str, dict] = {}
HANG_S = 240                  # an in-process case running longer than this is stopped and counted as a hang
KINDS = ("clear", "warning", "traceback", "silent", "hang", "lost", "unclear")


# ------------------------------------------------------------------------------------------------ the corpus
class Corpus:
    """Lazily built valid inputs (each once per session) and a fresh folder per malformed file."""

    def __init__(self, root: Path):
        self.root = root
        self._n = 0
        self.run_dir = None          # the tiny trained run, set by the fixture for the cases that need it

    def new_dir(self, name: str = "d") -> Path:
        self._n += 1
        d = self.root / "cases" / f"{self._n:03d}_{name}"
        d.mkdir(parents=True)
        return d

    def file(self, name: str, content) -> Path:
        p = self.new_dir("f") / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def a_file(self) -> Path:
        return self.file("plain.txt", "x\n")

    def savemat(self, name: str, variables: dict) -> Path:
        import scipy.io
        p = self.new_dir("mat") / name
        scipy.io.savemat(str(p), variables)
        return p

    # ---- WIDER
    @cached_property
    def synth(self) -> Path:
        from rfcn_face.datasets.synthfaces import generate_synthfaces
        return generate_synthfaces(self.root / "synth", num_train=0, num_val=4)

    @property
    def gt(self) -> Path:
        return self.synth / "ground_truth"

    @cached_property
    def gt_data(self):
        from rfcn_face.evaluation.wider import WiderGroundTruth
        return WiderGroundTruth.load(self.gt)

    @cached_property
    def pred(self) -> Path:
        from rfcn_face.evaluation.submission import write_submission
        g = self.gt_data
        rng = np.random.default_rng(0)
        dets = {k: np.concatenate([b[:, :2], b[:, :2] + b[:, 2:], rng.random((len(b), 1))], axis=1)
                for k, b in zip(g.keys(), g.boxes)}
        out = self.root / "pred_ok"
        write_submission(dets, out, g.keys())
        return out

    def pred_with_line(self, line: str) -> Path:
        """A copy of the valid submission whose first file's first box line is ``line``."""
        d = self.new_dir("pred")
        dst = d / "pred"
        shutil.copytree(self.pred, dst)
        e, n = self.gt_data.keys()[0]
        f = dst / e / f"{n}.txt"
        lines = f.read_text().splitlines()
        if len(lines) < 3:
            lines = [n, "1", line]
        else:
            lines[2] = line
        f.write_text("\n".join(lines) + "\n")
        return dst

    def pred_nested(self) -> Path:
        d = self.new_dir("nested")
        shutil.copytree(self.pred, d / "predictions")
        return d

    def pred_all_invalid(self) -> Path:
        d = self.new_dir("invalid") / "pred"
        shutil.copytree(self.pred, d)
        for f in d.rglob("*.txt"):
            f.write_text(f"{f.stem}\nmany\n")
        return d

    @property
    def val_txt(self) -> Path:
        return self.synth / "wider_face_split" / "wider_face_val_bbx_gt.txt"

    # ---- FDDB
    @cached_property
    def fddb(self) -> dict:
        from rfcn_face.testing.synthetic_eval import write_synthetic_fddb
        return write_synthetic_fddb(self.root / "fddb", images_per_fold=1)

    def fddb_args(self, dets, *extra) -> list:
        f = self.fddb
        return ["evaluate", "fddb", "--dets", str(dets), "--folds", str(f["folds"]), "--sizes", str(f["sizes"]),
                "--out", str(self.new_dir("roc") / "r_"), *extra]

    def fddb_dets_with_line(self, line: str) -> Path:
        """The valid detections with the first detection line replaced by ``line``."""
        lines = Path(self.fddb["dets"]).read_text().splitlines()
        lines[2] = line
        return self.file("dets.txt", "\n".join(lines) + "\n")

    def fddb_folds_with(self, fold_text: str) -> Path:
        d = self.new_dir("folds") / "FDDB-folds"
        shutil.copytree(self.fddb["folds"], d)
        (d / "FDDB-fold-01-ellipseList.txt").write_text(fold_text)
        (d / "FDDB-fold-01.txt").unlink()
        return d

    # ---- AFW / PASCAL
    @cached_property
    def face_eval(self) -> dict:
        from rfcn_face.testing.synthetic_eval import write_synthetic_face_eval
        return write_synthetic_face_eval(self.root / "face_eval", num_images=5)

    def face_eval_mat_with_row(self, row) -> Path:
        dt = [("imgname", "O"), ("imgsize", "O"), ("objects", "O"), ("flags", "O")]
        ann = np.zeros((1, 1), dtype=dt)
        ann[0, 0]["imgname"] = np.array(["img_000.jpg"])
        ann[0, 0]["imgsize"] = np.array([[400], [300], [3]], dtype=float)
        ann[0, 0]["objects"] = np.asarray([row], dtype=float)
        ann[0, 0]["flags"] = np.zeros((1, 1))
        return self.savemat("ann.mat", {"Annotations": ann})

    def face_eval_dets_with_line(self, line: str) -> Path:
        text = Path(self.face_eval["dets"]).read_text()
        return self.file("dets.txt", line + "\n" + text)

    # ---- search
    @cached_property
    def feats(self) -> dict:
        from rfcn_face.search import make_search_split
        d = make_search_split(60, 4, 20, 10, probes_per_id=2, dim=16, spread=0.5, seed=1)
        root = self.root / "feats"
        root.mkdir()
        out = {}
        for k in ("base", "base_labels", "probe", "probe_labels"):
            out[k] = root / f"{k}.npy"
            np.save(out[k], d[k])
        out["data"] = d
        return out

    def npy(self, name: str, arr) -> Path:
        p = self.new_dir("npy") / f"{name}.npy"
        np.save(p, arr)
        return p

    def search_args(self, **over) -> list:
        f = self.feats
        files = {k: str(over.pop(k, f[k])) for k in ("base", "base_labels", "probe", "probe_labels")}
        argv = ["search", "--base", files["base"], "--base-labels", files["base_labels"], "--probe", files["probe"],
                "--probe-labels", files["probe_labels"], "--nlist", "4", "--nprobe", "2", "--pq-m", "4",
                "--pq-nbits", "4"]
        for k, v in over.items():
            argv += [f"--{k.replace('_', '-')}", str(v)]
        return argv

    @cached_property
    def synth_train(self) -> Path:
        """A synthfaces root with two training images (for a damaged training image)."""
        from rfcn_face.datasets.synthfaces import generate_synthfaces
        return generate_synthfaces(self.root / "synth_train", num_train=2, num_val=1)

    @cached_property
    def frn_run(self) -> Path:
        """A one-epoch FaceResNet run (for its unreadable checkpoints)."""
        from rfcn_face.recognition.train import main as frn
        out = self.root / "frn_run"
        assert frn(_frn(self, out=out)) == 0
        return out

    # ---- configs and runs
    def yaml(self, text: str) -> Path:
        return self.file("row.yaml", text)

    def run_without_params(self) -> Path:
        d = self.new_dir("run") / "run"
        d.mkdir()
        shutil.copy(self.run_dir / "config.yaml", d / "config.yaml")
        return d

    def run_with_truncated_params(self) -> Path:
        d = self.run_without_params()
        data = (self.run_dir / "final.params").read_bytes()
        (d / "final.params").write_bytes(data[:len(data) // 3])
        return d

    def image(self, name="face.jpg") -> Path:
        import cv2
        p = self.new_dir("img") / name
        cv2.imwrite(str(p), np.full((64, 64, 3), 128, np.uint8))
        return p

    def frn_run_folder(self) -> Path:
        """A folder that holds a FaceResNet run's files (for the refuse-to-mix case)."""
        d = self.new_dir("frn") / "run"
        d.mkdir()
        (d / "run.json").write_text(json.dumps({"kind": "faceresnet"}))
        (d / "notes.txt").write_text("x")
        return d


def _wider_txt(row: str, count: str = "1") -> str:
    return f"0--Parade/0_Parade_a_1.jpg\n{count}\n{row}\n"


ROW_OK = "10 10 20 20 0 0 0 0 0 0"


# ------------------------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    verb: str                           # row of the table
    name: str                           # the bad input, in a few words
    argv: Callable[[Corpus], List[str]]
    runner: str = "main"                # main | frn | synth | proc (a real `python -m rfcn_face` process)
    needs_run: bool = False
    expect: str = ""                    # a piece of the error line (outcome warning: of the warning line)
    xfail: str = ""                     # a known problem in a file this change may not edit (named)
    outcome: str = "clear"              # clear (an error line, non-zero exit) | warning (exit 0 and a warning line)
    fault: str = ""                     # ENOSPC | EROFS | EDQUOT: every atomic write fails with that errno
    check: Optional[Callable] = None    # check(corpus, argv) -> "" or what was lost / mixed / left behind

    @property
    def id(self) -> str:
        return f"{self.verb}: {self.name}"


CASES: List[Case] = []


def case(verb, name, argv, **kw):
    CASES.append(Case(verb, name, argv, **kw))


# ---- emo
E = "emo"
case(E, "annotations missing", lambda c: ["emo", "--annotations", str(c.root / "nope.txt"), "--out", str(c.new_dir())],
     expect="not found")
case(E, "annotations is a folder", lambda c: ["emo", "--annotations", str(c.new_dir()), "--out", str(c.new_dir())])
case(E, "annotations empty", lambda c: ["emo", "--annotations", str(c.file("a.txt", "")), "--out", str(c.new_dir())],
     expect="no face")
case(E, "annotations binary", lambda c: ["emo", "--annotations", str(c.file("a.txt", bytes(range(256)) * 4)),
                                         "--out", str(c.new_dir())])
case(E, "NaN coordinate", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt("nan 10 20 20 0 0 0 0 0 0"))),
                                     "--out", str(c.new_dir())], expect=":3:")
case(E, "inf width", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt("10 10 inf 20 0 0 0 0 0 0"))),
                                "--out", str(c.new_dir())], expect=":3:")
case(E, "count not a number", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt(ROW_OK, "x"))),
                                         "--out", str(c.new_dir())], expect=":2:")
case(E, "count larger than rows", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt(ROW_OK, "3"))),
                                             "--out", str(c.new_dir())], expect="truncated")
case(E, "9 columns", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt("1 2 3 4 5 6 7 8 9"))),
                                "--out", str(c.new_dir())], expect=":3:")
case(E, "non-numeric field", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt("1 2 3 x 0 0 0 0 0 0"))),
                                        "--out", str(c.new_dir())], expect=":3:")
case(E, "--json is a folder", lambda c: ["emo", "--out", str(c.new_dir()), "--grid", "20", "--no-plots", "--json",
                                        str(c.new_dir())])
case(E, "negative count", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt(ROW_OK, "-1"))),
                                     "--out", str(c.new_dir())])
case(E, "attribute not an integer", lambda c: ["emo", "--annotations",
                                               str(c.file("a.txt", _wider_txt("10 10 20 20 0.5 0 0 0 0 0"))),
                                               "--out", str(c.new_dir())], expect=":3:")
case(E, "corrupt .mat", lambda c: ["emo", "--annotations", str(c.file("a.mat", b"MATLAB garbage" * 20)),
                                   "--out", str(c.new_dir())], expect="a.mat")
case(E, ".mat without WIDER variables", lambda c: ["emo", "--annotations", str(c.savemat("a.mat", {"x": 1.0})),
                                                   "--out", str(c.new_dir())], expect="event_list")
case(E, "no usable face", lambda c: ["emo", "--annotations", str(c.file("a.txt", _wider_txt("1 1 20 20 0 0 0 1 0 0"))),
                                     "--out", str(c.new_dir())], expect="usable")
case(E, "--grid 0", lambda c: ["emo", "--grid", "0", "--out", str(c.new_dir()), "--no-plots"], expect="--grid")
case(E, "--grid -3", lambda c: ["emo", "--grid", "-3", "--out", str(c.new_dir()), "--no-plots"], expect="--grid")
case(E, "--grid 10^6", lambda c: ["emo", "--grid", "1000000", "--out", str(c.new_dir()), "--no-plots"], expect="--grid")
case(E, "--grid abc", lambda c: ["emo", "--grid", "abc", "--out", str(c.new_dir())])
case(E, "--out is a file", lambda c: ["emo", "--out", str(c.a_file()), "--no-plots"], expect="file")
case(E, "--out under a file", lambda c: ["emo", "--out", str(c.a_file() / "sub"), "--no-plots"])

# ---- dataset-info
D = "dataset-info"
for ds in ("wider", "fddb", "afw", "pascal", "synthfaces"):
    case(D, f"{ds}: path missing", lambda c, ds=ds: ["dataset-info", ds, str(c.root / "nope")], expect="not found")
case(D, "wider: empty folder", lambda c: ["dataset-info", "wider", str(c.new_dir())])
case(D, "wider: empty file", lambda c: ["dataset-info", "wider", str(c.file("gt.txt", ""))], expect="no image")
case(D, "wider: NaN coordinate", lambda c: ["dataset-info", "wider",
                                            str(c.file("gt.txt", _wider_txt("10 nan 20 20 0 0 0 0 0 0")))], expect=":3:")
case(D, "wider: -inf coordinate", lambda c: ["dataset-info", "wider",
                                             str(c.file("gt.txt", _wider_txt("-inf 1 20 20 0 0 0 0 0 0")))], expect=":3:")
case(D, "wider: truncated", lambda c: ["dataset-info", "wider", str(c.file("gt.txt", "0--a/b.jpg\n"))])
case(D, "wider: row where a name belongs", lambda c: ["dataset-info", "wider",
                                                      str(c.file("gt.txt", "1 2 3 4\n1\n" + ROW_OK + "\n"))])
case(D, "wider: corrupt .mat", lambda c: ["dataset-info", "wider", str(c.file("w.mat", b"\x00" * 300))])
case(D, "wider: .mat without lists", lambda c: ["dataset-info", "wider", str(c.savemat("w.mat", {"a": 1.0}))])
case(D, "wider: .mat with NaN box", lambda c: ["dataset-info", "wider", str(_nan_split_mat(c))], expect="NaN")
case(D, "wider: root without split", lambda c: ["dataset-info", "wider", str(c.new_dir()), "--split", "test"])
case(D, "fddb: folder without folds", lambda c: ["dataset-info", "fddb", str(c.new_dir())])
case(D, "fddb: NaN radius", lambda c: ["dataset-info", "fddb",
                                       str(c.fddb_folds_with("a/b\n1\nnan 10 0 50 50 1\n"))], expect=":3:")
case(D, "fddb: negative radius", lambda c: ["dataset-info", "fddb",
                                            str(c.fddb_folds_with("a/b\n1\n-3 10 0 50 50 1\n"))], expect=":3:")
case(D, "fddb: count not a number", lambda c: ["dataset-info", "fddb", str(c.fddb_folds_with("a/b\nxx\n"))],
     expect=":2:")
case(D, "fddb: truncated", lambda c: ["dataset-info", "fddb", str(c.fddb_folds_with("a/b\n2\n3 3 0 5 5 1\n"))],
     expect="truncated")
case(D, "fddb: 4 numbers per ellipse", lambda c: ["dataset-info", "fddb", str(c.fddb_folds_with("a/b\n1\n3 3 0 5\n"))],
     expect=":3:")
case(D, "fddb: inf centre", lambda c: ["dataset-info", "fddb",
                                       str(c.fddb_folds_with("a/b\n1\n30 20 0 inf 50 1\n"))], expect=":3:")
case(D, "fddb: sizes file missing", lambda c: ["dataset-info", "fddb", str(c.fddb["folds"]), "--sizes",
                                               str(c.root / "nope.txt")], expect="not found")
case(D, "fddb: sizes malformed", lambda c: ["dataset-info", "fddb", str(c.fddb["folds"]), "--sizes",
                                            str(c.file("s.txt", "a 1\n"))], expect=":1:")
case(D, "fddb: sizes zero", lambda c: ["dataset-info", "fddb", str(c.fddb["folds"]), "--sizes",
                                       str(c.file("s.txt", "a 0 10\n"))], expect=":1:")
case(D, "fddb: fold list differs", lambda c: ["dataset-info", "fddb", str(_fold_list_mismatch(c))])
for ds in ("afw", "pascal"):
    case(D, f"{ds}: folder without .mat", lambda c, ds=ds: ["dataset-info", ds, str(c.new_dir())])
    case(D, f"{ds}: corrupt .mat", lambda c, ds=ds: ["dataset-info", ds, str(c.file("a.mat", b"junk" * 50))])
    case(D, f"{ds}: unknown layout", lambda c, ds=ds: ["dataset-info", ds, str(c.savemat("a.mat", {"b": 1.0}))])
    case(D, f"{ds}: x2 < x1", lambda c, ds=ds: ["dataset-info", ds, str(c.face_eval_mat_with_row([50, 10, 20, 60, 0, 0]))],
         expect="x2 < x1")
    case(D, f"{ds}: NaN coordinate", lambda c, ds=ds: ["dataset-info", ds,
                                                       str(c.face_eval_mat_with_row([10, np.nan, 40, 60, 0, 0]))],
         expect="NaN")
case(D, "synthfaces: path is a file", lambda c: ["dataset-info", "synthfaces", str(c.a_file())])
case(D, "synthfaces: not a synthfaces root", lambda c: ["dataset-info", "synthfaces", str(c.new_dir())])
case(D, "unknown dataset", lambda c: ["dataset-info", "celeba", str(c.new_dir())])
case(D, "--json is a folder", lambda c: ["dataset-info", "wider", str(c.val_txt), "--json", str(c.new_dir())])

# ---- info
I = "info"
case(I, "--config missing", lambda c: ["info", "--config", str(c.root / "nope.yaml")], expect="nope.yaml")
case(I, "--config is a folder", lambda c: ["info", "--config", str(c.new_dir())], expect="is a folder")
case(I, "--config not UTF-8", lambda c: ["info", "--config", str(c.file("binary.yaml", b"name: \x80\xff"))],
     expect="binary.yaml: not a text")
case(I, "--config not YAML", lambda c: ["info", "--config", str(c.yaml("model: [unclosed\n"))])
case(I, "--config binary", lambda c: ["info", "--config", str(c.file("b.yaml", bytes(range(256))))])
case(I, "--config a YAML list", lambda c: ["info", "--config", str(c.yaml("- 1\n- 2\n"))])
case(I, "unknown key", lambda c: ["info", "--config", str(c.yaml("model: {archh: DC}\n"))], expect="archh")
case(I, "anchor scale 0", lambda c: ["info", "--config", str(c.yaml("anchors: {scales: [0, 16]}\n"))],
     expect="anchors.scales")
case(I, "anchor scale -16", lambda c: ["info", "--config", str(c.yaml("anchors: {scales: [-16]}\n"))],
     expect="anchors.scales")
case(I, "anchor ratio 0", lambda c: ["info", "--config", str(c.yaml("anchors: {ratios: [0]}\n"))],
     expect="anchors.ratios")
case(I, "anchor ratio NaN", lambda c: ["info", "--config", str(c.yaml("anchors: {ratios: [.nan]}\n"))],
     expect="anchors.ratios")
case(I, "anchor scale inf", lambda c: ["info", "--config", str(c.yaml("anchors: {scales: [.inf]}\n"))],
     expect="anchors.scales")
case(I, "anchor scales empty", lambda c: ["info", "--config", str(c.yaml("anchors: {scales: []}\n"))],
     expect="anchors.scales")
case(I, "anchor scale a string", lambda c: ["info", "--config", str(c.yaml("anchors: {scales: [big]}\n"))],
     expect="anchors.scales")
case(I, "bad shifted spec", lambda c: ["info", "--config", str(c.yaml("anchors: {shifted: 16x7}\n"))])
case(I, "unknown arch", lambda c: ["info", "--set", "model.arch=XX"], expect="model.arch")
case(I, "--size 0x10", lambda c: ["info", "--size", "0x10"], expect="--size")
case(I, "--size abc", lambda c: ["info", "--size", "abc"], expect="--size")
case(I, "--preset unknown", lambda c: ["info", "--preset", "nosuch"], expect="nosuch")
case(I, "--set without =", lambda c: ["info", "--set", "model.arch"])
case(I, "--set unknown key", lambda c: ["info", "--set", "model.nosuch=1"], expect="nosuch")
case(I, "--set bad YAML value", lambda c: ["info", "--set", "anchors.scales=[16,"])
case(I, "pretrained missing", lambda c: ["info", "--set", f"model.pretrained={c.root / 'nope.params'}"],
     expect="nope.params")
case(I, "pretrained garbage", lambda c: ["info", "--set", f"model.pretrained={c.file('w.params', b'xx' * 100)}"])
case(I, "_BASE_ missing", lambda c: ["info", "--config", str(c.yaml("_BASE_: nope.yaml\n"))], expect="nope.yaml")
case(I, "--json under a file", lambda c: ["info", "--json", str(c.a_file() / "x.json")])

# ---- evaluate wider
W = "evaluate wider"


def _wider(c, pred, *extra):
    return ["evaluate", "wider", "--pred", str(pred), "--gt", str(c.gt), *extra]


case(W, "--pred missing", lambda c: _wider(c, c.root / "nope"), expect="not found")
case(W, "--pred is a file", lambda c: _wider(c, c.a_file()))
case(W, "--pred empty folder", lambda c: _wider(c, c.new_dir()), expect="no prediction file")
case(W, "--pred parent of the folder", lambda c: _wider(c, c.pred_nested()), expect="predictions")
case(W, "every file invalid", lambda c: _wider(c, c.pred_all_invalid()))
case(W, "--gt missing", lambda c: ["evaluate", "wider", "--pred", str(c.pred), "--gt", str(c.root / "nope")])
case(W, "--gt without setting files", lambda c: ["evaluate", "wider", "--pred", str(c.pred), "--gt", str(c.new_dir())])
case(W, "--gt corrupt .mat", lambda c: ["evaluate", "wider", "--pred", str(c.pred), "--gt", str(_corrupt_gt(c))])
case(W, "NaN score", lambda c: _wider(c, c.pred_with_line("10 10 20 20 nan")), expect=":3:")
case(W, "inf score", lambda c: _wider(c, c.pred_with_line("10 10 20 20 inf")), expect=":3:")
case(W, "-inf score", lambda c: _wider(c, c.pred_with_line("10 10 20 20 -inf")), expect=":3:")
case(W, "NaN coordinate", lambda c: _wider(c, c.pred_with_line("nan 10 20 20 0.5")), expect=":3:")
case(W, "negative width", lambda c: _wider(c, c.pred_with_line("10 10 -20 20 0.5")), expect=":3:")
case(W, "--json is a folder", lambda c: _wider(c, c.pred, "--json", str(c.new_dir())))
case(W, "--plot under a file", lambda c: _wider(c, c.pred, "--plot", str(c.a_file() / "pr.png")))
case(W, "--baselines missing", lambda c: _wider(c, c.pred, "--plot", str(c.new_dir() / "pr.png"), "--baselines",
                                                str(c.root / "nope")), expect="nope")
case(W, "no --gt", lambda c: ["evaluate", "wider", "--pred", str(c.pred)])

# ---- evaluate fddb
F = "evaluate fddb"
case(F, "--dets missing", lambda c: c.fddb_args(c.root / "nope.txt"), expect="nope.txt")
case(F, "--json is a folder", lambda c: c.fddb_args(c.fddb["dets"], "--json", str(c.new_dir())))
case(F, "--json under a file", lambda c: c.fddb_args(c.fddb["dets"], "--json", str(c.a_file() / "r.json")))
case(F, "--dets empty file", lambda c: c.fddb_args(c.file("d.txt", "")), expect="no detection")
case(F, "--dets a folder", lambda c: c.fddb_args(c.new_dir()))
case(F, "--dets binary", lambda c: c.fddb_args(c.file("d.txt", bytes(range(256)) * 3)))
case(F, "count 1.5", lambda c: c.fddb_args(c.file("d.txt", _replace_count(c, "1.5"))), expect=":2:")
case(F, "count abc", lambda c: c.fddb_args(c.file("d.txt", _replace_count(c, "abc"))), expect=":2:")
case(F, "count -1", lambda c: c.fddb_args(c.file("d.txt", _replace_count(c, "-1"))), expect=":2:")
case(F, "NaN score", lambda c: c.fddb_args(c.fddb_dets_with_line("10 10 20 20 nan")), expect=":3:")
case(F, "inf score", lambda c: c.fddb_args(c.fddb_dets_with_line("10 10 20 20 inf")), expect=":3:")
case(F, "NaN coordinate", lambda c: c.fddb_args(c.fddb_dets_with_line("10 nan 20 20 0.5")), expect=":3:")
case(F, "ellipse negative radius", lambda c: c.fddb_args(c.file("d.txt", _ellipse_dets(c, "-5 3 0 50 50 0.9"))),
     expect=":3:")
case(F, "rect then ellipse", lambda c: c.fddb_args(c.file("d.txt", _mixed_dets(c))))
case(F, "non-numeric", lambda c: c.fddb_args(c.fddb_dets_with_line("10 10 x 20 0.5")), expect=":3:")
case(F, "truncated", lambda c: c.fddb_args(c.file("d.txt", "".join(Path(c.fddb["dets"]).read_text()
                                                                      .splitlines(True)[:-1]) + "img\n5\n")))
case(F, "images in another order", lambda c: c.fddb_args(c.file("d.txt", _swapped_dets(c))))
case(F, "an image left out", lambda c: c.fddb_args(c.file("d.txt", _dets_without_first(c))))
case(F, "--folds missing", lambda c: ["evaluate", "fddb", "--dets", str(c.fddb["dets"]), "--folds", str(c.root / "no"),
                                      "--sizes", str(c.fddb["sizes"]), "--out", str(c.new_dir() / "r_")])
case(F, "--fold 11", lambda c: c.fddb_args(c.fddb["dets"], "--fold", "11"), expect="fold")
case(F, "--fold 0", lambda c: c.fddb_args(c.fddb["dets"], "--fold", "0"), expect="fold")
case(F, "--fold 3 3", lambda c: c.fddb_args(c.fddb["dets"], "--fold", "3", "3"), expect="fold")
case(F, "--sizes missing", lambda c: ["evaluate", "fddb", "--dets", str(c.fddb["dets"]), "--folds",
                                      str(c.fddb["folds"]), "--sizes", str(c.root / "nope"), "--out", str(c.new_dir() / "r_")])
case(F, "--sizes lacks an image", lambda c: ["evaluate", "fddb", "--dets", str(c.fddb["dets"]), "--folds",
                                             str(c.fddb["folds"]), "--sizes", str(c.file("s.txt", "x 10 10\n")),
                                             "--out", str(c.new_dir() / "r_")])
case(F, "--images missing", lambda c: ["evaluate", "fddb", "--dets", str(c.fddb["dets"]), "--folds",
                                       str(c.fddb["folds"]), "--images", str(c.root / "nope"), "--out", str(c.new_dir() / "r_")])
case(F, "--ellipse-regressor missing", lambda c: c.fddb_args(c.fddb["dets"], "--ellipse-regressor", str(c.root / "e.json")))
case(F, "--ellipse-regressor corrupt", lambda c: c.fddb_args(c.fddb["dets"], "--ellipse-regressor",
                                                              str(c.file("e.json", "{not json"))))
case(F, "--ellipse-regressor wrong JSON", lambda c: c.fddb_args(c.fddb["dets"], "--ellipse-regressor",
                                                                 str(c.file("e.json", "[1, 2]"))))
case(F, "regressor on ellipses", lambda c: c.fddb_args(c.file("d.txt", _ellipse_dets(c, "5 3 0 50 50 0.9")),
                                                        "--fit-ellipse-regressor", str(c.new_dir() / "e.json")))
case(F, "--det-format ellipse on rectangles", lambda c: c.fddb_args(c.fddb["dets"], "--det-format", "ellipse"))
case(F, "--out under a file", lambda c: ["evaluate", "fddb", "--dets", str(c.fddb["dets"]), "--folds",
                                         str(c.fddb["folds"]), "--sizes", str(c.fddb["sizes"]), "--out",
                                         str(c.a_file() / "r_")])
case(F, "no --out", lambda c: ["evaluate", "fddb", "--dets", str(c.fddb["dets"]), "--folds", str(c.fddb["folds"]),
                               "--sizes", str(c.fddb["sizes"])])

# ---- evaluate afw / pascal
for bench in ("afw", "pascal"):
    V = f"evaluate {bench}"

    def fe(c, dets, *extra, bench=bench, gt=None):
        return ["evaluate", bench, "--dets", str(dets), "--gt", str(gt or c.face_eval["gt"]), *extra]

    case(V, "--dets missing", lambda c, fe=fe: fe(c, c.root / "nope.txt"), expect="nope.txt")
    case(V, "--dets empty file", lambda c, fe=fe: fe(c, c.file("d.txt", "")), expect="no detection")
    case(V, "short line", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg 0.5 1 2 3")), expect=":1:")
    case(V, "non-numeric", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg 0.5 1 2 x 4")),
         expect=":1:")
    case(V, "x2 < x1", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg 0.5 50 10 20 60")),
         expect=":1:")
    case(V, "y2 < y1", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg 0.5 10 60 50 20")),
         expect=":1:")
    case(V, "NaN score", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg nan 10 10 50 60")),
         expect=":1:")
    case(V, "inf score", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg inf 10 10 50 60")),
         expect=":1:")
    case(V, "NaN coordinate", lambda c, fe=fe: fe(c, c.face_eval_dets_with_line("synth_000.jpg 0.5 10 nan 50 60")),
         expect=":1:")
    case(V, "no image name known", lambda c, fe=fe: fe(c, c.file("d.txt", "other_1.jpg 0.5 10 10 50 60\n")),
         expect="other_1")
    case(V, "--gt missing", lambda c, fe=fe: fe(c, c.face_eval["dets"], gt=c.root / "nope.mat"), expect="nope.mat")
    case(V, "--gt corrupt", lambda c, fe=fe: fe(c, c.face_eval["dets"], gt=c.file("g.mat", b"junk" * 80)))
    case(V, "--gt unknown layout", lambda c, fe=fe: fe(c, c.face_eval["dets"], gt=c.savemat("g.mat", {"q": 1.0})))
    case(V, "--gt NaN face", lambda c, fe=fe: fe(c, c.face_eval["dets"],
                                                 gt=c.face_eval_mat_with_row([10, 10, np.nan, 60, 0, 0])), expect="NaN")
    case(V, "--nit 0", lambda c, fe=fe: fe(c, c.face_eval["dets"], "--nit", "0"), expect="--nit")
    case(V, "--minw -1", lambda c, fe=fe: fe(c, c.face_eval["dets"], "--minw", "-1"), expect="--minw")
    case(V, "--minh nan", lambda c, fe=fe: fe(c, c.face_eval["dets"], "--minh", "nan"), expect="--minh")
    case(V, "--json is a folder", lambda c, fe=fe: fe(c, c.face_eval["dets"], "--json", str(c.new_dir())))

# ---- evaluate check-submission
S = "evaluate check-submission"


def _check(c, pred, *extra, filelist=None):
    return ["evaluate", "check-submission", "--pred", str(pred), "--split", "val", "--filelist",
            str(filelist or c.val_txt), *extra]


case(S, "--pred missing", lambda c: _check(c, c.root / "nope"), expect="not found")
case(S, "--pred empty folder", lambda c: _check(c, c.new_dir()), expect="problem")
case(S, "NaN value", lambda c: _check(c, c.pred_with_line("1 2 3 4 nan")), expect="problem")
case(S, "negative size", lambda c: _check(c, c.pred_with_line("1 2 -3 4 0.5")), expect="problem")
case(S, "--filelist missing", lambda c: _check(c, c.pred, filelist=c.root / "nope.txt"), expect="nope.txt")
case(S, "--filelist without images", lambda c: _check(c, c.pred, filelist=c.file("l.txt", "hello\n")),
     expect="no image")
case(S, "--filelist image without event", lambda c: _check(c, c.pred, filelist=c.file("l.txt", "a.jpg\n")),
     expect=":1:")
case(S, "--max-problems -1", lambda c: _check(c, c.pred, "--max-problems", "-1"), expect="--max-problems")
case(S, "--split missing", lambda c: ["evaluate", "check-submission", "--pred", str(c.pred)])
case(S, "--pred corrupt zip", lambda c: _check(c, c.file("p.zip", b"PK\x03\x04" + b"\x00" * 60)), expect="p.zip")
case(S, "--pred a file, not a zip", lambda c: _check(c, c.a_file()), expect="not a zip")
case(S, "--pred empty zip", lambda c: _check(c, c.file("e.zip", b"PK\x05\x06" + b"\x00" * 18)), expect="problem")
case(S, "--json is a folder", lambda c: _check(c, c.pred, "--json", str(c.new_dir())))

# ---- search
R = "search"
case(R, "--base missing", lambda c: c.search_args(base=c.root / "nope.npy"), expect="nope.npy")
case(R, "--base not .npy", lambda c: c.search_args(base=c.file("b.npy", "text")), expect="b.npy")
case(R, "--base 1-D", lambda c: c.search_args(base=c.npy("b", np.zeros(5))), expect="2-D")
case(R, "--base strings", lambda c: c.search_args(base=c.npy("b", np.array([["a", "b"]]))), expect="numeric")
case(R, "--base complex", lambda c: c.search_args(base=c.npy("b", np.ones((240, 16), complex))), expect="numeric")
case(R, "--base object array", lambda c: c.search_args(base=c.npy("b", np.array([None, 1], dtype=object))))
case(R, "base labels count", lambda c: c.search_args(base_labels=c.npy("l", c.feats["data"]["base_labels"][:-1])),
     expect="labels")
case(R, "base labels 2-D", lambda c: c.search_args(base_labels=c.npy("l", np.zeros((240, 2), np.int64))))
case(R, "probe dimension", lambda c: c.search_args(probe=c.npy("p", np.zeros((60, 8), np.float32))), expect="dimension")
case(R, "labels of another dtype", lambda c: c.search_args(
    probe_labels=c.npy("l", c.feats["data"]["probe_labels"].astype(str))), expect="dtype")
case(R, "float labels with fractions", lambda c: c.search_args(
    probe_labels=c.npy("l", c.feats["data"]["probe_labels"] + 0.5)), expect="label")
case(R, "NaN feature", lambda c: c.search_args(base=c.npy("b", _with(c.feats["data"]["base"], (3, 2), np.nan))),
     expect="NaN")
case(R, "inf feature", lambda c: c.search_args(probe=c.npy("p", _with(c.feats["data"]["probe"], (1, 0), np.inf))),
     expect="inf")
case(R, "empty base", lambda c: c.search_args(base=c.npy("b", np.zeros((0, 16), np.float32)),
                                              base_labels=c.npy("l", np.zeros(0, np.int64))), expect="empty")
case(R, "empty probe", lambda c: c.search_args(probe=c.npy("p", np.zeros((0, 16), np.float32)),
                                               probe_labels=c.npy("l", np.zeros(0, np.int64))), expect="empty")
case(R, "zero-dimensional features", lambda c: c.search_args(base=c.npy("b", np.zeros((240, 0), np.float32)),
                                                             probe=c.npy("p", np.zeros((60, 0), np.float32))))
case(R, "--normalize with a zero row", lambda c: c.search_args(base=c.npy("b", _with(c.feats["data"]["base"], (0, None),
                                                                                     0.0))) + ["--normalize"],
     expect="zero")
case(R, "--nlist 0", lambda c: c.search_args(strategy="ivfflat", nlist=0), expect="nlist")
case(R, "--nprobe 0", lambda c: c.search_args(strategy="ivfflat", nprobe=0), expect="nprobe")
case(R, "--nprobe > --nlist", lambda c: c.search_args(strategy="ivfflat", nprobe=9), expect="nprobe")
case(R, "--nlist > base", lambda c: c.search_args(strategy="ivfflat", nlist=100000), expect="nlist")
case(R, "--pq-m not dividing d", lambda c: c.search_args(strategy="ivfpq", pq_m=5), expect="divide")
case(R, "--pq-nbits 20", lambda c: c.search_args(strategy="ivfpq", pq_nbits=20), expect="nbits")
case(R, "--rerank -1", lambda c: c.search_args(strategy="ivfpq", rerank=-1), expect="--rerank")
case(R, "--heldout 1.5", lambda c: c.search_args(heldout=1.5), expect="--heldout")
case(R, "--heldout -0.1", lambda c: c.search_args(heldout=-0.1), expect="--heldout")
case(R, "--heldout nan", lambda c: c.search_args(heldout="nan"), expect="--heldout")
case(R, "--heldout 0", lambda c: c.search_args(heldout=0), expect="--heldout")
case(R, "--device gpu", lambda c: c.search_args(device="gpu"), expect="GPU")
case(R, "--json is a folder", lambda c: c.search_args(json=c.new_dir()))
case(R, "--csv under a file", lambda c: c.search_args(csv=c.a_file() / "r.csv"))

# ---- train (rfcn_face/train.py, rfcn_face/cli/train.py, rfcn_face/config.py: not edited here)
T = "train"


def _train(c, *extra, out=None):
    return ["train", "--config", str(FINAL_YAML), "--preset", "smoke", "--max-iters", "1", "--no-progress",
            "--out", str(out or (c.new_dir() / "run")), *extra]


case(T, "--config missing", lambda c: ["train", "--config", str(c.root / "nope.yaml"), "--out", str(c.new_dir())],
     expect="nope.yaml")
case(T, "--config not YAML", lambda c: ["train", "--config", str(c.yaml("a: [b\n")), "--out", str(c.new_dir())])
case(T, "unknown key", lambda c: ["train", "--config", str(c.yaml("train: {lrr: 1}\n")), "--out", str(c.new_dir())],
     expect="lrr")
case(T, "anchor scale 0", lambda c: _train(c, "--set", "anchors.scales=[0]"), expect="anchors.scales")
case(T, "anchor ratio -1", lambda c: _train(c, "--set", "anchors.ratios=[-1]"), expect="anchors.ratios")
case(T, "train.lr nan", lambda c: _train(c, "--set", "train.lr=.nan"), expect="train.lr")
case(T, "train.epochs 0", lambda c: _train(c, "--set", "train.epochs=0"), expect="train.epochs")
case(T, "--out is a file", lambda c: _train(c, out=c.a_file()), expect="file")
case(T, "--out holds files", lambda c: _train(c, out=c.a_file().parent), expect="--resume")
case(T, "--resume without a run", lambda c: _train(c, "--resume", out=c.new_dir()), expect="--resume")
case(T, "--cpus -1", lambda c: _train(c, "--cpus", "-1"), expect="--cpus must be >= 1")
case(T, "--cpus 0", lambda c: _train(c, "--cpus", "0"), expect="--cpus")
case(T, "--max-iters -1", lambda c: ["train", "--config", str(FINAL_YAML), "--preset", "smoke", "--max-iters", "-1",
                                     "--out", str(c.new_dir() / "r")])
case(T, "--gpus abc", lambda c: _train(c, "--gpus", "abc"), expect="--gpus")
case(T, "--gpus 0 without a GPU", lambda c: _train(c, "--gpus", "0"), expect="GPU")
case(T, "--preset unknown", lambda c: ["train", "--preset", "nosuch", "--out", str(c.new_dir())], expect="nosuch")
case(T, "--pretrained missing", lambda c: _train(c, "--pretrained", str(c.root / "w.params")), expect="w.params")
case(T, "--pretrained garbage", lambda c: _train(c, "--pretrained", str(c.file("w.params", b"\x00" * 500))))
case(T, "--kvstore dist_sync alone", lambda c: _train(c, "--kvstore", "dist_sync"), expect="launch")
case(T, "--set without =", lambda c: _train(c, "--set", "train.lr"))

# ---- test (needs the tiny run for some)
X = "test"


def _test(c, *extra, run=None, out=None):
    return ["test", "--run", str(run or c.run_dir), "--dataset", "synthfaces-val", "--limit", "1", "--no-progress",
            "--out", str(out or (c.new_dir() / "t")), *extra]


case(X, "--run missing", lambda c: _test(c, run=c.root / "nope"), expect="not found")
case(X, "--run an empty folder", lambda c: _test(c, run=c.new_dir()), expect="config.yaml")
case(X, "--run is a file", lambda c: _test(c, run=c.a_file()))
case(X, "--run without final.params", lambda c: _test(c, run=c.run_without_params()), needs_run=True,
     expect="final.params")
case(X, "truncated final.params", lambda c: _test(c, run=c.run_with_truncated_params()), needs_run=True,
     expect="final.params")
case(X, "--sizes 600", lambda c: _test(c, "--sizes", "600"), needs_run=True, expect="600")
case(X, "--sizes and --pyramid", lambda c: _test(c, "--sizes", "128x128", "--pyramid"), needs_run=True)
case(X, "--limit -1", lambda c: _test(c, "--limit", "-1"), needs_run=True, expect="--limit")
case(X, "--out is a file", lambda c: _test(c, out=c.a_file()), needs_run=True, expect="folder")
case(X, "--data missing (fddb)", lambda c: ["test", "--run", str(c.run_dir), "--dataset", "fddb", "--data",
                                            str(c.root / "nope"), "--out", str(c.new_dir() / "t")], needs_run=True)
case(X, "--data without AFW", lambda c: ["test", "--run", str(c.run_dir), "--dataset", "afw", "--data",
                                         str(c.new_dir()), "--out", str(c.new_dir() / "t")], needs_run=True)
case(X, "--data without WIDER", lambda c: ["test", "--run", str(c.run_dir), "--dataset", "wider-val", "--data",
                                           str(c.new_dir()), "--out", str(c.new_dir() / "t")], needs_run=True)
case(X, "--ellipse-regressor missing", lambda c: _test(c, "--ellipse-regressor", str(c.root / "e.json")),
     needs_run=True, expect="e.json")
case(X, "--baselines missing", lambda c: _test(c, "--baselines", str(c.root / "nope")), needs_run=True,
     expect="nope")
case(X, "--set a training knob", lambda c: _test(c, "--set", "model.arch=DC"), needs_run=True, expect="test")
case(X, "--set test.nms_thresh=2", lambda c: _test(c, "--set", "test.nms_thresh=2"), needs_run=True,
     expect="nms_thresh")
case(X, "--cpus 0", lambda c: _test(c, "--cpus", "0"), needs_run=True, expect="--cpus")
case(X, "--gpus 0 without a GPU", lambda c: _test(c, "--gpus", "0"), needs_run=True, expect="GPU")
case(X, "unknown --dataset", lambda c: _test(c, "--dataset", "celeba"))

# ---- detect
DT = "detect"


def _detect(c, images, *extra, run=None, out=None):
    return ["detect", *[str(i) for i in images], "--run", str(run or c.run_dir), "--no-progress",
            "--out", str(out or (c.new_dir() / "o")), *extra]


case(DT, "image missing", lambda c: _detect(c, [c.root / "nope.jpg"]), needs_run=True, expect="nope.jpg")
case(DT, "image not an image", lambda c: _detect(c, [c.file("x.jpg", b"not a jpeg" * 10)]), needs_run=True,
     expect="x.jpg")
case(DT, "image empty", lambda c: _detect(c, [c.file("e.png", b"")]), needs_run=True, expect="e.png")
case(DT, "image is a folder", lambda c: _detect(c, [c.new_dir()]), needs_run=True)
case(DT, "--thresh 2", lambda c: _detect(c, [c.image()], "--thresh", "2"), needs_run=True, expect="--thresh")
case(DT, "--thresh nan", lambda c: _detect(c, [c.image()], "--thresh", "nan"), needs_run=True, expect="--thresh")
case(DT, "--out is a file", lambda c: _detect(c, [c.image()], out=c.a_file()), needs_run=True, expect="folder")
case(DT, "two images, one name", lambda c: _detect(c, [c.image("a.jpg"), c.image("a.jpg")]), needs_run=True,
     expect="name")
case(DT, "--run missing", lambda c: _detect(c, [c.image()], run=c.root / "nope"), expect="not found")
case(DT, "truncated final.params", lambda c: _detect(c, [c.image()], run=c.run_with_truncated_params()),
     needs_run=True, expect="final.params")
case(DT, "--sizes 1x2x3", lambda c: _detect(c, [c.image()], "--sizes", "1x2x3"), needs_run=True)
case(DT, "--json is a folder", lambda c: _detect(c, [c.image()], "--json", str(c.new_dir())), needs_run=True)

# ---- export
XP = "export"
case(XP, "--run missing", lambda c: ["export", "--run", str(c.root / "nope"), "--out", str(c.new_dir() / "m")],
     expect="not found")
case(XP, "--run not a run", lambda c: ["export", "--run", str(c.new_dir()), "--out", str(c.new_dir() / "m")],
     expect="config.yaml")
case(XP, "truncated final.params", lambda c: ["export", "--run", str(c.run_with_truncated_params()), "--out",
                                              str(c.new_dir() / "m")], needs_run=True, expect="final.params")
case(XP, "--out is a folder", lambda c: ["export", "--run", str(c.run_dir), "--out", str(c.new_dir())],
     needs_run=True, expect="--out")
case(XP, "--out ends with /", lambda c: ["export", "--run", str(c.run_dir), "--out", str(c.new_dir()) + "/"],
     needs_run=True, expect="--out")
case(XP, "--out under a file", lambda c: ["export", "--run", str(c.run_dir), "--out", str(c.a_file() / "m")],
     needs_run=True)
case(XP, "--graph unknown", lambda c: ["export", "--run", str(c.root / "x"), "--out", "m", "--graph", "tiny"])

# ---- reproduce (rfcn_face/reproduce.py, rfcn_face/cli/reproduce.py: not edited here)
RP = "reproduce"
case(RP, "--rows 99", lambda c: ["reproduce", "--dry-run", "--rows", "99", "--out", str(c.new_dir())], expect="99")
case(RP, "--out is a file", lambda c: ["reproduce", "--dry-run", "--out", str(c.a_file())], expect="file")
case(RP, "--preset unknown", lambda c: ["reproduce", "--dry-run", "--preset", "nosuch", "--out", str(c.new_dir())],
     expect="nosuch")
case(RP, "--experiments empty", lambda c: ["reproduce", "--dry-run", "--experiments", str(c.new_dir()), "--out",
                                           str(c.new_dir())])
case(RP, "--gpu-tflops 0", lambda c: ["reproduce", "--dry-run", "--gpu-tflops", "0", "--out", str(c.new_dir())])
case(RP, "--cpus 0", lambda c: ["reproduce", "--dry-run", "--cpus", "0", "--out", str(c.new_dir())])
case(RP, "--table 3", lambda c: ["reproduce", "--dry-run", "--table", "3"])
case(RP, "--benchmarks without --run", lambda c: ["reproduce", "--benchmarks", "--dry-run", "--out", str(c.new_dir())],
     expect="--run")
case(RP, "--benchmarks --dry-run --run missing", lambda c: ["reproduce", "--benchmarks", "--dry-run", "--run",
                                                            str(c.root / "no"), "--out", str(c.new_dir())],
     expect="no")
case(RP, "--benchmarks --run missing", lambda c: ["reproduce", "--benchmarks", "--run", str(c.root / "no"), "--data",
                                                  str(c.new_dir()), "--out", str(c.new_dir())], expect="no")
case(RP, "--data with two roots", lambda c: ["reproduce", "--dry-run", "--data", "a", "b", "--out", str(c.new_dir())])
case(RP, "--set unknown key", lambda c: ["reproduce", "--dry-run", "--set", "model.nosuch=1", "--out", str(c.new_dir())],
     expect="nosuch")

# ---- launch
L = "launch"
case(L, "--workers 0", lambda c: ["launch", "--workers", "0", "--", "train", "--out", "x"])
case(L, "--servers 0", lambda c: ["launch", "--workers", "1", "--servers", "0", "--", "train", "--out", "x"])
case(L, "--port 70000", lambda c: ["launch", "--workers", "1", "--port", "70000", "--", "train", "--out", "x"],
     expect="--port")
case(L, "no command", lambda c: ["launch", "--workers", "1"], expect="command")
case(L, "unknown verb", lambda c: ["launch", "--workers", "1", "--", "nosuchverb"], expect="nosuchverb")
case(L, "not train", lambda c: ["launch", "--workers", "1", "--", "emo", "--out", str(c.new_dir())], expect="train")
case(L, "train without --out", lambda c: ["launch", "--workers", "1", "--", "train", "--config", str(FINAL_YAML)])
case(L, "train --config missing", lambda c: ["launch", "--workers", "1", "--", "train", "--config",
                                             str(c.root / "nope.yaml"), "--out", str(c.new_dir() / "r")],
     expect="nope.yaml")
case(L, "train --kvstore local", lambda c: ["launch", "--workers", "2", "--", "train", "--config", str(FINAL_YAML),
                                            "--preset", "smoke", "--kvstore", "local", "--max-iters", "1", "--out", str(c.new_dir() / "r")],
     expect="kvstore")
case(L, "train --out is a file", lambda c: ["launch", "--workers", "1", "--", "train", "--config", str(FINAL_YAML),
                                            "--preset", "smoke", "--out", str(c.a_file())], expect="file")


def _launch(c, *opts):
    return ["launch", "--workers", "1", *opts, "--", "train", "--config", str(FINAL_YAML), "--preset", "smoke",
            "--max-iters", "1", "--out", str(c.new_dir() / "r")]


case(L, "--hosts empty entry", lambda c: _launch(c, "--hosts", "127.0.0.2,,127.0.0.3"), expect="--hosts")
case(L, "--hosts unresolvable", lambda c: _launch(c, "--hosts", "no-such-host.invalid"), expect="no-such-host.invalid")
case(L, "--hostfile missing", lambda c: _launch(c, "--hostfile", str(c.root / "nope.hosts")), expect="nope.hosts")
case(L, "--hostfile empty", lambda c: _launch(c, "--hostfile", str(c.file("h", "# none\n"))), expect="no host")
case(L, "--hostfile two hosts on a line", lambda c: _launch(c, "--hostfile", str(c.file("h", "a b\n"))), expect=":1:")
case(L, "--hostfile binary", lambda c: _launch(c, "--hostfile", str(c.file("h", bytes(range(256))))),
     expect="--hostfile")
case(L, "--hosts and --hostfile", lambda c: _launch(c, "--hosts", "127.0.0.2", "--hostfile", str(c.a_file())))
case(L, "--launcher mpi", lambda c: _launch(c, "--launcher", "mpi"), expect="--launcher")
case(L, "--ssh-command with --launcher local", lambda c: _launch(c, "--launcher", "local", "--ssh-command", "ssh"),
     expect="--ssh-command")
case(L, "--ssh-command unbalanced quote", lambda c: _launch(c, "--hosts", "127.0.0.2", "--ssh-command", "ssh -o 'x"),
     expect="--ssh-command")
case(L, "--launcher local, not this machine's address",
     lambda c: _launch(c, "--launcher", "local", "--hosts", "127.0.0.2,192.0.2.7"), expect="192.0.2.7")
case(L, "a failing worker (real processes)", lambda c: ["launch", "--workers", "1", "--", "train", "--config",
                                                        str(FINAL_YAML), "--preset", "smoke", "--max-iters", "1",
                                                        "--pretrained", str(c.file("w.params", b"\x00" * 64)),
                                                        "--out", str(c.new_dir() / "r")], runner="proc",
     expect="worker")

# ---- demo (input validation only)
DM = "demo"
case(DM, "--out is a file", lambda c: ["demo", "--quick", "--out", str(c.a_file())], expect="file")
case(DM, "--out under a file", lambda c: ["demo", "--quick", "--out", str(c.a_file() / "d")])
case(DM, "--data missing", lambda c: ["demo", "--quick", "--data", str(c.root / "nope"), "--out", str(c.new_dir())],
     expect="nope")
case(DM, "--data not a WIDER root", lambda c: ["demo", "--quick", "--data", str(c.new_dir()), "--out", str(c.new_dir())],
     expect="WIDER")
case(DM, "--data is a file", lambda c: ["demo", "--quick", "--data", str(c.a_file()), "--out", str(c.new_dir())])
case(DM, "--pretrained missing", lambda c: ["demo", "--quick", "--pretrained", str(c.root / "w.params"), "--out",
                                            str(c.new_dir())], expect="pretrained")
case(DM, "--pretrained missing (width 1)", lambda c: ["demo", "--quick", "--pretrained", str(c.root / "w.params"),
                                                      "--preset", str(c.yaml("model: {depth: 18, width: 1.0}\ndata: {dataset: synthfaces}\n")),
                                                      "--out", str(c.new_dir())], expect="w.params")
case(DM, "--preset unknown", lambda c: ["demo", "--quick", "--preset", "nosuch", "--out", str(c.new_dir())],
     expect="nosuch")

# ---- python -m rfcn_face.recognition.train
FR = "recognition.train"


def _frn(c, *extra, out=None):
    return ["--embedded", "--ids", "4", "--views", "3", "--train-views", "2", "--epochs", "1", "--width", "0.125",
            "--batch-size", "4", "--out", str(out or (c.new_dir() / "frn")), *extra]


def _frn_folder(c, folder, *extra):
    return ["--folder", str(folder), "--epochs", "1", "--width", "0.125", "--batch-size", "2", "--out",
            str(c.new_dir() / "frn"), *extra]


for flag, value, what in (("--epochs", "0", "--epochs"), ("--epochs", "-1", "--epochs"), ("--width", "0", "--width"),
                          ("--width", "nan", "--width"), ("--batch-size", "0", "--batch-size"),
                          ("--lr", "nan", "--lr"), ("--lr", "0", "--lr"), ("--lr", "-0.1", "--lr"),
                          ("--lr", "inf", "--lr"), ("--ids", "0", "--ids"), ("--ids", "101", "--ids"),
                          ("--views", "0", "--views"), ("--train-views", "0", "--train-views"),
                          ("--train-views", "3", "--train-views"), ("--holdout", "1.5", "--holdout"),
                          ("--lr-steps", "a,b", "--lr-steps"), ("--lr-steps", "5,2", "--lr-steps"),
                          ("--scale", "0", "--scale"), ("--ccl-weight", "nan", "--ccl-weight"),
                          ("--ccl-lr-mult", "-1", "--ccl-lr-mult"), ("--max-iters", "0", "--max-iters"),
                          ("--epochs", "x", "--epochs")):
    case(FR, f"{flag} {value}", lambda c, flag=flag, value=value: _frn(c, flag, value), runner="frn", expect=what)
case(FR, "--folder missing", lambda c: _frn_folder(c, c.root / "nope"), runner="frn", expect="not found")
case(FR, "--folder is a file", lambda c: _frn_folder(c, c.a_file()), runner="frn")
case(FR, "--folder empty", lambda c: _frn_folder(c, c.new_dir()), runner="frn", expect="no images")
case(FR, "--folder corrupt image", lambda c: _frn_folder(c, _identity_folder(c, corrupt=True)), runner="frn",
     expect="bad.jpg")
case(FR, "--folder one identity", lambda c: _frn_folder(c, _identity_folder(c, ids=1)), runner="frn",
     expect="identit")
case(FR, "--folder --holdout 0", lambda c: _frn_folder(c, _identity_folder(c), "--holdout", "0"), runner="frn",
     expect="--holdout")
case(FR, "--out is a file", lambda c: _frn(c, out=c.a_file()), runner="frn", expect="file")
case(FR, "--out holds another run", lambda c: _frn(c, out=c.frn_run_folder()), runner="frn", expect="--resume")
case(FR, "--resume without a run", lambda c: _frn(c, "--resume", out=c.new_dir()), runner="frn", expect="--resume")
case(FR, "--resume on a detector run", lambda c: _frn(c, "--resume", out=_fake_detector_run(c)), runner="frn",
     expect="--resume")
case(FR, "--embedded and --folder", lambda c: ["--embedded", "--folder", "x", "--out", "y"], runner="frn")
case(FR, "no --out (real process)", lambda c: ["--embedded"], runner="frn-proc")
case(FR, "--epochs 0 (real process)", lambda c: _frn(c, "--epochs", "0"), runner="frn-proc", expect="--epochs")

# ---- python -m rfcn_face.datasets.synthfaces
SY = "synthfaces"
case(SY, "--root is a file", lambda c: ["--root", str(c.a_file()), "--num-train", "0", "--num-val", "1"],
     runner="synth", expect="file")
case(SY, "--root under a file", lambda c: ["--root", str(c.a_file() / "s"), "--num-train", "0", "--num-val", "1"],
     runner="synth")
case(SY, "--root holds other files", lambda c: ["--root", str(c.a_file().parent), "--num-train", "0", "--num-val", "1"],
     runner="synth", expect="synthfaces")
case(SY, "--num-train -1", lambda c: ["--root", str(c.new_dir() / "s"), "--num-train", "-1"], runner="synth",
     expect="--num-train")
case(SY, "--num-val -2", lambda c: ["--root", str(c.new_dir() / "s"), "--num-val", "-2"], runner="synth",
     expect="--num-val")
case(SY, "no images at all", lambda c: ["--root", str(c.new_dir() / "s"), "--num-train", "0", "--num-val", "0"],
     runner="synth", expect="image")
case(SY, "--seed -1", lambda c: ["--root", str(c.new_dir() / "s"), "--seed", "-1"], runner="synth", expect="--seed")
case(SY, "--num-train abc", lambda c: ["--num-train", "abc"], runner="synth")
case(SY, "--root is a file (real process)", lambda c: ["--root", str(c.a_file())], runner="synth-proc", expect="file")


# ================================================================================ issue 25: faults and hostile inputs
# ---- one writer per output folder: a lock held by a live process (this test's parent) or by another host
def _locked(folder: Path, holder: str) -> Path:
    """``folder`` (created) holding a lock of a live process of this host (``live``), of a process on another host
    (``host``: its pid cannot be checked from here)."""
    folder.mkdir(parents=True, exist_ok=True)
    me = socket.gethostname()
    pid, host = (os.getppid(), me) if holder == "live" else (os.getpid() + 7, me + "-elsewhere")
    (folder / ".rfcn_face.lock").write_text(json.dumps({"pid": pid, "host": host, "verb": "test", "since": "x"}))
    return folder


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _lock_untouched(c, argv) -> str:
    out = Path(argv[argv.index("--out") + 1])
    folder = out if out.is_dir() and (out / ".rfcn_face.lock").exists() else out.parent
    lock = folder / ".rfcn_face.lock"
    if not lock.is_file():
        return f"the holder's lock {lock} was removed"
    extra = [p.name for p in folder.iterdir() if p.name not in (".rfcn_face.lock", "config.yaml", "frn_config.json",
                                                                 "checkpoints")]
    return f"the refused writer wrote {extra} into {folder}" if extra else ""


def _resume_run(c, holder=None) -> Path:
    """A detector run folder (the tiny run's config.yaml only) for train --resume."""
    d = c.new_dir("resume") / "run"
    d.mkdir()
    shutil.copy(c.run_dir / "config.yaml", d / "config.yaml")
    return _locked(d, holder) if holder else d


TINY_TRAIN = ["--config", str(FINAL_YAML), "--preset", "smoke", "--set", "train.max_size=128", "--no-progress"]
L25 = {"live": "pid", "host": "-elsewhere"}
for holder, said in L25.items():
    who = "a live process" if holder == "live" else "another host"
    case(T, f"--out locked by {who}", lambda c, h=holder: _train(c, out=_locked(c.new_dir() / "run", h)),
         expect=said, check=_lock_untouched)
    case(T, f"--resume, run locked by {who}", lambda c, h=holder: ["train", *TINY_TRAIN, "--resume", "--out",
                                                                  str(_resume_run(c, h))],
         needs_run=True, expect=said, check=_lock_untouched)
    case(X, f"--out locked by {who}", lambda c, h=holder: _test(c, out=_locked(c.new_dir() / "t", h)), needs_run=True,
         expect=said, check=_lock_untouched)
    case(DT, f"--out locked by {who}", lambda c, h=holder: _detect(c, [c.image()], out=_locked(c.new_dir() / "o", h)),
         needs_run=True, expect=said, check=_lock_untouched)
    case(XP, f"folder locked by {who}", lambda c, h=holder: ["export", "--run", str(c.run_dir), "--out",
                                                            str(_locked(c.new_dir() / "e", h) / "m")],
         needs_run=True, expect=said, check=_lock_untouched)
    case(FR, f"--out locked by {who}", lambda c, h=holder: _frn(c, out=_locked(c.new_dir() / "frn", h)), runner="frn",
         expect=said, check=_lock_untouched)
    case(RP, f"--benchmarks --out locked by {who}",
         lambda c, h=holder: ["reproduce", "--benchmarks", "--run", str(c.run_dir), "--data", str(c.synth),
                              "--out", str(_locked(c.new_dir() / "b", h)), "--limit", "1", "--no-progress"],
         needs_run=True, expect=said, check=_lock_untouched)


def _stale_lock(folder: Path, content=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = content if content is not None else json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                                            "verb": "detect", "since": "x"})
    (folder / ".rfcn_face.lock").write_text(text)
    return folder


def _lock_released(c, argv) -> str:
    out = Path(argv[argv.index("--out") + 1])
    return f"{out}/.rfcn_face.lock still there after the run" if (out / ".rfcn_face.lock").exists() else ""


case(DT, "stale lock of a killed run", lambda c: _detect(c, [c.image()], out=_stale_lock(c.new_dir() / "o")),
     needs_run=True, outcome="warning", expect="stale lock", check=_lock_released)
case(DT, "damaged lock file", lambda c: _detect(c, [c.image()], out=_stale_lock(c.new_dir() / "o", "{pid")),
     needs_run=True, outcome="warning", expect="stale lock", check=_lock_released)
case(X, "stale lock of a killed run", lambda c: _test(c, out=_stale_lock(c.new_dir() / "t")), needs_run=True,
     outcome="warning", expect="stale lock", check=_lock_released)


# ---- checkpoints that cannot be read: --resume stops naming them, deletes nothing
def _ckpt_run(c, variant: str, n: int) -> Path:
    """The tiny run's config and ``n`` copies of its checkpoint, every one damaged as ``variant``."""
    d = _resume_run(c)
    src = sorted((c.run_dir / "checkpoints").iterdir())[-1]
    for k in range(n):
        dst = d / "checkpoints" / f"iter-{k + 1:07d}"
        dst.mkdir(parents=True)
        state = json.loads((src / "state.json").read_text())
        state["iteration"] = k + 1
        (dst / "state.json").write_text(json.dumps(state))
        for f in ("model.params", "trainer.states"):
            (dst / f).write_bytes((src / f).read_bytes()[:4000] if f == "model.params" else (src / f).read_bytes())
        if variant == "state.json empty":
            (dst / "state.json").write_text("")
        elif variant == "state.json not JSON":
            (dst / "state.json").write_text("{iteration: ")
        elif variant == "state.json missing":
            (dst / "state.json").unlink()
        elif variant == "state.json a list":
            (dst / "state.json").write_text("[1, 2]")
        elif variant == "state.json iteration a string":
            (dst / "state.json").write_text(json.dumps(dict(state, iteration="5")))
        elif variant == "state.json a folder":
            (dst / "state.json").unlink()
            (dst / "state.json").mkdir()
        elif variant == "model.params missing":
            (dst / "model.params").unlink()
        # "model.params truncated": as copied (its first 4000 bytes)
    (d / "made.json").write_text(json.dumps(sorted(p.name for p in (d / "checkpoints").iterdir())))
    return d


def _checkpoints_kept(c, argv) -> str:
    """Every checkpoint folder the case made is still there (none deleted, renamed or replaced)."""
    root = Path(argv[argv.index("--out") + 1]) / "checkpoints"
    names = sorted(p.name for p in root.iterdir())
    made = json.loads((root.parent / "made.json").read_text())
    return "" if names == made else f"checkpoints {made} are now {names}"


CKPT_VARIANTS = ("state.json empty", "state.json not JSON", "state.json missing", "state.json a list",
                 "state.json iteration a string", "state.json a folder", "model.params missing",
                 "model.params truncated")
for variant in CKPT_VARIANTS:
    for n in (1, 2):
        case(T, f"--resume, {n} checkpoint(s): {variant}",
             lambda c, v=variant, n=n: ["train", *TINY_TRAIN, "--resume", "--out", str(_ckpt_run(c, v, n))],
             needs_run=True, expect="iter-0000001", check=_checkpoints_kept)
case(T, "--restart-if-unreadable without --resume", lambda c: _train(c, "--restart-if-unreadable"),
     expect="--restart-if-unreadable")


def _frn_ckpt_run(c, variant: str) -> Path:
    d = c.new_dir("frnrun") / "frn"
    shutil.copytree(c.frn_run, d)
    args = json.loads((d / "frn_config.json").read_text())
    (d / "frn_config.json").write_text(json.dumps(dict(args, out=str(d))))      # the run's own --out
    for ck in (d / "checkpoints").iterdir():
        if variant == "state.json empty":
            (ck / "state.json").write_text("")
        elif variant == "state.json missing":
            (ck / "state.json").unlink()
        else:
            (ck / "model.net.params").write_bytes(b"\x00" * 64)
    (d / "made.json").write_text(json.dumps(sorted(p.name for p in (d / "checkpoints").iterdir())))
    return d


for variant in ("state.json empty", "state.json missing", "model.net.params truncated"):
    case(FR, f"--resume, every checkpoint: {variant}",
         lambda c, v=variant: _frn(c, "--resume", "--epochs", "2", out=_frn_ckpt_run(c, v)), runner="frn",
         expect="iter-0000001", check=_checkpoints_kept)
case(FR, "--restart-if-unreadable without --resume", lambda c: _frn(c, "--restart-if-unreadable"), runner="frn",
     expect="--restart-if-unreadable")


def _run_with_newer_checkpoint(c) -> Path:
    """The tiny run (parameters linked) whose final.params is older than a checkpoint of a resumed run."""
    d = c.new_dir("stale") / "run"
    d.mkdir()
    for f in ("config.yaml", "final.json"):
        shutil.copy(c.run_dir / f, d / f)
    (d / "final.params").symlink_to(c.run_dir / "final.params")
    ck = d / "checkpoints" / "iter-0000099"
    ck.mkdir(parents=True)
    (ck / "state.json").write_text(json.dumps({"iteration": 99}))
    return d


def _results_record_it(c, argv) -> str:
    r = json.loads((Path(argv[argv.index("--out") + 1]) / "results.json").read_text())
    ck = r.get("checkpoint") or {}
    return "" if ck.get("iteration") == 2 and "iter-0000099" in (ck.get("warning") or "") else f"checkpoint {ck}"


case(X, "final.params older than the newest checkpoint", lambda c: _test(c, run=_run_with_newer_checkpoint(c)),
     needs_run=True, outcome="warning", expect="older than the checkpoint iter-0000099", check=_results_record_it)


# ---- an --out holding another run's outputs
def _claimed(folder: Path, **identity) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = identity.pop("_text", None)
    (folder / ".rfcn_face_output.json").write_text(text if text is not None else json.dumps(identity))
    (folder / "previous.txt").write_text("the earlier run's file")
    return folder


def _previous_kept(c, argv) -> str:
    out = Path(argv[argv.index("--out") + 1])
    p = out / "previous.txt"
    extra = sorted(x.name for x in out.iterdir() if x.name not in ("previous.txt", ".rfcn_face_output.json"))
    if not p.is_file() or p.read_text() != "the earlier run's file":
        return "the earlier run's file was changed"
    return f"the refused run wrote {extra}" if extra else ""


def _sha(c) -> str:
    from rfcn_face.inference import _file_sha1
    return _file_sha1(c.run_dir / "final.params")


OTHER_OUT = {
    "test": [("another model", lambda c: dict(verb="test", params_sha1="0" * 40, dataset="synthfaces-val"), "model"),
             ("another data set", lambda c: dict(verb="test", params_sha1=_sha(c), dataset="fddb"), "data set"),
             ("detect's folder", lambda c: dict(verb="detect", params_sha1=_sha(c)), "command"),
             ("an unreadable record", lambda c: dict(_text="{half"), "unreadable")],
    "detect": [("another model", lambda c: dict(verb="detect", params_sha1="0" * 40), "model"),
               ("test's folder", lambda c: dict(verb="test", params_sha1=_sha(c), dataset="fddb"), "command"),
               ("an unreadable record", lambda c: dict(_text="[]"), "unreadable")],
}
for what, ident, said in OTHER_OUT["test"]:
    case(X, f"--out holds {what}", lambda c, i=ident: _test(c, out=_claimed(c.new_dir() / "t", **i(c))),
         needs_run=True, expect=said, check=_previous_kept)
for what, ident, said in OTHER_OUT["detect"]:
    case(DT, f"--out holds {what}", lambda c, i=ident: _detect(c, [c.image()], out=_claimed(c.new_dir() / "o", **i(c))),
         needs_run=True, expect=said, check=_previous_kept)


def _detected_then(c, *second) -> List[str]:
    """Detect one image into a folder, then return the argv of a second detect with other settings into it."""
    from rfcn_face.__main__ import main
    out = c.new_dir("o") / "o"
    img = c.image()
    assert main(_detect(c, [img], out=out)) == 0
    return _detect(c, [img], *second, out=out)


case(DT, "rerun with another --thresh", lambda c: _detected_then(c, "--thresh", "0.9"), needs_run=True,
     expect="--thresh")
case(DT, "rerun with another --sizes", lambda c: _detected_then(c, "--sizes", "128x128"), needs_run=True,
     expect="test size")


# ---- damaged images
def _cut(data: bytes, keep: float) -> bytes:
    return data[:max(1, int(len(data) * keep))]


def _encoded(ext: str, h=64, w=64) -> bytes:
    import cv2
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 4) % 256, (y * 4) % 256, (x * y) % 256], -1).astype(np.uint8)
    return cv2.imencode(ext, img)[1].tobytes()


DAMAGED = [("JPEG cut at 30%", ".jpg", lambda: _cut(_encoded(".jpg"), 0.3), "truncated JPEG"),
           ("JPEG cut at 70%", ".jpg", lambda: _cut(_encoded(".jpg"), 0.7), "truncated JPEG"),
           ("JPEG cut at 98%", ".jpg", lambda: _cut(_encoded(".jpg"), 0.98), "truncated JPEG"),
           ("PNG cut at 50%", ".png", lambda: _cut(_encoded(".png"), 0.5), "truncated PNG"),
           ("PNG without IEND", ".png", lambda: _encoded(".png")[:-12], "truncated PNG"),
           ("JPEG markers, garbage inside", ".jpg", lambda: b"\xff\xd8\xff" + b"junk" * 40 + b"\xff\xd9",
            "not a decodable"),
           ("PNG signature only", ".png", lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"IEND\xaeB`\x82",
            "not a decodable")]
for what, ext, make, said in DAMAGED:
    case(DT, f"image: {what}", lambda c, e=ext, m=make: _detect(c, [c.file(f"bad{e}", m())]), needs_run=True,
         expect=said)
    case(FR, f"--folder image: {what}", lambda c, e=ext, m=make: _frn_folder(c, _identity_folder(c, bad=(e, m()))),
         runner="frn", expect=said)


def _synth_with_damaged_val(c, data: bytes) -> Path:
    d = c.new_dir("synth") / "s"
    shutil.copytree(c.synth, d)
    for img in (d / "WIDER_val" / "images").rglob("*.jpg"):
        img.write_bytes(data)
    return d


for what, ext, make, said in DAMAGED[:3] + DAMAGED[5:6]:
    case(X, f"--data image: {what}", lambda c, m=make: _test(c, "--data", str(_synth_with_damaged_val(c, m()))),
         needs_run=True, expect="could not be read")


def _synth_with_damaged_train(c, keep: float) -> Path:
    d = c.new_dir("synth") / "s"
    shutil.copytree(c.synth_train, d)
    for img in (d / "WIDER_train" / "images").rglob("*.jpg"):
        img.write_bytes(_cut(img.read_bytes(), keep))
    return d


for keep in (0.4, 0.95):
    case(T, f"training image cut at {int(keep * 100)}%",
         lambda c, k=keep: _train(c, "--set", "train.max_size=128", "--set", f"data.root={_synth_with_damaged_train(c, k)}"),
         expect="truncated JPEG")


# ---- a full disk / a read-only file system: every writer names the path and the reason, leaves nothing behind
FAULT_CASES = [
    ("emo", "emo", lambda c: ["emo", "--out", str(c.new_dir()), "--grid", "20", "--no-plots"]),
    ("emo", "emo --json", lambda c: ["emo", "--out", str(c.new_dir()), "--grid", "20", "--no-plots", "--json",
                                     str(c.new_dir() / "e.json")]),
    ("dataset-info", "dataset-info --json", lambda c: ["dataset-info", "wider", str(c.val_txt), "--json",
                                                       str(c.new_dir() / "d.json")]),
    ("info", "info --json", lambda c: ["info", "--json", str(c.new_dir() / "i.json")]),
    ("evaluate wider", "--json", lambda c: _wider(c, c.pred, "--json", str(c.new_dir() / "w.json"))),
    ("evaluate wider", "--plot", lambda c: _wider(c, c.pred, "--plot", str(c.new_dir() / "pr.png"))),
    ("evaluate fddb", "ROC files", lambda c: c.fddb_args(c.fddb["dets"])),
    ("evaluate afw", "--json", lambda c: ["evaluate", "afw", "--dets", str(c.face_eval["dets"]), "--gt",
                                          str(c.face_eval["gt"]), "--json", str(c.new_dir() / "a.json")]),
    ("evaluate check-submission", "--json", lambda c: _check(c, c.pred, "--json", str(c.new_dir() / "s.json"))),
    ("search", "--json", lambda c: c.search_args(json=c.new_dir() / "r.json")),
    ("search", "--csv", lambda c: c.search_args(csv=c.new_dir() / "r.csv")),
    ("train", "config and checkpoints", lambda c: _train(c)),
    ("recognition.train", "run files", lambda c: _frn(c)),
    ("synthfaces", "the set's folder", lambda c: ["--root", str(c.new_dir() / "s"), "--num-train", "0",
                                                  "--num-val", "1"]),
    ("reproduce", "--dry-run --json", lambda c: ["reproduce", "--dry-run", "--rows", "01", "--out", str(c.new_dir()),
                                                 "--json", str(c.new_dir() / "plan.json")]),
    ("test", "the outputs", lambda c: _test(c)),
    ("detect", "the outputs", lambda c: _detect(c, [c.image()])),
    ("export", "the model files", lambda c: ["export", "--run", str(c.run_dir), "--out", str(c.new_dir() / "m")]),
]
for fault in ("ENOSPC", "EROFS", "EDQUOT"):
    for verb, what, argv in FAULT_CASES:
        runner = {"recognition.train": "frn", "synthfaces": "synth"}.get(verb, "main")
        case(verb, f"{fault}: {what}", argv, runner=runner, fault=fault, needs_run=verb in ("test", "detect", "export"),
             expect=os.strerror(getattr(errno, fault)))


# ---- evaluator inputs that used to give a number without a word
def _pred_rewritten(c, fn) -> Path:
    """A copy of the valid submission with every file's lines passed through ``fn(lines) -> lines``."""
    d = c.new_dir("pred") / "pred"
    shutil.copytree(c.pred, d)
    for f in sorted(d.rglob("*.txt")):
        f.write_text("\n".join(fn(f.read_text().splitlines())) + "\n")
    return d


def _one_prediction(lines, state={}):
    keep = lines[:2] + lines[2:3] if not state.setdefault("done", False) else lines[:1] + ["0"]
    state["done"] = True
    return [keep[0], str(len(keep) - 2)] + keep[2:]


case(W, "count smaller than the box lines", lambda c: _wider(c, _pred_rewritten(
    c, lambda l: [l[0], str(max(0, int(l[1]) - 1))] + l[2:] if int(l[1]) > 1 else l)), outcome="warning",
    expect="are not read")
case(W, "every score equal", lambda c: _wider(c, _pred_rewritten(
    c, lambda l: l[:2] + [" ".join(x.split()[:4] + ["0.5"]) for x in l[2:]])), outcome="warning", expect="same score")
case(W, "a single prediction", lambda c: _wider(c, _pred_rewritten(c, lambda l, s={}: _one_prediction(l, s))),
     outcome="warning", expect="same score")
case(F, "negative width", lambda c: c.fddb_args(c.fddb_dets_with_line("10 10 -20 20 0.5")), expect="negative width")
case(F, "negative height", lambda c: c.fddb_args(c.fddb_dets_with_line("10 10 20 -20 0.5")), expect="negative width")
case(F, "zero-radius ellipse", lambda c: c.fddb_args(c.file("d.txt", _ellipse_dets(c, "0 3 0 50 50 0.9"))),
     expect="zero or negative")
case(D, "fddb: zero radius", lambda c: ["dataset-info", "fddb", str(c.fddb_folds_with("a/b\n1\n0 10 0 50 50 1\n"))],
     expect=":3:")


# ---- numbers that overflow or change meaning
for name, scale in (("1e20 (float32)", np.float32(1e20)), ("1e30 (float64)", 1e30), ("3e19 in one row", None)):
    def _big(c, scale=scale):
        base = np.array(c.feats["data"]["base"], dtype=np.float64 if scale == 1e30 else np.float32)
        if scale is None:
            base[3] = 3e19
        else:
            base = base * scale
        return c.search_args(base=c.npy("base", base))
    case(R, f"features {name}: squared norm overflows float32", _big, expect="squared norm")
case(R, "boolean labels", lambda c: c.search_args(
    base_labels=c.npy("bl", np.asarray(c.feats["data"]["base_labels"]) % 2 == 1),
    probe_labels=c.npy("pl", np.asarray(c.feats["data"]["probe_labels"]) % 2 == 1)), outcome="warning",
    expect="booleans")
case(R, "float labels holding integers", lambda c: c.search_args(
    base_labels=c.npy("bl", np.asarray(c.feats["data"]["base_labels"], np.float64)),
    probe_labels=c.npy("pl", np.asarray(c.feats["data"]["probe_labels"], np.float64))), outcome="warning",
    expect="floats")
case(D, "wider: an image listed twice", lambda c: ["dataset-info", "wider", str(c.file("gt.txt", _wider_txt(ROW_OK) +
                                                                                   _wider_txt(ROW_OK)))],
     outcome="warning", expect="more than once")
case(D, "fddb: sizes list an image twice", lambda c: ["dataset-info", "fddb", str(c.fddb["folds"]), "--sizes",
                                                      str(_sizes_with(c, dup=True))], expect="listed again")
case(D, "fddb: sizes contradict the ellipses", lambda c: ["dataset-info", "fddb", str(c.fddb["folds"]), "--sizes",
                                                          str(_sizes_with(c, tiny=True))], expect="contradicts")


def _sizes_with(c, dup=False, tiny=False) -> Path:
    lines = Path(c.fddb["sizes"]).read_text().splitlines()
    name = lines[0].split()[0]
    if dup:
        lines.append(f"{name} 999 999")
    if tiny:
        lines = [f"{ln.split()[0]} 2 2" for ln in lines]
    return c.file("sizes.txt", "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------ input makers
def _with(a, idx, value):
    a = np.array(a, copy=True)
    if idx[1] is None:
        a[idx[0]] = value
    else:
        a[idx] = value
    return a


def _nan_split_mat(c: Corpus) -> Path:
    from rfcn_face.datasets.record import FaceRecord
    from rfcn_face.datasets.wider import wider_mat_dict
    r = FaceRecord("0--Parade/a.jpg", boxes=[[1, 1, 20, 20]], ignore=[False], event="0--Parade", name="a")
    d = wider_mat_dict([r])
    d["face_bbx_list"][0, 0][0, 0] = np.array([[1.0, np.nan, 19.0, 19.0]])
    return c.savemat("wider_face_val.mat", d)


def _fold_list_mismatch(c: Corpus) -> Path:
    d = c.new_dir("folds") / "FDDB-folds"
    shutil.copytree(c.fddb["folds"], d)
    (d / "FDDB-fold-02.txt").write_text("some/other/image\n")
    return d


def _corrupt_gt(c: Corpus) -> Path:
    d = c.new_dir("gt") / "ground_truth"
    shutil.copytree(c.gt, d)
    (d / "wider_hard_val.mat").write_bytes(b"broken" * 40)
    return d


def _replace_count(c: Corpus, count: str) -> str:
    lines = Path(c.fddb["dets"]).read_text().splitlines()
    lines[1] = count
    return "\n".join(lines) + "\n"


def _blocks(c: Corpus):
    lines = Path(c.fddb["dets"]).read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        n = int(lines[i + 1])
        out.append(lines[i:i + 2 + n])
        i += 2 + n
    return out


def _swapped_dets(c: Corpus) -> str:
    b = _blocks(c)
    b[0], b[1] = b[1], b[0]
    return "\n".join(x for blk in b for x in blk) + "\n"


def _dets_without_first(c: Corpus) -> str:
    return "\n".join(x for blk in _blocks(c)[1:] for x in blk) + "\n"


def _ellipse_dets(c: Corpus, first_row: str) -> str:
    b = _blocks(c)
    rows = []
    for k, blk in enumerate(b):
        rows += [blk[0], "1", first_row if k == 0 else "20 15 1.2 60 60 0.7"]
    return "\n".join(rows) + "\n"


def _mixed_dets(c: Corpus) -> str:
    b = _blocks(c)
    b[1] = [b[1][0], "1", "20 15 1.2 60 60 0.7"]
    return "\n".join(x for blk in b for x in blk) + "\n"


def _identity_folder(c: Corpus, ids: int = 2, corrupt: bool = False, bad=None) -> Path:
    import cv2
    root = c.new_dir("ids") / "ids"
    for k in range(ids):
        d = root / f"person_{k}"
        d.mkdir(parents=True)
        for j in range(3):
            cv2.imwrite(str(d / f"{j}.jpg"), np.full((112, 96, 3), 40 * k + 10 * j, np.uint8))
    if corrupt:
        (root / "person_0" / "bad.jpg").write_bytes(b"not an image")
    if bad is not None:                     # (extension, bytes): a damaged image in the first identity
        (root / "person_0" / f"bad{bad[0]}").write_bytes(bad[1])
    return root


def _fake_detector_run(c: Corpus) -> Path:
    d = c.new_dir("det") / "run"
    d.mkdir()
    (d / "config.yaml").write_text("name: x\n")
    (d / "checkpoints").mkdir()
    return d


# ------------------------------------------------------------------------------------------------ running
@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return Corpus(tmp_path_factory.mktemp("bad_input"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One detector run shared by every case that needs a model: two iterations of the smoke preset."""
    from rfcn_face.config import load_config
    from rfcn_face.train import TrainOptions, train
    out = tmp_path_factory.mktemp("tiny_run") / "run"
    cfg = load_config(FINAL_YAML, preset="smoke", overrides=("train.max_size=128",))
    train(cfg, TrainOptions(out=str(out), max_iters=2, progress=False))
    return out


def _run(case: Case, argv, capsys):
    """(exit code or None, stdout, stderr, exception traceback text or '')."""
    import traceback
    rc, tb = None, ""
    if case.runner.endswith("proc"):
        mod = {"proc": "rfcn_face", "frn-proc": "rfcn_face.recognition.train",
               "synth-proc": "rfcn_face.datasets.synthfaces"}[case.runner]
        env = dict(__import__("os").environ, OMP_NUM_THREADS="1", RFCN_FACE_QUIET="1")
        r = subprocess.run([sys.executable, "-m", mod, *argv], cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=600)
        return r.returncode, r.stdout, r.stderr, ""
    if case.runner == "frn":
        from rfcn_face.recognition.train import main as fn
    elif case.runner == "synth":
        from rfcn_face.datasets.synthfaces import main as fn
    else:
        from rfcn_face.__main__ import main as fn
    def on_alarm(*_):
        raise _Hang()
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HANG_S)
    try:
        rc = fn(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except _Hang:
        tb = "hang"
    except BaseException:  # noqa: B902 - a traceback is what this test looks for
        tb = traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out, err = capsys.readouterr()
    return rc, out, err, tb


class _Hang(BaseException):
    """Raised in a case that runs longer than HANG_S."""


def _classify(case: Case, rc, err: str, tb: str) -> str:
    if tb == "hang":
        return "hang"
    if tb or "Traceback" in err or "internal error" in err:
        return "traceback"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if rc == 0:
        said = any(ln.startswith("warning:") and case.expect.lower() in ln.lower() for ln in lines)
        return "warning" if case.outcome == "warning" and said else "silent"
    if rc and lines and lines[-1].startswith("error:"):
        return "clear"
    return "unclear"


def _nothing_left_behind(err: str) -> str:
    """A write that failed (the path is the error line's): no file under that name, no temporary beside it."""
    last = (err.strip().splitlines() or [""])[-1]
    if not last.startswith("error: /"):
        return f"the error line names no path: {last}"
    path = Path(last[len("error: "):].split(": ", 1)[0])
    if path.exists():
        return f"{path} exists after the failed write"
    left = [p.name for p in path.parent.glob(f".{path.name}.*")] if path.parent.is_dir() else []
    left += [p.name for p in path.parent.glob(".tmp-*")] if path.parent.is_dir() else []
    return f"temporaries left beside {path}: {left}" if left else ""


def _disk_fault(monkeypatch, name: str) -> None:
    from rfcn_face import checkpoint as C
    code = getattr(errno, name)
    real = C._fill

    def fill(write, tmp):
        real(write, tmp)                    # the bytes reach the temporary, then the disk is full / read-only
        raise OSError(code, os.strerror(code), str(tmp))
    monkeypatch.setattr(C, "_fill", fill)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, corpus: Corpus, capsys, request, monkeypatch):
    monkeypatch.setenv("RFCN_FACE_QUIET", "1")
    monkeypatch.chdir(corpus.root)                  # relative outputs of a case land in the corpus folder
    if case.needs_run:
        corpus.run_dir = request.getfixturevalue("tiny_run")
    argv = case.argv(corpus)
    if case.fault:
        _disk_fault(monkeypatch, case.fault)
    capsys.readouterr()
    rc, out, err, tb = _run(case, argv, capsys)
    kind = _classify(case, rc, err, tb)
    problem = ""
    if kind in ("clear", "warning"):
        problem = (case.check(corpus, argv) if case.check else "") or (_nothing_left_behind(err) if case.fault
                                                                       else "")
        if problem:
            kind = "lost"
    row = RESULTS.setdefault(case.verb, {**{k: 0 for k in ("tried",) + KINDS}, "failures": []})
    row["tried"] += 1
    row[kind] += 1
    last = (err.strip().splitlines() or [""])[-1]
    if kind != case.outcome:
        row["failures"].append(f"{case.name}: {kind}: {(problem or tb or last)[-300:]}")
        if case.xfail:
            pytest.xfail(f"{case.xfail} ({kind})")
    assert kind == case.outcome, (f"{case.id}: {kind} (expected {case.outcome}), exit {rc}\n{problem}\nstdout: "
                                  f"{out[-800:]}\nstderr: {err[-1500:]}\n{tb}")
    if case.outcome == "clear":
        assert case.expect.lower() in last.lower(), f"{case.id}: the error line does not mention {case.expect!r}: {last}"


def test_closing_table(tmp_path_factory):
    """verb | tried | clear | warning | traceback | silent | hang | lost: written and printed after the corpus ran."""
    if not RESULTS:
        pytest.skip("the corpus did not run in this session")
    cols = ("tried", "clear", "warning", "traceback", "silent", "hang", "lost")
    lines = ["| verb | " + " | ".join(cols) + " |", "| --- " * (len(cols) + 1) + "|"]
    total = {k: 0 for k in cols}
    for verb in TABLE_VERBS + tuple(v for v in RESULTS if v not in TABLE_VERBS):
        r = RESULTS.get(verb)
        if r is None:
            continue
        lines.append(f"| {verb} | " + " | ".join(str(r[k]) for k in cols) + " |")
        for k in total:
            total[k] += r[k]
    lines.append("| **all** | " + " | ".join(str(total[k]) for k in cols) + " |")
    text = "\n".join(lines) + "\n"
    fails = [f"- {v}: {f}" for v, r in RESULTS.items() for f in r["failures"]]
    if fails:
        text += "\nnot clear:\n" + "\n".join(fails) + "\n"
    path = Path(tmp_path_factory.getbasetemp()) / "bad_input_table.md"
    path.write_text(text)
    print("\n" + text + f"(written to {path})")
    if len(RESULTS) == len(set(c.verb for c in CASES)):
        missing = [v for v in TABLE_VERBS if v not in RESULTS]
        assert not missing, f"verbs without a corpus case: {missing}"
