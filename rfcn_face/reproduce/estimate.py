"""GPU-hour estimates of a row from the FLOPs of its network's layer shapes (:mod:`symbols.flops`).

GPU-hours = FLOPs / (``gpu_tflops`` x 3600). Training FLOPs = 3 x the forward FLOPs (forward + backward ~ 3 x
forward; the frozen conv1 / res2 need no backward, so this is an upper bound by ~10 %) of a typical WIDER image
(1024 x 768 at original size, ``train.max_size`` and ``train.multiscale_sizes`` applied) x 12,880 WIDER train
images x ``train.epochs``; testing = 3,226 val images x the forward FLOPs at each test size. ``gpu_tflops`` = 5
effective fp32 TFLOP/s: an NVIDIA Titan X (the paper's GPU, Sec. 5.3; 6.6 TFLOP/s peak for the Maxwell card, 11
for the Pascal one) at 45-75 % of peak.

Wall time (:func:`project_step`): a training step of one worker issues one image per GPU of its machine; the GPUs
compute in parallel (``gpu_ms`` = 3 x forward GFLOPs / TFLOP/s each), while the worker's main thread spends
:data:`HOST_MS_PER_IMAGE` of Python / numpy per image on all of them one after another (measured here:
``benchmarks/bench_train.py --device-path-only``). The engine runs the host ahead of the devices, so a step lasts
``max(gpu_ms, n x host_ms)`` and a GPU is busy ``gpu_ms / step`` of it; the loader's worker processes must deliver
``n`` images per step at :data:`LOADER_MS_PER_IMAGE` each (``benchmarks/bench_loader.py``). Not counted: the
gradient exchange (NCCL / kvstore), the testing side's host work, and host CPUs faster than this one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

__all__ = ["WIDER_TRAIN_IMAGES", "WIDER_VAL_IMAGES", "TYPICAL_IMAGE_HW", "FWD_BWD_FACTOR", "DEFAULT_GPU_TFLOPS",
           "GPU_NAME", "Estimate", "input_hw", "train_input_sizes", "gpu_hours", "estimate_row", "HOST_MS_PER_IMAGE",
           "LOADER_MS_PER_IMAGE", "PROJECTION_GPUS", "StepProjection", "project_step", "projection_table"]

WIDER_TRAIN_IMAGES = 12880          # WIDER FACE train (wider_face_train.mat)
WIDER_VAL_IMAGES = 3226             # WIDER FACE val (wider_face_val.mat)
TYPICAL_IMAGE_HW = (768, 1024)      # WIDER images are 1024 px wide; ~768 px high is typical (landscape 4:3)
FWD_BWD_FACTOR = 3.0                # forward + backward ~ 3 x forward FLOPs
DEFAULT_GPU_TFLOPS = 5.0            # effective fp32 TFLOP/s assumed for one NVIDIA Titan X
GPU_NAME = "NVIDIA Titan X"         # Sec. 5.3: "a single NVIDIA Titan X GPU with batch size 1"
# Measured on the 2-core development CPU, 1024 x 1024 images with 200 faces, DC+16x3+HC(5), box_nms (docs/training.md,
# "Speed"): the main thread's CPU time per image of a training step (bench_train.py --device-path-only: 6.19 ms),
# and one loader process' CPU time per image (bench_loader.py: 88-93 ms).
HOST_MS_PER_IMAGE = 6.2
LOADER_MS_PER_IMAGE = 92.0
# effective fp32 TFLOP/s of the GPUs the docs' projection table shows (issue figures, not measurements)
PROJECTION_GPUS = {"V100": 15.0, "A100": 35.0, "H100": 50.0}


@dataclass
class Estimate:
    """GPU-hours of one row (see the module docstring for the assumptions)."""
    train_gflops: float           # forward GFLOPs of one training image (mean over the training sizes)
    train_images: int             # images the training processes
    train_gpu_hours: float        # 0 when the training is shared with an earlier row
    test_gflops: float            # forward GFLOPs of one test image (summed over the test sizes)
    test_images: int
    test_gpu_hours: float
    shared: bool = False

    @property
    def gpu_hours(self) -> float:
        return self.train_gpu_hours + self.test_gpu_hours


def input_hw(size, hw=TYPICAL_IMAGE_HW):
    from ..transforms import max_size_scale
    h0, w0 = hw
    s = max_size_scale(h0, w0, int(size[0]), int(size[1]))
    return max(1, int(round(h0 * s))), max(1, int(round(w0 * s)))


def train_input_sizes(cfg, hw=TYPICAL_IMAGE_HW) -> List[tuple]:
    """The network input sizes of a typical WIDER image in training: each ``train.multiscale_sizes`` entry (or
    the original size), then the ``train.max_size`` cap on the longer side."""
    sizes = [input_hw(s, hw) for s in cfg.train.multiscale_sizes] or [tuple(hw)]
    cap = int(cfg.train.max_size)
    out = []
    for h, w in sizes:
        if cap > 0 and max(h, w) > cap:
            s = cap / max(h, w)
            h, w = max(1, int(round(h * s))), max(1, int(round(w * s)))
        out.append((h, w))
    return out


def gpu_hours(gflops: float, images: int, tflops: float, factor: float = 1.0) -> float:
    return float(gflops) * float(images) * factor / (float(tflops) * 1e3) / 3600.0


def estimate_row(row, opts, shared: bool = False) -> Estimate:
    """The GPU-hour estimate of one row from the FLOPs of its network's layer shapes (:mod:`symbols.flops`)."""
    from symbols.flops import config_gflops
    cfg = row.cfg
    tr = [config_gflops(cfg, h, w) for h, w in train_input_sizes(cfg)]
    train_g = float(np.mean(tr))
    images = WIDER_TRAIN_IMAGES * int(cfg.train.epochs)
    if opts.max_iters:
        g = int(cfg.train.batch_images) * opts.devices * max(1, int(opts.workers))
        images = min(images, int(opts.max_iters) * g)
    test_g = float(sum(config_gflops(cfg, *input_hw(s)) for s in row.sizes))
    n_test = int(opts.limit) if opts.limit else WIDER_VAL_IMAGES
    return Estimate(train_g, images, 0.0 if shared else gpu_hours(train_g, images, opts.gpu_tflops, FWD_BWD_FACTOR),
                    test_g, n_test, gpu_hours(test_g, n_test, opts.gpu_tflops), shared)


@dataclass
class StepProjection:
    """One worker's training step on ``gpus`` GPUs of one machine (module docstring)."""
    gpu_ms: float                 # forward + backward of one image on one GPU
    host_ms: float                # the main thread's time for the step (every GPU's image)
    step_ms: float
    utilisation: float            # share of the step a GPU computes
    loader_workers: int           # loader processes that keep up with the step


def project_step(gflops: float, gpus: int, tflops: float, host_ms: float = HOST_MS_PER_IMAGE,
                 loader_ms: float = LOADER_MS_PER_IMAGE) -> StepProjection:
    """The projection of one step from the forward GFLOPs of an image (module docstring)."""
    gpus = max(1, int(gpus))
    gpu_ms = FWD_BWD_FACTOR * float(gflops) / float(tflops)       # GFLOP / (TFLOP/s) = ms
    host = float(host_ms) * gpus
    step = max(gpu_ms, host)
    return StepProjection(gpu_ms, host, step, gpu_ms / step, max(1, int(np.ceil(loader_ms * gpus / step))))


def projection_table(rows, host_ms: float = HOST_MS_PER_IMAGE, loader_ms: float = LOADER_MS_PER_IMAGE,
                     gpus=(1, 4, 8), devices=PROJECTION_GPUS) -> str:
    """The docs' table: ``rows`` = ``(label, (h, w), forward GFLOPs)``; per GPU kind the projected ms of an image
    and, on 1 / 4 / 8 GPUs per machine, the utilisation and the loader processes needed."""
    head = ("| network, input | GFLOPs (forward) | GPU | GPU ms / image (fwd + bwd) | "
            + " | ".join(f"{n} GPU{'s' if n > 1 else ''}: util., loaders" for n in gpus) + " |")
    out = [head, "|" + " --- |" * (4 + len(gpus))]
    for label, (h, w), g in rows:
        for name, tf in devices.items():
            cells = []
            for n in gpus:
                p = project_step(g, n, tf, host_ms, loader_ms)
                cells.append(f"{p.utilisation:.0%}, {p.loader_workers}")
            out.append(f"| {label}, {h}x{w} | {g:.0f} | {name} ({tf:g} TFLOP/s) | "
                       f"{FWD_BWD_FACTOR * g / tf:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(out)
