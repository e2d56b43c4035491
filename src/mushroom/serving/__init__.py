"""Serving exported models with ONNX Runtime: no PyTorch needed (the API Docker image has none)."""
