"""The Engine protocol and the tensor specs it checks its inputs against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from gear_edge.errors import InputError

Dim = int | str | None  # a fixed size, or a symbolic / unknown (dynamic) one


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints for fixed dims, str/None for dynamic ones) and numpy dtype of a tensor."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]"


@runtime_checkable
class Engine(Protocol):
    """A loaded model: ``run`` maps named input arrays to named output arrays (numpy in and out)."""

    source: str  # the model file (for error messages)
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Runs the model. Raises InputError naming the model file and tensor on bad feeds."""
        ...


def check_feeds(source: str, inputs: Mapping[str, TensorSpec], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validates feeds against the specs (names, ranks, fixed dims, dtypes); returns contiguous arrays.

    Dynamic dims that share a symbolic name must agree across inputs (e.g. a batch axis).
    """
    missing = [n for n in inputs if n not in feeds]
    extra = [n for n in feeds if n not in inputs]
    if missing or extra:
        expected = "; ".join(s.describe() for s in inputs.values())
        raise InputError(f"{source}: inputs missing {missing}, unexpected {extra}; the model takes {expected}")
    symbols: dict[str, tuple[int, str]] = {}
    out: dict[str, np.ndarray] = {}
    for name, spec in inputs.items():
        arr = feeds[name]
        if not isinstance(arr, np.ndarray):
            raise InputError(f"{source}: input {name!r} must be a numpy array, got {type(arr).__name__}")
        if arr.dtype != spec.dtype:
            raise InputError(f"{source}: input {name!r} has dtype {arr.dtype}, the model expects {np.dtype(spec.dtype).name}")
        if arr.ndim != len(spec.shape):
            raise InputError(f"{source}: input {name!r} has shape {list(arr.shape)}, the model expects {spec.describe()}")
        for axis, (got, want) in enumerate(zip(arr.shape, spec.shape)):
            if isinstance(want, int) and want >= 0 and got != want:
                raise InputError(
                    f"{source}: input {name!r} axis {axis} is {got}, the model expects {want} ({spec.describe()})"
                )
            if isinstance(want, str) and want:
                if want in symbols and symbols[want][0] != got:
                    size, first = symbols[want]
                    raise InputError(
                        f"{source}: dynamic axis {want!r} is {got} in {name!r} but {size} in {first!r}; they must agree"
                    )
                symbols.setdefault(want, (got, name))
        out[name] = np.ascontiguousarray(arr)
    return out
