"""Bits per weight of a model's quantization, for the decode roofline.

Block formats are exact: llama.cpp stores Q4_0 as 18 bytes per block of 32
weights (4.5 bits), Q4_1 20 (5.0), Q5_0 22 (5.5), Q5_1 24 (6.0), Q8_0 34
(8.5), MXFP4 17 (4.25); NVFP4 is 4 bits plus an FP8 scale per 16 (4.5).
The k-quant and i-quant names are *mixes* (some tensors kept at higher
precision), so their figure depends on the model: llama.cpp's
tools/quantize/README.md measures Q4_K_M at 4.84 bits (Llama 2 7B) and 4.89
(Llama 3.1 8B); we use 4.85, 5.69 for Q5_K_M, 6.56 for Q6_K, and the Llama
3.1 8B figures for the rest. A name not in the table is estimated from the
file size over the parameter count, and the plan says so.
"""

from __future__ import annotations

from typing import Literal

from sovereign.inventory.models import GIB, ModelSpec

BITS_PER_WEIGHT: dict[str, float] = {
    # Unquantized.
    "F32": 32.0,
    "F16": 16.0,
    "FP16": 16.0,
    "BF16": 16.0,
    "FP8": 8.0,
    # Block formats (bytes per block x 8 / weights per block).
    "Q4_0": 4.5,
    "Q4_1": 5.0,
    "Q5_0": 5.5,
    "Q5_1": 6.0,
    "Q8_0": 8.5,
    "MXFP4": 4.25,
    "NVFP4": 4.5,
    # k-quant mixes (llama.cpp tools/quantize/README.md).
    "Q2_K": 3.16,
    "Q3_K_S": 3.64,
    "Q3_K_M": 3.91,
    "Q3_K_L": 4.30,
    "Q4_K_S": 4.67,
    "Q4_K_M": 4.85,
    "Q5_K_S": 5.57,
    "Q5_K_M": 5.69,
    "Q6_K": 6.56,
    # i-quants (same README, Llama 3.1 8B).
    "IQ2_XXS": 2.38,
    "IQ2_XS": 2.59,
    "IQ2_S": 2.74,
    "IQ2_M": 2.93,
    "IQ3_XXS": 3.25,
    "IQ3_XS": 3.50,
    "IQ3_S": 3.66,
    "IQ3_M": 3.76,
    "IQ4_XS": 4.46,
    "IQ4_NL": 4.68,
}

BitsSource = Literal["table", "estimated"]


def file_bits_per_weight(spec: ModelSpec) -> float:
    """The bits per weight that the file's size implies: size_gib over params_total_b."""
    return spec.size_gib * GIB * 8 / (spec.params_total_b * 1e9)


def bits_per_weight(spec: ModelSpec) -> tuple[float, BitsSource]:
    """The model's bits per weight and where the figure comes from."""
    known = BITS_PER_WEIGHT.get(spec.quantization.strip().upper())
    if known is not None:
        return known, "table"
    return file_bits_per_weight(spec), "estimated"
