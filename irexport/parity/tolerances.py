"""Tolerances per dtype.

float32: atol/rtol apply to logits and the KV cache (Polygraphy's simple comparison:
|a-b| <= atol + rtol*|b| elementwise). float16/bfloat16: a backend's max error against the float32
reference may be ``bound_factor`` times PyTorch's own max error in that precision (floor: 2 ``ulp``
of the output's scale). A decision may flip between backends only where the reference's router
margin is within ``margin_epsilon`` of its boundary: a near tie that rounding alone can move.
"""

TOLERANCES = {
    "float32": {"atol": 1e-4, "rtol": 1e-3, "margin_epsilon": 1e-4},
    "float16": {"bound_factor": 2.0, "ulp": 2.0**-10, "margin_epsilon": 2e-2},
    "bfloat16": {"bound_factor": 2.0, "ulp": 2.0**-7, "margin_epsilon": 1e-1},
}
