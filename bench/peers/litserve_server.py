"""The model behind LitServe with its native dynamic batching, as its documentation sets it up.

  python litserve_server.py MODEL.onnx PORT WORKERS     (in the litserve virtualenv)
Requests: the same JSON as gatecast's /forecast ({"horizon", "series": [{"id", "values"}]}, one series), to /predict.
"""

import sys

import litserve as ls
import numpy as np
import onnxruntime as ort


class Forecaster(ls.LitAPI):
    def setup(self, device):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])

    def decode_request(self, request):
        return np.asarray(request["series"][0]["values"], dtype=np.float32), request.get("horizon")

    def batch(self, inputs):
        return np.stack([values for values, _ in inputs]), [horizon for _, horizon in inputs]

    def predict(self, batch):
        x, horizons = batch
        return self.session.run(["forecast"], {"values": x})[0], horizons

    def unbatch(self, output):
        forecast, horizons = output
        return [row[:horizon] for row, horizon in zip(forecast, horizons, strict=True)]  # the steps asked

    def encode_response(self, output):
        return {"mean": output.tolist()}


if __name__ == "__main__":
    port, workers = int(sys.argv[2]), int(sys.argv[3])
    api = Forecaster(max_batch_size=64, batch_timeout=0.001)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers)
    server.run(port=port, num_api_servers=workers, log_level="warning", generate_client_file=False)
