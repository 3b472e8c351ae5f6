"""``python -m rfcn_face demo``: the project's main job on the embedded data (:mod:`rfcn_face.demo`) — train
Baseline and Final, test both, and show where the new anchor design finds tiny faces the baseline misses."""
from __future__ import annotations

from . import write_json

HELP = ("train Baseline and Final (DC+16x3+SJ+HC(5)) on the embedded synthfaces set, test and compare them "
        "(AP, recall per face size, figures)")


def add_arguments(p):
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--data", default=None, metavar="ROOT",
                   help="a WIDER-layout root (wider_face_split/, WIDER_{train,val}/images/, ground_truth/) instead "
                        "of the embedded synthfaces set")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="ImageNet ResNet-18 checkpoint for both models (default: random init)")
    p.add_argument("--preset", default="demo", metavar="NAME|PATH",
                   help="the budget both models share (default: experiments/presets/demo.yaml)")
    p.add_argument("--quick", action="store_true",
                   help="the same chain with a handful of iterations and val images (a smoke test, minutes -> seconds)")
    p.add_argument("--ablation", action="store_true",
                   help="also train the anchor-mining rows of experiments/mining/ (HAMBox, cleanliness, a K x T grid) "
                        "with the same budget and print them beside Baseline and Final (ablation.md)")
    p.add_argument("--rows", default=None, metavar="NAME,...",
                   help="with --ablation: only these rows of experiments/mining/ (comma-separated file stems, e.g. "
                        "baseline_hambox,final_hambox); Baseline and Final are always in the table")
    p.add_argument("--json", default=None, metavar="OUT", help="also write results.json here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from ..demo import DemoOptions, run_demo
    if args.rows is not None and not args.ablation:
        raise ValueError("--rows selects rows of --ablation: give --ablation too")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows is not None else None
    opts = DemoOptions(out=args.out, data=args.data, pretrained=args.pretrained, preset=args.preset,
                       quick=args.quick, progress=not args.no_progress)
    res = run_demo(opts)
    b, f = res["baseline"], res["final"]
    r = res["recall_by_scale"]
    print(f"{'':10}{'easy':>8}{'medium':>8}{'hard':>8}   recall below 16 px")
    for name, ap in (("Baseline", b), ("Final", f)):
        print(f"{name:10}{ap['easy']:8.3f}{ap['medium']:8.3f}{ap['hard']:8.3f}   {r['below_16'][name.lower()]:.3f}")
    print(f"recall per face size {r['groups']}:")
    print("  Baseline " + " ".join("  -  " if v is None else f"{v:.3f}" for v in r["baseline"]))
    print("  Final    " + " ".join("  -  " if v is None else f"{v:.3f}" for v in r["final"]))
    print(f"{res['iterations']} iterations per model; {res['seconds'] / 60:.1f} min; results in {args.out}/")
    if args.ablation:
        from ..demo import run_ablation
        ab = run_ablation(opts, rows=rows)
        print(f"{'row':28}{'strategy':>13}{'loss':>9}{'easy':>8}{'medium':>8}{'hard':>8}{'<16 px':>8}{'matched':>9}")
        for name, t in ab["rows"].items():
            print(f"{name:28}{t['strategy']:>13}{t['loss']:>9}{t['easy']:8.3f}{t['medium']:8.3f}{t['hard']:8.3f}"
                  f"{t['recall_below_16']:8.3f}{t['matched_per_face']:9.2f}")
        res["ablation"] = ab
    if args.json:
        write_json(args.json, res, indent=1)
    return 0
