"""edgecv-opencv-dnn: an example third-party edgecv backend built on OpenCV's DNN module."""

__version__ = "0.2.0"
