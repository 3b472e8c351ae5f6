"""Library entry points name the path and what is wrong, as the CLI does (issue 25 class 9)."""
from __future__ import annotations

import json

import pytest

from symbols.export import import_detector, read_detector_meta


def test_read_detector_meta(tmp_path):
    p = tmp_path / "m-detector.json"
    with pytest.raises(FileNotFoundError, match="m-detector.json"):
        read_detector_meta(tmp_path / "m")
    for text, why in (("{half", "not JSON"), ("[1, 2]", "JSON object"), (json.dumps({"graph": "x"}), "inputs"),
                      (b"\xff\xfe\x00", "not JSON")):
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
        with pytest.raises(ValueError, match=f"{p}: not a detector description.*{why}"):
            read_detector_meta(tmp_path / "m")
    p.write_text(json.dumps({"graph": "detector", "inputs": ["data"], "outputs": ["dets"]}))
    assert read_detector_meta(tmp_path / "m")["graph"] == "detector"


def test_import_detector(tmp_path):
    with pytest.raises(ValueError, match="graph must be one of .*'tiny'"):
        import_detector(tmp_path / "m", graph="tiny")
    with pytest.raises(FileNotFoundError, match="m-symbol.json"):
        import_detector(tmp_path / "m")
    (tmp_path / "m-symbol.json").write_text("{not a symbol")
    (tmp_path / "m-0000.params").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError) as e:
        import_detector(tmp_path / "m")
    msg = str(e.value)
    assert "m-symbol.json" in msg and "m-0000.params" in msg and "not an exported 'full' detector" in msg
    assert "\n" not in msg and "Traceback" not in msg


def test_readers_strip_a_utf8_bom(tmp_path):
    """A file list saved with a UTF-8 BOM (Windows editors) reads as without it (the first name is not mangled)."""
    from rfcn_face.datasets.wider import read_wider_txt
    from rfcn_face.evaluation.submission import read_image_list
    text = "0--Parade/0_Parade_a_1.jpg\n1\n10 10 20 20 0 0 0 0 0 0\n"
    (tmp_path / "bom.txt").write_bytes("\ufeff".encode() + text.encode())
    (tmp_path / "plain.txt").write_text(text)
    a, b = read_wider_txt(tmp_path / "bom.txt"), read_wider_txt(tmp_path / "plain.txt")
    assert [(r.event, r.name) for r in a] == [(r.event, r.name) for r in b] == [("0--Parade", "0_Parade_a_1")]
    assert read_image_list(tmp_path / "bom.txt") == read_image_list(tmp_path / "plain.txt")
