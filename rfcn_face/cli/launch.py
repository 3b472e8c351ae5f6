"""``python -m rfcn_face launch --workers W --servers S -- train ...``: a ``dist_sync`` job on this machine
(:mod:`rfcn_face.launch`)."""
from __future__ import annotations

import argparse

HELP = "run a command (train) as an MXNet dist_sync job: scheduler, servers and workers on this machine"


def _count(name):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {v}")
        return v
    return parse


def add_arguments(p):
    p.add_argument("--workers", type=_count("--workers"), required=True, help="worker processes")
    p.add_argument("--servers", type=_count("--servers"), default=1, help="parameter-server processes (default 1)")
    p.add_argument("--port", type=_count("--port"), default=None, help="scheduler port (default: a free one)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="after '--': the rfcn_face command each worker runs, e.g. -- train --config ... --out ...")


def run(args) -> int:
    from ..launch import launch
    return launch(args.command, workers=args.workers, servers=args.servers, port=args.port)
