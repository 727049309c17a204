"""Engine build recipes (``engines/recipes/*.yaml``): parsed and validated without TensorRT.

A recipe names the precision, one range per dynamic axis (batch, prefill sequence, decode cache
length), and the builder's settings. Unknown keys are errors: a typo must not silently fall back to
a default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import IrexportError

PRECISIONS = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
              "bf16": "bfloat16", "bfloat16": "bfloat16"}
AXES = ("batch", "sequence", "cache")
KEYS = {"name", "description", "precision", "profile", "builder_optimization_level", "timing_cache",
        "version_compatible", "serialize_plugins", "workspace_mib"}


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
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0]
        raise IrexportError(f"{path}: not valid YAML ({first})") from None
    return parse_recipe(data, str(path), default_name=path.stem)


def parse_recipe(data, where: str, default_name: str = "engine") -> Recipe:
    if not isinstance(data, dict):
        raise IrexportError(f"{where}: a recipe is a mapping of settings")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise IrexportError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    precision = str(data.get("precision", "fp32")).lower()
    if precision not in PRECISIONS:
        raise IrexportError(f"{where}: precision {data.get('precision')!r} is not one of fp32, fp16, bf16")
    if "profile" not in data:
        raise IrexportError(f"{where}: missing key 'profile' (ranges for {', '.join(AXES)})")
    level = _integer(data.get("builder_optimization_level", 3), where, "builder_optimization_level", 0, 5)
    workspace = data.get("workspace_mib")
    serialize = _boolean(data.get("serialize_plugins", False), where, "serialize_plugins")
    compatible = _boolean(data.get("version_compatible", False), where, "version_compatible")
    if serialize and not compatible:
        raise IrexportError(f"{where}: serialize_plugins needs version_compatible: true (TensorRT only serializes "
                            "plugin libraries into version-compatible engines)")
    name = str(data.get("name", default_name))
    if not name or "/" in name or name.startswith("."):
        raise IrexportError(f"{where}: name {name!r} must be a plain directory name")
    return Recipe(
        name=name,
        precision=PRECISIONS[precision],
        profile=_profile(data["profile"], where),
        builder_optimization_level=level,
        timing_cache=None if data.get("timing_cache") is None or data["timing_cache"] is False else str(data["timing_cache"]),
        version_compatible=compatible,
        serialize_plugins=serialize,
        workspace_mib=None if workspace is None else _integer(workspace, where, "workspace_mib", 1, 1 << 30),
        description=str(data.get("description", "")),
    )


def _profile(data, where: str) -> dict:
    if not isinstance(data, dict):
        raise IrexportError(f"{where}: profile must map {', '.join(AXES)} to {{min, opt, max}}")
    unknown = sorted(set(data) - set(AXES))
    if unknown:
        raise IrexportError(f"{where}: profile: unknown axis {unknown[0]!r} (known: {', '.join(AXES)})")
    ranges = {}
    for axis in AXES:
        if axis not in data:
            raise IrexportError(f"{where}: profile: missing axis {axis!r}")
        r = data[axis]
        if not isinstance(r, dict) or set(r) != {"min", "opt", "max"}:
            raise IrexportError(f"{where}: profile.{axis} must have exactly min, opt and max")
        lo, opt, hi = (_integer(r[k], where, f"profile.{axis}.{k}", 1, 1 << 31) for k in ("min", "opt", "max"))
        if not lo <= opt <= hi:
            raise IrexportError(f"{where}: profile.{axis} needs min <= opt <= max, got {lo}, {opt}, {hi}")
        ranges[axis] = AxisRange(lo, opt, hi)
    return ranges


def _integer(value, where: str, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise IrexportError(f"{where}: {key} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _boolean(value, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise IrexportError(f"{where}: {key} must be true or false, got {value!r}")
    return value
