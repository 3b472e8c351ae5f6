"""Hooks of the training loop (detectron2's ``engine/hooks.py`` habit): everything around the short step.

A hook is an object with any of ``before_train()``, ``before_step()``, ``after_backward()``, ``after_step()``,
``after_train()``; :class:`rfcn_face.train.DetectorTraining` calls them in the order they were registered, with
``hook.trainer`` set to the training object, whose state they read:

* ``iter`` — iterations done before the current step (the step being run is ``iter``; after it, ``iter + 1``);
  ``start`` / ``stop`` the run's first and end iteration, ``per_epoch`` iterations per epoch;
* ``lr`` — the rate of the current step; ``stats`` — the current step's per-image loss terms, read once after the
  backward (floats, :data:`rfcn_face.train_step.STAT_KEYS`); ``metrics`` — their means (:data:`METRIC_KEYS`),
  set after the update; ``seconds`` — the step's wall time.

Built in, in this order: :class:`LRSchedule` (Sec. 5.1 schedule), :class:`NaNStop` (stops before a non-finite
update), :class:`MetricsLogger` (``metrics.jsonl``, a log line every ``--log-every`` iterations, the progress bar on
a terminal, ``loss.png``), :class:`Checkpointer` (atomic checkpoints, ``final.params``) and, when asked for,
:class:`PeriodicEval` (``RUN/eval.jsonl``). ``docs/extending.md`` shows how to add one.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .checkpoint import (FINAL_META, FINAL_PARAMS, METRICS_FILE, TrainingDiverged, atomic_write_file, atomic_write_json,
                         atomic_write_text, json_safe, newest_checkpoint, save_checkpoint, save_figure)

__all__ = ["truncate_rows", "HookBase", "LRSchedule", "NaNStop", "MetricsLogger", "Checkpointer", "PeriodicEval",
           "benchmark_evaluation",
           "learning_rate", "plot_losses", "METRIC_KEYS", "step_metrics"]

METRIC_KEYS = ("iter", "epoch", "lr", "loss", "rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss",
               "rpn_acc", "rcnn_acc", "matched_per_face", "s_per_iter")


def truncate_rows(path: Path, last_iter: int) -> None:
    """Keep the JSON lines of iterations <= ``last_iter`` (those after a checkpoint are redone on resume)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["iter"] <= last_iter:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            break                     # a line cut by a kill: drop it and everything after
    atomic_write_text(path, "".join(k + "\n" for k in keep))


class HookBase:
    trainer = None

    def before_train(self):
        pass

    def before_step(self):
        pass

    def after_backward(self):
        pass

    def after_step(self):
        pass

    def after_train(self):
        pass


# ------------------------------------------------------------------------------------------------ schedule
def learning_rate(cfg, iteration: int, iters_per_epoch: int) -> float:
    """Sec. 5.1: ``train.lr`` (0.001), times ``train.lr_factor`` (0.1) for each step of ``train.lr_steps`` ([5])
    that iteration ``iteration`` has reached (an epoch step ``e`` starts at iteration ``e * iters_per_epoch``);
    during the first ``train.warmup_iters`` iterations the rate ramps linearly from
    ``train.warmup_factor * lr``."""
    t = cfg.train
    n_steps = sum(1 for e in t.lr_steps if iteration >= int(round(e * iters_per_epoch)))
    lr = t.lr * t.lr_factor ** n_steps
    if iteration < t.warmup_iters:
        alpha = iteration / float(t.warmup_iters)
        lr *= t.warmup_factor * (1.0 - alpha) + alpha
    return float(lr)


class LRSchedule(HookBase):
    """Sets the optimizer's rate of each step from :func:`learning_rate`."""

    def before_step(self):
        t = self.trainer
        t.lr = learning_rate(t.cfg, t.iter, t.per_epoch)
        t.trainer.set_learning_rate(t.lr)


def step_metrics(stats: list) -> dict:
    """The means of one step's per-image loss terms, the accuracies over the sampled anchors / OHEM RoIs, and the
    positive anchors per face (HAMBox Fig. 1(a))."""
    n = len(stats)
    mean = {k: sum(v[k] for v in stats) / n for k in ("loss", "rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss",
                                                       "rcnn_bbox_loss")}
    tot = {k: sum(v[k] for v in stats) for k in ("rpn_ok", "rpn_n", "rcnn_ok", "rcnn_n", "matched", "faces")}
    mean["rpn_acc"] = tot["rpn_ok"] / max(tot["rpn_n"], 1.0)
    mean["rcnn_acc"] = tot["rcnn_ok"] / max(tot["rcnn_n"], 1.0)
    mean["matched_per_face"] = tot["matched"] / tot["faces"] if tot["faces"] else float("nan")
    return mean


class NaNStop(HookBase):
    """A non-finite loss stops the run before the update (exit 3 on the command line), naming the last good
    checkpoint; the parameters are those of the previous step."""

    def after_backward(self):
        t = self.trainer
        if not all(math.isfinite(v["loss"]) for v in t.stats):
            good = newest_checkpoint(t.out) if t.rank == 0 else None
            raise TrainingDiverged(f"loss is NaN or inf at iteration {t.iter} (epoch {t.iter // t.per_epoch}, lr "
                                   f"{t.lr:g}); parameters were not updated; last good checkpoint: "
                                   f"{good if good else 'none'}")


class MetricsLogger(HookBase):
    """Worker 0 writes a ``metrics.jsonl`` row and a log line every ``every`` iterations and at the run's last
    iteration; with ``progress`` and a terminal a tqdm bar replaces the log lines (the rows are still written).
    At the end: ``loss.png``."""

    def __init__(self, every: int = 1, progress: bool = True):
        self.every, self.progress, self.bar = max(1, int(every)), progress, None

    def before_train(self):
        from .logs import progress_bar
        t = self.trainer
        if t.rank == 0:
            truncate_rows(t.out / METRICS_FILE, t.start)
            self.bar = progress_bar(self.progress, total=t.stop, initial=t.start, desc=f"train {t.cfg.name}",
                                    unit="it")
        self.t_start, self.i_start = time.perf_counter(), t.start

    def after_step(self):
        t = self.trainer
        if t.rank != 0:
            return
        done, m = t.iter + 1, t.metrics
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{m['loss']:.3f}", s_it=f"{t.seconds:.2f}", lr=f"{t.lr:.1e}")
        if (done - t.start) % self.every == 0 or done == t.stop:
            row = {"iter": done, "epoch": t.iter // t.per_epoch, "lr": t.lr, **m, "s_per_iter": t.seconds}
            with open(t.out / METRICS_FILE, "a") as f:
                f.write(json.dumps(json_safe(row)) + "\n")
            if self.bar is None:
                t.log(self._line(done, row))

    def _line(self, done: int, row: dict) -> str:
        t = self.trainer
        rate = (time.perf_counter() - self.t_start) / max(done - self.i_start, 1)
        eta = int(rate * (t.stop - done))
        terms = " ".join(f"{k.replace('_loss', '')} {row[k]:.4f}" for k in ("rpn_cls_loss", "rpn_bbox_loss",
                                                                              "rcnn_cls_loss", "rcnn_bbox_loss"))
        return (f"iter {done}/{t.stop} loss {row['loss']:.4f} ({terms}) rpn_acc {row['rpn_acc']:.3f} rcnn_acc "
                f"{row['rcnn_acc']:.3f} lr {row['lr']:.2e} {row['s_per_iter']:.3f} s/it eta "
                f"{eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")

    def after_train(self):
        t = self.trainer
        if self.bar is not None:
            self.bar.close()
        path = t.out / METRICS_FILE
        if t.rank == 0 and path.is_file():
            t.loss_png = plot_losses(path, t.out / "loss.png")


class Checkpointer(HookBase):
    """Atomic checkpoints (params, trainer states, ``state.json``) every ``every`` iterations (0: off), at every
    epoch end and at the run's end, the newest ``keep`` kept; ``final.params`` (atomic) and ``final.json`` (its
    iteration) at the end. Worker 0 writes."""

    def __init__(self, every: int = 0, keep: int = 3):
        self.every, self.keep = int(every), int(keep)

    def save(self, iteration: int):
        t = self.trainer
        if t.rank != 0:
            return None

        def write(tmp: Path):
            t.net.save_parameters(str(tmp / "model.params"))
            t.trainer.save_states(str(tmp / "trainer.states"))

        return save_checkpoint(t.out, iteration, write,
                               {"epoch": iteration // t.per_epoch, "config_hash": t.config_hash,
                                "global_batch": t.G, "iters_per_epoch": t.per_epoch}, keep=self.keep)

    def after_step(self):
        t = self.trainer
        done = t.iter + 1
        if (self.every > 0 and done % self.every == 0) or done % t.per_epoch == 0 or done == t.stop:
            self.save(done)

    def after_train(self):
        t = self.trainer
        if t.rank == 0:
            atomic_write_file(t.out / FINAL_PARAMS, t.net.save_parameters)
            atomic_write_json(t.out / FINAL_META, {"iteration": int(t.iter)})


class PeriodicEval(HookBase):
    """``evaluate(trainer, done) -> dict`` after every ``every``-th iteration and after the last one (worker 0;
    ``done`` = iterations done): the numbers are logged and appended to ``RUN/eval.jsonl`` as ``{"iter": done, ...}``."""

    FILE = "eval.jsonl"

    def __init__(self, every: int, evaluate: Callable):
        if int(every) < 1:
            raise ValueError(f"--eval-every must be >= 1, got {every}")
        self.every, self.evaluate, self.last = int(every), evaluate, None

    def _run(self, done: int):
        t = self.trainer
        if t.rank != 0 or self.last == done:
            return
        res = dict(self.evaluate(t, done) or {})
        self.last = done
        with open(t.out / self.FILE, "a") as f:
            f.write(json.dumps(json_safe({"iter": done, **res})) + "\n")
        t.log(f"eval after iteration {done}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                             for k, v in res.items()))

    def before_train(self):
        t = self.trainer
        if t.rank == 0:
            truncate_rows(t.out / self.FILE, t.start)

    def after_step(self):
        done = self.trainer.iter + 1
        if done % self.every == 0:
            self._run(done)

    def after_train(self):
        t = self.trainer
        if t.iter > t.start:
            self._run(t.iter)


def benchmark_evaluation(dataset: str, data_root=None, limit: int = 0) -> Callable:
    """``PeriodicEval``'s ``evaluate`` for a registered benchmark (``train --eval-every N --eval-dataset NAME``): the
    network as it is at that iteration (``FaceDetector(net=...)`` on worker 0's first device, inference mode), the
    first ``limit`` images (0 = all), the benchmark's own evaluator; its files go to ``RUN/eval/iter_NNNNNNN/``
    (a folder per evaluation, so no detection cache outlives the weights it came from). The options are checked
    here, before training starts."""
    from .inference import TestOptions, check_test_options

    def options(out):
        return TestOptions(dataset=dataset, out=str(out), data_root=data_root, limit=int(limit), progress=False)
    check_test_options(options(Path("eval-check")))         # unknown dataset, missing files: before training

    def evaluate(t, done: int) -> dict:
        from .detector import FaceDetector
        from .inference import run_test
        opts = options(t.out / "eval" / f"iter_{done:07d}")
        det = FaceDetector(t.cfg, ctx=t.contexts[0], net=t.net, hybridize=False, nms_impl=t.opts.nms_impl)
        s = run_test(det, opts, log=lambda *a: None)
        return {k: v for k, v in (s.get("evaluation") or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return evaluate


# ------------------------------------------------------------------------------------------------ the plot
def plot_losses(metrics_path, out_png) -> Optional[Path]:
    """Loss curves (total and the four terms) from ``metrics.jsonl`` (markers when there are few rows)."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    it = [r["iter"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5))
    for k in ("loss", "rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss"):
        v = np.asarray([r[k] for r in rows], dtype=np.float64)
        w = max(1, len(v) // 50)                   # running mean over ~2% of the run
        sm = np.convolve(v, np.ones(w) / w, mode="valid")
        ax.plot(it[w - 1:], sm, lw=2.0 if k == "loss" else 1.0, label=k, marker="o" if len(sm) < 20 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (running mean)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out_png, 100)
