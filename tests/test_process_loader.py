"""The multi-process training loader: the samples equal the in-process builder's (any worker count, in job
order, complete and mining targets), prefetch is bounded, the to_device hook runs off the main thread, workers
hold no MXNet and one thread; faults: a builder exception re-raises with the image path, a dead worker (SIGKILL,
segfault, exit) is one error line naming the image and the signal, and no worker outlives its loader or its
parent (close, SIGINT, SIGTERM, SIGKILL of the parent)."""
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rfcn_face.__main__ import run_guarded
from rfcn_face.config import config_from_dict, load_config, resolve_normalisation
from rfcn_face.datasets import synthfaces as sf
from rfcn_face.datasets.batches import SampleBuilder, global_batch
from rfcn_face.datasets.loader import records_for_split
from rfcn_face.datasets.process_loader import (MAX_AUTO_WORKERS, LoaderWorkerDied, ProcessLoader, auto_workers,
                                               loader_workers)
from rfcn_face.datasets.process_worker import SEGMENT_TAG, segment_dir, sweep_stale
from rfcn_face.testing.loader_probes import Faulty, KeyedArrays, WorkerFacts

ROOT = Path(__file__).resolve().parents[1]
FINAL = ROOT / "experiments" / "table1" / "13_final.yaml"
HAMBOX = ROOT / "experiments" / "mining" / "final_hambox.yaml"


def assert_same(a, b, where="sample"):
    """Equal values, dtypes and shapes all the way down (dataclasses, tuples, dicts, arrays); timings aside."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            if f.name != "rpn_seconds":
                assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert a == b, where


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(cond, timeout=15.0):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def segments_of(pid: int):
    return sorted(segment_dir().glob(f"{SEGMENT_TAG}{pid}-*"))


# ------------------------------------------------------------------------------------------------ samples
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return sf.generate_synthfaces(tmp_path_factory.mktemp("synth"), num_train=6, num_val=1, seed=2)


def _builder(row, root):
    cfg = load_config(row, preset="smoke", overrides=("train.max_size=128", f"data.root={root}"))
    resolve_normalisation(cfg)
    return SampleBuilder(cfg, records_for_split(cfg, "train"))


@pytest.mark.parametrize("row", [FINAL, HAMBOX], ids=["final_complete_targets", "hambox_mining_plan"])
def test_samples_equal_the_in_process_builder(synth, row):
    """Two epochs of shuffled 2-image iterations through 2 worker processes == the builder called here."""
    builder = _builder(row, synth)
    n = len(builder.records)
    jobs = [[(e, int(i)) for i in global_batch(0, e, k, n, 2)] for e in range(2) for k in range(n // 2)]
    got = list(ProcessLoader(builder, jobs, workers=2))
    assert len(got) == len(jobs)
    for job, samples in zip(jobs, got):
        assert [(s.epoch, s.index) for s in samples] == job
        for (e, i), s in zip(job, samples):
            assert_same(s, builder(e, i), f"epoch {e} image {i}")
    assert (s.targets is not None, s.plan is None) == ((row == FINAL),) * 2   # HC(N): complete in the loader


@pytest.mark.parametrize("workers", [1, 3])
def test_job_order_with_uneven_work(workers):
    """Images that take 0-80 ms, iterations of 0-3 images: every iteration comes back whole and in job order."""
    builder = KeyedArrays(shape=(64, 33), delays=(0.08, 0.0, 0.03, 0.0, 0.05))
    jobs = [[(e, 10 * k + j) for j in range(k % 4)] for e in range(2) for k in range(7)]
    got = list(ProcessLoader(builder, jobs, workers=workers))
    assert len(got) == len(jobs)
    for job, samples in zip(jobs, got):
        assert len(samples) == len(job)
        for (e, i), s in zip(job, samples):
            assert_same({k: s[k] for k in ("key", "x")}, {k: builder(e, i)[k] for k in ("key", "x")})
    assert len({s["pid"] for samples in got for s in samples}) == workers


def test_prefetch_is_bounded():
    """The loader takes a job only while it is at most ``prefetch`` iterations ahead of the consumer."""
    pulled = []

    def jobs():
        for k in range(10):
            pulled.append(k)
            yield [(0, k)]
    ahead = []
    for taken, _ in enumerate(ProcessLoader(KeyedArrays(), jobs(), workers=2, prefetch=3), 1):
        time.sleep(0.15)                     # a slow consumer: the window fills
        ahead.append(len(pulled) - taken)
    assert max(ahead) == 3 and all(a <= 3 for a in ahead), ahead


def test_to_device_runs_in_the_receiver_thread():
    seen = []

    def to_device(sample, pos):
        seen.append(threading.current_thread() is threading.main_thread())
        return ("moved", sample["key"], pos)
    jobs = [[(0, k), (1, k)] for k in range(4)]
    got = list(ProcessLoader(KeyedArrays(), jobs, workers=2, to_device=to_device))
    assert got == [[("moved", j, pos) for pos, j in enumerate(job)] for job in jobs]
    assert seen == [False] * 8


def test_stall_counts_the_consumer_waiting():
    """One worker that needs 0.2 s per image and a consumer that needs nothing: it waits about 5 x 0.2 s."""
    loader = ProcessLoader(KeyedArrays(delays=(0.2,)), [[(0, k)] for k in range(5)], workers=1)
    t0 = time.perf_counter()
    assert len(list(loader)) == 5
    assert 0.9 <= loader.stall <= time.perf_counter() - t0


def test_workers_hold_no_mxnet_and_one_thread(synth):
    mx = pytest.importorskip("mxnet")             # loaded here, in the parent
    assert mx.__name__ in sys.modules
    (sample, facts), = next(iter(ProcessLoader(WorkerFacts(_builder(FINAL, synth)), [[(0, 0)]], workers=1)))
    assert facts["mxnet_modules"] == []
    assert (facts["cv2_threads"], facts["omp_threads"], facts["ppid"]) == (1, "1", os.getpid())
    assert sample.image.ndim == 3


def test_worker_count_auto_literal():
    assert [auto_workers(c) for c in (1, 2, 3, 4, 9, 10, 64)] == [1, 1, 2, 3, 8, 8, 8]
    assert MAX_AUTO_WORKERS == 8
    assert loader_workers(config_from_dict({"data": {"num_workers": 3}})) == 3
    assert loader_workers(config_from_dict({})) == auto_workers() >= 1     # the default 0 = auto


# ------------------------------------------------------------------------------------------------ faults
@pytest.mark.parametrize("fault,cls,text", [("value_error", ValueError, "the face boxes are not finite"),
                                            ("missing_file", FileNotFoundError, "image not found")])
def test_builder_exception_reraises_with_the_image_path(fault, cls, text):
    loader = ProcessLoader(Faulty(fault, at=5), [[(0, k), (0, k + 1)] for k in range(0, 10, 2)], workers=2)
    t0 = time.time()
    with pytest.raises(cls, match=f"/data/images/img_00005.jpg: {text}") as info:
        for _ in loader:
            pass
    assert time.time() - t0 < 30
    assert any("in the training-loader worker" in note for note in info.value.__notes__)
    assert not any(alive(p) for p in loader.pids)


@pytest.mark.parametrize("fault,how", [("sigkill", "was killed by SIGKILL"), ("segfault", "was killed by SIGSEGV"),
                                       ("exit", "exited with code 3")])
def test_dead_worker_is_one_error_line_naming_the_image(fault, how, capsys):
    loader = ProcessLoader(Faulty(fault, at=3), [[(0, k)] for k in range(8)], workers=2)
    t0 = time.time()
    assert run_guarded(lambda: sum(1 for _ in loader), name="train") == LoaderWorkerDied.code == 1
    assert time.time() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training loader worker ")
    assert f"{how} while building /data/images/img_00003.jpg (epoch 0, image 3)" in err[0]
    assert not any(alive(p) for p in loader.pids)
    assert segments_of(os.getpid()) == []


def test_leaving_the_loop_early_ends_every_worker():
    loader = ProcessLoader(KeyedArrays(shape=(512, 512)), [[(0, k), (0, k + 50)] for k in range(50)], workers=2)
    for k, _ in enumerate(loader):
        if k == 2:
            break
    assert wait_until(lambda: not any(alive(p) for p in loader.pids), 10)
    assert segments_of(os.getpid()) == []


PARENT = textwrap.dedent("""
    import sys, time
    from rfcn_face.datasets.process_loader import ProcessLoader
    from rfcn_face.testing.loader_probes import KeyedArrays
    loader = ProcessLoader(KeyedArrays(shape=(256, 256), delays=(0.2, 60.0)), [[(0, k)] for k in range(99)],
                           workers=2)
    print(*loader.pids, flush=True)
    for samples in loader:
        print("got", samples[0]["key"], flush=True)
        time.sleep(0.2)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_no_worker_outlives_its_parent(sig):
    """The training process is interrupted (its loader closes), terminated or killed (the workers' parent-death
    signal and watchdog) while its workers are busy, one of them for a minute: every worker ends within
    seconds and leaves no shared-memory file."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=env, cwd=ROOT, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        assert parent.stdout.readline().startswith("got")   # image 0 is back, image 1 takes a minute
        time.sleep(0.5)
        parent.send_signal(sig)
        parent.wait(30)
        assert wait_until(lambda: not any(alive(p) for p in pids), 15), [p for p in pids if alive(p)]
        assert segments_of(parent.pid) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_stale_segments_of_dead_processes_are_swept():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = segment_dir() / f"{SEGMENT_TAG}{dead.pid}-abcd-w0-7"
    mine = segment_dir() / f"{SEGMENT_TAG}{os.getpid()}-abcd-w0-7"
    stale.write_bytes(b"x")
    mine.write_bytes(b"x")
    try:
        assert sweep_stale() >= 1
        assert not stale.exists() and mine.exists()
    finally:
        for f in (stale, mine):
            f.unlink(missing_ok=True)
