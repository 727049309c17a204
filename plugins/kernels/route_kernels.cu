#include "route_kernels.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace irexport::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ float toFloat(T v) { return static_cast<float>(v); }
template <>
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T fromFloat(float v) { return static_cast<T>(v); }
template <>
__device__ __forceinline__ __half fromFloat(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat(float v) { return __float2bfloat16_rn(v); }

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

// One block per sequence: block-wide scan of the execute flags in chunks of blockDim.
__global__ void indexPackKernel(IndexParams p)
{
    int32_t const b = blockIdx.x;
    int32_t* packed = p.workspace + int64_t(b) * p.seq;
    int32_t* counts = p.workspace + int64_t(p.batch) * p.seq;
    __shared__ int32_t scan[kThreads];
    __shared__ int32_t carry;
    if (threadIdx.x == 0)
        carry = 0;
    __syncthreads();
    for (int32_t base = 0; base < p.seq; base += blockDim.x)
    {
        int32_t const t = base + threadIdx.x;
        int32_t const flag = t < p.seq && p.execute[int64_t(b) * p.seq + t] != 0;
        scan[threadIdx.x] = flag;
        __syncthreads();
        for (int32_t offset = 1; offset < blockDim.x; offset <<= 1) // Hillis-Steele inclusive scan
        {
            int32_t const add = threadIdx.x >= offset ? scan[threadIdx.x - offset] : 0;
            __syncthreads();
            scan[threadIdx.x] += add;
            __syncthreads();
        }
        if (flag)
            packed[carry + scan[threadIdx.x] - 1] = t;
        __syncthreads();
        if (threadIdx.x == blockDim.x - 1)
            carry += scan[threadIdx.x];
        __syncthreads();
    }
    if (threadIdx.x == 0)
    {
        counts[b] = carry;
        atomicMax(p.tq, carry);
    }
}

// Launched over the upper bound B * T; reads Tq from the device, so no host round trip is needed.
__global__ void indexWriteKernel(IndexParams p)
{
    int64_t const tq = *p.tq;
    int64_t const i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(p.batch) * tq)
        return;
    int32_t const b = static_cast<int32_t>(i / tq), j = static_cast<int32_t>(i % tq);  // i < B * tq, so tq > 0
    int32_t const count = p.workspace[int64_t(p.batch) * p.seq + b];
    p.index[i] = j < count ? p.workspace[int64_t(b) * p.seq + j] : -1;
}

// Row copies: one block per output row, 16-byte vectors when the row allows it.
template <typename T>
__global__ void gatherKernel(GatherParams p)
{
    int64_t const row = blockIdx.x;
    int32_t const b = static_cast<int32_t>(row / p.tq);
    int64_t const t = p.index[row];
    T* out = static_cast<T*>(p.out) + row * p.dim;
    if (t < 0)
    {
        for (int32_t d = threadIdx.x; d < p.dim; d += blockDim.x)
            out[d] = fromFloat<T>(0.0f);
        return;
    }
    T const* in = static_cast<T const*>(p.x) + (int64_t(b) * p.seq + t) * p.dim;
    if ((p.dim * sizeof(T)) % sizeof(uint4) == 0)
    {
        int32_t const vectors = p.dim * sizeof(T) / sizeof(uint4);
        for (int32_t v = threadIdx.x; v < vectors; v += blockDim.x)
            reinterpret_cast<uint4*>(out)[v] = reinterpret_cast<uint4 const*>(in)[v];
    }
    else
    {
        for (int32_t d = threadIdx.x; d < p.dim; d += blockDim.x)
            out[d] = in[d];
    }
}

// out already holds x; add the unit's output rows at their positions (indices are unique per sequence).
template <typename T>
__global__ void scatterAddKernel(ScatterAddParams p)
{
    int64_t const row = blockIdx.x;
    int32_t const b = static_cast<int32_t>(row / p.tq);
    int64_t const t = p.index[row];
    if (t < 0)
        return;
    T const* y = static_cast<T const*>(p.y) + row * p.dim;
    T* out = static_cast<T*>(p.out) + (int64_t(b) * p.seq + t) * p.dim;
    for (int32_t d = threadIdx.x; d < p.dim; d += blockDim.x)
        out[d] = fromFloat<T>(toFloat(out[d]) + toFloat(y[d]));
}

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

size_t indexWorkspaceSize(int32_t batch, int32_t seq) { return sizeof(int32_t) * (size_t(batch) * seq + batch); }

cudaError_t index(IndexParams const& p, cudaStream_t stream)
{
    cudaError_t err = cudaMemsetAsync(p.tq, 0, sizeof(int32_t), stream);
    int64_t const upper = int64_t(p.batch) * p.seq;
    if (err != cudaSuccess || upper == 0)
        return err;
    indexPackKernel<<<p.batch, kThreads, 0, stream>>>(p);
    indexWriteKernel<<<blocksFor(upper), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

cudaError_t gather(GatherParams const& p, cudaStream_t stream)
{
    int64_t const rows = int64_t(p.batch) * p.tq;
    if (rows == 0)
        return cudaSuccess;
    return dispatch(p.dtype, [&](auto tag) {
        gatherKernel<decltype(tag)><<<static_cast<unsigned>(rows), 128, 0, stream>>>(p);
        return cudaGetLastError();
    });
}

cudaError_t scatterAdd(ScatterAddParams const& p, cudaStream_t stream)
{
    size_t const bytes = size_t(p.batch) * p.seq * p.dim * (p.dtype == Dtype::kFloat32 ? 4 : 2);
    cudaError_t err = p.out == p.x ? cudaSuccess : cudaMemcpyAsync(p.out, p.x, bytes, cudaMemcpyDeviceToDevice, stream);
    int64_t const rows = int64_t(p.batch) * p.tq;
    if (err != cudaSuccess || rows == 0)
        return err;
    return dispatch(p.dtype, [&](auto tag) {
        scatterAddKernel<decltype(tag)><<<static_cast<unsigned>(rows), 128, 0, stream>>>(p);
        return cudaGetLastError();
    });
}

} // namespace irexport::cuda
