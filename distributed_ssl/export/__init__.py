"""Export a finished run's encoder (ONNX, safetensors, TorchScript, an MLflow model), checked against torch."""
