"""``python -m rfcn_face detect IMG [IMG...] --run RUN_DIR | --model PREFIX|FILE.onnx --out DIR``: a PNG with the boxes and scores drawn and
``DIR/<image stem>.json`` per image (:func:`rfcn_face.inference.detect_images`)."""
from __future__ import annotations

import sys

from . import write_json
from .common import number_arg
from .test import add_detector_arguments, detector_from_args

HELP = "detect faces in images with a trained run: DIR/<stem>.png (boxes drawn) and DIR/<stem>.json"


def add_arguments(p):
    p.add_argument("images", nargs="+", metavar="IMG", help="image files")
    add_detector_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--thresh", type=number_arg("--thresh", float, lo=0, hi=1), default=0.5,
                   help="keep detections with score >= THRESH (default 0.5)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write a summary of all images here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..inference import check_detect_inputs, detect_images
    from .test import check_model_args
    check_model_args(args)
    check_detect_inputs(args.images, args.out, args.thresh)    # before the detector loads
    det, sizes, pyramid = detector_from_args(args)
    s = detect_images(det, args.images, args.out, thresh=args.thresh, sizes=sizes, pyramid=pyramid,
                      progress=not args.no_progress)
    for r in s["images"]:
        best = f", best {r['best']:.3f}" if r["best"] is not None else ""
        print(f"{r['image']}: {r['faces']} face(s){best} -> {r['png']}")
    if args.json:
        write_json(args.json, s)
    if s["unreadable"]:
        print(f"error: {len(s['unreadable'])} image(s) could not be read: "
              + ", ".join(f"{u['image']} ({u['reason']})" for u in s["unreadable"]), file=sys.stderr)
        return 1
    return 0
