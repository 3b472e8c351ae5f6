"""Training loop of the R-FCN face detector (Sec. 5.1, following R-FCN): Gluon Trainer, contexts + kvstore,
exact resume, atomic checkpoints, metrics and progress.

One iteration
-------------
1. The global batch of iteration ``i`` (:mod:`rfcn_face.datasets.batches`): ``G`` = images per device
   (``train.batch_images``, 1 as R-FCN) x devices x workers images of the epoch order; this worker's share is
   split over its devices. Each image's random draws (flip, shift jitter, multi-scale size, the RPN minibatch,
   the RoI minibatch) are keyed by (seed, epoch, image index). The next iteration's images are loaded, and
   their anchor targets computed (max-IoU / HC(N): they need no prediction), in ``data.num_workers`` loader
   processes (:mod:`rfcn_face.datasets.process_loader`, 0 = min(cores - 1, 8)); for
   ``rpn.assign: hambox | cleanliness`` (or ``rpn.cls_loss: focal``) only the prediction-free half is, and
   :mod:`rfcn_face.mining` finishes the targets after the RPN forward from this iteration's predictions.
2. Per device, per image, under ``autograd.record``: backbone (+ BU / BUS) + RPN (:mod:`symbols.rfcn`);
   proposals over our anchor set (``rpn.*`` top-N, NMS), proposal targets (gt appended, ``rcnn.*`` IoUs), the
   PSROI head on those RoIs, OHEM (``rcnn.ohem_mode``, Sec. 5.1 1:3 or R-FCN top-B) — the numpy forwards of
   :mod:`rfcn_face.targets`, exactly what the CustomOps of ``operators/`` run; losses
   (:mod:`symbols.detection_losses`, normalised per image as R-FCN does):

       L_img = CE_rpn / #sampled anchors + sum(w * smoothL1_3(rpn deltas)) / rpn.batch_size
             + CE_rcnn / #OHEM RoIs + sum(w * smoothL1_1(head deltas)) / rcnn.ohem_batch_size

3. ``backward`` of every image's loss, gradients summed over devices and workers by the kvstore, rescaled by
   ``1 / G`` (the gradient of the mean image loss), then SGD with momentum ``train.momentum``, weight decay
   ``train.wd`` and the learning rate of :func:`learning_rate` (``train.lr`` -> x ``train.lr_factor`` after each
   epoch in ``train.lr_steps``, optional linear warm-up over ``train.warmup_iters``).

The optimizer update runs on the workers (``update_on_kvstore=False``) for every kvstore, ``dist_sync``
included: the servers only sum gradients, so the learning-rate schedule and the optimizer states (momentum)
live where the checkpoints are written, and a resumed run continues bit for bit. Worker 0's parameters are
broadcast to every worker before the first gradient is pushed (:meth:`DetectorTraining._broadcast_parameters`).

Frozen as in R-FCN (``train.freeze: rfcn``): conv1, res2 and every BatchNorm (global statistics, gamma / beta
fixed); ``bn`` keeps only the BatchNorms fixed (a backbone trained from random init).

Run folder
----------
``config.yaml`` (the resolved config), ``checkpoints/iter-NNNNNNN/`` (``model.params``, ``trainer.states``,
``state.json``; atomic, the newest ``keep`` kept), ``metrics.jsonl`` (one JSON object per logged iteration:
``iter`` = iterations done including this one, ``lr`` = the rate this iteration used, the four loss terms and
their sum averaged over this worker's images, ``rpn_acc`` / ``rcnn_acc`` over the sampled anchors / OHEM RoIs,
``matched_per_face`` = positive anchors per face before sampling, ``s_per_iter``),
``loss.png`` and ``final.params`` (``save_parameters`` of the whole detector: what
:class:`rfcn_face.detector.FaceDetector` loads). With a dist kvstore only worker 0 writes.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .checkpoint import (CONFIG_FILE, FINAL_PARAMS, METRICS_FILE, RunDirError, TrainingDiverged, atomic_write_text,
                         config_hash, json_safe, load_newest, newest_checkpoint, prepare_run_dir, save_checkpoint)

__all__ = ["TrainOptions", "TrainingDiverged", "learning_rate", "parse_contexts", "train", "DetectorTraining",
           "CONFIG_FILE", "METRICS_FILE", "FINAL_PARAMS", "METRIC_KEYS"]

METRIC_KEYS = ("iter", "epoch", "lr", "loss", "rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss",
               "rpn_acc", "rcnn_acc", "matched_per_face", "s_per_iter")


KVSTORES = ("local", "device", "dist_sync", "dist_device_sync")   # dist_*: under ``launch`` (MXNet's kvstore)


@dataclass
class TrainOptions:
    out: str
    contexts: list = field(default_factory=list)   # mx.Context list ([] = one CPU context)
    kvstore: str = "local"                         # local | device | dist_sync | dist_device_sync
    resume: bool = False
    max_iters: int = 0                             # cap on the run's total iterations (0 = the whole schedule)
    checkpoint_every: int = 0                      # iterations between checkpoints (0 = only at epoch ends)
    keep_checkpoints: int = 3
    log_every: int = 1
    progress: bool = True


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


# ------------------------------------------------------------------------------------------------ helpers
def _first_difference(a: dict, b: dict, prefix: str = "") -> Optional[str]:
    for k in sorted(set(a) | set(b)):
        if k in ("name", "description", "paper"):
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _first_difference(va, vb, f"{prefix}{k}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{k}: run has {va!r}, given {vb!r}"
    return None


def _truncate_metrics(path: Path, last_iter: int) -> None:
    """Keep the metric lines of iterations <= ``last_iter`` (those after a checkpoint are redone on resume)."""
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


def plot_losses(metrics_path, out_png) -> Optional[Path]:
    """Loss curves (total and the four terms) from ``metrics.jsonl``."""
    rows = [json.loads(l) for l in Path(metrics_path).read_text().splitlines() if l.strip()]
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
        ax.plot(it[w - 1:], sm, lw=2.0 if k == "loss" else 1.0, label=k)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (running mean)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


@dataclass
class _Timer:
    """Seconds per phase of every iteration of this process (``benchmarks/bench_train.py`` reads ``rows``):
    ``data`` (waiting for the loader), ``forward_backward``, ``target_ops`` (proposals, proposal targets, OHEM),
    ``anchor_target`` (in the loader processes, overlapped with the compute), ``mining`` (the prediction-reading
    half of the anchor targets, after the RPN forward), ``update`` and ``total``."""
    rows: list = field(default_factory=list)
    current: dict = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.current[phase] = self.current.get(phase, 0.0) + seconds

    def close(self, total: float) -> None:
        self.rows.append(dict(self.current, total=total))
        self.current = {}


# ------------------------------------------------------------------------------------------------ the loop
class DetectorTraining:
    """``DetectorTraining(cfg, options).run()``; see the module docstring."""

    def __init__(self, cfg, opts: TrainOptions):
        self.cfg, self.opts = cfg, opts
        self.timer = _Timer()
        self.log = print

    # ---- set-up
    def _setup_kvstore(self):
        import mxnet as mx
        kv = self.opts.kvstore
        if kv not in KVSTORES:
            raise ValueError(f"--kvstore must be one of {', '.join(KVSTORES)}, got {kv!r}")
        if kv.startswith("dist"):
            if not os.environ.get("DMLC_ROLE"):
                raise ValueError(f"--kvstore {kv} needs the DMLC_* variables of a launched job: run it under "
                                 "'python -m rfcn_face launch --workers W --servers S -- train ...' "
                                 "(docs/training.md shows the multi-host form)")
            self.kv = mx.kv.create(kv)
            self.rank, self.num_workers = self.kv.rank, self.kv.num_workers
        else:
            self.kv, self.rank, self.num_workers = kv, 0, 1

    def _setup_run_dir(self):
        from .config import config_text, dump_config, load_config, resolve_normalisation
        cfg, out = self.cfg, Path(self.opts.out)
        resolve_normalisation(cfg)
        if self.opts.resume:
            run_cfg_path = out / CONFIG_FILE
            if self.rank == 0:
                prepare_run_dir(out, True, CONFIG_FILE)
            elif not run_cfg_path.is_file():
                raise RunDirError(f"--resume: {out} is not a run folder (no {CONFIG_FILE})")
            saved = load_config(run_cfg_path)
            diff = _first_difference(saved.to_dict(), cfg.to_dict())
            if diff:
                raise RunDirError(f"--resume: the given config differs from {run_cfg_path} ({diff}); resume with "
                                  "the run's own config, or start a new run folder")
            self.cfg = cfg = saved
        elif self.rank == 0:
            prepare_run_dir(out, False, CONFIG_FILE)
            dump_config(cfg, out / CONFIG_FILE)
        self.out = out
        self.config_hash = config_hash(config_text(cfg))

    def _setup_data(self):
        from .assign import AssignParams
        from .datasets.batches import SampleBuilder
        from .datasets.loader import records_for_split
        from .mining import MiningParams
        from .proposals import ProposalParams, ProposalTargetParams
        from .sampling import OHEMParams, RPNSampling
        cfg = self.cfg
        self.records = records_for_split(cfg, cfg.data.train_split)
        if not self.records:
            raise ValueError(f"no training images in {cfg.data.dataset} split {cfg.data.train_split!r}")
        self.anchor_set = cfg.anchor_set()
        self.assign_params = AssignParams.from_config(cfg)
        self.mining = MiningParams.from_config(cfg)
        # every knob of the targets through its one reader (the operators' *_kwargs build on the same ones)
        self.rpn_sampling = RPNSampling.from_config(cfg)
        self.proposal_params = ProposalParams.from_config(cfg, train=True)
        self.roi_params = ProposalTargetParams.from_config(cfg)
        self.ohem = OHEMParams.from_config(cfg)
        # what the loader processes run per image: decode, transforms, normalisation, and the anchor targets
        # that need no prediction (datasets.batches.RPNTargetMaker)
        self.builder = SampleBuilder(cfg, self.records)

    @property
    def legacy_rpn(self) -> bool:
        """max_iou / hc with the softmax loss: the loader computes complete RPN targets (bit-identical runs).
        Otherwise (hambox / cleanliness, or the focal loss) it computes the prediction-free half
        (rfcn_face.mining.prepare_mining) and _image_losses the rest after the forward pass, from this
        iteration's decoded RPN boxes and face probabilities."""
        return self.builder.rpn_targets.complete

    def _setup_network(self):
        import mxnet as mx
        from mxnet import gluon

        from symbols.rfcn import build_detector
        from symbols.weights import init_detector
        cfg, ctx = self.cfg, self.contexts
        self.net = net = build_detector(cfg)
        mx.random.seed(int(cfg.train.seed))
        report = init_detector(net, cfg.model.pretrained, ctx=ctx, zero_residual=cfg.model.zero_init_residual)
        if self.rank == 0:
            if report is None:
                self.log("note: random initialisation (no model.pretrained / --pretrained): fine for CPU runs on "
                         "synthfaces, not for the paper's numbers")
            else:
                self.log(report.summary())
        self.frozen = net.freeze_fixed_params(cfg.train.freeze)
        net.hybridize(static_alloc=False)
        trainable = {p.name: p for p in net.collect_params().values() if p.grad_req != "null"}
        self.trainer = gluon.Trainer(trainable, "sgd",
                                     {"learning_rate": cfg.train.lr, "momentum": cfg.train.momentum,
                                      "wd": cfg.train.wd},
                                     kvstore=self.kv if len(ctx) > 1 or self.num_workers > 1 else None,
                                     update_on_kvstore=False)

    def _broadcast_parameters(self):
        """Put worker 0's parameters on every device and worker, and wait, before the first gradient push.

        Gluon's Trainer does this broadcast lazily inside its first ``step``, and there the weight pull of a key is
        not ordered against the gradient push of the same key (different engine buffers): a pull that reaches the
        dist_sync server after every worker's push returns the summed gradient instead of the weights, and that
        worker trains from garbage (about 1 launch in 30 on this machine, the loss at 1e31 by iteration 4)."""
        import mxnet as mx
        tr = self.trainer                     # the Trainer's own lazy set-up, done now (MXNet 1.9 internals)
        if not tr._kv_initialized:
            tr._init_kvstore()
        if tr._params_to_init:
            tr._init_params()
        mx.nd.waitall()

    def _resume(self) -> int:
        """Load the newest complete checkpoint (falling back to older ones); returns its iteration."""
        def load(ckpt, state):
            if state.get("config_hash") != self.config_hash:
                raise RunDirError(f"{ckpt}: written with another config (hash {state.get('config_hash')}, "
                                  f"run config {self.config_hash})")
            self.net.load_parameters(str(ckpt / "model.params"), ctx=self.contexts)
            self.trainer.load_states(str(ckpt / "trainer.states"))

        found = load_newest(self.out, load, log=self.log if self.rank == 0 else (lambda *a: None))
        if found is None:
            return 0                              # the run stopped before its first checkpoint
        ckpt, state = found
        if self.rank == 0:
            self.log(f"resuming from {ckpt} (iteration {state['iteration']})")
        return int(state["iteration"])

    def _save(self, iteration: int, epoch: int):
        if self.rank != 0:
            return None

        def write(tmp: Path):
            self.net.save_parameters(str(tmp / "model.params"))
            self.trainer.save_states(str(tmp / "trainer.states"))

        return save_checkpoint(self.out, iteration, write,
                               {"epoch": epoch, "config_hash": self.config_hash, "global_batch": self.G,
                                "iters_per_epoch": self.per_epoch}, keep=self.opts.keep_checkpoints)

    # ---- one image
    def _image_losses(self, sample, ctx):
        """Forward of one image under ``autograd.record``: (total loss, per-term values as floats)."""
        import mxnet as mx

        from symbols.detection_losses import (RCNN_SIGMA, RPN_SIGMA, label_accuracy, rpn_classification_loss,
                                              softmax_cross_entropy, weighted_smooth_l1)
        from symbols.rfcn import to_anchor_order

        from .datasets.batches import roi_rng
        from .targets import ohem_numpy, proposal_numpy, proposal_target_numpy
        cfg, nd = self.cfg, mx.nd
        data = nd.array(sample.image[None], ctx=ctx)
        rpn_cls, rpn_bbox, feat = self.net(data)
        self.timer.add("anchor_target", sample.rpn_seconds)
        n_anchors = rpn_cls.shape[2] * rpn_cls.shape[3] * self.anchor_set.num_per_location
        n_targets = len(sample.rpn[0]) if self.legacy_rpn else len(sample.rpn[1].anchor_boxes)
        if n_anchors != n_targets:
            raise RuntimeError(f"RPN map {rpn_cls.shape[2:]} does not match the {n_targets} anchor targets of "
                               f"a {sample.im_info[:2]} image")
        cls_np, bbox_np = rpn_cls.asnumpy(), rpn_bbox.asnumpy()
        if self.legacy_rpn:
            label, target, weight, matched = sample.rpn
        else:
            t0 = time.perf_counter()
            label, cls_t, cls_w, target, weight, matched = self._mined_targets(sample, cls_np, bbox_np)
            self.timer.add("mining", time.perf_counter() - t0)
        t0 = time.perf_counter()
        im_info = sample.im_info[None]
        rois, _ = proposal_numpy(cls_np, bbox_np, im_info, self.anchor_set, **self.proposal_params.kwargs())
        rois_t, rlab, rtgt, rw = proposal_target_numpy(
            rois, sample.gt[None], rng=[roi_rng(cfg.train.seed, sample.epoch, sample.index)],
            **self.roi_params.kwargs())
        self.timer.add("target_ops", time.perf_counter() - t0)
        cls_score, bbox_pred = self.net.head(feat, nd.array(rois_t, ctx=ctx))
        o = self.ohem
        if o.enabled:
            prob = nd.softmax(cls_score, axis=-1).asnumpy()
            box_np = bbox_pred.asnumpy()
            t0 = time.perf_counter()
            rlab, rw = ohem_numpy(prob, box_np, rlab, rtgt, rw, rois_t, batch_size=o.batch_size,
                                  fg_fraction=o.fg_fraction, mode=o.mode)
            self.timer.add("target_ops", time.perf_counter() - t0)
        a_cls = to_anchor_order(nd, rpn_cls, 2)[0]
        a_box = to_anchor_order(nd, rpn_bbox, 4)[0]
        if self.legacy_rpn:
            rpn_cls_loss, rpn_ok, rpn_n = softmax_cross_entropy(nd, a_cls, nd.array(label, ctx=ctx))
        else:   # sum_a w_a * l(logits_a, t_a), normalisation in w (rfcn_face.mining)
            m = self.mining
            rpn_cls_loss = rpn_classification_loss(nd, a_cls, nd.array(cls_t, ctx=ctx), nd.array(cls_w, ctx=ctx),
                                                   m.cls_loss, m.focal_alpha, m.focal_gamma)
            rpn_ok, rpn_n = label_accuracy(nd, a_cls, nd.array(label, ctx=ctx))
        rpn_box_loss = weighted_smooth_l1(nd, a_box, nd.array(target, ctx=ctx), nd.array(weight, ctx=ctx),
                                          RPN_SIGMA, self.rpn_sampling.batch_size)
        rcnn_cls_loss, rcnn_ok, rcnn_n = softmax_cross_entropy(nd, cls_score, nd.array(rlab, ctx=ctx))
        rcnn_box_loss = weighted_smooth_l1(nd, bbox_pred, nd.array(rtgt, ctx=ctx), nd.array(rw, ctx=ctx),
                                           RCNN_SIGMA, o.rois_per_image)
        total = rpn_cls_loss + rpn_box_loss + rcnn_cls_loss + rcnn_box_loss
        faces = sample.gt[:, 4] == 0
        stats = {"rpn_cls_loss": rpn_cls_loss, "rpn_bbox_loss": rpn_box_loss, "rcnn_cls_loss": rcnn_cls_loss,
                 "rcnn_bbox_loss": rcnn_box_loss, "rpn_ok": rpn_ok, "rpn_n": rpn_n, "rcnn_ok": rcnn_ok,
                 "rcnn_n": rcnn_n, "matched": float(matched[faces].sum()), "faces": float(faces.sum())}
        return total, stats

    def _mined_targets(self, sample, cls_np, bbox_np):
        """rfcn_face.mining.finish_mining on this iteration's predictions (numpy: no gradient through them):
        ``(loss labels, cls_target, cls_weight, bbox_target, bbox_weight, matched per gt row)``."""
        from .anchors import to_anchor_order_np
        from .boxes import decode
        from .datasets.batches import STREAM_RPN, image_rng
        from .mining import finish_mining
        from .targets import face_probabilities
        present, plan = sample.rpn
        pred = prob = None
        if self.mining.needs_predictions:
            pred = decode(plan.anchor_boxes, to_anchor_order_np(np.asarray(bbox_np, np.float64), 4)[0])
            prob = face_probabilities(cls_np)[0]
        rpn = self.rpn_sampling
        res = finish_mining(plan, pred, prob, rng=image_rng(self.cfg.train.seed, STREAM_RPN, sample.epoch,
                                                              sample.index),
                            batch_size=rpn.batch_size, fg_fraction=rpn.fg_fraction)
        matched = np.zeros(len(sample.gt))
        matched[present] = res.matched
        return res.loss_labels, res.cls_target, res.cls_weight, res.bbox_target, res.bbox_weight, matched

    def _step(self, device_samples) -> dict:
        """Forward + backward of this worker's images (a list per device), then the optimizer update."""
        from mxnet import autograd
        import mxnet as mx
        t0 = time.perf_counter()
        per_image = []
        for ctx, samples in zip(self.contexts, device_samples):
            if not samples:
                continue
            with autograd.record():
                outs = [self._image_losses(s, ctx) for s in samples]
            autograd.backward([o[0] for o in outs])
            per_image.extend(outs)
        mx.nd.waitall()
        t1 = time.perf_counter()
        values = [{k: (float(v.asscalar()) if hasattr(v, "asscalar") else float(v)) for k, v in st.items()}
                  for _, st in per_image]
        for v in values:
            v["loss"] = v["rpn_cls_loss"] + v["rpn_bbox_loss"] + v["rcnn_cls_loss"] + v["rcnn_bbox_loss"]
        if not all(math.isfinite(v["loss"]) for v in values):
            return {"diverged": True}
        self.trainer.step(self.G)
        mx.nd.waitall()
        self.timer.add("forward_backward", t1 - t0)
        self.timer.add("update", time.perf_counter() - t1)
        n = len(values)
        mean = {k: sum(v[k] for v in values) / n for k in ("loss", "rpn_cls_loss", "rpn_bbox_loss",
                                                            "rcnn_cls_loss", "rcnn_bbox_loss")}
        tot = {k: sum(v[k] for v in values) for k in ("rpn_ok", "rpn_n", "rcnn_ok", "rcnn_n", "matched", "faces")}
        mean["rpn_acc"] = tot["rpn_ok"] / max(tot["rpn_n"], 1.0)
        mean["rcnn_acc"] = tot["rcnn_ok"] / max(tot["rcnn_n"], 1.0)
        mean["matched_per_face"] = tot["matched"] / tot["faces"] if tot["faces"] else float("nan")
        return mean

    # ---- the run
    def run(self) -> dict:
        from .datasets.batches import global_batch, iterations_per_epoch, shard
        from .datasets.process_loader import ProcessLoader, loader_workers
        cfg0 = self.cfg
        self.contexts = self.opts.contexts or parse_contexts()
        self._setup_kvstore()
        self._setup_run_dir()
        cfg = self.cfg
        if cfg0 is not cfg and self.rank == 0:
            self.log(f"using the run's config {self.out / CONFIG_FILE}")
        self._setup_data()
        ipd, ndev = int(cfg.train.batch_images), len(self.contexts)
        self.G = ipd * ndev * self.num_workers
        n = len(self.records)
        self.per_epoch = iterations_per_epoch(n, self.G)
        total = int(cfg.train.epochs) * self.per_epoch
        stop = min(total, int(self.opts.max_iters)) if self.opts.max_iters > 0 else total
        self._setup_network()
        start = self._resume() if self.opts.resume else 0
        self._broadcast_parameters()
        metrics_path = self.out / METRICS_FILE
        if self.rank == 0:
            _truncate_metrics(metrics_path, start)
            self.log(f"training {cfg.name}: {n} images, global batch {self.G} ({ipd} per device x {ndev} "
                     f"device(s) x {self.num_workers} worker(s)), {self.per_epoch} iterations per epoch, "
                     f"{cfg.train.epochs} epochs = {total} iterations; this run: {start} -> {stop}")
        seed = cfg.train.seed

        def jobs():
            for it in range(start, stop):
                epoch, k = divmod(it, self.per_epoch)
                parts = shard(global_batch(seed, epoch, k, n, self.G), self.rank, self.num_workers, ndev)
                yield [(epoch, int(i)) for part in parts for i in part]

        prefetch = ProcessLoader(self.builder, jobs(), workers=loader_workers(cfg))
        bar = None
        if self.opts.progress and self.rank == 0:
            from tqdm import tqdm
            bar = tqdm(total=stop, initial=start, desc=f"train {cfg.name}", unit="it", dynamic_ncols=True,
                       file=sys.stderr)
        last, stall = None, 0.0
        it = start
        t0 = time.perf_counter()
        try:
            for samples in prefetch:
                epoch = it // self.per_epoch
                self.timer.add("data", prefetch.stall - stall)
                stall = prefetch.stall
                lr = learning_rate(cfg, it, self.per_epoch)
                self.trainer.set_learning_rate(lr)
                device_samples = [samples[d * ipd:(d + 1) * ipd] for d in range(ndev)]
                m = self._step(device_samples)
                if m.get("diverged"):
                    good = newest_checkpoint(self.out) if self.rank == 0 else None
                    raise TrainingDiverged(f"loss is NaN or inf at iteration {it} (epoch {epoch}, lr {lr:g}); "
                                           "parameters were not updated; last good checkpoint: "
                                           f"{good if good else 'none'}")
                it += 1
                dt = time.perf_counter() - t0
                self.timer.close(dt)
                if self.rank == 0 and ((it - start) % max(1, self.opts.log_every) == 0 or it == stop):
                    row = {"iter": it, "epoch": epoch, "lr": lr, **m, "s_per_iter": dt}
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(json_safe(row)) + "\n")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{m['loss']:.3f}", s_it=f"{dt:.2f}", lr=f"{lr:.1e}")
                last = m
                every = self.opts.checkpoint_every
                if (every > 0 and it % every == 0) or it % self.per_epoch == 0 or it == stop:
                    self._save(it, it // self.per_epoch)
                t0 = time.perf_counter()
        finally:
            prefetch.close()
            if bar is not None:
                bar.close()
        summary = {"iterations": it, "stop": stop, "total": total, "last": last, "run_dir": str(self.out),
                   "rank": self.rank}
        if self.rank == 0:
            self.net.save_parameters(str(self.out / FINAL_PARAMS))
            png = plot_losses(metrics_path, self.out / "loss.png") if metrics_path.is_file() else None
            self.log(f"wrote {self.out / FINAL_PARAMS}" + (f" and {png}" if png else ""))
        return summary


def train(cfg, opts: TrainOptions) -> dict:
    """Train ``cfg`` with ``opts``; returns a summary dict (see :class:`DetectorTraining`)."""
    return DetectorTraining(cfg, opts).run()
