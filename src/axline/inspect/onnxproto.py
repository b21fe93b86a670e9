"""A minimal ONNX model writer: protobuf wire format by hand, no ``onnx`` package needed.

Covers what a feed-forward inference graph needs: nodes with int, float, string and int-list
attributes, float32 / int64 initializers stored as raw little-endian bytes, inputs and outputs with
fixed or named (dynamic) dimensions. Field numbers follow ``onnx.proto3``.

>>> g = Graph("double")
>>> g.input("x", FLOAT, ["n", 2])
>>> two = g.constant("two", np.array([2.0], np.float32))
>>> g.node("Mul", ["x", two], ["y"])
['y']
>>> g.output("y", FLOAT, ["n", 2])
>>> import onnxruntime as ort
>>> sess = ort.InferenceSession(g.model_bytes(), providers=["CPUExecutionProvider"])
>>> sess.run(None, {"x": np.array([[1, 2]], np.float32)})[0].tolist()
[[2.0, 4.0]]
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

FLOAT = 1
INT64 = 7
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17

_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7
_DTYPES = {np.dtype("<f4"): FLOAT, np.dtype("<i8"): INT64}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values use ten bytes of two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(int(value))


def _bytes(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def tensor_proto(name: str, array: np.ndarray) -> bytes:
    """A ``TensorProto`` holding ``array`` (float32 or int64) as raw data."""
    arr = np.ascontiguousarray(array)
    if arr.dtype.newbyteorder("<") not in _DTYPES:
        raise ValueError(f"only float32 and int64 tensors are supported, got {arr.dtype}")
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    out = b"".join(_int(1, d) for d in arr.shape)
    out += _int(2, _DTYPES[arr.dtype]) + _str(8, name) + _bytes(9, arr.tobytes())
    return out


def _attribute(name: str, value: int | float | str | Sequence[int]) -> bytes:
    out = _str(1, name)
    if isinstance(value, bool | int):
        return out + _int(3, int(value)) + _int(20, _ATTR_INT)
    if isinstance(value, float):
        return out + _float(2, value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, str):
        return out + _bytes(4, value.encode("utf-8")) + _int(20, _ATTR_STRING)
    return out + b"".join(_int(8, int(v)) for v in value) + _int(20, _ATTR_INTS)


def _value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    dims = b"".join(
        _bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in shape
    )
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


class Graph:
    """Builds one ONNX graph; :meth:`model_bytes` serialises the whole model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: list[bytes] = []
        self._inits: list[bytes] = []
        self._inputs: list[bytes] = []
        self._outputs: list[bytes] = []
        self._names: set[str] = set()
        self._count = 0

    def fresh(self, stem: str) -> str:
        """A new unique value name starting with ``stem``."""
        self._count += 1
        return f"{stem}_{self._count}"

    def input(self, name: str, elem_type: int, shape: Sequence[int | str]) -> None:
        """Declare a graph input (a ``str`` dimension is dynamic)."""
        self._inputs.append(_value_info(name, elem_type, shape))

    def output(self, name: str, elem_type: int, shape: Sequence[int | str]) -> None:
        """Declare a graph output."""
        self._outputs.append(_value_info(name, elem_type, shape))

    def constant(self, name: str, array: np.ndarray) -> str:
        """Add an initializer (a stored constant tensor); returns its name."""
        if name in self._names:
            raise ValueError(f"duplicate initializer name {name!r}")
        self._names.add(name)
        self._inits.append(tensor_proto(name, array))
        return name

    def node(
        self, op: str, inputs: Sequence[str], outputs: Sequence[str] | None = None, **attrs: object
    ) -> list[str]:
        """Add one operator node; returns its output names (fresh ones when not given)."""
        outs = list(outputs) if outputs is not None else [self.fresh(op.lower())]
        body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outs)
        body += _str(3, self.fresh("n_" + op)) + _str(4, op)
        body += b"".join(_bytes(5, _attribute(k, v)) for k, v in attrs.items())  # type: ignore[arg-type]
        self._nodes.append(body)
        return outs

    def model_bytes(self, producer: str = "axline") -> bytes:
        """The serialised ``ModelProto``."""
        graph = b"".join(_bytes(1, n) for n in self._nodes) + _str(2, self.name)
        graph += b"".join(_bytes(5, t) for t in self._inits)
        graph += b"".join(_bytes(11, v) for v in self._inputs) + b"".join(_bytes(12, v) for v in self._outputs)
        opset = _str(1, "") + _int(2, OPSET)
        return _int(1, IR_VERSION) + _str(2, producer) + _bytes(7, graph) + _bytes(8, opset)
