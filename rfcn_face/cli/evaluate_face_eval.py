"""``python -m rfcn_face evaluate {afw,pascal}``: AP and PR curve by the face-eval protocol
(:mod:`rfcn_face.evaluation.pr`)."""
from __future__ import annotations

import sys

from . import write_json
from .common import number_arg

__all__ = ["add_arguments", "run"]


def add_arguments(p, dataset: str = "afw"):
    p.add_argument("--dets", required=True, help="detections: 'image score x1 y1 x2 y2' per line")
    p.add_argument("--gt", required=True, help="face-eval annotation .mat (new_annotations_AFW.mat, "
                                               "Annotations_Face_PASCALLayout_large_fixed.mat or the old ones)")
    p.add_argument("--json", default=None, metavar="OUT", help="write AP and the PR curve as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="precision-recall plot")
    p.add_argument("--minw", type=number_arg("--minw", float, lo=0), default=30, help="faces narrower than this become ignore regions (30)")
    p.add_argument("--minh", type=number_arg("--minh", float, lo=0), default=30, help="faces lower than this become ignore regions (30)")
    p.add_argument("--nit", type=number_arg("--nit", lo=1), default=5, help="evaluation passes of the box refinement (toolbox: 5; "
                                                     "1 = no refinement)")
    p.add_argument("--label", default="ours", help="legend name in the plot")
    p.add_argument("--drop-nonfinite", action="store_true",
                   help="leave out detection lines with a NaN or infinite value (and print how many); without it "
                        "such a line is an error naming its file and line")
    p.set_defaults(dataset=dataset)


def run(args) -> int:
    from ..datasets.face_eval import read_face_eval_mat
    from ..evaluation.plots import plot_pr
    from ..evaluation.pr import evaluate_face_eval, image_key, read_detections

    records = read_face_eval_mat(args.gt)
    counts = {}
    keys, dets = read_detections(args.dets, drop_nonfinite=args.drop_nonfinite, counts=counts)
    if counts.get("nonfinite"):
        print(f"note: --drop-nonfinite: left out {counts['nonfinite']} detection line(s) with a NaN or infinite "
              "value", file=sys.stderr)
    if not keys:
        raise ValueError(f"{args.dets}: no detection left after --drop-nonfinite")
    gt_keys = {image_key(r.image_path or r.name) for r in records}
    unknown = sorted(set(keys) - gt_keys)
    if unknown and len(unknown) == len(set(keys)):
        raise ValueError(f"{args.dets}: none of its {len(unknown)} image names is an image of {args.gt} (e.g. "
                         f"{unknown[0]!r}; the key is the file name up to its first dot): wrong annotation file?")
    if unknown:
        print(f"warning: {len(unknown)} detection image names are not in {args.gt} (e.g. {unknown[0]!r}); "
              "their detections count as false positives", file=sys.stderr)
    res = evaluate_face_eval(records, keys, dets, args.minw, args.minh, args.nit)
    name = {"afw": "AFW", "pascal": "PASCAL Faces"}.get(getattr(args, "dataset", ""), "face-eval")
    print(f"{name}: {len(records)} images, {res.num_faces} faces (ignore regions excluded), "
          f"{res.num_detections} detections ({res.num_filtered} below the size filter)")
    for i, (tx, ty, sx, sy) in enumerate(res.transforms, 1):
        print(f"refinement {i}: tx {tx:+.4f} ty {ty:+.4f} sx {sx:.4f} sy {sy:.4f}")
    print(f"{name} AP: {res.ap:.4f}")
    if args.json:
        write_json(args.json, dict(res.to_json(), dataset=name))
    if args.plot:
        print(f"wrote {plot_pr(args.plot, res.recall, res.precision, args.label, name, res.ap)}")
    return 0
