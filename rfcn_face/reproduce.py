"""Reproduce the paper's tables with one call: Table 1, Table 2, the pyramid rows, and the benchmark files.

:func:`reproduce` is the library side of ``python -m rfcn_face reproduce`` (REPRODUCE.md):

* **Rows** come from the experiments folder, never from a list written here: Table 1 = ``experiments/table1/
  *.yaml`` whose own file does not set ``test.pyramid``, the pyramid rows = those that do (15, 16), Table 2 =
  ``experiments/table2/*.yaml``. A row's config is ``load_config(row YAML, preset, overrides)``, exactly what
  ``python -m rfcn_face train --config ROW --preset P --set ...`` builds.
* **Shared trainings.** Two rows whose configs differ only in ``test.*`` (and their name / description /
  paper numbers) are one training (:func:`training_key`): the Table 2 rows (``_BASE_: ../table1/13_final.yaml``
  + a test size) are tested on the run of row 13, trained once. The run folder is named after the first
  Table 1 row with that training (``OUT/runs/13_final``).
* **Per row**: train (``OUT/runs/<row>``; resumed when partial, skipped when it reached its schedule or
  ``max_iters``), test on WIDER FACE val (or synthfaces val) at the row's test size(s) — ``test.sizes``, or
  ``test.pyramid_sizes`` merged for the pyramid rows — through :func:`rfcn_face.inference.run_test`
  (``OUT/tests/<row>``, resumable per image), evaluate (Easy / Medium / Hard AP) and plot the PR curves with
  the paper's own published curve (ZCC, :func:`paper_published_baseline`) overlaid (``OUT/pr/<row>.png``).
  Each step is skipped when its output is complete: ``OUT/tests/<row>/reproduce.json`` records what the
  test was run on (the parameters file's size and mtime, sizes, data set, image limit) and its APs.
* **Results**, rebuilt after every row from the markers in ``OUT/tests``: ``OUT/table1.md`` / ``.json`` (Table 1
  incl. the pyramid rows) and ``OUT/table2.md`` / ``.json``: ours beside the paper's ``paper:`` block, the
  difference, the run folder and the setup; ``OUT/fig10.{png,md,json}`` (speed vs accuracy, Fig. 10) from the
  test runs that share the Table 2 training.
* **Dry run** (:func:`plan`): per row the exact ``python -m rfcn_face train / test / evaluate`` commands and a
  GPU-hour estimate (:func:`estimate_row`) from the FLOPs of the network's layer shapes
  (:mod:`symbols.flops`: a symbol is built and its shapes inferred; no weight, image or annotation is read),
  plus what is missing on this machine.
* **Benchmarks** (:func:`reproduce_benchmarks`): from one trained Final run, the WIDER test submission zip
  (``event/name.txt``, checked with :func:`rfcn_face.evaluation.submission.check_submission` before and after
  zipping), FDDB fold + ellipse files and ROC, AFW and PASCAL Faces detection files, AP and PR curves; a
  benchmark whose data is not under any given root is skipped with a note.

Estimates (:func:`estimate_row`): GPU-hours = FLOPs / (``gpu_tflops`` x 3600). Training FLOPs = 3 x the forward
FLOPs (forward + backward ~ 3 x forward; the frozen conv1 / res2 need no backward, so this is an upper bound by
~10 %) of a typical WIDER image (1024 x 768 at original size, ``train.max_size`` and ``train.multiscale_sizes``
applied) x 12,880 WIDER train images x ``train.epochs``; testing = 3,226 val images x the forward FLOPs at each
test size. ``gpu_tflops`` = 5 effective fp32 TFLOP/s: an NVIDIA Titan X (the paper's GPU, Sec. 5.3; 6.6 TFLOP/s
peak for the Maxwell card, 11 for the Pascal one) at 45-75 % of peak. Arithmetic only: data loading, the
Python target ops and NMS are not counted.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .checkpoint import CONFIG_FILE, FINAL_PARAMS, atomic_write_json, atomic_write_text, newest_checkpoint, read_state
from .evaluation.wider import SETTINGS

__all__ = ["ReproduceOptions", "BenchmarkOptions", "Row", "Estimate", "TABLES", "BENCHMARKS", "discover_rows",
           "select_rows", "training_key", "estimate_row", "plan", "format_plan", "reproduce",
           "reproduce_benchmarks", "format_benchmark_plan", "write_tables", "speed_accuracy",
           "paper_published_baseline", "convert_published_curves", "package_submission", "experiments_dir",
           "WIDER_TRAIN_IMAGES", "WIDER_VAL_IMAGES", "TYPICAL_IMAGE_HW", "FWD_BWD_FACTOR", "DEFAULT_GPU_TFLOPS",
           "GPU_NAME", "PUBLISHED_CURVES", "MARKER", "SpeedPoint", "JobFailed", "train_status", "test_status", "missing_inputs",
           "resolve_rows", "train_input_sizes"]

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("1", "2", "pyramid", "all")
GROUP_TITLES = {"1": "Table 1", "pyramid": "Table 1, pyramid rows", "2": "Table 2"}
WIDER_TRAIN_IMAGES = 12880          # WIDER FACE train (wider_face_train.mat)
WIDER_VAL_IMAGES = 3226             # WIDER FACE val (wider_face_val.mat)
TYPICAL_IMAGE_HW = (768, 1024)      # WIDER images are 1024 px wide; ~768 px high is typical (landscape 4:3)
FWD_BWD_FACTOR = 3.0                # forward + backward ~ 3 x forward FLOPs
DEFAULT_GPU_TFLOPS = 5.0            # effective fp32 TFLOP/s assumed for one NVIDIA Titan X
GPU_NAME = "NVIDIA Titan X"         # Sec. 5.3: "a single NVIDIA Titan X GPU with batch size 1"
CHECKPOINT_EVERY = 1000             # iterations between training checkpoints (an interrupted row loses less)
MARKER = "reproduce.json"
PUBLISHED_CURVES = Path(__file__).resolve().parent / "resources" / "zcc_val_pr.json"
BENCHMARKS = ("wider-val", "wider-test", "fddb", "afw", "pascal")


# ------------------------------------------------------------------------------------------------ the paper's curve
def convert_published_curves(method_dir, out_json=None, tolerance: float = 2e-4) -> dict:
    """The packaged resource from the official eval_tools' ``Val/setting_int/ZCC/wider_pr_info_ZCC_{easy,medium,
    hard}_val.mat`` (this paper's published WIDER val PR curves, ``pr_cruve`` = 1,000 (precision, recall) rows).

    Each curve is thinned by Ramer-Douglas-Peucker in the (recall, precision) plane (``tolerance``: no dropped
    point is further than that from the kept polyline; first and last point kept), rounded to 6 decimals; ``ap``
    is the VOC AP (``wider_plot.m``) of the *full* curve, ``ap_thinned`` that of the stored points. Writes
    ``out_json`` (compact JSON) when given; returns the dict."""
    from .evaluation.plots import _FILE_RE, read_pr_info
    from .evaluation.voc import voc_ap
    method_dir = Path(method_dir)
    files = sorted(f for f in method_dir.glob("*.mat") if _FILE_RE.search(f.name))
    if not files:
        raise FileNotFoundError(f"no wider_pr_info_*_{{easy,medium,hard}}_val.mat in {method_dir}")
    out = {"method": method_dir.name, "legend": "", "split": "Val", "setting_class": method_dir.parent.name,
           "source": "WIDER FACE eval_tools plot/baselines/Val/setting_int/ZCC/wider_pr_info_ZCC_*_val.mat",
           "tolerance": tolerance, "settings": {}}
    for f in files:
        s = _FILE_RE.search(f.name).group(1).lower()
        curve, legend = read_pr_info(f)
        out["legend"] = legend
        pts = curve[:, ::-1]                                    # (recall, precision)
        keep = _rdp(pts, tolerance)
        kept = np.round(curve[keep], 6)
        out["settings"][s] = {"ap": round(float(voc_ap(curve[:, 1], curve[:, 0])), 6),
                              "ap_thinned": round(float(voc_ap(kept[:, 1], kept[:, 0])), 6),
                              "points_full": int(len(curve)), "indices": [int(i) for i in keep],
                              "precision": [float(v) for v in kept[:, 0]], "recall": [float(v) for v in kept[:, 1]]}
    if out_json is not None:
        atomic_write_text(out_json, json.dumps(out, separators=(",", ":")) + "\n")
        os.chmod(out_json, 0o644)                               # a package file, readable by all
    return out


def _rdp(points: np.ndarray, eps: float) -> np.ndarray:
    """Indices kept by Ramer-Douglas-Peucker (iterative) on a polyline of (x, y) points."""
    n = len(points)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        p, d = points[a + 1:b] - points[a], points[b] - points[a]
        norm = float(np.hypot(*d))
        dist = np.hypot(p[:, 0], p[:, 1]) if norm == 0 else np.abs(d[0] * p[:, 1] - d[1] * p[:, 0]) / norm
        i = int(np.argmax(dist))
        if dist[i] > eps:
            keep[a + 1 + i] = True
            stack += [(a, a + 1 + i), (a + 1 + i, b)]
    return np.flatnonzero(keep)


def paper_published_baseline(path=None):
    """This paper's own published WIDER FACE val PR curves (ZCC in the official eval_tools, legend "Zhu et al.")
    as a :class:`rfcn_face.evaluation.plots.Baseline` for :func:`~rfcn_face.evaluation.plots.plot_wider_pr`; AP
    per setting is that of the full published curve (0.949 / 0.934 / 0.861 = the paper's Final+Pyramid row).
    Read from the packaged ``rfcn_face/resources/zcc_val_pr.json`` (provenance: REPRODUCE.md)."""
    from .evaluation.plots import Baseline
    p = Path(path) if path is not None else PUBLISHED_CURVES
    if not p.is_file():
        raise FileNotFoundError(f"published curves not found: {p} (the package resource zcc_val_pr.json)")
    d = json.loads(p.read_text())
    b = Baseline(method=d["method"], legend=f"{d['legend']} (this paper, published)")
    for s, c in d["settings"].items():
        b.precision[s] = np.asarray(c["precision"], np.float64)
        b.recall[s] = np.asarray(c["recall"], np.float64)
        b.ap[s] = float(c["ap"])
    return b


# ------------------------------------------------------------------------------------------------ rows
@dataclass
class Row:
    """One row of a table: its YAML, what the paper reports, and (after :func:`resolve_rows`) its config."""
    id: str                      # "01".."16" (Table 1), the file stem (Table 2)
    group: str                   # "1" | "pyramid" | "2"
    path: Path
    stem: str
    name: str
    label: str
    paper: dict
    cfg: object = None           # the resolved Config (preset + row + overrides)
    sizes: list = field(default_factory=list)   # the test size(s); several = merged like the pyramid
    train_stem: str = ""         # stem of the row whose training this one uses (itself unless shared)
    # "test.KEY=VALUE" for the test knobs (other than the sizes) in which the row differs from its training row
    test_overrides: list = field(default_factory=list)

    @property
    def shares_training(self) -> bool:
        return self.train_stem != self.stem

    @property
    def size_label(self) -> str:
        return " + ".join("original" if s == [0, 0] else f"{s[0]}x{s[1]}" for s in self.sizes)


def experiments_dir(path=None) -> Path:
    """The experiments folder: ``path``, else ``experiments/`` of the repository this package sits in, else of
    the working directory."""
    if path is not None:
        p = Path(path)
        if not (p / "table1").is_dir():
            raise FileNotFoundError(f"--experiments {p}: no table1/ folder of row YAMLs in it")
        return p
    for c in (ROOT / "experiments", Path.cwd() / "experiments"):
        if (c / "table1").is_dir():
            return c
    raise FileNotFoundError(f"experiments folder not found ({ROOT / 'experiments'} or ./experiments); pass "
                            "--experiments DIR")


def _label(group: str, stem: str, cfg) -> str:
    m = re.search(r"'([^']+)'", cfg.description or "")
    if m:
        return m.group(1)
    if group == "2":
        sizes = cfg.test.pyramid_sizes if cfg.test.pyramid else cfg.test.sizes
        return "max size " + " + ".join(f"{s[0]}x{s[1]}" for s in sizes)
    return cfg.name or stem


def discover_rows(experiments=None) -> List[Row]:
    """Every row of the experiments folder, Table 1 first (file order), then Table 2. A Table 1 file that sets
    ``test.pyramid`` itself is a pyramid row. Only the files are read (no preset)."""
    from .config import load_config
    from .transforms import inference_sizes
    exp = experiments_dir(experiments)
    rows = []
    for sub, in_t1 in (("table1", True), ("table2", False)):
        for p in sorted((exp / sub).glob("*.yaml")):
            cfg = load_config(p)
            group = ("pyramid" if cfg.test.pyramid else "1") if in_t1 else "2"
            m = re.match(r"^(\d+)_", p.stem)
            rid = m.group(1) if (m and in_t1) else p.stem
            paper = {s: getattr(cfg.paper, s) for s in SETTINGS}
            rows.append(Row(rid, group, p, p.stem, cfg.name, _label(group, p.stem, cfg), paper,
                            sizes=inference_sizes(cfg)))
    # Table 2 in the paper's order: by test size (smallest first), then file name
    rows.sort(key=lambda r: (r.group == "2", [x for s in r.sizes for x in s] if r.group == "2" else [], 0))
    if not rows:
        raise FileNotFoundError(f"no row YAMLs in {exp}/table1 or {exp}/table2")
    return rows


def training_key(cfg) -> str:
    """What a training depends on: the config without ``test.*`` and the identity keys (name, description,
    paper). Rows with the same key are trained once."""
    d = cfg.to_dict()
    for k in ("name", "description", "paper", "test"):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True)


def data_overrides(data=None, synthfaces: bool = False) -> List[str]:
    """``--set`` strings for ``--data ROOT`` (a synthfaces root when it holds ``synthfaces.json``) and
    ``--synthfaces``."""
    out = []
    if data is not None:
        from .datasets.synthfaces import find_synthfaces
        root = Path(data)
        if find_synthfaces(root) is not None:
            synthfaces = True
        out.append(f"data.root={root}")
    if synthfaces:
        out.insert(0, "data.dataset=synthfaces")
    return out


def resolve_rows(rows: List[Row], preset, overrides=(), pretrained=None) -> List[Row]:
    """Fill in each row's config, test sizes and shared training (in place; returns ``rows``)."""
    from .config import load_config, with_pretrained
    from .transforms import inference_sizes
    first: Dict[str, str] = {}
    for r in rows:
        cfg = with_pretrained(load_config(r.path, preset=preset, overrides=tuple(overrides)), pretrained)
        r.cfg, r.sizes = cfg, inference_sizes(cfg)
        r.train_stem = first.setdefault(training_key(cfg), r.stem)
    by_stem = {r.stem: r for r in rows}
    for r in rows:
        base = by_stem[r.train_stem].cfg.test.__dict__
        r.test_overrides = [f"test.{k}={json.dumps(v)}" for k, v in r.cfg.test.__dict__.items()
                            if k not in ("sizes", "pyramid", "pyramid_sizes") and base.get(k) != v]
    return rows


def select_rows(rows: List[Row], table: str = "all", ids=None) -> List[Row]:
    """The rows of ``table`` (1 | 2 | pyramid | all), then those named in ``ids`` (id, file stem or name; "1" =
    "01"), in folder order. An unknown name is a ValueError listing the table's rows."""
    if str(table) not in TABLES:
        raise ValueError(f"--table must be one of {', '.join(TABLES)}, got {table!r}")
    pool = [r for r in rows if table == "all" or r.group == str(table)]
    if not ids:
        return pool
    want = [t.strip() for t in (ids.split(",") if isinstance(ids, str) else ids) if str(t).strip()]

    def match(r, t):
        return t in (r.id, r.stem, r.name) or (t.isdigit() and r.id.isdigit() and int(t) == int(r.id))

    for t in want:
        if not any(match(r, t) for r in pool):
            raise ValueError(f"--rows: no row {t!r} in --table {table} (rows: {', '.join(r.id for r in pool)})")
    return [r for r in pool if any(match(r, t) for t in want)]


# ------------------------------------------------------------------------------------------------ options
@dataclass
class ReproduceOptions:
    table: str = "all"
    rows: Optional[str] = None              # "01,13" (ids, stems or names)
    out: str = "RESULTS"
    data: Optional[str] = None              # data root (data/README.md layout); default: the preset's data.root
    synthfaces: bool = False                # the embedded synthfaces set instead of WIDER FACE
    pretrained: Optional[str] = None        # ImageNet checkpoint (default: the preset's model.pretrained)
    preset: Optional[str] = "paper"
    overrides: Sequence[str] = ()           # --set KEY=VALUE (over every row)
    gpus: Optional[str] = None
    cpus: Optional[int] = None
    workers: int = 0                        # > 0: each training is a dist_sync job (python -m rfcn_face launch)
    servers: int = 1
    max_iters: int = 0                      # cap on every training (0 = its schedule)
    limit: int = 0                          # test on the first N val images only (0 = all)
    checkpoint_every: int = CHECKPOINT_EVERY
    gpu_tflops: float = DEFAULT_GPU_TFLOPS
    experiments: Optional[str] = None
    dry_run: bool = False
    progress: bool = True

    def check(self):
        if self.max_iters < 0 or self.limit < 0 or self.checkpoint_every < 0:
            raise ValueError("--max-iters, --limit and --checkpoint-every must be >= 0")
        if self.workers < 0 or self.servers < 1:
            raise ValueError(f"--workers must be >= 0 and --servers >= 1, got {self.workers} and {self.servers}")
        if not (self.gpu_tflops > 0):
            raise ValueError(f"--gpu-tflops must be > 0, got {self.gpu_tflops}")
        if self.gpus is not None and self.cpus is not None:
            raise ValueError("give --gpus or --cpus, not both")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is a file, not a folder")

    @property
    def devices(self) -> int:
        if self.gpus:
            return len([g for g in str(self.gpus).split(",") if g.strip()])
        return int(self.cpus or 1)

    def all_overrides(self) -> List[str]:
        return data_overrides(self.data, self.synthfaces) + list(self.overrides)


def _rows_for(opts: ReproduceOptions):
    all_rows = resolve_rows(discover_rows(opts.experiments), opts.preset, opts.all_overrides(), opts.pretrained)
    return all_rows, select_rows(all_rows, opts.table, opts.rows)


def _disp(p) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _size_arg(s) -> str:
    return f"{int(s[0])}x{int(s[1])}"


# ------------------------------------------------------------------------------------------------ folders / state
def run_dir_of(row: Row, out) -> Path:
    return Path(out) / "runs" / row.train_stem


def test_dir_of(row: Row, out) -> Path:
    return Path(out) / "tests" / row.stem


def pr_png_of(row: Row, out) -> Path:
    return Path(out) / "pr" / f"{row.stem}.png"


def _test_dataset(cfg) -> str:
    return "synthfaces-val" if cfg.data.dataset == "synthfaces" else "wider-val"


def train_status(run_dir, cfg, max_iters: int = 0) -> dict:
    """``{"status": done | partial | new, "iteration": n, "target": N or None}`` of a run folder (reads only
    ``state.json`` of its newest checkpoint). ``done`` = ``final.params`` written and the schedule (``train.epochs``
    x iterations per epoch, capped by ``max_iters``) reached."""
    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file():
        return {"status": "new", "iteration": 0, "target": None}
    ckpt = newest_checkpoint(run)
    if ckpt is None:
        return {"status": "partial", "iteration": 0, "target": None}
    st = read_state(ckpt)
    target = int(cfg.train.epochs) * int(st.get("iters_per_epoch", 0)) or None
    if target and max_iters > 0:
        target = min(target, int(max_iters))
    it = int(st["iteration"])
    done = (run / FINAL_PARAMS).is_file() and target is not None and it >= target
    return {"status": "done" if done else "partial", "iteration": it, "target": target,
            "schedule": int(cfg.train.epochs) * int(st.get("iters_per_epoch", 0)) or None}


def _params_fingerprint(run_dir) -> Optional[dict]:
    p = Path(run_dir) / FINAL_PARAMS
    if not p.is_file():
        return None
    st = p.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _test_setup(row: Row, run_dir, opts) -> dict:
    """What a row's test marker must match for the test to count as done."""
    return {"run": str(Path(run_dir)), "params": _params_fingerprint(run_dir), "sizes": [list(s) for s in row.sizes],
            "dataset": _test_dataset(row.cfg), "data_root": str(row.cfg.data.root), "limit": int(opts.limit),
            "test_overrides": list(row.test_overrides)}


def _read_marker(test_dir) -> Optional[dict]:
    p = Path(test_dir) / MARKER
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def test_status(row: Row, out, opts) -> dict:
    m = _read_marker(test_dir_of(row, out))
    if m is None:
        return {"status": "new", "marker": None}
    ok = m.get("setup") == _test_setup(row, run_dir_of(row, out), opts)
    return {"status": "done" if ok else "stale", "marker": m}


# ------------------------------------------------------------------------------------------------ commands
# library functions, not pytest tests
test_dir_of.__test__ = test_status.__test__ = False


def _device_args(opts) -> List[str]:
    if opts.gpus:
        return ["--gpus", str(opts.gpus)]
    if opts.cpus:
        return ["--cpus", str(opts.cpus)]
    return []


def train_args(row: Row, opts, resume: bool = False) -> List[str]:
    """``python -m rfcn_face`` arguments of the training a row uses (the training row's YAML); ``resume`` for
    a run folder that holds a partial training."""
    a = ["train", "--config", _disp(row.path)]
    if opts.preset:
        a += ["--preset", str(opts.preset)]
    for o in opts.all_overrides():
        a += ["--set", o]
    a += ["--out", _disp(run_dir_of(row, opts.out))]
    if opts.pretrained:
        a += ["--pretrained", str(opts.pretrained)]
    a += _device_args(opts)
    if opts.max_iters:
        a += ["--max-iters", str(opts.max_iters)]
    if opts.checkpoint_every:
        a += ["--checkpoint-every", str(opts.checkpoint_every)]
    return a + (["--resume"] if resume else [])


def launch_args(row: Row, opts, resume: bool = False) -> List[str]:
    return (["launch", "--workers", str(opts.workers), "--servers", str(opts.servers), "--"]
            + train_args(row, opts, resume))


def test_args(row: Row, opts) -> List[str]:
    a = ["test", "--run", _disp(run_dir_of(row, opts.out)), "--dataset", _test_dataset(row.cfg),
         "--data", str(row.cfg.data.root), "--out", _disp(test_dir_of(row, opts.out)),
         "--sizes"] + [_size_arg(s) for s in row.sizes]
    for o in row.test_overrides:
        a += ["--set", o]
    a += _device_args(opts)
    if opts.limit:
        a += ["--limit", str(opts.limit)]
    return a + ["--label", row.label]


test_args.__test__ = False


def evaluate_args(row: Row, opts) -> Optional[List[str]]:
    if row.cfg.data.dataset != "wider":
        return None
    from .datasets.wider import wider_base
    gt = wider_base(row.cfg.data.root) / "ground_truth"
    return ["evaluate", "wider", "--pred", _disp(test_dir_of(row, opts.out) / "predictions"), "--gt", str(gt),
            "--plot", _disp(pr_png_of(row, opts.out)), "--label", row.label]


def command_line(args: Sequence[str]) -> str:
    return "python -m rfcn_face " + shlex.join([str(a) for a in args])


# ------------------------------------------------------------------------------------------------ estimates
@dataclass
class Estimate:
    """GPU-hours of one row (see the module docstring for the assumptions)."""
    train_gflops: float           # forward GFLOPs of one training image (mean over the training sizes)
    train_images: int             # images the training processes
    train_gpu_hours: float        # 0 when the training is shared with an earlier row
    test_gflops: float            # forward GFLOPs of one test image (summed over the test sizes)
    test_images: int
    test_gpu_hours: float
    shared: bool = False

    @property
    def gpu_hours(self) -> float:
        return self.train_gpu_hours + self.test_gpu_hours


def _input_hw(size, hw=TYPICAL_IMAGE_HW):
    from .transforms import max_size_scale
    h0, w0 = hw
    s = max_size_scale(h0, w0, int(size[0]), int(size[1]))
    return max(1, int(round(h0 * s))), max(1, int(round(w0 * s)))


def train_input_sizes(cfg, hw=TYPICAL_IMAGE_HW) -> List[tuple]:
    """The network input sizes of a typical WIDER image in training: each ``train.multiscale_sizes`` entry (or
    the original size), then the ``train.max_size`` cap on the longer side."""
    sizes = [_input_hw(s, hw) for s in cfg.train.multiscale_sizes] or [tuple(hw)]
    cap = int(cfg.train.max_size)
    out = []
    for h, w in sizes:
        if cap > 0 and max(h, w) > cap:
            s = cap / max(h, w)
            h, w = max(1, int(round(h * s))), max(1, int(round(w * s)))
        out.append((h, w))
    return out


def gpu_hours(gflops: float, images: int, tflops: float, factor: float = 1.0) -> float:
    return float(gflops) * float(images) * factor / (float(tflops) * 1e3) / 3600.0


def estimate_row(row: Row, opts, shared: bool = False) -> Estimate:
    """The GPU-hour estimate of one row from the FLOPs of its network's layer shapes (:mod:`symbols.flops`)."""
    from symbols.flops import config_gflops
    cfg = row.cfg
    tr = [config_gflops(cfg, h, w) for h, w in train_input_sizes(cfg)]
    train_g = float(np.mean(tr))
    images = WIDER_TRAIN_IMAGES * int(cfg.train.epochs)
    if opts.max_iters:
        g = int(cfg.train.batch_images) * opts.devices * max(1, int(opts.workers))
        images = min(images, int(opts.max_iters) * g)
    test_g = float(sum(config_gflops(cfg, *_input_hw(s)) for s in row.sizes))
    n_test = int(opts.limit) if opts.limit else WIDER_VAL_IMAGES
    return Estimate(train_g, images, 0.0 if shared else gpu_hours(train_g, images, opts.gpu_tflops, FWD_BWD_FACTOR),
                    test_g, n_test, gpu_hours(test_g, n_test, opts.gpu_tflops), shared)


# ------------------------------------------------------------------------------------------------ missing inputs
def missing_inputs(cfg, train: bool = True, test: bool = True) -> List[str]:
    """What this machine lacks for a row's training / testing (file and folder checks only)."""
    from .datasets.wider import wider_base
    miss = []
    if cfg.data.dataset == "wider":
        root = Path(cfg.data.root)
        if train:
            base = wider_base(root)
            txt = base / "wider_face_split" / "wider_face_train_bbx_gt.txt"
            if not txt.is_file():
                other = (sorted(p.name for p in txt.parent.glob("wider_face_train_bbx_gt*.txt"))
                         if txt.parent.is_dir() else [])
                miss.append(f"WIDER FACE train annotations: {txt}"
                            + (f" (found {other[0]}: link or copy it to that name)" if other else ""))
            if not (base / "WIDER_train" / "images").is_dir():
                miss.append(f"WIDER FACE train images: {base / 'WIDER_train' / 'images'}/<event>/<name>.jpg")
        if test:
            base = wider_base(root)
            txt = base / "wider_face_split" / "wider_face_val_bbx_gt.txt"
            if not txt.is_file():
                miss.append(f"WIDER FACE val annotations: {txt}")
            if not (base / "WIDER_val" / "images").is_dir():
                miss.append(f"WIDER FACE val images: {base / 'WIDER_val' / 'images'}/<event>/<name>.jpg")
            gt = base / "ground_truth"
            for f in ("wider_face_val.mat", "wider_easy_val.mat", "wider_medium_val.mat", "wider_hard_val.mat"):
                if not (gt / f).is_file():
                    miss.append(f"WIDER FACE val evaluation ground truth: {gt / f}")
    if train and cfg.model.pretrained and not Path(cfg.model.pretrained).is_file():
        miss.append(f"ImageNet checkpoint (model.pretrained): {cfg.model.pretrained}")
    return miss


# ------------------------------------------------------------------------------------------------ the plan
def plan(opts: ReproduceOptions) -> dict:
    """The dry run: per selected row its commands, its state in ``opts.out``, its GPU-hour estimate; what is
    missing; totals. Reads YAMLs and run-folder metadata only (no data, no weights)."""
    opts.check()
    all_rows, rows = _rows_for(opts)
    by_stem = {r.stem: r for r in all_rows}
    trained, entries, missing = set(), [], []
    for r in rows:
        t = by_stem[r.train_stem]
        shared = r.train_stem in trained
        trained.add(r.train_stem)
        est = estimate_row(r, opts, shared=shared)
        ts = train_status(run_dir_of(t, opts.out), t.cfg, opts.max_iters)
        st = test_status(r, opts.out, opts)["status"]
        need_train, need_test = ts["status"] != "done", st != "done"
        missing += missing_inputs(r.cfg, train=need_train, test=need_test)
        entries.append({
            "id": r.id, "group": r.group, "table": GROUP_TITLES[r.group], "yaml": _disp(r.path), "label": r.label,
            "name": r.name, "paper": r.paper, "sizes": r.sizes, "train_row": t.id, "train_yaml": _disp(t.path),
            "shared_training": r.shares_training, "run": _disp(run_dir_of(r, opts.out)),
            "test_dir": _disp(test_dir_of(r, opts.out)), "train_status": ts, "test_status": st,
            "commands": {"train": command_line((launch_args if opts.workers else train_args)(
                t, opts, resume=ts["status"] == "partial")),
                         "test": command_line(test_args(r, opts)),
                         "evaluate": command_line(evaluate_args(r, opts)) if evaluate_args(r, opts) else None},
            "estimate": asdict(est) | {"gpu_hours": est.gpu_hours}})
    tot_train = sum(e["estimate"]["train_gpu_hours"] for e in entries)
    tot_test = sum(e["estimate"]["test_gpu_hours"] for e in entries)
    gpus = opts.devices * max(1, int(opts.workers)) if opts.gpus else 1
    return {"table": opts.table, "preset": opts.preset, "out": _disp(opts.out), "rows": entries,
            "trainings": len(trained), "missing": list(dict.fromkeys(missing)),
            "assumptions": {"gpu": GPU_NAME, "gpu_tflops": opts.gpu_tflops, "fwd_bwd_factor": FWD_BWD_FACTOR,
                            "image_hw": list(TYPICAL_IMAGE_HW), "train_images": WIDER_TRAIN_IMAGES,
                            "val_images": WIDER_VAL_IMAGES, "flops": "2 x MACs of every convolution / "
                            "deconvolution from the layer shapes (symbols.flops)"},
            "total": {"train_gpu_hours": tot_train, "test_gpu_hours": tot_test, "gpu_hours": tot_train + tot_test,
                      "gpus": gpus, "wall_hours": (tot_train + tot_test) / gpus}}


def _fmt_hours(h: float) -> str:
    return "0" if h == 0 else "<0.01" if h < 0.01 else f"{h:.2f}" if h < 10 else f"{h:.0f}"


def format_plan(p: dict) -> str:
    """The dry run as text (what ``reproduce --dry-run`` prints)."""
    a = p["assumptions"]
    n = len(p["rows"])
    groups = {}
    for e in p["rows"]:
        groups.setdefault(e["group"], []).append(e)
    lines = [f"reproduce --table {p['table']}: {n} row(s) ("
             + ", ".join(f"{GROUP_TITLES[g]}: {len(v)}" for g, v in groups.items())
             + f"), {p['trainings']} training(s); preset {p['preset']}; results in {p['out']}/",
             f"estimate: GPU-hours = FLOPs / ({a['gpu_tflops']:g} TFLOP/s effective, one {a['gpu']}); training = "
             f"{a['fwd_bwd_factor']:g} x forward FLOPs (forward + backward) of a {a['image_hw'][1]}x{a['image_hw'][0]} "
             f"WIDER image x {a['train_images']:,} train images x train.epochs; test = forward FLOPs at the test "
             f"size(s) x {a['val_images']:,} val images; FLOPs = {a['flops']}"]
    if p["missing"]:
        lines.append("missing on this machine (needed by the commands below; the plan is printed anyway):")
        lines += [f"  - {m}" for m in p["missing"]]
    else:
        lines.append("inputs: everything the pending steps need is present")
    for g, entries in groups.items():
        lines.append("")
        title = GROUP_TITLES[g]
        if g == "2":
            trs = sorted({e["train_row"] for e in entries})
            title += f" (the training of row {', '.join(trs)}, trained once, tested at {len(entries)} size(s))"
        lines.append(f"== {title} ==")
        for e in entries:
            pp = e["paper"]
            paper = " / ".join(f"{s} {pp[s]:.3f}" for s in SETTINGS if pp.get(s) is not None) or "—"
            ts = e["train_status"]
            tstate = {"done": f"trained ({ts['iteration']} it)", "new": "not trained",
                      "partial": f"partial ({ts['iteration']}/{ts['target'] or '?'} it): resumed"}[ts["status"]]
            lines.append(f"[{e['id']}] {e['label']} — {e['yaml']}")
            size = " + ".join("0x0 (original)" if s == [0, 0] else _size_arg(s) for s in e["sizes"])
            lines.append(f"     paper AP: {paper}; test size: {size}; "
                         f"state: {tstate}, {'tested' if e['test_status'] == 'done' else 'not tested'}")
            est = e["estimate"]
            if est["shared"] or e["shared_training"]:
                lines.append(f"     train: shared with row [{e['train_row']}] ({e['run']}), trained once"
                             + ("" if est["shared"] else ":"))
                if not est["shared"]:
                    lines.append(f"       {e['commands']['train']}")
            else:
                lines.append(f"     train: {e['commands']['train']}")
            lines.append(f"     test:  {e['commands']['test']}")
            if e["commands"]["evaluate"]:
                lines.append(f"     eval:  {e['commands']['evaluate']}   (test scores the folder too)")
            tr = ("0 (shared)" if est["shared"] else
                  f"{est['train_gflops']:.0f} GFLOPs x {FWD_BWD_FACTOR:g} x {est['train_images']:,} images = "
                  f"{_fmt_hours(est['train_gpu_hours'])}")
            lines.append(f"     GPU-hours: train {tr}; test {est['test_gflops']:.0f} GFLOPs x {est['test_images']:,}"
                         f" images = {_fmt_hours(est['test_gpu_hours'])}; row {_fmt_hours(est['gpu_hours'])}")
    t = p["total"]
    lines += ["", f"total: {_fmt_hours(t['gpu_hours'])} GPU-hours ({_fmt_hours(t['train_gpu_hours'])} training, "
                  f"{_fmt_hours(t['test_gpu_hours'])} testing) = {t['gpu_hours'] / 24:.1f} GPU-days; "
                  f"{_fmt_hours(t['wall_hours'])} h wall on {t['gpus']} GPU(s) at ideal scaling"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the run
class JobFailed(RuntimeError):
    """A training job under ``launch`` (``--workers``) exited non-zero; ``code`` is its exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = int(code) or 1


def _tee(log, path: Path):
    def f(msg: str):
        log(msg)
        with open(path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
    return f


def _contexts(opts):
    from .train import parse_contexts
    return parse_contexts(opts.gpus, opts.cpus)


def ensure_trained(row: Row, opts, log) -> dict:
    """Train ``row`` (the training row) unless its run reached its schedule; resumes a partial run."""
    run = run_dir_of(row, opts.out)
    st = train_status(run, row.cfg, opts.max_iters)
    if st["status"] == "done":
        log(f"[{row.id}] trained: {run} ({st['iteration']} iterations) — skipped")
        return st
    resume = st["status"] == "partial"
    log(f"[{row.id}] {'resuming' if resume else 'training'} {run}"
        + (f" from iteration {st['iteration']}" if resume else ""))
    if opts.workers:
        from .launch import launch
        extra = [] if opts.progress else ["--no-progress"]
        rc = launch(train_args(row, opts, resume) + extra, workers=opts.workers, servers=opts.servers)
        if rc != 0:
            raise JobFailed(f"[{row.id}] the training job failed (exit {rc}): "
                            f"{command_line(launch_args(row, opts, resume) + extra)}", rc)
    else:
        from .train import TrainOptions, train
        train(row.cfg, TrainOptions(out=str(run), contexts=_contexts(opts), resume=resume, max_iters=opts.max_iters,
                                    checkpoint_every=opts.checkpoint_every, progress=opts.progress))
    st = train_status(run, row.cfg, opts.max_iters)
    if st["status"] != "done":
        raise RuntimeError(f"[{row.id}] training stopped at iteration {st['iteration']} of {st['target']}: {run}")
    return st


def ensure_tested(row: Row, opts, log, train_state: dict) -> dict:
    """Test ``row`` on WIDER val (synthfaces val) at its test size(s) unless its marker matches; returns the
    marker (setup, APs, ms per image)."""
    from . import inference
    from .detector import FaceDetector
    run, tdir = run_dir_of(row, opts.out), test_dir_of(row, opts.out)
    st = test_status(row, opts.out, opts)
    if st["status"] == "done":
        m = st["marker"]
        log(f"[{row.id}] tested: {tdir} (hard AP {_f(m['ap'].get('hard'))}) — skipped")
        return m
    setup = _test_setup(row, run, opts)
    log(f"[{row.id}] testing {run} on {setup['dataset']} at {row.size_label} -> {tdir}")
    det = FaceDetector.from_run(run, ctx=_contexts(opts), overrides=tuple(row.test_overrides))
    det.timings.reset()
    count = [0]
    prev = st["marker"] or {}
    t0 = time.perf_counter()
    summary = inference.run_test(det, inference.TestOptions(
        dataset=setup["dataset"], out=str(tdir), data_root=str(row.cfg.data.root), sizes=row.sizes,
        limit=opts.limit, label=row.label, progress=opts.progress),
        log=lambda s: None, on_image=lambda i: count.__setitem__(0, count[0] + 1))
    wall = time.perf_counter() - t0
    if summary["unreadable"]:
        raise ValueError(f"[{row.id}] {len(summary['unreadable'])} val image(s) could not be read, e.g. "
                         f"{summary['unreadable'][0]['image']}: {summary['unreadable'][0]['reason']}")
    t = det.timings
    ms = 1000.0 * (t.preprocess + t.forward + t.proposals + t.post) / count[0] if count[0] else prev.get("ms_per_image")
    ev = summary["evaluation"]
    ap = {s: (float(ev[s]) if ev.get(s) is not None else None) for s in SETTINGS}
    from symbols.flops import config_gflops
    marker = {"row": row.stem, "id": row.id, "group": row.group, "yaml": _disp(row.path), "label": row.label,
              "setup": setup, "ap": ap, "paper": row.paper, "images": summary["images"],
              "ms_per_image": ms, "ms_images": count[0] or prev.get("ms_images", 0), "wall_seconds": wall,
              "gflops_per_image": float(sum(config_gflops(row.cfg, *_input_hw(s)) for s in row.sizes)),
              "iterations": train_state.get("iteration"), "schedule": train_state.get("schedule"),
              "preset": str(opts.preset), "overrides": list(opts.all_overrides()),
              "submission_problems": len(ev.get("submission_problems", [])), "notes": summary["notes"],
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(tdir / MARKER, marker)
    log(f"[{row.id}] AP easy {_f(ap['easy'])}  medium {_f(ap['medium'])}  hard {_f(ap['hard'])}"
        + (f"  ({ms:.0f} ms/image here)" if ms else ""))
    return marker


def ensure_plotted(row: Row, opts, marker: dict, log) -> Optional[Path]:
    """``OUT/pr/<row>.png``: the row's PR curves with the paper's published curve (ZCC) overlaid."""
    from .evaluation.plots import plot_wider_pr
    from .evaluation.wider import WiderResult
    from .inference import WIDER_PR_TITLES
    png, tdir = pr_png_of(row, opts.out), test_dir_of(row, opts.out)
    ev_json = tdir / "wider_eval.json"
    if not ev_json.is_file():
        log(f"[{row.id}] no evaluation (no ground truth): no PR plot")
        return None
    if png.is_file() and png.stat().st_mtime_ns >= (tdir / MARKER).stat().st_mtime_ns:
        return png
    r = WiderResult.from_json(json.loads(ev_json.read_text()))
    pr = {s: (r.precision[s], r.recall[s]) for s in r.ap}
    title = WIDER_PR_TITLES[marker["setup"]["dataset"]]
    legend = f"ours: {row.label}" + ("" if row.group == "2" else f" @ {row.size_label}")
    plot_wider_pr(png, pr, legend, [paper_published_baseline()], title=title)
    return png


def _f(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _d(ours, paper) -> str:
    return "—" if ours is None or paper is None else f"{ours - paper:+.3f}"


def _setup_note(m: dict) -> str:
    s = m["setup"]
    parts = []
    if m.get("preset") != "paper":
        parts.append(f"preset {m.get('preset')}")
    if s["dataset"] != "wider-val":
        parts.append(s["dataset"])
    if m.get("schedule") and m.get("iterations") is not None and m["iterations"] < m["schedule"]:
        parts.append(f"{m['iterations']}/{m['schedule']} it")
    elif m.get("iterations") is not None and m.get("preset") != "paper":
        parts.append(f"{m['iterations']} it")
    if s["limit"]:
        parts.append(f"first {s['limit']} images")
    if m.get("overrides"):
        parts.append("--set " + " ".join(o for o in m["overrides"]))
    return "paper setup" if not parts else "; ".join(parts)


def write_tables(all_rows: List[Row], out, which=("1", "2")) -> dict:
    """``OUT/table1.md`` / ``table1.json`` (Table 1 incl. the pyramid rows) and ``OUT/table2.md`` / ``.json``
    from the markers in ``OUT/tests``; rows without results are listed as not run. Returns {table: json}."""
    out = Path(out)
    written = {}
    for t in which:
        groups = ("1", "pyramid") if t == "1" else ("2",)
        rows = [r for r in all_rows if r.group in groups]
        if not rows:
            continue
        entries = []
        for r in rows:
            m = _read_marker(test_dir_of(r, out))
            ours = m["ap"] if m else None
            entries.append({"id": r.id, "row": r.label, "yaml": _disp(r.path), "group": r.group,
                            "sizes": r.sizes, "paper": r.paper, "ours": ours,
                            "diff": {s: (None if not ours or ours.get(s) is None or r.paper.get(s) is None
                                         else ours[s] - r.paper[s]) for s in SETTINGS},
                            "run": _disp(run_dir_of(r, out)) if m else None,
                            "test": _disp(test_dir_of(r, out)) if m else None,
                            "pr_plot": _disp(pr_png_of(r, out)) if m and pr_png_of(r, out).is_file() else None,
                            "setup": _setup_note(m) if m else None,
                            "ms_per_image": m.get("ms_per_image") if m else None})
        doc = {"table": t, "rows": entries}
        atomic_write_json(out / f"table{t}.json", doc)
        atomic_write_text(out / f"table{t}.md", _table_md(t, entries))
        written[t] = doc
    return written


def _table_md(t: str, entries: list) -> str:
    done = [e for e in entries if e["ours"]]
    lines = [f"# Table {t} — WIDER FACE val AP: ours beside the paper", ""]
    if t == "1":
        lines += ["Ablation of Zhu et al., CVPR 2018, Table 1 (single-scale rows, then the pyramid rows). "
                  "Δ = ours − paper."]
    else:
        lines += ["Zhu et al., CVPR 2018, Table 2: the Final model tested at four maximum sizes (shorter x longer "
                  "side); the paper reports Hard AP only. Δ = ours − paper."]
    setups = sorted({e["setup"] for e in done})
    if any(s != "paper setup" for s in setups):
        lines += ["", "**Not the paper's setup for the rows marked in the last column: the numbers are not "
                      "comparable in value.**"]
    lines += ["", f"{len(done)} of {len(entries)} rows have results.", ""]
    if t == "1":
        lines += ["| # | row | ours easy | ours medium | ours hard | paper easy | paper medium | paper hard "
                  "| Δ easy | Δ medium | Δ hard | run | setup |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    else:
        lines += ["| max size | ours hard | paper hard | Δ hard | ours easy | ours medium | run | setup |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        o, p = e["ours"] or {}, e["paper"]
        run = f"`{e['run']}`" if e["run"] else "not run"
        setup = e["setup"] or ""
        if t == "1":
            lines.append(f"| {e['id']} | {e['row']} | {_f(o.get('easy'))} | {_f(o.get('medium'))} "
                         f"| {_f(o.get('hard'))} "
                         f"| {_f(p.get('easy'))} | {_f(p.get('medium'))} | {_f(p.get('hard'))} "
                         f"| {_d(o.get('easy'), p.get('easy'))} | {_d(o.get('medium'), p.get('medium'))} "
                         f"| {_d(o.get('hard'), p.get('hard'))} | {run} | {setup} |")
        else:
            size = " + ".join(_size_arg(s) for s in e["sizes"])
            lines.append(f"| {size} | {_f(o.get('hard'))} | {_f(p.get('hard'))} | {_d(o.get('hard'), p.get('hard'))} "
                         f"| {_f(o.get('easy'))} | {_f(o.get('medium'))} | {run} | {setup} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ Fig. 10
@dataclass
class SpeedPoint:
    label: str                 # the test size(s)
    hard_ap: float
    ms_per_image: Optional[float]   # measured on the machine that ran the test
    gflops: float              # forward GFLOPs of a typical 1024 x 768 WIDER image at that size
    gpu_ms: float              # gflops / gpu_tflops: the FLOP-based GPU estimate


def speed_accuracy(points: Sequence[SpeedPoint], out_dir, gpu_tflops: float = DEFAULT_GPU_TFLOPS,
                   title: str = "Speed vs accuracy (Fig. 10)", stem: str = "fig10") -> dict:
    """Fig. 10: hard AP against ms/image measured here (bottom axis, circles) and against the FLOP-based GPU
    estimate (top axis, squares), ``OUT_DIR/fig10.png``, plus the table ``fig10.md`` / ``fig10.json``. Points
    are sorted by GFLOPs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    pts = sorted(points, key=lambda p: p.gflops)
    if not pts:
        raise ValueError("speed_accuracy: no test run to plot")
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    meas = [p for p in pts if p.ms_per_image]
    if meas:
        ax.plot([p.ms_per_image for p in meas], [p.hard_ap for p in meas], "o-", color="C0", lw=1.5,
                label="measured here (bottom axis)")
        for p in meas:
            ax.annotate(p.label, (p.ms_per_image, p.hard_ap), textcoords="offset points", xytext=(5, -10), fontsize=7,
                        color="C0")
    ax.set_xlabel("ms / image, measured on the machine that ran the tests")
    ax.set_ylabel("Hard AP")
    ax.grid(alpha=0.3)
    top = ax.twiny()
    top.plot([p.gpu_ms for p in pts], [p.hard_ap for p in pts], "s--", color="C3", lw=1.2,
             label=f"FLOP-based estimate, {GPU_NAME} at {gpu_tflops:g} TFLOP/s (top axis)")
    for p in pts:
        top.annotate(p.label, (p.gpu_ms, p.hard_ap), textcoords="offset points", xytext=(5, 5), fontsize=7, color="C3")
    top.set_xlabel(f"estimated ms / image on one {GPU_NAME} (GFLOPs / {gpu_tflops:g} TFLOP/s)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = top.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=7)
    ax.set_title(title, fontsize=9, pad=28)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{stem}.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    doc = {"gpu": GPU_NAME, "gpu_tflops": gpu_tflops, "image_hw": list(TYPICAL_IMAGE_HW),
           "points": [asdict(p) for p in pts], "plot": str(png)}
    lines = [f"# {title}", "",
             f"Hard AP against the time per image measured on the machine that ran the tests, and a FLOP-based "
             f"estimate for one {GPU_NAME} (the paper's GPU, batch 1): forward GFLOPs of a "
             f"{TYPICAL_IMAGE_HW[1]}x{TYPICAL_IMAGE_HW[0]} WIDER image at that size / {gpu_tflops:g} TFLOP/s "
             "effective (convolution arithmetic only).", "",
             "| test size | hard AP | ms / image (measured) | GFLOPs / image | est. ms on GPU |",
             "| --- | --- | --- | --- | --- |"]
    for p in pts:
        lines.append(f"| {p.label} | {p.hard_ap:.3f} | {'—' if not p.ms_per_image else f'{p.ms_per_image:.0f}'} "
                     f"| {p.gflops:.0f} | {p.gpu_ms:.0f} |")
    atomic_write_text(out_dir / f"{stem}.md", "\n".join(lines) + "\n")
    atomic_write_json(out_dir / f"{stem}.json", doc)
    return doc


def _fig10(all_rows: List[Row], out, gpu_tflops: float) -> Optional[dict]:
    """Fig. 10 from the tests that share the Table 2 rows' training (Table 2 sizes + the Final row itself)."""
    trains = {r.train_stem for r in all_rows if r.group == "2"}
    if not trains:
        return None
    pts, datasets = [], set()
    for r in all_rows:
        if r.train_stem not in trains:
            continue
        m = _read_marker(test_dir_of(r, out))
        if not m or m["ap"].get("hard") is None:
            continue
        g = float(m["gflops_per_image"])
        pts.append(SpeedPoint(r.size_label, float(m["ap"]["hard"]), m.get("ms_per_image"), g, g / gpu_tflops))
        datasets.add(m["setup"]["dataset"])
    if not pts:
        return None
    data = "WIDER FACE val" if datasets == {"wider-val"} else " / ".join(sorted(datasets))
    return speed_accuracy(pts, out, gpu_tflops, title=f"Speed vs accuracy of the Final model (Fig. 10), {data}, Hard")


def reproduce(opts: ReproduceOptions, log=print) -> dict:
    """Run (or continue) the reproduction of ``opts.table``; returns the summary (also ``OUT/summary.json``).
    With ``opts.dry_run`` returns :func:`plan` without running anything."""
    if opts.dry_run:
        return plan(opts)
    opts.check()
    all_rows, rows = _rows_for(opts)
    by_stem = {r.stem: r for r in all_rows}
    out = Path(opts.out)
    missing = []
    for r in rows:
        t = by_stem[r.train_stem]
        need_train = train_status(run_dir_of(t, out), t.cfg, opts.max_iters)["status"] != "done"
        missing += missing_inputs(r.cfg, train=need_train, test=test_status(r, out, opts)["status"] != "done")
    missing = list(dict.fromkeys(missing))
    if missing:
        raise FileNotFoundError("reproduce needs: " + "; ".join(missing) + " (REPRODUCE.md, data/README.md)")
    out.mkdir(parents=True, exist_ok=True)
    log = _tee(log, out / "reproduce.log")
    log(f"reproduce --table {opts.table}: {len(rows)} row(s), preset {opts.preset}, results in {out}/")
    t_start = time.time()
    done = []
    for k, r in enumerate(rows, 1):
        log(f"[{r.id}] ({k}/{len(rows)}) {GROUP_TITLES[r.group]}: {r.label} — {_disp(r.path)}")
        ts = ensure_trained(by_stem[r.train_stem], opts, log)
        m = ensure_tested(r, opts, log, ts)
        ensure_plotted(r, opts, m, log)
        write_tables(all_rows, out, which=tuple(sorted({"2" if x.group == "2" else "1" for x in rows})))
        done.append({"id": r.id, "ap": m["ap"], "paper": r.paper, "run": _disp(run_dir_of(r, out))})
        log(f"[{r.id}] done")
    fig = _fig10(all_rows, out, opts.gpu_tflops)
    summary = {"table": opts.table, "rows": done, "tables": [str(p) for p in sorted(out.glob("table*.md"))],
               "fig10": fig["plot"] if fig else None, "seconds": round(time.time() - t_start, 1)}
    atomic_write_json(out / "summary.json", summary)
    log(f"wrote {', '.join(summary['tables'])}" + (f" and {summary['fig10']}" if fig else ""))
    return summary


# ------------------------------------------------------------------------------------------------ benchmarks
@dataclass
class BenchmarkOptions:
    run: str
    data: Sequence[str] = ("data",)          # data roots (data/README.md layout), searched in order per benchmark
    out: str = "RESULTS"
    sizes: Optional[list] = None             # [[S, L], ...]; default: original size (WIDER: the run's test sizes)
    gpus: Optional[str] = None
    cpus: Optional[int] = None
    limit: int = 0
    dry_run: bool = False
    progress: bool = True


def _benchmark_needs(name: str, root: Path) -> List[Path]:
    """The files / folders a benchmark needs under a data root (data/README.md)."""
    from .datasets.wider import wider_base
    w = wider_base(root)
    if name == "wider-val":
        return [w / "wider_face_split" / "wider_face_val_bbx_gt.txt", w / "WIDER_val" / "images",
                w / "ground_truth" / "wider_face_val.mat"]
    if name == "wider-test":
        return [w / "wider_face_split" / "wider_face_test_filelist.txt", w / "WIDER_test" / "images"]
    if name == "fddb":
        return [root / "fddb" / "FDDB-folds", root / "fddb" / "originalPics"]
    from .inference import FACE_EVAL_FILES
    mats = [root / name / f for f in FACE_EVAL_FILES[name]]
    return [next((m for m in mats if m.is_file()), mats[0]), root / name / "images"]


def find_benchmark_root(name: str, roots: Sequence) -> tuple:
    """``(root, None)`` of the first data root holding everything ``name`` needs, else ``(None, note)``."""
    notes = []
    for r in roots:
        miss = [p for p in _benchmark_needs(name, Path(r)) if not p.exists()]
        if not miss:
            return Path(r), None
        notes.append(", ".join(str(m) for m in miss))
    return None, f"skipped: not found under {' or '.join(map(str, roots))} (missing {'; '.join(notes)})"


def package_submission(pred_dir, keys, zip_path) -> List[str]:
    """Zip a WIDER submission folder as the evaluation server expects (members ``event/name.txt``), after
    checking it with :func:`~rfcn_face.evaluation.submission.check_submission`, then unzip it into a
    temporary folder and check that again. Returns every problem (empty = ready to upload)."""
    import tempfile
    import zipfile
    from .evaluation.submission import check_submission
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    problems = check_submission(pred_dir, keys)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for e, n in keys:
            f = pred_dir / e / f"{n}.txt"
            if f.is_file():
                z.write(f, f"{e}/{n}.txt")
    os.replace(tmp, zip_path)
    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(d)
        problems += [f"in {zip_path.name}: {p}" for p in check_submission(d, keys)]
    return problems


def _bench_sizes(name: str, opts: BenchmarkOptions, cfg) -> list:
    from .transforms import inference_sizes
    if opts.sizes:
        return [list(s) for s in opts.sizes]
    return inference_sizes(cfg) if name.startswith("wider") else [[0, 0]]   # Sec. 5.2: original size


def _bench_test_args(name, root, sizes, opts) -> List[str]:
    a = ["test", "--run", _disp(opts.run), "--dataset", name, "--data", str(root),
         "--out", _disp(Path(opts.out) / "benchmarks" / name), "--sizes"] + [_size_arg(s) for s in sizes]
    if name == "fddb":
        a.append("--ellipses")
    return a + _device_args(opts) + (["--limit", str(opts.limit)] if opts.limit else [])


def benchmark_plan(opts: BenchmarkOptions) -> dict:
    """The test command of every benchmark for the trained run ``opts.run`` (its files must exist: run_files)."""
    from .config import load_config
    from .detector import run_files
    cfg = load_config(run_files(opts.run)[0])
    entries = []
    for name in BENCHMARKS:
        root, note = find_benchmark_root(name, opts.data)
        entries.append({"benchmark": name, "root": str(root) if root else None, "note": note,
                        "command": command_line(_bench_test_args(name, root or opts.data[0],
                                                                 _bench_sizes(name, opts, cfg), opts))})
    return {"run": str(opts.run), "benchmarks": entries}


def format_benchmark_plan(p: dict) -> str:
    lines = [f"reproduce --benchmarks from {p['run']}"]
    for e in p["benchmarks"]:
        lines.append(f"[{e['benchmark']}] " + (f"data {e['root']}" if e["root"] else e["note"]))
        lines.append(f"     {e['command']}")
    return "\n".join(lines)


def reproduce_benchmarks(opts: BenchmarkOptions, log=print) -> dict:
    """The benchmark files of one trained run (see the module docstring): ``OUT/benchmarks/<benchmark>/`` (the
    ``test`` outputs), ``OUT/benchmarks/wider_test_submission.zip``, ``OUT/benchmarks/wider_val_pr.png`` (ZCC
    overlaid), ``OUT/benchmarks.md`` / ``.json``. A benchmark absent from every data root is skipped with a note."""
    if opts.dry_run:
        return benchmark_plan(opts)          # the plan of one trained run: it must exist
    from . import inference
    from .config import load_config
    from .detector import FaceDetector, run_files
    if opts.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {opts.limit}")
    cfg_path, _ = run_files(opts.run)
    cfg = load_config(cfg_path)
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file, not a folder")
    bdir = out / "benchmarks"
    bdir.mkdir(parents=True, exist_ok=True)
    log = _tee(log, out / "reproduce.log")
    det = None
    results = []
    for name in BENCHMARKS:
        root, note = find_benchmark_root(name, opts.data)
        entry = {"benchmark": name, "root": str(root) if root else None, "status": "skipped", "note": note}
        results.append(entry)
        if root is None:
            log(f"[{name}] {note}")
            continue
        sizes = _bench_sizes(name, opts, cfg)
        tdir = bdir / name
        setup = {"run": str(Path(opts.run)), "params": _params_fingerprint(opts.run), "sizes": sizes,
                 "root": str(root), "limit": int(opts.limit)}
        m = _read_marker(tdir)
        if m is not None and m.get("setup") == setup:
            log(f"[{name}] done: {tdir} — skipped")
            s = m["summary"]
        else:
            if det is None:
                det = FaceDetector.from_run(opts.run, ctx=_contexts(opts))
            log(f"[{name}] testing at {' + '.join(_size_arg(x) for x in sizes)} -> {tdir}")
            s = inference.run_test(det, inference.TestOptions(
                dataset=name, out=str(tdir), data_root=str(root), sizes=sizes, ellipses=name == "fddb",
                limit=opts.limit, label="ours (Final)", progress=opts.progress), log=lambda x: None)
            atomic_write_json(tdir / MARKER, {"setup": setup, "summary": s}, default=str)
        entry.update(status="done", note=None, out=_disp(tdir), files=s["files"], evaluation=s["evaluation"],
                     notes=s["notes"], unreadable=len(s["unreadable"]))
        if s["unreadable"]:
            log(f"[{name}] warning: {len(s['unreadable'])} image(s) could not be read (no detections), e.g. "
                f"{s['unreadable'][0]['image']}")
        ev = s["evaluation"]
        if name == "wider-test":
            keys = [(r.event, r.name) for r in inference.load_test_set(name, root, opts.limit).records]
            z = bdir / "wider_test_submission.zip"
            problems = package_submission(tdir / "predictions", keys, z)
            entry.update(zip=_disp(z), submission_problems=problems[:50], verified=not problems)
            ok = "verified with check_submission (ready to upload)"
            log(f"[{name}] {z}: {len(keys)} files, " + (ok if not problems else
                                                        f"{len(problems)} problem(s): {problems[0]}"))
        elif name == "wider-val" and (tdir / "wider_eval.json").is_file():
            from .evaluation.plots import plot_wider_pr
            from .evaluation.wider import WiderResult
            r = WiderResult.from_json(json.loads((tdir / "wider_eval.json").read_text()))
            pr = {k: (r.precision[k], r.recall[k]) for k in r.ap}
            entry["pr_plot"] = str(plot_wider_pr(bdir / "wider_val_pr.png", pr, "ours (Final)",
                                                 [paper_published_baseline()]))
            log(f"[{name}] AP easy {_f(ev.get('easy'))}  medium {_f(ev.get('medium'))}  hard {_f(ev.get('hard'))}")
        elif name == "fddb":
            for kind in ("rect", "ellipse"):
                if kind in ev:
                    log(f"[{name}] {kind}: TPR at 1000 FP discrete {ev[kind]['tpr_disc_1000fp']:.4f}, continuous "
                        f"{ev[kind]['tpr_cont_1000fp']:.4f}")
        elif "ap" in ev:
            log(f"[{name}] AP {ev['ap']:.4f}")
    doc = {"run": str(opts.run), "benchmarks": results}
    atomic_write_json(out / "benchmarks.json", doc, default=str)
    atomic_write_text(out / "benchmarks.md", _benchmarks_md(doc))
    log(f"wrote {out / 'benchmarks.md'}")
    return doc


def _benchmarks_md(doc: dict) -> str:
    lines = [f"# Benchmarks of `{doc['run']}`", "",
             "Sec. 5.2 protocols: AFW, PASCAL Faces and FDDB at original size; WIDER FACE at the run's test size. "
             "The only published curve the project ships is this paper's own WIDER val curve (ZCC, overlaid on "
             "the WIDER val plot); FDDB / AFW / PASCAL results are compared against nothing here.", "",
             "| benchmark | status | result | files |", "| --- | --- | --- | --- |"]
    for e in doc["benchmarks"]:
        if e["status"] != "done":
            lines.append(f"| {e['benchmark']} | skipped | {e['note']} | |")
            continue
        ev = e.get("evaluation") or {}
        if e["benchmark"] == "wider-test":
            res = "submission zip " + ("verified (check_submission)" if e.get("verified") else
                                       f"{len(e.get('submission_problems', []))} problem(s)")
            files = f"`{e.get('zip')}`"
        elif e["benchmark"] == "wider-val":
            res = " / ".join(f"{s} {_f(ev.get(s))}" for s in SETTINGS)
            files = f"`{e['out']}/predictions`, `{e.get('pr_plot', '')}`"
        elif e["benchmark"] == "fddb":
            res = "; ".join(f"{k}: TPR@1000FP disc {ev[k]['tpr_disc_1000fp']:.4f} cont {ev[k]['tpr_cont_1000fp']:.4f}"
                            for k in ("rect", "ellipse") if k in ev) or "not evaluated"
            files = f"`{e['out']}/fddb/` (fold-XX-out.txt, ellipses/, *ROC.txt), `{ev.get('plot', '')}`"
        else:
            res = f"AP {_f(ev.get('ap'), 4)}" if "ap" in ev else "not evaluated"
            files = f"`{e['out']}/{e['benchmark']}_dets.txt`, `{ev.get('plot', '')}`"
        note = f" (unreadable images: {e['unreadable']})" if e.get("unreadable") else ""
        lines.append(f"| {e['benchmark']} | done{note} | {res} | {files} |")
    return "\n".join(lines) + "\n"
