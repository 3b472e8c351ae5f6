"""rfcn_face: MXNet/Gluon reproduction of *Seeing Small Faces from Robust Anchor's Perspective* (CVPR 2018)."""
__version__ = "0.1.0"
