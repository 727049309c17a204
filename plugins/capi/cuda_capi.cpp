// C ABI over the CUDA kernels, for the GPU tests and benchmarks (ctypes on torch CUDA tensors' data pointers).
// The last argument is a cudaStream_t: null runs on the default stream and synchronises, so a test sees a
// kernel's error at its call; a stream (torch.cuda.Stream.cuda_stream) only enqueues, so a benchmark times
// the kernels between torch's without a host round trip. Returns the cudaError_t code (0 on success).
#include "../kernels/route_kernels.cuh"

using namespace irexport;

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
int finish(cudaError_t err, cudaStream_t stream) { return err != cudaSuccess || stream ? int(err) : int(cudaDeviceSynchronize()); }
} // namespace

IRX_EXPORT int irx_cuda_argmax(void const* scores, int dtype, int batch, int seq, float* margin, cudaStream_t stream)
{
    return finish(cuda::argmax(DecideParams{scores, nullptr, margin, batch, seq, 2, Dtype(dtype), 0.f, 0.f}, stream), stream);
}

IRX_EXPORT int irx_cuda_threshold(
        void const* scores, int dtype, int batch, int seq, int channels, float threshold, float* margin, cudaStream_t stream)
{
    return finish(
            cuda::threshold(DecideParams{scores, nullptr, margin, batch, seq, channels, Dtype(dtype), threshold, 0.f}, stream), stream);
}

IRX_EXPORT int irx_cuda_topk(void const* scores, int32_t const* valid, int dtype, int batch, int seq, int channels, float capacity,
        float* margin, cudaStream_t stream)
{
    return finish(cuda::topk(DecideParams{scores, valid, margin, batch, seq, channels, Dtype(dtype), 0.f, capacity}, stream), stream);
}

IRX_EXPORT size_t irx_cuda_index_workspace_size(int batch, int seq) { return cuda::indexWorkspaceSize(batch, seq); }

// index must hold batch * seq elements (the upper bound of N); *count (device) receives N.
IRX_EXPORT int irx_cuda_index(
        int32_t const* execute, int batch, int seq, int64_t* index, int32_t* count, int32_t* workspace, cudaStream_t stream)
{
    return finish(cuda::index(IndexParams{execute, index, count, workspace, batch, seq}, stream), stream);
}

IRX_EXPORT size_t irx_cuda_seq_index_workspace_size(int batch, int seq) { return cuda::seqIndexWorkspaceSize(batch, seq); }

// slots must hold batch * seq elements (the upper bound of B * Tq); *count (device) receives Tq.
IRX_EXPORT int irx_cuda_seq_index(
        int32_t const* execute, int batch, int seq, int64_t* slots, int32_t* count, int32_t* workspace, cudaStream_t stream)
{
    return finish(cuda::seqIndex(IndexParams{execute, slots, count, workspace, batch, seq}, stream), stream);
}

// rows: the entries of index (any shape, flattened); x is [*, dim] viewed as rows.
IRX_EXPORT int irx_cuda_gather(void const* x, int64_t const* index, int dtype, int rows, int dim, void* out, cudaStream_t stream)
{
    return finish(cuda::gather(GatherParams{x, index, out, rows, dim, Dtype(dtype)}, stream), stream);
}

// x_rows: the rows of x (and out); rows: the entries of index, one row of y each.
IRX_EXPORT int irx_cuda_scatter_add(
        void const* x, void const* y, int64_t const* index, int dtype, int x_rows, int rows, int dim, void* out, cudaStream_t stream)
{
    return finish(cuda::scatterAdd(ScatterAddParams{x, y, index, out, x_rows, rows, dim, Dtype(dtype)}, stream), stream);
}
