"""ONNX annotators and the registry of models. Nothing under here imports torch."""
