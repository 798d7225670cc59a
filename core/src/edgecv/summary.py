"""Summaries of timing samples (median, 95th percentile, mean): shared by ``bench`` and ``edgecv run``."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np


@attrs.frozen
class Summary:
    """Milliseconds over ``n`` calls."""

    p50: float
    p95: float
    mean: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "p50": round(self.p50, 3),
            "p95": round(self.p95, 3),
            "mean": round(self.mean, 3),
            "min": round(self.min, 3),
            "max": round(self.max, 3),
            "n": self.n,
        }


def summarize(values: Sequence[float]) -> Summary:
    """Percentiles with linear interpolation (numpy's default), so ``p50 <= p95`` always holds."""
    if not values:
        raise ValueError("no samples to summarize")
    data = np.asarray(values, dtype=np.float64)
    p50, p95 = np.percentile(data, [50, 95])
    low, high, mean = float(data.min()), float(data.max()), float(data.mean())
    return Summary(float(p50), float(p95), mean, low, high, data.size)
