"""The ``python -m rfcn_face`` command of each step of a row (train, launch, test, evaluate): what the dry run
prints and what a ``--workers`` training runs."""
from __future__ import annotations

from typing import List, Optional

from ..benchmarks import val_benchmark
from .common import device_args, display_path, pr_png_of, run_dir_of, size_arg, test_dir_of, val_dataset
from .rows import Row

__all__ = ["train_args", "launch_args", "test_args", "evaluate_args"]


def train_args(row: Row, opts, resume: bool = False) -> List[str]:
    """``python -m rfcn_face`` arguments of the training a row uses (the training row's YAML); ``resume`` for
    a run folder that holds a partial training."""
    a = ["train", "--config", display_path(row.path)]
    if opts.preset:
        a += ["--preset", str(opts.preset)]
    for o in opts.all_overrides():
        a += ["--set", o]
    a += ["--out", display_path(run_dir_of(row, opts.out))]
    if opts.pretrained:
        a += ["--pretrained", str(opts.pretrained)]
    a += device_args(opts)
    if opts.max_iters:
        a += ["--max-iters", str(opts.max_iters)]
    if opts.checkpoint_every:
        a += ["--checkpoint-every", str(opts.checkpoint_every)]
    return a + (["--resume"] if resume else [])


def launch_args(row: Row, opts, resume: bool = False) -> List[str]:
    return (["launch", "--workers", str(opts.workers), "--servers", str(opts.servers), "--"]
            + train_args(row, opts, resume))


def test_args(row: Row, opts) -> List[str]:
    a = ["test", "--run", display_path(run_dir_of(row, opts.out)), "--dataset", val_dataset(row.cfg),
         "--data", str(row.cfg.data.root), "--out", display_path(test_dir_of(row, opts.out)),
         "--sizes"] + [size_arg(s) for s in row.sizes]
    for o in row.test_overrides:
        a += ["--set", o]
    a += device_args(opts)
    if opts.limit:
        a += ["--limit", str(opts.limit)]
    return a + ["--label", row.label]


test_args.__test__ = False


def evaluate_args(row: Row, opts) -> Optional[List[str]]:
    """The command that re-scores a row's test folder, or None (its benchmark has none)."""
    return val_benchmark(row.cfg.data.dataset).evaluate_args(
        row.cfg.data.root, display_path(test_dir_of(row, opts.out) / "predictions"),
        display_path(pr_png_of(row, opts.out)), row.label)
