// Host implementations of the routing ops: the CPU reference of the kernels' logic.
#pragma once

#include "route_logic.h"

namespace irexport::host {

void argmax(DecideParams const& p);
void threshold(DecideParams const& p);
void topk(DecideParams const& p);
// N: the executed tokens of the whole batch (the size of RouteIndex's data-dependent output).
int32_t indexCount(int32_t const* execute, int32_t batch, int32_t seq);
// Writes *p.count = N and p.index [N]: the rows b*T + t of the executed tokens, in order.
void index(IndexParams const& p);
// Tq: the largest executed count of a sequence (the size of RouteSeqIndex's data-dependent dimension).
int32_t seqIndexCount(int32_t const* execute, int32_t batch, int32_t seq);
// Writes *p.count = Tq and p.index as slots [B, Tq]: positions in RouteIndex's list, -1 padded.
void seqIndex(IndexParams const& p);
void gather(GatherParams const& p);
void scatterAdd(ScatterAddParams const& p);

} // namespace irexport::host
