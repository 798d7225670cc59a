"""Choosing calibration images for post-training quantization (shared by every exporter).

A *subset* (``"even"`` / ``"odd"``: the images at even / odd positions in name order) splits one
folder into two disjoint halves, so a model can be calibrated on one half and scored on the other
(``edgecv export --calib-subset even`` then ``edgecv val --subset odd``): accuracy measured on the
calibration images themselves flatters the quantization.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from edgecv.errors import ConfigError, ImageError

SUBSETS = ("all", "even", "odd")
"""Halves of a folder in name order: every image, positions 0, 2, 4, ... or 1, 3, 5, ..."""

T = TypeVar("T")


def check_subset(subset: str | None, option: str) -> str:
    """``subset`` lower-cased and known (``None`` is ``"all"``), or a ConfigError naming ``option``."""
    name = (subset or "all").lower()
    if name not in SUBSETS:
        raise ConfigError(f"Unknown {option} {subset!r}", f"Pass {option} {', '.join(SUBSETS)}.")
    return name


def take_subset(items: Sequence[T], subset: str | None) -> list[T]:
    """The items at the positions of ``subset`` (``items`` already in name order)."""
    name = check_subset(subset, "subset")
    if name == "all":
        return list(items)
    return list(items[SUBSETS.index(name) - 1 :: 2])


def calibration_files(folder: Path, count: int, subset: str | None = None) -> list[Path]:
    """``count`` images spread evenly over ``folder`` in name order (all of them when it has fewer).

    Spread rather than the first ones: folders of video frames or of one camera per prefix would
    otherwise calibrate on one scene. Deterministic, so an export can be repeated. ``subset``
    (``"even"``/``"odd"``) first keeps one half of the folder (see ``take_subset``).
    """
    from edgecv.images import iter_image_files  # OpenCV: not for the CLI's option lists

    name = check_subset(subset, "--calib-subset")
    if count < 1:
        raise ConfigError(f"--calib-size must be at least 1, got {count}", "Pass e.g. --calib-size 64.")
    if not folder.is_dir():
        raise ConfigError(
            f"Calibration folder {folder} does not exist",
            "Pass --calib with a folder of representative images (e.g. a few dozen from your data).",
        )
    try:
        files = take_subset(list(iter_image_files([folder])), name)
    except ImageError as exc:
        raise ConfigError(
            f"Calibration folder {folder} holds no images",
            "Put 32-128 representative .jpg/.png images in it (e.g. from your validation set).",
        ) from exc
    if not files:
        raise ConfigError(
            f"The {name} half of calibration folder {folder} holds no images (it has one image)",
            "Put more images in it, or leave out --calib-subset.",
        )
    if count >= len(files):
        return files
    return [files[(index * len(files)) // count] for index in range(count)]
