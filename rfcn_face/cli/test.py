"""``python -m rfcn_face test``: a trained run on a benchmark -> official files, AP / ROC, plots
(:func:`rfcn_face.inference.run_test`; resumable through a per-image cache).

    python -m rfcn_face test --run runs/final --dataset wider-val --data data --out outputs/final_val
    python -m rfcn_face test --run runs/final --dataset fddb --out outputs/final_fddb --sizes 0x0 --ellipses
    python -m rfcn_face test --run runs/smoke --dataset synthfaces-val --out outputs/smoke_val --pyramid
"""
from __future__ import annotations

import sys

from . import write_json
from .common import add_device_arguments, number_arg

HELP = ("test a trained run on WIDER val / test, FDDB, AFW, PASCAL Faces or synthfaces val: official files, AP / "
        "ROC and plots; resumable")

__all__ = ["add_arguments", "run", "parse_test_size", "add_detector_arguments", "detector_from_args",
           "add_nms_argument", "add_import_argument", "import_user_modules", "check_model_args"]


def parse_test_size(text: str) -> list:
    """``600x1000`` -> ``[600, 1000]`` (Table 2 "max size shorter x longer"); ``0x0`` / ``original`` -> ``[0, 0]``."""
    t = str(text).strip().lower()
    if t in ("original", "orig", "0"):
        return [0, 0]
    parts = t.replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"a test size looks like SHORTERxLONGER, e.g. 600x1000 (0x0 = original size), got {text!r}")
    return [int(parts[0]), int(parts[1])]


def add_detector_arguments(p):
    """``--run`` | ``--model``, ``--sizes``, ``--pyramid``, ``--set``, ``--gpus`` / ``--cpus``, ``--nms-impl``
    (shared with ``detect``)."""
    p.add_argument("--run", default=None, metavar="RUN_DIR", help="training run folder (config.yaml + final.params)")
    p.add_argument("--model", default=None, metavar="PREFIX|FILE.onnx",
                   help="instead of --run: an exported model, PREFIX of export (PREFIX-symbol.json, -0000.params, "
                        "-detector.json) or the FILE.onnx of export --onnx (onnxruntime if importable, else "
                        "onnx.reference); its test knobs are baked in")
    p.add_argument("--sizes", nargs="+", default=None, metavar="SxL",
                   help="test size(s) 'shorter x longer' of Table 2, e.g. 600x1000; 0x0 = original size; several = "
                        "merged like the pyramid (default: the run's test.sizes)")
    p.add_argument("--pyramid", action="store_true",
                   help="image pyramid over the run's test.pyramid_sizes (Table 1 'Pyramid' rows, as SSH)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="test.KEY=VALUE",
                   help="override a test-time knob of the run's config (test.* or data.*), e.g. "
                        "--set test.score_thresh=0.05 (repeatable)")
    add_device_arguments(p, "GPU ids, e.g. 0,1: images are split across them")
    add_nms_argument(p)


def check_model_args(args) -> None:
    """Exactly one of ``--run`` / ``--model`` (a one-line error otherwise)."""
    if (args.run is None) == (getattr(args, "model", None) is None):
        raise ValueError("give --run RUN_DIR or --model PREFIX|FILE.onnx (exactly one)")


def add_nms_argument(p, default_help: str = "box_nms on a GPU, the numpy greedy NMS on a CPU"):
    """``--nms-impl auto|box_nms|numpy``: the NMS of the proposals on the device (shared by test, detect, export)."""
    from symbols.nms import NMS_CHOICES     # no MXNet import: --help stays light
    p.add_argument("--nms-impl", default="auto", choices=NMS_CHOICES,
                   help=f"NMS of the proposals: auto = {default_help}; box_nms = contrib.box_nms; numpy = the "
                        "vectorised greedy NMS as a CustomOp")


def detector_from_args(args):
    """``(detector, sizes or None, pyramid or None)`` from the shared arguments; the detector is the backend of
    ``--run`` or ``--model`` (:func:`rfcn_face.backends.load_detector`)."""
    from ..backends import load_detector
    from ..train import parse_contexts
    check_model_args(args)
    sizes = [parse_test_size(s) for s in args.sizes] if args.sizes else None
    if sizes and args.pyramid:
        raise ValueError("give --sizes or --pyramid, not both (several --sizes are merged like a pyramid)")
    ctx = parse_contexts(args.gpus, args.cpus)
    det = load_detector(args.run, args.model, ctx=ctx, overrides=tuple(args.overrides), nms_impl=args.nms_impl)
    return det, sizes, (True if args.pyramid else None)


def add_import_argument(p):
    """``--import MODULE`` (repeatable): user modules that register benchmarks, imported before any look-up."""
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (repeatable; a dotted name, the working directory is on the path): a "
                        "module that registers more benchmarks (rfcn_face.benchmarks.register, docs/extending.md)")


def import_user_modules(args) -> None:
    """The ``--import`` modules, then the ``--run`` folder's ``config.yaml`` (its top-level ``imports:`` are imported
    as it loads): every registry look-up (``--dataset``) comes after both."""
    from pathlib import Path

    from ..checkpoint import CONFIG_FILE
    from ..plugins import import_modules
    import_modules(args.imports, "--import")
    cfg = Path(args.run) / CONFIG_FILE if getattr(args, "run", None) else None
    if cfg is not None and cfg.is_file():
        from ..config import load_config
        load_config(cfg)


def add_arguments(p):
    from ..benchmarks import BENCHMARKS
    add_detector_arguments(p)
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help=f"benchmark to test on: {', '.join(BENCHMARKS)} (or one that an --import module registers)")
    add_import_argument(p)
    p.add_argument("--data", default=None, metavar="ROOT",
                   help="data root of data/README.md (default: data; synthfaces-val: the embedded set unless ROOT "
                        "holds one)")
    p.add_argument("--out", required=True, metavar="OUT", help="output folder (rerun the same command to resume)")
    p.add_argument("--ellipses", action="store_true",
                   help="FDDB: also the box -> ellipse regressor (fit on held-out folds, Sec. 5.2) and its ellipse files")
    p.add_argument("--ellipse-regressor", default=None, metavar="PARAMS.json",
                   help="FDDB: apply this saved regressor (evaluate fddb --fit-ellipse-regressor) instead of fitting one")
    p.add_argument("--baselines", default=None, metavar="DIR",
                   help="WIDER: eval_tools plot/baselines folder for the PR plot (default $RFCN_FACE_BASELINES or "
                        "data/widerface/eval_tools_baselines when present)")
    p.add_argument("--limit", type=number_arg("--limit", lo=0), default=0, metavar="N",
                   help="only the first N images (a quick check)")
    p.add_argument("--label", default="ours", help="legend name in the plots")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the summary here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from dataclasses import replace

    from ..inference import TestOptions, check_test_options, run_test
    check_model_args(args)
    import_user_modules(args)                     # before --dataset is looked up
    opts = TestOptions(dataset=args.dataset, out=args.out, data_root=args.data, ellipses=args.ellipses,
                       ellipse_regressor=args.ellipse_regressor, baselines=args.baselines, limit=args.limit,
                       label=args.label, progress=not args.no_progress)
    test_set = check_test_options(opts)           # before the detector loads
    det, sizes, pyramid = detector_from_args(args)
    s = run_test(det, replace(opts, sizes=sizes, pyramid=pyramid), test_set=test_set)
    print(f"{s['detected']}/{s['images']} images, {s['detections']} detections; wrote {args.out}/results.json")
    if args.json:
        write_json(args.json, s)
    if s["unreadable"]:
        names = ", ".join(u["image"] for u in s["unreadable"][:20])
        more = f" (+{len(s['unreadable']) - 20} more)" if len(s["unreadable"]) > 20 else ""
        print(f"error: {len(s['unreadable'])} image(s) could not be read and have no detections: {names}{more}",
              file=sys.stderr)
        return 1
    return 0
