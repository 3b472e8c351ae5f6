"""Gluon training loop for FaceResNet with NormFace's normalised softmax + contrastive-center loss (Sec. 3.2).

Loss per batch: mean(NormSoftmax) + ``ccl_weight`` * mean(ContrastiveCenter), both on the fc5 feature.
SGD with momentum and weight decay, step schedule (lr x ``lr_factor`` at each epoch in ``lr_steps``),
an atomic checkpoint per epoch (:mod:`rfcn_face.checkpoint`: ``OUT/checkpoints/iter-NNNNNNN/`` with the
network, the loss heads, the trainer state and ``state.json``; NNNNNNN = epochs done), ``resume`` continues
from the newest checkpoint that loads, falling back to the previous one when the newest is truncated (and
saying so); ``OUT/last.json`` repeats the newest epoch and history; tqdm progress per epoch.

The command line validates every argument, refuses to mix runs in one folder (``OUT/frn_config.json`` holds the
run's arguments; a non-empty ``--out`` without ``--resume``, or ``--resume`` with other arguments, is an error)
and, when interrupted, says to rerun with ``--resume``.

Command line (also ``python -m rfcn_face.recognition.train --help``)::

    # embedded identities: 100 LFW crops x 10 augmented views, 7 views train, 3 held out as probes
    python -m rfcn_face.recognition.train --embedded --out outputs/frn_lfw --epochs 12 --width 0.125
    # your own folder-per-identity dataset of aligned 112x96 crops
    python -m rfcn_face.recognition.train --folder /data/casia_aligned --out outputs/frn --epochs 30

The contrastive-center term is applied to the L2-normalised fc5 feature by default (``--ccl-raw`` for the
raw feature): the normalised softmax is blind to the feature norm, which grows to several hundred during
training, and on raw features every squared distance is then ~||x||^2, the ratio sticks at 1 / (K - 1) and
the centres (gradient ~1 / (K ||x||)) do not move — measured here: the term stayed at 0.0051 for 9 epochs.
Even on unit features a centre's gradient is ~1 / (K * batch) per sample, so the centres get their own
learning-rate multiplier (``ccl_lr_mult``, default 1000, no weight decay) — the centre-update rate of the
center / contrastive-center losses is likewise separate from the network's.

After training, features of the training views (base) and held-out views (probes) are L2-normalised and
searched exactly (``rfcn_face.search``, strategy ``flat``); top-1 is printed next to chance (1 / identities).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..checkpoint import TrainingDiverged

__all__ = ["TrainConfig", "FRNTrainer", "TrainingDiverged", "extract_features", "identification_top1", "main"]


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    wd: float = 5e-4
    lr_steps: list = field(default_factory=lambda: [8, 11])  # epochs after which lr *= lr_factor
    lr_factor: float = 0.1
    scale: float = 16.0            # NormFace scale s
    learn_scale: bool = False
    ccl_weight: float = 1.0        # lambda of the contrastive-center term
    ccl_delta: float = 1.0
    ccl_lr_mult: float = 1000.0    # learning-rate multiplier of the centres (no weight decay on them)
    ccl_normalized: bool = True    # contrastive-center loss on L2-normalised features (see module doc)
    width: float = 1.0             # FRN channel multiplier (1.0 = Table 1)
    embedding: int = 512
    flip: bool = True              # random horizontal flip of training batches
    seed: int = 0

    def check(self) -> "TrainConfig":
        """ValueError naming the first field out of range (non-positive sizes and rates, NaN / inf)."""
        import math
        import numbers
        for name, lo, open_lo in (("epochs", 1, False), ("batch_size", 1, False), ("embedding", 1, False),
                                  ("lr", 0.0, True), ("width", 0.0, True), ("scale", 0.0, True),
                                  ("lr_factor", 0.0, True), ("momentum", 0.0, False), ("wd", 0.0, False),
                                  ("ccl_weight", 0.0, False), ("ccl_delta", 0.0, True), ("ccl_lr_mult", 0.0, False)):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or not math.isfinite(v) or v < lo or (open_lo and v == lo):
                raise ValueError(f"TrainConfig.{name} must be {'>' if open_lo else '>='} {lo} and finite, got {v!r}")
        if self.momentum >= 1:
            raise ValueError(f"TrainConfig.momentum must be < 1, got {self.momentum}")
        steps = list(self.lr_steps)
        if any(int(x) != x or x < 1 for x in steps) or steps != sorted(set(steps)):
            raise ValueError(f"TrainConfig.lr_steps must be increasing positive epochs, got {steps}")
        return self

    def lr_at(self, epoch):
        """Learning rate of (0-based) ``epoch`` under the step schedule."""
        return self.lr * self.lr_factor ** sum(epoch >= s for s in self.lr_steps)


class FRNTrainer:
    """Owns the network, the two loss heads and the Gluon Trainer; ``fit`` runs epochs with checkpoints."""

    def __init__(self, num_classes, cfg: TrainConfig, out=None, ctx=None):
        import mxnet as mx
        from mxnet import gluon

        from symbols.face_losses import ContrastiveCenterLoss, NormSoftmaxLoss
        from symbols.faceresnet import FaceResNet

        if int(num_classes) < 2:
            raise ValueError(f"FaceResNet training needs at least 2 identities, got {num_classes}")
        self.cfg, self.num_classes = cfg.check(), int(num_classes)
        self.ctx = ctx or mx.cpu()
        self.out = Path(out) if out else None
        mx.random.seed(cfg.seed)
        self.net = FaceResNet(embedding=cfg.embedding, width=cfg.width, prefix="frn_")
        self.softmax = NormSoftmaxLoss(num_classes, cfg.embedding, scale=cfg.scale, learn_scale=cfg.learn_scale,
                                       prefix="normface_")
        self.ccl = ContrastiveCenterLoss(num_classes, cfg.embedding, delta=cfg.ccl_delta, prefix="ccl_")
        for b in (self.net, self.softmax, self.ccl):
            b.initialize(ctx=self.ctx)
            b.hybridize()
        self.ccl.centers.lr_mult = cfg.ccl_lr_mult
        self.ccl.centers.wd_mult = 0.0
        params = self.net.collect_params()
        params.update(self.softmax.collect_params())
        params.update(self.ccl.collect_params())
        self.trainer = gluon.Trainer(params, "sgd", {"learning_rate": cfg.lr, "momentum": cfg.momentum,
                                                     "wd": cfg.wd})
        self.epoch = 0
        self.history = []  # one dict per finished epoch

    # ---- checkpoints
    FILES = {".net.params": "net", ".normface.params": "softmax", ".ccl.params": "ccl"}

    def save(self, keep: int = 3):
        """An atomic checkpoint ``OUT/checkpoints/iter-<epoch>/`` (:func:`rfcn_face.checkpoint.save_checkpoint`)
        and ``OUT/last.json`` (epoch, config, history); keeps the newest ``keep`` checkpoints (0 = all)."""
        if self.out is None:
            return None
        from ..checkpoint import atomic_write_json, save_checkpoint

        def write(tmp: Path):
            for suffix, attr in self.FILES.items():
                getattr(self, attr).save_parameters(str(tmp / f"model{suffix}"))
            self.trainer.save_states(str(tmp / "trainer.states"))

        meta = {"epoch": self.epoch, "num_classes": self.num_classes, "config": asdict(self.cfg),
                "history": self.history}
        ckpt = save_checkpoint(self.out, self.epoch, write, meta, keep=keep)
        atomic_write_json(self.out / "last.json", dict(meta, checkpoint=str(ckpt)), indent=2)
        return ckpt

    def resume(self, log=print, restart_if_unreadable: bool = False):
        """Load the newest checkpoint of ``out`` that loads, falling back to the previous one when a file of the
        newest is truncated or unreadable (and saying so); returns the epoch reached (0 when there is none)."""
        from ..checkpoint import RunDirError, load_newest
        if self.out is None:
            return 0

        def load(ckpt, state):
            if state.get("num_classes") != self.num_classes:
                raise RunDirError(f"{ckpt}: checkpoint has {state.get('num_classes')} identities, the data "
                                  f"{self.num_classes}: another data set; use a new --out")
            for suffix, attr in self.FILES.items():
                f = ckpt / f"model{suffix}"
                if not f.is_file():
                    raise FileNotFoundError(f"{f} missing")
                getattr(self, attr).load_parameters(str(f), ctx=self.ctx)
            self.trainer.load_states(str(ckpt / "trainer.states"))

        found = load_newest(self.out, load, log, restart_if_unreadable=restart_if_unreadable)
        if found is None:
            return 0
        _, state = found
        self.epoch, self.history = int(state["epoch"]), list(state.get("history", []))
        return self.epoch

    # ---- training ----------------------------------------------------------------------------------------
    def step(self, images, labels):
        """One SGD step on uint8/float images (B, 3, 112, 96); returns (total, softmax, ccl) batch means."""
        import mxnet as mx
        from mxnet import autograd
        x = mx.nd.array(images, ctx=self.ctx, dtype="float32")
        y = mx.nd.array(labels, ctx=self.ctx, dtype="float32")
        with autograd.record():
            feat = self.net(x)
            ls = self.softmax(feat, y).mean()
            lc = self.ccl(mx.nd.L2Normalization(feat) if self.cfg.ccl_normalized else feat, y).mean()
            loss = ls + self.cfg.ccl_weight * lc
        loss.backward()
        self.trainer.step(1)  # losses are already batch means
        return float(loss.asscalar()), float(ls.asscalar()), float(lc.asscalar())

    def fit(self, images, labels, epochs=None, max_iters=None, progress=True, on_epoch=None, keep: int = 3):
        """Train until ``epochs`` (default cfg.epochs) epochs are done; ``max_iters`` caps iterations per
        epoch (smoke runs). Saves a checkpoint after every epoch."""
        from tqdm import tqdm

        from .data import iterate_batches
        epochs = self.cfg.epochs if epochs is None else epochs
        labels = np.asarray(labels)
        while self.epoch < epochs:
            rng = np.random.default_rng([self.cfg.seed, self.epoch])
            self.trainer.set_learning_rate(self.cfg.lr_at(self.epoch))
            batches = list(iterate_batches(len(labels), self.cfg.batch_size, rng, drop_last=True))
            if max_iters:
                batches = batches[:max_iters]
            sums, t0 = np.zeros(3), time.perf_counter()
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{epochs}", unit="it", disable=not progress,
                       leave=False)
            for it, idx in enumerate(bar):
                batch = images[idx]
                if self.cfg.flip:
                    flip = rng.random(len(idx)) < 0.5
                    batch = np.where(flip[:, None, None, None], batch[..., ::-1], batch)
                step = self.step(batch, labels[idx])
                if not np.all(np.isfinite(step)):
                    from ..checkpoint import newest_checkpoint
                    good = newest_checkpoint(self.out) if self.out else None
                    raise TrainingDiverged(f"loss is NaN or inf at epoch {self.epoch + 1}, iteration {it + 1} (lr "
                                             f"{self.cfg.lr_at(self.epoch):g}); last good checkpoint: "
                                             f"{good if good else 'none'} (lower --lr?)")
                sums += step
                bar.set_postfix(loss=f"{sums[0] / (it + 1):.3f}")
            n = max(len(batches), 1)
            self.epoch += 1
            rec = {"epoch": self.epoch, "lr": self.cfg.lr_at(self.epoch - 1), "loss": sums[0] / n,
                   "softmax": sums[1] / n, "ccl": sums[2] / n, "seconds": time.perf_counter() - t0}
            if on_epoch:
                rec.update(on_epoch(self) or {})
            self.history.append(rec)
            self.save(keep=keep)
            if progress:
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}))
        return self.history


def extract_features(net, images, batch_size=64, flip_fusion="sum", ctx=None):
    """fc5 features (N, D) of uint8 images; with ``flip_fusion`` (Table 2) the mirrored image's feature is
    fused in (``None`` or ``"single"``: original only). Rows are L2-normalised."""
    import mxnet as mx

    from ..search.synthetic import l2_normalize
    from .align import fuse_features
    ctx = ctx or mx.cpu()
    out = []
    for s in range(0, len(images), batch_size):
        x = mx.nd.array(images[s:s + batch_size], ctx=ctx, dtype="float32")
        f = net(x).asnumpy()
        if flip_fusion and flip_fusion != "single":
            g = net(x.flip(axis=3)).asnumpy()
            f = fuse_features(f, g, flip_fusion)
        out.append(f)
    return l2_normalize(np.concatenate(out))


def identification_top1(base, base_labels, probe, probe_labels):
    """Exact-search (flat) top-1 of ``probe`` against ``base`` through the search evaluator."""
    from ..search import IndexSpec, evaluate
    return evaluate(base, base_labels, probe, probe_labels, IndexSpec("flat")).top1


CONFIG_FILE = "frn_config.json"   # the run's arguments: the marker of a FaceResNet run folder
# arguments that may change on --resume (everything else must match the run's)
from ..cli.common import number_arg  # noqa: E402  (argument types shared by every CLI)

RESUMABLE = ("epochs", "resume", "keep", "restart_if_unreadable")


def _lr_steps(text):
    try:
        steps = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr-steps must be comma-separated epochs, e.g. 8,11, got {text!r}") from None
    if any(s < 1 for s in steps) or steps != sorted(set(steps)):
        raise argparse.ArgumentTypeError(f"--lr-steps must be increasing epochs >= 1, e.g. 8,11, got {text!r}")
    return steps


def _parser():
    from ..__main__ import ArgumentParser
    p = ArgumentParser(prog="python -m rfcn_face.recognition.train",
                       description="train FaceResNet (NormFace softmax + contrastive-center loss)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--embedded", action="store_true", help="skimage LFW crops, one identity each, augmented")
    src.add_argument("--folder", help="folder-per-identity dataset of aligned 112x96 crops")
    p.add_argument("--out", required=True, help="run folder (checkpoints, frn_config.json, last.json)")
    p.add_argument("--ids", type=number_arg("--ids", int, 2, 100), default=100, help="embedded: identities (2..100)")
    p.add_argument("--views", type=number_arg("--views", int, 2), default=10, help="embedded: views per identity (>= 2)")
    p.add_argument("--train-views", type=number_arg("--train-views", int, 1), default=7,
                   help="embedded: views used for training (the others are the probes; < --views)")
    p.add_argument("--holdout", type=number_arg("--holdout", float, 0.0, 1.0, lo_open=True, hi_open=True), default=0.2,
                   help="folder: fraction of each identity held out as probes (0 < f < 1)")
    p.add_argument("--epochs", type=number_arg("--epochs", int, 1), default=12)
    p.add_argument("--batch-size", type=number_arg("--batch-size", int, 1), default=32)
    p.add_argument("--lr", type=number_arg("--lr", float, 0.0, lo_open=True), default=0.05)
    p.add_argument("--lr-steps", type=_lr_steps, default=[8, 11], help="comma-separated epochs where lr *= 0.1")
    p.add_argument("--width", type=number_arg("--width", float, 0.0, 8.0, lo_open=True), default=1.0,
                   help="FRN channel multiplier (1.0 = paper)")
    p.add_argument("--scale", type=number_arg("--scale", float, 0.0, lo_open=True), default=16.0,
                   help="NormFace scale s")
    p.add_argument("--learn-scale", action="store_true")
    p.add_argument("--ccl-weight", type=number_arg("--ccl-weight", float, 0.0), default=1.0)
    p.add_argument("--ccl-lr-mult", type=number_arg("--ccl-lr-mult", float, 0.0), default=1000.0,
                   help="learning-rate multiplier of the centres (default 1000, see module doc)")
    p.add_argument("--ccl-raw", action="store_true", help="contrastive-center loss on the raw (unnormalised) fc5")
    p.add_argument("--max-iters", type=number_arg("--max-iters", int, 1), default=None,
                   help="cap iterations per epoch (smoke runs)")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT from its newest complete checkpoint (the previous one if the newest is "
                        "truncated); the other arguments must be the run's (--epochs may grow)")
    p.add_argument("--restart-if-unreadable", action="store_true",
                   help="--resume when no checkpoint of OUT can be read: keep them as checkpoints/unreadable-iter-N "
                        "and train from epoch 0 (without this flag that is an error naming the unreadable files)")
    p.add_argument("--keep", type=number_arg("--keep", int, 0), default=3, help="keep the newest K checkpoints (0 = all)")
    p.add_argument("--seed", type=number_arg("--seed", int, 0), default=0)
    return p


def _folder_split(labels, holdout, seed):
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n = int(round(holdout * len(idx)))
        if len(idx) > 1 and n:
            test[rng.choice(idx, size=min(n, len(idx) - 1), replace=False)] = True
    return ~test, test


def _run_arguments(args) -> dict:
    d = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    if d.get("folder"):
        d["folder"] = str(Path(d["folder"]).resolve())
    return d


def prepare_frn_run(args) -> Path:
    """Create ``--out`` or check it may be continued: a non-empty folder without ``--resume`` is an error (runs
    are never mixed), and ``--resume`` needs a FaceResNet run folder trained with the same arguments."""
    from ..checkpoint import RunDirError, prepare_run_dir
    out = Path(args.out)
    if args.restart_if_unreadable and not args.resume:
        raise ValueError("--restart-if-unreadable applies to --resume only")
    mine = _run_arguments(args)
    if args.resume and out.is_dir() and not (out / CONFIG_FILE).is_file() and (out / "config.yaml").is_file():
        raise RunDirError(f"--resume: {out} is a detector run folder (config.yaml), not a FaceResNet run "
                          f"(no {CONFIG_FILE})")
    prepare_run_dir(out, args.resume, CONFIG_FILE)
    if args.resume:
        try:
            saved = json.loads((out / CONFIG_FILE).read_text())
        except ValueError as e:
            raise RunDirError(f"{out / CONFIG_FILE}: not readable JSON ({e})") from None
        diff = [k for k in sorted(set(saved) | set(mine)) if k not in RESUMABLE and saved.get(k) != mine.get(k)]
        if diff:
            k = diff[0]
            raise RunDirError(f"--resume: {out} was trained with {k}={saved.get(k)!r}, now {mine.get(k)!r}; resume "
                              "with the run's own arguments (only --epochs may change), or start a new --out")
    return out


def write_frn_config(out: Path, args) -> None:
    """The run's arguments (the marker of the run folder), once its data has loaded."""
    from ..checkpoint import atomic_write_json
    if not (out / CONFIG_FILE).is_file():
        atomic_write_json(out / CONFIG_FILE, _run_arguments(args))


def run_training(args):
    """Check the arguments and ``--out``, then train while holding the run folder's lock (rfcn_face.locks)."""
    from ..locks import folder_lock
    if args.embedded and args.train_views >= args.views:
        raise ValueError(f"--train-views {args.train_views} leaves no probe view of the {args.views} --views (it "
                         "must be smaller)")
    out = prepare_frn_run(args)
    with folder_lock(out, "recognition.train" + (" --resume" if args.resume else "")):
        return _train_locked(args, out)


def _train_locked(args, out: Path):
    from .data import FolderDataset, lfw_identities, split_views
    if args.embedded:
        images, labels, views = lfw_identities(args.ids, args.views, seed=args.seed)
        train, test = split_views(labels, views, args.train_views)
    else:
        ds = FolderDataset(args.folder)
        images, labels = ds.load(progress=True), ds.labels
        train, test = _folder_split(labels, args.holdout, args.seed)
        if not test.any():
            raise ValueError(f"{args.folder}: --holdout {args.holdout:g} holds out no image (every identity needs "
                             "at least 2 images, and holdout x images must round to >= 1)")
    n_ids = len(np.unique(labels[train]))
    if n_ids < 2:
        raise ValueError(f"{args.folder or 'the embedded set'}: {n_ids} identity to train on; FaceResNet's "
                         "classifier needs at least 2")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_steps=list(args.lr_steps),
                      width=args.width, scale=args.scale, learn_scale=args.learn_scale, ccl_weight=args.ccl_weight,
                      ccl_lr_mult=args.ccl_lr_mult, ccl_normalized=not args.ccl_raw, seed=args.seed)
    trainer = FRNTrainer(n_ids, cfg, out=out)
    write_frn_config(out, args)
    if args.resume:
        print(f"resumed at epoch {trainer.resume(restart_if_unreadable=args.restart_if_unreadable)}")

    def evaluate_epoch(tr):
        base = extract_features(tr.net, images[train])
        probe = extract_features(tr.net, images[test])
        return {"top1": identification_top1(base, labels[train], probe, labels[test])}

    if trainer.epoch == 0:  # baseline of the untrained network, for comparison
        print(f"untrained network: exact-search top-1 {evaluate_epoch(trainer)['top1']:.4f}")
    hist = trainer.fit(images[train], labels[train], max_iters=args.max_iters, on_epoch=evaluate_epoch,
                       keep=args.keep)
    if hist:
        print(f"loss {hist[0]['loss']:.4f} -> {hist[-1]['loss']:.4f}; exact-search top-1 "
              f"{hist[-1]['top1']:.4f} (chance {1 / n_ids:.4f}) on {int(test.sum())} held-out images")
    return hist


def main(argv=None):
    from ..__main__ import run_guarded
    args = _parser().parse_args(argv)

    def run():
        run_training(args)
        return 0
    return run_guarded(run, name="recognition.train")


if __name__ == "__main__":
    raise SystemExit(main())
