"""edgecv-torch: PyTorch models in edgecv, torch -> ONNX export, and model compression (pruning,
distillation, post-training quantization). The only edgecv package that depends on torch."""

__version__ = "0.2.0"
