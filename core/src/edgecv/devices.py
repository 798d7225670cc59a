"""What an accelerator says about itself: device descriptions and chip temperatures.

``DeviceSession.device()`` / ``temperature()`` and ``Backend.describe()`` come from plugins, so
their answers are untrusted: made JSON-ready, one line per string, plausible temperatures only.
``edgecv doctor``, ``edgecv bench`` and the thermal governor read them through here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgecv.errors import one_line
from edgecv.sensors import PLAUSIBLE_CELSIUS

if TYPE_CHECKING:
    from edgecv.backends import DeviceSession

log = logging.getLogger(__name__)


def chip_temperature(session: DeviceSession) -> float | None:
    """``session.temperature()`` when it is a plausible reading, else ``None`` (it raised, or gave
    ``None``, a non-number or an impossible value)."""
    try:
        celsius = session.temperature()
    except Exception as exc:
        log.debug("accelerator temperature unreadable: %s", one_line(exc))
        return None
    if isinstance(celsius, bool) or not isinstance(celsius, (int, float)):
        return None
    celsius = float(celsius)
    low, high = PLAUSIBLE_CELSIUS
    return celsius if math.isfinite(celsius) and low <= celsius <= high else None


def json_ready(described: object, what: str) -> dict[str, Any]:
    """A plugin's device description as a JSON-ready dict (it is untrusted): scalar values kept,
    others as text, non-finite numbers as null; ``{"error": ...}`` when it is not a mapping."""
    if not isinstance(described, Mapping):
        return {"error": f"{what} returned {type(described).__name__}, not a mapping"}
    ready: dict[str, Any] = {}
    for key, value in described.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        ready[one_line(key, 80)] = one_line(value) if isinstance(value, str) else value
    return ready


def session_device(session: DeviceSession) -> dict[str, Any]:
    """``session.device()`` made JSON-ready; ``{"error": one line}`` when it raised."""
    try:
        described = session.device()
    except Exception as exc:
        return {"error": one_line(f"device() failed: {type(exc).__name__}: {exc}")}
    return json_ready(described, "device()")


def chip_source(described: Mapping[str, Any]) -> str:
    """What a chip temperature is named after: ``"Hailo-8L chip"`` (``"accelerator chip"``)."""
    name = described.get("device")
    return f"{name} chip" if isinstance(name, str) and name else "accelerator chip"


def device_summary(described: Mapping[str, Any]) -> str:
    """One line for a device description: ``Hailo-8L, firmware 4.20.0, hailort 4.20.0, 51.0 °C``.

    ``device`` comes first, ``temperature_c`` (as °C) and ``error`` (in parentheses) last, the
    other keys as ``key value`` in their order; an ``error`` alone reads ``n/a (error)``.
    """
    parts = [str(described["device"])] if described.get("device") is not None else []
    for key, value in described.items():
        if key not in ("device", "temperature_c", "error") and value is not None:
            parts.append(f"{key} {value}")
    celsius = described.get("temperature_c")
    if isinstance(celsius, (int, float)) and not isinstance(celsius, bool):
        parts.append(f"{celsius:.1f} °C")
    text = ", ".join(parts)
    error = described.get("error")
    if error is not None:
        return f"{text} (error: {error})" if text else f"n/a ({error})"
    return text or "n/a (nothing described)"
