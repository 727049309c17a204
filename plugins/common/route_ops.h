// Generated from irexport/ops/spec.py by `python -m irexport.ops.codegen`: do not edit.
// The routing ops' table for every C++ implementation (TensorRT plugins, ONNX Runtime kernels).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "route_op_types.h"

namespace irexport::ops {

constexpr char const* kDomain = "irexport";
constexpr char const* kNamespace = "irexport"; // the TensorRT plugins' namespace

enum class Op : int32_t { kArgmax, kThreshold, kTopK, kIndex, kSeqIndex, kGather, kScatterAdd, kCount };

constexpr std::array<OpInfo, static_cast<size_t>(Op::kCount)> kOps{{
        {"RouteArgmax", "1", 1, 1, nullptr, 0.0f, 0.0f, false, false},
        {"RouteThreshold", "1", 1, 1, "threshold", 0.0f, 1.0f, false, false},
        {"RouteTopK", "1", 2, 1, "capacity", 0.0f, 1.0f, true, false},
        {"RouteIndex", "2", 1, 2, nullptr, 0.0f, 0.0f, false, true},
        {"RouteSeqIndex", "1", 1, 2, nullptr, 0.0f, 0.0f, false, true},
        {"RouteGather", "2", 2, 1, nullptr, 0.0f, 0.0f, false, false},
        {"RouteScatterAdd", "2", 3, 1, nullptr, 0.0f, 0.0f, false, false},
}};

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
