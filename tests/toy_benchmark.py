"""A user benchmark written outside the library (``tests/test_benchmarks.py`` runs it with ``test --import
toy_benchmark --dataset toy-boxes``): a folder ``ROOT/toy/`` of images and one ``boxes.json``
(``{"images": [{"file": "a.jpg", "boxes": [[x1, y1, x2, y2], ...]}, ...]}``); its official file is
``OUT/toy_dets.json`` (``{file: [[x1, y1, x2, y2, score], ...]}``) and its number the recall at IoU 0.5 of the
detections above ``score_thresh`` in that file. Not imported by pytest itself: the registry of the test session
stays as the library makes it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rfcn_face.benchmarks import Benchmark, Evaluator, TestSet, register
from rfcn_face.checkpoint import atomic_write_json
from rfcn_face.datasets.record import FaceRecord


class ToyEvaluator(Evaluator):
    score_thresh = 0.05

    def score(self) -> dict:
        from rfcn_face.boxes import iou_matrix
        dets = json.loads(Path(self.files["dets"]).read_text())           # what was written, read back
        found = faces = 0
        for r in self.test_set.records:
            d = np.asarray(dets.get(Path(r.image_path).name, []), np.float64).reshape(-1, 5)
            d = d[d[:, 4] >= self.score_thresh]
            faces += len(r.boxes)
            if len(d) and len(r.boxes):
                found += int((iou_matrix(r.boxes, d[:, :4]).max(axis=1) >= 0.5).sum())
        recall = found / faces if faces else 0.0
        self.log(f"toy recall at IoU 0.5: {recall:.4f} ({found} of {faces} faces)")
        return {"recall": recall, "faces": faces}


@register("toy-boxes")
class ToyBoxes(Benchmark):
    title = "toy boxes"
    evaluator_class = ToyEvaluator
    in_reproduce = True              # `reproduce --benchmarks --import toy_benchmark` runs it too

    def read(self, root: Path) -> TestSet:
        base = root / "toy"
        spec = json.loads((base / "boxes.json").read_text())
        recs = [FaceRecord(str(base / "images" / e["file"]), np.asarray(e["boxes"], np.float64).reshape(-1, 4),
                           np.zeros(len(e["boxes"]), bool), name=Path(e["file"]).stem) for e in spec["images"]]
        return TestSet(self.name, recs, base, base / "boxes.json", [], self)

    def required_paths(self, root: Path):
        return [root / "toy" / "boxes.json", root / "toy" / "images"]

    def write_files(self, ts, predictions, out, opts) -> dict:
        rows = {Path(r.image_path).name: [[float(v) for v in b] + [float(s)] for b, s in zip(*predictions[i][:2])]
                for i, r in enumerate(ts.records) if i in predictions}
        return {"dets": str(atomic_write_json(Path(out) / "toy_dets.json", rows))}

    def summary_lines(self, evaluation: dict):
        return [f"recall at IoU 0.5 {evaluation['recall']:.4f}"] if "recall" in evaluation else []
