"""gatecast server: ONNX forecasters behind FastAPI. Never imports torch."""

__version__ = "0.1.0"
