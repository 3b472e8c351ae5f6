"""Run folders and atomic checkpoints, shared by the detector and the FaceResNet training loops.

A checkpoint is a folder ``RUN_DIR/checkpoints/iter-NNNNNNN/`` holding whatever files the loop saves plus
``state.json``. It is written under a temporary name and renamed into place (``os.replace`` of a folder is
atomic on POSIX), so a folder with the final name is always complete; an interrupted save leaves only a
``.tmp-*`` folder, removed by the next save. :func:`newest_checkpoint` returns the newest folder that also
passes a check (``state.json`` readable); the loops fall back to the previous one when loading fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional

__all__ = ["RunDirError", "TrainingDiverged", "prepare_run_dir", "config_hash", "checkpoint_dirs", "save_checkpoint",
           "newest_checkpoint", "load_newest", "read_state", "prune_checkpoints", "atomic_write_text",
           "atomic_write_bytes", "atomic_write_dir", "json_safe", "atomic_write_json", "CHECKPOINTS", "CONFIG_FILE",
           "METRICS_FILE", "FINAL_PARAMS"]

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"       # a detector run's resolved config: the marker of its run folder
METRICS_FILE = "metrics.jsonl"
FINAL_PARAMS = "final.params"     # the trained detector (Gluon save_parameters), what FaceDetector loads
_PREFIX = "iter-"
_UMASK = os.umask(0)        # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)


class RunDirError(ValueError):
    """A run folder that cannot be used as asked (would mix runs, nothing to resume, ...)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN / inf (detector or FaceResNet training); the message names where and the last good
    checkpoint. Commands exit with ``code``."""
    code = 3


def prepare_run_dir(run_dir, resume: bool, marker: str) -> Path:
    """Create ``run_dir`` or check it may be reused. Without ``resume`` an existing non-empty folder is an error
    (runs are never mixed); with ``resume`` the folder must hold ``marker`` (the run's config file)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir} exists and is a file, not a run folder")
    if resume:
        if not (run_dir / marker).is_file():
            raise RunDirError(f"--resume: {run_dir} is not a run folder (no {marker}); start it without --resume")
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunDirError(f"--out {run_dir} already holds files; use --resume to continue that run, or another "
                          "folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def config_hash(text: str) -> str:
    """Short hash of a resolved config (YAML text)."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def atomic_write_text(path, text: str) -> Path:
    """Write a text file through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o666 & ~_UMASK)          # mkstemp creates 0600; give the file the usual permissions
    os.replace(tmp, path)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """:func:`atomic_write_text` for bytes (a cache file, an ``.npz`` written to memory first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_dir(path, write: Callable[[Path], None], prefix: str) -> Path:
    """Fill a folder through ``write(tmp)`` on a temporary sibling named ``prefix*`` and rename it to ``path``
    (replacing an existing one), so a folder with the final name is always complete; the temporary folder is
    removed if ``write`` fails. What is left by a killed process is the caller's to clean (by ``prefix``)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=str(path.parent)))
    try:
        write(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def json_safe(v):
    """``v`` with every non-finite float (NaN, inf) replaced by ``None`` (JSON has no NaN), recursively."""
    import math
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def atomic_write_json(path, obj, indent: int = 1, default=None) -> Path:
    """:func:`atomic_write_text` of ``json.dumps(json_safe(obj))`` (``default`` as for ``json.dumps``)."""
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=indent, default=default))


def checkpoint_dirs(run_dir) -> List[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def save_checkpoint(run_dir, iteration: int, write: Callable[[Path], None], state: dict, keep: int = 0) -> Path:
    """Write one checkpoint atomically: ``write(tmp_folder)`` saves the loop's files, then ``state.json``, then
    the folder is renamed to ``iter-NNNNNNN``. Keeps the newest ``keep`` checkpoints (0 = all)."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    def write_with_state(tmp: Path) -> None:
        write(tmp)
        (tmp / "state.json").write_text(json.dumps(dict(state, iteration=int(iteration)), indent=1))

    final = atomic_write_dir(root / f"{_PREFIX}{int(iteration):07d}", write_with_state, prefix=".tmp-")
    if keep > 0:
        prune_checkpoints(run_dir, keep)
    return final


def read_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / "state.json").read_text())


def newest_checkpoint(run_dir, exclude: Iterable[Path] = ()) -> Optional[Path]:
    """The newest checkpoint whose ``state.json`` reads, skipping ``exclude`` (ones that failed to load)."""
    skip = {Path(p) for p in exclude}
    for ckpt in reversed(checkpoint_dirs(run_dir)):
        if ckpt in skip:
            continue
        try:
            read_state(ckpt)
        except (OSError, ValueError):
            continue
        return ckpt
    return None


def load_newest(run_dir, load: Callable[[Path, dict], None], log=None):
    """Resume support shared by the training loops: ``load(ckpt, state)`` the newest checkpoint; when a file of it
    is truncated or unreadable (``load`` raises anything but :class:`RunDirError`), say so and try the previous
    one. Returns ``(ckpt, state)``, or ``None`` when the run has no checkpoint yet; :class:`RunDirError` when none
    loads (or ``load`` refuses one: another config / data set)."""
    from symbols.weights import mxnet_message

    from .logs import get_logger
    log = log or get_logger().info
    tried = []
    while True:
        ckpt = newest_checkpoint(run_dir, exclude=tried)
        if ckpt is None:
            if tried:
                raise RunDirError(f"--resume: no loadable checkpoint in {Path(run_dir) / CHECKPOINTS} (tried "
                                  + ", ".join(p.name for p in tried) + ")")
            return None
        state = read_state(ckpt)
        try:
            load(ckpt, state)
        except RunDirError:
            raise
        except Exception as e:  # a truncated or missing file: fall back to the previous checkpoint
            log(f"warning: checkpoint {ckpt.name} does not load ({mxnet_message(e)}); trying the previous checkpoint")
            tried.append(ckpt)
            continue
        if tried:
            log(f"resumed from {ckpt} instead of the unreadable " + ", ".join(p.name for p in tried))
        return ckpt, state


def prune_checkpoints(run_dir, keep: int) -> None:
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
