"""``python -m rfcn_face evaluate fddb``: discrete / continuous ROC exactly as the official FDDB ``evaluate``
(:mod:`rfcn_face.evaluation.fddb`), optionally through the box -> ellipse regressor
(:mod:`rfcn_face.evaluation.ellipse`)."""
from __future__ import annotations

__all__ = ["add_arguments", "run"]


def add_arguments(p):
    p.add_argument("--dets", required=True, help="detections in the official FDDB output format")
    p.add_argument("--folds", required=True, help="FDDB-folds folder (FDDB-fold-XX.txt, -ellipseList.txt)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--images", help="folder of the FDDB images (<name>.jpg), for their sizes")
    g.add_argument("--sizes", help="image-size file: 'name width height' per line")
    p.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIXDiscROC.txt and PREFIXContROC.txt")
    p.add_argument("--fold", type=int, nargs="+", default=None, help="evaluate only these folds (default 1..10)")
    p.add_argument("--det-format", choices=("auto", "rect", "ellipse"), default="auto",
                   help="detection lines: rect 'x y w h score', ellipse 'major minor angle cx cy score'")
    p.add_argument("--ellipse-regressor", default=None, metavar="PARAMS",
                   help="turn rectangles into ellipses with this regressor file (fold-held-out models)")
    p.add_argument("--fit-ellipse-regressor", default=None, metavar="OUT.json",
                   help="fit the regressor on these detections (10-fold cross-validation), save it and apply it")
    p.add_argument("--write-ellipses", default=None, metavar="FILE",
                   help="also write the regressed ellipse detections in the official format")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="discrete and continuous ROC plot")
    p.add_argument("--label", default="ours", help="legend name in the plot")


def run(args) -> int:
    import time

    from ..datasets.fddb import load_fddb_gt
    from ..evaluation import ellipse as ell
    from ..evaluation.fddb import evaluate_fddb, tpr_at_fp, write_roc_files
    from ..evaluation.fddb_format import read_fddb_detections, write_fddb_detections
    from ..evaluation.plots import plot_roc

    t0 = time.time()
    recs = load_fddb_gt(args.folds, args.fold, args.sizes, args.images)
    dets = read_fddb_detections(args.dets, args.det_format)
    regressed = None
    if args.fit_ellipse_regressor or args.ellipse_regressor:
        if dets and dets[0].kind != "rect":
            raise ValueError(f"{args.dets}: the ellipse regressor needs rectangle detections")
        if args.fit_ellipse_regressor:
            model = ell.fit_cross_validated(recs, dets)
            print(f"wrote {ell.save_regressor(args.fit_ellipse_regressor, model)}")
        else:
            model = ell.load_regressor(args.ellipse_regressor)
        regressed = ell.apply_to_detections(model, recs, dets)
        if args.write_ellipses:
            print(f"wrote {write_fddb_detections(args.write_ellipses, regressed)}")
    res = evaluate_fddb(recs, regressed if regressed is not None else dets, progress=True)
    dp, cp = write_roc_files(args.out, res)
    d, c = tpr_at_fp(res)
    what = "ellipse regressor" if regressed is not None else dets[0].kind if dets else "rect"
    print(f"{res.num_images} images, {res.num_faces} faces, {res.num_detections} detections ({what}); "
          f"{time.time() - t0:.1f} s")
    print(f"discrete   TPR at 1000 FP: {d:.4f}")
    print(f"continuous TPR at 1000 FP: {c:.4f}")
    curves = {args.label: res}
    if regressed is not None:
        raw = evaluate_fddb(recs, dets, progress=True)
        rd, rc = tpr_at_fp(raw)
        print(f"without the regressor (rectangles): discrete {rd:.4f}, continuous {rc:.4f}")
        curves = {f"{args.label} (ellipse regressor)": res, f"{args.label} (rectangles)": raw}
    print(f"wrote {dp} and {cp}")
    if args.plot:
        print(f"wrote {plot_roc(args.plot, curves)}")
    return 0
