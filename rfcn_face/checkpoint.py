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

from .locks import LOCK_NAME

__all__ = ["RunDirError", "TrainingDiverged", "prepare_run_dir", "config_hash", "checkpoint_dirs", "save_checkpoint",
           "newest_checkpoint", "load_newest", "read_state", "prune_checkpoints", "atomic_write_text",
           "atomic_write_bytes", "atomic_write_file", "atomic_write_dir", "remove_stale_temporaries", "json_safe", "atomic_write_json", "CHECKPOINTS", "CONFIG_FILE",
           "METRICS_FILE", "FINAL_PARAMS", "FINAL_META", "final_params_info"]

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"       # a detector run's resolved config: the marker of its run folder
METRICS_FILE = "metrics.jsonl"
FINAL_PARAMS = "final.params"     # the trained detector (Gluon save_parameters), what FaceDetector loads
FINAL_META = "final.json"         # {"iteration": N}: the training iteration final.params holds
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
    elif run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        raise RunDirError(f"--out {run_dir} already holds files; use --resume to continue that run, or another "
                          "folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def config_hash(text: str) -> str:
    """Short hash of a resolved config (YAML text)."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def atomic_write_file(path, write: Callable[[str], None], suffix: Optional[str] = None) -> Path:
    """The one atomic file writer: ``write(tmp)`` fills a temporary sibling ``.NAME.*SUFFIX`` (``suffix``, default
    the path's own extension: writers such as ``savefig`` / ``cv2.imwrite`` pick the format by it), which is then
    renamed to ``path``; a failure (a full disk, a
    read-only folder, anything ``write`` raises) leaves neither a file under the final name nor the temporary
    file, and an ``OSError`` names ``path`` (``error: PATH: No space left on device``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=str(path.parent))
    except OSError as e:
        raise _naming(e, path) from None
    os.close(fd)
    try:
        _fill(write, tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)          # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except Exception as e:
        raise _naming(e, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path



def save_figure(fig, path, dpi: int = 100) -> Path:
    """A matplotlib figure written atomically (:func:`atomic_write_file`; the format from the extension), then
    closed whatever happened; returns the path."""
    import matplotlib.pyplot as plt
    path = Path(path)
    try:
        atomic_write_file(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    finally:
        plt.close(fig)
    return path

def _fill(write: Callable, tmp) -> None:
    """``write(tmp)``: the one place where every atomic writer's bytes go (the disk-full fault tests patch it)."""
    write(tmp)


def _naming(e: Exception, path: Path) -> Exception:
    """``e`` re-raised under the final file's name (not the temporary one's), with its errno and reason; MXNet's
    failed save (``MXNetError``, no errno) as an ``OSError`` naming the file and MXNet's first line."""
    if type(e).__name__ == "MXNetError":
        from symbols.weights import mxnet_message
        return OSError(0, f"cannot write ({' '.join(mxnet_message(e).split())[:200]})", str(path))
    if not isinstance(e, OSError):
        return e
    if e.strerror and e.filename2 is None and Path(str(e.filename or "")).name.startswith(f".{path.name}."):
        return type(e)(e.errno, e.strerror, str(path))
    if e.strerror and e.filename is None:
        return type(e)(e.errno, e.strerror, str(path))
    return e


def _writer(data, mode: str) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        with open(tmp, mode) as f:
            f.write(data)
    return write


def atomic_write_text(path, text: str) -> Path:
    """Write a text file through :func:`atomic_write_file` (never half-written)."""
    return atomic_write_file(path, _writer(text, "w"))


def atomic_write_bytes(path, data: bytes) -> Path:
    """:func:`atomic_write_text` for bytes (a cache file, an ``.npz`` written to memory first)."""
    return atomic_write_file(path, _writer(data, "wb"))


def atomic_write_dir(path, write: Callable[[Path], None], prefix: str) -> Path:
    """Fill a folder through ``write(tmp)`` on a temporary sibling named ``prefix*`` and rename it to ``path``
    (replacing an existing one), so a folder with the final name is always complete; the temporary folder is
    removed if ``write`` fails. What is left by a killed process is the caller's to clean (by ``prefix``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=str(path.parent)))
    except OSError as e:
        raise _naming(e, path) from None
    try:
        _fill(write, tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except Exception as e:
        if isinstance(e, OSError) and e.strerror:      # name the final folder, not the temporary one
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise _naming(e, path) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def remove_stale_temporaries(folder, prefix: str) -> None:
    """Remove what a killed :func:`atomic_write_dir` left in ``folder`` (``prefix*``); call it while holding the
    folder's lock (:mod:`rfcn_face.locks`), so no live writer's temporary is taken."""
    folder = Path(folder)
    if folder.is_dir():
        for stale in folder.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)


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
    """A checkpoint's ``state.json``: ``ValueError`` unless it is an object with an integer ``iteration``."""
    state = json.loads((Path(ckpt) / "state.json").read_text())
    if not isinstance(state, dict) or not isinstance(state.get("iteration"), int) or isinstance(state["iteration"], bool):
        raise ValueError("not a checkpoint state (an object with an integer 'iteration')")
    return state


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


def _set_aside(ckpt: Path, log) -> Path:
    """Rename an unreadable checkpoint to ``unreadable-iter-NNNNNNN`` (never deleted, never pruned, never taken
    for a checkpoint again)."""
    dst = ckpt.parent / f"unreadable-{ckpt.name}"
    k = 1
    while dst.exists():
        k += 1
        dst = ckpt.parent / f"unreadable-{ckpt.name}.{k}"
    os.replace(ckpt, dst)
    log(f"warning: kept the unreadable checkpoint {ckpt.name} as {dst}")
    return dst


def _state_problem(ckpt: Path) -> Optional[str]:
    try:
        read_state(ckpt)
        return None
    except (OSError, ValueError) as e:
        return f"{ckpt / 'state.json'} ({type(e).__name__}: {' '.join(str(e).split())[:120]})"


def load_newest(run_dir, load: Callable[[Path, dict], None], log=None, restart_if_unreadable: bool = False,
                set_aside: bool = True):
    """Resume support shared by the training loops: ``load(ckpt, state)`` the newest checkpoint; when a file of it
    is truncated or unreadable (``load`` raises anything but :class:`RunDirError`), say so and try the previous
    one. Returns ``(ckpt, state)``, or ``None`` when the run has no checkpoint yet (said in the log).

    When checkpoints exist but none can be read, this never restarts silently: :class:`RunDirError` names every
    unreadable file and why; with ``restart_if_unreadable`` (``--restart-if-unreadable``) the unreadable ones are
    kept as ``unreadable-iter-NNNNNNN`` and ``None`` is returned (the run restarts from iteration 0). A checkpoint
    skipped for an older one is kept the same way (it is not overwritten when its iteration is redone).
    :class:`RunDirError` too when ``load`` refuses one (another config / data set). ``set_aside=False``: rename
    nothing (a distributed worker other than 0, which only reads)."""
    from symbols.weights import mxnet_message

    from .logs import get_logger
    log = log or get_logger().info
    root = Path(run_dir) / CHECKPOINTS
    bad = {c: p for c in checkpoint_dirs(run_dir) if (p := _state_problem(c)) is not None}
    while True:
        ckpt = newest_checkpoint(run_dir, exclude=bad)
        if ckpt is None:
            if not bad:
                log(f"no checkpoint in {root} yet: starting at iteration 0")
                return None
            what = "; ".join(f"{c.name}: {why}" for c, why in sorted(bad.items()))
            if not restart_if_unreadable:
                raise RunDirError(f"--resume: no checkpoint of {run_dir} can be read ({what}); nothing was deleted. "
                                  "Repair or remove them, or rerun with --restart-if-unreadable to keep them aside "
                                  "and train from iteration 0")
            log(f"warning: --restart-if-unreadable: no checkpoint of {run_dir} can be read ({what}); restarting "
                "from iteration 0")
            for c in bad if set_aside else ():
                _set_aside(c, log)
            return None
        state = read_state(ckpt)
        try:
            load(ckpt, state)
        except RunDirError:
            raise
        except Exception as e:  # a truncated or missing file: fall back to the previous checkpoint
            log(f"warning: checkpoint {ckpt.name} does not load ({mxnet_message(e)}); trying the previous checkpoint")
            bad[ckpt] = f"{ckpt} ({' '.join(mxnet_message(e).split())[:160]})"
            continue
        newer = [c for c in bad if int(c.name[len(_PREFIX):]) > int(ckpt.name[len(_PREFIX):])]
        if newer:
            log(f"resumed from {ckpt} instead of the unreadable " + ", ".join(c.name for c in sorted(newer)))
            for c in newer if set_aside else ():
                _set_aside(c, log)
        return ckpt, state


def final_params_info(run_dir) -> dict:
    """Which training iteration a run's ``final.params`` holds (from ``final.json``; ``None`` for runs written
    before it existed) and the newest checkpoint; ``warning`` is set when a checkpoint is newer than
    ``final.params`` (the run was resumed and went on, but did not finish: ``final.params`` is the older model)."""
    run_dir = Path(run_dir)
    fp = run_dir / FINAL_PARAMS
    try:
        it = json.loads((run_dir / FINAL_META).read_text()).get("iteration")
        it = int(it) if isinstance(it, int) else None
    except (OSError, ValueError, AttributeError):
        it = None
    newest = newest_checkpoint(run_dir)
    n_it = int(newest.name[len(_PREFIX):]) if newest is not None else None
    info = {"params": str(fp), "iteration": it, "newest_checkpoint": None if newest is None else str(newest),
            "newest_checkpoint_iteration": n_it, "warning": None}
    if newest is not None and fp.is_file():
        older = n_it > it if it is not None else (newest / "state.json").stat().st_mtime > fp.stat().st_mtime + 1
        if older:
            info["warning"] = (f"{fp} (iteration {it if it is not None else 'unknown'}) is older than the checkpoint "
                               f"{newest.name}: the run was resumed and has not finished; this uses final.params, "
                               "not the newer checkpoint")
    return info


def prune_checkpoints(run_dir, keep: int) -> None:
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
