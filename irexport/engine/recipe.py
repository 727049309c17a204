"""Engine build recipes (``engines/recipes/*.yaml``): parsed and validated without TensorRT.

A recipe names the precision, one range per dynamic axis (batch, prefill sequence, decode cache
length), and the builder's settings. Unknown keys are errors: a typo must not silently fall back to
a default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import IrexportError, one_line
from ..schema import Bool, Int, Obj, Opt, Str, validate

PRECISIONS = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
              "bf16": "bfloat16", "bfloat16": "bfloat16"}
AXES = ("batch", "sequence", "cache")
_RANGE = Obj({"min": Int(1, 1 << 31), "opt": Int(1, 1 << 31), "max": Int(1, 1 << 31)}, closed=True)
SCHEMA = Obj({
    "name": Str(pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]*", what="a plain directory name"),
    "description": Str(),
    "precision": Str(choices=tuple(PRECISIONS)),
    "profile": Obj({axis: _RANGE for axis in AXES}, closed=True),
    "builder_optimization_level": Int(0, 5),
    "timing_cache": Opt(Str(what="a file path (null: no timing cache)")),
    "version_compatible": Bool(),
    "serialize_plugins": Bool(),
    "workspace_mib": Opt(Int(1, 1 << 30)),
}, optional=("name", "description", "precision", "builder_optimization_level", "timing_cache", "version_compatible",
             "serialize_plugins", "workspace_mib"), closed=True)


@dataclass(frozen=True)
class AxisRange:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class Recipe:
    name: str
    precision: str                   # float32 | float16 | bfloat16: must equal the export's dtype
    profile: dict                    # axis -> AxisRange: batch, sequence (prefill tokens), cache (decode past tokens)
    builder_optimization_level: int  # TensorRT 0..5 (3 is TensorRT's default)
    timing_cache: str | None         # reused and updated across builds; relative paths are under the export dir
    version_compatible: bool         # engines that newer TensorRT runtimes of the same major can load
    serialize_plugins: bool          # version-compatible only: the plugin library goes into the engine
    workspace_mib: int | None        # builder workspace limit (None: TensorRT's default, the device memory)
    description: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def load_recipe(path) -> Recipe:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise IrexportError(f"{path}: recipe not found (see engines/recipes/)")
    class StrictLoader(yaml.SafeLoader):
        """yaml.safe_load, except that a key given twice is an error (safe_load keeps the last silently)."""

        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
            twice = [k for i, k in enumerate(keys) if k in keys[:i]]
            if twice:
                raise yaml.constructor.ConstructorError(None, None, f"key {twice[0]!r} given twice", node.start_mark)
            return super().construct_mapping(node, deep=deep)

    try:
        data = yaml.load(path.read_text(), Loader=StrictLoader)  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: bad UTF-8, integers of > 4300 digits
        raise IrexportError(f"{path}: not valid YAML ({one_line(e, 160)})") from None
    return parse_recipe(data, str(path), default_name=path.stem)


def parse_recipe(data, where: str, default_name: str = "engine") -> Recipe:
    if not isinstance(data, dict):
        raise IrexportError(f"{where}: a recipe is a mapping of settings")
    if isinstance(data.get("precision"), str):
        data = {**data, "precision": data["precision"].lower()}  # FP16 as well as fp16
    data = validate(data, SCHEMA, where)
    for axis, r in data["profile"].items():
        if not r["min"] <= r["opt"] <= r["max"]:
            raise IrexportError(f"{where}: profile.{axis} needs min <= opt <= max, got {r['min']}, {r['opt']}, {r['max']}")
    serialize, compatible = data.get("serialize_plugins", False), data.get("version_compatible", False)
    if serialize and not compatible:
        raise IrexportError(f"{where}: serialize_plugins needs version_compatible: true (TensorRT only serializes "
                            "plugin libraries into version-compatible engines)")
    return Recipe(
        name=data.get("name", default_name),
        precision=PRECISIONS[data.get("precision", "fp32")],
        profile={axis: AxisRange(**data["profile"][axis]) for axis in AXES},
        builder_optimization_level=data.get("builder_optimization_level", 3),
        timing_cache=data.get("timing_cache"),
        version_compatible=compatible,
        serialize_plugins=serialize,
        workspace_mib=data.get("workspace_mib"),
        description=data.get("description", ""),
    )
