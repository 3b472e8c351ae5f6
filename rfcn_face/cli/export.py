"""``python -m rfcn_face export --run RUN_DIR --out PREFIX``: the whole detector for plain MXNet
(``PREFIX-symbol.json`` + ``PREFIX-0000.params`` + ``PREFIX-detector.json``; :func:`symbols.export.export_run`),
optionally the whole detector as one ONNX model (:mod:`rfcn_face.onnx_export`)."""
from __future__ import annotations

from . import write_json
from .test import add_nms_argument

HELP = ("export a trained run for plain MXNet (SymbolBlock.imports / Module API): -symbol.json, -0000.params, "
        "-detector.json; --onnx OUT.onnx also writes the whole detector as one ONNX model")


def add_arguments(p):
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="training run folder (config.yaml + final.params)")
    p.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX-symbol.json, PREFIX-0000.params, "
                                                                  "PREFIX-detector.json")
    p.add_argument("--graph", default="detector", choices=("detector", "full", "maps"),
                   help="detector: image + im_info -> detections (default); full: image + rois -> RPN maps and head "
                        "outputs; maps: image -> RPN and position-sensitive maps")
    p.add_argument("--onnx", default=None, metavar="OUT.onnx",
                   help="also write the whole detector as ONNX (image -> boxes and scores after NMS, original pixels; "
                        "needs the onnx package; docs/inference.md)")
    add_nms_argument(p, "box_nms, which plain MXNet runs anywhere (numpy: the rfcn_nms CustomOp, the graph then "
                        "needs 'import operators.nms')")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the summary here")


def check_out(prefix: str) -> None:
    """``--out`` is a file prefix (``DIR/name``): not an existing folder, not ending with a separator."""
    import os
    from pathlib import Path
    if str(prefix).endswith(("/", os.sep)) or Path(prefix).is_dir():
        raise ValueError(f"--out {prefix} names a folder; give a file prefix such as {Path(prefix) / 'detector'} "
                         "(writes detector-symbol.json, detector-0000.params, detector-detector.json)")
    parent = Path(prefix).parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"--out {prefix}: {parent} is a file, not a folder")


def run(args) -> int:
    from pathlib import Path

    from symbols.export import export_run

    from ..locks import folder_lock
    check_out(args.out)
    with folder_lock(Path(args.out).parent, "export"):          # one writer per folder
        s = export_run(args.run, args.out, graph=args.graph, onnx_path=args.onnx, nms_impl=args.nms_impl)
    print(f"wrote {s['symbol']}, {s['params']} and {s['meta']} (graph '{s['graph']}': "
          f"{', '.join(s['inputs'])} -> {', '.join(s['outputs'])})")
    if "onnx" in s:
        print(s["onnx"]["summary"])
    if args.json:
        write_json(args.json, s)
    return 0
