"""``python -m rfcn_face demo``: the project's main job on the embedded default data.

For now this is the EMO analysis (Fig. 4, Fig. 7) on the packaged WIDER FACE val face table.
"""
from __future__ import annotations

from . import emo

HELP = "run the main job on embedded default data (the EMO analysis on the packaged WIDER val faces)"


def add_arguments(p):
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")


def run(args) -> int:
    args.annotations, args.grid, args.no_plots = None, 2000, False
    return emo.run(args)
