"""The routing configuration: which family routes which units, and the family's parameters.

It is stored as ``routing_config.json`` next to a transformers ``config.json`` (our checkpoint format)
and is everything needed to rebuild the routing modules, so loading our format takes no flags.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import IrexportError

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
        def bad(msg):
            raise IrexportError(f"{where}: {msg}")

        if self.family not in FAMILIES:
            bad(f"unknown routing family {self.family!r} (expected one of {', '.join(FAMILIES)})")
        if not isinstance(self.units, dict) or set(self.units) - set(UNITS):
            bad(f"'units' must map a subset of {list(UNITS)} to layer lists, got {self.units!r}")
        for unit in UNITS:
            layers = self.units.setdefault(unit, [])
            if any(not isinstance(i, int) or not 0 <= i < self.num_layers for i in layers):
                bad(f"units.{unit} has a layer index outside 0..{self.num_layers - 1}: {layers}")
            self.units[unit] = sorted(set(layers))
        if self.router_input not in ROUTER_INPUTS:
            bad(f"router_input must be one of {', '.join(ROUTER_INPUTS)}, got {self.router_input!r}")
        if self.family in ("informed", "skipgpt") and not (isinstance(self.router_hidden, int) and self.router_hidden >= 0):
            bad(f"family {self.family} needs an integer router_hidden >= 0, got {self.router_hidden!r}")
        if self.family == "informed" and not (isinstance(self.lff_rank, int) and self.lff_rank > 0):
            bad(f"family informed needs a positive integer lff_rank, got {self.lff_rank!r}")
        if self.pooling not in ("token", "sequence"):
            bad(f"pooling must be 'token' or 'sequence', got {self.pooling!r}")
        if not 0.0 < self.capacity <= 1.0:
            bad(f"capacity must be in (0, 1], got {self.capacity}")
        for name in ("threshold", "decode_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def is_routed(self, layer: int, unit: str) -> bool:
        return layer in self.units[unit]

    @property
    def has_lff(self) -> bool:
        return self.family == "informed"

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "routing config") -> "RoutingConfig":
        if not isinstance(data, dict):
            raise IrexportError(f"{where}: expected a JSON object")
        data = dict(data)
        version = data.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise IrexportError(f"{where}: format_version {version} is not supported (this irexport reads {FORMAT_VERSION})")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise IrexportError(f"{where}: unknown key {unknown[0]!r}")
        missing = sorted(f for f in ("family", "num_layers", "units") if f not in data)
        if missing:
            raise IrexportError(f"{where}: missing key {missing[0]!r}")
        try:
            return cls(**data)
        except TypeError as e:
            raise IrexportError(f"{where}: {e}") from None
        except IrexportError as e:  # validate() names no file; name this one
            raise IrexportError(f"{where}: {str(e).removeprefix('routing config: ')}") from None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "RoutingConfig":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise IrexportError(f"{path}: not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IrexportError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, where=str(path))
