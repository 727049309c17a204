"""Optimization profiles derived from an export's manifest and a recipe (no TensorRT needed).

The manifest names every dynamic dimension of every graph input ("batch", "sequence",
"past_sequence", "past_sequence + 1"); the recipe gives a range per axis. Each input's min/opt/max
shape follows, so prefill and decode engines always agree with the graphs they were built from.
"""

from __future__ import annotations

import re

from ..errors import IrexportError
from .recipe import Recipe

# manifest axis name -> recipe axis
AXIS_OF = {"batch": "batch", "sequence": "sequence", "past_sequence": "cache"}
_DIM = re.compile(r"^([a-z_]+)(?: \+ (\d+))?$")


def check_precision(manifest: dict, recipe: Recipe, where: str) -> None:
    """TensorRT 11 networks are strongly typed: the engine computes in the ONNX file's types."""
    if manifest["dtype"] != recipe.precision:
        raise IrexportError(f"{where}: the recipe asks for {recipe.precision} but the export is {manifest['dtype']} "
                            f"(TensorRT takes the precision from the ONNX types: irexport export --dtype {recipe.precision})")


def input_shapes(manifest: dict, recipe: Recipe, graph: str) -> dict[str, tuple[tuple, tuple, tuple]]:
    """{input name: (min shape, opt shape, max shape)} for one graph ("prefill" or "decode")."""
    shapes = {}
    for io in manifest["graphs"][graph]["inputs"]:
        dims = [_dim_range(d, recipe, io["name"]) for d in io["shape"]]
        shapes[io["name"]] = tuple(tuple(d[k] for d in dims) for k in range(3))
    return shapes


def _dim_range(dim, recipe: Recipe, name: str) -> tuple[int, int, int]:
    if isinstance(dim, int):
        return dim, dim, dim
    match = _DIM.match(str(dim))
    if not match or match.group(1) not in AXIS_OF:
        raise IrexportError(f"manifest: input {name} has dimension {dim!r}, which no recipe axis covers "
                            f"(known: {', '.join(AXIS_OF)})")
    r = recipe.profile[AXIS_OF[match.group(1)]]
    offset = int(match.group(2) or 0)
    return r.min + offset, r.opt + offset, r.max + offset
