"""``python -m rfcn_face <verb> ...`` — see ``python -m rfcn_face --help``."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .cli import COMMANDS


def _available():
    for verb, mod in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            yield verb, mod


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rfcn_face",
                                     description="Seeing Small Faces from Robust Anchor's Perspective — MXNet/Gluon")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, mod_name in _available():
        mod = importlib.import_module(mod_name)
        p = sub.add_parser(verb, help=getattr(mod, "HELP", ""), description=getattr(mod, "HELP", ""))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (FileNotFoundError, ValueError) as e:  # user errors: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
