"""Optimization profiles derived from an export's manifest and a recipe (no TensorRT needed).

The engine has one profile per phase of the graph, in the order of graph_io.PHASES:
  prefill  past_sequence = 0 (an empty cache), sequence over the recipe's ``sequence`` range
  decode   sequence = 1, past_sequence over the recipe's ``cache`` range
The manifest names every dynamic dimension of every graph input ("batch", "past_sequence",
"past_sequence + sequence"); each input's min/opt/max shape follows from the phase's axis ranges, so the
profiles always agree with the graph they were built from.
"""

from __future__ import annotations

from ..errors import IrexportError
from ..export.graph_io import check_phase
from .recipe import Recipe


def check_precision(manifest: dict, recipe: Recipe, where: str) -> None:
    """TensorRT 11 networks are strongly typed: the engine computes in the ONNX file's types."""
    if manifest["dtype"] != recipe.precision:
        raise IrexportError(f"{where}: the recipe asks for {recipe.precision} but the export is {manifest['dtype']} "
                            f"(TensorRT takes the precision from the ONNX types: irexport export --dtype {recipe.precision})")


def axis_ranges(recipe: Recipe, phase: str) -> dict[str, tuple[int, int, int]]:
    """{manifest axis: (min, opt, max)} in one phase."""
    def span(axis):
        r = recipe.profile[axis]
        return r.min, r.opt, r.max

    if phase == "prefill":
        return {"batch": span("batch"), "sequence": span("sequence"), "past_sequence": (0, 0, 0)}
    return {"batch": span("batch"), "sequence": (1, 1, 1), "past_sequence": span("cache")}


def input_shapes(manifest: dict, recipe: Recipe, phase: str) -> dict[str, tuple[tuple, tuple, tuple]]:
    """{input name: (min shape, opt shape, max shape)} of the graph in one phase ("prefill" or "decode")."""
    ranges = axis_ranges(recipe, check_phase(phase))
    shapes = {}
    for io in manifest["graph"]["inputs"]:
        dims = [_dim_range(d, ranges, io["name"]) for d in io["shape"]]
        shapes[io["name"]] = tuple(tuple(d[k] for d in dims) for k in range(3))
    return shapes


def _dim_range(dim, ranges: dict, name: str) -> tuple[int, int, int]:
    """A number, or a sum of axes ("past_sequence + sequence")."""
    if isinstance(dim, int):
        return dim, dim, dim
    terms = str(dim).split(" + ")
    unknown = [t for t in terms if t not in ranges]
    if unknown:
        raise IrexportError(f"manifest: input {name} has dimension {dim!r}, which no recipe axis covers "
                            f"(known: {', '.join(ranges)})")
    return tuple(sum(ranges[t][k] for t in terms) for k in range(3))
