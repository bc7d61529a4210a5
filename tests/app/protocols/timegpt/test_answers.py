"""app.protocols.timegpt.answers: gatecast's results in the TimeGPT API's flat shapes."""

from __future__ import annotations

import numpy as np
import orjson

from app.forecast_jobs import ForecastResult, SeriesInput, Windows
from app.protocols.timegpt import answers


def test_cross_validation_rows_are_the_window_steps_inside_their_series_indexed_in_the_flat_input() -> None:
    series = [SeriesInput("#0", [0.0] * 5), SeriesInput("#1", [0.0] * 4)]
    # Three windows of 2 steps: series 0 from value 3 (steps 3, 4) and from value 4 (step 5 lies past its end),
    # series 1 from value 2 (steps 2, 3).
    mean = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    result = ForecastResult("m", "1", 2, [80.0], ["#0", "#1"], mean, np.ones(3), {80.0: (mean - 1, mean + 1)})
    windows = Windows(np.array([0, 0, 1]), np.array([3, 4, 2]), result, [None, None])
    rows = answers.cross_validation(series, windows, 2, zero=False)
    assert rows["idxs"].tolist() == [3, 4, 4, 7, 8]  # series 1 starts at flat index 5
    assert rows["sizes"].tolist() == [3, 2]
    assert rows["mean"].tolist() == [1.0, 2.0, 3.0, 5.0, 6.0]
    assert rows["intervals"]["lo-80"].tolist() == [0.0, 1.0, 2.0, 4.0, 5.0]


def test_level_zero_is_the_point_forecast_and_no_level_is_no_intervals() -> None:
    mean = np.array([[1.0, 2.0]])
    assert answers.flat_intervals({}, mean, zero=False) is None
    zero = answers.flat_intervals({}, mean, zero=True)
    assert zero is not None and zero["lo-0"].tolist() == zero["hi-0"].tolist() == [1.0, 2.0]


def test_the_answer_names_the_model_in_a_header_and_the_body_is_flat_json() -> None:
    response = answers.answer({"mean": np.array([1.5, 2.5])}, "m@1")
    assert response.headers[answers.MODEL_HEADER] == "m@1"
    assert orjson.loads(response.body) == {"mean": [1.5, 2.5]}
