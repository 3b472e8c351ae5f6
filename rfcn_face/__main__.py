"""``python -m rfcn_face <verb> ...`` — see ``python -m rfcn_face --help``.

Errors (the same rule for every verb, and for ``python -m rfcn_face.recognition.train`` and
``python -m rfcn_face.datasets.synthfaces``, which use :func:`run_guarded` too): bad input is one line
``error: ...`` on stderr naming the file (and line) and what is wrong, exit code 2; a bad command line is
argparse's usage followed by one ``error: ...`` line, exit code 2; Ctrl-C is ``error: interrupted ...`` (with
how to continue, for the verbs that resume), exit code 130. Anything else is a bug: one line
``error: internal error ...`` and exit code 1 (``RFCN_FACE_TRACEBACK=1`` shows the traceback).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from .cli import COMMANDS

__all__ = ["ArgumentParser", "build_parser", "main", "run_guarded", "error_line"]

# what to tell the user when a verb is interrupted (Ctrl-C / SIGINT)
RESUME_HINTS = {
    "train": "rerun the same command with --resume to continue from the last complete checkpoint",
    "recognition.train": "rerun the same command with --resume to continue from the last complete checkpoint",
    "test": "rerun the same command to continue (finished images are cached)",
    "demo": "rerun the same command to continue (finished steps are not redone)",
    "reproduce": "rerun the same command to continue (finished steps are not redone)",
    "launch": "rerun the job with --resume added to the train command to continue from the last checkpoint",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error line: usage, then ``error: PROG: message`` as the last line."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {self.prog}: {message}\n")


def _available(only=None):
    for verb, mod in COMMANDS.items():
        if (only is None or verb == only) and importlib.util.find_spec(mod) is not None:
            yield verb, mod


def _verb_of(argv) -> "str | None":
    """The verb of a command line when it is a known one (the first argument not starting with '-'), else None."""
    for a in argv:
        if not a.startswith("-"):
            return a if a in COMMANDS else None
    return None


def build_parser(only: "str | None" = None) -> argparse.ArgumentParser:
    """The command-line parser; with ``only`` (a verb), only that verb's module is imported and added (a command
    pays for its own imports, not for those of every verb: ``evaluate wider`` does not import the training code).
    """
    from . import __version__
    parser = ArgumentParser(prog="python -m rfcn_face",
                            description="Seeing Small Faces from Robust Anchor's Perspective — MXNet/Gluon")
    parser.add_argument("--version", action="version", version=f"rfcn_face {__version__}",
                        help="print the version of rfcn_face and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, mod_name in _available(only):
        mod = importlib.import_module(mod_name)
        p = sub.add_parser(verb, help=getattr(mod, "HELP", ""), description=getattr(mod, "HELP", ""))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_line(e: BaseException) -> str:
    """The ``error: ...`` line of a user error (ValueError, FileNotFoundError, other OSError): an OSError raised by
    the system (``open`` of a folder, a full disk, ...) as ``FILE: reason``, any other as its message."""
    if isinstance(e, (FileExistsError, NotADirectoryError)) and e.filename is not None:
        from pathlib import Path
        p = Path(str(e.filename))
        for q in (p, *p.parents):
            if q.is_file():
                return f"error: {e.filename}: {q} is a file, where a folder is needed"
    if isinstance(e, OSError) and e.strerror:
        where = "" if e.filename is None else f"{e.filename}: "
        if e.filename2 is not None:
            where = f"{e.filename} -> {e.filename2}: "
        return f"error: {where}{_one_line(e.strerror)}"
    msg = _one_line(str(e))
    return f"error: {msg or type(e).__name__}"


def run_guarded(fn, *args, name: str = "") -> int:
    """``fn(*args)`` as a command: its return code, or one ``error:`` line on stderr and a non-zero code."""
    try:
        return int(fn(*args) or 0)
    except KeyboardInterrupt:
        hint = RESUME_HINTS.get(name)
        print("error: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:   # user errors: one clear line, no traceback
        print(error_line(e), file=sys.stderr)
        return 2
    except Exception as e:  # a bug: still one line, the traceback on request
        if isinstance(e, RuntimeError) and isinstance(getattr(e, "code", None), int):
            print(f"error: {e}", file=sys.stderr)            # TrainingDiverged (3), a failed job (its exit code)
            return e.code or 1
        if os.environ.get("RFCN_FACE_TRACEBACK", "").strip() not in ("", "0"):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:400]
        print(f"error: internal error in {name or 'rfcn_face'}: {type(e).__name__}: {first}; set "
              "RFCN_FACE_TRACEBACK=1 for the traceback", file=sys.stderr)
        return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_verb_of(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    from .logs import console_logging
    console_logging()          # messages on stderr (rfcn_face.logs); results stay on stdout
    return run_guarded(args._run, args, name=args.verb)


if __name__ == "__main__":
    sys.exit(main())
