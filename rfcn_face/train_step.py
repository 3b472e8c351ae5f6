"""One training step's model side, on the devices: this worker's images -> R-FCN losses -> backward.

Per image (one per device per iteration, as R-FCN trains), under ``autograd.record``: backbone (+ BU / BUS) + RPN
(:mod:`symbols.rfcn`), then :class:`symbols.train_loss.DetectorLoss` — proposals over our anchor set, proposal
targets, the PSROI head, OHEM and the four R-FCN loss terms, all MXNet operators in one hybridized graph. The
image, its gt rows and its anchor targets are already NDArrays on the image's device: the loader's receiver
thread copies them there (:class:`DeviceUpload`), so the main thread only issues operators.

No read-back between the first forward and the backward for a strategy whose anchor targets need no prediction
(max-IoU, HC(N)): every device's forward is issued, then one backward for all of them. A strategy that reads the
predictions (``hambox``, ``cleanliness``) keeps one host step per image: the RPN maps are read, the targets
finished in numpy (:meth:`rfcn_face.assigners.Assigner.finish`, no gradient through them) and copied back; its
cost is timed as ``mining``. The loop reads the per-image loss terms once, after the backward
(:meth:`DetectorStep.read_stats`).

NMS of the proposals: ``box_nms`` on a GPU, the numpy greedy NMS as a CustomOp on a CPU (``--nms-impl`` forces
either; :mod:`symbols.nms`).
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["DetectorStep", "DeviceUpload", "STAT_KEYS", "LOSS_KEYS"]

LOSS_KEYS = ("rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss")
STAT_KEYS = LOSS_KEYS + ("rpn_ok", "rpn_n", "rcnn_ok", "rcnn_n", "matched", "faces")


class DeviceUpload:
    """The loader hook ``(sample, position) -> sample``: the image's arrays as NDArrays on its device (position
    ``p`` of an iteration goes to device ``p // images_per_device``), in ``sample.device``; run by the loader's
    receiver thread, off the main thread. The host copies the device does not need are dropped."""

    def __init__(self, contexts, images_per_device: int):
        self.contexts, self.ipd = list(contexts), int(images_per_device)

    def __call__(self, sample, pos: int):
        import mxnet as mx
        ctx = self.contexts[min(pos // self.ipd, len(self.contexts) - 1)]
        d = {"ctx": ctx, "data": mx.nd.array(sample.image[None], ctx=ctx),
             "im_info": mx.nd.array(sample.im_info[None], ctx=ctx), "gt": mx.nd.array(sample.gt[None], ctx=ctx)}
        if sample.targets is not None:
            d["targets"] = tuple(mx.nd.array(a, ctx=ctx) for a in sample.targets.arrays())
        if sample.roi_keys is not None:
            d["keys"] = mx.nd.array(sample.roi_keys[None], ctx=ctx)
        sample.device, sample.image = d, None
        return sample


class DetectorStep:
    """``DetectorStep(cfg, net, assigner, contexts, timer, nms_impl)``; :meth:`forward_backward` runs one step's
    images, :meth:`read_stats` reads their loss terms."""

    def __init__(self, cfg, net, assigner, contexts, timer, nms_impl: str = "auto"):
        from symbols.proposal import ProposalBlock
        from symbols.train_loss import DetectorLoss

        from .proposals import ProposalParams, ProposalTargetParams
        from .sampling import OHEMParams, RPNSampling
        self.cfg, self.net, self.assigner, self.timer = cfg, net, assigner, timer
        self.anchor_set = cfg.anchor_set()
        self.proposal = ProposalBlock(self.anchor_set, ProposalParams.from_config(cfg, train=True), nms_impl,
                                      ctx=contexts)
        self.proposal.initialize(ctx=list(contexts))
        r = cfg.rpn
        self.loss = DetectorLoss(net.head, self.proposal, ProposalTargetParams.from_config(cfg),
                                 OHEMParams.from_config(cfg), RPNSampling.from_config(cfg).batch_size, r.cls_loss,
                                 r.focal_alpha, r.focal_gamma,
                                 mean_over=r.cls_loss == "softmax" and not assigner.reweights)
        self.loss.hybridize(static_alloc=False)

    def forward_backward(self, device_samples, iteration=None) -> list:
        """Forward of every image on its device (all issued before anything is read back), then one backward for
        all of them, at training ``iteration`` (0 = the first; read by an assigner's warm-up). Returns the
        per-image ``stats`` NDArrays (:data:`symbols.train_loss.STATS`) per device."""
        from mxnet import autograd
        losses, stats = [], []
        with autograd.record():
            for samples in device_samples:
                here = []
                for s in samples:
                    d = s.device
                    rpn_cls, rpn_bbox, feat = self.net(d["data"])
                    targets = d.get("targets") or self.finish_on_host(s, rpn_cls, rpn_bbox, iteration)
                    n_anchors = rpn_cls.shape[2] * rpn_cls.shape[3] * self.anchor_set.num_per_location
                    if n_anchors != targets[0].shape[0]:
                        raise RuntimeError(f"RPN map {rpn_cls.shape[2:]} does not match the {targets[0].shape[0]} "
                                           f"anchor targets of a {s.im_info[:2]} image")
                    extra = (d["keys"],) if "keys" in d else ()
                    loss, st = self.loss(rpn_cls, rpn_bbox, feat, d["im_info"], d["gt"], *targets, *extra)
                    losses.append(loss)
                    here.append(st)
                stats.append(here)
        autograd.backward(losses)
        return stats

    def finish_on_host(self, sample, rpn_cls, rpn_bbox, iteration=None):
        """The host step of a strategy that reads the predictions: the RPN maps of this image read back, the
        targets finished (numpy, the image's keyed RPN Generator, the training ``iteration``) and copied to the
        device."""
        import mxnet as mx

        from .anchors import to_anchor_order_np
        from .boxes import decode
        from .datasets.batches import STREAM_RPN, image_rng
        from .targets import face_probabilities
        cls_np, bbox_np = rpn_cls.asnumpy(), rpn_bbox.asnumpy()
        t0 = time.perf_counter()
        plan, a = sample.plan, self.assigner
        pred = decode(plan.anchor_boxes, to_anchor_order_np(np.asarray(bbox_np, np.float64), 4)[0])
        prob = face_probabilities(cls_np)[0]
        tg = a.finish(plan, pred, prob, rng=image_rng(self.cfg.train.seed, STREAM_RPN, sample.epoch, sample.index),
                      iteration=iteration)
        sample.targets = tg.for_loss()
        self.timer.add("mining", time.perf_counter() - t0)
        ctx = sample.device["ctx"]
        return tuple(mx.nd.array(x, ctx=ctx) for x in sample.targets.arrays())

    @staticmethod
    def read_stats(device_samples, stats) -> list:
        """One read per device of its images' loss terms (after the backward was issued); the anchors matched per
        face come from the targets on the host. Returns one dict of floats (:data:`STAT_KEYS`) per image."""
        import mxnet as mx

        from symbols.train_loss import STATS
        out = []
        for samples, here in zip(device_samples, stats):
            if not here:
                continue
            values = mx.nd.stack(*here).asnumpy().astype(np.float64)
            for s, v in zip(samples, values):
                row = {k: float(x) for k, x in zip(STATS, v)}
                faces = s.gt[:, 4] == 0
                matched = np.zeros(len(s.gt))
                matched[s.present] = s.targets.matched
                row.update(matched=float(matched[faces].sum()), faces=float(faces.sum()))
                out.append(row)
        return out
