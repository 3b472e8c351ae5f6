"""The training loader alone (:class:`rfcn_face.datasets.process_loader.ProcessLoader` over the real
:class:`rfcn_face.datasets.batches.SampleBuilder`): images/s with 1 and 2 worker processes, same run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_loader.py [--iterations 32] [--repeats 3]

Inputs: a seeded synthetic WIDER-layout folder in a temporary directory (:mod:`rfcn_face.datasets.synthfaces`:
``--images`` 1024x1024 JPEGs with 200 faces each), config DC+16x3+HC(5) (``experiments/table1/13_final.yaml``,
original size: decode, flip, shift jitter, normalisation and the anchor targets of 147,456 anchors per image).
The consumer takes each iteration (one image, as R-FCN on one device) and discards it. Per measurement the
workers start, ``--warmup`` iterations pass untimed (start-up, first images), then ``--iterations`` are timed;
1 and 2 workers alternate ``--repeats`` times and the medians are compared. The last line reads
``loader_speedup_2w=<x> images_per_s_1w=<a> images_per_s_2w=<b>`` (goal: speedup >= 1.6 on a 2-core machine).

:func:`measure` is what ``benchmarks/bench_train.py`` calls.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FINAL = ROOT / "experiments" / "table1" / "13_final.yaml"


def make_inputs(root, images: int = 8, size: int = 1024, faces: int = 200, seed: int = 0):
    """The training records of a synthfaces folder of ``images`` ``size``-px images with ``faces`` faces each."""
    from rfcn_face.datasets.synthfaces import generate_synthfaces
    from rfcn_face.datasets.wider import wider_split_records
    os.environ.setdefault("RFCN_FACE_QUIET", "1")
    generate_synthfaces(root, num_train=images, num_val=1, seed=seed, image_size=size,
                        faces_per_image=(faces, faces))
    return wider_split_records(Path(root), "train", check_images=True)


def loader_config(root):
    from rfcn_face.config import load_config, resolve_normalisation
    cfg = load_config(FINAL, overrides=("data.dataset=synthfaces", f"data.root={root}"))
    resolve_normalisation(cfg, None)           # random-init pixel style; no checkpoint is read
    return cfg


def _cpu_seconds(pid=None) -> float:
    """User + system CPU seconds of this process (all threads) or of the live process ``pid`` (Linux /proc)."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def images_per_second(builder, n_images: int, workers: int, iterations: int, warmup: int) -> dict:
    """Consume-and-discard throughput of ``workers`` processes over ``iterations`` one-image iterations, and the
    CPU milliseconds per image of this process (consumer + receiver thread) and of the workers together."""
    from rfcn_face.datasets.process_loader import ProcessLoader
    jobs = [[(it // n_images, it % n_images)] for it in range(warmup + iterations)]   # (epoch, image)
    with ProcessLoader(builder, jobs, workers=workers) as loader:
        it = iter(loader)
        for _ in range(warmup):
            next(it)
        t0, c0, w0 = time.perf_counter(), _cpu_seconds(), sum(_cpu_seconds(p) for p in loader.pids)
        for k, _ in enumerate(it, 1):
            if k == iterations:
                w1 = sum(_cpu_seconds(p) for p in loader.pids)
        dt, c1 = time.perf_counter() - t0, _cpu_seconds()
    return {"images_per_s": iterations / dt, "parent_cpu_ms": 1e3 * (c1 - c0) / iterations,
            "worker_cpu_ms": 1e3 * (w1 - w0) / iterations}


def measure(images: int = 8, iterations: int = 32, warmup: int = 4, repeats: int = 3, workers=(1, 2),
            log=print) -> dict:
    """Medians over ``repeats`` alternating runs: ``{"images_per_s": {w: ...}, "parent_cpu_ms": {w: ...},
    "worker_cpu_ms": {w: ...}, "loader_speedup_2w": images/s of 2 workers / of 1, "faces_per_image": ...}``."""
    from rfcn_face.datasets.batches import SampleBuilder
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as d:
        records = make_inputs(Path(d) / "synth", images=images)
        builder = SampleBuilder(loader_config(Path(d) / "synth"), records)
        runs = {w: [] for w in workers}
        for r in range(repeats):
            for w in workers:
                runs[w].append(images_per_second(builder, len(records), w, iterations, max(1, warmup)))
                log(f"repeat {r + 1}/{repeats}, {w} worker(s): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                                           runs[w][-1].items()))
    out = {k: {w: statistics.median(m[k] for m in v) for w, v in runs.items()}
           for k in ("images_per_s", "parent_cpu_ms", "worker_cpu_ms")}
    out["faces_per_image"] = statistics.mean(len(r.boxes) for r in records)
    if 1 in workers and 2 in workers:
        out["loader_speedup_2w"] = out["images_per_s"][2] / out["images_per_s"][1]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=8, help="distinct synthetic images (default 8)")
    p.add_argument("--iterations", type=int, default=32, help="timed one-image iterations (default 32)")
    p.add_argument("--warmup", type=int, default=4, help="untimed first iterations (default 4)")
    p.add_argument("--repeats", type=int, default=3, help="alternating 1- / 2-worker measurements (default 3)")
    a = p.parse_args(argv)
    res = measure(a.images, a.iterations, a.warmup, a.repeats)
    ips = res["images_per_s"]
    print(f"1024x1024, {res['faces_per_image']:.0f} faces per image, DC+16x3+HC(5), medians of {a.repeats}:")
    for w, v in ips.items():
        print(f"  {w} worker(s): {v:.2f} images/s; CPU per image: workers {res['worker_cpu_ms'][w]:.0f} ms, "
              f"this process (consumer + receiver) {res['parent_cpu_ms'][w]:.1f} ms")
    print(f"loader_speedup_2w={res['loader_speedup_2w']:.3f} images_per_s_1w={ips[1]:.3f} images_per_s_2w={ips[2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
