"""Reproduce the paper's tables with one call: Table 1, Table 2, the pyramid rows, and the benchmark files.

:func:`reproduce` is the library side of ``python -m rfcn_face reproduce`` (REPRODUCE.md):

* **Rows** (:mod:`.rows`) come from the experiments folder, never from a list written here: Table 1 =
  ``experiments/table1/*.yaml`` whose own file does not set ``test.pyramid``, the pyramid rows = those that do
  (15, 16), Table 2 = ``experiments/table2/*.yaml``. A row's config is ``load_config(row YAML, preset,
  overrides)``, exactly what ``python -m rfcn_face train --config ROW --preset P --set ...`` builds.
* **Shared trainings.** Two rows whose configs differ only in ``test.*`` (and their name / description /
  paper numbers) are one training (:func:`training_key`): the Table 2 rows (``_BASE_: ../table1/13_final.yaml``
  + a test size) are tested on the run of row 13, trained once. The run folder is named after the first
  Table 1 row with that training (``OUT/runs/13_final``).
* **Per row** (:mod:`.steps`): train (``OUT/runs/<row>``; resumed when partial, skipped when it reached its
  schedule or ``max_iters``), test on the val split of its training data (WIDER FACE val, or synthfaces val) at
  the row's test size(s) — ``test.sizes``, or ``test.pyramid_sizes`` merged for the pyramid rows — through
  :func:`rfcn_face.inference.run_test` (``OUT/tests/<row>``, resumable per image), evaluate (Easy / Medium / Hard
  AP) and plot the PR curves with the paper's own published curve (ZCC,
  :func:`~rfcn_face.evaluation.published.paper_published_baseline`) overlaid (``OUT/pr/<row>.png``). Each step is
  skipped when its output is complete: ``OUT/tests/<row>/reproduce.json`` records what the test was run on (the
  parameters file's size and mtime, sizes, data set, image limit) and its APs.
* **Results** (:mod:`.tables`, :mod:`.fig10`), rebuilt after every row from the markers in ``OUT/tests``:
  ``OUT/table1.md`` / ``.json`` (Table 1 incl. the pyramid rows) and ``OUT/table2.md`` / ``.json``: ours beside
  the paper's ``paper:`` block, the difference, the run folder and the setup; ``OUT/fig10.{png,md,json}`` (speed
  vs accuracy, Fig. 10) from the test runs that share the Table 2 training.
* **Dry run** (:mod:`.plan`): per row the exact ``python -m rfcn_face train / test / evaluate`` commands and a
  GPU-hour estimate (:mod:`.estimate`) from the FLOPs of the network's layer shapes (:mod:`symbols.flops`), plus
  what is missing on this machine.
* **Benchmarks** (:mod:`.benchmark_files`, :func:`reproduce_benchmarks`): from one trained Final run, the files
  of every benchmark of :mod:`rfcn_face.benchmarks` marked ``in_reproduce`` (WIDER test submission zip, FDDB
  fold + ellipse files and ROC, AFW and PASCAL Faces detection files, AP and PR curves); a benchmark whose data
  is not under any given root is skipped with a note.
"""
from ..benchmarks.wider_test import package_submission
from ..evaluation.published import PUBLISHED_CURVES, convert_published_curves, paper_published_baseline
from .benchmark_files import (BenchmarkOptions, benchmark_plan, find_benchmark_root, format_benchmark_plan,
                              reproduce_benchmarks)
from .commands import evaluate_args, launch_args, test_args, train_args
from .common import (CHECKPOINT_EVERY, MARKER, ROOT, command_line, display_path, pr_png_of, read_marker,
                     run_dir_of, test_dir_of)
from .estimate import (DEFAULT_GPU_TFLOPS, FWD_BWD_FACTOR, GPU_NAME, TYPICAL_IMAGE_HW, WIDER_TRAIN_IMAGES,
                       WIDER_VAL_IMAGES, Estimate, estimate_row, gpu_hours, train_input_sizes)
from .fig10 import SpeedPoint, speed_accuracy
from .plan import format_plan, missing_inputs, plan
from .rows import (GROUP_TITLES, TABLES, ReproduceOptions, Row, data_overrides, discover_rows, experiments_dir,
                   resolve_rows, select_rows, training_key)
from .run import reproduce
from .steps import (JobFailed, ensure_plotted, ensure_tested, ensure_trained, test_setup, test_status,
                    train_status)
from .tables import write_tables

__all__ = ["ReproduceOptions", "BenchmarkOptions", "Row", "Estimate", "TABLES", "discover_rows",
           "select_rows", "training_key", "estimate_row", "plan", "format_plan", "reproduce",
           "reproduce_benchmarks", "format_benchmark_plan", "write_tables", "speed_accuracy",
           "paper_published_baseline", "convert_published_curves", "package_submission", "experiments_dir",
           "WIDER_TRAIN_IMAGES", "WIDER_VAL_IMAGES", "TYPICAL_IMAGE_HW", "FWD_BWD_FACTOR", "DEFAULT_GPU_TFLOPS",
           "GPU_NAME", "PUBLISHED_CURVES", "MARKER", "SpeedPoint", "JobFailed", "train_status", "test_status",
           "missing_inputs", "resolve_rows", "train_input_sizes", "CHECKPOINT_EVERY", "GROUP_TITLES", "ROOT",
           "benchmark_plan", "find_benchmark_root", "evaluate_args", "launch_args", "test_args", "train_args",
           "command_line", "display_path", "pr_png_of", "read_marker", "run_dir_of", "test_dir_of", "gpu_hours",
           "data_overrides", "ensure_plotted", "ensure_tested", "ensure_trained", "test_setup"]
