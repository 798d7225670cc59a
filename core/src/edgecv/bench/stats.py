"""The paired ratio of two interleaved timing series (summaries are in ``edgecv.summary``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of the call-by-call ratios: insensitive to slow drifts that shift both series."""
    top = np.asarray(numerators, dtype=np.float64)
    bottom = np.asarray(denominators, dtype=np.float64)
    return float(np.median(top / bottom))
