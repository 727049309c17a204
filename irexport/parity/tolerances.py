"""Tolerances per dtype.

atol/rtol apply to logits and the KV cache (Polygraphy's simple comparison: |a-b| <= atol + rtol*|b|
elementwise). A decision may flip between backends only where the reference's router margin is
within ``margin_epsilon`` of its boundary: a near tie that rounding alone can move.
"""

TOLERANCES = {
    "float32": {"atol": 1e-4, "rtol": 1e-3, "margin_epsilon": 1e-4},
    "float16": {"atol": 2e-2, "rtol": 2e-2, "margin_epsilon": 2e-2},
    "bfloat16": {"atol": 1e-1, "rtol": 5e-2, "margin_epsilon": 1e-1},
}
