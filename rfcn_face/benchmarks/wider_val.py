"""WIDER FACE val (Sec. 5.1, Tables 1 / 2): the submission folder, Easy / Medium / Hard AP, the PR plot over the
published baselines; in ``reproduce --benchmarks`` also the PR plot with this paper's own published curve."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

from .registry import register
from .wider_protocol import WiderProtocol

__all__ = ["WiderVal"]


@register("wider-val")
class WiderVal(WiderProtocol):
    title = pr_title = "WIDER FACE val"
    split = "val"
    in_reproduce = True
    val_of = "wider"
    trained_on = "WIDER FACE train"
    paper_tables = True
    published_baselines = True

    def required_paths(self, root: Path) -> List[Path]:
        w = self.base(root)
        return [w / "wider_face_split" / "wider_face_val_bbx_gt.txt", w / "WIDER_val" / "images",
                w / "ground_truth" / "wider_face_val.mat"]

    def package(self, test_dir, bench_dir, root, limit, log) -> dict:
        """``BENCH_DIR/wider_val_pr.png``: our curves with the paper's published one (ZCC) overlaid."""
        from ..evaluation.plots import plot_wider_pr
        from ..evaluation.published import paper_published_baseline
        from ..evaluation.wider import WiderResult
        ev_json = Path(test_dir) / "wider_eval.json"
        if not ev_json.is_file():
            return {}
        r = WiderResult.from_json(json.loads(ev_json.read_text()))
        pr = {k: (r.precision[k], r.recall[k]) for k in r.ap}
        return {"pr_plot": str(plot_wider_pr(Path(bench_dir) / "wider_val_pr.png", pr, "ours (Final)",
                                             [paper_published_baseline()]))}
