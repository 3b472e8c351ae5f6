"""Benchmark readers; all yield :class:`rfcn_face.datasets.record.FaceRecord`.

* :mod:`.wider` — WIDER FACE text ground truth (10 / 7 columns), split ``.mat``, val evaluation ``.mat``
* :mod:`.fddb` — FDDB folds (ellipses and their bounding boxes), image-size table
* :mod:`.face_eval` — AFW / PASCAL Faces annotations of the face-eval toolbox (new and old)
* :mod:`.synthfaces` — the embedded synthetic tiny-face set, written in the WIDER formats
* :mod:`.loader` — Gluon DataLoader pipeline (imports mxnet; import it explicitly)
"""
from .face_eval import read_face_eval_mat  # noqa: F401
from .fddb import read_fddb, read_fddb_sizes  # noqa: F401
from .record import FaceRecord  # noqa: F401
from .wider import read_wider_eval_gt, read_wider_split_mat, read_wider_txt  # noqa: F401
