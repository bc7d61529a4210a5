"""fracast-0 on windows written by bench/zeroshot.py, in its own virtualenv (.bench/fracast: fracast needs torch).

  python fracast_forecast.py IN.npz OUT.npy
IN.npz: the contexts (arr_0, arr_1, ...), `horizon` and the `quantiles` wanted;
OUT.npy: (windows, horizon, len(quantiles)),
fracast's own quantiles (0.1 ... 0.9) where asked, NaN for the others (it forecasts no 0.025 or 0.975).
"""

import sys

import numpy as np
import torch
from fracast import FracastModel

torch.set_num_threads(2)
data = np.load(sys.argv[1])
horizon = int(data["horizon"])
asked = [float(q) for q in data["quantiles"]]
contexts = [data[k] for k in data.files if k.startswith("arr_")]
model = FracastModel.from_pretrained()
out = np.full((len(contexts), horizon, len(asked)), np.nan, dtype=np.float32)
width = max(len(c) for c in contexts)
for start in range(0, len(contexts), 64):
    chunk = contexts[start : start + 64]
    batch = np.full((len(chunk), width), np.nan, dtype=np.float32)
    for i, c in enumerate(chunk):
        batch[i, width - len(c) :] = c
    q = model.forecast_batch(batch, horizon=horizon)  # (B, H, 9)
    for j, level in enumerate(model.quantiles):
        if level in asked:
            out[start : start + len(chunk), :, asked.index(level)] = q[:, :, j]
np.save(sys.argv[2], out)
