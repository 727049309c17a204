// C ABI over the host implementations, for the CPU tests (ctypes). Returns 0 on success.
#include "../common/route_host.h"

using namespace irexport;

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))

IRX_EXPORT int irx_host_argmax(void const* scores, int dtype, int batch, int seq, float* margin)
{
    host::argmax(DecideParams{scores, nullptr, margin, batch, seq, 2, Dtype(dtype), 0.f, 0.f});
    return 0;
}

IRX_EXPORT int irx_host_threshold(void const* scores, int dtype, int batch, int seq, int channels, float threshold, float* margin)
{
    host::threshold(DecideParams{scores, nullptr, margin, batch, seq, channels, Dtype(dtype), threshold, 0.f});
    return 0;
}

IRX_EXPORT int irx_host_topk(
        void const* scores, int32_t const* valid, int dtype, int batch, int seq, int channels, float capacity, float* margin)
{
    host::topk(DecideParams{scores, valid, margin, batch, seq, channels, Dtype(dtype), 0.f, capacity});
    return 0;
}

// N, the executed tokens of the batch: the size p.index needs in irx_host_index.
IRX_EXPORT int32_t irx_host_index_count(int32_t const* execute, int batch, int seq) { return host::indexCount(execute, batch, seq); }

IRX_EXPORT int irx_host_index(int32_t const* execute, int batch, int seq, int64_t* index, int32_t* count)
{
    host::index(IndexParams{execute, index, count, nullptr, batch, seq});
    return 0;
}

// Tq, the largest executed count of a sequence: slots in irx_host_seq_index needs batch * Tq elements.
IRX_EXPORT int32_t irx_host_seq_index_count(int32_t const* execute, int batch, int seq) { return host::seqIndexCount(execute, batch, seq); }

IRX_EXPORT int irx_host_seq_index(int32_t const* execute, int batch, int seq, int64_t* slots, int32_t* count)
{
    host::seqIndex(IndexParams{execute, slots, count, nullptr, batch, seq});
    return 0;
}

// rows: the entries of index (any shape, flattened); x is [*, dim] viewed as rows.
IRX_EXPORT int irx_host_gather(void const* x, int64_t const* index, int dtype, int rows, int dim, void* out)
{
    host::gather(GatherParams{x, index, out, rows, dim, Dtype(dtype)});
    return 0;
}

// x_rows: the rows of x (and out); rows: the entries of index, one row of y each.
IRX_EXPORT int irx_host_scatter_add(void const* x, void const* y, int64_t const* index, int dtype, int x_rows, int rows, int dim, void* out)
{
    host::scatterAdd(ScatterAddParams{x, y, index, out, x_rows, rows, dim, Dtype(dtype)});
    return 0;
}
