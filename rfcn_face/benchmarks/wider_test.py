"""WIDER FACE test: the submission folder only (the evaluation server scores it); in ``reproduce --benchmarks``
also the zip to upload, checked before and after zipping."""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import List

from .registry import register
from .wider_protocol import WiderProtocol

__all__ = ["WiderTest", "package_submission"]


def package_submission(pred_dir, keys, zip_path) -> List[str]:
    """Zip a WIDER submission folder as the evaluation server expects (members ``event/name.txt``), after
    checking it with :func:`~rfcn_face.evaluation.submission_check.check_submission`, then unzip it into a
    temporary folder and check that again. Returns every problem (empty = ready to upload)."""
    from ..evaluation.submission_check import check_submission
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    problems = check_submission(pred_dir, keys)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for e, n in keys:
            f = pred_dir / e / f"{n}.txt"
            if f.is_file():
                z.write(f, f"{e}/{n}.txt")
    os.replace(tmp, zip_path)
    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(d)
        problems += [f"in {zip_path.name}: {p}" for p in check_submission(d, keys)]
    return problems


@register("wider-test")
class WiderTest(WiderProtocol):
    title = pr_title = "WIDER FACE test"
    split = "test"
    in_reproduce = True

    def required_paths(self, root: Path) -> List[Path]:
        w = self.base(root)
        return [w / "wider_face_split" / "wider_face_test_filelist.txt", w / "WIDER_test" / "images"]

    def evaluate_args(self, root, pred, plot, label):
        return None                  # no public ground truth: the server scores the zip

    def package(self, test_dir, bench_dir, root, limit, log) -> dict:
        """``BENCH_DIR/wider_test_submission.zip`` of the tested images, verified."""
        keys = [(r.event, r.name) for r in self.load(root, limit).records]
        z = Path(bench_dir) / "wider_test_submission.zip"
        problems = package_submission(Path(test_dir) / "predictions", keys, z)
        ok = "verified with check_submission (ready to upload)"
        log(f"{z}: {len(keys)} files, " + (ok if not problems else f"{len(problems)} problem(s): {problems[0]}"))
        return {"zip": z, "submission_problems": problems[:50], "verified": not problems}

    def report_cells(self, entry: dict):
        res = "submission zip " + ("verified (check_submission)" if entry.get("verified") else
                                   f"{len(entry.get('submission_problems', []))} problem(s)")
        return res, f"`{entry.get('zip')}`"
