"""The Open Inference Protocol v2 codec: an inference request (JSON, or JSON followed by raw tensors in Triton's binary
tensor extension) to numpy, and outputs back to a response body. More: docs/design.md#appprotocolsoipcodec.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from app.errors import BadRequest, InvalidInput
from app.protocols.oip import adapter

HEADER_LENGTH = "Inference-Header-Content-Length"
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
Parameters = dict[Annotated[str, Field(max_length=64)], Scalar]
# What gatecast reads of each parameters object; any other key is refused by name.
REQUEST_PARAMETERS = {"binary_data_output"}
INPUT_PARAMETERS = {"binary_data_size"}
OUTPUT_PARAMETERS = {"binary_data"}


class InputTensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=256)
    shape: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(..., max_length=8)
    datatype: str = Field(..., max_length=16)
    parameters: Parameters | None = None
    data: list[Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=256)
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=256)
    parameters: Parameters | None = None
    inputs: list[InputTensor] = Field(..., min_length=1, max_length=16)
    outputs: list[RequestedOutput] | None = Field(None, max_length=16)


def decode(body: bytes, header_length: str | None) -> tuple[InferenceRequest, memoryview]:
    """The request and the raw tensor bytes that follow its JSON header (empty without the extension),
    as a view: a binary body is never copied."""
    if header_length is None:
        size = len(body)
    elif header_length.strip().isdigit():
        size = int(header_length)
    else:
        raise BadRequest(f"{HEADER_LENGTH} is {header_length!r}; it must be the JSON header's length in bytes")
    if not 0 < size <= len(body):
        raise BadRequest(f"{HEADER_LENGTH} {size} does not fit a body of {len(body)} bytes")
    request = InferenceRequest.model_validate_json(body[:size])  # 400 malformed JSON, or 422
    _check_parameters("the request", request.parameters, REQUEST_PARAMETERS)
    for tensor in request.inputs:
        _check_parameters(f"input {tensor.name!r}", tensor.parameters, INPUT_PARAMETERS)
    for output in request.outputs or []:
        _check_parameters(f"output {output.name!r}", output.parameters, OUTPUT_PARAMETERS)
    return request, memoryview(body)[size:]


def _check_parameters(where: str, parameters: dict[str, Any] | None, known: set[str]) -> None:
    unknown = sorted(set(parameters or {}) - known)
    if unknown:
        raise InvalidInput(f"{where}: parameters {unknown} are not supported; gatecast reads {sorted(known)}")


def input_array(tensor: InputTensor, blobs: memoryview) -> np.ndarray:
    """One input in its declared shape, as floats: FP16/FP32/FP64 as sent (binary data is a view of the body,
    not a copy), integers as float64. Binary data is read from `blobs` (one input only)."""
    adapter.datatype(tensor.name, tensor.datatype)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise InvalidInput(f"input {tensor.name!r}: binary_data_size must be a whole number of bytes, not {size!r}")
        if size != len(blobs):
            raise InvalidInput(
                f"input {tensor.name!r}: binary_data_size is {size} but {len(blobs)} bytes follow the header"
            )
        return adapter.from_bytes(tensor.name, tensor.datatype, tensor.shape, blobs)
    if blobs:
        raise InvalidInput(f"{len(blobs)} bytes follow the JSON header but no input declares binary_data_size")
    if tensor.data is None:
        raise InvalidInput(f"input {tensor.name!r} has neither `data` nor binary_data_size")
    return adapter.checked(tensor.name, tensor.datatype, _json_numbers(tensor), tensor.shape)


def _json_numbers(tensor: InputTensor) -> np.ndarray:
    count = math.prod(tensor.shape)  # 1 for a scalar (shape []); shapes are bounded by the schema
    try:
        raw = np.asarray(tensor.data)
    except (ValueError, TypeError, OverflowError) as exc:  # ragged nesting, odd types
        raise InvalidInput(f"input {tensor.name!r}: data must be numbers in a flat or nested list ({exc})") from None
    if raw.dtype.kind not in "iuf" or raw.size != count:
        what = f"{raw.size} numbers" if raw.dtype.kind in "iuf" else f"values of type {raw.dtype}"
        raise InvalidInput(
            f"input {tensor.name!r}: shape {tensor.shape} needs {count} numbers; data holds {what} "
            "(numbers only, within the datatype's range)"
        )
    return raw.reshape(-1)


def encode(
    model: str, version: str, request: InferenceRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the length of its JSON header."""
    default_binary = bool((request.parameters or {}).get("binary_data_output", False))
    wanted: dict[str, bool] = {}
    if request.outputs:
        for item in request.outputs:
            if item.name not in outputs:
                raise InvalidInput(f"output {item.name!r} is unknown; outputs are {sorted(outputs)}")
            binary = (item.parameters or {}).get("binary_data", default_binary)
            if not isinstance(binary, bool):
                raise InvalidInput(f"output {item.name!r}: binary_data must be true or false, not {binary!r}")
            wanted[item.name] = binary
    else:
        wanted = {name: default_binary for name in outputs}
    entries, blobs = [], []
    for name, binary in wanted.items():
        array = outputs[name].astype("<f4")
        entry: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if binary:
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.ravel()  # FP32 written as the shortest decimal that reads back the same
        entries.append(entry)
    body: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request.id is not None:
        body["id"] = request.id
    head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
