"""The set-up pieces of :class:`rfcn_face.train.DetectorTraining`, in the order ``run`` calls them: the kvstore
(rank, workers), the run folder (config check, lock, the config hash checkpoints carry) and the network (init,
frozen parameters, the SGD trainer). Each is a function of its inputs, so the training class keeps only the loop."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from .checkpoint import CONFIG_FILE, RunDirError, config_hash, prepare_run_dir
from .kvsync import KVSTORES

__all__ = ["open_kvstore", "open_run_dir", "build_network", "sgd_trainer", "first_difference"]


def open_kvstore(kind: str):
    """``(kvstore, rank, num_workers)``: the MXNet kvstore of a launched ``dist_*`` job, else the local kind."""
    import mxnet as mx
    if kind not in KVSTORES:
        raise ValueError(f"--kvstore must be one of {', '.join(KVSTORES)}, got {kind!r}")
    if not kind.startswith("dist"):
        return kind, 0, 1
    if not os.environ.get("DMLC_ROLE"):
        raise ValueError(f"--kvstore {kind} needs the DMLC_* variables of a launched job: run it under "
                         "'python -m rfcn_face launch --workers W --servers S -- train ...' "
                         "(docs/training.md shows the multi-host form)")
    kv = mx.kv.create(kind)
    return kv, kv.rank, kv.num_workers


def first_difference(a: dict, b: dict, prefix: str = "") -> Optional[str]:
    """The first key (dotted) where two config dicts differ, with both values; the row's name / description /
    paper do not count."""
    for k in sorted(set(a) | set(b)):
        if k in ("name", "description", "paper"):
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = first_difference(va, vb, f"{prefix}{k}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{k}: run has {va!r}, given {vb!r}"
    return None


def open_run_dir(cfg, opts, rank: int, stack, log: Callable):
    """Check / create the run folder ``opts.out`` (``--resume``: the run's own config, which the given one must
    equal); worker 0 holds the folder's lock (:mod:`rfcn_face.locks`) for as long as ``stack``. Returns
    ``(config, run folder, config hash)``."""
    from .config import config_text, dump_config, load_config, resolve_normalisation
    from .locks import folder_lock
    out = Path(opts.out)
    resolve_normalisation(cfg)
    if opts.resume:
        run_cfg_path = out / CONFIG_FILE
        if rank == 0:
            prepare_run_dir(out, True, CONFIG_FILE)
            stack.enter_context(folder_lock(out, "train --resume", log=log))
        elif not run_cfg_path.is_file():
            raise RunDirError(f"--resume: {out} is not a run folder (no {CONFIG_FILE})")
        saved = load_config(run_cfg_path)
        diff = first_difference(saved.to_dict(), cfg.to_dict())
        if diff:
            raise RunDirError(f"--resume: the given config differs from {run_cfg_path} ({diff}); resume with "
                              "the run's own config, or start a new run folder")
        cfg = saved
        if rank == 0:
            log(f"using the run's config {run_cfg_path}")
    elif rank == 0:
        prepare_run_dir(out, False, CONFIG_FILE)
        stack.enter_context(folder_lock(out, "train", log=log))
        dump_config(cfg, out / CONFIG_FILE)
    return cfg, out, config_hash(config_text(cfg))


def build_network(cfg, ctx, log: Optional[Callable] = None):
    """The detector of ``cfg`` on ``ctx``: seeded init (or the ImageNet weights; ``log`` says which), the fixed
    parameters frozen (``train.freeze``), hybridized. Returns ``(net, frozen names, trainable {name: param})``."""
    import mxnet as mx

    from symbols.rfcn import build_detector
    from symbols.weights import init_detector
    net = build_detector(cfg)
    mx.random.seed(int(cfg.train.seed))
    report = init_detector(net, cfg.model.pretrained, ctx=ctx, zero_residual=cfg.model.zero_init_residual)
    if log is not None:
        log("note: random initialisation (no model.pretrained / --pretrained): fine for CPU runs on synthfaces, not "
            "for the paper's numbers" if report is None else report.summary())
    frozen = net.freeze_fixed_params(cfg.train.freeze)
    net.hybridize(static_alloc=False)
    trainable = {p.name: p for p in net.collect_params().values() if p.grad_req != "null"}
    return net, frozen, trainable


def sgd_trainer(cfg, trainable: dict):
    """Gluon's SGD with momentum and weight decay (Sec. 5.1); the gradient sum is ours (``kvsync``), so no
    kvstore; the learning rate is set per step by the ``LRSchedule`` hook."""
    from mxnet import gluon
    return gluon.Trainer(trainable, "sgd", {"learning_rate": cfg.train.lr, "momentum": cfg.train.momentum,
                                             "wd": cfg.train.wd}, kvstore=None)
