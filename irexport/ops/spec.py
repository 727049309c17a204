"""One description per routing op: the single source of truth for names, versions, attributes,
inputs/outputs and dtypes, shared by the torch ops, the ONNX export and the TensorRT plugins.

  RouteArgmax     \
  RouteThreshold   > router scores -> signed margin (>= 0 executes), one op per decision rule
  RouteTopK       /
  RouteIndex      execute mask -> per-sequence positions of the executed tokens, packed left, -1 padded,
                  and their count Tq (the size tensor TensorRT needs for the data-dependent shape)
  RouteGather     x [B, T, D], index -> the executed rows [B, Tq, D] (zeros on padding)
  RouteScatterAdd x [B, T, d], y [B, Tq, d], index -> x with y added at the indexed rows

RouteIndex has a data-dependent output shape (Tq = the largest executed count of a sequence), the
reason compaction needs a plugin (with a size tensor) rather than TensorRT's own ops. Masks cross
the op boundary as int32 (1 = true): TensorRT plugins take no bool or uint8 inputs or outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "irexport"
PLUGIN_NAMESPACE = "irexport"
FLOATS = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")


@dataclass(frozen=True)
class Attr:
    name: str
    type: str  # "float" (every routing attribute so far)
    doc: str


@dataclass(frozen=True)
class Port:
    name: str
    types: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class OpSpec:
    name: str  # ONNX op type and TensorRT plugin name
    torch_name: str  # torch.ops.irexport.<torch_name>
    doc: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    attributes: tuple[Attr, ...] = ()
    version: int = 1
    domain: str = DOMAIN
    data_dependent_shape: bool = False

    @property
    def plugin_fields(self) -> tuple[str, ...]:
        """PluginField names of the TensorRT creator: the op's attributes."""
        return tuple(a.name for a in self.attributes)

    @property
    def plugin_version(self) -> str:
        return str(self.version)

    @property
    def node_attributes(self) -> dict:
        """Attributes every node carries so TensorRT (>= 10.7) can find the plugin that replaces it."""
        return {"plugin_namespace": PLUGIN_NAMESPACE, "plugin_version": self.plugin_version}


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec(
            name="RouteArgmax",
            torch_name="route_argmax",
            doc="Informed routing / SkipGPT: margin = s0 - s1 of the router's two logits (class 0 executes, "
                "also on a tie).",
            inputs=(Port("scores", FLOATS, "router logits [B, T, 2]"),),
            outputs=(Port("margin", ("tensor(float)",), "float32 margin [B, T], >= 0 executes"),),
        ),
        OpSpec(
            name="RouteThreshold",
            torch_name="route_threshold",
            doc="Router-tuning, and MoD decode: margin = sigmoid(s) - threshold.",
            inputs=(Port("scores", FLOATS, "router output [B, T, 1]"),),
            outputs=(Port("margin", ("tensor(float)",), "float32 margin [B, T], >= 0 executes"),),
            attributes=(Attr("threshold", "float", "execute where sigmoid(s) >= threshold"),),
        ),
        OpSpec(
            name="RouteTopK",
            torch_name="route_topk",
            doc="Mixture-of-Depths prefill: margin = s - t_b, with t_b halfway between the k-th and (k+1)-th "
                "largest valid score of sequence b and k = ceil(capacity * valid tokens of b) in float32 "
                "(t_b = k-th - 1 when k covers every valid token). Tokens tied exactly on the boundary all execute, "
                "so exact ties (e.g. repeated tokens before any attention) can exceed k.",
            inputs=(Port("scores", FLOATS, "router output [B, T, 1]"), Port("valid", ("tensor(int32)",), "non-padding tokens [B, T], 1 or 0")),
            outputs=(Port("margin", ("tensor(float)",), "float32 margin [B, T], >= 0 executes"),),
            attributes=(Attr("capacity", "float", "executed fraction of each sequence's valid tokens"),),
        ),
        OpSpec(
            name="RouteIndex",
            torch_name="route_index",
            doc="Positions of the executed tokens of each sequence, in order, packed left: [B, Tq] int64 with Tq "
                "the largest executed count of a sequence; -1 after a sequence's last executed token. The second "
                "output is Tq itself (0-d int32): TensorRT's plugin declares it as the size tensor of the "
                "data-dependent dimension, so the node names it as an output (onnx-tensorrt counts the plugin's outputs).",
            inputs=(Port("execute", ("tensor(int32)",), "execute mask [B, T], 1 or 0"),),
            outputs=(Port("index", ("tensor(int64)",), "positions [B, Tq], -1 padded"),
                     Port("count", ("tensor(int32)",), "Tq, 0-d: the size tensor of index's second dimension")),
            data_dependent_shape=True,
        ),
        OpSpec(
            name="RouteGather",
            torch_name="route_gather",
            doc="Rows of x at index: out[b, j] = x[b, index[b, j]], zeros where index is -1.",
            inputs=(Port("x", FLOATS, "[B, T, D]"), Port("index", ("tensor(int64)",), "[B, Tq] from RouteIndex")),
            outputs=(Port("out", FLOATS, "[B, Tq, D]"),),
        ),
        OpSpec(
            name="RouteScatterAdd",
            torch_name="route_scatter_add",
            doc="x with y added at the indexed rows: out = x; out[b, index[b, j]] += y[b, j] where index >= 0.",
            inputs=(Port("x", FLOATS, "[B, T, D]"), Port("y", FLOATS, "[B, Tq, D]"), Port("index", ("tensor(int64)",), "[B, Tq]")),
            outputs=(Port("out", FLOATS, "[B, T, D]"),),
        ),
    )
}
