"""``python -m rfcn_face launch [--hosts H1,H2,... | --hostfile F] [--launcher ssh|local] [--ssh-command CMD]
--workers W --servers S -- train ...``: a ``dist_sync`` job on this machine or over several hosts
(:mod:`rfcn_face.launch`)."""
from __future__ import annotations

import argparse

from .common import number_arg

HELP = ("run a command (train) as an MXNet dist_sync job: scheduler, servers and workers on this machine or over "
        "several hosts (ssh)")


def add_arguments(p):
    from ..launch import DEFAULT_SSH, LAUNCHERS
    p.add_argument("--workers", type=number_arg("--workers", lo=1), required=True, help="worker processes")
    p.add_argument("--servers", type=number_arg("--servers", lo=1), default=1, help="parameter-server processes (default 1)")
    p.add_argument("--port", type=number_arg("--port", lo=1, hi=65535), default=None,
                   help="scheduler port on the first host (default: a free one)")
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("--hosts", default=None, metavar="H1,H2,...",
                       help="hosts ([user@]name or IPv4 address): the scheduler on the first, servers then workers "
                            "round robin (default: this machine, 127.0.0.1)")
    hosts.add_argument("--hostfile", default=None, metavar="FILE",
                       help="the hosts, one [user@]host per line ('#' comments)")
    p.add_argument("--launcher", default=None, choices=sorted(LAUNCHERS),
                   help="how roles start: ssh (default with --hosts / --hostfile) or local (every role on this "
                        "machine, bound to its host's address; the default without hosts)")
    p.add_argument("--ssh-command", default=None, metavar="CMD",
                   help=f"ssh client and options for --launcher ssh, e.g. 'ssh -p 2222' (default '{DEFAULT_SSH}')")
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

    from ..launch import parse_hosts, read_hostfile, run_job
    cmd = check_command(args.command)
    hosts = parse_hosts(args.hosts) if args.hosts else read_hostfile(args.hostfile) if args.hostfile else None
    res = run_job(cmd, workers=args.workers, servers=args.servers, port=args.port, hosts=hosts,
                  launcher=args.launcher, ssh_command=args.ssh_command)
    if res.code != 0:
        print(f"error: launch: the dist_sync job failed: {res.reason}", file=sys.stderr)
    return res.code
