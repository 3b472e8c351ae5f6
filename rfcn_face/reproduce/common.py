"""What every step of ``reproduce`` shares: the results folder's layout, the test markers, how paths and
commands are printed, the devices."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import List, Optional, Sequence

from ..checkpoint import FINAL_PARAMS

__all__ = ["ROOT", "MARKER", "CHECKPOINT_EVERY", "display_path", "size_arg", "command_line", "device_args",
           "contexts_of", "run_dir_of", "test_dir_of", "pr_png_of", "read_marker", "params_fingerprint",
           "val_dataset"]

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_EVERY = 1000             # iterations between training checkpoints (an interrupted row loses less)
MARKER = "reproduce.json"


def display_path(p) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def size_arg(s) -> str:
    return f"{int(s[0])}x{int(s[1])}"


def command_line(args: Sequence[str]) -> str:
    return "python -m rfcn_face " + shlex.join([str(a) for a in args])


def device_args(opts) -> List[str]:
    if opts.gpus:
        return ["--gpus", str(opts.gpus)]
    if opts.cpus:
        return ["--cpus", str(opts.cpus)]
    return []


def contexts_of(opts):
    from ..train import parse_contexts
    return parse_contexts(opts.gpus, opts.cpus)


# ------------------------------------------------------------------------------------------------ folders / state
def run_dir_of(row, out) -> Path:
    return Path(out) / "runs" / row.train_stem


def test_dir_of(row, out) -> Path:
    return Path(out) / "tests" / row.stem


def pr_png_of(row, out) -> Path:
    return Path(out) / "pr" / f"{row.stem}.png"


def read_marker(test_dir) -> Optional[dict]:
    p = Path(test_dir) / MARKER
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def params_fingerprint(run_dir) -> Optional[dict]:
    """Size and mtime of a run's ``final.params``: a test marker is stale when they change."""
    p = Path(run_dir) / FINAL_PARAMS
    if not p.is_file():
        return None
    st = p.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def val_dataset(cfg) -> str:
    """The benchmark a row is tested on: the val split of its training data (wider-val, synthfaces-val)."""
    from ..benchmarks import val_benchmark
    return val_benchmark(cfg.data.dataset).name


# library functions, not pytest tests
test_dir_of.__test__ = False
