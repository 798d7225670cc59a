"""The options of ``edgecv export``, parsed and checked once for every exporting plugin.

Besides the CLI's flags, ``options`` may carry ``"progress"``: an ``edgecv.progress.Progress`` the
exporter reports its stages through (the CLI passes ``terminal_progress()``; absent or ``None``:
silent). Exporters read it as ``ExportOptions.progress``, never ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from edgecv.errors import ConfigError
from edgecv.progress import Progress, report
from edgecv.validation import check_options

PRECISIONS = ("fp32", "fp16", "int8")
COMMON_OPTIONS = ("precision", "imgsz", "calib", "calib_size", "calib_subset", "calib_method", "progress")
"""What ``edgecv export`` passes to every exporter."""


@attrs.frozen
class ExportOptions:
    """``precision``, ``imgsz``, the INT8 calibration settings and the progress to report through;
    ``raw`` keeps every key given."""

    precision: str
    imgsz: int | None
    calib: Path | None
    calib_size: int
    calib_method: str
    raw: Mapping[str, Any] = attrs.field(factory=dict)
    calib_subset: str = "all"
    """``all``, or the ``even``/``odd`` half of ``calib`` in name order (``edgecv.calibration``)."""
    progress: Progress = attrs.field(default=report(None))

    @classmethod
    def parse(
        cls,
        options: Mapping[str, Any],
        *,
        target: str,
        calib_methods: Sequence[str],
        default_calib_size: int = 64,
        precisions: Sequence[str] = PRECISIONS,
        extra: Iterable[str] = (),
    ) -> ExportOptions:
        """Check ``options`` for an export to ``target``; the first of ``calib_methods`` is the default.

        ``extra`` names the exporter's own options (read from ``raw``): any other key is refused,
        so a typo in ``--option`` is an error rather than ignored.
        """
        check_options(options, {*COMMON_OPTIONS, *extra}, f"{target} export")
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
        progress = options.get("progress")
        if progress is not None and not callable(progress):
            raise ConfigError(
                f"The export option 'progress' is a {type(progress).__name__}, not an edgecv Progress",
                "Pass edgecv.progress.terminal_progress() or leave it out.",
            )
        from edgecv.calibration import check_subset

        return cls(
            precision=precision,
            imgsz=options.get("imgsz"),
            calib=Path(calib) if calib is not None else None,
            calib_size=int(calib_size) if calib_size is not None else default_calib_size,
            calib_method=method,
            raw=dict(options),
            calib_subset=check_subset(options.get("calib_subset"), "--calib-subset"),
            progress=report(progress),
        )

    def calibration_files(self) -> list[Path]:
        """The calibration images: ``calib_size`` of them, spread over the ``calib_subset`` of ``calib``."""
        from edgecv.calibration import calibration_files

        if self.calib is None:
            raise ConfigError("This export needs calibration images", "Pass --calib DIR.")
        return calibration_files(self.calib, self.calib_size, self.calib_subset)
