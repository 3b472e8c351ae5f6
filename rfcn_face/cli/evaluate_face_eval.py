"""``python -m rfcn_face evaluate {afw,pascal}``: AP and PR curve by the face-eval protocol
(:mod:`rfcn_face.evaluation.pr`)."""
from __future__ import annotations

from . import write_json

__all__ = ["add_arguments", "run"]


def add_arguments(p, dataset: str = "afw"):
    p.add_argument("--dets", required=True, help="detections: 'image score x1 y1 x2 y2' per line")
    p.add_argument("--gt", required=True, help="face-eval annotation .mat (new_annotations_AFW.mat, "
                                               "Annotations_Face_PASCALLayout_large_fixed.mat or the old ones)")
    p.add_argument("--json", default=None, metavar="OUT", help="write AP and the PR curve as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="precision-recall plot")
    p.add_argument("--minw", type=float, default=30, help="faces narrower than this become ignore regions (30)")
    p.add_argument("--minh", type=float, default=30, help="faces lower than this become ignore regions (30)")
    p.add_argument("--nit", type=int, default=5, help="evaluation passes of the box refinement (toolbox: 5; "
                                                     "1 = no refinement)")
    p.add_argument("--label", default="ours", help="legend name in the plot")
    p.set_defaults(dataset=dataset)


def run(args) -> int:
    from ..datasets.face_eval import read_face_eval_mat
    from ..evaluation.plots import plot_pr
    from ..evaluation.pr import evaluate_face_eval, image_key, read_detections

    records = read_face_eval_mat(args.gt)
    keys, dets = read_detections(args.dets)
    gt_keys = {image_key(r.image_path or r.name) for r in records}
    unknown = sorted(set(keys) - gt_keys)
    if unknown:
        print(f"warning: {len(unknown)} detection image names are not in {args.gt} (e.g. {unknown[0]!r}); "
              "their detections count as false positives")
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
