"""edgecv-hailo: the Hailo-8 / Hailo-8L backend for edgecv (HEF files through HailoRT)."""

__version__ = "0.2.0"
