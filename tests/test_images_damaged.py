"""Damaged images (issue 25 class 5): a truncated JPEG / PNG decodes in OpenCV with only a libjpeg / libpng
warning (the missing rows grey); rfcn_face.datasets.images refuses it by name instead, everywhere it reads."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from rfcn_face.datasets.images import DamagedImage, decode_image, image_damage, load_image


def _photo(seed=0, h=96, w=128):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 2) % 256, (y * 3) % 256, (x + y) % 256], -1).astype(np.uint8)
    return np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(params=[".jpg", ".png"])
def encoded(request, tmp_path):
    ok, buf = cv2.imencode(request.param, _photo())
    assert ok
    return request.param, buf.tobytes()


def test_intact_file_equals_cv2_imread_also_with_padding(tmp_path, encoded):
    ext, data = encoded
    p = tmp_path / f"a{ext}"
    p.write_bytes(data)
    assert np.array_equal(decode_image(p), cv2.imread(str(p), cv2.IMREAD_COLOR))
    assert np.array_equal(load_image(p), cv2.imread(str(p))[:, :, ::-1])
    p.write_bytes(data + b"\x00" * 16)                      # trailing padding some writers leave
    assert np.array_equal(decode_image(p), cv2.imread(str(p), cv2.IMREAD_COLOR))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_is_refused_by_name(tmp_path, encoded, keep):
    ext, data = encoded
    p = tmp_path / f"cut{ext}"
    p.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DamagedImage, match=f"{p}: damaged image: truncated {'JPEG' if ext == '.jpg' else 'PNG'}"):
        decode_image(p)


def test_cv2_alone_half_decodes_a_truncated_jpeg(tmp_path):
    """Why the check exists: OpenCV returns an image for a JPEG cut in half (its bottom rows grey)."""
    ok, buf = cv2.imencode(".jpg", _photo())
    p = tmp_path / "half.jpg"
    p.write_bytes(buf.tobytes()[:len(buf) // 2])
    half = cv2.imread(str(p))
    assert half is not None and half.shape == (96, 128, 3)
    assert image_damage(p.read_bytes()).startswith("truncated JPEG")


def test_other_damage(tmp_path):
    empty, junk, folder = tmp_path / "e.jpg", tmp_path / "j.jpg", tmp_path / "d.jpg"
    empty.write_bytes(b"")
    junk.write_bytes(b"\xff\xd8\xff" + b"garbage" * 20 + b"\xff\xd9")    # markers right, content not a JPEG
    folder.mkdir()
    with pytest.raises(DamagedImage, match="e.jpg: damaged image: empty file"):
        decode_image(empty)
    with pytest.raises(DamagedImage, match="j.jpg: damaged image: not a decodable image"):
        decode_image(junk)
    with pytest.raises(DamagedImage, match="is a folder"):
        decode_image(folder)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        decode_image(tmp_path / "nope.jpg")


def test_test_and_detect_reader_gives_the_reason(tmp_path):
    from rfcn_face.inference import _read_image
    ok, buf = cv2.imencode(".jpg", _photo())
    p = tmp_path / "t.jpg"
    p.write_bytes(buf.tobytes()[:300])
    img, why = _read_image(str(p))
    assert img is None and why == "truncated JPEG (no end-of-image marker)"


def test_faceresnet_folder_names_the_truncated_image(tmp_path):
    from rfcn_face.recognition.data import FolderDataset
    for k in range(2):
        d = tmp_path / f"id{k}"
        d.mkdir()
        for j in range(2):
            cv2.imwrite(str(d / f"{j}.jpg"), _photo(k * 2 + j, 112, 96))
    bad = tmp_path / "id1" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(DamagedImage, match=str(bad)):
        FolderDataset(tmp_path).load()
