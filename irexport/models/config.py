"""The routing configuration: which family routes which units, and the family's parameters.

It is stored as ``routing_config.json`` next to a transformers ``config.json`` (our checkpoint format)
and is everything needed to rebuild the routing modules, so loading our format takes no flags.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import IrexportError
from ..jsonrecord import read_json
from ..ops.spec import OPS
from ..schema import Int, List, Map, Num, Obj, Opt, Str, validate

FAMILIES = ("informed", "skipgpt", "router_tuning", "mod")
UNITS = ("attention", "mlp")
# What a unit's router reads. For the attention unit the layer input is the unit's input, so the
# layer_* choices differ only for the MLP unit:
#   norm            Norm(x) of the unit (informed routing's published default, post-norm)
#   residual        the unit's input x
#   layer_residual  the decoder layer's input (published SkipGPT: both routers read it)
#   layer_norm      input_layernorm of the layer's input (published router-tuning)
ROUTER_INPUTS = ("norm", "residual", "layer_residual", "layer_norm")
FORMAT_VERSION = 1
def attribute_range(op: str, name: str) -> Num:
    """A routing op attribute's accepted range, as the op's description states it (the kernels check the same)."""
    attr = OPS[op].attribute(name)
    return Num(attr.low, attr.high, open_lo=attr.low_exclusive)


_OPTIONAL = ("format_version", "router_input", "router_hidden", "lff_rank", "threshold", "pooling", "capacity",
             "decode_threshold")
SCHEMA = Obj({
    "format_version": Int(FORMAT_VERSION, FORMAT_VERSION),
    "family": Str(choices=FAMILIES),
    "num_layers": Int(1, 4096),
    "units": Map(List(Int(0, 4095)), keys=UNITS),
    "router_input": Str(choices=ROUTER_INPUTS),
    "router_hidden": Opt(Int(0, 1 << 16)),
    "lff_rank": Opt(Int(1, 1 << 16)),
    "threshold": attribute_range("RouteThreshold", "threshold"),
    "pooling": Str(choices=("token", "sequence")),
    "capacity": attribute_range("RouteTopK", "capacity"),
    "decode_threshold": attribute_range("RouteThreshold", "threshold"),  # MoD decodes through RouteThreshold
}, optional=_OPTIONAL, closed=True)


@dataclasses.dataclass
class RoutingConfig:
    """Routing of a decoder. ``units[u]`` lists the layers whose unit ``u`` is routed.

    family:
      informed       router Linear(d,h)-ReLU-Linear(h,2), argmax: class 0 executes, class 1 takes the LFF
      skipgpt        the same router; skipped tokens keep the residual only (no LFF)
      router_tuning  router Linear(d,1,bias=False), sigmoid >= threshold executes (MindSkip)
      mod            router Linear(d,1), the top ceil(capacity * tokens) tokens per sequence execute, their
                     output scaled by the router weight (Mixture-of-Depths)
    """

    family: str
    num_layers: int
    units: dict[str, list[int]]
    router_input: str = "norm"  # what the router reads, see ROUTER_INPUTS
    router_hidden: int | None = None  # informed / skipgpt: h; 0 = a single Linear(d, 2) (released SkipGPT)
    lff_rank: int | None = None  # informed: r
    threshold: float = 0.5  # router_tuning
    pooling: str = "token"  # router_tuning: "token" or "sequence" (mean over the sequence's valid tokens)
    capacity: float = 0.5  # mod: executed fraction per sequence (prefill)
    decode_threshold: float = 0.5  # mod, forwards with a KV cache: execute where sigmoid(r) >= this

    def __post_init__(self):
        self.validate()

    def validate(self, where: str = "routing config") -> None:
        """Types and ranges by the schema, then what ties fields together."""
        def bad(msg):
            raise IrexportError(f"{where}: {msg}")

        if isinstance(self.units, dict):
            for unit in UNITS:
                self.units.setdefault(unit, [])
        validate(self.to_dict(), SCHEMA, where)
        for unit in UNITS:
            layers = self.units[unit]
            if any(i >= self.num_layers for i in layers):
                bad(f"units.{unit} has a layer index outside 0..{self.num_layers - 1}: {layers}")
            self.units[unit] = sorted(set(layers))
        if self.family in ("informed", "skipgpt") and self.router_hidden is None:
            bad(f"family {self.family} needs router_hidden (an integer >= 0)")
        if self.family == "informed" and self.lff_rank is None:
            bad("family informed needs lff_rank (a positive integer)")

    def is_routed(self, layer: int, unit: str) -> bool:
        return layer in self.units[unit]

    @property
    def has_lff(self) -> bool:
        return self.family == "informed"

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "routing config") -> RoutingConfig:
        data = validate(data, SCHEMA, where)
        data.pop("format_version", None)
        try:
            return cls(**data)
        except IrexportError as e:  # validate() names no file; name this one
            raise IrexportError(f"{where}: {str(e).removeprefix('routing config: ')}") from None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RoutingConfig:
        return cls.from_dict(read_json(path), where=str(path))
