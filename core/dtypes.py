"""Dtypes: the one list of the dtypes chipcut costs, their order, their sizes and torch's names.

``DType`` is a ``str`` enum, so a member compares equal to its word (``DType.FP32 == "fp32"``),
works as a key of a spec's ``peak_macs_per_s`` table, and a plan's JSON holds the plain word.

>>> wider("int4", "int8"), DType("bf16").bytes, from_torch(torch.float64)
(<DType.INT8: 'int8'>, 2, <DType.FP64: 'fp64'>)
"""

from __future__ import annotations

from enum import StrEnum

import torch

from chipcut.core.errors import ChipcutError


class DType(StrEnum):
    """A storage or compute dtype. Members are declared narrow to wide (see :data:`ORDER`)."""

    INT4 = "int4"
    INT8 = "int8"
    FP8 = "fp8"
    FP16 = "fp16"
    BF16 = "bf16"
    FP32 = "fp32"
    FP64 = "fp64"

    @property
    def bytes(self) -> float:
        """Bytes per element (int4 packs two elements into a byte)."""
        return BYTES[self]


# Narrow to wide; a MAC runs in the wider of its weight and activation dtypes.
ORDER: tuple[DType, ...] = tuple(DType)
BYTES: dict[DType, float] = {
    DType.INT4: 0.5, DType.INT8: 1, DType.FP8: 1, DType.FP16: 2, DType.BF16: 2, DType.FP32: 4,
    DType.FP64: 8,
}

# torch dtype -> the dtype chipcut costs it as.
FROM_TORCH: dict[torch.dtype, DType] = {
    torch.float64: DType.FP64, torch.float32: DType.FP32, torch.float16: DType.FP16,
    torch.bfloat16: DType.BF16, torch.int8: DType.INT8, torch.uint8: DType.INT8,
}
for _name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"):
    if hasattr(torch, _name):
        FROM_TORCH[getattr(torch, _name)] = DType.FP8

# The dtype names ``--input 1x128:int64`` accepts -> the torch dtype of the example tensor.
INPUT_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64, "fp64": torch.float64, "float32": torch.float32,
    "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "int64": torch.int64, "long": torch.int64,
    "int32": torch.int32, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}


def wider(a: str, b: str) -> DType:
    """The wider of two dtypes (int4 weights with int8 activations compute in int8)."""
    return ORDER[max(ORDER.index(a), ORDER.index(b))]


def from_torch(dtype: torch.dtype, where: str = "a tensor") -> DType:
    """The dtype chipcut costs a tensor of torch ``dtype`` as.

    Integer and bool tensors wider than 8 bits hold indices, positions and masks, never MAC
    operands, so they are labelled fp32 (their dtype costs nothing). A floating-point or complex
    dtype with no counterpart here is a ``ChipcutError`` naming ``where``: costing it as another
    dtype would be a silent lie.
    """
    if dtype in FROM_TORCH:
        return FROM_TORCH[dtype]
    if dtype.is_floating_point or dtype.is_complex:
        known = ", ".join(str(t).removeprefix("torch.") for t in FROM_TORCH if t.is_floating_point)
        raise ChipcutError(f"{where} has dtype {str(dtype).removeprefix('torch.')}, which chipcut "
                           f"does not cost (it costs {known}); convert the model, "
                           "e.g. model.float()")
    return DType.FP32
