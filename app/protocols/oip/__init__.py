"""The Open Inference Protocol v2 (Triton, KServe), so `tritonclient` and KServe clients work unchanged: its
wire codec (codec: JSON and binary tensors), the adapter from tensors to jobs and from results to outputs
(adapter), served over HTTP (http) and gRPC (grpc_server, `inference.GRPCInferenceService` from
inference.proto; `make grpc-code` writes inference_pb2)."""
