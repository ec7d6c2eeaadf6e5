"""Embeddings as packed little-endian float32 vectors (``LargeBinary`` columns)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cryptotrading.errors import ValidationError

Vector = npt.NDArray[np.float32]


def as_vector(values: Any, what: str = "embedding") -> Vector:
    """A 1-D, non-empty, finite float32 array made from *values*."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{what} is not a vector of numbers", hint="Pass a list or 1-D numpy array of floats."
        ) from None
    if array.ndim != 1 or array.size == 0:
        raise ValidationError(
            f"{what} must be a non-empty 1-D vector, got shape {array.shape}",
            hint="Pass one vector (a flat list or 1-D array) per call.",
        )
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{what} contains NaN or infinity", hint="Pass finite floats only.")
    return array.astype("<f4")


def pack(values: Any, what: str = "embedding") -> bytes:
    """The bytes of *values* as little-endian float32 (``.astype('<f4').tobytes()``)."""
    return as_vector(values, what).tobytes()


def unpack(blob: bytes) -> Vector:
    """The float32 vector packed by :func:`pack`."""
    if len(blob) % 4:
        raise ValidationError(
            f"stored embedding has {len(blob)} bytes, not a multiple of 4",
            hint="Re-store the embedding with cryptotrading.common.vectors.pack().",
        )
    return np.frombuffer(blob, dtype="<f4")
