import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice")

# Real public annotations (no images) live next to the checkout; tests that use them skip when absent.
SHARED_DATA = Path(os.environ.get("RFCN_FACE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotations not found at {SHARED_DATA}")
    return SHARED_DATA
