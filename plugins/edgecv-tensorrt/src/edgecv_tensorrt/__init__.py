"""edgecv-tensorrt: the TensorRT backend for edgecv (Jetson and NVIDIA GPUs)."""

__version__ = "0.2.0"
