// Generated from irexport/ops/spec.py by `python -m irexport.ops.codegen`: do not edit.
// The routing ops' table for every C++ implementation (TensorRT plugins, ONNX Runtime kernels).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace irexport::ops {

constexpr char const* kDomain = "irexport";
constexpr char const* kNamespace = "irexport"; // the TensorRT plugins' namespace

enum class Op : int32_t { kArgmax, kThreshold, kTopK, kIndex, kSeqIndex, kGather, kScatterAdd, kCount };

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

constexpr std::array<OpInfo, static_cast<size_t>(Op::kCount)> kOps{{
        {"RouteArgmax", "1", 1, 1, nullptr, 0.0f, 0.0f, false, false},
        {"RouteThreshold", "1", 1, 1, "threshold", 0.0f, 1.0f, false, false},
        {"RouteTopK", "1", 2, 1, "capacity", 0.0f, 1.0f, true, false},
        {"RouteIndex", "2", 1, 2, nullptr, 0.0f, 0.0f, false, true},
        {"RouteSeqIndex", "1", 1, 2, nullptr, 0.0f, 0.0f, false, true},
        {"RouteGather", "2", 2, 1, nullptr, 0.0f, 0.0f, false, false},
        {"RouteScatterAdd", "2", 3, 1, nullptr, 0.0f, 0.0f, false, false},
}};

// The element types an input or output takes. kFloatAny: float32, float16 or bfloat16, one type for all of an op's
// kFloatAny ports (the first one's); kFloat32: float32 whatever the inputs; kNone: past the op's last port.
enum class PortType : int32_t { kNone, kFloatAny, kFloat32, kInt32, kInt64 };

constexpr int32_t kMaxInputs = 3;
constexpr int32_t kMaxOutputs = 2;

struct PortTypes
{
    PortType inputs[kMaxInputs];
    PortType outputs[kMaxOutputs];
};

constexpr std::array<PortTypes, static_cast<size_t>(Op::kCount)> kPortTypes{{
        {{PortType::kFloatAny}, {PortType::kFloat32}},                                         // RouteArgmax
        {{PortType::kFloatAny}, {PortType::kFloat32}},                                         // RouteThreshold
        {{PortType::kFloatAny, PortType::kInt32}, {PortType::kFloat32}},                       // RouteTopK
        {{PortType::kInt32}, {PortType::kInt64, PortType::kInt32}},                            // RouteIndex
        {{PortType::kInt32}, {PortType::kInt64, PortType::kInt32}},                            // RouteSeqIndex
        {{PortType::kFloatAny, PortType::kInt64}, {PortType::kFloatAny}},                      // RouteGather
        {{PortType::kFloatAny, PortType::kFloatAny, PortType::kInt64}, {PortType::kFloatAny}}, // RouteScatterAdd
}};

} // namespace irexport::ops
