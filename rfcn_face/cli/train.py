"""``python -m rfcn_face train``: train the detector of one config (:mod:`rfcn_face.train`).

    python -m rfcn_face train --config experiments/table1/13_final.yaml --preset paper --out runs/final \\
        --pretrained data/pretrained/resnet_v1_101-0000.params --gpus 0,1,2,3
    python -m rfcn_face train --config experiments/table1/13_final.yaml --preset smoke --out runs/smoke --cpus 2
"""
from __future__ import annotations

from .common import add_config_arguments, add_device_arguments, config_from_args, number_arg

HELP = "train the detector of a config (R-FCN, Sec. 5.1): checkpoints, exact resume, multi-device, dist kvstore"


def add_arguments(p):
    add_config_arguments(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (config, checkpoints, metrics, "
                                                                   "final.params)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="ImageNet ResNet checkpoint (MXNet resnet_v1_101-0000.params or GluonCV resnet*_v1/_v1b); "
                        "same as --set model.pretrained=PATH")
    add_device_arguments(p, "GPU ids, e.g. 0,1,2,3 (one image per GPU)",
                         "N CPU contexts in this process (tests the multi-device path on a CPU machine)")
    from ..train import KVSTORES
    p.add_argument("--kvstore", default="local", choices=KVSTORES,
                   help="gradient aggregation; dist_* under 'python -m rfcn_face launch' (docs/training.md)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its newest complete checkpoint")
    p.add_argument("--restart-if-unreadable", action="store_true",
                   help="--resume when no checkpoint of RUN_DIR can be read: keep them as "
                        "checkpoints/unreadable-iter-N and train from iteration 0 (without this flag that is an "
                        "error naming the unreadable files)")
    p.add_argument("--max-iters", type=number_arg("--max-iters", lo=0), default=0, metavar="N",
                   help="stop after N iterations of the run in all (the lr schedule still follows the epochs); 0, the "
                        "default, runs the whole schedule (train.epochs); with --resume, an N at or below the "
                        "checkpoint's iteration trains nothing more and writes final.params from that checkpoint")
    p.add_argument("--checkpoint-every", type=number_arg("--checkpoint-every", lo=0), default=0, metavar="N",
                   help="also checkpoint every N iterations (always at every epoch end and at the end)")
    p.add_argument("--keep", type=number_arg("--keep", lo=0), default=3, metavar="K",
                   help="keep the newest K checkpoints (0 = all; default 3)")
    p.add_argument("--log-every", type=number_arg("--log-every", lo=1), default=20, metavar="N",
                   help="a metrics.jsonl row, and a metric line in RUN/log.txt and on stderr (when there is no "
                        "progress bar), every N iterations and at the last one (default 20)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal: metric lines instead)")
    p.add_argument("--eval-every", type=number_arg("--eval-every", lo=0), default=0, metavar="N",
                   help="evaluate the network every N iterations and after the last one on --eval-dataset (worker 0; "
                        "numbers in RUN/log.txt and RUN/eval.jsonl, files in RUN/eval/); 0, the default, never")
    p.add_argument("--eval-dataset", default=None, metavar="NAME",
                   help="the benchmark of --eval-every (default: the val set of data.dataset, e.g. wider-val)")
    p.add_argument("--eval-data", default=None, metavar="ROOT", help="its data root (default: data.root)")
    p.add_argument("--eval-limit", type=number_arg("--eval-limit", lo=0), default=100, metavar="M",
                   help="the first M images of it (0 = all; default 100)")
    from .test import add_nms_argument
    add_nms_argument(p)
    p.add_argument("--json", default=None, metavar="OUT",
                   help="also write the run's summary (iterations done, stop, total, the last metrics row, run "
                        "folder) as JSON to OUT; under launch only worker 0 writes it")


def run(args) -> int:
    from ..config import with_pretrained
    from ..train import TrainOptions, parse_contexts, train
    if args.restart_if_unreadable and not args.resume:
        raise ValueError("--restart-if-unreadable applies to --resume only")
    cfg = with_pretrained(config_from_args(args), args.pretrained)
    opts = TrainOptions(out=args.out, contexts=parse_contexts(args.gpus, args.cpus), kvstore=args.kvstore,
                        resume=args.resume,
                        restart_if_unreadable=args.restart_if_unreadable, max_iters=args.max_iters, checkpoint_every=args.checkpoint_every,
                        keep_checkpoints=args.keep, log_every=max(1, args.log_every),
                        progress=not args.no_progress, nms_impl=args.nms_impl)
    hooks = []
    if args.eval_every:
        from ..benchmarks import val_benchmark
        from ..train_hooks import PeriodicEval, benchmark_evaluation
        name = args.eval_dataset or val_benchmark(cfg.data.dataset).name
        root = args.eval_data if args.eval_data is not None else cfg.data.root
        hooks.append(PeriodicEval(args.eval_every, benchmark_evaluation(name, root, args.eval_limit)))
    elif args.eval_dataset or args.eval_data:
        raise ValueError("--eval-dataset / --eval-data choose the benchmark of --eval-every: give --eval-every N too")
    s = train(cfg, opts, hooks)     # TrainingDiverged: exit 3 (run_guarded)
    if s["last"] is not None and s["rank"] == 0:
        print(f"iteration {s['iterations']}/{s['total']}: loss {s['last']['loss']:.4f}")
    if args.json and s["rank"] == 0:
        from . import write_json
        write_json(args.json, s)
    return 0
