"""Files generated from the op descriptions (``spec.py``), so that each fact about an op is written once:

  plugins/common/route_ops.h   the op table the C++ implementations include (names, versions, input and output
                               counts, the attribute and its accepted range, each input's and output's type class;
                               its types are declared in the hand-written route_op_types.h)
  docs/ops.md                  the ops' reference page

``python -m irexport.ops.codegen`` rewrites them; ``--check`` exits 1 naming the stale ones (a test runs it in CI).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import IrexportError
from ..resources import checkout
from .spec import DOMAIN, FLOATS, OPS, PLUGIN_NAMESPACE, OpSpec, Port

ROOT = checkout()  # the files it rewrites are a checkout's (None: installed from a wheel)
HEADER = Path("plugins/common/route_ops.h")
DOCS = Path("docs/ops.md")
GENERATED = "Generated from irexport/ops/spec.py by `python -m irexport.ops.codegen`: do not edit"


def enumerator(spec: OpSpec) -> str:
    """RouteArgmax -> kArgmax."""
    return "k" + spec.name.removeprefix("Route")


def _float(x: float) -> str:
    return f"{float(x)!r}f"


# a port's types (spec.Port.types) -> its PortType enumerator in the C++ table; kNone (0) fills the slots past an
# op's last input or output. A new type class needs a row here, an enumerator in plugins/common/route_op_types.h
# and a case in each C++ switch over PortType.
PORT_TYPES = {
    FLOATS: "kFloatAny",
    ("tensor(float)",): "kFloat32",
    ("tensor(int32)",): "kInt32",
    ("tensor(int64)",): "kInt64",
}


def port_type(spec: OpSpec, port: Port) -> str:
    if port.types not in PORT_TYPES:
        raise ValueError(f"{spec.name}.{port.name}: types {port.types} have no PortType (codegen.PORT_TYPES)")
    return "PortType::" + PORT_TYPES[port.types]


def _port_type_rows() -> list[str]:
    rows = {}
    for spec in OPS.values():
        if any(p.types == FLOATS for p in spec.outputs) and not any(p.types == FLOATS for p in spec.inputs):
            raise ValueError(f"{spec.name}: a float output of any float type takes its type from a float input; it has none")
        inputs = ", ".join(port_type(spec, p) for p in spec.inputs)
        outputs = ", ".join(port_type(spec, p) for p in spec.outputs)
        rows[spec.name] = f"        {{{{{inputs}}}, {{{outputs}}}}},"
    width = max(map(len, rows.values()))
    return [f"{row:<{width}} // {name}" for name, row in rows.items()]  # the comments aligned, as clang-format does


def cpp_header() -> str:
    rows = []
    for spec in OPS.values():
        if len(spec.attributes) > 1:
            raise ValueError(f"{spec.name}: the C++ table holds one attribute per op")
        attr = spec.attributes[0] if spec.attributes else None
        field = f'"{attr.name}"' if attr else "nullptr"
        low, high, exclusive = (attr.low, attr.high, attr.low_exclusive) if attr else (0.0, 0.0, False)
        rows.append(f'        {{"{spec.name}", "{spec.plugin_version}", {len(spec.inputs)}, {len(spec.outputs)}, {field}, '
                    f'{_float(low)}, {_float(high)}, {str(exclusive).lower()}, {str(spec.data_dependent_shape).lower()}}},')
    enumerators = ", ".join(enumerator(spec) for spec in OPS.values())
    max_inputs = max(len(spec.inputs) for spec in OPS.values())
    max_outputs = max(len(spec.outputs) for spec in OPS.values())
    return f"""// {GENERATED}.
// The routing ops' table for every C++ implementation (TensorRT plugins, ONNX Runtime kernels).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "route_op_types.h"

namespace irexport::ops {{

constexpr char const* kDomain = "{DOMAIN}";
constexpr char const* kNamespace = "{PLUGIN_NAMESPACE}"; // the TensorRT plugins' namespace

enum class Op : int32_t {{ {enumerators}, kCount }};

constexpr std::array<OpInfo, static_cast<size_t>(Op::kCount)> kOps{{{{
{chr(10).join(rows)}
}}}};

constexpr int32_t kMaxInputs = {max_inputs};
constexpr int32_t kMaxOutputs = {max_outputs};

struct PortTypes
{{
    PortType inputs[kMaxInputs];
    PortType outputs[kMaxOutputs];
}};

constexpr std::array<PortTypes, static_cast<size_t>(Op::kCount)> kPortTypes{{{{
{chr(10).join(_port_type_rows())}
}}}};

}} // namespace irexport::ops
"""


def _types(port) -> str:
    return ", ".join(t.removeprefix("tensor(").removesuffix(")") for t in port.types)


def ops_markdown() -> str:
    lines = [f"<!-- {GENERATED}. -->", "", "# The routing ops", "",
             f"Every routing node is a custom op in the ONNX domain `{DOMAIN}` that carries a portable function body "
             "of standard ONNX ops (what ONNX Runtime runs, and TensorRT inlines, without irexport's libraries), and "
             f"the attributes TensorRT's parser uses to find the plugin that replaces it: `plugin_namespace` "
             f"(`{PLUGIN_NAMESPACE}`) and `plugin_version` (the op's version). Masks cross the op boundary as int32 "
             "(1 = true): TensorRT plugins take no bool or uint8 tensors. The ports typed float, float16, bfloat16 take any of "
             "the three, one type for all of an op's such ports (its first's).", "",
             "| op | version | inputs | outputs | attribute (range) | data-dependent shape |", "|---|---|---|---|---|---|"]
    for spec in OPS.values():
        inputs = ", ".join(p.name for p in spec.inputs)
        outputs = ", ".join(p.name for p in spec.outputs)
        attrs = ", ".join(f"`{a.name}` {a.range_text}" for a in spec.attributes) or "none"
        lines.append(f"| [`{spec.name}`](#{spec.name.lower()}) | {spec.version} | {inputs} | {outputs} | {attrs} | "
                     f"{'yes' if spec.data_dependent_shape else 'no'} |")
    for spec in OPS.values():
        lines += ["", f"## {spec.name}", "", spec.doc, "",
                  f"Domain `{spec.domain}`, version {spec.version}; torch op `torch.ops.irexport.{spec.torch_name}`.", "",
                  "| | name | types | meaning |", "|---|---|---|---|"]
        lines += [f"| input {i} | `{p.name}` | {_types(p)} | {p.doc} |" for i, p in enumerate(spec.inputs)]
        lines += [f"| output {i} | `{p.name}` | {_types(p)} | {p.doc} |" for i, p in enumerate(spec.outputs)]
        lines += [f"| attribute | `{a.name}` | {a.type}, {a.range_text} | {a.doc} |" for a in spec.attributes]
    return "\n".join(lines) + "\n"


FILES = {HEADER: cpp_header, DOCS: ops_markdown}


def stale(root: Path | None = ROOT) -> list[Path]:
    """The generated files whose contents differ from what spec.py generates now (of a checkout: a wheel has none)."""
    if root is None:
        raise IrexportError("the generated files belong to an irexport checkout; this irexport is installed from a wheel")
    return [path for path, render in FILES.items()
            if not (root / path).is_file() or (root / path).read_text() != render()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irexport.ops.codegen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale, writing nothing")
    args = parser.parse_args(argv)
    if ROOT is None:
        parser.error("it rewrites the files of an irexport checkout, and this irexport is installed from a wheel")
    outdated = stale()
    if args.check:
        for path in outdated:
            print(f"{path}: stale; run python -m irexport.ops.codegen", file=sys.stderr)
        return 1 if outdated else 0
    for path in outdated:
        (ROOT / path).write_text(FILES[path]())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
