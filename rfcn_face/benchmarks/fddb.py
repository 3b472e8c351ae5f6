"""FDDB (Sec. 5.2): the ten official fold files ``OUT/fddb/fold-XX-out.txt`` (rectangles ``x y w h score``) and
``OUT/fddb/dets.txt``; with ellipses, the box -> ellipse regressor (:mod:`rfcn_face.evaluation.ellipse`: the model
applied to fold k fit on the other folds, or a saved regressor file) writes ``OUT/fddb/ellipses/fold-XX-out.txt``;
DiscROC / ContROC files (``OUT/fddb/{rect,ellipse}-{Disc,Cont}ROC.txt``) and ``OUT/fddb_roc.png``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .base import Benchmark, Evaluator, TestSet
from .registry import register

__all__ = ["Fddb", "FddbEvaluator"]


def _renamed(v, tmp: Path, final: Path):
    """``v`` (files summary) with every path under the temporary folder ``tmp`` moved to ``final``."""
    if isinstance(v, dict):
        return {k: _renamed(x, tmp, final) for k, x in v.items()}
    if isinstance(v, list):
        return [_renamed(x, tmp, final) for x in v]
    if isinstance(v, str) and (v == str(tmp) or v.startswith(str(tmp) + "/")):
        return str(final) + v[len(str(tmp)):]
    return v


class FddbEvaluator(Evaluator):
    """Discrete / continuous ROC of the rectangles (and of the regressed ellipses), TPR at 1000 false positives."""

    def evaluate(self) -> dict:
        self.files, rect, ellipses = self.benchmark.write_detections(self.test_set, self.predictions, self.out,
                                                                     self.opts)
        return self.roc([("rect", rect)] + ([("ellipse", ellipses)] if ellipses is not None else []))

    def roc(self, kinds) -> dict:
        from ..evaluation.fddb import evaluate_fddb, tpr_at_fp, write_roc_files
        from ..evaluation.plots import plot_roc
        ts, opts = self.test_set, self.opts
        for i, r in enumerate(ts.records):          # sizes from the images when there is no FDDB-image-sizes.txt
            if (r.width <= 0 or r.height <= 0) and i in self.predictions:
                r.height, r.width = self.predictions[i][2]
        if any(r.width <= 0 or r.height <= 0 for r in ts.records):
            ts.notes.append("FDDB ROC skipped: image sizes unknown for unreadable images (put FDDB-image-sizes.txt "
                            "in the fddb folder)")
            return {}
        res, curves = {}, {}
        for kind, dets in kinds:
            r = evaluate_fddb(ts.records, dets, progress=opts.progress)
            dp, cp = write_roc_files(self.out / "fddb" / f"{kind}-", r)
            d, c = tpr_at_fp(r)
            self.log(f"FDDB ({kind}): discrete TPR at 1000 FP {d:.4f}, continuous {c:.4f} ({r.num_faces} faces)")
            res[kind] = {"disc_roc": str(dp), "cont_roc": str(cp), "tpr_disc_1000fp": d, "tpr_cont_1000fp": c}
            curves[f"{opts.label} ({'ellipse regressor' if kind == 'ellipse' else 'rectangles'})"] = r
        res["plot"] = str(plot_roc(self.out / "fddb_roc.png", curves))
        return res


@register("fddb")
class Fddb(Benchmark):
    title = "FDDB"
    evaluator_class = FddbEvaluator
    in_reproduce = True
    reproduce_options = {"ellipses": True}
    takes_ellipses = True

    def read(self, root: Path) -> TestSet:
        from ..datasets.fddb import read_fddb
        base = root / "fddb"
        folds_dir, sizes = base / "FDDB-folds", base / "FDDB-image-sizes.txt"
        if not folds_dir.is_dir():
            raise FileNotFoundError(f"FDDB folds folder not found: {folds_dir} (see data/README.md)")
        folds = [k for k in range(1, 11) if (folds_dir / f"FDDB-fold-{k:02d}-ellipseList.txt").is_file()]
        if not folds:
            raise FileNotFoundError(f"no FDDB-fold-XX-ellipseList.txt in {folds_dir}")
        notes = []
        if len(folds) < 10:
            notes.append(f"only FDDB folds {', '.join(map(str, folds))} found: the official benchmark has ten")
        records = read_fddb(folds_dir, folds=folds, image_root=base / "originalPics",
                            sizes_file=sizes if sizes.is_file() else None)
        return TestSet(self.name, records, base, None, notes, self)

    def required_paths(self, root: Path) -> List[Path]:
        return [root / "fddb" / "FDDB-folds", root / "fddb" / "originalPics"]

    def display_name(self, record) -> str:
        return record.name

    def write_files(self, ts, predictions, out, opts) -> dict:
        return self.write_detections(ts, predictions, out, opts)[0]

    def write_detections(self, ts, predictions, out, opts) -> Tuple[dict, list, Optional[list]]:
        """The fold files (and, with ``opts.ellipses`` or ``opts.ellipse_regressor``, the regressor and the
        ellipse fold files); returns ``(files, rectangle detections, ellipse detections or None)``."""
        from ..checkpoint import atomic_write_dir, remove_stale_temporaries
        final, got = Path(out) / "fddb", []
        remove_stale_temporaries(out, ".fddb-")
        # the folder is written whole (a rerun with fewer images or folds leaves no file of the previous one)
        atomic_write_dir(final, lambda tmp: got.append((self._write_folder(ts, predictions, tmp, opts), tmp)),
                         prefix=".fddb-")
        (files, dets, edets), tmp = got[0]
        return _renamed(files, tmp, final), dets, edets

    def _write_folder(self, ts, predictions, out: Path, opts):
        from ..evaluation.fddb_format import write_fddb_detections
        dets = _rect_detections(ts.records, predictions)
        folds = sorted({r.event for r in ts.records})
        for f in folds:
            write_fddb_detections(out / f"{f}-out.txt", [d for d, r in zip(dets, ts.records) if r.event == f])
        files = {"folds": [str(out / f"{f}-out.txt") for f in folds],
                 "dets": str(write_fddb_detections(out / "dets.txt", dets))}
        model = self._regressor(ts, dets, out, opts, files) if (opts.ellipses or opts.ellipse_regressor) else None
        if model is None:
            return files, dets, None
        from ..evaluation.ellipse import apply_to_detections
        edets = apply_to_detections(model, ts.records, dets)
        for f in folds:
            write_fddb_detections(out / "ellipses" / f"{f}-out.txt",
                                  [d for d, r in zip(edets, ts.records) if r.event == f])
        files["ellipse_folds"] = [str(out / "ellipses" / f"{f}-out.txt") for f in folds]
        files["ellipse_dets"] = str(write_fddb_detections(out / "ellipses" / "dets.txt", edets))
        if len(folds) < 2:
            ts.notes.append("only one FDDB fold: the ellipse regressor is fit and applied on the same fold")
        return files, dets, edets

    @staticmethod
    def _regressor(ts, dets, out: Path, opts, files: dict):
        """The box -> ellipse regressor: the saved one of ``opts.ellipse_regressor``, else one fit on held-out
        folds (saved beside the folds); None (with a note) when too few detections match a face."""
        from ..evaluation import ellipse as ell
        if opts.ellipse_regressor:
            files["regressor"] = str(opts.ellipse_regressor)
            return ell.load_regressor(opts.ellipse_regressor)
        try:
            model = ell.fit_cross_validated(ts.records, dets)
        except ValueError as e:   # too few detections matching a face (e.g. an untrained model)
            ts.notes.append(f"ellipse regressor not fitted ({e}): only rectangle files written")
            return None
        files["regressor"] = str(ell.save_regressor(out / "ellipse_regressor.json", model))
        return model

    def summary_lines(self, evaluation: dict) -> List[str]:
        return [f"{kind}: TPR at 1000 FP discrete {evaluation[kind]['tpr_disc_1000fp']:.4f}, continuous "
                f"{evaluation[kind]['tpr_cont_1000fp']:.4f}" for kind in ("rect", "ellipse") if kind in evaluation]

    def report_cells(self, entry: dict):
        ev = entry.get("evaluation") or {}
        res = "; ".join(f"{k}: TPR@1000FP disc {ev[k]['tpr_disc_1000fp']:.4f} cont {ev[k]['tpr_cont_1000fp']:.4f}"
                        for k in ("rect", "ellipse") if k in ev) or "not evaluated"
        return res, f"`{entry['out']}/fddb/` (fold-XX-out.txt, ellipses/, *ROC.txt), `{ev.get('plot', '')}`"


def _rect_detections(records, predictions) -> list:
    """One :class:`FddbImageDets` of rectangles ``x y w h score`` per record (none for an unreadable image)."""
    from ..boxes import xyxy_to_xywh
    from ..evaluation.fddb_format import FddbImageDets
    out = []
    for i, r in enumerate(records):
        boxes, scores, _ = predictions.get(i, (np.zeros((0, 4)), np.zeros(0), None))
        xywh = xyxy_to_xywh(boxes) if len(boxes) else np.zeros((0, 4))
        out.append(FddbImageDets(r.name, "rect", np.concatenate([xywh, np.asarray(scores).reshape(-1, 1)], 1)))
    return out
