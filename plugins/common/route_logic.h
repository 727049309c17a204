// Per-token routing logic shared by the CUDA kernels and the host build (tested on the CPU).
// Plain types only: no TensorRT, no CUDA runtime types, so the same code serves the plugins,
// the test bindings and the host reference.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define IRX_HD __host__ __device__ __forceinline__
#else
#define IRX_HD inline
#endif

namespace irexport {

// Element types of float tensors, numbered as TensorRT's DataType (kFLOAT 0, kHALF 1, kBF16 7).
enum class Dtype : int32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 7 };

// RouteArgmax: class 0 executes, also on a tie.
IRX_HD float argmaxMargin(float s0, float s1) { return s0 - s1; }

// RouteThreshold: sigmoid(s) - threshold.
IRX_HD float thresholdMargin(float s, float threshold) { return 1.0f / (1.0f + expf(-s)) - threshold; }

// RouteTopK: tokens kept per sequence, k = ceil(valid * capacity) in float32 (as the ONNX body).
IRX_HD int32_t topkCount(int32_t valid, float capacity) { return static_cast<int32_t>(ceilf(static_cast<float>(valid) * capacity)); }

// RouteTopK: the boundary halfway between the k-th and (k+1)-th largest valid score (1-based k);
// when k covers every valid token, halfway between the k-th and k-th - 1.
IRX_HD float topkBoundary(float kth, float next, bool hasNext) { return (kth + (hasNext ? next : kth - 1.0f)) / 2.0f; }

// RouteTopK ranking, as torch.sort(descending=True) orders the reference's scores: a NaN first (it takes a slot),
// then descending. A strict weak order (std::sort's comparator), NaNs equivalent to each other.
IRX_HD bool scoreBefore(float a, float b) { return (a != a && b == b) || a > b; }

// RouteTopK ranking: does score a (position i) rank before score b (position j)? scoreBefore, ties by position.
IRX_HD bool ranksBefore(float a, int32_t i, float b, int32_t j) { return scoreBefore(a, b) || (!scoreBefore(b, a) && i < j); }

// ---- parameter structs of the kernels (device pointers; shapes in elements) ----------------------

struct DecideParams
{
    const void* scores;   // [B, T, C] of dtype
    const int32_t* valid; // [B, T] 0/1 (RouteTopK only; int32: TensorRT plugins take no bool I/O)
    float* margin;        // [B, T]
    int32_t batch, seq, channels;
    Dtype dtype;
    float threshold; // RouteThreshold
    float capacity;  // RouteTopK
};

// RouteIndex and RouteSeqIndex (the same input, a data-dependent output and its size tensor).
struct IndexParams
{
    const int32_t* execute; // [B, T] 0/1 (int32: TensorRT plugins take no bool I/O)
    int64_t* index;         // RouteIndex: [N] rows b*T + t of the executed tokens; RouteSeqIndex: slots [B, Tq], -1 padded
    int32_t* count;         // 0-d: N or Tq, the size tensor of the data-dependent output (int32, as the TensorRT 11.1 headers ask)
    int32_t* workspace;     // int32 scratch of the CUDA kernels (indexWorkspaceSize / seqIndexWorkspaceSize); unused on the host
    int32_t batch, seq;
};

// Row copies: x's leading dimensions are flattened to rows [R, D]; index has `rows` entries, each a row of x or -1.
struct GatherParams
{
    const void* x;        // [R, D]
    const int64_t* index; // [rows]: any shape, flattened
    void* out;            // [rows, D]
    int64_t rows;
    int32_t dim;
    Dtype dtype;
};

struct ScatterAddParams
{
    const void* x;        // [xRows, D]
    const void* y;        // [rows, D]: one row per entry of index
    const int64_t* index; // [rows]: a row of x, or -1 (skipped); the entries >= 0 are distinct
    void* out;            // [xRows, D]: x with y added at the indexed rows
    int64_t xRows, rows;
    int32_t dim;
    Dtype dtype;
};

} // namespace irexport
