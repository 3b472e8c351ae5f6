"""``python -m rfcn_face emo``: the EMO analysis of Sec. 3 (Fig. 4) and the face-anchor IoU of Fig. 7
(:mod:`rfcn_face.emo_analysis`)."""
from __future__ import annotations

from .common import number_arg

HELP = "EMO analysis: Fig. 4 (EMO vs face scale per stride) and Fig. 7 (average max IoU per face-scale group)"


def add_arguments(p):
    from ..emo_analysis import MAX_GRID
    p.add_argument("--annotations", default=None,
                   help="WIDER FACE annotation (official *_bbx_gt.txt, 7-column text, or split/val .mat); "
                        "default: the packaged WIDER val face table")
    p.add_argument("--out", default="outputs/emo", help="output folder (default: outputs/emo)")
    p.add_argument("--grid", type=number_arg("--grid", lo=1, hi=MAX_GRID), default=2000,
                   help=f"integration grid of Eq. 4 per axis (1..{MAX_GRID}, default 2000)")
    p.add_argument("--no-plots", action="store_true", help="write CSVs only")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the three tables and the face counts as "
                                                               "JSON to OUT")


def run(args) -> int:
    from ..emo_analysis import write_emo_analysis
    from . import write_json
    s = write_emo_analysis(args.out, args.annotations, args.grid, plots=not args.no_plots)
    if args.json:
        write_json(args.json, s)
    return 0
