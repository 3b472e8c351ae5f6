"""Gluon training loop for FaceResNet with NormFace's normalised softmax + contrastive-center loss (Sec. 3.2).

Loss per batch: mean(NormSoftmax) + ``ccl_weight`` * mean(ContrastiveCenter), both on the fc5 feature.
SGD with momentum and weight decay, step schedule (lr x ``lr_factor`` at each epoch in ``lr_steps``),
a checkpoint per epoch (network, loss heads, trainer state, history JSON), ``resume=True`` continues from the
newest checkpoint in ``out``; tqdm progress per epoch.

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

__all__ = ["TrainConfig", "FRNTrainer", "extract_features", "identification_top1", "main"]


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

        self.cfg, self.num_classes = cfg, num_classes
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

    # ---- checkpoints -------------------------------------------------------------------------------------
    def _prefix(self, epoch):
        return self.out / f"epoch{epoch:03d}"

    def save(self):
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        p = self._prefix(self.epoch)
        self.net.save_parameters(str(p) + ".net.params")
        self.softmax.save_parameters(str(p) + ".normface.params")
        self.ccl.save_parameters(str(p) + ".ccl.params")
        self.trainer.save_states(str(p) + ".states")
        meta = {"epoch": self.epoch, "num_classes": self.num_classes, "config": asdict(self.cfg),
                "history": self.history}
        (self.out / "last.json").write_text(json.dumps(meta, indent=2))

    def resume(self):
        """Load the newest checkpoint in ``out``; returns the epoch reached (0 when there is none)."""
        meta_path = self.out / "last.json" if self.out else None
        if meta_path is None or not meta_path.is_file():
            return 0
        meta = json.loads(meta_path.read_text())
        if meta["num_classes"] != self.num_classes:
            raise ValueError(f"{meta_path}: checkpoint has {meta['num_classes']} classes, data has "
                             f"{self.num_classes}")
        p = str(self._prefix(meta["epoch"]))
        for suffix, block in ((".net.params", self.net), (".normface.params", self.softmax),
                              (".ccl.params", self.ccl)):
            if not Path(p + suffix).is_file():
                raise FileNotFoundError(f"checkpoint file missing: {p + suffix}")
            block.load_parameters(p + suffix, ctx=self.ctx)
        self.trainer.load_states(p + ".states")
        self.epoch, self.history = meta["epoch"], meta["history"]
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

    def fit(self, images, labels, epochs=None, max_iters=None, progress=True, on_epoch=None):
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
                sums += self.step(batch, labels[idx])
                bar.set_postfix(loss=f"{sums[0] / (it + 1):.3f}")
            n = max(len(batches), 1)
            self.epoch += 1
            rec = {"epoch": self.epoch, "lr": self.cfg.lr_at(self.epoch - 1), "loss": sums[0] / n,
                   "softmax": sums[1] / n, "ccl": sums[2] / n, "seconds": time.perf_counter() - t0}
            if on_epoch:
                rec.update(on_epoch(self) or {})
            self.history.append(rec)
            self.save()
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


def _parser():
    p = argparse.ArgumentParser(prog="python -m rfcn_face.recognition.train",
                                description="train FaceResNet (NormFace softmax + contrastive-center loss)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--embedded", action="store_true", help="skimage LFW crops, one identity each, augmented")
    src.add_argument("--folder", help="folder-per-identity dataset of aligned 112x96 crops")
    p.add_argument("--out", required=True, help="checkpoint folder")
    p.add_argument("--ids", type=int, default=100, help="embedded: identities (<= 100)")
    p.add_argument("--views", type=int, default=10, help="embedded: views per identity")
    p.add_argument("--train-views", type=int, default=7, help="embedded: views used for training")
    p.add_argument("--holdout", type=float, default=0.2, help="folder: fraction of each identity held out")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--lr-steps", default="8,11", help="comma-separated epochs where lr *= 0.1")
    p.add_argument("--width", type=float, default=1.0, help="FRN channel multiplier (1.0 = paper)")
    p.add_argument("--scale", type=float, default=16.0, help="NormFace scale s")
    p.add_argument("--learn-scale", action="store_true")
    p.add_argument("--ccl-weight", type=float, default=1.0)
    p.add_argument("--ccl-lr-mult", type=float, default=1000.0,
                   help="learning-rate multiplier of the centres (default 1000, see module doc)")
    p.add_argument("--ccl-raw", action="store_true", help="contrastive-center loss on the raw (unnormalised) fc5")
    p.add_argument("--max-iters", type=int, default=None, help="cap iterations per epoch (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.json")
    p.add_argument("--seed", type=int, default=0)
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


def run_training(args):
    from .data import FolderDataset, lfw_identities, split_views
    if args.embedded:
        images, labels, views = lfw_identities(args.ids, args.views, seed=args.seed)
        train, test = split_views(labels, views, args.train_views)
    else:
        ds = FolderDataset(args.folder)
        images, labels = ds.load(progress=True), ds.labels
        train, test = _folder_split(labels, args.holdout, args.seed)
    n_ids = len(np.unique(labels[train]))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      lr_steps=[int(s) for s in args.lr_steps.split(",") if s.strip()], width=args.width,
                      scale=args.scale, learn_scale=args.learn_scale, ccl_weight=args.ccl_weight,
                      ccl_lr_mult=args.ccl_lr_mult, ccl_normalized=not args.ccl_raw, seed=args.seed)
    trainer = FRNTrainer(n_ids, cfg, out=args.out)
    if args.resume:
        print(f"resumed at epoch {trainer.resume()}")

    def evaluate_epoch(tr):
        base = extract_features(tr.net, images[train])
        probe = extract_features(tr.net, images[test])
        return {"top1": identification_top1(base, labels[train], probe, labels[test])}

    if trainer.epoch == 0:  # baseline of the untrained network, for comparison
        print(f"untrained network: exact-search top-1 {evaluate_epoch(trainer)['top1']:.4f}")
    hist = trainer.fit(images[train], labels[train], max_iters=args.max_iters, on_epoch=evaluate_epoch)
    if hist:
        print(f"loss {hist[0]['loss']:.4f} -> {hist[-1]['loss']:.4f}; exact-search top-1 "
              f"{hist[-1]['top1']:.4f} (chance {1 / n_ids:.4f}) on {int(test.sum())} held-out images")
    return hist


def main(argv=None):
    args = _parser().parse_args(argv)
    run_training(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
