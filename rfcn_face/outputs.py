"""Output folders that never mix runs (issue 25 class 4).

A verb that writes a folder it may be rerun into (``test``, ``detect``) claims it with :func:`claim_output`:
``OUT/.rfcn_face_output.json`` records what the folder holds (the verb, the run's parameters file and its SHA-1,
the data set or the settings that change every file). A rerun with the same identity continues (``test`` resumes
from its cache); one with another identity — another run or model, another data set, for ``detect`` another
threshold or test size — is an error naming ``--out`` and what differs, so files of two runs never sit side by
side. The prediction files themselves are written as whole folders (:func:`rfcn_face.checkpoint.atomic_write_dir`),
so a rerun with another ``--limit`` leaves no file of the previous one.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MANIFEST", "claim_output"]

MANIFEST = ".rfcn_face_output.json"


def claim_output(out, identity: dict, replace: bool = False) -> Path:
    """Check ``out`` holds nothing but outputs of ``identity`` (a JSON-able dict) and record it; ``ValueError``
    naming the first differing key otherwise. A folder without a record (written before records existed, or
    empty) is claimed. ``replace``: the caller owns the folder and rewrites all of it (``reproduce`` and the demo
    retesting a run that trained on), so another identity is replaced instead. Returns the record's path."""
    from .checkpoint import atomic_write_json
    out = Path(out)
    rec = out / MANIFEST
    if rec.is_file():
        try:
            old = json.loads(rec.read_text())
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict):
            raise ValueError(f"--out {out}: {rec} is unreadable, so what the folder holds is unknown; use another "
                             "--out (or remove the folder)")
        for k in sorted(set(old) | set(identity), key=lambda k: (k != "verb", k)):     # the command first
            if old.get(k) != identity.get(k) and not replace:
                raise ValueError(f"--out {out} holds the outputs of another {_what(k)} ({k}: {old.get(k)!r}, now "
                                 f"{identity.get(k)!r}); use another --out (or remove the folder) so that the two "
                                 "are not mixed")
        if old == identity:
            return rec
    return atomic_write_json(rec, identity)


def _what(key: str) -> str:
    return {"verb": "command", "run": "run", "params_sha1": "model (final.params differs)", "dataset": "data set",
            "thresh": "--thresh", "sizes": "test size"}.get(key, "setting")
