"""What this plugin registers. edgecv imports this module on every run, so it imports no torch."""

from __future__ import annotations
