"""Compact table of real face boxes, the default input of the EMO analysis (Fig. 7).

The package ships ``resources/wider_val_faces.npz``: every face of the official WIDER FACE val ground truth
(``wider_face_val_bbx_gt.txt``: 3,226 images, 39,708 rows) as integer ``x y w h`` plus the image index and the
``invalid`` flag, ~0.2 MB. Rebuild it from the official file with::

    python -m rfcn_face.facetable ../shared/data/widerface/wider_face_split/wider_face_val_bbx_gt.txt
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESOURCE = Path(__file__).resolve().parent / "resources" / "wider_val_faces.npz"

__all__ = ["FaceTable", "load_face_table", "face_table_from_records", "RESOURCE"]


@dataclass
class FaceTable:
    boxes: np.ndarray        # (N, 4) float64 x1 y1 x2 y2, continuous convention
    image_index: np.ndarray  # (N,) int
    invalid: np.ndarray      # (N,) bool (WIDER 'invalid' label; ignored faces)
    source: str

    def usable(self) -> "FaceTable":
        """Faces that an anchor analysis should count: valid and of positive size (drops the dummy 0 0 0 0)."""
        w = self.boxes[:, 2] - self.boxes[:, 0]
        h = self.boxes[:, 3] - self.boxes[:, 1]
        keep = (~self.invalid) & (w > 0) & (h > 0)
        return FaceTable(self.boxes[keep], self.image_index[keep], self.invalid[keep], self.source)

    def __len__(self):
        return len(self.boxes)


def face_table_from_records(records, source: str) -> FaceTable:
    boxes, idx, invalid = [], [], []
    for i, r in enumerate(records):
        boxes.append(r.boxes)
        idx.append(np.full(len(r.boxes), i))
        inv = r.attributes.get("invalid")
        invalid.append(np.asarray(inv, dtype=bool) if inv is not None else np.asarray(r.ignore, dtype=bool))
    cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
    return FaceTable(cat(boxes, (0, 4)).reshape(-1, 4), cat(idx, (0,)).astype(np.int64),
                     cat(invalid, (0,)).astype(bool), source)


def _read_annotations(path: Path):
    from .datasets import wider
    if path.suffix == ".mat":
        return wider.read_wider_split_mat(str(path))
    return wider.read_wider_txt(str(path))


def load_face_table(path=None) -> FaceTable:
    """The packaged WIDER val faces (``path=None``), or the faces of a WIDER annotation (``*_bbx_gt.txt``,
    7-column text, or a split / val ``.mat``)."""
    if path is None:
        if not RESOURCE.is_file():
            raise FileNotFoundError(f"packaged face table missing: {RESOURCE} (rebuild: python -m rfcn_face.facetable FILE)")
        z = np.load(RESOURCE)
        xywh = z["xywh"].astype(np.float64)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return FaceTable(boxes, z["image_index"].astype(np.int64), z["invalid"].astype(bool),
                         "packaged WIDER FACE val ground truth")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a WIDER annotation file (*_bbx_gt.txt or a split .mat)")
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    return face_table_from_records(_read_annotations(path), str(path))


def build_resource(annotation: str | Path, out: Path = RESOURCE) -> Path:
    t = load_face_table(annotation)
    xywh = np.concatenate([t.boxes[:, :2], t.boxes[:, 2:] - t.boxes[:, :2]], axis=1)
    if not np.array_equal(xywh, np.round(xywh)) or xywh.min() < 0 or xywh.max() > 65535:
        raise ValueError("face table expects non-negative integer x y w h below 65536")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, xywh=xywh.astype(np.uint16), image_index=t.image_index.astype(np.uint16),
                        invalid=t.invalid.astype(np.uint8))
    return out


if __name__ == "__main__":
    p = build_resource(sys.argv[1])
    print(f"wrote {p} ({p.stat().st_size} bytes)")
