#!/usr/bin/env python
"""R-FCN as a legacy MXNet *symbol* graph trained with ``mx.mod.Module.fit``, its training targets computed by the
project's CustomOps (the Deformable-ConvNets layout: ``data``, ``im_info``, ``gt_boxes`` in, one ``MakeLoss`` out).

    OMP_NUM_THREADS=1 python examples/legacy_module_rfcn.py --iters 200   # Table 1 row 13 (DC+16x3+SJ+HC(5)), 128 px

The graph (``loss_symbol``)::

    data ──ResNet (symbols.rfcn.RFCN on mx.sym)──> rpn_cls, rpn_bbox, feat
    rpn_cls, gt_boxes, im_info ──Custom rfcn_anchor_target──> RPN label / box targets (shifted anchors, HC(N))
    rpn_cls, rpn_bbox, im_info ──symbols.proposal.ProposalBlock──> rois     (device proposals, our anchors)
    rois, gt_boxes ──Custom rfcn_proposal_target──> rois + gt rows, head labels / box targets
    feat, rois ──PSROI head──> cls_score, bbox_pred
    softmax(cls_score), bbox_pred, head targets, rois ──Custom rfcn_ohem──> OHEM labels / box weights (1:3)
    the four losses of symbols.detection_losses (R-FCN's normalisation) ──> MakeLoss

Every knob comes from one :class:`rfcn_face.config.Config` (a Table 1 row, the ``demo`` preset and a few size
overrides); the operators take it through their ``*_kwargs(cfg)`` helpers. Data: the embedded synthfaces set
(generated locally from scikit-image's bundled images, no download), through the project's training transform
(flip, shift jitter) and padded to a fixed canvas, as Deformable-ConvNets' loaders pad a batch.
``docs/legacy.md`` explains each step. An example script, so its argument parsing lives here.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np

import operators  # noqa: F401  (registers rfcn_anchor_target, rfcn_proposal_target, rfcn_ohem, rfcn_nms)
from operators.anchor_target import anchor_target_kwargs
from operators.base import reset_seed_streams
from operators.ohem import ohem_kwargs
from operators.proposal_target import proposal_target_kwargs
from rfcn_face.__main__ import run_guarded
from rfcn_face.config import load_config, resolve_normalisation
from rfcn_face.datasets.images import prepare_train_image
from rfcn_face.datasets.synthfaces import ensure_synthfaces, find_synthfaces
from rfcn_face.datasets.wider import read_wider_txt
from rfcn_face.proposals import ProposalParams
from rfcn_face.sampling import OHEMParams
from rfcn_face.transforms import TrainTransform
from symbols.detection_losses import RCNN_SIGMA, RPN_SIGMA, softmax_cross_entropy, weighted_smooth_l1
from symbols.proposal import ProposalBlock
from symbols.rfcn import build_detector, to_anchor_order
from symbols.weights import init_detector

REPO = Path(__file__).resolve().parents[1]
DATA_NAMES, LABEL_NAMES = ("data", "im_info"), ("gt_boxes",)   # the ground truth is the Module's label
LOSS_TERMS = ("rpn_cls", "rpn_bbox", "rcnn_cls", "rcnn_bbox")
PROBE = "probe__"
# A CPU-sized network on 128-px images (the demo preset's recipe at a quarter width).
SMALL = ("model.width=0.25", "model.rpn_channels=64", "model.head_channels=64", "train.max_size=128",
         "rpn.pre_nms_top_n=1000", "rpn.post_nms_top_n=64", "rpn.batch_size=128", "rcnn.ohem_batch_size=32",
         "train.lr=0.01")
SYNTH = dict(num_train=32, num_val=0, image_size=128, max_face=48)   # the example's own small synthfaces set


def example_config(row=REPO / "experiments/table1/13_final.yaml", overrides=()):
    """Row ``row`` on the ``demo`` preset, made small (:data:`SMALL`), then ``overrides`` (``key=value``)."""
    return load_config(row, preset="demo", overrides=SMALL + tuple(overrides))


# --------------------------------------------------------------------------------------------------- data
class SynthFacesIter(mx.io.DataIter):
    """``iters`` batches of one image (R-FCN trains one image per device), cycling over ``records``: the project's
    training transform (flip, shift jitter) with the image's own Generator (seed, iteration), the image padded to a
    fixed ``canvas`` (the true size stays in ``im_info``), gt rows padded to ``max_faces`` with flag -1."""

    def __init__(self, cfg, records, iters: int, max_faces: int = 0):
        super().__init__(batch_size=1)
        self.cfg, self.records, self.iters = cfg, records, int(iters)
        self.norm = resolve_normalisation(cfg)
        self.transform = TrainTransform(cfg, fill=self.norm.fill)
        stride = cfg.anchor_set().stride
        self.canvas = -(-(int(cfg.train.max_size) + stride) // stride) * stride   # room for the shift jitter
        self.max_faces = max(1, max_faces or max(len(r.boxes) for r in records))
        self.cursor = 0

    @property
    def provide_data(self):
        return [mx.io.DataDesc("data", (1, 3, self.canvas, self.canvas)), mx.io.DataDesc("im_info", (1, 3))]

    @property
    def provide_label(self):
        return [mx.io.DataDesc("gt_boxes", (1, self.max_faces, 5))]

    def reset(self):
        self.cursor = 0

    def arrays(self, i: int):
        """The numpy inputs of iteration ``i``: data (1, 3, S, S), im_info (1, 3), gt_boxes (1, M, 5)."""
        rec = self.records[i % len(self.records)]
        rng = np.random.default_rng([self.cfg.train.seed, i])
        img, gt, info, _ = prepare_train_image(rec, self.transform, self.norm, rng)
        data = np.zeros((1, 3, self.canvas, self.canvas), np.float32)
        data[0, :, :img.shape[1], :img.shape[2]] = img
        rows = np.zeros((1, self.max_faces, 5), np.float32)
        rows[0, :, 4] = -1
        n = min(len(gt), self.max_faces)
        rows[0, :n] = gt[:n]
        return data, info[None].astype(np.float32), rows

    def next(self):
        if self.cursor >= self.iters:
            raise StopIteration
        data, info, gt = (mx.nd.array(a) for a in self.arrays(self.cursor))
        batch = mx.io.DataBatch([data, info], [gt], pad=0, index=np.array([self.cursor]),
                                provide_data=self.provide_data, provide_label=self.provide_label)
        self.cursor += 1
        return batch


def synthfaces_records(root=None):
    """The training records of a synthfaces folder (``root``, else the example's cached set of :data:`SYNTH`)."""
    if root is None:
        root = ensure_synthfaces(**SYNTH)
    elif find_synthfaces(root) is None:
        raise ValueError(f"--data {root}: not a synthfaces folder (no synthfaces.json); make one with python -m "
                         "rfcn_face.datasets.synthfaces, or leave --data out")
    else:
        root = find_synthfaces(root)
    return read_wider_txt(root / "wider_face_split/wider_face_train_bbx_gt.txt", root / "WIDER_train/images")


# -------------------------------------------------------------------------------------------------- graph
def loss_symbol(cfg, net, proposal, probes: bool = False):
    """The training graph (module docstring): ``Group([MakeLoss(total), BlockGrad(the four terms)])``; with
    ``probes`` also every CustomOp's (and the proposal block's) inputs and outputs, as ``BlockGrad`` outputs named
    ``probe__<op>__<array>`` (to look inside the bound graph: :func:`probe_outputs`)."""
    sym = mx.sym
    seen = {}
    data, im_info, gt = (sym.var(n) for n in DATA_NAMES + LABEL_NAMES)
    rpn_cls, rpn_bbox, feat = net(data)
    # RPN targets over the anchor set of the row (shifted anchors, HC(N)); only rpn_cls's shape is read
    label, bbox_target, bbox_weight, matched = sym.Custom(rpn_cls, gt, im_info, op_type="rfcn_anchor_target",
                                                          name="anchor_target", **anchor_target_kwargs(cfg))
    seen["anchor_target"] = dict(rpn_cls=rpn_cls, gt=gt, im_info=im_info, label=label, bbox_target=bbox_target,
                                 bbox_weight=bbox_weight, matched=matched)
    rois, _ = proposal(sym.BlockGrad(rpn_cls), sym.BlockGrad(rpn_bbox), im_info)
    # its own seed stream: with OHEM off it samples too, and the engine may run it before or after the anchor op
    pt_kw = dict(proposal_target_kwargs(cfg), seed=str(cfg.train.seed + 1))
    proposals = rois
    seen["proposal"] = dict(rpn_cls=rpn_cls, rpn_bbox=rpn_bbox, im_info=im_info, rois=proposals)
    rois, rlabel, rtarget, rweight = sym.Custom(rois, gt, op_type="rfcn_proposal_target", name="proposal_target",
                                                **pt_kw)
    seen["proposal_target"] = dict(rois=proposals, gt=gt, rois_out=rois, label=rlabel, bbox_target=rtarget,
                                   bbox_weight=rweight)
    rois, rlabel, rtarget, rweight = (sym.BlockGrad(x) for x in (rois, rlabel, rtarget, rweight))
    cls_score, bbox_pred = net.head(feat, rois)
    ohem = OHEMParams.from_config(cfg)
    if ohem.enabled:
        ins = dict(cls_prob=sym.softmax(sym.BlockGrad(cls_score), axis=-1), bbox_pred=sym.BlockGrad(bbox_pred),
                   label=rlabel, bbox_target=rtarget, bbox_weight=rweight, rois=rois)
        rlabel, rweight = sym.Custom(*ins.values(), op_type="rfcn_ohem", name="ohem", **ohem_kwargs(cfg))
        seen["ohem"] = dict(ins, label_ohem=rlabel, bbox_weight_ohem=rweight)
        rlabel, rweight = sym.BlockGrad(rlabel), sym.BlockGrad(rweight)
    a_cls = sym.reshape(to_anchor_order(sym, rpn_cls, 2), (-3, 2))            # (N, 2), batch 1
    a_box = sym.reshape(to_anchor_order(sym, rpn_bbox, 4), (-3, 4))
    terms = (softmax_cross_entropy(sym, a_cls, sym.reshape(sym.BlockGrad(label), (-1,)))[0],
             weighted_smooth_l1(sym, a_box, sym.reshape(sym.BlockGrad(bbox_target), (-1, 4)),
                                sym.reshape(sym.BlockGrad(bbox_weight), (-1, 4)), RPN_SIGMA, cfg.rpn.batch_size),
             softmax_cross_entropy(sym, cls_score, rlabel)[0],
             weighted_smooth_l1(sym, bbox_pred, rtarget, rweight, RCNN_SIGMA, ohem.rois_per_image))
    total = terms[0] + terms[1] + terms[2] + terms[3]
    stats = sym.concat(*[sym.reshape(t, (1,)) for t in terms], dim=0)
    outs = [sym.MakeLoss(sym.reshape(total, (1,)), name="loss"), sym.BlockGrad(stats, name="terms")]
    if probes:
        outs += [sym.BlockGrad(v, name=f"{PROBE}{op}__{k}") for op, arrays in seen.items() for k, v in arrays.items()]
    return sym.Group(outs)


def probe_outputs(mod) -> dict:
    """``{op: {array: numpy}}`` of a Module built with ``probes=True``, after a forward."""
    out = {}
    for name, v in zip(mod.output_names, mod.get_outputs()):
        if name.startswith(PROBE):
            op, array = name[len(PROBE):-len("_output")].split("__")
            out.setdefault(op, {})[array] = v.asnumpy()
    return out


def build_module(cfg, ctx=mx.cpu(), probes: bool = False):
    """``(module, arg_params, aux_params)``: the Gluon blocks of ``symbols/`` composed on ``mx.sym``, their initial
    values (``symbols.weights.init_detector``) as the Module's ``arg_params`` / ``aux_params`` (where a legacy
    pipeline loads its ``-0000.params``); the frozen parameters of ``train.freeze`` and the proposal block's anchor
    constant are ``fixed_param_names``."""
    net = build_detector(cfg)
    init_detector(net, zero_residual=cfg.model.zero_init_residual, ctx=ctx)
    fixed = net.freeze_fixed_params(cfg.train.freeze)
    proposal = ProposalBlock(cfg.anchor_set(), ProposalParams.from_config(cfg, train=True), nms_impl="auto", ctx=ctx)
    proposal.initialize(ctx=ctx)
    params = {**net.collect_params(), **proposal.collect_params()}
    symbol = loss_symbol(cfg, net, proposal, probes)
    aux_names = set(symbol.list_auxiliary_states())
    arg = {n: p.data(ctx) for n, p in params.items() if n not in aux_names}
    aux = {n: p.data(ctx) for n, p in params.items() if n in aux_names}
    fixed += list(proposal.collect_params())
    mod = mx.mod.Module(symbol, data_names=DATA_NAMES, label_names=LABEL_NAMES, context=ctx, fixed_param_names=fixed)
    return mod, arg, aux


def bound_module(cfg, data_iter, ctx=mx.cpu(), probes: bool = False):
    """:func:`build_module`, bound to ``data_iter``'s shapes for training and initialised (what ``fit`` does)."""
    mod, arg, aux = build_module(cfg, ctx, probes)
    mod.bind(data_shapes=data_iter.provide_data, label_shapes=data_iter.provide_label, for_training=True)
    mod.init_params(arg_params=arg, aux_params=aux)
    return mod


class LossMetric(mx.metric.EvalMetric):
    """The loss of every batch (``history``: total and the four terms); ``get`` gives the mean since ``reset``."""

    def __init__(self):
        super().__init__("loss")
        self.history = []

    def update(self, labels, preds):
        total, terms = float(preds[0].asnumpy()[0]), preds[1].asnumpy()
        self.history.append((total, *terms.tolist()))
        self.sum_metric += total
        self.num_inst += 1


def train(cfg, data_iter, print_every: int = 5, log=print, ctx=mx.cpu()):
    """``Module.fit`` over ``data_iter`` (one epoch = its ``iters`` batches) with the row's SGD settings; returns the
    per-batch history of :class:`LossMetric` (total, rpn_cls, rpn_bbox, rcnn_cls, rcnn_bbox)."""
    mx.random.seed(cfg.train.seed)                 # the initial weights
    reset_seed_streams()                           # the operators' sampling streams start afresh (docs/legacy.md)
    mod, arg, aux = build_module(cfg, ctx)
    metric = LossMetric()
    t0 = time.time()

    def report(param):
        i = param.nbatch + 1
        if print_every > 0 and (i % print_every == 0 or i == data_iter.iters):
            last = metric.history[-1]
            terms = "  ".join(f"{n} {v:.4f}" for n, v in zip(LOSS_TERMS, last[1:]))
            log(f"iter {i:4d}  loss {last[0]:.4f}  ({terms})  {time.time() - t0:.1f} s")

    mod.fit(data_iter, eval_metric=metric, batch_end_callback=report, num_epoch=1, arg_params=arg, aux_params=aux,
            optimizer="sgd",
            optimizer_params=dict(learning_rate=cfg.train.lr, momentum=cfg.train.momentum, wd=cfg.train.wd))
    return metric.history


def run(args) -> int:
    cfg = example_config(args.config, args.set)
    records = synthfaces_records(args.data)
    print(f"{cfg.name}: {len(records)} synthfaces images, anchors {cfg.anchor_set().num_per_location} per location, "
          f"rpn.assign {dict(cfg.rpn.assign)}, OHEM {cfg.rcnn.ohem_mode} {cfg.rcnn.ohem_batch_size}")
    history = train(cfg, SynthFacesIter(cfg, records, args.iters), args.print_every)
    k = max(1, min(10, len(history) // 3))
    first, last = np.mean([h[0] for h in history[:k]]), np.mean([h[0] for h in history[-k:]])
    print(f"mean loss of the first {k} iterations {first:.4f}, of the last {k} {last:.4f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--iters", type=int, default=200, help="training iterations (one image each; default 200)")
    ap.add_argument("--config", default=str(REPO / "experiments/table1/13_final.yaml"), help="a Table 1 row YAML")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--data", default=None, help="a synthfaces folder (default: a small cached set, made locally)")
    ap.add_argument("--print-every", type=int, default=5, help="print the loss every N iterations")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be >= 1")
    return run_guarded(run, args, name="legacy_module_rfcn")   # a config / data error: one "error:" line


if __name__ == "__main__":
    sys.exit(main())
