import importlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice")

# Real public annotations (no images) live next to the checkout; tests that use them skip when absent.
SHARED_DATA = Path(os.environ.get("RFCN_FACE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# The pinned stack. Locally a test file may importorskip one of them; under CI a missing or broken one is an
# error before any test runs, so a broken install can never go green by skipping.
PINNED_STACK = ("mxnet", "gluoncv", "faiss", "cv2", "scipy", "skimage", "matplotlib", "yaml", "h5py", "tqdm")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config):
    if not _in_ci():
        return
    for name in PINNED_STACK:
        try:
            importlib.import_module(name)
        except Exception as e:  # ImportError, or a broken binary raising anything else
            raise pytest.UsageError(f"CI: the pinned stack does not import: {name}: {type(e).__name__}: {e}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotations not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """The training issue's smoke model (30 iterations of the Final row under the smoke preset, ResNet-18
    DC+16x3+SJ+HC(5), 128 px), trained once per pytest session for the detector / test / export tests."""
    from rfcn_face.config import load_config
    from rfcn_face.train import TrainOptions, train
    d = tmp_path_factory.getbasetemp() / "smoke_run_30"
    if not (d / "final.params").is_file():
        final = Path(__file__).resolve().parents[1] / "experiments" / "table1" / "13_final.yaml"
        cfg = load_config(final, preset="smoke", overrides=("train.max_size=128",))
        train(cfg, TrainOptions(out=str(d), max_iters=30, progress=False))
    return d
