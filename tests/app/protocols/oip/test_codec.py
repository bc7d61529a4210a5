"""app.protocols.oip.codec: OIP v2 bodies, JSON and Triton's binary tensor extension, to arrays and back."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from app.errors import BadRequest, InvalidInput
from app.protocols.oip import codec


def request(inputs: list[dict], **extra: object) -> bytes:  # type: ignore[type-arg]
    return orjson.dumps({"inputs": inputs, **extra})


def test_json_data_becomes_an_array_of_the_declared_shape() -> None:
    body = request([{"name": "values", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}])
    decoded, blobs = codec.decode(body, None)
    array = codec.input_array(decoded.inputs[0], blobs)
    assert array.shape == (2, 3) and array[1, 2] == 6


def test_binary_data_is_read_after_the_header_without_a_copy() -> None:
    values = np.arange(6, dtype="<f4")
    head = request([{"name": "values", "datatype": "FP32", "shape": [1, 6], "parameters": {"binary_data_size": 24}}])
    body = head + values.tobytes()
    decoded, blobs = codec.decode(body, str(len(head)))
    array = codec.input_array(decoded.inputs[0], blobs)
    np.testing.assert_array_equal(array.reshape(-1), values)
    assert not array.flags.owndata  # a view of the request's bytes


@pytest.mark.parametrize(("length", "why"), [("abc", "must be the JSON header's length"), ("9999", "does not fit")])
def test_a_header_length_that_cannot_be_right_is_refused(length: str, why: str) -> None:
    with pytest.raises(BadRequest, match=why):
        codec.decode(request([]), length)


def test_bytes_no_input_declares_are_refused() -> None:
    head = request([{"name": "values", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}])
    decoded, blobs = codec.decode(head + b"\x00" * 8, str(len(head)))
    with pytest.raises(InvalidInput, match="8 bytes follow the JSON header"):
        codec.input_array(decoded.inputs[0], blobs)


def test_unknown_parameters_are_refused_by_name() -> None:
    body = request([{"name": "values", "datatype": "FP32", "shape": [1], "data": [1], "parameters": {"shm": 1}}])
    with pytest.raises(InvalidInput, match=r"parameters \['shm'\] are not supported"):
        codec.decode(body, None)


def test_data_that_does_not_fill_the_shape_is_refused() -> None:
    body = request([{"name": "values", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3]}])
    decoded, blobs = codec.decode(body, None)
    with pytest.raises(InvalidInput, match="needs 6 numbers; data holds 3 numbers"):
        codec.input_array(decoded.inputs[0], blobs)


ONE_INPUT = [{"name": "values", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]


def test_outputs_are_json_unless_binary_is_asked_for_each_or_all() -> None:
    outputs = {"forecast": np.ones((1, 2)), "scale": np.full((1,), 3.0)}
    plain, _ = codec.decode(request(ONE_INPUT, id="r1"), None)
    content, header = codec.encode("m", "1", plain, outputs)
    answer = json.loads(content)
    assert header is None and answer["id"] == "r1" and answer["outputs"][0]["data"] == [1.0, 1.0]

    one_binary, _ = codec.decode(
        request(ONE_INPUT, outputs=[{"name": "scale", "parameters": {"binary_data": True}}]), None
    )
    content, header = codec.encode("m", "1", one_binary, outputs)
    assert header is not None
    head = json.loads(content[:header])
    assert [o["name"] for o in head["outputs"]] == ["scale"]
    assert np.frombuffer(content[header:], dtype="<f4").tolist() == [3.0]


def test_an_unknown_output_is_refused_by_name() -> None:
    asked, _ = codec.decode(request(ONE_INPUT, outputs=[{"name": "quantiles"}]), None)
    with pytest.raises(InvalidInput, match="output 'quantiles' is unknown"):
        codec.encode("m", "1", asked, {"forecast": np.ones((1, 2))})
