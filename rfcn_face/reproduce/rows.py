"""The rows of the tables: discovered from the experiments folder (never a list written here), selected by
``--table`` / ``--rows``, resolved under the preset and ``--set`` overrides, grouped into shared trainings; and
the options of ``reproduce``."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..evaluation.wider import SETTINGS
from .common import CHECKPOINT_EVERY, ROOT
from .estimate import DEFAULT_GPU_TFLOPS

__all__ = ["TABLES", "GROUP_TITLES", "Row", "experiments_dir", "discover_rows", "training_key", "data_overrides",
           "resolve_rows", "select_rows", "ReproduceOptions", "rows_for"]

TABLES = ("1", "2", "pyramid", "all")
GROUP_TITLES = {"1": "Table 1", "pyramid": "Table 1, pyramid rows", "2": "Table 2"}


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
    from ..config import load_config
    from ..transforms import inference_sizes
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
        from ..datasets.synthfaces import find_synthfaces
        root = Path(data)
        if find_synthfaces(root) is not None:
            synthfaces = True
        out.append(f"data.root={root}")
    if synthfaces:
        out.insert(0, "data.dataset=synthfaces")
    return out


def resolve_rows(rows: List[Row], preset, overrides=(), pretrained=None) -> List[Row]:
    """Fill in each row's config, test sizes and shared training (in place; returns ``rows``)."""
    from ..config import load_config, with_pretrained
    from ..transforms import inference_sizes
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


def rows_for(opts: ReproduceOptions):
    all_rows = resolve_rows(discover_rows(opts.experiments), opts.preset, opts.all_overrides(), opts.pretrained)
    return all_rows, select_rows(all_rows, opts.table, opts.rows)
