"""``python -m rfcn_face reproduce``: the paper's tables with one command (:mod:`rfcn_face.reproduce`).

    python -m rfcn_face reproduce --table all --data data --pretrained data/pretrained/resnet_v1_101-0000.params \\
        --gpus 0,1,2,3 --out RESULTS [--rows 01,13] [--preset paper] [--dry-run]
    python -m rfcn_face reproduce --table 1 --rows 01,13 --preset smoke --max-iters 30 --limit 20 --out RESULTS_cpu
    python -m rfcn_face reproduce --benchmarks --run RESULTS/runs/13_final --data data /mnt/benchmarks --out RESULTS
"""
from __future__ import annotations

from . import write_json
from .common import add_device_arguments, number_arg

HELP = ("reproduce Table 1 / Table 2 / the pyramid rows (train, test on WIDER val, evaluate, tables beside the "
        "paper; resumable; --dry-run: commands and GPU-hours), or --benchmarks: the WIDER test / FDDB / AFW / PASCAL "
        "files of one trained run")


def add_arguments(p):
    from ..reproduce import CHECKPOINT_EVERY, DEFAULT_GPU_TFLOPS, TABLES
    from .test import add_import_argument
    p.add_argument("--table", default="all", choices=TABLES,
                   help="1 (Table 1 single-scale rows), 2 (Table 2: the Final model at four test sizes), pyramid "
                        "(Table 1 rows with test.pyramid), all (default)")
    p.add_argument("--rows", default=None, metavar="IDS",
                   help="only these rows, e.g. 01,13 (Table 1 numbers, file stems or names, comma-separated)")
    p.add_argument("--preset", default="paper", metavar="NAME|PATH",
                   help="layer under every row (default paper: WIDER FACE, ResNet-101, the ImageNet checkpoint; "
                        "smoke / demo: CPU, ResNet-18, synthfaces)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.SUB=VALUE",
                   help="override one knob over the preset and every row (repeatable), e.g. --set train.max_size=128")
    p.add_argument("--data", nargs="+", default=None, metavar="ROOT",
                   help="data root of data/README.md (the folder holding widerface/; default: the preset's "
                        "data.root); with --benchmarks several roots, searched in order per benchmark")
    p.add_argument("--synthfaces", action="store_true",
                   help="train and test on the embedded synthfaces set instead of WIDER FACE")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="ImageNet ResNet checkpoint (MXNet resnet_v1_101-0000.params or GluonCV resnet*_v1/_v1b) "
                        "= --set model.pretrained=PATH")
    add_device_arguments(p, "GPU ids, e.g. 0,1,2,3 (training and testing)", "N CPU contexts")
    p.add_argument("--workers", type=number_arg("--workers", lo=0), default=0, metavar="W",
                   help="run every training as a dist_sync job of W worker processes on this machine "
                        "(python -m rfcn_face launch); several machines: REPRODUCE.md")
    p.add_argument("--servers", type=number_arg("--servers", lo=1), default=1, metavar="S",
                   help="parameter servers of those jobs (default 1)")
    p.add_argument("--out", default="RESULTS", metavar="DIR",
                   help="results folder: runs/, tests/, pr/, table1.md, table2.md, ... (default RESULTS; rerun the "
                        "same command to continue)")
    p.add_argument("--max-iters", type=number_arg("--max-iters", lo=0), default=0, metavar="N",
                   help="cap every training at N iterations (a quick run; 0 = the schedule)")
    p.add_argument("--limit", type=number_arg("--limit", lo=0), default=0, metavar="N",
                   help="test on the first N val images only (a quick run; 0 = all)")
    p.add_argument("--checkpoint-every", type=number_arg("--checkpoint-every", lo=0), default=CHECKPOINT_EVERY, metavar="N",
                   help=f"training checkpoints every N iterations (default {CHECKPOINT_EVERY}; always at epoch ends)")
    p.add_argument("--gpu-tflops", type=number_arg("--gpu-tflops", float, lo=0, lo_open=True), default=DEFAULT_GPU_TFLOPS, metavar="X",
                   help=f"effective fp32 TFLOP/s of one GPU for the estimates (default {DEFAULT_GPU_TFLOPS:g}: a "
                        "Titan X, the paper's GPU)")
    p.add_argument("--experiments", default=None, metavar="DIR",
                   help="experiments folder with table1/ and table2/ (default: the repository's)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands and the GPU-hour estimate per row; run and load nothing")
    p.add_argument("--benchmarks", action="store_true",
                   help="instead of the tables: the benchmark files of --run (WIDER test zip, FDDB, AFW, PASCAL)")
    p.add_argument("--run", default=None, metavar="RUN_DIR", help="--benchmarks: the trained Final run folder")
    p.add_argument("--sizes", nargs="+", default=None, metavar="SxL",
                   help="--benchmarks: test size(s) (default: original size; WIDER: the run's test.sizes)")
    add_import_argument(p)
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the summary (or the plan) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _benchmarks(args) -> int:
    from ..reproduce import BenchmarkOptions, format_benchmark_plan, reproduce_benchmarks
    from .test import import_user_modules, parse_test_size
    if not args.run:
        raise ValueError("--benchmarks needs --run RUN_DIR (a trained Final run, e.g. RESULTS/runs/13_final)")
    import_user_modules(args)                     # before the benchmark registry is read
    sizes = [parse_test_size(s) for s in args.sizes] if args.sizes else None
    opts = BenchmarkOptions(run=args.run, data=tuple(args.data or ("data",)), out=args.out, sizes=sizes,
                            gpus=args.gpus, cpus=args.cpus, limit=args.limit, dry_run=args.dry_run,
                            progress=not args.no_progress)
    res = reproduce_benchmarks(opts)
    if args.dry_run:
        print(format_benchmark_plan(res))
    if args.json:
        write_json(args.json, res)
    return 0


def run(args) -> int:
    from ..reproduce import ReproduceOptions, format_plan, reproduce
    from .test import import_user_modules
    if args.benchmarks:
        return _benchmarks(args)
    for flag, given in (("--run", args.run), ("--sizes", args.sizes)):
        if given:
            raise ValueError(f"{flag} applies to --benchmarks only (the tables use each row's own run and test size)")
    if args.data and len(args.data) > 1:
        raise ValueError("give one --data ROOT for the tables (several roots are for --benchmarks)")
    import_user_modules(args)                     # before a config is read
    opts = ReproduceOptions(table=args.table, rows=args.rows, out=args.out, data=args.data[0] if args.data else None,
                            synthfaces=args.synthfaces, pretrained=args.pretrained, preset=args.preset,
                            overrides=tuple(args.overrides), gpus=args.gpus, cpus=args.cpus, workers=args.workers,
                            servers=args.servers, max_iters=args.max_iters, limit=args.limit,
                            checkpoint_every=args.checkpoint_every, gpu_tflops=args.gpu_tflops,
                            experiments=args.experiments, dry_run=args.dry_run, progress=not args.no_progress)
    res = reproduce(opts)           # TrainingDiverged / JobFailed: their exit codes (run_guarded)
    if args.dry_run:
        print(format_plan(res))
    if args.json:
        write_json(args.json, res)
    return 0
