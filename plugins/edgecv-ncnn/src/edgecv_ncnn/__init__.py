"""edgecv-ncnn: the NCNN backend for edgecv."""

__version__ = "0.2.0"
