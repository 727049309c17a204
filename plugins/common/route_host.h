// Host implementations of the routing ops: the CPU reference of the kernels' logic.
#pragma once

#include "route_logic.h"

namespace irexport::host {

void argmax(DecideParams const& p);
void threshold(DecideParams const& p);
void topk(DecideParams const& p);
// Tq: the largest executed count of a sequence (the size of RouteIndex's data-dependent output).
int32_t indexCount(int32_t const* execute, int32_t batch, int32_t seq);
// Writes *p.tq and p.index [B, Tq] (-1 padded); p.index must hold batch * indexCount(...) elements.
void index(IndexParams const& p);
void gather(GatherParams const& p);
void scatterAdd(ScatterAddParams const& p);

} // namespace irexport::host
