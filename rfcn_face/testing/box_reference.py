"""Slow, obvious box decoding (one box at a time, plain floats) for the proposal and detector tests."""
import math

__all__ = ["decode_one"]


def decode_one(box, deltas, means, stds):
    """Decode one (dx, dy, dw, dh) against one (x1, y1, x2, y2) box: deltas de-normalised by ``stds`` / ``means``,
    continuous coordinates (no +1), log-size deltas clipped at log(1000 / 16) as in Faster R-CNN."""
    d = [deltas[i] * stds[i] + means[i] for i in range(4)]
    aw, ah = box[2] - box[0], box[3] - box[1]
    cx, cy = box[0] + aw / 2 + d[0] * aw, box[1] + ah / 2 + d[1] * ah
    w, h = aw * math.exp(min(d[2], math.log(1000 / 16))), ah * math.exp(min(d[3], math.log(1000 / 16)))
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
