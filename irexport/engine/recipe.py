"""Engine build recipes (``engines/recipes/*.yaml``): parsed and validated without TensorRT.

A recipe names the precision, one range per dynamic axis (batch, prefill sequence, decode cache
length), the builder's settings, and optionally its target (TensorRT or TensorRT-RTX, ``targets``) and the
RTX GPUs' compute capabilities to build for. Unknown keys are errors: a typo must not silently fall back to
a default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import IrexportError, one_line
from ..resources import recipes_dir
from ..schema import Bool, Int, List, Obj, Opt, Str, validate
from .targets import TARGETS

PRECISIONS = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
              "bf16": "bfloat16", "bfloat16": "bfloat16"}
AXES = ("batch", "sequence", "cache")
# TensorRT-RTX's ComputeCapability values (SM75 ... SM121 in 1.7; 7.5 for float16 only); a release without one
# refuses it at build time
COMPUTE_CAPABILITIES = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
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
    "target": Opt(Str(choices=tuple(TARGETS))),
    "compute_capabilities": Opt(List(Str(choices=COMPUTE_CAPABILITIES), min_len=1, max_len=len(COMPUTE_CAPABILITIES))),
}, optional=("name", "description", "precision", "builder_optimization_level", "timing_cache", "version_compatible",
             "serialize_plugins", "workspace_mib", "target", "compute_capabilities"), closed=True)


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
    target: str | None = None        # tensorrt | tensorrt-rtx (None: --target, else the one installed)
    compute_capabilities: tuple | None = None  # TensorRT-RTX: the RTX GPUs to build for ("8.6", ...; None: its default)
    description: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def shipped_recipes() -> list[str]:
    """The names of the recipes irexport ships (engines/recipes/, package data in a wheel)."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def find_recipe(path) -> Path:
    """A recipe file, or a shipped recipe by its bare name ("demo": recipes_dir()/demo.yaml), so that a wheel
    install, which has no engines/recipes/ to point at, builds with them too. Anything that looks like a path
    (a separator, a dot: "./demo.yaml", "demo.yaml") is a path only: an absent file is never swapped for a
    shipped recipe."""
    text = str(path)
    if Path(text).is_file() or not text.replace("-", "").replace("_", "").isalnum():
        return Path(text)
    shipped = recipes_dir() / f"{text}.yaml"
    return shipped if shipped.is_file() else Path(text)


def load_recipe(path) -> Recipe:
    import yaml

    path = find_recipe(path)
    if not path.is_file():
        raise IrexportError(f"{path}: recipe not found (a YAML file, or a shipped recipe: {', '.join(shipped_recipes())} "
                            f"in {recipes_dir()})")
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
    if isinstance(data.get("compute_capabilities"), list):  # 8.6 as well as "8.6" (YAML reads 8.6 as a number)
        data = {**data, "compute_capabilities": [f"{c:.1f}" if isinstance(c, float) and not isinstance(c, bool) else c
                                                 for c in data["compute_capabilities"]]}
    data = validate(data, SCHEMA, where)
    capabilities = data.get("compute_capabilities")
    if capabilities is not None and data.get("target") == "tensorrt":
        raise IrexportError(f"{where}: compute_capabilities is a TensorRT-RTX setting (TensorRT builds for the GPU it "
                            "runs on); drop it or set target: tensorrt-rtx")
    if capabilities is not None and len(set(capabilities)) != len(capabilities):
        raise IrexportError(f"{where}: compute_capabilities names {capabilities} with a repeat")
    precision = PRECISIONS[data.get("precision", "fp32")]
    if capabilities is not None and "7.5" in capabilities and precision != "float16":
        raise IrexportError(f"{where}: compute capability 7.5 (Turing) takes float16 engines only: TensorRT-RTX "
                            f"compiles no float32 matrix products and no bfloat16 for it, and this recipe is {precision}")
    for axis, r in data["profile"].items():
        if not r["min"] <= r["opt"] <= r["max"]:
            raise IrexportError(f"{where}: profile.{axis} needs min <= opt <= max, got {r['min']}, {r['opt']}, {r['max']}")
    serialize, compatible = data.get("serialize_plugins", False), data.get("version_compatible", False)
    if serialize and not compatible:
        raise IrexportError(f"{where}: serialize_plugins needs version_compatible: true (TensorRT only serializes "
                            "plugin libraries into version-compatible engines)")
    return Recipe(
        name=data.get("name", default_name),
        precision=precision,
        profile={axis: AxisRange(**data["profile"][axis]) for axis in AXES},
        builder_optimization_level=data.get("builder_optimization_level", 3),
        timing_cache=data.get("timing_cache"),
        version_compatible=compatible,
        serialize_plugins=serialize,
        workspace_mib=data.get("workspace_mib"),
        target=data.get("target"),
        compute_capabilities=tuple(capabilities) if capabilities else None,
        description=data.get("description", ""),
    )
