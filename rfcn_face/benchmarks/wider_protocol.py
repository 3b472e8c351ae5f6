"""The WIDER FACE protocol shared by wider-val, wider-test and synthfaces-val (Sec. 5.1): the official
submission folder ``OUT/predictions/<event>/<name>.txt`` (checked by
:func:`rfcn_face.evaluation.submission_check.check_submission`) and, where a val ground truth exists, Easy / Medium /
Hard AP read back from those files (:func:`rfcn_face.evaluation.wider.evaluate_wider`), ``OUT/wider_eval.json``
(the curves) and ``OUT/wider_pr.png`` over the published baselines."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ..checkpoint import atomic_write_json
from .base import Benchmark, Evaluator, TestSet, fmt

__all__ = ["WiderProtocol", "WiderEvaluator"]


class WiderEvaluator(Evaluator):
    """Submission check; with ground truth: AP per setting from the written files, curves, PR plot."""

    def score(self) -> dict:
        from ..evaluation.plots import default_baselines_dir, load_baselines, plot_wider_pr
        from ..evaluation.submission import read_submission
        from ..evaluation.submission_check import check_submission
        from ..evaluation.wider import WiderGroundTruth, evaluate_wider, format_result
        ts, opts, log, out = self.test_set, self.opts, self.log, self.out
        pred = out / "predictions"
        keys = [(r.event, r.name) for r in ts.records]
        problems = check_submission(pred, keys)
        res = {"submission": str(pred), "submission_problems": problems}
        log(f"submission check: {'OK' if not problems else f'{len(problems)} problem(s)'} ({len(keys)} files in "
            f"{pred})")
        for p in problems[:10]:
            log(f"  {p}")
        if ts.gt is None:
            return res
        gt = WiderGroundTruth.load(ts.gt)
        if opts.limit:
            want = set(keys)
            gt = gt.subset([i for i, k in enumerate(gt.keys()) if k in want])
        preds, warns = read_submission(pred, gt.keys())
        for w in warns[:10]:
            log(f"warning: {w}")
        r = evaluate_wider(preds, gt)
        log(format_result(r))
        res.update({s: r.ap[s] for s in r.ap})
        base_dir = opts.baselines or (default_baselines_dir() if self.benchmark.published_baselines else None)
        baselines = load_baselines(base_dir) if base_dir else []
        png = plot_wider_pr(out / "wider_pr.png", {s: (r.precision[s], r.recall[s]) for s in r.ap}, opts.label,
                            baselines, title=self.benchmark.pr_title)
        res["plot"] = str(png)
        res["baselines"] = str(base_dir) if base_dir else None
        atomic_write_json(out / "wider_eval.json", r.to_json())
        return res


class WiderProtocol(Benchmark):
    """A WIDER-layout folder (``wider_face_split/``, ``WIDER_<split>/images/``, ``ground_truth/``) tested with
    the WIDER protocol. Subclasses set ``split`` and :meth:`base`."""
    evaluator_class = WiderEvaluator
    split = "val"
    pr_title = ""                    # title of wider_pr.png
    published_baselines = False      # default --baselines: $RFCN_FACE_BASELINES / data/widerface/eval_tools_...

    def base(self, root: Path) -> Path:
        """The WIDER-layout folder of a data root."""
        from ..datasets.wider import wider_base
        return wider_base(root)

    def read(self, root: Path) -> TestSet:
        from ..datasets.wider import wider_split_records
        base = self.base(root)
        records = wider_split_records(base, self.split)
        gt, notes = (base / "ground_truth" if self.split == "val" else None), []
        if gt is not None and not (gt / "wider_face_val.mat").is_file():
            notes.append(f"no evaluation ground truth at {gt}: the submission folder is written, not scored")
            gt = None
        return TestSet(self.name, records, base, gt, notes, self)

    def display_name(self, record) -> str:
        return f"{record.event}/{record.name}.jpg"

    def default_sizes(self, cfg) -> list:
        """The run's own test size(s) (``test.sizes``, or the pyramid): WIDER FACE is tested as trained."""
        from ..transforms import inference_sizes
        return inference_sizes(cfg)

    def write_files(self, ts, predictions, out, opts) -> dict:
        from ..checkpoint import atomic_write_dir, remove_stale_temporaries
        from ..evaluation.submission import write_submission
        keys = [(r.event, r.name) for r in ts.records]
        dets = {keys[i]: (b, s) for i, (b, s, _) in predictions.items()}
        pred = Path(out) / "predictions"
        remove_stale_temporaries(out, ".predictions-")
        # written whole: a rerun with fewer images (--limit) leaves no file of the previous one in the folder
        atomic_write_dir(pred, lambda tmp: write_submission(dets, tmp, keys), prefix=".predictions-")
        return {"predictions": str(pred)}

    def evaluate_args(self, root, pred, plot, label) -> Optional[List[str]]:
        return ["evaluate", "wider", "--pred", str(pred), "--gt", str(self.base(Path(root)) / "ground_truth"),
                "--plot", str(plot), "--label", label]

    def summary_lines(self, evaluation: dict) -> List[str]:
        from ..evaluation.wider import SETTINGS
        if not any(s in evaluation for s in SETTINGS):
            return []
        return ["AP " + "  ".join(f"{s} {fmt(evaluation.get(s))}" for s in SETTINGS)]

    def report_cells(self, entry: dict):
        from ..evaluation.wider import SETTINGS
        ev = entry.get("evaluation") or {}
        return (" / ".join(f"{s} {fmt(ev.get(s))}" for s in SETTINGS),
                f"`{entry['out']}/predictions`, `{entry.get('pr_plot', '')}`")
