"""Deployment: re-parameterisation, complexity, ONNX export, benchmarks, torch-free runtime."""
