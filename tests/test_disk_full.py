"""Disk full / read-only outputs (issue 25 class 6) at the one atomic writer (rfcn_face.checkpoint): the error
names the final path and the OS reason, no file is left under the final name and no temporary is left."""
from __future__ import annotations

import errno
import os

import pytest

from rfcn_face import checkpoint as C
from rfcn_face.__main__ import error_line


def full_disk(monkeypatch, code=errno.ENOSPC):
    """Every atomic write fails after its bytes went to the temporary (as a full disk's last flush would)."""
    real = C._fill

    def fill(write, tmp):
        real(write, tmp)
        raise OSError(code, os.strerror(code), str(tmp))
    monkeypatch.setattr(C, "_fill", fill)


@pytest.mark.parametrize("code,reason", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EROFS, "Read-only file system")])
def test_file_writers(tmp_path, monkeypatch, code, reason):
    full_disk(monkeypatch, code)
    for name, call in (("a.json", lambda p: C.atomic_write_json(p, {"x": 1})),
                       ("b.txt", lambda p: C.atomic_write_text(p, "x")),
                       ("c.bin", lambda p: C.atomic_write_bytes(p, b"x")),
                       ("d.png", lambda p: C.atomic_write_file(p, lambda t: open(t, "wb").write(b"png")))):
        p = tmp_path / name
        with pytest.raises(OSError) as e:
            call(p)
        assert error_line(e.value) == f"error: {p}: {reason}"
    assert list(tmp_path.iterdir()) == []                      # nothing under a final name, no temporary


def test_existing_file_is_kept_whole(tmp_path, monkeypatch):
    p = tmp_path / "results.json"
    C.atomic_write_json(p, {"old": 1})
    full_disk(monkeypatch)
    with pytest.raises(OSError):
        C.atomic_write_json(p, {"new": 2})
    assert p.read_text() == C.json.dumps({"old": 1}, indent=1) and list(tmp_path.iterdir()) == [p]


def test_checkpoint_folder(tmp_path, monkeypatch):
    full_disk(monkeypatch)
    with pytest.raises(OSError) as e:
        C.save_checkpoint(tmp_path / "run", 5, lambda d: (d / "model.params").write_bytes(b"w"), {})
    assert error_line(e.value) == f"error: {tmp_path / 'run' / 'checkpoints' / 'iter-0000005'}: No space left on device"
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []


def test_mxnet_save_failure_names_the_file(tmp_path):
    """MXNet's own failed save (an MXNetError, no errno) becomes an OSError naming the final file."""
    import mxnet as mx
    p = tmp_path / "w.params"
    with pytest.raises(OSError) as e:
        C.atomic_write_file(p, lambda t: mx.nd.save(str(tmp_path / "no" / "such" / "dir" / "x"), {"a": mx.nd.ones(1)}))
    assert error_line(e.value).startswith(f"error: {p}: cannot write (")
    assert list(tmp_path.iterdir()) == []
