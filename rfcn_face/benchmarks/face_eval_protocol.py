"""The face-eval protocol of AFW and PASCAL Faces (Sec. 5.2): ``OUT/<name>_dets.txt`` in the toolbox format
``image score x1 y1 x2 y2`` (its inclusive 1-based coordinates), AP by the toolbox protocol
(:func:`rfcn_face.evaluation.pr.evaluate_face_eval`), ``OUT/<name>_eval.json`` and ``OUT/<name>_pr.png``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np

from ..checkpoint import atomic_write_json, atomic_write_text
from .base import Benchmark, Evaluator, TestSet, fmt

__all__ = ["FaceEvalProtocol", "FaceEvalEvaluator"]


class FaceEvalEvaluator(Evaluator):
    """AP of the written detections file over the tested records (``--limit`` applied)."""

    def score(self) -> dict:
        from ..evaluation.plots import plot_pr
        from ..evaluation.pr import evaluate_face_eval, read_detections
        path, name = Path(self.files["dets"]), self.benchmark.name
        if path.read_text().strip():
            keys, dets = read_detections(path)
        else:                                   # we wrote it: no face found anywhere is AP 0, not a bad file
            keys, dets = [], np.zeros((0, 5))
        r = evaluate_face_eval(self.test_set.records, keys, dets)
        title = self.benchmark.title
        self.log(f"{title} AP: {r.ap:.4f} ({r.num_faces} faces, {r.num_detections} detections)")
        png = plot_pr(self.out / f"{name}_pr.png", r.recall, r.precision, self.opts.label, title, r.ap)
        atomic_write_json(self.out / f"{name}_eval.json", r.to_json())
        return {"ap": r.ap, "plot": str(png), "faces": r.num_faces}


class FaceEvalProtocol(Benchmark):
    """A face-eval ``.mat`` (the first of ``annotation_files`` present in ``ROOT/<folder>/``) and
    ``ROOT/<folder>/images/``; ``folder`` defaults to the registered name."""
    evaluator_class = FaceEvalEvaluator
    in_reproduce = True
    annotation_files: tuple = ()         # candidates, preferred first
    folder = ""

    def _base(self, root: Path) -> Path:
        return Path(root) / (self.folder or self.name)

    def _annotations(self, root: Path) -> List[Path]:
        return [self._base(root) / f for f in self.annotation_files]

    def read(self, root: Path) -> TestSet:
        from ..datasets.face_eval import read_face_eval_mat
        base, cands = self._base(root), self._annotations(root)
        mat = next((c for c in cands if c.is_file()), None)
        if mat is None:
            raise FileNotFoundError(f"{self.title} annotations not found: " + " or ".join(str(c) for c in cands)
                                    + " (see data/README.md)")
        return TestSet(self.name, read_face_eval_mat(mat, image_root=base / "images"), base, mat, [], self)

    def required_paths(self, root: Path) -> List[Path]:
        mats = self._annotations(root)
        return [next((m for m in mats if m.is_file()), mats[0]), self._base(root) / "images"]

    def write_files(self, ts, predictions, out, opts) -> dict:
        p = Path(out) / f"{self.name}_dets.txt"
        atomic_write_text(p, "".join(line + "\n" for line in _toolbox_lines(ts.records, predictions)))
        return {"dets": str(p)}

    def summary_lines(self, evaluation: dict) -> List[str]:
        return [f"AP {evaluation['ap']:.4f}"] if "ap" in evaluation else []

    def report_cells(self, entry: dict):
        ev = entry.get("evaluation") or {}
        res = f"AP {fmt(ev.get('ap'), 4)}" if "ap" in ev else "not evaluated"
        return res, f"`{entry['out']}/{self.name}_dets.txt`, `{ev.get('plot', '')}`"


def _toolbox_lines(records, predictions) -> List[str]:
    """``image score x1 y1 x2 y2`` per detection, in the toolbox's inclusive 1-based coordinates."""
    from ..datasets.face_eval import continuous_to_toolbox
    lines = []
    for i, r in enumerate(records):
        if i not in predictions:
            continue
        boxes, scores, _ = predictions[i]
        if len(boxes) == 0:
            continue
        tb = continuous_to_toolbox(boxes)
        name = os.path.basename(str(r.image_path))
        lines += [f"{name} {float(s)!r} " + " ".join(repr(float(v)) for v in b) for b, s in zip(tb, scores)]
    return lines
