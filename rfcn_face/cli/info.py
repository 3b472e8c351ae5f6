"""``python -m rfcn_face info``: what network a config builds (architecture, strides, anchors, parameters), the
data set it reads and the pixel normalisation its checkpoint needs."""
from __future__ import annotations

from . import write_json
from .common import add_config_arguments, config_from_args

HELP = ("model summary of a config: architecture, backbone depth, RPN stride, anchors, parameter counts, "
        "data set, pixel normalisation")


def add_arguments(p):
    add_config_arguments(p)
    p.add_argument("--size", default="600x1000", help="image size HxW used for the anchor count (default 600x1000)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the summary as JSON to OUT")


def parse_size(text: str) -> tuple[int, int]:
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--size must look like HxW with positive integers (e.g. 600x1000), got {text!r}")
    return int(parts[0]), int(parts[1])


def summarize(cfg, height: int, width: int) -> dict:
    """The summary dict; the RPN map size comes from the graph's shape inference, not from a formula. Resolves
    the config's pixel normalisation (probing ``model.pretrained``) first, so a missing checkpoint fails fast."""
    from ..anchors import format_shift_spec
    from ..config import resolve_normalisation
    norm = resolve_normalisation(cfg)

    import mxnet as mx

    from symbols.rfcn import build_detector, count_params, new_layer_params
    net = build_detector(cfg)
    rpn_cls = net(mx.sym.var("data"))[0]
    _, (shape,), _ = rpn_cls.infer_shape(data=(1, 3, height, width))
    anchors = cfg.anchor_set()
    a = anchors.num_per_location
    fh, fw = shape[2], shape[3]
    return {
        "name": cfg.name,
        "arch": cfg.model.arch,
        "depth": cfg.model.depth,
        "rpn_stride": net.stride,
        "head_stride": net.head.stride,
        "anchors_per_location": a,
        "shifted": format_shift_spec(anchors.shifts),
        "image_size": [height, width],
        "feature_size": [fh, fw],
        "num_anchors": int(fh * fw * a),
        "params_total": count_params(net),
        "params_new": new_layer_params(net),
        "dataset": cfg.data.dataset,
        "data_root": cfg.data.root,
        "pretrained": cfg.model.pretrained,
        "normalisation": norm.to_dict(),
    }


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def format_summary(s: dict) -> str:
    n = s["normalisation"]
    scale = "1/255" if abs(n["scale"] - 1 / 255) < 1e-12 else f"{n['scale']:g}"
    rows = [
        ("config", s["name"]),
        ("architecture", s["arch"]),
        ("backbone", f"ResNet-{s['depth']} v1"),
        ("RPN feature stride", s["rpn_stride"]),
        ("R-FCN head stride", s["head_stride"]),
        ("anchors per location",
         f"{s['anchors_per_location']}" + (f" (shifted: {s['shifted']})" if s["shifted"] else "")),
        ("image size HxW", "x".join(map(str, s["image_size"]))),
        ("RPN map HxW", "x".join(map(str, s["feature_size"]))),
        ("anchors at that size", f"{s['num_anchors']:,}"),
        ("parameters total", f"{s['params_total']:,}"),
        ("parameters in new layers", f"{s['params_new']:,} (RPN, R-FCN head, BU/BUS layers)"),
        ("data set", f"{s['dataset']} (root {s['data_root']})"),
        ("pretrained", s["pretrained"] or "none (random init)"),
        ("pixel normalisation", f"{n['kind']}: (x * {scale} - mean {_fmt(n['mean'])}) / std {_fmt(n['std'])}"),
        ("normalisation source", n["source"]),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def run(args) -> int:
    height, width = parse_size(args.size)
    cfg = config_from_args(args)
    s = summarize(cfg, height, width)
    print(format_summary(s))
    if args.json:
        write_json(args.json, s, indent=2)
    return 0
