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
    p.add_argument("--fold", type=int, nargs="+", default=None,
                   help="evaluate only these folds (default 1..10); the detections file may hold just these folds or "
                        "all ten (the other folds' images are then left out)")
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
    p.add_argument("--json", default=None, metavar="OUT", help="also write the counts, the TPRs at 1000 false "
                                                               "positives and the ROC curves as JSON")
    p.add_argument("--drop-nonfinite", action="store_true",
                   help="leave out detection lines with a NaN or infinite value (and print how many); without it "
                        "such a line is an error naming its file and line")


def check_matches_annotations(path, dets, recs, folds=None) -> None:
    """The detections must list the annotated images, in the same order (as the official tool reads them)."""
    names = [r.name for r in recs]
    got = [d.name for d in dets]
    if got == names:
        return
    path = f"{path}: {len(got)} images in the detections but {len(names)} in the annotations;" \
        if len(got) != len(names) else f"{path}:"
    known = set(names)
    if len(got) < len(names) and set(got) <= known and folds is None:
        fold_of = {r.name: int(r.event.split("-")[-1]) for r in recs}
        have = sorted({fold_of[n] for n in got})
        raise ValueError(f"{path} the detections cover folds {' '.join(map(str, have))} only of folds 1-10: pass "
                         f"--fold {' '.join(map(str, have))} to evaluate those")
    extra = [n for n in got if n not in known]
    if extra:
        raise ValueError(f"{path} image {extra[0]!r} is not in the annotations of the folds evaluated "
                         f"({len(extra)} such image(s))")
    missing = [n for n in names if n not in set(got)]
    if missing:
        raise ValueError(f"{path} no detections block for {len(missing)} annotated image(s), e.g. {missing[0]!r} "
                         "(the official format lists every image, with count 0 when nothing was found)")
    k = next((i for i, (a, b) in enumerate(zip(got, names)) if a != b), None)
    if k is None:
        raise ValueError(f"{path} an image is listed twice?")
    raise ValueError(f"{path} image {k + 1} is {got[k]!r} where the annotations list {names[k]!r} (the official "
                     "tool needs the images in the order of the fold files)")


def run(args) -> int:
    import sys
    import time

    from ..datasets.fddb import load_fddb_gt
    from ..evaluation import ellipse as ell
    from ..evaluation.fddb import evaluate_fddb, tpr_at_fp, write_roc_files
    from ..evaluation.fddb_format import read_fddb_detections, select_images, write_fddb_detections
    from ..evaluation.plots import plot_roc

    t0 = time.time()
    recs = load_fddb_gt(args.folds, args.fold, args.sizes, args.images)
    dets = read_fddb_detections(args.dets, args.det_format, drop_nonfinite=args.drop_nonfinite)
    dropped = sum(d.dropped for d in dets)
    if dropped:
        print(f"note: --drop-nonfinite: left out {dropped} detection line(s) with a NaN or infinite value in "
              f"{sum(d.dropped > 0 for d in dets)} image(s)", file=sys.stderr)
    if args.fold and len(dets) > len(recs):
        n_all = len(dets)
        dets = select_images(dets, [r.name for r in recs])
        print(f"--fold {' '.join(map(str, args.fold))}: {len(dets)} of the {n_all} images of {args.dets}")
    check_matches_annotations(args.dets, dets, recs, args.fold)
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
    if args.json:
        from . import write_json
        s = dict(res.to_json(), dets=str(args.dets), kind=what, roc_files=[str(dp), str(cp)])
        if regressed is not None:
            s["rectangles"] = raw.to_json()                   # the same detections without the regressor
        write_json(args.json, s)
    return 0
