"""Training loop of the R-FCN face detector (Sec. 5.1, following R-FCN): a short step plus hooks.

One iteration (:meth:`DetectorTraining.run_step`)
-------------------------------------------------
1. **Data.** The global batch of iteration ``i`` (:mod:`rfcn_face.datasets.batches`): ``G`` = images per device
   (``train.batch_images``, 1 as R-FCN) x devices x workers images of the epoch order; this worker's share is
   split over its devices. Each image's random draws (flip, shift jitter, multi-scale size, the RPN minibatch,
   the RoI minibatch) are keyed by (seed, epoch, image index). The next iteration's images are built in the
   background with the prediction-free part of their anchor targets (:mod:`rfcn_face.assigners`: complete for
   a strategy that reads no prediction).
   The loader's receiver thread copies each image, its gt rows and its targets to the image's device.
2. **Losses + backward** on the devices (:class:`rfcn_face.train_step.DetectorStep`): backbone + RPN, then one
   hybridized graph (:class:`symbols.train_loss.DetectorLoss`: proposals, proposal targets, the PSROI head, OHEM,
   the R-FCN losses normalised per image); every device's forward is issued before anything is read back, then
   one backward (``hambox`` / ``cleanliness`` read their RPN maps back once per image to finish the targets).
3. The per-image loss terms are read once, after the backward was issued; ``after_backward`` hooks see them
   (:class:`~rfcn_face.train_hooks.NaNStop` stops before a non-finite update).
4. **Update.** Gradients summed over devices and workers by the kvstore (:class:`rfcn_face.kvsync.GradientSync`,
   MXNet's public kvstore API), rescaled by ``1 / G`` (the gradient of the mean image loss), then SGD with momentum
   ``train.momentum``, weight decay ``train.wd`` and the rate the :class:`~rfcn_face.train_hooks.LRSchedule` hook
   set (``train.lr`` -> x ``train.lr_factor`` after each epoch in ``train.lr_steps``, optional linear warm-up).

Everything else is a hook (:mod:`rfcn_face.train_hooks`): the lr schedule, the NaN stop, metric logging
(``metrics.jsonl``, a log line every ``--log-every`` iterations, a progress bar on a terminal only, ``loss.png``),
checkpoints and ``final.params``, optional periodic evaluation; ``DetectorTraining(cfg, opts, hooks=[...])`` adds
more (they run after the built-in ones).

The optimizer update runs on the workers for every kvstore, ``dist_sync`` included: the servers only sum
gradients, so the learning-rate schedule and the optimizer states (momentum) live where the checkpoints are
written, and a resumed run continues bit for bit. Worker 0's parameters are broadcast to every worker, and waited
for, before the first gradient is pushed.

Frozen as in R-FCN (``train.freeze: rfcn``): conv1, res2 and every BatchNorm (global statistics, gamma / beta
fixed); ``bn`` keeps only the BatchNorms fixed (a backbone trained from random init).

Run folder
----------
``config.yaml`` (the resolved config), ``checkpoints/iter-NNNNNNN/`` (``model.params``, ``trainer.states``,
``state.json``; atomic, the newest ``keep`` kept), ``metrics.jsonl`` (one JSON object per logged iteration and
the last one: ``iter`` = iterations done including this one, ``lr`` = the rate this iteration used, the four loss
terms and their sum averaged over this worker's images, ``rpn_acc`` / ``rcnn_acc`` over the sampled anchors /
OHEM RoIs, ``matched_per_face`` = positive anchors per face before sampling, ``s_per_iter``), ``log.txt`` (every
message of the run), ``loss.png`` and ``final.params`` (``save_parameters`` of the whole detector: what
:class:`rfcn_face.detector.FaceDetector` loads). With a dist kvstore only worker 0 writes, and holds the folder's
lock (:mod:`rfcn_face.locks`) while it trains.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .checkpoint import CONFIG_FILE, FINAL_PARAMS, METRICS_FILE, RunDirError, TrainingDiverged, load_newest
from .kvsync import KVSTORES, GradientSync
from .train_setup import build_network, open_kvstore, open_run_dir, sgd_trainer
from .train_hooks import (METRIC_KEYS, Checkpointer, HookBase, LRSchedule, MetricsLogger, NaNStop, learning_rate,
                          plot_losses, step_metrics)

__all__ = ["TrainOptions", "TrainingDiverged", "learning_rate", "parse_contexts", "train", "DetectorTraining",
           "CONFIG_FILE", "METRICS_FILE", "FINAL_PARAMS", "METRIC_KEYS", "KVSTORES", "HookBase", "plot_losses"]


@dataclass
class TrainOptions:
    out: str
    contexts: list = field(default_factory=list)   # mx.Context list ([] = one CPU context)
    kvstore: str = "local"                         # local | device | dist_sync | dist_device_sync
    resume: bool = False
    restart_if_unreadable: bool = False            # --resume with no readable checkpoint: restart from 0 (else error)
    max_iters: int = 0                             # cap on the run's total iterations (0 = the whole schedule)
    checkpoint_every: int = 0                      # iterations between checkpoints (0 = only at epoch ends)
    keep_checkpoints: int = 3
    log_every: int = 1                             # metrics.jsonl row + log line every N iterations (and the last)
    progress: bool = True                          # a progress bar (on a terminal only)
    nms_impl: str = "auto"                         # proposals' NMS: auto | box_nms | numpy (symbols.nms)


# ------------------------------------------------------------------------------------------------ helpers
def parse_contexts(gpus: Optional[str] = None, cpus: Optional[int] = None) -> list:
    """``--gpus 0,1`` -> [gpu(0), gpu(1)]; ``--cpus N`` -> [cpu(0) .. cpu(N-1)]; neither -> [cpu(0)]."""
    import mxnet as mx
    if gpus is not None and cpus is not None:
        raise ValueError("give --gpus or --cpus, not both")
    if gpus is not None:
        try:
            ids = [int(g) for g in str(gpus).split(",") if g.strip() != ""]
        except ValueError:
            raise ValueError(f"--gpus must be a comma-separated list of GPU ids (e.g. 0,1,2,3), got {gpus!r}") from None
        if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"--gpus must list distinct non-negative GPU ids, got {gpus!r}")
        n = mx.context.num_gpus()
        if n == 0:
            raise ValueError("--gpus given, but this MXNet build sees no GPU (a CPU build, or no CUDA device): "
                             "install mxnet-cu112 (requirements-gpu.txt) on a GPU machine, or use --cpus N")
        if max(ids) >= n:
            raise ValueError(f"--gpus {gpus}: this machine has {n} GPU(s) (ids 0..{n - 1})")
        return [mx.gpu(i) for i in ids]
    if cpus is not None:
        if int(cpus) < 1:
            raise ValueError(f"--cpus must be >= 1, got {cpus}")
        return [mx.cpu(i) for i in range(int(cpus))]
    return [mx.cpu(0)]


@dataclass
class _Timer:
    """Seconds per phase of every iteration of this process (``benchmarks/bench_train.py`` reads ``rows``):
    ``data`` (waiting for the loader), ``issue`` (wall time to issue every device's forward and the backward),
    ``read`` (waiting for the loss terms), ``host`` (CPU time of the main thread in the step: what a GPU would
    wait for), ``mining`` (the host step of a strategy that reads predictions), ``total``."""
    rows: list = field(default_factory=list)
    current: dict = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.current[phase] = self.current.get(phase, 0.0) + seconds

    def close(self, total: float) -> None:
        self.rows.append(dict(self.current, total=total))
        self.current = {}


# ------------------------------------------------------------------------------------------------ the loop
class DetectorTraining:
    """``DetectorTraining(cfg, options, hooks=()).run()``; see the module docstring. The set-up methods
    (``setup_*``) run in :meth:`run` in order; the state hooks read is listed in :mod:`rfcn_face.train_hooks`."""

    def __init__(self, cfg, opts: TrainOptions, hooks: Sequence[HookBase] = ()):
        from .logs import get_logger
        self.cfg, self.opts = cfg, opts
        self.timer = _Timer()
        self.log = get_logger().info
        self.extra_hooks = list(hooks)
        self.hooks: list = []
        self.lr, self.stats, self.metrics, self.seconds = 0.0, [], {}, 0.0

    # ---- set-up (the pieces: rfcn_face.train_setup)
    def setup_kvstore(self):
        self.kv, self.rank, self.num_workers = open_kvstore(self.opts.kvstore)

    def setup_run_dir(self, stack):
        """Check / create the run folder; worker 0 holds its lock (rfcn_face.locks) for as long as ``stack``."""
        self.cfg, self.out, self.config_hash = open_run_dir(self.cfg, self.opts, self.rank, stack, self.log)

    def setup_data(self):
        from .datasets.batches import SampleBuilder, iterations_per_epoch
        from .datasets.loader import records_for_split
        cfg = self.cfg
        self.records = records_for_split(cfg, cfg.data.train_split)
        if not self.records:
            raise ValueError(f"no training images in {cfg.data.dataset} split {cfg.data.train_split!r}")
        self.anchor_set = cfg.anchor_set()
        # what the loader processes run per image: decode, transforms, normalisation and the prediction-free
        # part of the anchor targets (rfcn_face.assigners; complete for a strategy that reads no prediction)
        self.builder = SampleBuilder(cfg, self.records)
        self.assigner = self.builder.rpn_targets.assigner
        ipd, ndev = int(cfg.train.batch_images), len(self.contexts)
        self.G = ipd * ndev * self.num_workers
        self.per_epoch = iterations_per_epoch(len(self.records), self.G)
        self.total = int(cfg.train.epochs) * self.per_epoch
        self.stop = min(self.total, int(self.opts.max_iters)) if self.opts.max_iters > 0 else self.total

    def setup_network(self):
        from .train_step import DetectorStep
        cfg, ctx = self.cfg, self.contexts
        self.net, self.frozen, trainable = build_network(cfg, ctx, self.log if self.rank == 0 else None)
        self.trainer = sgd_trainer(cfg, trainable)
        self.sync = GradientSync(self.kv, trainable.values(), len(ctx))
        self.step = DetectorStep(cfg, self.net, self.assigner, ctx, self.timer, self.opts.nms_impl)

    def resume(self) -> int:
        """Load the newest complete checkpoint (falling back to older ones); returns its iteration."""
        def load(ckpt, state):
            if state.get("config_hash") != self.config_hash:
                raise RunDirError(f"{ckpt}: written with another config (hash {state.get('config_hash')}, "
                                  f"run config {self.config_hash})")
            self.net.load_parameters(str(ckpt / "model.params"), ctx=self.contexts)
            self.trainer.load_states(str(ckpt / "trainer.states"))

        found = load_newest(self.out, load, log=self.log if self.rank == 0 else (lambda *a: None),
                            restart_if_unreadable=self.opts.restart_if_unreadable, set_aside=self.rank == 0)
        if found is None:
            return 0                              # the run stopped before its first checkpoint
        ckpt, state = found
        if self.rank == 0:
            self.log(f"resuming from {ckpt} (iteration {state['iteration']})")
        return int(state["iteration"])

    def build_hooks(self) -> list:
        """The built-in hooks (module docstring), then the caller's."""
        o = self.opts
        return [LRSchedule(), NaNStop(), MetricsLogger(o.log_every, o.progress),
                Checkpointer(o.checkpoint_every, o.keep_checkpoints)] + self.extra_hooks

    def _call(self, stage: str):
        for h in self.hooks:
            getattr(h, stage)()

    # ---- one iteration
    def run_step(self, samples) -> dict:
        """Data (already on the devices) -> losses -> backward, issued on every device -> one read of the loss
        terms -> ``after_backward`` hooks -> gradient sum -> update (issued: the next step overlaps it). Returns
        the step's metrics. The timer's ``host`` phase is the main thread's CPU time of the step."""
        ipd = int(self.cfg.train.batch_images)
        device_samples = [samples[d * ipd:(d + 1) * ipd] for d in range(len(self.contexts))]
        c0, t0 = time.thread_time(), time.perf_counter()
        stats = self.step.forward_backward(device_samples, self.iter)
        c1, t1 = time.thread_time(), time.perf_counter()
        self.stats = self.step.read_stats(device_samples, stats)           # waits for the forward values only
        t2 = time.perf_counter()
        for v in self.stats:
            v["loss"] = v["rpn_cls_loss"] + v["rpn_bbox_loss"] + v["rcnn_cls_loss"] + v["rcnn_bbox_loss"]
        self._call("after_backward")
        c2 = time.thread_time()
        self.sync.allreduce()
        self.trainer.update(self.G)
        self.timer.add("issue", t1 - t0)
        self.timer.add("read", t2 - t1)
        self.timer.add("host", (c1 - c0) + (time.thread_time() - c2))
        return step_metrics(self.stats)

    # ---- the run
    def run(self) -> dict:
        from .logs import run_log
        self.contexts = self.opts.contexts or parse_contexts()
        self.setup_kvstore()
        with contextlib.ExitStack() as stack:
            self.setup_run_dir(stack)
            stack.enter_context(run_log(self.out, enabled=self.rank == 0))
            return self._run()

    def _jobs(self):
        """One list of ``(epoch, image index)`` per iteration: this worker's share of the global batch."""
        from .datasets.batches import global_batch, shard
        seed, n = self.cfg.train.seed, len(self.records)
        for it in range(self.start, self.stop):
            epoch, k = divmod(it, self.per_epoch)
            parts = shard(global_batch(seed, epoch, k, n, self.G), self.rank, self.num_workers, len(self.contexts))
            yield [(epoch, int(i)) for part in parts for i in part]

    def _run(self) -> dict:
        import mxnet as mx

        from .datasets.process_loader import ProcessLoader, loader_workers
        cfg = self.cfg
        self.setup_data()
        self.setup_network()
        self.start = self.resume() if self.opts.resume else 0
        self.sync.broadcast()
        if self.rank == 0:
            self.log(f"training {cfg.name}: {len(self.records)} images, global batch {self.G} "
                     f"({cfg.train.batch_images} per device x {len(self.contexts)} device(s) x {self.num_workers} "
                     f"worker(s)), {self.per_epoch} iterations per epoch, {cfg.train.epochs} epochs = {self.total} "
                     f"iterations; this run: {self.start} -> {self.stop}")
        self.hooks = self.build_hooks()
        for h in self.hooks:
            h.trainer = self
        self.iter, last = self.start, None
        from .train_step import DeviceUpload
        upload = DeviceUpload(self.contexts, cfg.train.batch_images)
        with ProcessLoader(self.builder, self._jobs(), workers=loader_workers(cfg), to_device=upload) as loader:
            self._call("before_train")
            stall, t0 = 0.0, time.perf_counter()
            for samples in loader:
                self.timer.add("data", loader.stall - stall)
                stall = loader.stall
                self._call("before_step")
                self.metrics = self.run_step(samples)
                self.seconds = time.perf_counter() - t0
                self.timer.close(self.seconds)
                self._call("after_step")
                last = self.metrics
                self.iter += 1
                t0 = time.perf_counter()
        # the last update (and, with a dist kvstore, its gradient exchange) is still in flight: finish it before the
        # hooks save and the process ends (MXNet's exit handler stops the engine, dropping pending pushes that
        # the other workers wait for)
        mx.nd.waitall()
        self._call("after_train")
        if self.rank == 0:
            png = getattr(self, "loss_png", None)
            self.log(f"wrote {self.out / FINAL_PARAMS}" + (f" and {png}" if png else ""))
        return {"iterations": self.iter, "stop": self.stop, "total": self.total, "last": last,
                "run_dir": str(self.out), "rank": self.rank}


def train(cfg, opts: TrainOptions, hooks: Sequence[HookBase] = ()) -> dict:
    """Train ``cfg`` with ``opts`` (and extra ``hooks``); returns a summary dict (see :class:`DetectorTraining`)."""
    return DetectorTraining(cfg, opts, hooks).run()
