"""Read a PyTorch ``state_dict`` file (``.pth``) into NumPy arrays without torch.

A ``.pth`` file is a pickle whose tensors refer, by *persistent id*, to raw storages kept beside
it: in the zip format (torch >= 1.6) each storage is a member ``<archive>/data/<key>``; in the
legacy format the storages follow the pickles in the same stream, each as an int64 element count
and the raw little-endian bytes.

The pickle is read with a restricted unpickler: it resolves only ``collections.OrderedDict``, the
tensor rebuild function and the storage type names; any other class or function in the file is
refused with :class:`WeightsFileError`. A weights file therefore can never run code on load.

>>> import io, pickle
>>> bad = pickle.dumps(print)
>>> read_state_dict_bytes(bad)
Traceback (most recent call last):
...
axline.inspect.torchfile.WeightsFileError: weights file refused: it references builtins.print; only tensors and dicts are allowed
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class WeightsFileError(ValueError):
    """The file is not a readable PyTorch state dict of plain tensors."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise WeightsFileError("weights file refused: a tensor does not point at a storage")
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the few names a state dict of tensors uses; storages become placeholders."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsFileError(
            f"weights file refused: it references {module}.{name}; only tensors and dicts are allowed"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsFileError(f"weights file refused: unexpected persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise WeightsFileError(f"weights file refused: unsupported storage type {storage_type!r:.80}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, numel)
        return self.storages[key]


def _materialise(ref: _TensorRef, data: dict[str, np.ndarray]) -> np.ndarray:
    flat = data[ref.storage.key]
    if not ref.shape:
        return flat[ref.offset].copy()
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if ref.offset < 0 or last >= len(flat) or any(s < 0 for s in ref.stride):
        raise WeightsFileError(f"weights file is corrupt: a tensor of shape {ref.shape} runs past its storage")
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.shape, strides=tuple(s * item for s in ref.stride), writeable=False
    )
    return np.array(view)


def _collect(obj: Any, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise WeightsFileError(f"weights file holds a {type(obj).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if isinstance(value, _TensorRef):
            out[str(name)] = _materialise(value, data)
    return out


def _read_legacy(raw: bytes) -> dict[str, np.ndarray]:
    f = io.BytesIO(raw)
    try:
        magic = _RestrictedUnpickler(f).load()
        if magic != LEGACY_MAGIC:
            raise WeightsFileError("not a PyTorch weights file (bad magic number)")
        if _RestrictedUnpickler(f).load() != LEGACY_PROTOCOL:
            raise WeightsFileError("unsupported PyTorch legacy protocol version")
        sys_info = _RestrictedUnpickler(f).load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise WeightsFileError("big-endian weights files are not supported")
        main = _RestrictedUnpickler(f)
        obj = main.load()
        keys = _RestrictedUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        if isinstance(exc, WeightsFileError):
            raise
        raise WeightsFileError(f"not a readable PyTorch weights file ({exc})") from exc
    data: dict[str, np.ndarray] = {}
    for key in keys:
        storage = main.storages.get(str(key))
        if storage is None:
            raise WeightsFileError(f"weights file is corrupt: storage {key!r} is not referenced")
        head = f.read(8)
        if len(head) != 8:
            raise WeightsFileError("weights file is truncated")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * storage.dtype.itemsize
        buf = f.read(nbytes)
        if numel != storage.numel or len(buf) != nbytes:
            raise WeightsFileError(f"weights file is truncated or corrupt at storage {key!r}")
        data[storage.key] = np.frombuffer(buf, dtype=storage.dtype)
    return _collect(obj, data)


def _read_zip(raw: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise WeightsFileError("not a PyTorch weights file (no single data.pkl in the archive)")
        prefix = pkl[0][: -len("data.pkl")]
        unpickler = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])))
        try:
            obj = unpickler.load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            if isinstance(exc, WeightsFileError):
                raise
            raise WeightsFileError(f"not a readable PyTorch weights file ({exc})") from exc
        data: dict[str, np.ndarray] = {}
        for key, storage in unpickler.storages.items():
            try:
                buf = zf.read(f"{prefix}data/{key}")
            except KeyError as exc:
                raise WeightsFileError(f"weights file is corrupt: storage {key!r} is missing") from exc
            if len(buf) != storage.numel * storage.dtype.itemsize:
                raise WeightsFileError(f"weights file is corrupt: storage {key!r} has the wrong size")
            data[key] = np.frombuffer(buf, dtype=storage.dtype)
    return _collect(obj, data)


def read_state_dict_bytes(raw: bytes) -> dict[str, np.ndarray]:
    """Tensors of a PyTorch state dict given as the file's bytes, by name (NumPy arrays)."""
    if raw[:4] == b"PK\x03\x04":
        return _read_zip(raw)
    return _read_legacy(raw)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of the PyTorch state dict in ``path`` (zip or legacy format), by name."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise WeightsFileError(f"{path}: cannot read the weights file ({exc})") from exc
    return read_state_dict_bytes(raw)
