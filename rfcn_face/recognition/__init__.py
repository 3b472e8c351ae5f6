"""Face recognition side of the pipeline of Qi, Liu & Su (MS-Celeb-1M challenge 2).

* :mod:`.align` — 5-landmark similarity alignment to 112x96, flip fusion (Table 2), re-detection with zero
  padding (Sec. 2.2).
* :mod:`.data` — embedded LFW identity set (augmented views) and folder-per-identity datasets.
* :mod:`.train` — Gluon training loop of FaceResNet with NormFace + contrastive-center losses (Sec. 3.2).
* :mod:`.clean` — per-identity 2-means cleaning (Sec. 2.1).

Only numpy-level modules are imported here; :mod:`.train` imports MXNet when used.
"""
from .align import (FUSIONS, TEMPLATE_96x112, align_face, detect_with_padding, fuse_features,  # noqa: F401
                    similarity_transform)
from .clean import clean_dataset, two_means  # noqa: F401
