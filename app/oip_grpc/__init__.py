"""The Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`), so `tritonclient.grpc` and
KServe's gRPC clients work unchanged. `inference.proto` is the definition; the `inference_pb2*` modules are
generated from it (`make grpc-code`); `server.py` answers it through the same guards as HTTP.

Imported only when the gRPC port is on (app.main's lifespan): the HTTP-only server never loads grpcio.
"""
