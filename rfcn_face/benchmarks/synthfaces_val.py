"""The val split of the embedded synthfaces set, tested with the WIDER protocol (the demo, CPU reproductions):
``--data ROOT`` when ROOT (or ROOT/synthfaces) holds a synthfaces set, else the cached default set."""
from __future__ import annotations

from pathlib import Path
from typing import List

from .registry import register
from .wider_protocol import WiderProtocol

__all__ = ["SynthfacesVal"]


@register("synthfaces-val")
class SynthfacesVal(WiderProtocol):
    title = "synthfaces val"
    pr_title = "synthfaces val (WIDER protocol)"
    split = "val"
    val_of = "synthfaces"
    trained_on = "the embedded **synthetic** synthfaces set"

    def base(self, root: Path) -> Path:
        from ..datasets.synthfaces import synthfaces_root
        return synthfaces_root(root)

    def required_paths(self, root: Path) -> List[Path]:
        from ..datasets.synthfaces import find_synthfaces
        return [(find_synthfaces(root) or Path(root) / "synthfaces") / "synthfaces.json"]

    def evaluate_args(self, root, pred, plot, label):
        return None                  # its ground truth may need the embedded set generated: a plan reads nothing
