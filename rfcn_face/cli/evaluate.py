"""``python -m rfcn_face evaluate {wider,fddb,afw,pascal,check-submission}``: the official benchmark protocols.

``wider`` and ``check-submission`` live here (rfcn_face.evaluation.wider / .submission); ``fddb`` delegates to
``rfcn_face.cli.evaluate_fddb`` and ``afw`` / ``pascal`` to ``rfcn_face.cli.evaluate_face_eval``, imported only
when that sub-command runs (each module provides ``add_arguments`` and ``run``).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .common import number_arg

HELP = "evaluate detections with the official protocols: WIDER FACE AP, FDDB ROC, AFW / PASCAL Faces AP"

# sub-command -> (module, dataset argument or None, help)
DELEGATED = {
    "fddb": ("rfcn_face.cli.evaluate_fddb", None, "FDDB discrete / continuous ROC (official evaluate program)"),
    "afw": ("rfcn_face.cli.evaluate_face_eval", "afw", "AFW precision-recall and AP (face-eval toolbox protocol)"),
    "pascal": ("rfcn_face.cli.evaluate_face_eval", "pascal", "PASCAL Faces precision-recall and AP (face-eval toolbox)"),
}


def add_arguments(p):
    sub = p.add_subparsers(dest="evaluate_cmd", metavar="BENCHMARK")
    w = sub.add_parser("wider", help="WIDER FACE val Easy / Medium / Hard AP (official eval_tools, exact)",
                       description="WIDER FACE val AP exactly as the official MATLAB eval_tools computes it.")
    w.add_argument("--pred", required=True, help="submission folder: <event>/<image>.txt files")
    w.add_argument("--gt", required=True, help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    w.add_argument("--json", default=None, metavar="OUT", help="write APs (full precision) and PR curves as JSON")
    w.add_argument("--plot", default=None, metavar="OUT.png", help="PR plot with the published baselines")
    w.add_argument("--baselines", default=None, metavar="DIR",
                   help="eval_tools baselines folder (default: data/widerface/eval_tools_baselines if present)")
    w.add_argument("--label", default="ours", help="legend name of your method in the plot")
    w.add_argument("--quiet", action="store_true", help="do not list missing / invalid prediction files")
    w.add_argument("--drop-nonfinite", action="store_true",
                   help="leave out box lines with a NaN or infinite value (and print how many); without it such a "
                        "line is an error naming its file and line")
    w.set_defaults(_eval_run=run_wider)

    c = sub.add_parser("check-submission", help="validate a WIDER submission folder (or its .zip) before upload",
                       description="List every problem of a WIDER submission folder or zip, each with its file.")
    c.add_argument("--pred", required=True, help="submission folder, or its .zip (members <event>/<image>.txt; read "
                                                 "in memory, nothing is extracted)")
    c.add_argument("--split", choices=("val", "test"), required=True)
    c.add_argument("--filelist", default=None,
                   help="image list (test: wider_face_test_filelist.txt, val: wider_face_val_bbx_gt.txt); "
                        "default: under data/widerface/wider_face_split/")
    c.add_argument("--max-problems", type=number_arg("--max-problems", lo=0), default=50,
                   help="print at most this many problems")
    c.add_argument("--json", default=None, metavar="OUT", help="also write the result (every problem) as JSON")
    c.set_defaults(_eval_run=run_check)

    for name, (module, dataset, help_) in DELEGATED.items():
        # prefix_chars="+": the sub-parser must not treat "--x" as its own options, the module parses them
        d = sub.add_parser(name, help=help_, add_help=False, prefix_chars="+", description=help_)
        d.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        d.set_defaults(_eval_run=_delegate, _module=module, _dataset=dataset, _name=name)


def _delegate(args) -> int:
    """Parse the remaining arguments with the evaluator module's own parser, then run it."""
    module, dataset, name = args._module, args._dataset, args._name
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"'evaluate {name}' is not available in this checkout: module {module} is missing "
                         f"(it must provide add_arguments(parser{', dataset' if dataset else ''}) and run(args))")
    from ..__main__ import ArgumentParser
    mod = importlib.import_module(module)
    parser = ArgumentParser(prog=f"python -m rfcn_face evaluate {name}",
                                     description=DELEGATED[name][2])
    if dataset is None:
        mod.add_arguments(parser)
    else:
        parser.set_defaults(dataset=dataset)
        mod.add_arguments(parser, dataset)
    sub_args = parser.parse_args(args.rest)
    return int(mod.run(sub_args) or 0)


def run_wider(args) -> int:
    from pathlib import Path

    from ..evaluation.submission import check_prediction_values, read_submission, require_some_predictions
    from ..evaluation.wider import WiderGroundTruth, evaluate_wider, format_result
    from . import write_json

    if args.baselines and not Path(args.baselines).is_dir():
        raise FileNotFoundError(f"--baselines folder not found: {args.baselines}")
    gt = WiderGroundTruth.load(args.gt)
    notes = []
    preds, warnings = read_submission(args.pred, gt.keys(), notes=notes)
    for n in notes[:20]:
        print(f"warning: {n}", file=sys.stderr)
    if len(notes) > 20:
        print(f"warning: {len(notes)} prediction files hold more box lines than their count (not read)",
              file=sys.stderr)
    require_some_predictions(args.pred, gt.keys(), preds, warnings)
    if warnings:
        if not args.quiet:
            for w in warnings[:20]:
                print(f"warning: {w}", file=sys.stderr)
        if len(warnings) > 20 or args.quiet:
            print(f"warning: {len(warnings)} of {len(gt)} images have no usable prediction file "
                  f"(counted as no predictions)", file=sys.stderr)
    preds, dropped, files = check_prediction_values(args.pred, preds, args.drop_nonfinite)
    if dropped:
        print(f"note: --drop-nonfinite: left out {dropped} box line(s) with a NaN or infinite value in {files} "
              "file(s)", file=sys.stderr)
    negative = int((preds.rows[:, 4] < 0).sum())
    if negative:
        print(f"note: {negative} prediction(s) with a negative score are not counted (the official tool keeps "
              "score >= 0 only)", file=sys.stderr)
    result = evaluate_wider(preds, gt)
    counted = preds.rows[preds.rows[:, 4] >= 0, 4]
    if len(counted) and counted.min() == counted.max():
        print(f"warning: {'the one prediction has' if len(counted) == 1 else f'all {len(counted)} predictions have'}"
              f" the same score ({counted[0]:g}): the official tool normalises scores by (max - min) = 0, which "
              "gives NaN, so no prediction passes a threshold and every AP is 0 (give the detector's scores)",
              file=sys.stderr)
    print(f"{len(gt)} images, {result.num_predictions} predictions")
    print(format_result(result))
    if args.json:
        write_json(args.json, result.to_json())
    if args.plot:
        from ..evaluation.plots import default_baselines_dir, load_baselines, plot_wider_pr
        bdir = Path(args.baselines) if args.baselines else default_baselines_dir()
        baselines = load_baselines(bdir, "Val") if bdir is not None else []
        if bdir is None:
            print("note: no baselines folder found (use --baselines DIR); plotting your curve alone",
                  file=sys.stderr)
        curves = {s: (result.precision[s], result.recall[s]) for s in result.ap}
        print(f"wrote {plot_wider_pr(args.plot, curves, args.label, baselines)}")
    return 0


def run_check(args) -> int:
    from ..evaluation.submission import split_image_list
    from ..evaluation.submission_check import check_submission
    from . import write_json

    keys = split_image_list(args.split, args.filelist)
    problems = check_submission(args.pred, keys)
    if args.json:
        write_json(args.json, {"pred": str(args.pred), "split": args.split, "images": len(keys),
                               "ok": not problems, "problems": problems})
    if not problems:
        print(f"OK: {args.pred} has one valid file for each of the {len(keys)} {args.split} images")
        return 0
    for p in problems[:args.max_problems]:
        print(p)
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more")
    print(f"error: {len(problems)} problem(s) in {args.pred} (listed above)", file=sys.stderr)
    return 1


def run(args) -> int:
    fn = getattr(args, "_eval_run", None)
    if fn is None:
        raise ValueError("choose a benchmark: python -m rfcn_face evaluate {wider,fddb,afw,pascal,check-submission}")
    return fn(args)
