"""Tensor codec: named float32 arrays to and from safetensors bytes, never pickle.

Encoding is deterministic (same tensors, same bytes, so the same CID). Decoding treats
its input as hostile: size is capped before parsing, and dtype, names, shapes and
finiteness are checked before any array is handed back.
"""

import json
from collections.abc import Mapping

import numpy as np
import safetensors.numpy

from fedchain.errors import CodecError

MAX_BYTES = 256 * 1024 * 1024


def encode_tensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize named float32 tensors to safetensors bytes.

    Parameters
    ----------
    tensors : Mapping[str, numpy.ndarray]
        Tensor name to float32 array; any memory layout (a C-contiguous copy is written).

    Returns
    -------
    bytes
        The safetensors file. Equal inputs give equal bytes, whatever the dict order.

    Raises
    ------
    CodecError
        If a name is not a string or an array is not float32.
    """
    arrays = {}
    for name in sorted(tensors):
        if not isinstance(name, str):
            raise CodecError(f"tensor name {name!r} is not a string")
        array = np.asarray(tensors[name])
        if array.dtype != np.float32:
            raise CodecError(f"tensor {name} has dtype {array.dtype}, expected float32")
        # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
        arrays[name] = np.array(array, order="C", copy=True)
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CodecError("metadata keys and values must be strings")
    return safetensors.numpy.save(arrays, metadata=dict(sorted(metadata.items())) if metadata else None)


def decode_metadata(data: bytes, *, max_bytes: int = MAX_BYTES) -> dict[str, str]:
    """The string metadata in a safetensors header (``__metadata__``), checked.

    Used for the lineage a model blob carries (parent model, round, scores).
    The header is JSON, never code; its declared length is bounds-checked.
    """
    if len(data) > max_bytes or len(data) < 8:
        raise CodecError(f"malformed tensor file: {len(data)} bytes")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise CodecError("malformed tensor file: header longer than the file")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError as exc:
        raise CodecError(f"malformed tensor file header: {exc}") from exc
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CodecError("malformed tensor file: metadata is not a map of strings")
    return meta


def decode_tensors(
    data: bytes,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    *,
    max_bytes: int = MAX_BYTES,
) -> dict[str, np.ndarray]:
    """Parse and check a safetensors file of named float32 tensors.

    Parameters
    ----------
    data : bytes
        The file, already verified against its CID.
    expected : Mapping[str, tuple[int, ...]] or None, default None
        If given, the exact tensor names and the shape of each.
    max_bytes : int, default 256 MiB
        Larger inputs are rejected before parsing.

    Returns
    -------
    dict[str, numpy.ndarray]
        Tensor name to float32 array, every value finite.

    Raises
    ------
    CodecError
        If ``data`` is too large or not a safetensors file, or a tensor is not float32,
        does not match ``expected``, or holds NaN or Inf.
    """
    if len(data) > max_bytes:
        raise CodecError(f"tensor file is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        tensors = safetensors.numpy.load(bytes(data))
    except Exception as exc:  # the parser raises several types on hostile input
        raise CodecError(f"malformed tensor file: {exc}") from exc
    for name, array in tensors.items():
        if array.dtype != np.float32:
            raise CodecError(f"tensor {name} has dtype {array.dtype}, expected float32")
    if expected is not None:
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise CodecError(f"tensor names differ: missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            if tensors[name].shape != tuple(shape):
                raise CodecError(f"tensor {name} has shape {tensors[name].shape}, expected {tuple(shape)}")
    for name, array in tensors.items():
        if not np.isfinite(array).all():
            raise CodecError(f"tensor {name} has NaN/Inf")
    return tensors
