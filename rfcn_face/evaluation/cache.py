"""Parsed annotation files kept as ``.npz`` arrays in the project's cache folder, so that an evaluation does not
parse the same ground truth on every run.

An entry is ``<cache folder>/<kind>/<hash of the source paths>.npz`` (cache folder: ``$RFCN_FACE_CACHE``, else
``~/.cache/rfcn_face``, as for the synthetic data set). It stores, beside the arrays, a key made of a format
version and every source file's resolved path, size and modification time (ns); a source that changed, was
replaced or touched gives another key and the entry is rebuilt. An entry is never trusted: one that cannot be
read (truncated, bad CRC, foreign file), whose key differs or whose arrays fail the caller's ``check`` is
rebuilt from the sources. Entries are written atomically (temporary file + rename); a cache folder that cannot
be written only costs the time of the parse. At most :data:`MAX_ENTRIES` entries per kind are kept (least
recently used first out), so temporary annotation folders do not pile up.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

__all__ = ["cached_arrays", "cache_file", "source_key", "MAX_ENTRIES"]

MAX_ENTRIES = 32
_KEY = "__key__"


def _cache_root() -> Path:
    from ..datasets.synthfaces import default_cache_dir   # the project's one cache-folder convention
    return default_cache_dir()


def source_key(sources: Sequence, version: int) -> str:
    """The key of the current state of ``sources``: version, and per file its resolved path, size and mtime."""
    stats = []
    for p in sources:
        p = Path(p).resolve()
        st = p.stat()
        stats.append([str(p), st.st_size, st.st_mtime_ns])
    return json.dumps({"version": version, "sources": stats}, sort_keys=True)


def cache_file(kind: str, sources: Sequence, root: Optional[Path] = None) -> Path:
    """Where the entry of ``sources`` lives (depends on their resolved paths only)."""
    h = hashlib.sha1("\n".join(str(Path(p).resolve()) for p in sources).encode()).hexdigest()[:20]
    return Path(root if root is not None else _cache_root()) / kind / f"{h}.npz"


def _read(path: Path, key: str, check: Callable[[Dict[str, np.ndarray]], None]) -> Optional[Dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            if _KEY not in z.files or str(z[_KEY]) != key:
                return None
            arrays = {k: z[k] for k in z.files if k != _KEY}
        check(arrays)
        return arrays
    except Exception:  # noqa: BLE001 - any failure (bad zip / CRC / header, wrong shapes) means: rebuild
        return None


def _write(path: Path, key: str, arrays: Dict[str, np.ndarray]) -> None:
    from ..checkpoint import atomic_write_bytes
    buf = io.BytesIO()
    np.savez(buf, **{_KEY: np.array(key)}, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    entries = sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:max(len(entries) - MAX_ENTRIES, 0)]:
        if old != path:
            old.unlink()


def cached_arrays(kind: str, sources: Sequence, build: Callable[[], Dict[str, np.ndarray]],
                  check: Callable[[Dict[str, np.ndarray]], None], version: int,
                  root: Optional[Path] = None) -> Dict[str, np.ndarray]:
    """The arrays ``build()`` makes from ``sources``, read from the cache when its entry is current.

    ``check(arrays)`` raises on arrays that are not a valid result of ``build`` (wrong shapes, counts that do not
    add up); the entry is then rebuilt. Errors of ``build`` (unreadable sources) propagate as they are.
    """
    key = source_key(sources, version)          # before parsing: a source changed meanwhile gives a new key later
    path = cache_file(kind, sources, root)
    if path.is_file():
        arrays = _read(path, key, check)
        if arrays is not None:
            try:
                os.utime(path)                  # recently used: last to be evicted
            except OSError:
                pass
            return arrays
    arrays = build()
    check(arrays)
    try:
        _write(path, key, arrays)
    except OSError:                             # read-only or full cache folder: the parse still stands
        pass
    return arrays
