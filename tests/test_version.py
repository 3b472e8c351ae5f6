"""``python -m rfcn_face --version``: the package's version (the one pyproject.toml builds with), fast, exit 0."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import rfcn_face

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_version_without_importing_mxnet():
    code = ("import sys\nfrom rfcn_face.__main__ import main\ntry:\n    main(['--version'])\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'mxnet' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert p.stdout.splitlines() == [f"rfcn_face {rfcn_face.__version__}", "exit 0 False"] and p.stderr == ""
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.post|\.dev)?\d*", rfcn_face.__version__)   # PEP 440
    p = subprocess.run([sys.executable, "-m", "rfcn_face", "--version"], capture_output=True, text=True, timeout=60,
                       cwd=str(ROOT))
    assert (p.returncode, p.stdout) == (0, f"rfcn_face {rfcn_face.__version__}\n")


def test_pyproject_takes_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rfcn_face.__version__"}
