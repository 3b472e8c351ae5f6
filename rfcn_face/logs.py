"""Logs a batch job can read: Python ``logging`` to stderr and to ``RUN/log.txt``, progress bars on a terminal only.

* Every message of the library goes to the ``rfcn_face`` logger (:func:`get_logger`). The command line installs one
  stderr handler (:func:`console_logging`, message only); a library user configures logging as usual.
* :func:`run_log` adds ``OUT/log.txt`` (appended, one timestamped line per message) for the duration of a run of
  ``train``, ``test``, ``reproduce`` or the demo, so the run folder keeps its own log.
* :func:`progress_bar` returns a tqdm bar only when asked for *and* stderr is a terminal: a batch job's redirected
  stderr gets the periodic metric lines instead of ``\\r`` bars.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

__all__ = ["LOGGER_NAME", "get_logger", "console_logging", "run_log", "on_terminal", "progress_bar", "LOG_FILE"]

LOGGER_NAME = "rfcn_face"
LOG_FILE = "log.txt"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


class _Console(logging.StreamHandler):
    """stderr, message only; looks ``sys.stderr`` up at each record (pytest and callers may swap it)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def console_logging(level: int = logging.INFO) -> logging.Logger:
    """Install the stderr handler of the command line (once) and return the project's logger."""
    log = get_logger()
    if not any(isinstance(h, _Console) for h in log.handlers):
        log.addHandler(_Console())
    log.setLevel(level)
    return log


@contextlib.contextmanager
def run_log(folder, enabled: bool = True):
    """Append every message of the project's logger to ``folder/log.txt`` while the block runs."""
    if not enabled:
        yield None
        return
    path = Path(folder) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    log = get_logger()
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield path
    finally:
        log.removeHandler(handler)
        handler.close()


def on_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(enabled: bool = True, **kw):
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal, else None."""
    if not (enabled and on_terminal()):
        return None
    from tqdm import tqdm
    kw.setdefault("dynamic_ncols", True)
    return tqdm(file=sys.stderr, **kw)
