"""edgecv-tflite: the TensorFlow Lite (LiteRT) and Coral Edge TPU backends for edgecv."""

__version__ = "0.2.0"
