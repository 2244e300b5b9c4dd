"""ONNX models, run with onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import Flavor, LoadOptions, check_choice

__all__ = ["OnnxFlavor"]

_FILE = "model.onnx"
#: ONNX tensor element types -> NumPy dtypes, for casting inputs to what the graph wants.
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxFlavor(Flavor):
    """An ``onnx.ModelProto`` (from skl2onnx, ``torch.onnx``, tf2onnx...).

    Loaded as an ``onnxruntime.InferenceSession`` on the CPU. ``predict`` feeds a
    single-input graph the whole array (or DataFrame, as a matrix); a graph with several
    inputs gets a dict of arrays, or one DataFrame column per input, as ``(n, 1)``.
    Inputs are cast to the element type the graph declares (``float64`` data for a
    ``float`` graph becomes ``float32``). One output comes back as an array, several as
    a dict keyed by output name.
    """

    name = "onnx"
    framework = "onnx"
    requirements = ("onnx", "onnxruntime", "numpy")
    types = ("onnx.ModelProto",)

    def dump(self, model: Any, folder: Path) -> dict[str, Any]:
        (folder / _FILE).write_bytes(model.SerializeToString())
        return {
            "model_format": "onnx",
            "ir_version": int(model.ir_version),
            "opsets": {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import},
        }

    def load(self, folder: Path, fields: Mapping[str, Any], options: LoadOptions) -> Any:
        import onnxruntime

        check_choice(fields, "model_format", ("onnx",))
        return onnxruntime.InferenceSession((folder / _FILE).read_bytes(), providers=["CPUExecutionProvider"])

    def predict(self, model: Any, data: Any) -> Any:
        outputs = model.run(None, _feed(model.get_inputs(), data))
        if len(outputs) == 1:
            return outputs[0]
        return {meta.name: value for meta, value in zip(model.get_outputs(), outputs, strict=True)}


def _feed(inputs: list[Any], data: Any) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        missing = [i.name for i in inputs if i.name not in data]
        if missing:
            raise InvalidInput(f"The ONNX graph needs inputs {missing}, not given in {sorted(data)}")
        return {i.name: _as_input(i, data[i.name]) for i in inputs}
    if len(inputs) == 1:
        return {inputs[0].name: _as_input(inputs[0], data)}
    if hasattr(data, "columns"):
        return {i.name: _as_input(i, data[i.name].to_numpy().reshape(-1, 1)) for i in inputs}
    raise InvalidInput(f"The ONNX graph has inputs {[i.name for i in inputs]}; pass a dict or a DataFrame")


def _as_input(meta: Any, value: Any) -> np.ndarray:
    array = value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)
    dtype = _DTYPES.get(meta.type)
    return array if dtype is None or array.dtype == dtype else array.astype(dtype)
