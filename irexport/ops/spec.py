"""One description per routing op: the single source of truth for names, versions, attributes,
inputs/outputs and dtypes, shared by the torch ops, the ONNX export and the TensorRT plugins.

  RouteArgmax     \
  RouteThreshold   > router scores -> signed margin (>= 0 executes), one op per decision rule
  RouteTopK       /
  RouteIndex      execute mask [B, T] -> the executed tokens flat across the batch: their rows b*T + t
                  of the [B*T] token rows, in order, and their count N
  RouteSeqIndex   execute mask [B, T] -> the same tokens laid out per sequence [B, Tq] for the attention
                  core: each entry a position in RouteIndex's list, -1 after a sequence's last
  RouteGather     rows of x (x flattened to [rows, D]) at an index of any shape (zeros where it is -1)
  RouteScatterAdd x with rows of y added at the indexed rows of x (where the index is >= 0)

Compaction is flat: the unit's matrix products run on [N, d], N = executed tokens of the
whole batch, so a decode step of B sequences does the work of the tokens that execute, not of the
longest sequence. RouteIndex and RouteSeqIndex have data-dependent output shapes; each names its size
(0-d int32) as its second output, the size tensor a TensorRT plugin declares. Their function bodies
reach that size through NonZero only (TensorRT's INonZeroLayer), never a value reduced from data and
fed to a shape. Masks cross the op boundary as int32 (1 = true): TensorRT plugins take no bool or
uint8 inputs or outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "irexport"
# the domain's ONNX opset: its schemas serve the exporter's type inference only; an op's own version (a
# plugin's version) travels on each node as plugin_version
DOMAIN_OPSET = 1
PLUGIN_NAMESPACE = "irexport"
# any float type; an op's FLOATS ports all take the same one (one type constraint in its schema), the first's
FLOATS = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")


@dataclass(frozen=True)
class Attr:
    name: str
    type: str  # "float" (every routing attribute so far)
    doc: str
    low: float  # the accepted range: [low, high], or (low, high] when low_exclusive
    high: float
    low_exclusive: bool = False

    def accepts(self, value: float) -> bool:
        return (value > self.low if self.low_exclusive else value >= self.low) and value <= self.high

    @property
    def range_text(self) -> str:
        return f"{'(' if self.low_exclusive else '['}{self.low:g}, {self.high:g}]"


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

    def attribute(self, name: str) -> Attr:
        return next(a for a in self.attributes if a.name == name)

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
            attributes=(Attr("threshold", "float", "execute where sigmoid(s) >= threshold", 0, 1),),
        ),
        OpSpec(
            name="RouteTopK",
            torch_name="route_topk",
            doc="Mixture-of-Depths prefill: margin = s - t_b, with t_b halfway between the k-th and (k+1)-th "
                "largest valid score of sequence b and k = ceil(capacity * valid tokens of b) in float32 "
                "(t_b = k-th - 1 when k covers every valid token). Tokens tied exactly on the boundary all execute, "
                "so exact ties (e.g. repeated tokens before any attention) can exceed k.",
            inputs=(Port("scores", FLOATS, "router output [B, T, 1]"),
                    Port("valid", ("tensor(int32)",), "non-padding tokens [B, T], 1 or 0")),
            outputs=(Port("margin", ("tensor(float)",), "float32 margin [B, T], >= 0 executes"),),
            attributes=(Attr("capacity", "float", "executed fraction of each sequence's valid tokens", 0, 1,
                             low_exclusive=True),),
        ),
        OpSpec(
            name="RouteIndex",
            torch_name="route_index",
            doc="The executed tokens flat across the batch: index [N] int64 holds their rows b*T + t of the [B*T] "
                "token rows in increasing order. The second output is N itself (0-d int32): TensorRT's plugin "
                "declares it as the size tensor of the data-dependent dimension, so the node names it as an output "
                "(onnx-tensorrt counts the plugin's outputs).",
            inputs=(Port("execute", ("tensor(int32)",), "execute mask [B, T], 1 or 0"),),
            outputs=(Port("index", ("tensor(int64)",), "rows b*T + t of the executed tokens [N]"),
                     Port("count", ("tensor(int32)",), "N, 0-d: the size tensor of index's dimension")),
            version=2,
            data_dependent_shape=True,
        ),
        OpSpec(
            name="RouteSeqIndex",
            torch_name="route_seq_index",
            doc="The executed tokens per sequence, for the attention core: slots [B, Tq] int64 with Tq the "
                "largest executed count of a sequence; slots[b, j] is the position in RouteIndex's list of the "
                "j-th executed token of sequence b, -1 after its last. The second output is Tq (0-d int32), the "
                "size tensor of the data-dependent dimension.",
            inputs=(Port("execute", ("tensor(int32)",), "execute mask [B, T], 1 or 0"),),
            outputs=(Port("slots", ("tensor(int64)",), "positions in RouteIndex's list [B, Tq], -1 padded"),
                     Port("count", ("tensor(int32)",), "Tq, 0-d: the size tensor of slots' second dimension")),
            data_dependent_shape=True,
        ),
        OpSpec(
            name="RouteGather",
            torch_name="route_gather",
            doc="Rows of x at index: with x viewed as rows [R, D] (its last dimension D), out[i] = x[index[i]] "
                "for every entry i of index, zeros where index is -1.",
            inputs=(Port("x", FLOATS, "[..., D], viewed as rows [R, D]"),
                    Port("index", ("tensor(int64)",), "[N] (RouteIndex) or [B, Tq] (RouteSeqIndex), -1 or a row")),
            outputs=(Port("out", FLOATS, "[*index.shape, D]"),),
            version=2,
        ),
        OpSpec(
            name="RouteScatterAdd",
            torch_name="route_scatter_add",
            doc="x with y added at the indexed rows: with x viewed as rows [R, D], out = x; out[index[i]] += y[i] "
                "for every entry i of index that is >= 0. The entries >= 0 are distinct.",
            inputs=(Port("x", FLOATS, "[..., D], viewed as rows [R, D]"),
                    Port("y", FLOATS, "[*index.shape, D]"),
                    Port("index", ("tensor(int64)",), "[N] or [B, Tq], -1 or a row of x")),
            outputs=(Port("out", FLOATS, "x's shape"),),
            version=2,
        ),
    )
}
