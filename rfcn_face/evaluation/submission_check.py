"""Checking a WIDER FACE submission before upload (``evaluate check-submission``): every problem of a folder or a
zip of prediction files, with its file and line, stricter than the official reader
(:mod:`rfcn_face.evaluation.submission` reads and writes them)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .submission import _SEP, Key, _parse_count, _stem

__all__ = ["check_submission"]


def _check_file(path: str, raw_text: str, key: Key) -> List[str]:
    """The problems of one prediction file (``path``: how messages name it; ``raw_text``: its content)."""
    problems = []
    lines = [(i + 1, l.strip()) for i, l in enumerate(raw_text.splitlines())]
    content = [(i, l) for i, l in lines if l]
    if not content:
        return [f"{path}: empty file"]
    first_no, first = content[0]
    if _stem(first) != key[1]:
        problems.append(f"{path}:{first_no}: first line {first!r} does not name the image {key[1]}")
    if len(content) < 2:
        return problems + [f"{path}: no count line"]
    count_no, count_s = content[1]
    count = _parse_count(count_s)
    if count is None or count < 0:
        return problems + [f"{path}:{count_no}: count {count_s!r} is not a non-negative integer"]
    boxes = content[2:]
    if len(boxes) != count:
        problems.append(f"{path}:{count_no}: count is {count} but {len(boxes)} box lines follow")
    for no, l in boxes:
        toks = [t for t in _SEP.split(l) if t]
        try:
            vals = [float(t) for t in toks]
        except ValueError:
            problems.append(f"{path}:{no}: not numeric: {l!r}")
            continue
        if len(vals) != 5:
            problems.append(f"{path}:{no}: {len(vals)} numbers, expected 5 (x y w h score)")
            continue
        if not all(math.isfinite(v) for v in vals):
            problems.append(f"{path}:{no}: NaN or infinite value: {l!r}")
            continue
        if vals[2] < 0 or vals[3] < 0:
            problems.append(f"{path}:{no}: negative size w={vals[2]:g} h={vals[3]:g}")
        if vals[4] < 0:
            problems.append(f"{path}:{no}: negative score {vals[4]:g} (the official tool drops it)")
    return problems


class _FolderSubmission:
    """A submission folder: its ``.txt`` files as paths relative to it, named ``DIR/<rel>`` in messages."""

    def __init__(self, root: Path):
        self.root, self.problems = root, []

    def txt_files(self) -> List[str]:
        return [p.relative_to(self.root).as_posix() for p in sorted(self.root.rglob("*.txt"))]

    def name(self, rel: str) -> str:
        return str(self.root / rel)

    def read(self, rel: str) -> Optional[str]:
        with open(self.root / rel, "r", encoding="utf-8-sig", errors="replace") as f:
            return f.read()

    def close(self) -> None:
        pass


class _ZipSubmission:
    """A submission zip, read in memory (nothing extracted): members ``<event>/<image>.txt`` at its top level,
    named ``ZIP:<member>`` in messages. Unsafe member names, unreadable and oversized members are problems."""
    MAX_MEMBER = 64 << 20              # a prediction file is kilobytes; more is not a submission (or a zip bomb)

    def __init__(self, path: Path):
        import zipfile
        self.path, self.problems = path, []
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
            raise ValueError(f"--pred {path}: not a readable zip archive ({e})") from None
        self.members = {}
        for info in self.zip.infolist():
            n = info.filename
            if info.is_dir():
                continue
            if n.startswith("/") or "\\" in n or ".." in n.split("/"):
                self.problems.append(f"{self.name(n)}: unsafe member name (absolute, '..' or a backslash)")
            elif info.file_size > self.MAX_MEMBER:
                self.problems.append(f"{self.name(n)}: {info.file_size} bytes uncompressed, not a prediction file")
            elif n in self.members:
                self.problems.append(f"{self.name(n)}: stored twice in the zip")
            else:
                self.members[n] = info

    def txt_files(self) -> List[str]:
        return sorted(n for n in self.members if n.endswith(".txt"))

    def name(self, rel: str) -> str:
        return f"{self.path}:{rel}"

    def read(self, rel: str) -> Optional[str]:
        import zipfile
        try:
            return self.zip.read(self.members[rel]).decode("utf-8", errors="replace")
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:   # CRC error, encrypted, truncated
            self.problems.append(f"{self.name(rel)}: cannot be read from the zip ({e})")
            return None

    def close(self) -> None:
        self.zip.close()


def _open_submission(pred):
    pred = Path(pred)
    if pred.is_dir():
        return _FolderSubmission(pred)
    if pred.is_file():
        import zipfile
        if zipfile.is_zipfile(pred) or pred.suffix.lower() == ".zip":
            return _ZipSubmission(pred)
        raise ValueError(f"--pred {pred} is a file but not a zip archive: give the submission folder or its .zip")
    raise FileNotFoundError(f"prediction folder not found: {pred}")


def check_submission(pred, image_list: Sequence[Key]) -> List[str]:
    """Every problem of a submission folder or of its zip (members ``<event>/<image>.txt``, read in memory), each
    naming its file (and line): images missing or present more than once (or in the wrong event folder), files
    not in the list, first line not naming the image, count not equal to the number of box lines, non-numeric,
    NaN / infinite values, negative sizes or scores; in a zip also unsafe, duplicate or unreadable members.
    An empty list means the folder (zip) is ready to upload."""
    sub = _open_submission(pred)
    try:
        return _check(sub, image_list)
    finally:
        sub.close()


def _check(sub, image_list: Sequence[Key]) -> List[str]:
    found: Dict[str, List[str]] = {}
    for rel in sub.txt_files():
        found.setdefault(_stem(rel), []).append(rel)
    problems = []
    expected = {}
    for e, n in image_list:
        if n in expected:
            problems.append(f"image list names {e}/{n} twice")
        expected[n] = e
    for n, e in expected.items():
        rels = found.get(n, [])
        want = f"{e}/{n}.txt"
        if not rels:
            problems.append(f"{sub.name(want)}: missing")
            continue
        if len(rels) > 1:
            problems.append(f"{sub.name(want)}: image present {len(rels)} times: "
                            + ", ".join(sub.name(r) for r in rels))
        if want not in rels:
            problems.append(f"{sub.name(rels[0])}: in the wrong folder, expected {sub.name(want)}")
            continue
        text = sub.read(want)
        if text is not None:
            problems.extend(_check_file(sub.name(want), text, (e, n)))
    for n, rels in found.items():
        if n not in expected:
            problems.extend(f"{sub.name(r)}: not an image of the list" for r in rels)
    return sub.problems + problems
