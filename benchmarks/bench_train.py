"""What the host costs a training step, measured on this CPU, for GPU projections: the main thread's CPU time per
image, the device -> host reads between the first forward and the backward, and the loader's scaling.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py                      # + ResNet-101 rows
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py --device-path-only   # the one line (< 3 min)

Runs the real loop (:class:`rfcn_face.train.DetectorTraining`) on a seeded synthetic set of 1024x1024 images with
200 faces each (``benchmarks/bench_loader.make_inputs``), config DC+16x3+HC(5) (``experiments/table1/13_final.yaml``
at original size), random init, **two CPU contexts** (one image per device per step) and the GPU's NMS
(``--nms-impl box_nms``), so the step is what a 2-GPU step issues. Printed:

* ``host_ms_per_image`` — the main thread's CPU time in :meth:`~rfcn_face.train.DetectorTraining.run_step` per
  image (``time.thread_time``; the MXNet kernels run on the engine's threads, the loader in its processes, the
  copies to the devices in the loader's receiver thread): what a GPU waits for per image when the host is the
  bottleneck. Median over the timed steps, after ``--warmup``.
* ``syncs_per_step`` — ``asnumpy`` / ``asscalar`` / ``wait_to_read`` calls between the first forward of a step and
  its backward (the loss terms are read once, after the backward is issued).
* ``loader_speedup_2w`` — the loader alone, images/s with 2 worker processes over 1
  (:func:`benchmarks.bench_loader.measure`).

The default run also times the host step of ``final_hambox`` (a strategy that reads predictions: its RPN maps read
back and its targets finished in numpy, per image) and the ResNet-101 network (``--r101-steps``) for the host share of
a real-size step, and prints ``docs/training.md``'s GPU table from the measured host and loader figures (the GPU
side on paper: FLOPs / effective TFLOP/s, :func:`rfcn_face.reproduce.estimate.project_step`), never measured here.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FINAL = ROOT / "experiments" / "table1" / "13_final.yaml"
HAMBOX = ROOT / "experiments" / "mining" / "final_hambox.yaml"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps (default 6)")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (default 2)")
    p.add_argument("--size", type=int, default=1024, help="image size (default 1024)")
    p.add_argument("--faces", type=int, default=200, help="faces per image (default 200)")
    p.add_argument("--depth", type=int, default=18, help="ResNet depth of the device-path line (default 18)")
    p.add_argument("--r101-steps", type=int, default=2, help="timed ResNet-101 steps of the default run")
    p.add_argument("--loader-iterations", type=int, default=16)
    p.add_argument("--loader-repeats", type=int, default=2)
    p.add_argument("--device-path-only", action="store_true", help="only the one device_path line")
    return p.parse_args(argv)


class _ReadCounter:
    """Counts device -> host reads between DetectorStep.forward_backward's start and its autograd.backward."""

    def __init__(self):
        self.windows, self.open, self._undo = [], False, []

    def __enter__(self):
        from mxnet import autograd
        from mxnet.ndarray import NDArray

        from rfcn_face.train_step import DetectorStep
        me = self

        def patch(owner, name, make):
            real = getattr(owner, name)
            setattr(owner, name, make(real))
            self._undo.append((owner, name, real))
        for name in ("asnumpy", "asscalar", "wait_to_read"):
            patch(NDArray, name, lambda real: (lambda s, *a, **k: (me._count(), real(s, *a, **k))[1]))

        def fb(real):
            def f(step, device_samples, *rest):
                me.windows.append(0)
                me.open = True
                try:
                    return real(step, device_samples, *rest)
                finally:
                    me.open = False
            return f
        patch(DetectorStep, "forward_backward", fb)
        patch(autograd, "backward", lambda real: (lambda *a, **k: (setattr(me, "open", False), real(*a, **k))[1]))
        return self

    def _count(self):
        if self.open:
            self.windows[-1] += 1

    def __exit__(self, *exc):
        for owner, name, real in reversed(self._undo):
            setattr(owner, name, real)


def run_steps(records_root, depth: int, steps: int, warmup: int, contexts, nms_impl="box_nms", config=FINAL):
    """``(host_ms_per_image, syncs per step, seconds per step)`` of ``steps`` timed steps of the real loop."""
    from rfcn_face.config import load_config
    from rfcn_face.train import DetectorTraining, TrainOptions
    cfg = load_config(config, overrides=("data.dataset=synthfaces", f"data.root={records_root}",
                                        f"model.depth={depth}", "model.pretrained="))
    with tempfile.TemporaryDirectory(prefix="bench_train_") as d, _ReadCounter() as reads:
        t = DetectorTraining(cfg, TrainOptions(out=str(Path(d) / "run"), contexts=contexts, max_iters=warmup + steps,
                                               progress=False, keep_checkpoints=1, nms_impl=nms_impl))
        t.log = lambda *a, **k: None
        t.run()
    rows = t.timer.rows[warmup:]
    images = len(contexts)
    host = statistics.median(1e3 * r["host"] / images for r in rows)
    return host, max(reads.windows[warmup:]), statistics.median(r["total"] for r in rows)


def main(argv=None):
    a = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))
    os.environ.setdefault("RFCN_FACE_QUIET", "1")
    import mxnet as mx

    from bench_loader import make_inputs, measure
    contexts = [mx.cpu(0), mx.cpu(1)]
    with tempfile.TemporaryDirectory(prefix="bench_train_data_") as d:
        root = Path(d) / "synth"
        make_inputs(root, images=max(4, 2 * (a.warmup + a.steps)), size=a.size, faces=a.faces)
        print(f"{a.size}x{a.size}, {a.faces} faces per image, DC+16x3+HC(5), 2 CPU contexts, box_nms, "
              f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}", flush=True)
        host, syncs, sec = run_steps(root, a.depth, a.steps, a.warmup, contexts)
        print(f"ResNet-{a.depth}: host {host:.2f} ms per image (main-thread CPU), {syncs} reads between forward and "
              f"backward, {sec:.2f} s per step on this CPU", flush=True)
        if not a.device_path_only:      # the host step a strategy that reads predictions keeps (HAMBox)
            hh, hs, hsec = run_steps(root, a.depth, a.steps, a.warmup, contexts, config=HAMBOX)
            print(f"ResNet-{a.depth}, final_hambox: host {hh:.2f} ms per image, {hs} reads between forward and "
                  f"backward, {hsec:.2f} s per step on this CPU", flush=True)
        if not a.device_path_only and a.r101_steps > 0:
            h101, s101, sec101 = run_steps(root, 101, a.r101_steps, 1, contexts)
            print(f"ResNet-101: host {h101:.2f} ms per image, {s101} reads, {sec101:.1f} s per step on this CPU",
                  flush=True)
    lo = measure(iterations=a.loader_iterations, repeats=a.loader_repeats, log=lambda *x: None)
    print(f"loader alone: {lo['images_per_s'][1]:.2f} images/s with 1 worker process, {lo['images_per_s'][2]:.2f} "
          f"with 2; worker CPU {lo['worker_cpu_ms'][1]:.0f} ms per image", flush=True)
    print(f"device_path host_ms_per_image={host:.3f} syncs_per_step={syncs} "
          f"loader_speedup_2w={lo['loader_speedup_2w']:.3f}")
    if not a.device_path_only:
        print_projection(host, lo["worker_cpu_ms"][1])


def print_projection(host_ms: float, loader_ms: float) -> None:
    """docs/training.md's GPU table from this run's host and loader figures (rfcn_face.reproduce.estimate)."""
    from rfcn_face.config import load_config
    from rfcn_face.reproduce.estimate import projection_table
    from symbols.flops import config_gflops
    rows = []
    for label, path in (("R-101 baseline", ROOT / "experiments" / "table1" / "01_baseline.yaml"),
                        ("R-101 DC+16x3+HC(5)", FINAL)):
        cfg = load_config(path, overrides=("model.depth=101",))
        rows += [(label, hw, config_gflops(cfg, *hw)) for hw in ((600, 1000), (1024, 1024))]
    print(f"\nprojection (host {host_ms:.2f} ms / image, loader {loader_ms:.1f} ms of CPU / image / process):")
    print(projection_table(rows, host_ms, loader_ms))


if __name__ == "__main__":
    main()
