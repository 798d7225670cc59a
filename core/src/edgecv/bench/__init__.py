"""``edgecv bench``: latency (end-to-end, per stage, bare runtime), overhead, memory, power.

``benchmark`` measures loaded models on a decoded frame; ``result_record`` and ``format_report``
turn the measurements into the JSON and text that ``edgecv bench`` prints.
"""

from __future__ import annotations

from edgecv.bench.device import describe_device
from edgecv.bench.report import format_report, model_size_bytes, result_record
from edgecv.bench.runner import Measurement, PowerReading, benchmark, peak_rss_mb
from edgecv.summary import Summary, summarize

__all__ = [
    "Measurement",
    "PowerReading",
    "Summary",
    "benchmark",
    "describe_device",
    "format_report",
    "model_size_bytes",
    "peak_rss_mb",
    "result_record",
    "summarize",
]
