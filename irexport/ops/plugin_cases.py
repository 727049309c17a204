"""The routing nodes of real ONNX exports as cases for the plugin harness (plugins/harness): what
TensorRT's ONNX parser hands to the plugin library for each node (op type, plugin version and
namespace, attributes, input and output element types and symbolic shapes). Read from the files, not
from the op descriptions, so the harness keeps checking whatever the exports become.

One case per distinct node signature, in the harness's tab-separated format:

    case  LABEL  OP_TYPE  PLUGIN_VERSION  PLUGIN_NAMESPACE
    attr  NAME  FLOAT|INT|STRING|FLOATS|INTS|STRINGS|<other>  VALUE
    input|output  NAME  ELEMENT_TYPE  DIMS        (DIMS: comma-separated ints or symbols; empty for 0-d; ? unknown)
    end
"""

from __future__ import annotations

from pathlib import Path

import onnx

from .spec import DOMAIN


def _types(graph: onnx.GraphProto) -> dict:
    known = {v.name: v.type for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    for init in graph.initializer:
        known.setdefault(init.name, onnx.helper.make_tensor_type_proto(init.data_type, list(init.dims)))
    return known


def _port(kind: str, name: str, types: dict) -> str:
    if not name:
        return f"{kind}\t\tNONE\t?"
    t = types.get(name)
    if t is None or not t.HasField("tensor_type"):
        return f"{kind}\t{name}\tUNDEFINED\t?"
    tensor = t.tensor_type
    element = onnx.TensorProto.DataType.Name(tensor.elem_type)
    if not tensor.HasField("shape"):
        return f"{kind}\t{name}\t{element}\t?"
    # torch.export writes symbolic expressions as dim names ("Max(0, past_sequence + 1)"): kept whole, commas swapped
    dims = [str(d.dim_value) if d.HasField("dim_value") else "".join(d.dim_param.split()).replace(",", ";") or "?"
            for d in tensor.shape.dim]
    return f"{kind}\t{name}\t{element}\t{','.join(dims)}"


def _attr(a: onnx.AttributeProto) -> str:
    value = onnx.helper.get_attribute_value(a)
    kind = onnx.AttributeProto.AttributeType.Name(a.type)
    if kind == "FLOAT":
        text = format(value, ".9g")
    elif kind == "INT":
        text = str(value)
    elif kind == "STRING":
        text = value.decode("utf-8", "replace")
    elif kind == "FLOATS":
        text = ",".join(format(v, ".9g") for v in value)
    elif kind == "INTS":
        text = ",".join(str(v) for v in value)
    elif kind == "STRINGS":
        text = ",".join(v.decode("utf-8", "replace") for v in value)
    else:
        text = ""  # a type the ONNX parser cannot pass to a plugin; the harness reports it if it is a field
    return f"attr\t{a.name}\t{kind}\t{' '.join(text.split())}"


def _signature(head: str, body: list[str]) -> str:
    """The case without tensor names, symbols renamed in order of appearance: layers that differ only in
    names (u0, u1, ...) share one case."""
    symbols: dict[str, str] = {}
    lines = [head]
    for line in body:
        fields = line.split("\t")
        if fields[0] in ("input", "output"):
            dims = [d if d.lstrip("-").isdigit() or d == "?" else symbols.setdefault(d, f"s{len(symbols)}")
                    for d in fields[3].split(",") if fields[3]]
            fields = [fields[0], "named" if fields[1] else "", fields[2], ",".join(dims)]
        lines.append("\t".join(fields))
    return "\n".join(lines)


def node_cases(model: onnx.ModelProto, source: str) -> dict[str, str]:
    """{signature: case text} for the routing-domain nodes of ``model``; labels are ``source:node``."""
    types = _types(model.graph)
    cases: dict[str, str] = {}
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        attrs = {a.name: a for a in node.attribute}
        version = onnx.helper.get_attribute_value(attrs["plugin_version"]).decode() if "plugin_version" in attrs else "1"
        namespace = onnx.helper.get_attribute_value(attrs["plugin_namespace"]).decode() if "plugin_namespace" in attrs else ""
        body = [_attr(a) for a in node.attribute]
        body += [_port("input", name, types) for name in node.input]
        body += [_port("output", name, types) for name in node.output]
        head = f"{node.op_type}\t{version}\t{namespace}"
        label = f"{source}:{node.name or node.op_type}"
        cases.setdefault(_signature(head, body), "\n".join([f"case\t{label}\t{head}", *body, "end"]))
    return cases


def write_cases(onnx_files, out: Path) -> int:
    """Write the distinct routing-node cases of every file to ``out``; returns how many."""
    cases: dict[str, str] = {}
    for path in onnx_files:
        path = Path(path)
        model = onnx.load(str(path), load_external_data=False)
        for signature, text in node_cases(model, f"{path.parent.name}/{path.name}").items():
            cases.setdefault(signature, text)
    Path(out).write_text("".join(text + "\n" for text in cases.values()))
    return len(cases)
