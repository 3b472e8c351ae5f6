"""synthfaces: a small, deterministic tiny-face dataset built only from what scikit-image ships.

The 100 real LFW face crops of :func:`skimage.data.lfw_subset` (25 x 25, grey) are pasted onto crops of
scikit-image's bundled photographs, at face sizes drawn from the real WIDER FACE val face-size distribution
(:data:`WIDER_VAL_SIZE_EDGES` / :data:`WIDER_VAL_SIZE_COUNTS`, sqrt(w*h) of the 39,112 valid val faces,
truncated to ``[min_face, max_face]`` so that most faces are 6-32 px), at random non-overlapping positions.
Some faces are blurred (WIDER ``blur`` 1 / 2) or partly occluded (``occlusion`` 1 / 2); the 100 non-face crops
of the same set are pasted as unannotated distractors with the same sizes and tints, so that "a grey patch"
is not a face cue. Train and val are split by face identity (each LFW crop is one identity): no val face is
ever seen in training. Backgrounds with a human face in them (``astronaut``, ``camera``) are left out, since
that face would be unannotated.

Layout (the WIDER FACE formats, read unchanged by :mod:`rfcn_face.datasets.wider`)::

    <root>/wider_face_split/wider_face_{train,val}_bbx_gt.txt     official 10-column text
    <root>/wider_face_split/wider_face_{train,val}.mat            split .mat files
    <root>/WIDER_{train,val}/images/<event>/<name>.jpg
    <root>/ground_truth/wider_face_val.mat, wider_{easy,medium,hard}_val.mat   (eval; gt_list by face size)
    <root>/synthfaces.json                                        generator version, parameters, counts

Settings (nested, as in WIDER): hard keeps every face; medium keeps faces with sqrt(w*h) >= 12 px and not
heavily occluded; easy keeps faces >= 24 px, not heavily occluded and not heavily blurred.

Generation is seeded per image (``default_rng([seed, split, index])``), so it is deterministic and does not
depend on the order of work. :func:`ensure_synthfaces` caches the result (default
``$RFCN_FACE_CACHE`` or ``~/.cache/rfcn_face``) and regenerates only when the folder is missing or the
generator version or parameters differ. Preview: ``python -m rfcn_face.datasets.synthfaces --preview OUT.png``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..checkpoint import atomic_write_dir
from ..locks import pid_alive
from .record import FaceRecord

__all__ = [
    "GENERATOR_VERSION", "SynthParams", "generate_synthfaces", "ensure_synthfaces", "default_cache_dir",
    "sample_face_sizes", "render_preview", "BACKGROUNDS", "WIDER_VAL_SIZE_EDGES", "WIDER_VAL_SIZE_COUNTS",
    "split_identities", "keep_settings", "synthfaces_root", "find_synthfaces",
]

GENERATOR_VERSION = 2          # 2: ground-truth .mat files with the official dtypes (same images and boxes)

# sqrt(w*h) histogram of the 39,112 valid (not invalid, positive size) faces of the official WIDER FACE val
# ground truth (wider_face_val_bbx_gt.txt), computed at development time with rfcn_face.datasets.wider.
WIDER_VAL_SIZE_EDGES = (0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96, 128, 192, 256, 384,
                        512, 1024)
WIDER_VAL_SIZE_COUNTS = (0, 322, 1825, 3410, 3690, 3453, 2828, 2383, 3572, 2886, 2184, 1626, 2695, 1853, 2102,
                         1234, 722, 828, 748, 314, 242, 124, 70)

# Bundled scikit-image photographs that load offline and show no human face.
BACKGROUNDS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle",
               "brick", "grass", "gravel", "coins", "moon", "clock")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SynthParams:
    num_train: int = 400
    num_val: int = 100
    seed: int = 0
    image_size: int = 256          # square images
    min_face: int = 6              # truncation of the WIDER size distribution (sqrt(w*h), px)
    max_face: int = 80
    faces_per_image: tuple = (2, 10)
    distractors_per_image: tuple = (1, 4)
    val_identities: int = 25       # of the 100 LFW faces; the rest train
    p_blur: float = 0.25           # per face: blurred (a fifth of them heavily)
    p_occlude: float = 0.2         # per face: partly occluded (a quarter of them heavily)
    jpeg_quality: int = 95

    def key(self) -> str:
        d = asdict(self)
        d["version"] = GENERATOR_VERSION
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------ ingredients
def _lfw():
    from skimage.data import lfw_subset
    crops = np.asarray(lfw_subset(), dtype=np.float64)
    if crops.shape[0] != 200:
        raise ValueError(f"skimage.data.lfw_subset() returned {crops.shape[0]} crops, expected 200")
    return crops[:100], crops[100:]          # faces, non-faces (skimage documents this order)


def _backgrounds():
    import skimage.data
    out = []
    for name in BACKGROUNDS:
        img = getattr(skimage.data, name)()
        img = np.asarray(img[0] if isinstance(img, tuple) else img)   # stereo_motorcycle: (left, right, disp)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append((name, np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)))
    return out


def split_identities(seed: int, val_identities: int):
    """(train ids, val ids) of the 100 LFW faces, disjoint; and likewise for the 100 non-face crops."""
    rng = np.random.default_rng([seed, 7])
    faces = rng.permutation(100)
    nonfaces = rng.permutation(100)
    nv = int(val_identities)
    return {"train": (np.sort(faces[nv:]), np.sort(nonfaces[nv:])),
            "val": (np.sort(faces[:nv]), np.sort(nonfaces[:nv]))}


def sample_face_sizes(rng, n: int, lo: float, hi: float) -> np.ndarray:
    """n draws of sqrt(w*h) from the WIDER val histogram truncated to [lo, hi] (uniform within a bin)."""
    edges = np.asarray(WIDER_VAL_SIZE_EDGES, dtype=np.float64)
    left, right = np.maximum(edges[:-1], lo), np.minimum(edges[1:], hi)
    width = np.clip(right - left, 0, None)
    full = edges[1:] - edges[:-1]
    weight = np.asarray(WIDER_VAL_SIZE_COUNTS, dtype=np.float64) * width / full
    if weight.sum() <= 0:
        raise ValueError(f"face-size range [{lo}, {hi}] has no mass in the WIDER histogram")
    b = rng.choice(len(weight), size=n, p=weight / weight.sum())
    return rng.uniform(left[b], right[b])


def keep_settings(sizes, occlusion, blur):
    """(easy, medium, hard) keep masks from face size and labels (nested, see the module docstring)."""
    sizes, occlusion, blur = map(np.asarray, (sizes, occlusion, blur))
    hard = np.ones(len(sizes), dtype=bool)
    medium = (sizes >= 12) & (occlusion < 2)
    easy = medium & (sizes >= 24) & (blur < 2)
    return easy, medium, hard


# ------------------------------------------------------------------------------------------ rendering
def _resize(img, w, h):
    import cv2
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (int(w), int(h)), interpolation=interp)


def _background(rng, bgs, size):
    k = int(rng.integers(len(bgs)))
    name, img = bgs[k]
    H, W = img.shape[:2]
    c = int(rng.integers(max(16, min(H, W) // 2), min(H, W) + 1))
    y, x = int(rng.integers(0, H - c + 1)), int(rng.integers(0, W - c + 1))
    out = _resize(img[y:y + c, x:x + c], size, size).astype(np.float64)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = out * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20)
    return k, name, out


def _patch(rng, crop, w, h):
    """A tinted grey crop resized to w x h (float RGB 0..255)."""
    g = _resize(crop, w, h)
    tint = rng.uniform([0.95, 0.75, 0.6], [1.15, 0.95, 0.85])   # skin-like, the same for distractors
    return np.clip(g[:, :, None] * 255.0 * tint[None, None, :] * rng.uniform(0.8, 1.2), 0, 255)


def _blur(rng, patch, level):
    import cv2
    sigma = rng.uniform(0.6, 1.2) if level == 1 else rng.uniform(1.5, 2.5)
    return cv2.GaussianBlur(patch, (0, 0), sigmaX=sigma)


def _occlude(rng, patch, level, bg_region):
    """Cover a band from one side of the face: 20-45 % (partial) or 45-70 % (heavy) of its extent."""
    h, w = patch.shape[:2]
    frac = rng.uniform(0.2, 0.45) if level == 1 else rng.uniform(0.45, 0.7)
    side = int(rng.integers(3))            # 0 bottom, 1 left, 2 right
    out = patch.copy()
    fill = bg_region if rng.random() < 0.5 else np.full_like(patch, 0) + rng.uniform(0, 255, 3)
    if side == 0:
        k = max(1, int(round(h * frac)))
        out[h - k:] = fill[h - k:]
    elif side == 1:
        k = max(1, int(round(w * frac)))
        out[:, :k] = fill[:, :k]
    else:
        k = max(1, int(round(w * frac)))
        out[:, w - k:] = fill[:, w - k:]
    return out


def _place(rng, taken, w, h, size, tries=30):
    """A position for a w x h box that overlaps no taken box (None when the image is full)."""
    for _ in range(tries):
        x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        box = (x, y, x + w, y + h)
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
            return box
    return None


def _wh(rng, s):
    r = rng.uniform(1.1, 1.4)              # WIDER faces: median h / w ~ 1.27
    return max(4, int(round(s / np.sqrt(r)))), max(4, int(round(s * np.sqrt(r))))


def _place_crop(rng, taken, s, size, crops, ids):
    """A free box of scale ``s`` and one of ``crops[ids]`` resized to it, or None when nothing fits.

    The random draws happen in a fixed order (size, position, crop), which keeps generation deterministic."""
    w, h = _wh(rng, s)
    box = _place(rng, taken, w, h, size)
    if box is None:
        return None
    return box, _patch(rng, crops[int(rng.choice(ids))], w, h)


def render_image(p: SynthParams, split: str, index: int, faces, nonfaces, ids, bgs):
    """One synthetic image: (uint8 RGB, background index, background name, boxes, blur, occlusion, sizes)."""
    rng = np.random.default_rng([p.seed, SPLITS.index(split), index])
    size = p.image_size
    bg_k, bg_name, img = _background(rng, bgs, size)
    clean = img.copy()
    face_ids, nonface_ids = ids
    n_f = int(rng.integers(p.faces_per_image[0], p.faces_per_image[1] + 1))
    n_d = int(rng.integers(p.distractors_per_image[0], p.distractors_per_image[1] + 1))
    taken, boxes, blur, occl = [], [], [], []
    for s in sample_face_sizes(rng, n_f, p.min_face, p.max_face):
        placed = _place_crop(rng, taken, s, size, faces, face_ids)
        if placed is None:
            continue
        box, patch = placed
        x1, y1, x2, y2 = box
        b = 0
        if rng.random() < p.p_blur:
            b = 2 if rng.random() < 0.2 else 1
            patch = _blur(rng, patch, b)
        o = 0
        if rng.random() < p.p_occlude:
            o = 2 if rng.random() < 0.25 else 1
            patch = _occlude(rng, patch, o, clean[y1:y2, x1:x2])
        img[y1:y2, x1:x2] = patch
        taken.append(box)
        boxes.append(box)
        blur.append(b)
        occl.append(o)
    for s in sample_face_sizes(rng, n_d, p.min_face, p.max_face):
        placed = _place_crop(rng, taken, s, size, nonfaces, nonface_ids)
        if placed is None:
            continue
        box, patch = placed
        x1, y1, x2, y2 = box
        if rng.random() < p.p_blur:
            patch = _blur(rng, patch, 1)
        img[y1:y2, x1:x2] = patch
        taken.append(box)
    img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    return img, bg_k, bg_name, boxes, np.asarray(blur, np.int64), np.asarray(occl, np.int64), sizes


# ------------------------------------------------------------------------------------------ writing
def _event(k, name):
    return f"{k}--{name.capitalize()}"


def _write_split(root: Path, p: SynthParams, split: str, n: int, faces, nonfaces, ids, bgs):
    import cv2
    from .wider import write_wider_eval_gt, write_wider_split_mat, write_wider_txt
    recs, keeps = [], []
    for i in range(n):
        img, bg_k, bg_name, boxes, blur, occl, sizes = render_image(p, split, i, faces, nonfaces, ids, bgs)
        event = _event(bg_k, bg_name)
        name = f"{bg_k}_{bg_name}_synth_{split}_{i:05d}"
        path = root / f"WIDER_{split}" / "images" / event / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality]):
            raise OSError(f"could not write {path}")
        zeros = np.zeros(len(boxes), np.int64)
        attrs = {"blur": blur, "expression": zeros, "illumination": zeros, "invalid": zeros,
                 "occlusion": occl, "pose": zeros}
        recs.append((bg_k, i, FaceRecord(str(path), boxes=boxes, ignore=np.zeros(len(boxes), bool),
                                         attributes=attrs, event=event, name=name,
                                         height=p.image_size, width=p.image_size)))
        keeps.append(keep_settings(sizes, occl, blur))
    order = sorted(range(n), key=lambda k: (recs[k][0], recs[k][1]))   # events contiguous, official order
    records = [recs[k][2] for k in order]
    split_dir = root / "wider_face_split"
    write_wider_txt(split_dir / f"wider_face_{split}_bbx_gt.txt", records)
    write_wider_split_mat(split_dir / f"wider_face_{split}.mat", records)
    if split == "val":
        write_wider_eval_gt(root / "ground_truth", records, *[[keeps[k][s] for k in order] for s in range(3)])
    return records


def generate_synthfaces(root, num_train: int = 400, num_val: int = 100, seed: int = 0, **kwargs) -> Path:
    """Generate synthfaces into ``root`` (overwriting its synthfaces files) and return ``root``.

    Extra keyword arguments set other :class:`SynthParams` fields (``image_size``, ``min_face``, ...).
    """
    p = SynthParams(num_train=int(num_train), num_val=int(num_val), seed=int(seed), **kwargs)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    faces, nonfaces = _lfw()
    bgs = _backgrounds()
    split_ids = split_identities(p.seed, p.val_identities)
    counts = {}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    for split, n in (("train", p.num_train), ("val", p.num_val)):
        recs = _write_split(root, p, split, n, faces, nonfaces, split_ids[split], bgs)
        counts[split] = {"images": len(recs), "faces": int(sum(len(r.boxes) for r in recs))}
        if tqdm is not None and os.environ.get("RFCN_FACE_QUIET") is None:
            tqdm.write(f"synthfaces {split}: {counts[split]['images']} images, {counts[split]['faces']} faces")
    manifest = {"generator_version": GENERATOR_VERSION, "key": p.key(), "params": asdict(p), "counts": counts,
                "identities": {s: {"faces": split_ids[s][0].tolist(), "nonfaces": split_ids[s][1].tolist()}
                               for s in SPLITS}}
    (root / "synthfaces.json").write_text(json.dumps(manifest, indent=1))
    return root


def default_cache_dir() -> Path:
    env = os.environ.get("RFCN_FACE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rfcn_face"


def _is_current(root: Path, p: SynthParams) -> bool:
    m = root / "synthfaces.json"
    if not m.is_file():
        return False
    try:
        d = json.loads(m.read_text())
    except ValueError:
        return False
    return d.get("generator_version") == GENERATOR_VERSION and d.get("key") == p.key()


def ensure_synthfaces(root=None, num_train: int = 400, num_val: int = 100, seed: int = 0, force: bool = False,
                      **kwargs) -> Path:
    """The synthfaces folder, generated only if missing or made by another generator version / parameters
    (or always with ``force``). An existing non-empty ``root`` without ``synthfaces.json`` is never replaced.

    ``root=None``: ``<default_cache_dir()>/synthfaces-<key>`` (key = hash of version and parameters).
    Generation goes to a temporary sibling folder that is renamed into place, so an interrupted run never
    leaves a half-written cache behind.
    """
    p = SynthParams(num_train=int(num_train), num_val=int(num_val), seed=int(seed), **kwargs)
    check_params(p)
    root = Path(root) if root is not None else default_cache_dir() / f"synthfaces-{p.key()}"
    if root.exists() and not root.is_dir():
        raise ValueError(f"--root {root} is a file, not a folder")
    if _is_current(root, p) and not force:
        return root
    if root.exists() and any(root.iterdir()) and not (root / "synthfaces.json").is_file():
        raise ValueError(f"{root}: exists and is not a synthfaces folder (no synthfaces.json); refusing to "
                         "replace it — pass an empty or new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(root)
    def generate(tmp: Path) -> None:
        (tmp / OWNER_FILE).write_text(str(os.getpid()))
        generate_synthfaces(tmp, **asdict(p))
        (tmp / OWNER_FILE).unlink()

    return atomic_write_dir(root, generate, prefix=f".{root.name}-")


OWNER_FILE = ".generating"    # in a temporary generation folder: the pid of the process writing it
_ARTIFACTS = {"wider_face_split", "WIDER_train", "WIDER_val", "ground_truth", "synthfaces.json"}


def check_params(p: SynthParams) -> SynthParams:
    """ValueError for parameters that cannot make a data set (negative counts, no image, a negative seed...)."""
    for name in ("num_train", "num_val"):
        if getattr(p, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(p, name)}")
    if p.num_train + p.num_val < 1:
        raise ValueError("--num-train and --num-val are both 0: nothing to generate (at least one image)")
    if p.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {p.seed}")
    if not 1 <= p.min_face <= p.max_face < p.image_size:
        raise ValueError(f"face sizes must satisfy 1 <= min_face <= max_face < image_size, got {p.min_face}, "
                         f"{p.max_face}, {p.image_size}")
    if not 0 <= p.val_identities <= 100:
        raise ValueError(f"val_identities must be in 0..100, got {p.val_identities}")
    return p



def clean_stale_temporaries(root: Path) -> list:
    """Remove the temporary folders ``.<root name>-*`` that a killed generation of ``root`` left behind (their
    owner process is gone); a folder whose writer still runs is left alone. Returns the removed folders."""
    root = Path(root)
    removed = []
    if not root.parent.is_dir():
        return removed
    import re
    ours = re.compile(rf"^\.{re.escape(root.name)}-[A-Za-z0-9_]{{8}}$")      # tempfile.mkdtemp's names
    for tmp in root.parent.glob(f".{root.name}-*"):
        if not tmp.is_dir() or not ours.match(tmp.name):
            continue
        try:
            content = {p.name for p in tmp.iterdir()}
        except OSError:
            continue
        if not content <= _ARTIFACTS | {OWNER_FILE}:
            continue                    # not a folder of ours: leave it alone
        owner = tmp / OWNER_FILE
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            continue
        if pid is None:
            try:
                young = time.time() - tmp.stat().st_mtime < 60
            except OSError:
                continue
            if owner.exists() or young:
                continue                # being created right now (its pid not written yet)
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    if removed and os.environ.get("RFCN_FACE_QUIET") is None:
        print(f"synthfaces: removed {len(removed)} unfinished generation folder(s) of an interrupted run: "
              + ", ".join(p.name for p in removed), file=sys.stderr)
    return removed


def find_synthfaces(root) -> Optional[Path]:
    """The synthfaces folder under a data root: ``root`` or ``root/synthfaces`` when it holds a
    ``synthfaces.json``; None when neither does."""
    root = Path(root)
    return next((d for d in (root, root / "synthfaces") if (d / "synthfaces.json").is_file()), None)


def synthfaces_root(root) -> Path:
    """The synthfaces folder a data root names (:func:`find_synthfaces`), else the cached default set
    (:func:`ensure_synthfaces`, generated on first use)."""
    return find_synthfaces(root) or ensure_synthfaces()


# ------------------------------------------------------------------------------------------ preview
def render_preview(root, out_png, n: int = 6, split: str = "val") -> Path:
    """Tile ``n`` images spread over a split (2x zoom) with their boxes: green clear, yellow blurred, red
    occluded. Distractors (non-face crops) carry no box."""
    import cv2

    from .images import decode_image
    from .wider import read_wider_txt
    root = Path(root)
    recs = read_wider_txt(root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt",
                          image_root=root / f"WIDER_{split}" / "images", check_images=True)
    recs = [recs[k] for k in np.unique(np.linspace(0, len(recs) - 1, n).round().astype(int))] if recs else []
    tiles = []
    for r in recs:
        img = decode_image(r.image_path)
        big = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        for b, bl, oc in zip(r.boxes, r.attributes["blur"], r.attributes["occlusion"]):
            color = (0, 0, 255) if oc else (0, 255, 255) if bl else (0, 255, 0)
            x1, y1, x2, y2 = (2 * b).astype(int)
            cv2.rectangle(big, (x1, y1), (x2 - 1, y2 - 1), color, 1)
        cv2.putText(big, f"{r.name[-9:]}: {len(r.boxes)} faces", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(big)
    if not tiles:
        raise ValueError(f"{root}: no {split} images to preview")
    cols = min(3, len(tiles))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[k:k + cols]) for k in range(0, len(tiles), cols)])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), grid)
    return out_png


def main(argv=None) -> int:
    from ..__main__ import ArgumentParser
    ap = ArgumentParser(prog="python -m rfcn_face.datasets.synthfaces",
                                 description="Generate (or find in the cache) the synthfaces dataset.")
    ap.add_argument("--root", default=None, help="output folder (default: the cache folder)")
    ap.add_argument("--num-train", type=int, default=400)
    ap.add_argument("--num-val", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even if the cache is current")
    ap.add_argument("--preview", default=None, help="also write a PNG of a few val images with boxes")
    a = ap.parse_args(argv)

    def run():
        root = ensure_synthfaces(a.root, a.num_train, a.num_val, a.seed, force=a.force)
        print(root)
        if a.preview:
            print(render_preview(root, a.preview))
        return 0
    from ..__main__ import run_guarded
    return run_guarded(run, name="synthfaces")


if __name__ == "__main__":
    sys.exit(main())
