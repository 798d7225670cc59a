"""Summaries of timing samples for ``bench``: ``Summary``/``summarize`` (from ``edgecv.summary``,
which the runtime's statistics share) and the paired ratio of two interleaved series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgecv.summary import Summary, summarize

__all__ = ["Summary", "paired_ratio", "summarize"]


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of the call-by-call ratios: insensitive to slow drifts that shift both series."""
    top = np.asarray(numerators, dtype=np.float64)
    bottom = np.asarray(denominators, dtype=np.float64)
    return float(np.median(top / bottom))
