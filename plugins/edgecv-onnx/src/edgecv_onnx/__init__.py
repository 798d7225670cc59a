"""edgecv-onnx: the ONNX Runtime backend for edgecv."""

__version__ = "0.2.0"
