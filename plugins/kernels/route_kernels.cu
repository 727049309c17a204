#include "route_kernels.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

namespace irexport::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ float toFloat(T v)
{
    return static_cast<float>(v);
}
template <>
__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}
template <>
__device__ __forceinline__ float toFloat(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v)
{
    return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half fromFloat(float v)
{
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat(float v)
{
    return __float2bfloat16_rn(v);
}

// Calls f.template operator()<T>() with T the element type of dtype.
template <typename F>
cudaError_t dispatch(Dtype dtype, F f)
{
    switch (dtype)
    {
    case Dtype::kFloat32: return f(float{});
    case Dtype::kFloat16: return f(__half{});
    case Dtype::kBFloat16: return f(__nv_bfloat16{});
    }
    return cudaErrorInvalidValue;
}

int blocksFor(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

template <typename T>
__global__ void argmaxKernel(DecideParams p)
{
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(p.batch) * p.seq)
        return;
    auto const* s = static_cast<T const*>(p.scores);
    p.margin[i] = argmaxMargin(toFloat(s[2 * i]), toFloat(s[2 * i + 1]));
}

template <typename T>
__global__ void thresholdKernel(DecideParams p)
{
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(p.batch) * p.seq)
        return;
    p.margin[i] = thresholdMargin(toFloat(static_cast<T const*>(p.scores)[i * p.channels]), p.threshold);
}

// One block per sequence: count the valid tokens, rank every valid token, take the k-th and (k+1)-th.
template <typename T>
__global__ void topkKernel(DecideParams p)
{
    int32_t const b = blockIdx.x;
    auto const* s = static_cast<T const*>(p.scores) + int64_t(b) * p.seq * p.channels;
    int32_t const* valid = p.valid + int64_t(b) * p.seq;
    __shared__ int32_t nValid;
    __shared__ float kth, next;
    if (threadIdx.x == 0)
    {
        nValid = 0;
        kth = next = -INFINITY;
    }
    __syncthreads();
    int32_t local = 0;
    for (int32_t t = threadIdx.x; t < p.seq; t += blockDim.x)
        local += valid[t] != 0;
    atomicAdd(&nValid, local);
    __syncthreads();
    int32_t const k = topkCount(nValid, p.capacity);
    for (int32_t i = threadIdx.x; i < p.seq; i += blockDim.x)
    {
        if (!valid[i])
            continue;
        float const si = toFloat(s[int64_t(i) * p.channels]);
        int32_t rank = 0;
        for (int32_t j = 0; j < p.seq; ++j)
            rank += valid[j] && ranksBefore(toFloat(s[int64_t(j) * p.channels]), j, si, i);
        if (rank == k - 1)
            kth = si;
        if (rank == k)
            next = si;
    }
    __syncthreads();
    float const boundary = topkBoundary(kth, next, k < nValid);
    for (int32_t t = threadIdx.x; t < p.seq; t += blockDim.x)
        p.margin[int64_t(b) * p.seq + t] = toFloat(s[int64_t(t) * p.channels]) - boundary;
}

// Exclusive prefix sum of value over a kThreads block (warp shuffles, then the warps' sums); total is the
// block's sum. Every thread of the block must call it.
__device__ int32_t blockExclusiveSum(int32_t value, int32_t& total)
{
    __shared__ int32_t warpSums[kThreads / 32];
    int32_t const lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int32_t inclusive = value;
    for (int32_t offset = 1; offset < 32; offset <<= 1)
    {
        int32_t const up = __shfl_up_sync(0xffffffffu, inclusive, offset);
        inclusive += lane >= offset ? up : 0;
    }
    if (lane == 31)
        warpSums[warp] = inclusive;
    __syncthreads();
    int32_t before = 0;
    total = 0;
    for (int32_t w = 0; w < kThreads / 32; ++w)
    {
        before += w < warp ? warpSums[w] : 0;
        total += warpSums[w];
    }
    __syncthreads(); // warpSums is reused by the next call
    return before + inclusive - value;
}

// RouteIndex works on tiles of kTile tokens: enough blocks to fill the GPU at prefill sizes, and a decode
// step (B * T = B tokens, up to kTile) fits one tile, so one launch.
constexpr int32_t kTile = 4 * kThreads;

int64_t tilesFor(int64_t tokens) { return (tokens + kTile - 1) / kTile; }

// RouteIndex pass 1 (more than one tile): each block counts the executed tokens of its tile.
__global__ void indexCountKernel(IndexParams p)
{
    int64_t const n = int64_t(p.batch) * p.seq, base = int64_t(blockIdx.x) * kTile;
    int32_t local = 0;
    for (int64_t i = base + threadIdx.x; i < base + kTile && i < n; i += kThreads)
        local += p.execute[i] != 0;
    int32_t total;
    blockExclusiveSum(local, total);
    if (threadIdx.x == 0)
        p.workspace[blockIdx.x] = total;
}

// One block: out = the exclusive prefix sum of in[0, n) (in place allowed), in chunks of kThreads; writes
// the sum to *total and the largest value to *maximum (either may be null).
__global__ void exclusiveScanKernel(int32_t const* in, int32_t* out, int32_t n, int32_t* total, int32_t* maximum)
{
    __shared__ int32_t carry, largest;
    if (threadIdx.x == 0)
        carry = largest = 0;
    __syncthreads();
    for (int32_t base = 0; base < n; base += kThreads)
    {
        int32_t const i = base + threadIdx.x;
        int32_t const value = i < n ? in[i] : 0;
        int32_t chunk;
        int32_t const before = blockExclusiveSum(value, chunk);
        if (i < n)
            out[i] = carry + before;
        atomicMax(&largest, value);
        __syncthreads(); // every thread has read carry
        if (threadIdx.x == 0)
            carry += chunk;
        __syncthreads();
    }
    if (threadIdx.x == 0 && total)
        *total = carry;
    if (threadIdx.x == 0 && maximum)
        *maximum = largest;
}

// RouteIndex pass 3: each block scans its tile in rounds of kThreads tokens and writes the executed rows
// from its tile's offset on. With a single tile there is no offset to read, and the block writes N itself.
__global__ void indexWriteKernel(IndexParams p)
{
    int64_t const n = int64_t(p.batch) * p.seq, base = int64_t(blockIdx.x) * kTile;
    int64_t offset = gridDim.x == 1 ? 0 : p.workspace[blockIdx.x];
    for (int64_t start = base; start < base + kTile && start < n; start += kThreads) // uniform over the block
    {
        int64_t const i = start + threadIdx.x;
        int32_t const flag = i < n && p.execute[i] != 0;
        int32_t total;
        int32_t const before = blockExclusiveSum(flag, total);
        if (flag)
            p.index[offset + before] = i; // the token's row b*T + t
        offset += total;
    }
    if (gridDim.x == 1 && threadIdx.x == 0)
        *p.count = static_cast<int32_t>(offset);
}

// RouteSeqIndex pass 1: one block per sequence counts its executed tokens.
__global__ void seqCountKernel(IndexParams p)
{
    int32_t const* row = p.execute + int64_t(blockIdx.x) * p.seq;
    int32_t local = 0;
    for (int32_t t = threadIdx.x; t < p.seq; t += kThreads)
        local += row[t] != 0;
    int32_t total;
    blockExclusiveSum(local, total);
    if (threadIdx.x == 0)
        p.workspace[blockIdx.x] = total;
}

// RouteSeqIndex pass 3, launched over the upper bound B * T: reads Tq on the device, so no host round trip.
__global__ void seqWriteKernel(IndexParams p)
{
    int64_t const tq = *p.count;
    int64_t const i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(p.batch) * tq)
        return;
    int64_t const b = i / tq, j = i % tq; // i < B * tq, so tq > 0
    int32_t const* counts = p.workspace;
    int32_t const* first = p.workspace + p.batch;
    p.index[i] = j < counts[b] ? first[b] + j : -1;
}

// Row kernels: one block per index entry, 16-byte vectors when the row's bytes and the pointers allow it.
// kUnroll vectors per thread are loaded before any is stored, so that a few blocks per SM keep enough
// loads in flight to cover the memory latency.
constexpr int32_t kUnroll = 4;

template <typename T>
__global__ void gatherKernel(GatherParams p, bool vectors)
{
    int64_t const r = blockIdx.x;
    int64_t const src = p.index[r];
    T* out = static_cast<T*>(p.out) + r * p.dim;
    T const* in = src < 0 ? nullptr : static_cast<T const*>(p.x) + src * p.dim;
    if (!vectors)
    {
        for (int32_t d = threadIdx.x; d < p.dim; d += blockDim.x)
            out[d] = in ? in[d] : fromFloat<T>(0.0f);
        return;
    }
    int32_t const n = p.dim * sizeof(T) / sizeof(uint4);
    auto* __restrict__ o = reinterpret_cast<uint4*>(out);
    auto const* __restrict__ v = reinterpret_cast<uint4 const*>(in);
    for (int32_t base = threadIdx.x; base < n; base += kUnroll * blockDim.x)
    {
        uint4 chunk[kUnroll];
#pragma unroll
        for (int32_t k = 0; k < kUnroll; ++k)
        {
            int32_t const i = base + k * blockDim.x;
            chunk[k] = v && i < n ? v[i] : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int32_t k = 0; k < kUnroll; ++k)
            if (base + k * blockDim.x < n)
                o[base + k * blockDim.x] = chunk[k];
    }
}

// a + b element-wise on the T elements of two 16-byte vectors, in float32, rounded once.
template <typename T>
__device__ __forceinline__ uint4 addVectors(uint4 a, uint4 b)
{
    T* x = reinterpret_cast<T*>(&a);
    T const* y = reinterpret_cast<T const*>(&b);
#pragma unroll
    for (int32_t e = 0; e < int32_t(sizeof(uint4) / sizeof(T)); ++e)
        x[e] = fromFloat<T>(toFloat(x[e]) + toFloat(y[e]));
    return a;
}

// out already holds x; adds row r of y to row index[r] of out (the entries >= 0 are distinct: no atomics).
template <typename T>
__global__ void scatterAddKernel(ScatterAddParams p, bool vectors)
{
    int64_t const r = blockIdx.x;
    int64_t const dst = p.index[r];
    if (dst < 0)
        return;
    T const* y = static_cast<T const*>(p.y) + r * p.dim;
    T* out = static_cast<T*>(p.out) + dst * p.dim;
    if (!vectors)
    {
        for (int32_t d = threadIdx.x; d < p.dim; d += blockDim.x)
            out[d] = fromFloat<T>(toFloat(out[d]) + toFloat(y[d]));
        return;
    }
    int32_t const n = p.dim * sizeof(T) / sizeof(uint4);
    auto* __restrict__ o = reinterpret_cast<uint4*>(out);
    auto const* __restrict__ v = reinterpret_cast<uint4 const*>(y);
    for (int32_t base = threadIdx.x; base < n; base += kUnroll * blockDim.x)
    {
        uint4 a[kUnroll], b[kUnroll];
#pragma unroll
        for (int32_t k = 0; k < kUnroll; ++k)
        {
            int32_t const i = base + k * blockDim.x;
            if (i < n)
            {
                a[k] = o[i];
                b[k] = v[i];
            }
        }
#pragma unroll
        for (int32_t k = 0; k < kUnroll; ++k)
            if (base + k * blockDim.x < n)
                o[base + k * blockDim.x] = addVectors<T>(a[k], b[k]);
    }
}

// Whether a row kernel may use 16-byte vectors: whole vectors per row, and every row 16-byte aligned.
bool vectorRows(int32_t dim, size_t elementSize, std::initializer_list<void const*> pointers)
{
    bool ok = dim * elementSize % sizeof(uint4) == 0;
    for (void const* q : pointers)
        ok &= reinterpret_cast<uintptr_t>(q) % sizeof(uint4) == 0;
    return ok;
}

// Threads per row: a warp or more, up to 128, for the row's vectors (or elements).
int rowThreads(int32_t units) { return std::min(128, std::max(32, (units + 31) / 32 * 32)); }

} // namespace

cudaError_t argmax(DecideParams const& p, cudaStream_t stream)
{
    int64_t const n = int64_t(p.batch) * p.seq;
    if (n == 0)
        return cudaSuccess;
    return dispatch(p.dtype, [&](auto tag) {
        argmaxKernel<decltype(tag)><<<blocksFor(n), kThreads, 0, stream>>>(p);
        return cudaGetLastError();
    });
}

cudaError_t threshold(DecideParams const& p, cudaStream_t stream)
{
    int64_t const n = int64_t(p.batch) * p.seq;
    if (n == 0)
        return cudaSuccess;
    return dispatch(p.dtype, [&](auto tag) {
        thresholdKernel<decltype(tag)><<<blocksFor(n), kThreads, 0, stream>>>(p);
        return cudaGetLastError();
    });
}

cudaError_t topk(DecideParams const& p, cudaStream_t stream)
{
    if (p.batch == 0 || p.seq == 0)
        return cudaSuccess;
    return dispatch(p.dtype, [&](auto tag) {
        topkKernel<decltype(tag)><<<p.batch, kThreads, 0, stream>>>(p);
        return cudaGetLastError();
    });
}

size_t indexWorkspaceSize(int32_t batch, int32_t seq) { return sizeof(int32_t) * tilesFor(int64_t(batch) * seq); }

cudaError_t index(IndexParams const& p, cudaStream_t stream)
{
    int64_t const n = int64_t(p.batch) * p.seq;
    if (n == 0)
        return cudaMemsetAsync(p.count, 0, sizeof(int32_t), stream);
    int32_t const tiles = static_cast<int32_t>(tilesFor(n));
    if (tiles > 1)
    {
        indexCountKernel<<<tiles, kThreads, 0, stream>>>(p);
        exclusiveScanKernel<<<1, kThreads, 0, stream>>>(p.workspace, p.workspace, tiles, p.count, nullptr);
    }
    indexWriteKernel<<<tiles, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

size_t seqIndexWorkspaceSize(int32_t batch, int32_t /*seq*/) { return sizeof(int32_t) * 2 * size_t(batch); }

cudaError_t seqIndex(IndexParams const& p, cudaStream_t stream)
{
    if (p.batch == 0 || p.seq == 0)
        return cudaMemsetAsync(p.count, 0, sizeof(int32_t), stream);
    int32_t* counts = p.workspace;
    seqCountKernel<<<p.batch, kThreads, 0, stream>>>(p);
    exclusiveScanKernel<<<1, kThreads, 0, stream>>>(counts, counts + p.batch, p.batch, nullptr, p.count);
    seqWriteKernel<<<blocksFor(int64_t(p.batch) * p.seq), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

cudaError_t gather(GatherParams const& p, cudaStream_t stream)
{
    if (p.rows == 0 || p.dim == 0)
        return cudaSuccess;
    return dispatch(p.dtype, [&](auto tag) {
        using T = decltype(tag);
        bool const vectors = vectorRows(p.dim, sizeof(T), {p.x, p.out});
        int const threads = rowThreads(vectors ? p.dim * int32_t(sizeof(T)) / int32_t(sizeof(uint4)) : p.dim);
        gatherKernel<T><<<static_cast<unsigned>(p.rows), threads, 0, stream>>>(p, vectors);
        return cudaGetLastError();
    });
}

cudaError_t scatterAdd(ScatterAddParams const& p, cudaStream_t stream)
{
    size_t const bytes = size_t(p.xRows) * p.dim * (p.dtype == Dtype::kFloat32 ? 4 : 2);
    cudaError_t err = p.out == p.x || bytes == 0 ? cudaSuccess : cudaMemcpyAsync(p.out, p.x, bytes, cudaMemcpyDeviceToDevice, stream);
    if (err != cudaSuccess || p.rows == 0 || p.dim == 0)
        return err;
    return dispatch(p.dtype, [&](auto tag) {
        using T = decltype(tag);
        bool const vectors = vectorRows(p.dim, sizeof(T), {p.y, p.out});
        int const threads = rowThreads(vectors ? p.dim * int32_t(sizeof(T)) / int32_t(sizeof(uint4)) : p.dim);
        scatterAddKernel<T><<<static_cast<unsigned>(p.rows), threads, 0, stream>>>(p, vectors);
        return cudaGetLastError();
    });
}

} // namespace irexport::cuda
