"""Under CI=true a pinned package that does not import fails the run instead of skipping tests."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pytest(tmp_path, ci: str, broken: str):
    (tmp_path / f"{broken}.py").write_text("raise ImportError('simulated broken install')\n")
    env = dict(os.environ, CI=ci, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_boxes.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_ci_fails_when_a_pinned_package_is_broken(tmp_path):
    r = _pytest(tmp_path, "true", "faiss")
    assert r.returncode != 0
    assert "the pinned stack does not import: faiss" in r.stdout + r.stderr


def test_outside_ci_the_same_install_still_runs(tmp_path):
    r = _pytest(tmp_path, "", "faiss")
    assert r.returncode == 0, r.stdout[-1500:]
