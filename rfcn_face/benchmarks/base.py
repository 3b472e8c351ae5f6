"""What every benchmark owns: its records, default test sizes, official files, evaluator and summary line.

A benchmark is a :class:`Benchmark` subclass registered under its ``--dataset`` name
(:func:`rfcn_face.benchmarks.register`). ``test`` (:func:`rfcn_face.inference.run_test`) loads its records
(:meth:`Benchmark.load`), detects every image (cached per image), then drives its evaluator in detectron2's
``DatasetEvaluator`` shape (``evaluation/evaluator.py``): :meth:`Evaluator.reset`, :meth:`Evaluator.process` once
per detected image, :meth:`Evaluator.evaluate`. ``evaluate`` writes the benchmark's official files from what it
was given and scores *those files* (the numbers are those of what a user would submit). ``reproduce
--benchmarks`` adds :meth:`Benchmark.package` (a zip, a plot against the paper) and logs
:meth:`Benchmark.summary_lines`; ``benchmarks.md`` has one row of :meth:`Benchmark.report_cells`.

Detections of image ``i`` (``predictions[i]``) are ``(boxes (K, 4) x1 y1 x2 y2 in original pixels, scores (K,),
(H, W))``; an image that could not be read has none.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

__all__ = ["TestSet", "Benchmark", "Evaluator", "fmt"]


def fmt(v, digits: int = 3) -> str:
    """A number with ``digits`` decimals, "—" for None (tables and summary lines)."""
    return "—" if v is None else f"{v:.{digits}f}"


@dataclass
class TestSet:
    """The images of one benchmark (``records``: :class:`rfcn_face.datasets.record.FaceRecord`) and where its
    ground truth is (``gt``: the WIDER ``ground_truth`` folder, the face-eval ``.mat``; FDDB records carry
    their ellipses); ``benchmark`` is the :class:`Benchmark` that read them."""
    __test__ = False          # not a pytest class

    dataset: str
    records: list
    root: Path
    gt: Optional[Path] = None
    notes: List[str] = field(default_factory=list)
    benchmark: Optional["Benchmark"] = None

    def display_name(self, i: int) -> str:
        return self.benchmark.display_name(self.records[i])


class Evaluator:
    """``reset`` / ``process`` / ``evaluate`` over one test set (detectron2's ``DatasetEvaluator``). Subclasses
    implement :meth:`score`; ``self.files`` holds what :meth:`evaluate` wrote (the summary's ``files``)."""

    def __init__(self, benchmark: "Benchmark", test_set: TestSet, out, opts, log=None):
        from ..logs import get_logger
        self.benchmark, self.test_set, self.out, self.opts = benchmark, test_set, Path(out), opts
        self.log = log or get_logger().info
        self.reset()

    def reset(self) -> None:
        self.predictions: Dict[int, tuple] = {}
        self.files: dict = {}

    def process(self, index: int, output: tuple) -> None:
        """The detections ``(boxes, scores, (H, W))`` of ``test_set.records[index]``."""
        self.predictions[int(index)] = output

    def evaluate(self) -> dict:
        """Write the official files from the processed images, then score them; returns the evaluation."""
        self.files = self.benchmark.write_files(self.test_set, self.predictions, self.out, self.opts)
        return self.score()

    def score(self) -> dict:
        return {}


class Benchmark:
    """One benchmark. Subclasses set the class attributes they need and implement :meth:`read`,
    :meth:`required_paths` and :meth:`write_files`, plus an ``evaluator_class``. ``name`` is set by
    ``register(name)``, so a subclass registered under another name is another benchmark (its files are named
    after it)."""
    name: str = ""
    title: str = ""                  # in logs and plot titles ("AFW", "WIDER FACE val")
    evaluator_class = Evaluator
    in_reproduce: bool = False       # one of the benchmark files of `reproduce --benchmarks`
    reproduce_options: dict = {}     # TestOptions fields `reproduce --benchmarks` sets (True = a `test` flag)
    takes_ellipses: bool = False     # --ellipses / --ellipse-regressor apply (FDDB, Sec. 5.2)
    val_of: Optional[str] = None     # the data.dataset whose val split this is (the demo, the tables)
    trained_on: str = ""             # that training set, as the demo's table names it
    paper_tables: bool = False       # the benchmark of the paper's Tables 1 / 2 (WIDER FACE val)

    # ---- records
    def read(self, root: Path) -> TestSet:
        """The test set under the data root ``root`` (data/README.md layout)."""
        raise NotImplementedError

    def load(self, data_root=None, limit: int = 0) -> TestSet:
        """:meth:`read` under ``data_root`` (default ``data``); ``limit`` > 0 keeps the first ``limit`` images (a
        quick check; the evaluation then covers only those)."""
        ts = self.read(Path(data_root if data_root is not None else "data"))
        ts.dataset, ts.benchmark = self.name, self
        if not ts.records:
            raise ValueError(f"{self.name}: no images found under {ts.root}")
        if limit and limit > 0 and limit < len(ts.records):
            ts.records = ts.records[:int(limit)]
            ts.notes.append(f"--limit {limit}: only the first {limit} images are detected and evaluated")
        return ts

    def required_paths(self, root: Path) -> List[Path]:
        """The files / folders the benchmark needs under a data root (``reproduce --benchmarks`` looks for the
        first root that holds them all)."""
        raise NotImplementedError

    def display_name(self, record) -> str:
        """How an image is named in warnings and in ``unreadable``."""
        return os.path.basename(record.image_path)

    def default_sizes(self, cfg) -> list:
        """Test sizes of ``reproduce --benchmarks`` without ``--sizes``: the original size (Sec. 5.2)."""
        return [[0, 0]]

    # ---- files and evaluation
    def write_files(self, ts: TestSet, predictions: Dict[int, tuple], out, opts) -> dict:
        """The official detection files under ``out``; returns ``{what: path(s)}``."""
        raise NotImplementedError

    def evaluator(self, ts: TestSet, out, opts, log=None) -> Evaluator:
        return self.evaluator_class(self, ts, out, opts, log)

    def evaluate_args(self, root, pred, plot, label) -> Optional[List[str]]:
        """``python -m rfcn_face`` arguments that re-score the written files (the reproduce plan), or None."""
        return None

    # ---- reproduce --benchmarks
    def package(self, test_dir: Path, bench_dir: Path, root: Path, limit: int, log) -> dict:
        """Files made from a finished test folder (a zip, a plot); returns what to add to the benchmark's entry
        of ``benchmarks.json`` (``Path`` values are shown relative to the working directory). ``log`` takes
        one line."""
        return {}

    def summary_lines(self, evaluation: dict) -> List[str]:
        """What ``reproduce --benchmarks`` logs after this benchmark (its numbers)."""
        return [", ".join(f"{k} {v:.4f}" for k, v in evaluation.items() if isinstance(v, float))] if evaluation else []

    def report_cells(self, entry: dict) -> Tuple[str, str]:
        """The result and files cells of the benchmark's row of ``benchmarks.md``."""
        lines = self.summary_lines(entry.get("evaluation") or {})
        return ("; ".join(lines) or "not evaluated"), f"`{entry['out']}/`"
