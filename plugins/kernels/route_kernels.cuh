// CUDA kernels of the routing ops. Parameters are plain structs (route_logic.h), never TensorRT
// types, so the TensorRT plugins and the test bindings call the same launchers.
#pragma once

#include <cuda_runtime.h>

#include "../common/route_logic.h"

namespace irexport::cuda {

cudaError_t argmax(DecideParams const& p, cudaStream_t stream);
cudaError_t threshold(DecideParams const& p, cudaStream_t stream);
// One block per sequence; the ranking is O(T^2 / threads) per sequence.
cudaError_t topk(DecideParams const& p, cudaStream_t stream);
// Bytes of IndexParams::workspace for RouteIndex on a [batch, seq] mask: one int32 per tile of tokens.
size_t indexWorkspaceSize(int32_t batch, int32_t seq);
// RouteIndex, flat over the B*T token rows: a device-wide prefix sum (tiles count their executed tokens, one
// block scans the tile counts, tiles write their rows at their offsets). Writes N to *p.count on the device
// (the size tensor of the data-dependent output) and the rows b*T + t of the executed tokens to p.index, which
// must hold the upper bound B * T elements. No host synchronisation.
cudaError_t index(IndexParams const& p, cudaStream_t stream);
// Bytes of IndexParams::workspace for RouteSeqIndex: the per-sequence counts and first positions.
size_t seqIndexWorkspaceSize(int32_t batch, int32_t seq);
// RouteSeqIndex: counts per sequence (one block each), one block scans them (first positions, Tq to *p.count),
// then p.index is written as slots [B, Tq], -1 padded; it must hold the upper bound B * T elements.
cudaError_t seqIndex(IndexParams const& p, cudaStream_t stream);
// One block per index entry; 16-byte vectors when the row's bytes and the pointers allow it.
cudaError_t gather(GatherParams const& p, cudaStream_t stream);
// out = x (a device-to-device copy unless out is x), then one block per index entry adds its row of y.
cudaError_t scatterAdd(ScatterAddParams const& p, cudaStream_t stream);

} // namespace irexport::cuda
