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

} // namespace irexport::ops
