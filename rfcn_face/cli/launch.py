"""``python -m rfcn_face launch --workers W --servers S -- train ...``: a ``dist_sync`` job on this machine
(:mod:`rfcn_face.launch`)."""
from __future__ import annotations

import argparse

from .common import number_arg

HELP = "run a command (train) as an MXNet dist_sync job: scheduler, servers and workers on this machine"


def add_arguments(p):
    p.add_argument("--workers", type=number_arg("--workers", lo=1), required=True, help="worker processes")
    p.add_argument("--servers", type=number_arg("--servers", lo=1), default=1, help="parameter-server processes (default 1)")
    p.add_argument("--port", type=number_arg("--port", lo=1, hi=65535), default=None, help="scheduler port (default: a free one)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="after '--': the rfcn_face command each worker runs, e.g. -- train --config ... --out ...")


def check_command(command) -> list:
    """Parse the workers' command here, before any process starts: an unknown verb, a bad option, a config that
    does not load or an ``--out`` that cannot be a run folder fail now, with one line, not in W workers."""
    from pathlib import Path

    from ..__main__ import build_parser
    from ..launch import has_kvstore, split_command
    cmd = split_command(command)
    if cmd[0] != "train":
        raise ValueError(f"launch runs 'train' as a dist_sync job, got the command {cmd[0]!r} (e.g. launch --workers 2 "
                         "-- train --config ROW.yaml --out RUN_DIR)")
    try:
        wargs = build_parser().parse_args(cmd)
    except SystemExit:   # argparse printed its usage and error line
        raise ValueError(f"launch: the worker command '{' '.join(cmd)}' does not parse (see above)") from None
    kv = getattr(wargs, "kvstore", "local")
    if has_kvstore(cmd) and not str(kv).startswith("dist"):
        raise ValueError(f"launch: --kvstore {kv} in the worker command: a launched job needs dist_sync or "
                         "dist_device_sync (each worker would otherwise train on its own, into the same folder)")
    from .common import config_from_args
    config_from_args(wargs)                       # a config that does not load fails here
    out = Path(wargs.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file, not a run folder")
    return cmd


def run(args) -> int:
    import sys

    from ..launch import launch
    cmd = check_command(args.command)
    code = launch(cmd, workers=args.workers, servers=args.servers, port=args.port)
    if code != 0:
        print(f"error: the dist_sync job failed: a worker exited with code {code} (its message is above)",
              file=sys.stderr)
    return code
