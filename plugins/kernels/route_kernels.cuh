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
// Bytes of IndexParams::workspace for a [batch, seq] mask.
size_t indexWorkspaceSize(int32_t batch, int32_t seq);
// Packs the executed positions per sequence (block scan, into the workspace), writes Tq to *p.tq on the
// device (the size tensor of the data-dependent output) and p.index as [B, Tq], -1 padded; p.index must
// hold the upper bound B * T elements. No host synchronisation.
cudaError_t index(IndexParams const& p, cudaStream_t stream);
cudaError_t gather(GatherParams const& p, cudaStream_t stream);
cudaError_t scatterAdd(ScatterAddParams const& p, cudaStream_t stream);

} // namespace irexport::cuda
