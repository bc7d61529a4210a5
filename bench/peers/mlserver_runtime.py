"""The model as an MLServer custom runtime (MLServer has no onnxruntime runtime of its own), with MLServer's
adaptive batching on. bench/serving.py writes settings.json and model-settings.json beside a copy of this file
and starts `mlserver start` on that folder, in the mlserver virtualenv. Requests: Open Inference Protocol v2
JSON to /v2/models/etth1-lstm/infer, the body gatecast's own /v2 route takes."""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxForecaster(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        forecast, scale = self.session.run(["forecast", "scale"], {"values": x})
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("forecast", forecast), NumpyCodec.encode_output("scale", scale)],
        )
