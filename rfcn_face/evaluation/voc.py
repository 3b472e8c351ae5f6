"""VOC-style average precision: the integral used by the WIDER FACE eval_tools (``VOCap``) and face-eval."""
from __future__ import annotations

import numpy as np


def voc_ap(recall, precision) -> float:
    """Area under a precision-recall curve, the PASCAL VOC way.

    The curve is framed by sentinels (recall 0 and 1, precision 0 at both ends), precision is replaced by
    its right-to-left running maximum (the monotone envelope), and the envelope is summed over the points
    where recall changes: ``sum((r[i] - r[i-1]) * p[i])``.

    NaN handling follows MATLAB, whose ``max`` ignores NaN unless both operands are NaN: the envelope at a
    NaN precision takes the running maximum from its right, so a NaN only survives when every precision to
    its right is NaN as well (which cannot happen here because of the trailing 0 sentinel). Recalls are
    used as given (not sorted), as in the official tool.

    Parameters
    ----------
    recall, precision : 1-D array-likes of equal length.

    Returns
    -------
    float
    """
    rec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64).ravel(), [1.0]))
    prec = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64).ravel(), [0.0]))
    if rec.shape != prec.shape:
        raise ValueError(f"voc_ap: {rec.size - 2} recalls but {prec.size - 2} precisions")
    # right-to-left max envelope; np.fmax ignores a NaN operand like MATLAB's max(a, b)
    env = np.fmax.accumulate(prec[::-1])[::-1]
    changed = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[changed] - rec[changed - 1]) * env[changed]))
