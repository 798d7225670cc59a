"""The options of ``edgecv export``, parsed and checked once for every exporting plugin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from edgecv.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "int8")


@attrs.frozen
class ExportOptions:
    """``precision``, ``imgsz`` and the INT8 calibration settings; ``raw`` keeps every key given."""

    precision: str
    imgsz: int | None
    calib: Path | None
    calib_size: int
    calib_method: str
    raw: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def parse(
        cls,
        options: Mapping[str, Any],
        *,
        target: str,
        calib_methods: Sequence[str],
        default_calib_size: int = 64,
        precisions: Sequence[str] = PRECISIONS,
    ) -> ExportOptions:
        """Check ``options`` for an export to ``target``; the first of ``calib_methods`` is the default."""
        precision = str(options.get("precision") or "fp32").lower()
        if precision not in precisions:
            raise ConfigError(
                f"Unknown precision {options.get('precision')!r} for {target} export",
                f"Pass --precision {', '.join(precisions)}.",
            )
        method = str(options.get("calib_method") or calib_methods[0]).lower()
        if method not in calib_methods:
            raise ConfigError(
                f"Unknown calibration method {options.get('calib_method')!r} for {target} export",
                f"Pass --calib-method {', '.join(calib_methods)}.",
            )
        calib, calib_size = options.get("calib"), options.get("calib_size")
        if precision == "int8" and calib is None:
            raise ConfigError(
                "INT8 export needs calibration images",
                "Pass --calib DIR with a few dozen representative images, e.g. from your validation set.",
            )
        return cls(
            precision=precision,
            imgsz=options.get("imgsz"),
            calib=Path(calib) if calib is not None else None,
            calib_size=int(calib_size) if calib_size is not None else default_calib_size,
            calib_method=method,
            raw=dict(options),
        )
