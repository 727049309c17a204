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
// Pass 1: pack executed positions per sequence into the workspace and write Tq (*p.tq, on the device).
cudaError_t indexPack(IndexParams const& p, cudaStream_t stream);
// Pass 2: write p.index [B, tq] (-1 padded) once the caller knows tq (TensorRT: after the size tensor).
cudaError_t indexWrite(IndexParams const& p, int32_t tq, cudaStream_t stream);
cudaError_t gather(GatherParams const& p, cudaStream_t stream);
cudaError_t scatterAdd(ScatterAddParams const& p, cudaStream_t stream);

} // namespace irexport::cuda
