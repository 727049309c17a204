// C ABI over the CUDA kernels, for the GPU tests (ctypes on torch CUDA tensors' data pointers).
// Synchronous on the default stream; returns the cudaError_t code (0 on success).
#include "../kernels/route_kernels.cuh"

using namespace irexport;

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
int finish(cudaError_t err) { return err != cudaSuccess ? int(err) : int(cudaDeviceSynchronize()); }
} // namespace

IRX_EXPORT int irx_cuda_argmax(void const* scores, int dtype, int batch, int seq, float* margin)
{
    return finish(cuda::argmax(DecideParams{scores, nullptr, margin, batch, seq, 2, Dtype(dtype), 0.f, 0.f}, nullptr));
}

IRX_EXPORT int irx_cuda_threshold(void const* scores, int dtype, int batch, int seq, int channels, float threshold, float* margin)
{
    return finish(cuda::threshold(DecideParams{scores, nullptr, margin, batch, seq, channels, Dtype(dtype), threshold, 0.f}, nullptr));
}

IRX_EXPORT int irx_cuda_topk(void const* scores, int32_t const* valid, int dtype, int batch, int seq, int channels, float capacity, float* margin)
{
    return finish(cuda::topk(DecideParams{scores, valid, margin, batch, seq, channels, Dtype(dtype), 0.f, capacity}, nullptr));
}

IRX_EXPORT size_t irx_cuda_index_workspace_size(int batch, int seq) { return cuda::indexWorkspaceSize(batch, seq); }

// index must hold batch * seq elements (the upper bound of Tq); *tq (device) receives Tq.
IRX_EXPORT int irx_cuda_index(int32_t const* execute, int batch, int seq, int64_t* index, int32_t* tq, int32_t* workspace)
{
    return finish(cuda::index(IndexParams{execute, index, tq, workspace, batch, seq}, nullptr));
}

IRX_EXPORT int irx_cuda_gather(void const* x, int64_t const* index, int dtype, int batch, int seq, int tq, int dim, void* out)
{
    return finish(cuda::gather(GatherParams{x, index, out, batch, seq, tq, dim, Dtype(dtype)}, nullptr));
}

IRX_EXPORT int irx_cuda_scatter_add(void const* x, void const* y, int64_t const* index, int dtype, int batch, int seq, int tq, int dim, void* out)
{
    return finish(cuda::scatterAdd(ScatterAddParams{x, y, index, out, batch, seq, tq, dim, Dtype(dtype)}, nullptr));
}
