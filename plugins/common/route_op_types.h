// The types of the routing ops' table: route_ops.h, generated from irexport/ops/spec.py, holds the data.
#pragma once

#include <cstdint>

namespace irexport::ops {

struct OpInfo
{
    char const* name;    // ONNX op type and TensorRT plugin name
    char const* version; // the op's version: a node's plugin_version
    int32_t nbInputs;
    int32_t nbOutputs; // a size tensor (0-d int32) is an output of its own
    char const* field; // the op's one float attribute, or nullptr
    float low, high;   // the attribute's accepted range: [low, high], or (low, high] when lowExclusive
    bool lowExclusive;
    bool dataDependentShape; // its first output's shape depends on the data; the second output is its size
};

// The attribute's value in the op's accepted range (every implementation refuses the others the same way).
constexpr bool inRange(OpInfo const& op, float value) { return (op.lowExclusive ? value > op.low : value >= op.low) && value <= op.high; }

// The element types an input or output takes. kFloatAny: float32, float16 or bfloat16, one type for all of an op's
// kFloatAny ports (the first one's); kFloat32: float32 whatever the inputs; kNone: past the op's last port.
// irexport/ops/codegen.py's PORT_TYPES names these for each type class of spec.py.
enum class PortType : int32_t { kNone, kFloatAny, kFloat32, kInt32, kInt64 };

} // namespace irexport::ops
