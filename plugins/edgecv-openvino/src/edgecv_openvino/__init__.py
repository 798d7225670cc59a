"""edgecv-openvino: the OpenVINO backend for edgecv."""

__version__ = "0.2.0"
